"""A backup-manager cluster on loopback (BackupCluster) and the placement views
the tests read it by: every node's `/cluster-manager?sessions` entries and
`?auto` values (NodeView), whether they form a settled placement
(placement_problems, wait_placement), where a session is (location); plus the
bounds the backup tests poll with (LIMIT, SETTLE, HEAL)."""

import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from .client import Client
from .cluster import (COOKIE_NAME, Cluster, cluster_conf, count, session_entries, session_hash,
                      split_id, status, status_full, wait_for)
from .env import _pid_alive

LIMIT = 10.0          # members seeing each other / a drop
SETTLE = 5.0          # placement consistent after a request or a creation
HEAL = 10.0           # placement consistent after a member drop, without requests


def routes(n):
    return tuple(f"node{i}" for i in range(1, n + 1))


def parallel(fns, workers=None):
    """Run the callables in threads; their results in order (exceptions re-raised)."""
    if not fns:
        return []
    with ThreadPoolExecutor(max_workers=workers or len(fns)) as ex:
        futures = [ex.submit(f) for f in fns]
        return [f.result() for f in futures]


class BackupCluster(Cluster):
    """n nodes node1..nodeN on loopback (event MPM), `ClusterManager backup` by default."""

    def __init__(self, module_path, name, n, mode="sync", manager="backup"):
        super().__init__(module_path, name, routes(n), mode=mode)
        self.manager = manager

    def conf(self, env):
        return cluster_conf(env, members=self.members, send_mode=self.mode,
                            manager=self.manager)

    def start_all(self):
        """node1 first (it serves as the first node), then the others in parallel
        (they join and receive from it); every node sees every other one up."""
        first, rest = self.envs[0], self.envs[1:]
        self.start(first)
        parallel([lambda e=e: self.start(e) for e in rest])
        wait_for(self.live_up, LIMIT, f"{self.manager}: all {len(self.envs)} members up")
        # Each clusterd acts on a member coming up a moment after ?auto shows it
        # up (its watcher runs every 100 ms, after the node's own join), and the
        # backup manager then hands every k-th of its backups to that member. A
        # session created before that pass may see its backup moved (allowed:
        # "existing backups MAY be rebalanced"), which would blur the round-robin
        # and byte counts measured here: let those passes run first. The module
        # says when: MemberChangesPending 0 on every node.
        wait_for(lambda: self.live_up() and self.members_acted(), LIMIT,
                 f"{self.manager}: every node acted on its members coming up")

    def members_acted(self):
        """Every live node's clusterd has acted on every member change it saw
        (passes run, merges started): MemberChangesPending 0."""
        return all(status(e)[0].get("MemberChangesPending") == "0" for e in self.live())

    def env(self, route):
        return next(e for e in self.envs if e.route == route)

    def live(self):
        return [e for e in self.envs if e.is_running()]

    def live_up(self):
        """Every live node sees exactly the live nodes up."""
        live = {e.route for e in self.live()}
        for e in self.live():
            up = {r for r, _, s in status(e)[1] if s == "up"}
            if up != live:
                return False
        return True

    def kill_now(self, env):
        """SIGKILL the node's whole process group (parent, children, clusterd), like
        a crash; returns once the parent is gone (the pid file is left: reap())."""
        pid = env.pid()
        os.killpg(pid, signal.SIGKILL)
        for _ in range(100):                     # bounded: 2 s
            if not _pid_alive(pid):
                break
            time.sleep(0.02)
        assert not _pid_alive(pid), f"{env.name}: pid {pid} survived SIGKILL"

    def reap(self, env):
        env.stop()                                # clears the pid file


# ------------------------------------------------------------------ placement views

class NodeView:
    """What one node reports: ?auto values, members, distribution, ?sessions entries."""

    def __init__(self, env):
        self.route = env.route
        self.auto, self.members, self.dist = status_full(env)
        self.entries = session_entries(env)
        self.up = {r for r, _, s in self.members if s == "up"}

    def of(self, h):
        return [e for e in self.entries if e.h == h]

    def num(self, key):
        v = self.auto.get(key)
        return int(v) if v is not None and v.isdigit() else None


def cluster_view(cl):
    """{route: NodeView} of the live nodes."""
    live = cl.live()
    return dict(zip([e.route for e in live], parallel([lambda e=e: NodeView(e) for e in live])))


def node_problems(v):
    """A node's ?auto must agree with its own ?sessions."""
    problems = []
    roles = Counter(e.role for e in v.entries)
    for role, key in (("primary", "SessionsPrimary"), ("backup", "SessionsBackup"),
                      ("proxy", "SessionsProxy")):
        if v.num(key) != roles[role]:
            problems.append(f"{v.route}: ?auto {key}: {v.auto.get(key)} but ?sessions "
                            f"lists {roles[role]} {role} entries")
    pairs = dict(Counter((e.primary, e.backup) for e in v.entries))
    if pairs != v.dist:
        problems.append(f"{v.route}: ?auto Distribution {sorted(v.dist.items())} != "
                        f"(primary, backup) pairs of its ?sessions {sorted(pairs.items())}")
    without = sum(1 for e in v.entries
                  if e.role == "primary" and (e.backup == "-" or e.backup not in v.up))
    if v.num("SessionsWithoutBackup") != without:
        problems.append(f"{v.route}: ?auto SessionsWithoutBackup: "
                        f"{v.auto.get('SessionsWithoutBackup')} but ?sessions lists "
                        f"{without} primaries whose backup is '-' or down")
    dup = [h for h, n in Counter(e.h for e in v.entries).items() if n > 1]
    if dup:
        problems.append(f"{v.route}: several ?sessions entries for {dup[:5]}")
    return problems


def placement_problems(views):
    """Everything that is not a settled backup-manager placement, as sentences.

    Settled: on every live node ?auto agrees with ?sessions; no primary lacks a
    backup; every live session has exactly one primary entry and one backup
    entry, on two distinct live nodes; every other live node has a proxy entry;
    all nodes agree on (primary, backup); the backup has the primary's version.
    """
    live = set(views)
    problems = []
    for v in views.values():
        problems += node_problems(v)
        if v.num("SessionsWithoutBackup"):
            problems.append(f"{v.route}: SessionsWithoutBackup {v.auto['SessionsWithoutBackup']}")
    hashes = sorted({e.h for v in views.values() for e in v.entries})
    for h in hashes:
        held = {r: v.of(h)[0] for r, v in views.items() if v.of(h)}
        where = " ".join(f"{r}:{e.role}({e.primary},{e.backup},v{e.version})"
                         for r, e in sorted(held.items()))
        prim = [r for r, e in held.items() if e.role == "primary"]
        back = [r for r, e in held.items() if e.role == "backup"]
        if len(prim) != 1 or len(back) != 1:
            problems.append(f"{h}: {len(prim)} primary and {len(back)} backup entries: {where}")
            continue
        p, b = prim[0], back[0]
        if set(held) != live:
            problems.append(f"{h}: no entry on {sorted(live - set(held))}: {where}")
        locs = {(e.primary, e.backup) for e in held.values()}
        if locs != {(p, b)}:
            problems.append(f"{h}: held as primary by {p}, backup by {b}, but the nodes "
                            f"say {sorted(locs)}: {where}")
        if held[p].version != held[b].version:
            problems.append(f"{h}: backup {b} has v{held[b].version}, primary {p} "
                            f"v{held[p].version}")
    return problems


def wait_placement(cl, limit, what, extra=None):
    """Poll (bounded) until placement_problems() (+ extra(views)) is empty.
    Returns (seconds, views); fails with the last problems otherwise."""
    start = time.monotonic()
    problems = ["never looked"]
    while True:
        views = cluster_view(cl)
        problems = placement_problems(views) + (extra(views) if extra else [])
        took = time.monotonic() - start
        if not problems:
            return took, views
        if took > limit:
            break
        time.sleep(0.1)
    pytest.fail(f"not within {limit}s: {what}; {len(problems)} problem(s), first:\n  "
                + "\n  ".join(problems[:25]), pytrace=False)


def location(views, h):
    """(primary, backup, {route: role}) of session h in settled views."""
    roles = {r: v.of(h)[0].role for r, v in views.items() if v.of(h)}
    p = next(r for r, role in roles.items() if role == "primary")
    b = next(r for r, role in roles.items() if role == "backup")
    return p, b, roles


def new_session(env, name, n=1):
    """A client whose session was created on env, counted to n; (client, hash)."""
    c = Client(env, name)
    for i in range(1, n + 1):
        assert count(c, env) == i, f"{env.route}: new session {name}"
    base, route = split_id(c.jar[COOKIE_NAME])
    assert route == env.route, f"session created on {env.route} carries route {route}"
    return c, session_hash(base)


def dump(views):
    """A compact picture of the cluster for messages and -s output."""
    lines = []
    for r, v in sorted(views.items()):
        lines.append(f"{r}: primary {v.auto.get('SessionsPrimary')} backup "
                     f"{v.auto.get('SessionsBackup')} proxy {v.auto.get('SessionsProxy')} "
                     f"without-backup {v.auto.get('SessionsWithoutBackup')} "
                     f"dist {sorted(v.dist.items())}")
    return "\n".join(lines)
