"""frontdoor: what a client of the shipped balancer configs can and cannot reach.

Shared by the tests of balancer.conf.in (test_900, via demo.sh) and
node-balancer.conf.in (test_910): the nodes' status pages are refused
through the front door (only ?ready passes), however the path is spelled,
and a client cannot make a node believe it used https.
"""

import http.client

from .client import parse_set_cookie

# spellings of the status page a client might try through the front
STATUS_PATHS = [
    "/cluster-manager", "/cluster-manager?auto", "/cluster-manager?json",
    "/cluster-manager?sessions", "/cluster-manager/?auto", "//cluster-manager?auto",
    "/./cluster-manager?auto", "/x/../cluster-manager?auto", "/%63luster-manager?auto",
    "/cluster-manager?ready&auto", "/cluster-manager?auto&ready",
]
# what only a status page says
PAGE_MARKS = ("MembersUp", "Member:", "SessionOwner", "RequestSession", "mod_session_cluster:")


def raw_get(port, path, headers=None):
    """GET exactly `path` (no client-side normalisation): (status, headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        c.putrequest("GET", path, skip_accept_encoding=True)
        c.putheader("Connection", "close")
        for k, v in (headers or {}).items():
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        return r.status, r.getheaders(), r.read().decode("utf-8", "replace")
    finally:
        c.close()


def status_page_leaks(port):
    """[(path, status, excerpt)] of every spelling the front served as a page."""
    out = []
    for path in STATUS_PATHS:
        status, _, body = raw_get(port, path)
        if status == 200 or any(m in body for m in PAGE_MARKS):
            out.append((path, status, body[:200]))
    return out


def session_cookie(port, path, cookie_name, headers=None):
    """The attributes of the session cookie a fresh visitor of `path` gets."""
    status, hdrs, body = raw_get(port, path, headers)
    assert status == 200, (status, body[:300])
    found = [parse_set_cookie(v) for k, v in hdrs if k.lower() == "set-cookie"]
    mine = [c for c in found if c[0] == cookie_name]
    assert len(mine) == 1, f"expected one {cookie_name} cookie: {found}"
    return mine[0][2]
