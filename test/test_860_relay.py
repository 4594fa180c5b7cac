"""Replication through a misbehaving network path (pyhttpd/relay.py): three
real delta nodes on loopback, node1's ClusterMember line for node2 names a TCP
relay in front of node2's ClusterListen, every other path is direct. The relay
delays and fragments frames, stalls the path, or resets it in mid-frame."""

import random
import re
import threading
import time
import urllib.parse
from statistics import median

import pytest

from pyhttpd import Client, HttpdEnv
from pyhttpd.cluster import (COOKIE_NAME, cluster_conf, count, start_env, status, stop_env,
                             wait_for)
from pyhttpd.relay import Relay

COUNTER = "/cgi/counter.cgi"
ECHO = "/cgi/echo.cgi"
SETKV = "/cgi/setkv.cgi"
ROUTES = ("node1", "node2", "node3")
LIMIT = 15.0            # bound of every poll (generous: the machine is shared)
DROPPED = "dropping connection from"


class RelayTrio:
    """node1 -> relay -> node2; node1 <-> node3 and node2 <-> node3 direct."""

    def __init__(self, module_path, name, mode, seed):
        self.mode = mode
        self.envs = [HttpdEnv(f"{name}-{r}", mpm="event", module=module_path, route=r)
                     for r in ROUTES]
        self.relay = Relay("127.0.0.1", self.envs[1].cluster_port, seed=seed, name=f"{name}-relay")

    def members(self, env):
        n1, n2, _ = self.envs
        out = []
        for e in self.envs:
            addr = e.cluster_addr
            if env is n1 and e is n2:
                addr = f"127.0.0.1:{self.relay.port}"
            out.append((e.route, addr))
        return out

    def start(self):
        self.relay.start()
        for e in self.envs:
            start_env(e, cluster_conf(e, members=self.members(e), send_mode=self.mode))
        wait_for(self.all_up, LIMIT, "3 members up on every node")
        # node2 is up on node1 as soon as node2's own link to node1 is made;
        # node1's link to node2 (the one through the relay) may come later
        wait_for(lambda: self.relay.open_upstream_ports(), LIMIT,
                 "node1's link to node2 through the relay")
        return self

    def all_up(self):
        return all(status(e)[0]["MembersUp"] == "3" for e in self.envs)

    def member_state(self, env, route):
        return {r: s for r, _, s in status(env)[1]}.get(route)

    def calm(self):
        """Back to a transparent relay (tests change it), and wait (bounded)
        until only node1's link goes through it, so that connections left over
        from a stall or a cut cannot end inside the next test."""
        r = self.relay
        r.release()
        r.delay = 0
        r.split = False
        deadline = time.monotonic() + 5
        while r.open_connections() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self):
        stopped = self.relay.stop()
        for e in self.envs:
            stop_env(e)
        assert stopped, "relay threads did not end within 5 s"


@pytest.fixture(scope="module")
def sync_trio(module_path):
    trio = RelayTrio(module_path, "relay-sync", "sync", seed=860).start()
    yield trio
    trio.stop()


@pytest.fixture
def async_trio(module_path):
    trio = RelayTrio(module_path, "relay-async", "async", seed=861).start()
    yield trio
    trio.stop()


@pytest.fixture
def trio(sync_trio):
    """The sync trio with a transparent relay before and after each test."""
    sync_trio.calm()
    yield sync_trio
    sync_trio.calm()


def cookie_of(client):
    return f"{COOKIE_NAME}={client.jar[COOKIE_NAME]}"


def session_on(env, cookie):
    """The session as `env` holds it, read without changing it (echo.cgi;
    mod_session saves nothing for an unchanged session without SessionMaxAge)."""
    r = Client(env, "probe").get(ECHO, cookies=cookie, update_jar=False)
    assert r.status == 200, r
    return dict(urllib.parse.parse_qsl(r.kv().get("session", ""), keep_blank_values=True))


def bad_drops(env, mark, watched_ports=()):
    """`dropping connection from` lines since `mark` that are not a peer
    simply closing a short connection (state transfers end so, at debug):
    any other reason (truncated, malformed, oversized, ...) or level, and any
    drop at all of a connection through the relay's `watched_ports`."""
    out = []
    for line in env.error_log_text(mark).splitlines():
        if DROPPED not in line:
            continue
        m = re.search(DROPPED + r" [^ ]*:(\d+): (.*)$", line)
        benign = (m and "[session_cluster:debug]" in line
                  and m.group(2) == "connection closed or timed out")
        if not benign or (m and int(m.group(1)) in watched_ports):
            out.append(line)
    return out


def poll_session(env, cookie, want, limit, what):
    """Poll (bounded) until env's session has the keys in `want`; fail with
    what it has then."""
    last = None
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        last = session_on(env, cookie)
        if all(last.get(k) == v for k, v in want.items()):
            return
        time.sleep(0.05)
    pytest.fail(f"not within {limit}s: {what}: {env.route} has {last}", pytrace=False)


def test_860_01_fragmented_delayed_frames_replicate(trio):
    """Every chunk delayed 50-150 ms and forwarded in pieces of 1-8 bytes:
    20 sync saves on node1 all reach node2 over the same connection, each
    waiting for node2's answer, and no frame is taken for a bad one."""
    n1, n2, n3 = trio.envs
    relay = trio.relay
    relay.delay = (0.05, 0.15)
    relay.split = True
    marks = {e.route: e.error_log_size() for e in trio.envs}
    link = relay.open_upstream_ports()          # node1's link to node2
    assert link, "no connection from node1 through the relay"
    before = relay.stats()
    c = Client(n1, "fragmented")
    latencies = []
    for i in range(1, 21):
        t0 = time.monotonic()
        assert count(c, n1) == i
        latencies.append(time.monotonic() - t0)
    after = relay.stats()
    cookie = cookie_of(c)
    # sync: a 200 means node2 applied it, through the relay; no polling
    assert session_on(n2, cookie).get("count") == "20", session_on(n2, cookie)
    assert session_on(n3, cookie).get("count") == "20"
    moved = {k: after[k] - before[k] for k in ("bytes_up", "bytes_down", "pieces_up",
                                               "pieces_down", "chunks_up", "chunks_down")}
    print(f"\nrelay node1->node2 (delay 50-150 ms, split 1..{relay.max_piece} B): "
          f"up {moved['bytes_up']} B in {moved['pieces_up']} pieces "
          f"({moved['chunks_up']} chunks read), down {moved['bytes_down']} B in "
          f"{moved['pieces_down']} pieces ({moved['chunks_down']} chunks read); "
          f"sync save latency median {median(latencies) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")
    assert moved["bytes_up"] > 0 and moved["bytes_down"] > 0
    assert moved["pieces_up"] > moved["chunks_up"], "the relay did not fragment"
    # every sync save waited for node2's APPLIED through the relay (one
    # delayed chunk each way at least)
    assert median(latencies) >= 0.1, latencies
    n2_drops = bad_drops(n2, marks["node2"], set(relay.upstream_ports))
    assert not n2_drops, "node2 dropped connections:\n" + "\n".join(n2_drops)
    assert link <= relay.open_upstream_ports(), "node1's link through the relay broke"
    n1_log = n1.error_log_text(marks["node1"])
    assert "confirmed within" not in n1_log, \
        "a save did not get every member's confirmation:\n" + n1_log[-3000:]


def test_860_02_late_older_change_never_wins(async_trio):
    """Reordering between senders (async): node1's version 2 is held on its
    way to node2 while node3 writes version 3 on top of it and node2 gets
    that first; node1's change arriving afterwards must change nothing."""
    n1, n2, n3 = async_trio.envs
    relay = async_trio.relay
    c = Client(n1, "reorder")
    assert count(c, n1) == 1                                   # version 1
    cookie = cookie_of(c)
    for e in (n2, n3):
        wait_for(lambda e=e: session_on(e, cookie).get("count") == "1", LIMIT,
                 f"{e.route} has version 1")
    relay.hold()
    try:
        assert count(c, n1) == 2                               # version 2, stuck for node2
        wait_for(lambda: session_on(n3, cookie).get("count") == "2", LIMIT,
                 "node3 has node1's version 2 (direct path)")
        assert session_on(n2, cookie).get("count") == "1", "the held change got through"
        # the client moves to node3, which writes version 3 on top of version 2
        c3 = Client(n3, "reorder-node3")
        c3.jar = dict(c.jar)
        r = c3.get(f"{SETKV}?count=1000&writer=node3")
        assert r.status == 200, r
        newer = {"count": "1000", "writer": "node3"}
        wait_for(lambda: session_on(n2, cookie) == newer, LIMIT,
                 "node2 has node3's version 3 (direct path)")
        received = int(status(n2)[0]["ChangesReceived"])
        up_before = relay.stats()["bytes_up"]
        held = relay.pending("up")
    finally:
        relay.release()
    # node1's version 2 now reaches node2, late: it must change nothing
    wait_for(lambda: int(status(n2)[0]["ChangesReceived"]) > received, LIMIT,
             "node1's held change reached node2 after the release")
    wait_for(lambda: relay.pending() == 0, LIMIT, "the relay drained")
    late = relay.stats()["bytes_up"] - up_before
    seen = []
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        seen.append(session_on(n2, cookie))
        time.sleep(0.1)
    wrong = [s for s in seen if s != newer]
    assert not wrong, f"node2 went back to an older version: {wrong[:3]}"
    for e in (n1, n3):
        assert session_on(e, cookie) == newer, f"{e.route}: {session_on(e, cookie)}"
    print(f"\nheld {held} B for node2 while node3 wrote version 3; released "
          f"{late} B late; node2 kept {newer} over {len(seen)} reads")


def test_860_03_stalled_path_never_hangs_a_request(trio):
    """node1 -> node2 stalls (node2 -> node1 does not): sync saves on node1
    still answer within a bound, and say that a member did not confirm;
    after the release node1's changes reach node2 again."""
    n1, n2, n3 = trio.envs
    relay = trio.relay
    c = Client(n1, "stall")
    assert count(c, n1) == 1
    cookie = cookie_of(c)
    assert session_on(n2, cookie).get("count") == "1"
    mark = n1.error_log_size()
    took, states = [], []
    relay.hold()
    try:
        for i in range(2, 5):               # spans more than the 3 s drop time
            t0 = time.monotonic()
            assert count(c, n1) == i
            took.append(time.monotonic() - t0)
            assert took[-1] < 5.0, f"a sync save took {took[-1]:.1f}s on a stalled path"
            states.append(trio.member_state(n1, "node2"))
        log = n1.error_log_text(mark)
        warn = [l for l in log.splitlines()
                if "[session_cluster:warn]" in l and "1 of 2 member(s) confirmed within" in l]
        assert warn, log[-3000:]
    finally:
        relay.release()
    print(f"\nsync saves with node1->node2 stalled: "
          f"{', '.join(f'{t * 1000:.0f} ms' for t in took)}; node2 as node1 saw it "
          f"after each: {states}; {warn[0].split('] ', 3)[-1] if warn else ''}")
    wait_for(lambda: trio.member_state(n1, "node2") == "up", LIMIT, "node2 up on node1")
    t0 = time.monotonic()
    assert count(c, n1) == 5
    wait_for(lambda: session_on(n2, cookie).get("count") == "5", LIMIT,
             "node1's next change reaches node2")
    print(f"after the release: count 5 on node2 "
          f"{(time.monotonic() - t0) * 1000:.0f} ms after the save began")


def test_860_04_cuts_in_mid_frame_lose_nothing(trio):
    """Sync saves in a loop while the relay resets the path 8 times, each
    time with a change in flight (a random prefix of it reaches node2): every
    200 is exactly one more, and node2 ends with node1's final count."""
    n1, n2, n3 = trio.envs
    relay = trio.relay
    relay.delay = (0.002, 0.02)
    relay.split = True
    c = Client(n1, "cuts")
    answers = []                # (status, count or None, seconds)
    stop = threading.Event()
    errors = []

    def traffic():
        client = Client(n1, "cuts")
        client.jar = c.jar
        try:
            while not stop.is_set():
                t0 = time.monotonic()
                r = client.get(COUNTER)
                n = int(r.kv()["count"]) if r.status == 200 else None
                answers.append((r.status, n, time.monotonic() - t0))
        except Exception as e:          # reported below, never swallowed
            errors.append(repr(e))

    assert count(c, n1) == 1
    mark = n1.error_log_size()
    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    cuts = []
    rng = random.Random(8604)
    try:
        for _ in range(8):
            time.sleep(rng.uniform(0.2, 0.6))
            # cut while a change is on its way: a frame in mid-flight (in
            # its TLS record a DELTA frame is over 100 B; a PING 51 B, a
            # HELLO 52 B)
            deadline = time.monotonic() + 2.0
            while relay.pending("up") < 80 and time.monotonic() < deadline:
                time.sleep(0.001)
            cuts.append(relay.cut(partial=True))
        time.sleep(1.0)                 # traffic goes on over the re-formed link
    finally:
        stop.set()
        t.join(timeout=30)
    assert not t.is_alive(), "a request hung"
    assert not errors, errors
    statuses = [a[0] for a in answers]
    counts = [a[1] for a in answers]
    assert statuses and all(s == 200 for s in statuses), statuses
    assert counts == list(range(2, 2 + len(counts))), \
        f"counts did not go up by exactly 1 per answer: {counts}"
    final = counts[-1]
    cookie = cookie_of(c)
    t0 = time.monotonic()
    poll_session(n2, cookie, {"count": str(final)}, LIMIT,
                 f"node2 converges to node1's final count {final}")
    conv = time.monotonic() - t0
    assert session_on(n3, cookie).get("count") == str(final)
    mid = sum(1 for x in cuts if x["bytes_through"] or x["bytes_dropped"])
    going_on = n1.error_log_text(mark).count("member(s) confirmed within")
    print(f"\n{len(counts)} sync saves, {len(cuts)} cuts ({mid} with bytes in "
          f"flight: {sum(x['bytes_through'] for x in cuts)} B let through, "
          f"{sum(x['bytes_dropped'] for x in cuts)} B dropped); {going_on} saves "
          f"went on without node2; slowest save {max(a[2] for a in answers) * 1000:.0f} "
          f"ms; node2 at count {final} {conv * 1000:.0f} ms after the last save")
    assert mid >= 1, f"no cut hit a frame in flight: {cuts}"


def test_860_05_last_change_cut_mid_frame_converges(trio):
    """The worst moment for a cut: the last change of a session, in sync mode,
    cut off in the middle of its frame on the way to node2, and no change
    after it. The save is acknowledged (node3 confirmed it); node2 stays up
    all along, so it must still end with it."""
    n1, n2, n3 = trio.envs
    relay = trio.relay
    c = Client(n1, "lastcut")
    assert count(c, n1) == 1
    cookie = cookie_of(c)
    assert session_on(n2, cookie).get("count") == "1"
    expected = 1
    cut = None
    mark = n1.error_log_size()
    for attempt in range(3):
        out = {}

        def save():
            try:
                out["n"] = count(c, n1)
            except BaseException as e:      # shown by the assert below
                out["error"] = repr(e)
        relay.hold()
        base = relay.pending("up")
        try:
            t = threading.Thread(target=save, daemon=True)
            t.start()
            expected += 1
            # a DELTA frame is in the relay (in its TLS record > 100 B), not
            # just a PING (51 B) or HELLO (52 B)
            deadline = time.monotonic() + 1.5
            while relay.pending("up") - base < 80 and time.monotonic() < deadline:
                time.sleep(0.002)
            if relay.pending("up") - base >= 80:
                cut = relay.cut(partial=True)
        finally:
            relay.release()
        t.join(timeout=10)
        assert not t.is_alive(), "a save hung"
        assert out.get("n") == expected, out
        if cut:
            break
    assert cut, "the change never showed up in the relay to be cut"
    log = n1.error_log_text(mark)
    print(f"\nlast change cut in mid-frame: {cut['bytes_through']} B reached node2, "
          f"{cut['bytes_dropped']} B lost; node1 log: "
          f"{[l.split('] ', 3)[-1] for l in log.splitlines() if 'confirmed within' in l]}")
    wait_for(lambda: trio.member_state(n1, "node2") == "up", LIMIT, "node2 up on node1")
    print(f"node1 saw node2 down meanwhile: {'is down' in n1.error_log_text(mark)}")
    t0 = time.monotonic()
    poll_session(n2, cookie, {"count": str(expected)}, LIMIT,
                 f"node2 gets the acknowledged count {expected} (node1 has "
                 f"{session_on(n1, cookie)}, node3 {session_on(n3, cookie)})")
    print(f"node2 at count {expected} after {(time.monotonic() - t0) * 1000:.0f} ms")
