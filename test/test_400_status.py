"""The cluster-manager handler: ?auto, ?json, ?ready and the HTML page."""

import json

import pytest

from pyhttpd import Client, HttpdEnv
from pyhttpd.cluster import (COOKIE_NAME, session_hash, cluster_conf, json_scalar, manager_get,
                             split_id, start_env, status, stop_env)
from pyhttpd.ports import free_port

REQUIRED = ["Route", "Manager", "Ready", "SessionsPrimary", "SessionsBackup",
            "SessionsProxy", "MembersUp", "StoreBytes", "StoreBlocksTotal",
            "StoreBlocksFree", "Tombstones", "SessionsRefused"]
NUMERIC = ["SessionsPrimary", "SessionsBackup", "SessionsProxy", "MembersUp",
           "StoreBytes", "StoreBlocksTotal", "StoreBlocksFree", "Tombstones",
           "SessionsRefused"]


@pytest.fixture(scope="module")
def env(module_path, default_mpm):
    env = HttpdEnv("status", mpm=default_mpm, module=module_path)
    # a second member that is down (nothing listens on its port)
    env.down_addr = f"127.0.0.1:{free_port()}"
    conf = cluster_conf(env, members=[("node1", env.cluster_addr),
                                      ("node2", env.down_addr)],
                        state_transfer_timeout=2)
    start_env(env, conf)
    yield env
    stop_env(env)


def new_session(env, name="c"):
    c = Client(env, name)
    r = c.get("/cgi/counter.cgi")
    assert r.status == 200 and r.kv().get("count") == "1", r
    assert COOKIE_NAME in c.jar, r
    return c


def test_400_01_auto(env):
    r = manager_get(env, "auto")
    assert r.status_code == 200
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers
    values, members = status(env)
    missing = [k for k in REQUIRED if k not in values]
    assert not missing, f"?auto lacks {missing}:\n{r.text}"
    assert values["Route"] == "node1"
    assert values["Manager"] == "delta"
    assert values["Ready"] == "1"
    for k in NUMERIC:
        assert values[k].isdigit(), f"{k}: {values[k]!r} is not a number"
    assert values["SessionsBackup"] == "0"
    assert values["SessionsProxy"] == "0"
    assert values["MembersUp"] == "1"
    assert int(values["StoreBlocksFree"]) <= int(values["StoreBlocksTotal"])
    assert int(values["StoreBlocksTotal"]) > 0
    assert sorted(members) == sorted([("node1", env.cluster_addr, "up"),
                                      ("node2", env.down_addr, "down")]), r.text


def test_400_02_json_matches_auto(env):
    new_session(env)
    values, members = status(env)
    r = manager_get(env, "json")
    assert r.status_code == 200
    data = json.loads(r.text)
    assert isinstance(data, dict), data
    for k, v in values.items():
        assert k in data, f"?json lacks {k}: {data}"
        # the pinned keys must agree (the server is idle between the two
        # fetches); extra keys such as uptimes may tick in between
        if k in REQUIRED:
            assert json_scalar(data[k]) == v, f"{k}: json {data[k]!r} != auto {v!r}"
    assert "Members" in data and isinstance(data["Members"], list), data
    jm = sorted((m["route"], m["address"], m["state"]) for m in data["Members"])
    assert jm == sorted(members)


def test_400_03_ready(env):
    r = manager_get(env, "ready")
    assert r.status_code == 200


def test_400_04_html(env):
    r = manager_get(env)
    assert r.status_code == 200
    assert "text/html" in r.headers.get("Content-Type", ""), r.headers
    assert "node1" in r.text
    # with a session: the page names it by its digest, never by its id (a
    # credential any script of the origin could read from the page)
    c = new_session(env)
    base = split_id(c.jar[COOKIE_NAME])[0]
    r = c.get("/cluster-manager")
    assert r.status == 200
    assert session_hash(base) in r.text, "HTML page does not name the request's session"
    assert base not in r.text, "HTML page shows the request's session id"
    for fmt in ("auto", "json"):
        page = c.get(f"/cluster-manager?{fmt}").text
        assert session_hash(base) in page and base not in page, (fmt, page)
    assert r.cookie(COOKIE_NAME) is None, "status page touched the session cookie"


def test_400_05_sessions_primary_grows(env):
    before = int(status(env)[0]["SessionsPrimary"])
    clients = [new_session(env, f"c{i}") for i in range(3)]
    after = int(status(env)[0]["SessionsPrimary"])
    assert after == before + 3
    # updating existing sessions does not add any
    for c in clients:
        assert c.get("/cgi/counter.cgi").kv()["count"] == "2"
    assert int(status(env)[0]["SessionsPrimary"]) == after


def test_400_06_invalidate_decrements(env):
    c = new_session(env)
    before = status(env)[0]
    r = c.get("/cgi/invalidate.cgi")
    assert r.status == 200
    after = status(env)[0]
    assert int(after["SessionsPrimary"]) == int(before["SessionsPrimary"]) - 1
    assert int(after["Tombstones"]) >= 1


def test_400_07_status_creates_no_session(env):
    before = int(status(env)[0]["SessionsPrimary"])
    for q in ("", "auto", "json", "ready"):
        r = manager_get(env, q)
        assert "Set-Cookie" not in r.headers, f"?{q} set a cookie: {r.headers}"
    assert int(status(env)[0]["SessionsPrimary"]) == before
