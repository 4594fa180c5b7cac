"""Many sessions in a small store (so hash buckets are shared): every session
stays reachable, and unknown ids are still answered promptly (a lookup that
misses walks a whole bucket chain)."""


import pytest
import requests

from pyhttpd import Client, HttpdEnv
from pyhttpd.cluster import cluster_conf, random_base, start_env, status, stop_env

SESSIONS = 400
FORGED = 200
TIMEOUT = 10


@pytest.fixture(scope="module")
def env(module_path, default_mpm):
    env = HttpdEnv("many", mpm=default_mpm, module=module_path)
    start_env(env, cluster_conf(env, store_size="1M"))
    yield env
    stop_env(env)


def get(client, path, what):
    try:
        return client.get(path, timeout=TIMEOUT)
    except requests.RequestException as e:
        err = repr(e)
    pytest.fail(f"{what}: no answer within {TIMEOUT}s ({err})", pytrace=False)


def test_250_01_many_sessions_and_unknown_ids(env):
    clients = []
    for i in range(SESSIONS):
        c = Client(env, f"m{i}")
        r = get(c, "/cgi/counter.cgi", f"creating session {i}")
        assert r.status == 200 and r.kv()["count"] == "1", f"session {i}: {r!r}"
        clients.append(c)
    assert int(status(env)[0]["SessionsPrimary"]) == SESSIONS
    # every session is still found
    for i, c in enumerate(clients):
        r = get(c, "/cgi/counter.cgi", f"updating session {i}")
        assert r.status == 200 and r.kv()["count"] == "2", f"session {i}: {r!r}"
    # unknown ids: never adopted, always answered
    for i in range(FORGED):
        forged = f"{random_base()}.{env.route}"
        r = get(Client(env, f"f{i}"), "/cgi/echo.cgi",
                f"request {i} with unknown id {forged}")
        assert r.status == 200, r
        assert r.kv().get("session", "") == "", f"unknown id {forged} adopted: {r!r}"
    assert int(status(env)[0]["SessionsPrimary"]) == SESSIONS
