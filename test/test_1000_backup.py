"""The backup manager (Tomcat BackupManager behaviour, shared/seeds/backup-manager-*.txt):
the node that creates a session is its primary, one other up member (round-robin
per primary, in ClusterMember order) holds the backup, every other node a proxy
entry (location only). The walkthrough's two failover cases step by step,
concurrent keys, invalidation, a joining node, and bytes on the wire per update
against cluster size (backup vs delta).

What a node holds is read from `/cluster-manager?sessions` (one line per entry:
`Session: <sha256(base)[:12]> <role> <primary> <backup>|- <version>`) and
`?auto` (`SessionsPrimary/Backup/Proxy`, `SessionsWithoutBackup`,
`Distribution: <primary> <backup> <count>`). Clients talk to nodes directly.
Faults at scale (the slides' 4-node example, successive failures) are in
test_1010_backup_faults.py."""

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyhttpd import Client
from pyhttpd.backup import (HEAL, LIMIT, SETTLE, BackupCluster, NodeView, dump, location,
                            new_session, parallel, routes, wait_placement)
from pyhttpd.cluster import (COOKIE_NAME, count, random_base, run_threads, session_entries,
                             session_hash, split_id, status, wait_for)

COUNTER_PATH = "/cgi/counter.cgi"


def log_lines(env, needle, n=12):
    """The last n lines of env's error log that mention needle (for messages)."""
    lines = [l for l in env.error_log_text().splitlines() if needle in l]
    return f"--- {env.name} error log, lines with {needle}:\n" + "\n".join(lines[-n:])


@pytest.fixture
def trio(module_path):
    cl = BackupCluster(module_path, "backup3", 3, mode="sync")
    try:
        cl.start_all()
        yield cl
    finally:
        cl.stop()


# ------------------------------------------------------------------ tests

def test_1000_01_placement_primary_backup_proxy(trio):
    n1, n2, n3 = trio.envs
    for e in trio.envs:
        auto = status(e)[0]
        assert auto["Manager"] == "backup", f"{e.route}: ?auto Manager {auto['Manager']}"
        for key in ("SessionsPrimary", "SessionsBackup", "SessionsProxy",
                    "SessionsWithoutBackup"):
            assert auto.get(key) == "0", f"{e.route}: fresh node has {key}: {auto.get(key)}"
    c, h = new_session(n1, "walk", 3)
    took, views = wait_placement(trio, SETTLE, "one session placed")
    p, b, roles = location(views, h)
    proxy = ({"node2", "node3"} - {b}).pop() if b in ("node2", "node3") else None
    assert p == "node1", f"the creating node is not the primary: {roles}"
    assert b in ("node2", "node3"), f"backup on {b}: {roles}"
    assert roles == {"node1": "primary", b: "backup", proxy: "proxy"}, roles
    for r, v in views.items():
        assert v.dist == {("node1", b): 1}, \
            f"{r}: Distribution {v.dist}, expected node1 {b} 1 (every node knows every location)"
    expect = {"node1": (1, 0, 0), b: (0, 1, 0), proxy: (0, 0, 1)}
    for r, (np_, nb, nx) in expect.items():
        v = views[r]
        got = (v.num("SessionsPrimary"), v.num("SessionsBackup"), v.num("SessionsProxy"))
        assert got == (np_, nb, nx), f"{r}: (primary, backup, proxy) {got}, expected {(np_, nb, nx)}"
    print(f"\nsession {h}: primary node1 v{views['node1'].of(h)[0].version}, backup {b} "
          f"v{views[b].of(h)[0].version}, proxy {proxy} v{views[proxy].of(h)[0].version}; "
          f"placement settled {took * 1000:.0f} ms after the answer")


def test_1000_02_backup_round_robin_in_member_order(trio):
    """Per primary, successive sessions take the other up members in turn."""
    made = {}
    for e in trio.envs:
        made[e.route] = [new_session(e, f"rr-{e.route}-{i}")[1] for i in range(6)]
    _, views = wait_placement(trio, SETTLE, "18 sessions placed")
    for r, hs in made.items():
        others = [o for o in routes(3) if o != r]
        backups = [location(views, h)[1] for h in hs]
        assert all(b in others for b in backups), f"{r}: backups {backups}"
        # in ClusterMember order from wherever the turn stood
        i = others.index(backups[0])
        expected = [others[(i + k) % len(others)] for k in range(len(hs))]
        assert backups == expected, \
            f"sessions created one after another on {r}: backups {backups}, round-robin " \
            f"in member order would be {expected}"
    for r, v in views.items():
        assert sorted(v.dist.values()) == [3] * 6, f"{r}: Distribution {v.dist}"


def expect_placement(trio, h, primary, backup, why):
    """Once placement settles, session h has this primary and backup."""
    took, views = wait_placement(trio, SETTLE, f"placement ({why})")
    p2, b2, roles = location(views, h)
    assert (p2, b2) == (primary, backup), \
        f"primary {p2} backup {b2}, expected {primary} and {backup} ({why}): {roles}"
    return took, views


def kill_and_serve(trio, c, primary, serving):
    """kill -9 the primary, send the session's next request (count 3 -> 4) to
    `serving`: it answers, re-issuing the cookie with its route. The id base
    and the milliseconds from the kill to the answer."""
    base = split_id(c.jar[COOKIE_NAME])[0]
    t0 = time.monotonic()
    trio.kill_now(primary)
    assert count(c, serving) == 4, f"the count did not go on on {serving.route}"
    ms = (time.monotonic() - t0) * 1000
    sc = c.last.cookie(COOKIE_NAME)
    assert sc is not None and split_id(sc[1]) == (base, serving.route), \
        f"cookie re-issued as {sc and sc[1]}, expected {base}.{serving.route}"
    return base, ms


def test_1000_03_case1_request_on_backup(trio):
    """Walkthrough case 1: the primary dies, the request lands on the backup: it
    becomes primary, picks a new backup (the remaining node), count goes on."""
    n1 = trio.env("node1")
    c, h = new_session(n1, "case1", 3)
    _, views = wait_placement(trio, SETTLE, "session placed")
    _, b, roles = location(views, h)
    other = next(r for r in roles if r not in ("node1", b))
    backup, rest = trio.env(b), trio.env(other)
    base, ms = kill_and_serve(trio, c, n1, backup)
    print(f"\ncase 1 (request on the backup {b}): kill to answer {ms:.0f} ms")
    # sync: the answer means the new backup applied the change. It must be the
    # remaining live node, right now (not only once node1 is seen down)
    now = {e.route: [x for x in session_entries(e) if x.h == h] for e in (backup, rest)}
    mine = now[b][0] if now[b] else None
    assert mine and mine.role == "primary" and mine.backup == other, \
        f"right after answering, {b} holds {now[b]}: expected primary with backup {other} " \
        f"(the remaining up node; node1 was just killed)\n{log_lines(backup, base)}"
    assert now[other] and now[other][0].role == "backup" \
        and now[other][0].version == mine.version, \
        f"right after the sync answer, {other} holds {now[other]}, expected the backup " \
        f"at v{mine.version}\n{log_lines(backup, base)}"
    trio.reap(n1)
    took, views = expect_placement(trio, h, b, other, "case 1: the backup became "
                                   "primary, the remaining node backup")
    assert count(c, backup) == 5 and c.last.cookie(COOKIE_NAME) is None, \
        f"the next request on {b} moved the session: {c.last}"
    assert views[b].of(h)[0].version == views[other].of(h)[0].version
    print(f"case 1: {b} primary, {other} backup {took * 1000:.0f} ms after the answer")


def test_1000_04_case2_request_on_proxy(trio):
    """Walkthrough case 2: the primary dies, the request lands on a proxy: it
    fetches the session, becomes primary, the old backup stays backup."""
    n1 = trio.env("node1")
    c, h = new_session(n1, "case2", 3)
    _, views = wait_placement(trio, SETTLE, "session placed")
    _, b, roles = location(views, h)
    px = next(r for r, role in roles.items() if role == "proxy")
    proxy = trio.env(px)
    _, ms = kill_and_serve(trio, c, n1, proxy)
    trio.reap(n1)
    took, views = expect_placement(trio, h, px, b, "case 2: the proxy became "
                                   "primary, the old backup stayed")
    assert count(c, proxy) == 5 and c.last.cookie(COOKIE_NAME) is None
    print(f"\ncase 2 (request on the proxy {px}): kill to answer {ms:.0f} ms; "
          f"{px} primary, {b} still backup {took * 1000:.0f} ms later")


def test_1000_05_concurrent_keys_survive_on_backup(trio):
    n1 = trio.env("node1")
    c = Client(n1, "keys")
    assert c.get("/cgi/setkv.cgi?base=1").status == 200
    base, _ = split_id(c.jar[COOKIE_NAME])
    h = session_hash(base)
    cookie = f"{COOKIE_NAME}={c.jar[COOKIE_NAME]}"
    errors = []

    def setter(key):
        for i in range(20):
            r = Client(n1, key).get(f"/cgi/setkv.cgi?{key}={i}", cookies=cookie,
                                    update_jar=False)
            if r.status != 200:
                errors.append(f"{key}={i}: {r!r}")
    run_threads(setter, [("left",), ("right",)], 60, "setter threads")
    assert not errors, errors
    body = Client(n1, "check").get("/cgi/echo.cgi", cookies=cookie, update_jar=False).kv()
    for kv in ("base=1", "left=19", "right=19"):
        assert kv in body["session"].split("&"), f"primary lost {kv}: {body['session']}"
    _, views = wait_placement(trio, SETTLE, "session placed")
    _, b, _ = location(views, h)
    trio.kill_now(n1)
    r = Client(trio.env(b), "after").get("/cgi/echo.cgi", cookies=cookie, update_jar=False)
    assert r.status == 200, r
    got = r.kv()["session"].split("&")
    for kv in ("base=1", "left=19", "right=19"):
        assert kv in got, f"backup {b} after failover lacks {kv}: {r.kv()['session']}"
    trio.reap(n1)


def test_1000_06_invalidate_everywhere_no_resurrection(trio):
    n1 = trio.env("node1")
    c, h = new_session(n1, "inv", 3)
    old = c.jar[COOKIE_NAME]
    _, views = wait_placement(trio, SETTLE, "session placed")
    _, b, _ = location(views, h)
    c.env = n1
    r = c.get("/cgi/invalidate.cgi")
    assert r.status == 200 and COOKIE_NAME not in c.jar, f"invalidation on node1: {r}"

    def gone(what):
        for e in trio.live():
            held = [x for x in session_entries(e) if x.h == h]
            assert not held, f"{what}: {e.route} still holds the invalidated session: {held}"
            probe = Client(e, "probe")
            r = probe.get(COUNTER_PATH, cookies=f"{COOKIE_NAME}={old}")
            assert r.status == 200 and r.kv().get("count") == "1", \
                f"{what}: {e.route} served the invalidated session: {r}"
            assert split_id(probe.jar[COOKIE_NAME])[0] != split_id(old)[0], \
                f"{what}: {e.route} re-adopted the invalidated id"
    gone("right after invalidation")
    trio.kill_now(n1)
    gone("primary killed")
    trio.reap(n1)
    wait_for(trio.live_up, LIMIT, "node1 seen down")
    gone("node1 marked down")
    wait_placement(trio, HEAL, "placement after node1 dropped")
    gone("after the drop was handled")


def test_1000_07_joining_node_receives_locations(trio):
    """A node that joins holds an entry (location; a backup if rebalancing moved
    one to it) for every live session once ?ready says 200."""
    n1, n2, n3 = trio.envs
    trio.kill_now(n3)
    trio.reap(n3)
    wait_for(trio.live_up, LIMIT, "node3 seen down")
    made = [new_session(e, f"join-{e.route}-{i}", 2) for e in (n1, n2) for i in range(4)]
    _, before = wait_placement(trio, HEAL, "8 sessions on node1+node2")
    trio.start(n3)                            # start_env: ?ready 200 first
    first = NodeView(n3)
    held = {e.h: e for e in first.entries}
    missing = [h for _, h in made if h not in held]
    assert not missing, f"node3 ready without the location of {len(missing)} of 8 " \
                        f"sessions: {missing}; it holds {first.entries}"
    assert not [e for e in first.entries if e.role == "primary"], \
        f"a joining node became primary of something: {first.entries}"
    wait_for(trio.live_up, LIMIT, "node3 up everywhere")
    took, after = wait_placement(trio, HEAL, "placement with node3 back")
    moved = [h for _, h in made if location(after, h)[1] == "node3"]
    print(f"\njoin: node3 ready with {len(first.entries)} entries "
          f"{dict(Counter(e.role for e in first.entries))}; settled after {took * 1000:.0f} ms; "
          f"backups rebalanced onto node3: {len(moved)} of 8\n{dump(after)}")
    for _, h in made:
        p = location(after, h)[0]
        assert p == location(before, h)[0], f"{h}: primary moved on a join: {p}"
    for c, h in made:
        p = trio.env(location(after, h)[0])
        assert count(c, p) == 3, f"{h}: count lost after node3 joined"


# ------------------------------------------------------------------ bytes on the wire

UPDATES = 50
SIZES = (2, 3, 4, 6)


def _bytes_per_update(module_path, manager, n):
    cl = BackupCluster(module_path, f"bytes-{manager}{n}", n, mode="sync", manager=manager)
    try:
        cl.start_all()
        n1 = cl.envs[0]
        c, _ = new_session(n1, "bytes")
        if manager == "backup":
            wait_placement(cl, SETTLE, f"{n} nodes: session placed")
        auto = status(n1)[0]
        b0, f0 = int(auto["ChangeBytesSent"]), int(auto["ChangesSent"])
        for i in range(UPDATES):
            assert count(c, n1) == i + 2
        auto = status(n1)[0]
        b1, f1 = int(auto["ChangeBytesSent"]), int(auto["ChangesSent"])
        return (b1 - b0) / UPDATES, (f1 - f0) / UPDATES
    finally:
        cl.stop()


def test_1000_08_bytes_per_update_vs_cluster_size(module_path):
    t0 = time.monotonic()
    jobs = [(m, n) for n in SIZES for m in ("backup", "delta")]
    results = parallel([lambda m=m, n=n: _bytes_per_update(module_path, m, n)
                        for m, n in jobs], workers=4)
    table = dict(zip(jobs, results))
    lines = [f"{'nodes':>5} {'mode':>6} {'bytes/update':>13} {'frames/update':>14}"]
    for n in SIZES:
        for m in ("backup", "delta"):
            by, fr = table[(m, n)]
            lines.append(f"{n:>5} {m:>6} {by:>13.1f} {fr:>14.2f}")
    print(f"\n{UPDATES} one-key updates of one session on its primary "
          f"(ChangeBytesSent delta on that node; {time.monotonic() - t0:.1f} s):\n"
          + "\n".join(lines))
    b2, b6 = table[("backup", 2)][0], table[("backup", 6)][0]
    assert b2 > 0, "backup mode: nothing counted in ChangeBytesSent for 50 updates"
    assert b6 <= 1.2 * b2, \
        f"backup: {b6:.1f} bytes/update at 6 nodes vs {b2:.1f} at 2 (must not grow with N)"
    d2 = table[("delta", 2)][0]
    assert d2 > 0
    for n in SIZES[1:]:
        dn = table[("delta", n)][0]
        assert 0.75 * (n - 1) * d2 <= dn <= 1.25 * (n - 1) * d2, \
            f"delta: {dn:.1f} bytes/update at {n} nodes, expected about {n - 1} x {d2:.1f}"


def test_1000_09_forged_cookies_cost_no_connections_and_one_log_line(trio):
    """1,500 cookies with made-up ids naming another member: each is asked
    for (a member may hold it) over the existing member links, so no member
    sees a new connection (before: one TLS connection per cookie and
    member); none is adopted, and the log says so once per 10 s with the
    count, not once per cookie."""
    e = trio.envs[0]
    members = trio.envs[1:]
    accepts = [int(status(m)[0]["PeerConnectionsAccepted"]) for m in members]
    off = e.error_log_size()
    t0 = time.monotonic()
    other = members[0].route

    def forge(i):
        forged = f"{random_base()}.{other}"
        r = Client(e, f"forger{i}").get("/cgi/echo.cgi", cookies=f"{COOKIE_NAME}={forged}")
        assert r.status == 200 and r.kv().get("session", "") == "", r

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(forge, range(1500)))
    took = time.monotonic() - t0
    after = [int(status(m)[0]["PeerConnectionsAccepted"]) for m in members]
    log = e.error_log_text(off)
    notices = [l for l in log.splitlines()
               if "found on no member" in l and ":notice]" in l]
    print(f"\n1500 forged cookies in {took:.1f} s: member connections accepted "
          f"{accepts} -> {after}; {len(notices)} notice line(s): {notices[-1][-170:]}")
    # a link that reconnects meanwhile adds one; 1,500 forged cookies none
    assert all(b - a <= 1 for a, b in zip(accepts, after)), (accepts, after)
    assert 1 <= len(notices) <= 2 + int(took / 10), notices


def test_1000_10_one_unknown_id_asked_about_once_in_a_while(trio):
    """A client that keeps sending one unknown id (a stale or forged cookie)
    costs one round of questions to the members per 5 s, not one per
    request; a session created meanwhile under another id is not affected."""
    e = trio.envs[0]
    forged = f"{random_base()}.{trio.envs[1].route}"
    before = int(status(e)[0]["FetchQuestions"])
    t0 = time.monotonic()
    for i in range(200):
        r = Client(e, f"stale{i}").get("/cgi/echo.cgi", cookies=f"{COOKIE_NAME}={forged}")
        assert r.status == 200 and r.kv().get("session", "") == "", r
    took = time.monotonic() - t0
    asked = int(status(e)[0]["FetchQuestions"]) - before
    members = len(trio.envs) - 1
    print(f"\n200 requests with one unknown id in {took:.1f} s: {asked} question(s) "
          f"to {members} members")
    assert 1 <= asked <= members * (2 + int(took / 5)), asked


def test_1000_11_takeover_from_a_live_primary_gets_a_backup(module_path):
    """Two nodes, both up: a request with node1's cookie that only reads the
    session lands on node2 (a balancer that failed over too soon, or a client
    that chose). node2 takes the session over and, as a take-over presumes the
    primary it replaces is dead, picks no backup, and no save follows to pick
    one; node1 is up, so clusterd's next pass over primaries stored without a
    backup makes node1 the backup (it used to stay without one until a member
    dropped or joined)."""
    cl = BackupCluster(module_path, "takeover2", 2, mode="sync")
    try:
        cl.start_all()
        n1, n2 = cl.env("node1"), cl.env("node2")
        c, h = new_session(n1, "takeover", 2)
        _, views = wait_placement(cl, SETTLE, "session placed on node1")
        assert location(views, h)[:2] == ("node1", "node2")
        passes = int(status(n2)[0]["PlacementPasses"])
        c.env = n2
        r = c.get("/cgi/echo.cgi")
        assert r.status == 200 and "count=2" in r.kv().get("session", ""), r
        took, views = wait_placement(cl, SETTLE, "node2's take-over given a backup")
        assert location(views, h)[:2] == ("node2", "node1"), dump(views)
        assert int(status(n2)[0]["PlacementPasses"]) > passes
        assert "primaries stored without a backup: 1 session(s) placed anew" \
            in n2.error_log_text(), log_lines(n2, "placed anew")
        assert count(c, n1) == 3, "node1, now the backup, did not take the session back"
        print(f"\ntake-over on node2 from a live node1: node1 its backup "
              f"{took * 1000:.0f} ms after the answer")
    finally:
        cl.stop()
