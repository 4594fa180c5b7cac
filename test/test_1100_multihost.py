"""Three nodes as separate hosts (network namespaces on a bridge, see
pyhttpd/netbed.py) finding each other by multicast heartbeats with the
default frequency and droptime, sealed with ClusterSecretFile, delta manager,
sync mode, and httpd's balancer in a fourth namespace.

Faults: kill -9, SIGSTOP/SIGCONT, a partition (link down) and its healing,
and a node leaving and joining again and again under a bounded load."""

import os
import re
import signal
import socket
import threading
import time

import pytest
import requests

from pyhttpd import HttpdConf, HttpdEnv
from pyhttpd.cluster import (COOKIE_NAME, all_see, cluster_conf, member_states, start_env,
                             status, stop_env, wait_for, write_secret_file)
from pyhttpd.env import MODULES_DIR
from pyhttpd.netbed import NetBed
from pyhttpd.wire import heartbeat, secret_key

ROUTES = ("node1", "node2", "node3")
GROUP = "239.77.11.1:45564"
LIMIT = 20.0


# ---------------------------------------------------------------- the bed

class Cluster:
    def __init__(self, bed, nodes, balancer, secret):
        self.bed, self.nodes, self.balancer, self.secret = bed, nodes, balancer, secret

    def node(self, route):
        return next(n for n in self.nodes if n.route == route)

    def host(self, env):
        return self.bed.hosts[env.route]

    def node_conf(self, env):
        return cluster_conf(env, members=[], multicast=GROUP, secret_file=self.secret,
                            send_mode="sync", store_size="8M")

    def start(self, env):
        start_env(env, self.node_conf(env))


def balancer_conf(env, nodes):
    conf = HttpdConf(env)
    for mod, so in (("proxy_module", "mod_proxy.so"), ("proxy_http_module", "mod_proxy_http.so"),
                    ("slotmem_shm_module", "mod_slotmem_shm.so"),
                    ("proxy_balancer_module", "mod_proxy_balancer.so"),
                    ("lbmethod_byrequests_module", "mod_lbmethod_byrequests.so")):
        conf.add([f"<IfModule !{mod}>", f"    LoadModule {mod} {MODULES_DIR}/{so}",
                  "</IfModule>"])
    conf.add('<Proxy "balancer://cluster">')
    for n in nodes:
        conf.add(f'    BalancerMember "http://{n.http_addr}" route={n.route} retry=1 '
                 f'disablereuse=On connectiontimeout=1 timeout=10')
    conf.add(["    ProxySet stickysession=JSESSIONID|jsessionid lbmethod=byrequests",
              "    ProxySet nofailover=Off failonstatus=503", "</Proxy>",
              'ProxyPass "/" "balancer://cluster/"'])
    return conf


@pytest.fixture(scope="module")
def cluster(module_path, tmp_path_factory):
    bed = NetBed()
    nodes, balancer = [], None
    try:
        secret = write_secret_file(tmp_path_factory.mktemp("bed") / "cluster.key")
        for i, r in enumerate(ROUTES):
            h = bed.add_host(r, 11 + i)
            nodes.append(HttpdEnv(f"bed-{r}", module=module_path, route=r,
                                  host=h.addr, netns=h))
        c = Cluster(bed, nodes, None, secret)
        for n in nodes:
            c.start(n)
        bh = bed.add_host("lb", 100)
        balancer = HttpdEnv("bed-lb", module=module_path, host=bh.addr, netns=bh,
                            load_cluster_module=False)
        balancer_conf(balancer, nodes).install()
        balancer.start()
        c.balancer = balancer
        yield c
    finally:
        for e in ([balancer] if balancer else []) + nodes:
            stop_env(e)
        bed.destroy()


# ---------------------------------------------------------------- helpers


def everyone_up(c):
    return all(all_see(c.nodes, r, "up") for r in ROUTES)


def get(env, path, cookie=None, timeout=10):
    """GET on one node (or the balancer) from the test's namespace."""
    return requests.get(env.url(path), timeout=timeout, headers={"Connection": "close"},
                        cookies={COOKIE_NAME: cookie} if cookie else None)


def get_inside(c, env, path, cookie=None):
    """GET from inside the node's own namespace: works while it is cut off."""
    args = ["curl", "-s", "-m", "10", "-D", "-", env.url(path)]
    if cookie:
        args[1:1] = ["-b", f"{COOKIE_NAME}={cookie}"]
    p = c.bed.run_in(c.host(env), args)
    assert p.returncode == 0, (p.returncode, p.stderr)
    head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
    code = int(head.split()[1])
    m = re.search(rf"^Set-Cookie: {COOKIE_NAME}=([^;\s]*)", head, re.M | re.I)
    return code, body, m.group(1) if m else None


def session_of(env, cookie):
    """The session as env holds it (read-only request): a dict, {} if gone."""
    r = get(env, "/cgi/echo.cgi", cookie)
    assert r.status_code == 200, (env.name, r.status_code)
    text = r.text.split("session=", 1)[1].strip()
    return dict(kv.split("=", 1) for kv in text.split("&") if "=" in kv and
                not kv.startswith("expiry="))


def new_session(env, query):
    r = get(env, f"/cgi/setkv.cgi?{query}")
    assert r.status_code == 200 and COOKIE_NAME in r.cookies, r
    return r.cookies[COOKIE_NAME]


# ---------------------------------------------------------------- tests

def test_1100_01_hosts_find_each_other_by_multicast(cluster):
    took = wait_for(lambda: everyone_up(cluster), LIMIT, "every host sees every member up")
    for n in cluster.nodes:
        auto, members = status(n)
        assert auto["MembersUp"] == "3"
        addrs = {m[0]: m[1] for m in members}
        assert addrs == {o.route: o.cluster_addr for o in cluster.nodes}, addrs
        assert "heard by multicast" in n.error_log_text()
    print(f"\n3 hosts (10.x.0.11-13) up everywhere {took:.2f}s after the last ready")


def test_1100_02_detection_times(cluster):
    """Kill to drop, freeze to drop and start to join, default 500/3000 ms."""
    n1, n2, n3 = cluster.nodes
    wait_for(lambda: everyone_up(cluster), LIMIT, "all up")
    os.killpg(n3.pid(), signal.SIGKILL)
    kill_drop = wait_for(lambda: all_see([n1, n2], "node3", "down"), LIMIT,
                         "node3 dropped after kill -9")
    n3.stop()
    t0 = time.monotonic()
    cluster.start(n3)
    ready = time.monotonic() - t0
    wait_for(lambda: all_see(cluster.nodes, "node3", "up"), LIMIT, "node3 joined")
    join = time.monotonic() - t0
    wait_for(lambda: everyone_up(cluster), LIMIT, "all up again")
    pgid = n2.pid()
    os.killpg(pgid, signal.SIGSTOP)
    try:
        freeze_drop = wait_for(lambda: all_see([n1, n3], "node2", "down"), LIMIT,
                               "frozen node2 dropped")
    finally:
        os.killpg(pgid, signal.SIGCONT)
    back = wait_for(lambda: all_see([n1, n3], "node2", "up"), LIMIT, "node2 back")
    print(f"\nmembership on the bed (frequency 500 ms, droptime 3000 ms): "
          f"kill -9 to drop {kill_drop:.2f}s; SIGSTOP to drop {freeze_drop:.2f}s; "
          f"SIGCONT to up {back:.2f}s; start to ready {ready:.2f}s, "
          f"start to up on every member {join:.2f}s")
    assert freeze_drop < 3.0 + 2.5, "a frozen member must be dropped soon after droptime"


def test_1100_03_partition_heal_newer_wins_no_resurrection(cluster):
    n1, n2, n3 = cluster.nodes
    wait_for(lambda: everyone_up(cluster), LIMIT, "all up")
    gone_a = new_session(n1, "s=1&v=a0")        # invalidated on the majority side
    both = new_session(n1, "s=2&v=a0")          # written on both sides
    gone_b = new_session(n1, "s=3&v=a0")        # invalidated on the cut-off side
    minority = new_session(n1, "s=4&v=a0")      # written on the cut-off side only
    for ck in (gone_a, both, gone_b, minority):
        wait_for(lambda: session_of(n3, ck).get("v") == "a0", LIMIT, "replicated to node3")

    cluster.bed.partition(cluster.host(n3))
    try:
        wait_for(lambda: all_see([n1, n2], "node3", "down"), LIMIT, "majority drops node3")
        # the majority side
        assert get(n1, "/cgi/invalidate.cgi", gone_a).status_code == 200
        assert get(n1, "/cgi/setkv.cgi?v=a1", both).status_code == 200
        assert get(n2, "/cgi/setkv.cgi?v=a2", both).status_code == 200
        # the cut-off side still serves what it holds (split brain)
        assert get_inside(cluster, n3, "/cgi/setkv.cgi?v=b1", gone_a)[0] == 200
        assert get_inside(cluster, n3, "/cgi/setkv.cgi?v=b1", both)[0] == 200
        assert get_inside(cluster, n3, "/cgi/invalidate.cgi", gone_b)[0] == 200
        assert get_inside(cluster, n3, "/cgi/setkv.cgi?v=b1", minority)[0] == 200
        assert get_inside(cluster, n3, "/cgi/setkv.cgi?v=b2", minority)[0] == 200
    finally:
        cluster.bed.heal(cluster.host(n3))
    wait_for(lambda: everyone_up(cluster), LIMIT, "healed")

    def converged():
        views = [(session_of(n, gone_a), session_of(n, both), session_of(n, gone_b),
                  session_of(n, minority)) for n in cluster.nodes]
        return all(v == ({}, {"s": "2", "v": "a2"}, {}, {"s": "4", "v": "b2"})
                   for v in views)

    took = wait_for(converged, LIMIT, "every node: both invalidations kept, the newer "
                                      "write of each session everywhere")
    print(f"\npartition healed: converged {took:.2f}s after every member was up again")
    assert "it is back: what changed on either side is merged" in n3.error_log_text()
    # and it stays so: nothing late brings an invalidated session back
    time.sleep(1.0)
    assert converged()


def test_1100_04_sigstop_sigcont_catches_up(cluster):
    n1, n2, n3 = cluster.nodes
    wait_for(lambda: everyone_up(cluster), LIMIT, "all up")
    ck = new_session(n1, "count=0")
    wait_for(lambda: session_of(n2, ck).get("count") == "0", LIMIT, "replicated")
    pgid = n2.pid()
    os.killpg(pgid, signal.SIGSTOP)
    try:
        for i in range(1, 6):                   # sync saves while node2 is frozen
            r = get(n1, "/cgi/counter.cgi", ck, timeout=15)
            assert r.status_code == 200 and r.text.strip() == f"count={i}", r.text
        wait_for(lambda: all_see([n1, n3], "node2", "down"), LIMIT, "node2 dropped")
        for i in range(6, 9):
            r = get(n1, "/cgi/counter.cgi", ck)
            assert r.status_code == 200 and r.text.strip() == f"count={i}"
    finally:
        os.killpg(pgid, signal.SIGCONT)
    wait_for(lambda: everyone_up(cluster), LIMIT, "node2 back")
    took = wait_for(lambda: session_of(n2, ck).get("count") == "8", LIMIT,
                    "node2 caught up with every save made while it was frozen")
    print(f"\nnode2 after SIGCONT holds count=8 within {took:.2f}s")


def test_1100_05_join_leave_under_load_sync_loses_nothing(cluster):
    """Clients count through the balancer while node3 leaves (stop, kill -9)
    and joins again, 4 times. A 200 answer acknowledges the count: it may
    never be seen lower again, and never repeat."""
    n1, n2, n3 = cluster.nodes
    wait_for(lambda: everyone_up(cluster), LIMIT, "all up")
    lb = cluster.balancer
    clients, stop = 4, threading.Event()
    log = {i: [] for i in range(clients)}
    jars = {i: {} for i in range(clients)}
    failures = {i: 0 for i in range(clients)}
    deadline = time.monotonic() + 90

    def load(i):
        for _ in range(2000):                       # bounded in count and time
            if stop.is_set() or time.monotonic() > deadline:
                return
            try:
                r = requests.get(lb.url("/cgi/counter.cgi"), cookies=jars[i], timeout=15,
                                 headers={"Connection": "close"})
            except requests.RequestException:
                failures[i] += 1
                continue
            if r.status_code != 200:
                failures[i] += 1
                time.sleep(0.05)
                continue
            if COOKIE_NAME in r.cookies:
                jars[i][COOKIE_NAME] = r.cookies[COOKIE_NAME]
            log[i].append((int(r.text.strip().split("=")[1]), failures[i]))
            time.sleep(0.01)

    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    cycles = []
    try:
        for cycle in range(4):
            time.sleep(1.5)
            t0 = time.monotonic()
            if cycle % 2:
                os.killpg(n3.pid(), signal.SIGKILL)
            n3.stop()
            wait_for(lambda: all_see([n1, n2], "node3", "down")
                     and all(status(n)[0]["MemberChangesPending"] == "0" for n in (n1, n2)),
                     LIMIT, "node3 gone, and node1 and node2 acted on it")
            cluster.start(n3)
            wait_for(lambda: everyone_up(cluster), LIMIT, "node3 back")
            cycles.append(time.monotonic() - t0)
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a client hung"
    answered = sum(len(v) for v in log.values())
    for i in range(clients):
        counts = [c for c, _ in log[i]]
        assert counts and counts[0] == 1, (i, counts[:5])
        for (prev, f0), (cur, f1) in zip(log[i], log[i][1:]):
            # each acknowledged count goes on from the last one; a request that
            # failed in between may or may not have been applied
            assert prev < cur <= prev + 1 + (f1 - f0), (i, prev, cur, f1 - f0)
        final = counts[-1]
        for n in cluster.nodes:
            held = int(session_of(n, jars[i][COOKIE_NAME]).get("count", 0))
            assert held >= final, (i, n.route, held, final)
    print(f"\n{clients} clients, {answered} acknowledged increments, "
          f"{sum(failures.values())} failed requests, node3 left and joined "
          f"{len(cycles)} times ({', '.join(f'{c:.1f}s' for c in cycles)} per cycle); "
          f"no acknowledged increment lost")


def send_to_group(bed, datagram):
    """One datagram to the cluster's group, sent over the bed's bridge."""
    group, port = GROUP.split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(bed.gateway))
    s.sendto(datagram, (group, int(port)))
    s.close()


def test_1100_06_heartbeats_under_another_secret_ignored(cluster):
    """A heartbeat sealed with another secret is never heard (one log line
    however many come); the same one sealed with the cluster's secret is (the
    positive control: the forgery is well-formed apart from its key)."""
    n1 = cluster.nodes[0]
    mark = n1.error_log_size()
    other = secret_key(write_secret_file(cluster.secret.parent / "other.key"))
    for i in range(20):
        send_to_group(cluster.bed, heartbeat("intruder", f"{cluster.bed.gateway}:9",
                                             stamp=i + 1, secret=other))
    wait_for(lambda: "authentication failed" in n1.error_log_text(mark), LIMIT,
             "the forged heartbeats are logged")
    assert n1.error_log_text(mark).count("authentication failed") == 1
    assert "intruder" not in member_states(n1)
    send_to_group(cluster.bed, heartbeat("visitor", f"{cluster.bed.gateway}:9",
                                         secret=secret_key(cluster.secret)))
    wait_for(lambda: "visitor" in member_states(n1), LIMIT, "a well-sealed one is heard")
    assert member_states(n1)["visitor"] == "down"       # nothing answers there
