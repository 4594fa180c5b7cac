"""Sessions through mod_session + mod_session_cluster on one node (CGI apps)."""

import time

import pytest

from pyhttpd import Client, HttpdEnv
from pyhttpd.client import cookie_is_removal
from pyhttpd.cluster import (COOKIE_NAME, cluster_conf, random_base, session_hash,
                             split_id, start_env, stop_env)

ROUTE = "node1"


@pytest.fixture(scope="module")
def env(module_path, default_mpm):
    env = HttpdEnv("session", mpm=default_mpm, module=module_path, route=ROUTE)
    conf = cluster_conf(env)
    # same CGI apps under other prefixes with other per-location settings
    conf.add_script_alias("/short/")
    conf.add(["<Location /short/>", "    SessionMaxAge 2", "</Location>"])
    conf.add_script_alias("/named/")
    conf.add(["<Location /named/>", "    SessionClusterCookieName MYSID", "</Location>"])
    conf.add_script_alias("/off/")
    conf.add(["<Location /off/>", "    SessionCluster Off", "</Location>"])
    start_env(env, conf)
    yield env
    stop_env(env)


def counter(client, prefix="/cgi/", **kw):
    r = client.get(f"{prefix}counter.cgi", **kw)
    assert r.status == 200, f"counter answered {r.status}: {r!r}"
    return r, int(r.kv()["count"])


def new_session(env, name="c"):
    """A client with a fresh session (count=1); returns (client, id, base)."""
    c = Client(env, name)
    r, n = counter(c)
    assert n == 1
    ck = r.cookie(COOKIE_NAME)
    assert ck is not None, f"no {COOKIE_NAME} cookie on session creation: {r!r}"
    sid = ck[1]
    parts = split_id(sid)
    assert parts is not None, f"malformed session id {sid!r}"
    return c, sid, parts[0]


def test_200_01_counter_increments(env):
    c = Client(env)
    r1, n1 = counter(c)
    r2, n2 = counter(c)
    r3, n3 = counter(c)
    assert (n1, n2, n3) == (1, 2, 3)
    assert r1.cookie(COOKIE_NAME) is not None, f"no cookie when session created: {r1!r}"
    # the cookie is set on creation, not on every response
    assert r2.cookie(COOKIE_NAME) is None, f"cookie re-sent on unchanged id: {r2!r}"
    assert r3.cookie(COOKIE_NAME) is None, f"cookie re-sent on unchanged id: {r3!r}"


def test_200_02_cookie_format(env):
    c = Client(env)
    r, _ = counter(c)
    name, value, attrs = r.cookie(COOKIE_NAME)
    parts = split_id(value)
    assert parts is not None, f"id {value!r} is not <24 x [A-Za-z0-9_-]>.<route>"
    base, route = parts
    assert route == ROUTE
    assert attrs.get("httponly") is True, f"no HttpOnly: {r.set_cookies}"
    assert str(attrs.get("samesite", "")).lower() == "lax", f"no SameSite=Lax: {r.set_cookies}"
    assert attrs.get("path") == "/", f"no path=/: {r.set_cookies}"
    assert "secure" not in attrs, f"Secure on a plain http request: {r.set_cookies}"
    assert not cookie_is_removal(attrs, value)


def test_200_03_ids_distinct(env):
    """Many sessions: all bases distinct, all carry the route."""
    bases = set()
    for i in range(20):
        _, sid, base = new_session(env, f"c{i}")
        assert sid.endswith("." + ROUTE)
        bases.add(base)
    assert len(bases) == 20


def test_200_04_two_clients_distinct(env):
    a, sid_a, _ = new_session(env, "a")
    b, sid_b, _ = new_session(env, "b")
    assert sid_a != sid_b
    assert counter(a)[1] == 2
    assert counter(a)[1] == 3
    assert counter(b)[1] == 2
    assert counter(a)[1] == 4
    assert a.jar[COOKIE_NAME] == sid_a and b.jar[COOKIE_NAME] == sid_b


FORGED = {
    "wellformed-never-issued": lambda: f"{random_base()}.{ROUTE}",
    "wellformed-other-route": lambda: f"{random_base()}.node9",
    "base-without-route": lambda: random_base(),
    "short-base": lambda: f"{random_base()[:23]}.{ROUTE}",
    "path-traversal": lambda: "../../etc",
    "path-traversal-route": lambda: f"../../etc/passwd.{ROUTE}",
    "overlong": lambda: "A" * 4000 + "." + ROUTE,
    "empty": lambda: "",
    "dots-only": lambda: "...",
    "percent-encoded": lambda: "%2e%2e%2f%00." + ROUTE,
}


@pytest.mark.parametrize("kind", list(FORGED))
def test_200_05_forged_id_not_adopted(env, kind):
    forged = FORGED[kind]()
    c = Client(env)
    c.jar[COOKIE_NAME] = forged
    r, n = counter(c)
    assert n == 1, f"forged id {kind} yielded an existing session: {r!r}"
    ck = r.cookie(COOKIE_NAME)
    assert ck is not None, f"no new id issued for forged id {kind}: {r!r}"
    new = ck[1]
    assert new != forged, f"forged id {forged!r} was adopted"
    parts = split_id(new)
    assert parts is not None and parts[1] == ROUTE, f"bad new id {new!r}"
    if split_id(forged):
        assert parts[0] != split_id(forged)[0], "forged base adopted under this route"
    # the new session is real
    assert counter(c)[1] == 2


def test_200_06_forged_id_not_adopted_repeatedly(env):
    """Presenting the same unknown id twice never turns it into a session."""
    forged = f"{random_base()}.{ROUTE}"
    seen = set()
    for _ in range(3):
        c = Client(env)
        r, n = counter(c, cookies=f"{COOKIE_NAME}={forged}")
        assert n == 1
        ck = r.cookie(COOKIE_NAME)
        assert ck is not None and ck[1] != forged
        seen.add(ck[1])
    assert len(seen) == 3


def test_200_07_invalidate(env):
    c, sid, base = new_session(env)
    assert counter(c)[1] == 2
    r = c.get("/cgi/invalidate.cgi")
    assert r.status == 200, r
    assert "count=" in r.text
    ck = r.cookie(COOKIE_NAME)
    assert ck is not None, f"invalidation did not remove the cookie: {r!r}"
    assert cookie_is_removal(ck[2], ck[1]), f"cookie not expired on invalidation: {r!r}"
    assert COOKIE_NAME not in c.jar
    # a fresh request starts at 1
    r, n = counter(c)
    assert n == 1
    # presenting the old id is not adopted: a different id is issued
    old = Client(env, "old")
    r, n = counter(old, cookies=f"{COOKIE_NAME}={sid}")
    assert n == 1, f"invalidated session resurrected: {r!r}"
    ck = r.cookie(COOKIE_NAME)
    assert ck is not None and split_id(ck[1]) is not None
    assert split_id(ck[1])[0] != base, f"invalidated id {sid} re-adopted: {r!r}"


def test_200_08_invalidate_partial_keeps_session(env):
    """Removing one key of several keeps the session (no cookie removal)."""
    c, sid, _ = new_session(env)
    r = c.get("/cgi/setkv.cgi?other=x&third=y")
    assert r.status == 200
    r = c.get("/cgi/setkv.cgi?other=")
    assert r.status == 200
    assert r.cookie(COOKIE_NAME) is None, f"cookie touched on a key removal: {r!r}"
    r = c.get("/cgi/echo.cgi")
    session = r.kv().get("session", "")
    assert "count=1" in session and "third=y" in session and "other=" not in session, r
    assert counter(c)[1] == 2


def test_200_09_expiry(env):
    c = Client(env)
    r, n = counter(c, prefix="/short/")
    assert n == 1
    sid = r.cookie(COOKIE_NAME)[1]
    assert counter(c, prefix="/short/")[1] == 2
    time.sleep(3.2)        # SessionMaxAge 2
    r, n = counter(c, prefix="/short/")
    assert n == 1, f"expired session still served: {r!r}"
    ck = r.cookie(COOKIE_NAME)
    assert ck is not None, f"no new id after expiry: {r!r}"
    assert split_id(ck[1]) and split_id(ck[1])[0] != split_id(sid)[0], \
        f"expired id {sid} reused: {r!r}"
    assert counter(c, prefix="/short/")[1] == 2


def test_200_10_maxage_touch_keeps_session(env):
    """Within SessionMaxAge, reads keep the session alive."""
    c = Client(env)
    assert counter(c, prefix="/short/")[1] == 1
    for expected in (2, 3, 4):
        time.sleep(0.8)
        assert counter(c, prefix="/short/")[1] == expected


def test_200_11_big_session(env):
    """~100 KB session built from 20 x 5 KB keys round-trips intact."""
    c = Client(env)
    first = None
    for k in range(20):
        r = c.get(f"/cgi/blob.cgi?set={k}&size=5000")
        assert r.status == 200, f"step {k}: {r!r}"
        if k == 0:
            ck = r.cookie(COOKIE_NAME)
            assert ck is not None, r
            first = ck[1]
        else:
            assert r.cookie(COOKIE_NAME) is None or r.cookie(COOKIE_NAME)[1] == first
    assert c.jar[COOKIE_NAME] == first
    r = c.get("/cgi/blob.cgi?check=20&size=5000")
    assert r.status == 200, r
    kv = r.kv()
    assert kv.get("ok") == "1", f"missing/corrupt keys: {kv.get('bad')}"
    assert kv.get("keys") == "20"
    assert int(kv["session_bytes"]) >= 100000


def test_200_12_rehome_other_route(env):
    """base.<other route> of an existing session: found, re-issued with our route."""
    c, sid, base = new_session(env)
    assert counter(c)[1] == 2
    c.jar[COOKIE_NAME] = f"{base}.node2"
    r, n = counter(c)
    assert n == 3, f"session not found under another route: {r!r}"
    ck = r.cookie(COOKIE_NAME)
    assert ck is not None, f"cookie not re-issued with route {ROUTE}: {r!r}"
    assert ck[1] == f"{base}.{ROUTE}", f"re-issued id {ck[1]!r}, expected {base}.{ROUTE}"
    name, value, attrs = ck
    assert attrs.get("httponly") is True and attrs.get("path") == "/"
    r, n = counter(c)
    assert n == 4
    assert r.cookie(COOKIE_NAME) is None


def test_200_13_cookie_name(env):
    """SessionClusterCookieName MYSID."""
    c = Client(env)
    r, n = counter(c, prefix="/named/")
    assert n == 1
    assert r.cookie(COOKIE_NAME) is None, f"{COOKIE_NAME} set under /named/: {r!r}"
    ck = r.cookie("MYSID")
    assert ck is not None, f"no MYSID cookie: {r!r}"
    assert split_id(ck[1]) and split_id(ck[1])[1] == ROUTE
    assert counter(c, prefix="/named/")[1] == 2


def test_200_14_session_cluster_off(env):
    """SessionCluster Off: the provider declines, no cluster cookie, no state."""
    c = Client(env)
    for _ in range(2):
        r, n = counter(c, prefix="/off/")
        assert n == 1
        assert r.cookie(COOKIE_NAME) is None, f"cookie under SessionCluster Off: {r!r}"


def test_200_15_debug_log_mentions_id(env):
    """The debug log names the session on create and on save, by its digest
    (the first 12 hex digits of SHA-256 of the id base: ids are credentials
    and are not written to logs)."""
    off = env.error_log_size()
    c, sid, base = new_session(env)
    digest = session_hash(base)
    assert log_line_soon(env, off, f"created session {digest}"), \
        ("no debug log line with the new session's digest on create:\n"
         + env.error_log_text(off)[-2000:])
    off2 = env.error_log_size()
    assert counter(c)[1] == 2
    assert log_line_soon(env, off2, f"saved session {digest}"), \
        ("no debug log line with the session's digest on save:\n"
         + env.error_log_text(off2)[-2000:])


def log_line_soon(env, offset, text, limit=10.0):
    """The error_log lines after `offset` that contain `text`, polled for up
    to `limit` s (the line is written before the answer; the log may lag)."""
    deadline = time.monotonic() + limit
    while True:
        found = [l for l in env.error_log_text(offset).splitlines() if text in l]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_200_16_no_session_no_cookie(env):
    """A request that doesn't touch the session creates none."""
    c = Client(env)
    r = c.get("/cgi/echo.cgi")
    assert r.status == 200
    assert r.cookie(COOKIE_NAME) is None, f"cookie without a session write: {r!r}"
    r = c.get("/index.html")
    assert r.status == 200
    assert r.cookie(COOKIE_NAME) is None


def session_entries(r):
    """HTTP_SESSION (mod_session's form encoding of the loaded entries) as a
    dict."""
    from urllib.parse import unquote_plus
    out = {}
    for pair in r.kv().get("session", "").split("&"):
        k, sep, v = pair.partition("=")
        if sep:
            out[unquote_plus(k)] = unquote_plus(v)
    return out


def test_200_17_escaped_entries_load_as_set(env):
    """The provider decodes a loaded session itself (in one pass, ahead of
    mod_session's decoder): keys and values holding escaped '&', '=', '%',
    spaces, '+' (a space in mod_session's form encoding) and UTF-8 load
    exactly as mod_session decoded them from the application's SessionHeader
    (httpd >= 2.4.48: a value is the rest of its pair, '='s included; a pair
    of '='s, or one that does not unescape, is ignored); a removed key stays
    removed. The same test passes with mod_session's own decoder (a build
    without the hook): the two agree. SessionMaxAge's expiry: test_200_09."""
    c, _, _ = new_session(env)
    r = c.get("/cgi/setkv.cgi?k%26x=v%3Dy%26z&sp=a%20b&pct=%2525&plus=1+2"
              "&lit=1%2B2&u=%C3%A9t%C3%A9&gone=1&eq=b=c&==&lead==d&&nul=a%00b")
    assert r.status == 200, r
    # taken into the session, not passed to the client
    assert "x-replace-session" not in {k.lower() for k in r.headers}, r.headers
    assert c.get("/cgi/setkv.cgi?gone=").status == 200
    want = {"count": "1", "k&x": "v=y&z", "sp": "a b", "pct": "%25", "plus": "1 2",
            "lit": "1+2", "u": "\u00e9t\u00e9", "eq": "b=c", "lead": "=d"}
    for _ in range(2):      # and again once the session was saved from them
        r = c.get("/cgi/echo.cgi")
        assert r.status == 200, r
        assert session_entries(r) == want, r
        assert counter(c)[1] == int(want["count"]) + 1
        want["count"] = str(int(want["count"]) + 1)
