"""Eight small httpd nodes as separate hosts (network namespaces on a bridge),
ClusterManager backup, multicast membership with the default frequency and
droptime, sync mode: every session keeps exactly one primary and one backup
on two distinct live hosts after one failure and after a second one a few
seconds later, and nothing acknowledged is lost."""

import collections
import os
import signal
import time

import pytest
import requests

from pyhttpd import HttpdEnv
from pyhttpd.cluster import (COOKIE_NAME, cluster_conf, parse_sessions, session_hash,
                             split_id, start_env, status, stop_env, wait_for,
                             write_secret_file)
from pyhttpd.netbed import NetBed

ROUTES = tuple(f"node{i}" for i in range(1, 9))
GROUP = "239.77.12.1:45564"
PER_NODE = 10               # sessions created on each node
COUNT = 3                   # increments per session before the failures
LIMIT = 30.0


@pytest.fixture(scope="module")
def cluster(module_path, tmp_path_factory):
    bed = NetBed(tag=f"{(os.getpid() + 1) % 10000:04d}", net=200 + os.getpid() % 50)
    nodes = []
    try:
        secret = write_secret_file(tmp_path_factory.mktemp("bed8") / "cluster.key")
        for i, r in enumerate(ROUTES):
            h = bed.add_host(r, 21 + i)
            env = HttpdEnv(f"bed8-{r}", module=module_path, route=r, host=h.addr, netns=h)
            nodes.append(env)
            start_env(env, cluster_conf(env, members=[], multicast=GROUP,
                                        secret_file=secret, manager="backup",
                                        send_mode="sync", store_size="4M"))
        yield nodes
    finally:
        for e in nodes:
            stop_env(e)
        bed.destroy()


def counter(env, cookie=None):
    r = requests.get(env.url("/cgi/counter.cgi"), timeout=15,
                     cookies={COOKIE_NAME: cookie} if cookie else None,
                     headers={"Connection": "close"})
    assert r.status_code == 200, (env.name, r.status_code, r.text[:200])
    return r.cookies.get(COOKIE_NAME, cookie), int(r.text.strip().split("=")[1])


def count_on(env, cookie):
    """The count as env holds it, read-only (env is the session's primary)."""
    r = requests.get(env.url("/cgi/echo.cgi"), timeout=15, cookies={COOKIE_NAME: cookie},
                     headers={"Connection": "close"})
    assert r.status_code == 200
    kv = dict(p.split("=", 1) for p in r.text.split("session=", 1)[1].strip().split("&")
              if "=" in p)
    return int(kv.get("count", 0))


def roles(nodes):
    """{digest: {route: (role, primary, backup)}} over the given nodes."""
    out = collections.defaultdict(dict)
    for n in nodes:
        text = requests.get(n.url("/cluster-manager?sessions"), timeout=10).text
        for e in parse_sessions(text):
            out[e.h][n.route] = (e.role, e.primary, e.backup)
    return out


def placement_ok(nodes, digests):
    """Every session: one primary and one backup, on two distinct live nodes
    that agree on it; every other live node a proxy pointing at them.
    Returns the (primary, backup) of each, or None while not so."""
    live = {n.route for n in nodes}
    seen = roles(nodes)
    placed = {}
    for h in digests:
        r = seen.get(h, {})
        prim = [n for n, v in r.items() if v[0] == "primary"]
        back = [n for n, v in r.items() if v[0] == "backup"]
        if len(prim) != 1 or len(back) != 1 or prim == back or len(r) != len(live):
            return None
        if any((v[1], v[2]) != (prim[0], back[0]) for v in r.values()):
            return None
        placed[h] = (prim[0], back[0])
    return placed


def distribution(placed):
    prim = collections.Counter(p for p, _ in placed.values())
    back = collections.Counter(b for _, b in placed.values())
    return " ".join(f"{r}:{prim[r]}/{back[r]}" for r in ROUTES if prim[r] or back[r])


def test_1110_01_two_successive_failures(cluster):
    nodes = list(cluster)
    took = wait_for(lambda: all(status(n)[0]["MembersUp"] == "8" for n in nodes), LIMIT,
                    "8 members up everywhere")
    print(f"\n8 hosts found each other; all up {took:.2f}s after the last was ready")
    sessions = {}                                   # digest -> (cookie, count)
    for n in nodes:
        for _ in range(PER_NODE):
            cookie, c = counter(n)
            for _ in range(COUNT - 1):
                cookie, c = counter(n, cookie)
            sessions[session_hash(split_id(cookie)[0])] = (cookie, c)
    t0 = time.monotonic()
    wait_for(lambda: placement_ok(nodes, sessions), LIMIT, "80 sessions placed")
    placed = placement_ok(nodes, sessions)
    print(f"{len(sessions)} sessions placed ({time.monotonic() - t0:.2f}s after the last "
          f"answer), primary/backup per node: {distribution(placed)}")

    for victim in ("node8", "node3"):
        env = next(n for n in nodes if n.route == victim)
        hit = sum(victim in pb for pb in placed.values())
        t0 = time.monotonic()
        os.killpg(env.pid(), signal.SIGKILL)
        nodes.remove(env)
        wait_for(lambda: all(status(n)[0]["MembersUp"] == str(len(nodes)) for n in nodes),
                 LIMIT, f"{victim} dropped everywhere")
        dropped = time.monotonic() - t0
        wait_for(lambda: placement_ok(nodes, sessions), LIMIT,
                 f"full backup coverage after {victim} died")
        covered = time.monotonic() - t0
        placed = placement_ok(nodes, sessions)
        assert all(victim not in pb for pb in placed.values())
        without = sum(int(status(n)[0]["SessionsWithoutBackup"]) for n in nodes)
        assert without == 0
        print(f"kill -9 {victim} ({hit} sessions had it as primary or backup): dropped "
              f"everywhere after {dropped:.2f}s, every session with one primary and one "
              f"backup again after {covered:.2f}s; {distribution(placed)}")
        time.sleep(2.0)                             # the second failure comes soon after

    # nothing acknowledged is lost: each primary holds the last count
    by_route = {n.route: n for n in nodes}
    for h, (cookie, c) in sessions.items():
        assert count_on(by_route[placed[h][0]], cookie) == c, (h, placed[h])
    # and every session goes on counting from any node (a proxy fetches it)
    for i, (h, (cookie, c)) in enumerate(sessions.items()):
        _, got = counter(nodes[i % len(nodes)], cookie)
        assert got == c + 1, (h, got, c)
