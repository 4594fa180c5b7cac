"""A store full of sessions that came back refuses new sessions (503 + one
"store full" line per 10 s) and never evicts them. (New sessions that never
came back are evicted under pressure: test_510.)"""

import time

import pytest
import requests

from pyhttpd import Client, HttpdEnv
from pyhttpd.client import cookie_is_removal
from pyhttpd.cluster import COOKIE_NAME, cluster_conf, start_env, status, stop_env

MAX_REQUESTS = 2000
MAX_SECONDS = 90


class Filled:
    pass


@pytest.fixture(scope="module")
def env(module_path, default_mpm):
    env = HttpdEnv("storefull", mpm=default_mpm, module=module_path)
    start_env(env, cluster_conf(env, store_size="1M"))
    yield env
    stop_env(env)


@pytest.fixture(scope="module")
def filled(env):
    """Create one small session, then 4 KB sessions until the store refuses;
    each client comes back once with its session (so it is never evicted)."""
    f = Filled()
    f.log_offset = env.error_log_size()
    f.keeper = Client(env, "keeper")
    for n in ("1", "2"):            # it comes back once: never evicted
        r = f.keeper.get("/cgi/counter.cgi")
        assert r.status == 200 and r.kv()["count"] == n, r
    f.clients = []
    f.refused = None
    f.other_status = []
    f.exception = None
    f.started = time.monotonic()
    deadline = time.monotonic() + MAX_SECONDS
    for i in range(MAX_REQUESTS):
        if time.monotonic() > deadline:
            break
        c = Client(env, f"fill{i}")
        try:
            r = c.get("/cgi/filler.cgi", timeout=10)
        except requests.RequestException as e:
            f.exception = (i, e)
            break
        if r.status == 503:
            f.refused = r
            f.refused_client = c
            break
        if r.status != 200:
            f.other_status.append((i, r.status))
            break
        r = c.get("/cgi/echo.cgi", timeout=10)
        if r.status != 200 or "fill=ffff" not in r.kv().get("session", ""):
            f.other_status.append((i, "came back", r.status))
            break
        f.clients.append(c)
    return f


def test_500_01_refuses_when_full(env, filled):
    assert filled.exception is None, (
        f"new-session request #{filled.exception[0]} (after {len(filled.clients)} "
        f"sessions of 4 KB were stored) got no answer: {filled.exception[1]!r}")
    assert not filled.other_status, f"unexpected status while filling: {filled.other_status}"
    assert filled.refused is not None, (
        f"no 503 after {len(filled.clients)} sessions of 4 KB in a 1M store")
    # 1 MiB holds a few hundred 4 KB sessions; far fewer means a wasteful store
    assert len(filled.clients) >= 100, (
        f"store full after only {len(filled.clients)} sessions of 4 KB in 1M")
    ck = filled.refused.cookie(COOKIE_NAME)
    assert ck is None or cookie_is_removal(ck[2], ck[1]), \
        f"a refused session was handed an id: {filled.refused!r}"
    log = env.error_log_text(filled.log_offset)
    assert "store full" in log, "no 'store full' line in the error log"


def test_500_02_existing_sessions_survive(env, filled):
    assert filled.refused is not None, "the store never reported full (see test_500_01)"
    # the small session created first is intact and can still be updated
    r = filled.keeper.get("/cgi/echo.cgi")
    assert r.status == 200 and "count=2" in r.kv().get("session", ""), \
        f"existing session lost when the store filled: {r!r}"
    r = filled.keeper.get("/cgi/counter.cgi")
    assert r.status == 200, f"existing session not updatable in a full store: {r!r}"
    assert r.kv()["count"] == "3"
    # the earliest and latest 4 KB sessions were not evicted
    for c in filled.clients[:3] + filled.clients[-3:]:
        r = c.get("/cgi/echo.cgi")
        assert r.status == 200
        assert "fill=ffff" in r.kv().get("session", ""), f"{c.name} evicted: {r!r}"


def test_500_03_still_full_and_counted(env, filled):
    assert filled.refused is not None, "the store never reported full (see test_500_01)"
    for i in range(20):
        r = Client(env, f"late{i}").get("/cgi/filler.cgi")
        assert r.status == 503, f"a new session was accepted in a full store: {r!r}"
    values, _ = status(env)
    assert int(values["SessionsRefused"]) >= 21, values
    assert int(values["SessionsEvicted"]) == 0, values
    # one line per 10 s, not one per refused request
    lines = env.error_log_text(filled.log_offset).count("session store full")
    allowed = 1 + int((time.monotonic() - filled.started) / 10) + 1
    assert 1 <= lines <= allowed, f"{lines} 'store full' lines for 21 refusals"
    assert int(values["SessionsPrimary"]) == len(filled.clients) + 1, values


def test_500_04_space_reused_after_invalidation(env, filled):
    assert filled.refused is not None, "the store never reported full (see test_500_01)"
    for c in filled.clients[:5]:
        r = c.get("/cgi/invalidate.cgi")
        assert r.status == 200, r
    r = Client(env, "after").get("/cgi/filler.cgi")
    assert r.status == 200, f"freed space not reused for a new session: {r!r}"
    values, _ = status(env)
    assert int(values["SessionsPrimary"]) == len(filled.clients) + 1 - 5 + 1, values
