"""The admin tools end to end: balancer_conf/demo.sh starts a balancer and 3
nodes on loopback, test/failover/failover.sh (bash + curl) kills the node that
owns a session, checks the count goes on through the balancer on another node
with the cookie re-homed, restarts the node, checks it answers ?ready 503 then
200 and serves the session with the count going on. Both managers: delta
(ack, sync) and backup (`demo.sh MODULE.so backup`; ack, sync)."""

import os
import re
import subprocess

import pytest

from pyhttpd import frontdoor
from pyhttpd.demo import DEMO, ROUTES, Demo

RECOVERY_LIMIT_MS = 10_000


# static membership with sync, multicast (on 127.0.0.1) with ack
@pytest.fixture(scope="module", params=[("delta", "ack", "multicast"), ("delta", "sync"),
                                        ("backup", "ack", "multicast"), ("backup", "sync")],
                ids=lambda p: "-".join(p))
def demo(request, module_path):
    d = Demo(module_path, *request.param)
    try:
        d.start()
        yield d
    finally:
        p = d.stop()
        assert p.returncode == 0, f"demo.sh stop failed: {p.stdout}{p.stderr}"
        crashes = d.crash_lines()
        assert not crashes, "crash signatures in the demo's logs:\n" + "\n".join(crashes)


def _value(out, key):
    m = re.search(rf"^{key}=(\d+)$", out, re.M)
    return int(m.group(1)) if m else None


def test_900_01_demo_prints_its_urls(demo):
    out = demo.output
    assert demo.url("/counter") in out
    assert demo.url("/balancer-manager") in out
    for r in ROUTES:
        assert f"http://127.0.0.1:{demo.port + int(r[4:])}/cluster-manager" in out, out
        assert (demo.dir / r / "run" / "httpd.pid").exists()
    assert f"ClusterSendMode {demo.send_mode}" in out
    assert f"ClusterManager {demo.manager}" in out, out
    for r in ROUTES:
        conf = (demo.dir / r / "httpd.conf").read_text()
        assert f"\nClusterManager {demo.manager}\n" in conf, f"{r}: httpd.conf lacks the manager"
        assert "@" not in "".join(l for l in conf.splitlines() if not l.startswith("#")), \
            f"{r}: an @NAME@ was left unfilled"
        auto = subprocess.run(["curl", "-s", "-m", "5", f"http://127.0.0.1:"
                               f"{demo.port + int(r[4:])}/cluster-manager?auto"],
                              capture_output=True, text=True, timeout=10).stdout
        assert f"Manager: {demo.manager}\n" in auto, f"{r} ?auto:\n{auto}"
    assert "demo.sh stop" in out and "kill -9" in out and "-k start" in out


def test_900_02_failover_and_rejoin(demo):
    p = demo.failover(demo.kill_template(), demo.restart_template())
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 0 and lines and lines[-1] == "PASS", \
        f"failover.sh: exit {p.returncode}\n{p.stdout}{p.stderr}\n{demo.log_tails()}"
    recovery = _value(p.stdout, "recovery_ms")
    ready = _value(p.stdout, "ready_ms")
    assert recovery is not None and ready is not None, p.stdout
    print(f"[{demo.name}] kill to recovery through the balancer: {recovery} ms; "
          f"restart to ready: {ready} ms")
    assert recovery < RECOVERY_LIMIT_MS, f"recovery took {recovery} ms"
    failover = next(l for l in lines if l.startswith("failover "))
    assert "count=7 " in failover, failover
    assert any(l.startswith("pinned ") and "received the state" in l for l in lines), p.stdout


def test_900_03_supervisor_fast_restart(demo):
    """A node killed and started again at once (what a supervisor does): the
    balancer may send its sessions back to it before its health check has seen
    it down, i.e. while it is still receiving the state."""
    d = f"{demo.dir}/%ROUTE%"
    kill_and_start = (
        f"kill -9 -- -$(cat {d}/run/httpd.pid); rm -f {d}/run/httpd.pid; "
        # the old sockets go away a moment after SIGKILL: retry the bind (bounded)
        f"for i in $(seq 1 50); do apache2 -d {d} -f {d}/httpd.conf -k start "
        f"2>/dev/null && exit 0; sleep 0.1; done; exit 1")
    p = demo.failover(kill_and_start, extra_env={"KILL_RESTARTS": "1"})
    last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    # a node that is not ready answers 503 for a session it does not hold yet
    # (never a new session), and the balancer fails over on that 503
    assert p.returncode == 0 and last == "PASS", f"{p.stdout}{p.stderr}\n{demo.log_tails()}"


def test_900_05_front_door_refuses_status_pages_and_forged_https(demo):
    """The balancer passes only ?ready of the nodes' status pages, however
    the path is spelled; a client's own X-Forwarded-Proto never reaches a
    node (the balancer overwrites it), while the balancer's word is trusted."""
    assert frontdoor.status_page_leaks(demo.port) == []
    status, _, body = frontdoor.raw_get(demo.port, "/cluster-manager?ready")
    assert status == 200, (status, body)
    attrs = frontdoor.session_cookie(demo.port, "/counter", "JSESSIONID",
                                     {"X-Forwarded-Proto": "https"})
    assert "secure" not in attrs, f"a client made the node believe it used https: {attrs}"
    assert attrs.get("httponly") is True, attrs
    # what the balancer says is believed (the node sees it from the
    # balancer's address, 127.0.0.1 here)
    attrs = frontdoor.session_cookie(demo.port + 1, "/counter", "JSESSIONID",
                                     {"X-Forwarded-Proto": "https"})
    assert attrs.get("secure") is True, attrs


def test_900_04_demo_stop_is_idempotent_and_bad_arguments(module_path, tmp_path):
    env = dict(os.environ, SC_DEMO_DIR=str(tmp_path / "none"))
    for _ in range(2):
        p = subprocess.run([str(DEMO), "stop"], env=env, capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0, p
    for args in ([str(module_path), "bogus"], ["backup"], ["delta"]):
        p = subprocess.run([str(DEMO), *args], env=env, capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 1, (args, p)
        assert ("unknown argument 'bogus'" in p.stderr if "bogus" in args
                else "usage:" in p.stderr), (args, p)
    assert not (tmp_path / "none").exists()
