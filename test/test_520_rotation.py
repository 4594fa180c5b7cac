"""Session id rotation (issue 11, point 2): fixation protection at login.

An application asks for a new id at the session's next save with the
response header X-Session-Cluster-Rotate (a CGI, a proxied back end) or the
environment variable SESSION_CLUSTER_ROTATE (SetEnvIf, RewriteRule [E=],
for mod_auth_form's login URL). The session keeps its data under a new id,
replicated like any change; the old id is invalidated on every node at once,
so a cookie an attacker planted before the login is refused everywhere,
also when the node that rotated is killed right after. A request that began
before the rotation, still holding the old id, saves into the new id and
hands the client the new cookie.
"""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from pyhttpd import Client, HttpdEnv
from pyhttpd.cluster import (COOKIE_NAME, cluster_conf, split_id, start_env, status,
                             stop_env, wait_for)

ROUTES = ("node1", "node2")


class Pair:
    def __init__(self, module_path, name, manager):
        self.envs = [HttpdEnv(f"{name}-{r}", mpm="event", module=module_path, route=r)
                     for r in ROUTES]
        self.members = [(e.route, e.cluster_addr) for e in self.envs]
        self.manager = manager

    def start(self, env):
        c = cluster_conf(env, members=self.members, send_mode="ack", manager=self.manager)
        # the variable route: every save under /envlogin/ rotates
        c.add_script_alias("/envlogin/")
        c.add('SetEnvIf Request_URI "^/envlogin/" SESSION_CLUSTER_ROTATE=1')
        start_env(env, c)

    def up(self):
        return all(status(e)[0]["MembersUp"] == "2" for e in self.envs if e.is_running())


@pytest.fixture(params=["delta", "backup"])
def pair(module_path, request):
    p = Pair(module_path, f"rotate-{request.param}", request.param)
    try:
        for e in p.envs:
            p.start(e)
        wait_for(p.up, 20, "both members up")
        yield p
    finally:
        for e in p.envs:
            stop_env(e)


def session_of(env, cookie_value):
    """The session data a node serves for this cookie value ("" if refused)."""
    r = Client(env, "probe").get("/cgi/echo.cgi", cookies=f"{COOKIE_NAME}={cookie_value}")
    assert r.status == 200, r
    return r.kv().get("session", "")


def logged_in_user(pair):
    """A browser with a counted session (count=2) on node1, then logged in:
    (client, old cookie value, new cookie value, login response)."""
    n1 = pair.envs[0]
    c = Client(n1, "victim")
    for n in ("1", "2"):
        assert c.get("/cgi/counter.cgi").kv()["count"] == n
    old = c.jar[COOKIE_NAME]
    r = c.get("/cgi/login.cgi?alice")
    assert r.status == 200, r
    return c, old, c.jar[COOKIE_NAME], r


def test_520_01_login_rotates_the_id_and_keeps_the_data(pair):
    n1, n2 = pair.envs
    c, old, new, r = logged_in_user(pair)
    assert "X-Session-Cluster-Rotate" not in r.headers, r.headers
    assert r.cookie(COOKIE_NAME) is not None, "no new cookie on login"
    assert split_id(new)[0] != split_id(old)[0], "the id did not change"
    assert split_id(new)[1] == "node1"
    # same data under the new id, on both nodes
    for e in (n1, n2):
        wait_for(lambda e=e: "user=alice" in session_of(e, new), 10,
                 f"the new id on {e.route}")
        assert "count=2" in session_of(e, new)
    # the old id (what an attacker planted) is refused everywhere, at once
    for e in (n1, n2):
        assert session_of(e, old) == "", f"{e.route} still serves the old id"
    assert c.get("/cgi/counter.cgi").kv()["count"] == "3"
    c.env = n2
    assert c.get("/cgi/counter.cgi").kv()["count"] == "4"
    # an attacker with the old cookie who saves gets a session of his own
    a = Client(n1, "attacker")
    a.jar[COOKIE_NAME] = old
    assert a.get("/cgi/counter.cgi").kv()["count"] == "1"
    assert split_id(a.jar[COOKIE_NAME])[0] not in (split_id(old)[0], split_id(new)[0])


def test_520_02_environment_variable_rotates(pair):
    n1, _ = pair.envs
    c = Client(n1, "envuser")
    assert c.get("/cgi/counter.cgi").kv()["count"] == "1"
    old = c.jar[COOKIE_NAME]
    r = c.get("/envlogin/setkv.cgi?user=bob")
    assert r.status == 200 and r.cookie(COOKIE_NAME) is not None, r
    new = c.jar[COOKIE_NAME]
    assert split_id(new)[0] != split_id(old)[0]
    assert session_of(n1, old) == ""
    s = session_of(n1, new)
    assert "user=bob" in s and "count=1" in s, s


def test_520_03_rotation_survives_killing_the_node_right_after(pair):
    n1, n2 = pair.envs
    c, old, new, _ = logged_in_user(pair)
    os.killpg(n1.pid(), signal.SIGKILL)     # ack: the 200 came after node2 had it
    n1.stop()
    s = session_of(n2, new)
    assert "user=alice" in s and "count=2" in s, s
    assert session_of(n2, old) == "", "the surviving node serves the old id"
    c.env = n2
    assert c.get("/cgi/counter.cgi").kv()["count"] == "3"


def test_520_04_a_request_in_flight_follows_the_new_id(pair):
    n1, _ = pair.envs
    c = Client(n1, "busy")
    assert c.get("/cgi/counter.cgi").kv()["count"] == "1"
    old = c.jar[COOKIE_NAME]
    token = f"t{os.getpid()}x{int(time.monotonic() * 1000) % 100000}"
    slowdir = Path(n1.root) / "slow"        # where slowset.cgi (www-data) signals
    slowdir.mkdir(exist_ok=True)
    slowdir.chmod(0o777)
    started, go = slowdir / f"{token}.started", slowdir / f"{token}.go"
    slow = Client(n1, "busy-tab")            # another tab of the same browser
    slow.jar[COOKIE_NAME] = old
    result = {}
    t = threading.Thread(target=lambda: result.update(r=slow.get(f"/cgi/slowset.cgi?{token}",
                                                                 timeout=40)))
    try:
        t.start()
        wait_for(started.exists, 20, "the slow request running")
        r = c.get("/cgi/login.cgi?carol")
        assert r.status == 200
        new = c.jar[COOKIE_NAME]
        assert split_id(new)[0] != split_id(old)[0]
        go.touch()
        t.join(timeout=40)
        assert not t.is_alive(), "the slow request hung"
    finally:
        go.touch()
        t.join(timeout=40)
        for f in (started, go):
            f.unlink(missing_ok=True)
    r = result["r"]
    assert r.status == 200, r
    assert r.cookie(COOKIE_NAME) is not None and r.cookie(COOKIE_NAME)[1] == new, \
        f"the slow request did not hand out the new id: {r.set_cookies}"
    s = session_of(n1, new)
    assert f"late={token}" in s and "user=carol" in s and "count=1" in s, s
    assert session_of(n1, old) == ""
