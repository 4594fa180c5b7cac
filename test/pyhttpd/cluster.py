"""Helpers specific to mod_session_cluster: id format, status parsing, readiness."""

import re
import secrets
import string
import time

import pytest
import requests

from .conf import HttpdConf

COOKIE_NAME = "JSESSIONID"
BASE_RE = re.compile(r"^[A-Za-z0-9_-]{24}$")
ID_RE = re.compile(r"^(?P<base>[A-Za-z0-9_-]{24})\.(?P<route>[A-Za-z0-9_-]{1,31})$")

MANAGER_PATH = "/cluster-manager"


def random_base() -> str:
    """A well-formed id base (24 x [A-Za-z0-9_-]) that the server never issued."""
    alphabet = string.ascii_letters + string.digits + "-_"
    return "".join(secrets.choice(alphabet) for _ in range(24))


def split_id(value: str):
    """(base, route) of a session cookie value, or None if not well-formed."""
    m = ID_RE.match(value or "")
    return (m.group("base"), m.group("route")) if m else None


def parse_auto(text: str):
    """Parse `?auto` output: (dict of single keys, list of member tuples).

    `Member: <route> <host:port> up|down` lines are collected as
    (route, address, state) tuples, all other `Key: value` lines into the dict.
    """
    values, members = {}, []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, val = line.partition(":")
        assert sep, f"?auto line without 'Key: value' form: {line!r}"
        key, val = key.strip(), val.strip()
        if key == "Member":
            parts = val.split()
            assert len(parts) == 3, f"bad Member line: {line!r}"
            members.append(tuple(parts))
        else:
            assert key not in values, f"?auto key {key} repeated"
            values[key] = val
    return values, members


def json_scalar(v) -> str:
    """Normalise a JSON scalar to the ?auto string form (true -> 1)."""
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def manager_get(env, query="", timeout=20):
    url = env.url(MANAGER_PATH + (f"?{query}" if query else ""))
    return requests.get(url, timeout=timeout, headers={"Connection": "close"})


def status(env):
    r = manager_get(env, "auto")
    assert r.status_code == 200, f"?auto answered {r.status_code}: {r.text[:500]}"
    return parse_auto(r.text)


def wait_ready(env, timeout=20.0):
    """Poll ?ready until 200 (bounded). Returns the last status code."""
    deadline = time.monotonic() + timeout
    code = None
    for _ in range(int(timeout / 0.1) + 1):
        try:
            code = manager_get(env, "ready", timeout=5).status_code
        except requests.RequestException:
            code = None
        if code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return code


def cluster_conf(env, members=None, manager_handler=True, session_path="/",
                 **cluster_kw):
    """The standard single-node config: cluster directives + session on `/`."""
    conf = HttpdConf(env)
    if members is None:
        members = [(env.route, env.cluster_addr)]
    conf.add_cluster(members=members, **cluster_kw)
    conf.add_session_location(session_path)
    if manager_handler:
        conf.add_manager()
    return conf


def start_env(env, conf):
    """Install `conf`, start the server and wait until the cluster is ready."""
    conf.install()
    r = env.configtest()
    assert r.rc == 0, f"config test failed for {env.name}: {r.output}"
    env.start()
    code = wait_ready(env)
    assert code == 200, (f"{env.name}: /cluster-manager?ready answered {code} "
                         f"after 20s\n{env.error_log_tail()}")
    return env


def stop_env(env):
    """Stop a server and fail if stopping it revealed a crash."""
    if env.is_running():
        env.stop()
    crashes = env.check_crashes()
    if crashes:
        pytest.fail(f"{env.name}: crash signatures in error log on shutdown:\n"
                    + "\n".join(crashes), pytrace=False)


def wait_for(predicate, limit, what):
    """Poll (bounded) until predicate() holds; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    pytest.fail(f"not within {limit}s: {what}")
