"""pytest configuration for the mod_session_cluster integration tests.

Run from the repository root:  /usr/bin/python3 -m pytest test -q -x
Environment:
  SC_MODULE   path of mod_session_cluster.so (default: the libtool build output
              mod_session_cluster/.libs/mod_session_cluster.so in this repo)
  SC_MPM      default MPM for suites that don't parametrize it (event|prefork)
  SC_TEST_DIR parent directory for server roots (default: system temp dir)
  SC_KEEP=1   keep server roots (configs, logs) also after a passing run
              (a failing run always keeps them and prints where)
  SC_TEST_PORTS LO-HI: where servers' ports come from (default: 10000 up to
              the kernel's ephemeral range; pyhttpd/ports.py says why)
  SC_PORT_LOCK the file whose byte locks reserve ports across test runs
              (default /tmp/sc-test-ports.lock)
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the harness' asserts (count(), new_session(), expect_drop(), ... moved there
# from test modules) report their operands as a test module's asserts do
pytest.register_assert_rewrite("pyhttpd")

from pyhttpd import HttpdEnv, find_module  # noqa: E402
from pyhttpd.idleak import CHECK as ID_LEAKS, IdLeaks  # noqa: E402

IdLeaks.add_source(lambda: [([env.access_log], [env.error_log])
                            for env in list(HttpdEnv.registry)])


def pytest_report_header(config):
    mod = find_module()
    return [f"mod_session_cluster: {mod} ({'present' if mod.exists() else 'MISSING'})",
            f"server roots under: {os.environ.get('SC_TEST_DIR', 'system temp dir')}"]


def pytest_sessionfinish(session, exitstatus):
    for env in list(HttpdEnv.registry):
        if env.is_running():
            env.stop()
    # keep configs and logs of a failed run for inspection
    if exitstatus == 0:
        HttpdEnv.cleanup_base_dir()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    base = HttpdEnv._base_dir
    if base is not None and base.exists():
        terminalreporter.write_line(f"server roots (configs, error logs) kept in {base}")


@pytest.fixture(scope="session")
def module_path():
    """The built module; a missing build is a failure, never a skip."""
    mod = find_module()
    if not mod.exists():
        pytest.fail(f"mod_session_cluster.so not found at {mod}: build first: ./build.sh",
                    pytrace=False)
    return mod


@pytest.fixture(scope="session")
def default_mpm():
    mpm = os.environ.get("SC_MPM", "event")
    assert mpm in ("event", "prefork"), f"SC_MPM must be event or prefork, not {mpm}"
    return mpm


@pytest.fixture(autouse=True)
def _check_error_logs_for_crashes(request):
    """After every test: fail if any server logged a crash since the last check."""
    yield
    problems = []
    for env in list(HttpdEnv.registry):
        for line in env.check_crashes():
            problems.append(f"{env.name} ({env.error_log}): {line}")
    if problems:
        pytest.fail("crash signatures found in error log(s):\n" + "\n".join(problems),
                    pytrace=False)
    leaks = ID_LEAKS.check()
    if leaks:
        pytest.fail("session ids (credentials) written to an error log:\n"
                    + "\n".join(leaks), pytrace=False)
