"""Backup manager under member failures: a drop re-places every session of the
dead node without any request (its backups become primaries, sessions whose
backup died get a new one); the slides' example (shared/seeds/clustering-talk-
slides.txt: 4 nodes x 30 sessions, backups 10/10/10, node D fails -> 40
primaries per node, backups 20/20); two successive failures in sync mode lose
nothing."""

import time
from collections import Counter

from pyhttpd.backup import (HEAL, SETTLE, BackupCluster, dump, location,
                            new_session, parallel, routes, wait_placement)
from pyhttpd.cluster import COOKIE_NAME, count, split_id


def test_1010_01_drop_replaces_without_requests(module_path):
    """3 nodes: node1 dies; with no request at all, each of its sessions gets its
    old backup as primary and the remaining node as backup."""
    cl = BackupCluster(module_path, "drop3", 3, mode="sync")
    try:
        cl.start_all()
        n1 = cl.env("node1")
        made = [new_session(n1, f"drop-{i}", 2) for i in range(6)]
        _, views = wait_placement(cl, SETTLE, "6 sessions on node1 placed")
        old = {h: location(views, h)[1] for _, h in made}
        assert sorted(Counter(old.values()).items()) == [("node2", 3), ("node3", 3)], \
            f"backups of 6 sessions created on node1: {old}"
        t0 = time.monotonic()
        cl.kill_now(n1)
        cl.reap(n1)
        took, views = wait_placement(cl, HEAL, "node1's sessions re-placed without requests")
        for _, h in made:
            p, b, roles = location(views, h)
            expect_b = ({"node2", "node3"} - {old[h]}).pop()
            assert (p, b) == (old[h], expect_b), \
                f"{h}: backup was {old[h]}; after the drop primary {p} backup {b} ({roles}), " \
                f"expected primary {old[h]}, backup {expect_b}"
        ms = (time.monotonic() - t0) * 1000
        print(f"\nnode1 killed: its 6 sessions on their old backups with a new backup each, "
              f"{ms:.0f} ms after the kill, without a request")
        for c, h in made:
            p = cl.env(location(views, h)[0])
            assert count(c, p) == 3, f"{h}: count lost over the drop"
            assert split_id(c.jar[COOKIE_NAME])[1] == p.route
    finally:
        cl.stop()


def _create_on(env, n):
    """n sessions created one after another on env: [(client, hash)]."""
    return [new_session(env, f"s-{env.route}-{i}") for i in range(n)]


def test_1010_02_slides_four_nodes(module_path):
    """30 sessions per node, backups 10/10/10; node4 (D) fails: 40 primaries
    per node, backups 20/20, every session one primary + one backup."""
    cl = BackupCluster(module_path, "slides", 4, mode="sync")
    try:
        cl.start_all()
        per_node = parallel([lambda e=e: _create_on(e, 30) for e in cl.envs])
        sessions = [s for lst in per_node for s in lst]
        took, views = wait_placement(cl, SETTLE, "120 sessions placed")
        print(f"\n120 sessions placed ({took * 1000:.0f} ms after the last answer):\n"
              f"{dump(views)}")
        nodes = routes(4)
        expected = {(p, b): 10 for p in nodes for b in nodes if p != b}
        for r, v in views.items():
            assert v.num("SessionsPrimary") == 30, f"{r}: {v.auto.get('SessionsPrimary')} primaries"
            assert v.num("SessionsBackup") == 30, f"{r}: {v.auto.get('SessionsBackup')} backups"
            assert v.num("SessionsProxy") == 60, f"{r}: {v.auto.get('SessionsProxy')} proxies"
            assert v.dist == expected, \
                f"{r}: Distribution {sorted(v.dist.items())}, the slides' 10/10/10 per primary " \
                f"would be {sorted(expected.items())}"
        for env, made in zip(cl.envs, per_node):
            others = [o for o in nodes if o != env.route]
            backups = [location(views, h)[1] for _, h in made]
            i = others.index(backups[0])
            assert backups == [others[(i + k) % 3] for k in range(30)], \
                f"{env.route}: backups of its sessions in creation order {backups} are not " \
                f"round-robin in member order {others}"

        d = cl.env("node4")
        t0 = time.monotonic()
        cl.kill_now(d)
        cl.reap(d)
        live = routes(3)

        def shape(views):
            problems = []
            for r, v in views.items():
                prim = v.num("SessionsPrimary")
                if prim is None or abs(prim - 40) > 2:
                    problems.append(f"{r}: {prim} primaries, expected 40 (+-2)")
                if sum(v.dist.values()) != 120:
                    problems.append(f"{r}: Distribution covers {sum(v.dist.values())} sessions")
                for p in live:
                    mine = {b: n for (pp, b), n in v.dist.items() if pp == p}
                    if set(mine) != set(live) - {p}:
                        problems.append(f"{r}: primary {p} has backups on {sorted(mine)}")
                    elif max(mine.values()) - min(mine.values()) > 2:
                        problems.append(f"{r}: primary {p} backups {mine}, expected 20/20 (+-1)")
            return problems
        took, views = wait_placement(cl, HEAL, "the slides' 40 / 20+20 after node4 died",
                                     extra=shape)
        print(f"node4 killed: full backup coverage and 40 / 20+20 after "
              f"{(time.monotonic() - t0) * 1000:.0f} ms (without requests):\n{dump(views)}")
        hashes = {h for v in views.values() for h in (e.h for e in v.entries)}
        assert hashes == {h for _, h in sessions}, \
            f"sessions lost or invented: {len(hashes)} live, 120 created"
        first = next(iter(views.values())).dist
        for r, v in views.items():
            assert v.dist == first, f"{r} and another node disagree: {v.dist} vs {first}"

        # every session still has its data: read it on its primary
        def read(c, h):
            p = cl.env(location(views, h)[0])
            return count(c, p)
        got = parallel([lambda c=c, h=h: read(c, h) for c, h in sessions], workers=8)
        lost = [h for (c, h), n in zip(sessions, got) if n != 2]
        assert not lost, f"{len(lost)} of 120 sessions lost their count: {lost[:10]}"
    finally:
        cl.stop()


def test_1010_03_two_successive_failures_sync(module_path):
    """4 nodes, sync: kill one, wait for full backup coverage, kill another:
    every session's count continues exactly."""
    cl = BackupCluster(module_path, "twofail", 4, mode="sync")
    try:
        cl.start_all()
        per_node = parallel([lambda e=e: [new_session(e, f"f-{e.route}-{i}", 3)
                                          for i in range(10)] for e in cl.envs])
        sessions = [s for lst in per_node for s in lst]
        expect = {h: 3 for _, h in sessions}
        wait_placement(cl, SETTLE, "40 sessions placed")

        first = cl.env("node2")
        t0 = time.monotonic()
        cl.kill_now(first)
        cl.reap(first)

        def covered(views):
            return [f"{r}: SessionsWithoutBackup {v.auto.get('SessionsWithoutBackup')}"
                    for r, v in views.items() if v.num("SessionsWithoutBackup") != 0]
        took, views = wait_placement(cl, HEAL, "full backup coverage after node2 died",
                                     extra=covered)
        print(f"\nnode2 killed: full backup coverage restored "
              f"{(time.monotonic() - t0) * 1000:.0f} ms after the kill")
        assert len({e.h for v in views.values() for e in v.entries}) == 40

        second = cl.env("node3")
        cl.kill_now(second)
        t1 = time.monotonic()
        live = [cl.env("node1"), cl.env("node4")]

        # the clients' next requests, at once (drop handling may run meanwhile):
        # to the node in the cookie if it lives, else alternately to the survivors
        def next_request(i, c, h):
            route = split_id(c.jar[COOKIE_NAME])[1]
            env = cl.env(route) if route in ("node1", "node4") else live[i % 2]
            return count(c, env)
        got = parallel([lambda i=i, c=c, h=h: next_request(i, c, h)
                        for i, (c, h) in enumerate(sessions)], workers=4)
        first_ms = (time.monotonic() - t1) * 1000
        wrong = [(h, n, expect[h] + 1) for (c, h), n in zip(sessions, got) if n != expect[h] + 1]
        assert not wrong, f"after the second failure {len(wrong)} of 40 counts did not go " \
                          f"on (hash, got, expected): {wrong[:10]}"
        cl.reap(second)
        took, views = wait_placement(cl, HEAL, "placement on node1+node4 after node3 died")
        for v in views.values():
            assert v.num("SessionsPrimary") + v.num("SessionsBackup") == 40, dump(views)
        print(f"node3 killed: 40 requests served in {first_ms:.0f} ms, counts exact; "
              f"settled {(time.monotonic() - t1) * 1000:.0f} ms after the kill\n{dump(views)}")
        again = parallel([lambda c=c, h=h: count(c, cl.env(location(views, h)[0]))
                          for c, h in sessions], workers=4)
        assert again == [5] * 40, f"counts after settling: {again}"
    finally:
        cl.stop()
