"""Multicast membership (ClusterMulticast) on one host: nodes with no
ClusterMember line find each other by heartbeats on 127.0.0.1, replicate, drop
a member that goes silent and take back one that starts anew; datagrams that
are malformed, sealed under another key, not sealed, replayed or oversized are
ignored with a rate-limited log line. The nodes hold the run's cluster key, so
the heartbeats this test sends are sealed with it (pyhttpd.wire.heartbeat);
a node with `ClusterSecretFile none` takes unsealed heartbeats, from loopback
members only. Multi-host behaviour is in test_1100 (network namespaces)."""

import os
import random
import signal
import socket
import time

import pytest

from pyhttpd import Client, HttpdEnv
from pyhttpd.conf import shared_secret_file
from pyhttpd.ports import free_port
from pyhttpd.wire import heartbeat, secret_key
from pyhttpd.cluster import (all_see, cluster_conf, member_states, start_env, status,
                             stop_env, wait_for)

ROUTES = ("node1", "node2", "node3")
FREQUENCY_MS = 200
DROPTIME_MS = 1000
DETECT_LIMIT = 10.0


def mcast_group():
    """A group and port of our own, so runs side by side never hear each other
    (the port reserved by pyhttpd.ports.free_port)."""
    rng = random.Random(os.getpid() ^ int(time.time()))
    return f"239.77.{rng.randint(1, 254)}.{rng.randint(1, 254)}", free_port()


def mcast_conf(env, group, port, members=(), **kw):
    conf = cluster_conf(env, members=list(members),
                        multicast=f"{group}:{port} interface=127.0.0.1 "
                                  f"frequency={FREQUENCY_MS} droptime={DROPTIME_MS}", **kw)
    return conf



@pytest.fixture(scope="module")
def group():
    return mcast_group()


@pytest.fixture(scope="module")
def nodes(module_path, group):
    envs = [HttpdEnv(f"mcast-{r}", module=module_path, route=r) for r in ROUTES]
    for e in envs:
        start_env(e, mcast_conf(e, *group))
    yield envs
    for e in envs:
        stop_env(e)


def test_850_01_members_found_by_heartbeats(nodes):
    took = wait_for(lambda: all(all_see(nodes, r, "up") for r in ROUTES),
                    DETECT_LIMIT, "every node sees every member up")
    for e in nodes:
        auto, members = status(e)
        assert auto["MembersUp"] == "3", (auto, members)
        assert {m[0] for m in members} == set(ROUTES)
        addrs = {m[0]: m[1] for m in members}
        assert all(addrs[n.route] == n.cluster_addr for n in nodes), addrs
        assert "heard by multicast" in e.error_log_text()
    print(f"\n3 nodes without ClusterMember lines all up after {took:.2f}s")


def test_850_02_replicates_to_learnt_members(nodes):
    n1, n2, n3 = nodes
    c = Client(n1, "mc")
    r = c.get("/cgi/counter.cgi")
    assert r.status == 200 and r.kv()["count"] == "1"
    for other in (n2, n3):
        c2 = Client(other, "mc2")
        c2.jar.update(c.jar)
        r = c2.get("/cgi/counter.cgi")
        assert r.status == 200 and int(r.kv()["count"]) >= 2, (other.name, r)


def test_850_03_silent_member_dropped_and_new_incarnation_back(nodes, group):
    n1, n2, n3 = nodes
    wait_for(lambda: all_see(nodes, "node3", "up"), DETECT_LIMIT, "node3 up")
    t0 = time.monotonic()
    os.killpg(n3.pid(), signal.SIGKILL)
    took = wait_for(lambda: all_see([n1, n2], "node3", "down"), DETECT_LIMIT,
                    "node1 and node2 drop node3")
    print(f"\nkill -9 of node3: dropped after {took:.2f}s")
    n3.stop()
    t0 = time.monotonic()
    start_env(n3, mcast_conf(n3, *group))
    wait_for(lambda: all_see(nodes, "node3", "up"), DETECT_LIMIT, "node3 back")
    print(f"node3 started anew: up everywhere after {time.monotonic() - t0:.2f}s")
    auto, members = status(n1)
    assert [m[0] for m in members].count("node3") == 1, members


def test_850_04_frozen_member_dropped_by_heartbeat_silence(nodes):
    n1, n2, _ = nodes
    wait_for(lambda: all_see([n1], "node2", "up"), DETECT_LIMIT, "node2 up")
    pgid = n2.pid()
    os.killpg(pgid, signal.SIGSTOP)
    try:
        took = wait_for(lambda: member_states(n1).get("node2") == "down",
                        DETECT_LIMIT, "node1 drops the frozen node2")
    finally:
        os.killpg(pgid, signal.SIGCONT)
    assert "no heartbeat for" in n1.error_log_text()
    print(f"\nSIGSTOP of node2 dropped after {took:.2f}s (droptime {DROPTIME_MS} ms)")
    wait_for(lambda: member_states(n1).get("node2") == "up", DETECT_LIMIT,
             "node2 up again after SIGCONT")


def send_datagrams(group, port, payloads):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    for p in payloads:
        s.sendto(p, (group, port))
    s.close()


def cluster_heartbeat_key(env):
    """The heartbeat key of the run's cluster key, which the nodes hold."""
    return secret_key(shared_secret_file(env.base_dir()))


def ignored_lines(env, mark):
    return [l for l in env.error_log_text(mark).splitlines()
            if "heartbeat from" in l and "ignored" in l]


def test_850_05_bad_datagrams_ignored_with_one_line_each(nodes, group):
    n1 = nodes[0]
    mark = n1.error_log_size()
    key = cluster_heartbeat_key(n1)
    other = b"k" * 32
    bad = [b"", b"SCHB", os.urandom(200), b"X" * 300,                 # garbage, oversized
           heartbeat("node9", "127.0.0.1:1", secret=key)[:60],        # cut short
           heartbeat("node9", "127.0.0.1:1", secret=other),           # another key
           heartbeat("node9", "127.0.0.1:1"),                         # not sealed
           heartbeat("node9", "127.0.0.1:1", secret=key, version=1),  # the old format
           heartbeat("bad route!", "127.0.0.1:1", secret=key),
           heartbeat("node9", "127.0.0.1:1", manager=1, secret=key),  # another manager
           heartbeat("node1", "127.0.0.1:1", secret=key)]             # our route, elsewhere
    for _ in range(20):                                               # a flood
        send_datagrams(*group, bad)
    wait_for(lambda: len(ignored_lines(n1, mark)) >= 3, DETECT_LIMIT,
             "the bad datagrams are logged")
    time.sleep(1.0)                     # the flood's last datagrams are read
    log = n1.error_log_text(mark)
    lines = ignored_lines(n1, mark)
    unreadable = ("malformed", "oversized", "authentication failed", "unsealed heartbeat")
    assert any(any(w in l for w in unreadable) for l in lines), log
    assert any("runs ClusterManager" in l for l in lines), log
    assert any("uses this node's route" in l for l in lines), log
    # rate-limited: at most one line per reason however many datagrams came
    # (unreadable, manager, route)
    assert len(lines) <= 3, "\n".join(lines)
    _, members = status(n1)
    assert {m[0] for m in members} == set(ROUTES), members      # nobody learnt
    assert n1.is_running()


def test_850_06_replayed_heartbeat_ignored(nodes, group):
    n1 = nodes[0]
    mark = n1.error_log_size()
    key = cluster_heartbeat_key(n1)
    hb = heartbeat("node7", "127.0.0.1:9", epoch=5, stamp=1000, secret=key)
    send_datagrams(*group, [hb])
    wait_for(lambda: "node7" in member_states(n1), DETECT_LIMIT, "node7 learnt")
    send_datagrams(*group, [hb, heartbeat("node7", "127.0.0.1:9", epoch=4, stamp=2000,
                                          secret=key)])
    wait_for(lambda: "old heartbeat of member node7" in n1.error_log_text(mark),
             DETECT_LIMIT, "the replay is logged")
    # node7 never answers on its address: it is never up
    assert member_states(n1)["node7"] == "down"


def test_850_07_config_errors(module_path):
    env = HttpdEnv("mcast-conf", module=module_path, route="node1")
    key = f'ClusterSecretFile "{shared_secret_file(env.base_dir())}"'
    cases = [
        ("ClusterMulticast 239.1.1.1:45564", "ClusterListen 0.0.0.0:9999", key,
         "must name this node's own address"),
        ("ClusterMulticast 239.1.1.1:45564", "ClusterListen 192.0.2.77:9999", None,
         "clustering needs a secret"),
        ("ClusterMulticast 239.1.1.1:45564", "ClusterListen 192.0.2.77:9999",
         "ClusterSecretFile none", "ClusterListen 192.0.2.77:9999 is not on loopback"),
        ("ClusterMulticast 10.1.1.1:45564", None, key, "not a multicast group"),
        ("ClusterMulticast 239.1.1.1:45564 frequency=500 droptime=400", None, key,
         "must be longer than frequency"),
        ("ClusterMulticast 239.1.1.1:45564 ttl=300", None, key, "ttl"),
    ]
    for directive, listen, secret, expect in cases:
        text = (f"ClusterRoute node1\n{listen or 'ClusterListen ' + env.cluster_addr}\n"
                f"{directive}\n{secret or ''}\n")
        env.write_config(text)
        r = env.configtest()
        assert r.rc != 0 and expect in r.output, (directive, listen, secret, r.output)


def test_850_08_static_and_multicast_members_combined(module_path):
    """nodeA and nodeB list each other with ClusterMember and also join the
    group; nodeC only joins the group: all three link up and replicate."""
    grp = mcast_group()
    a, b, c = (HttpdEnv(f"mix-{r}", module=module_path, route=r)
               for r in ("nodeA", "nodeB", "nodeC"))
    static = [(a.route, a.cluster_addr), (b.route, b.cluster_addr)]
    envs = [a, b, c]
    try:
        for e in envs:
            start_env(e, mcast_conf(e, *grp, members=static if e is not c else ()))
        took = wait_for(lambda: all(all_see(envs, e.route, "up") for e in envs),
                        DETECT_LIMIT, "all three up everywhere")
        _, members = status(a)
        assert {m[0]: m[1] for m in members} == {e.route: e.cluster_addr for e in envs}
        assert "member nodeC" in a.error_log_text() and \
            "heard by multicast" in a.error_log_text()
        cl = Client(c, "mix")
        assert cl.get("/cgi/counter.cgi").kv()["count"] == "1"
        ca = Client(a, "mix-a")
        ca.jar.update(cl.jar)
        assert ca.get("/cgi/counter.cgi").kv()["count"] == "2"
        print(f"\nstatic nodeA+nodeB and multicast-only nodeC all up after {took:.2f}s")
    finally:
        for e in envs:
            stop_env(e)


def test_850_09_none_takes_unsealed_loopback_members_only(module_path):
    """`ClusterSecretFile none` (loopback experiments): heartbeats go
    unsealed; an unsealed one from a loopback member is learnt, one that
    announces an address beyond loopback, or a sealed one, is ignored with a
    line each."""
    group, port = mcast_group()
    env = HttpdEnv("mcast-none", module=module_path, route="node1")
    try:
        start_env(env, mcast_conf(env, group, port, secret_file="none"))
        mark = env.error_log_size()
        send_datagrams(group, port, [
            heartbeat("node8", "10.1.2.3:9000"),                         # not loopback
            heartbeat("node6", "127.0.0.1:8", secret=b"k" * 32),         # sealed
            heartbeat("node7", "127.0.0.1:9")])                          # fine
        wait_for(lambda: "node7" in member_states(env), DETECT_LIMIT, "node7 learnt")
        wait_for(lambda: len(ignored_lines(env, mark)) >= 2, DETECT_LIMIT,
                 "the two others are logged")
        log = env.error_log_text(mark)
        assert any("only loopback members" in l and "node8" in l
                   for l in ignored_lines(env, mark)), log
        assert any("sealed heartbeat, but ClusterSecretFile is none here" in l
                   for l in ignored_lines(env, mark)), log
        assert set(member_states(env)) == {"node1", "node7"}, status(env)
    finally:
        stop_env(env)
