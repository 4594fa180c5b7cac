"""Restarts under ack/sync load: a 200 still means what it says, and no save
is answered 503 because clusterd was being replaced.

Every restart ends the generation's clusterd (SIGTERM) and starts another,
while the old generation's children are still saving. Two prefork delta
nodes (mod_cgi: no CGI daemon restarted with them), four clients saving on
node1 all along, node1 restarted gracefully ten times (each time waiting on
the facts the module exposes: a new ClusterdStarts, node2 up again, saves
going on).

Proved: every request answers 200 with the next count (before, a save in
flight when the old clusterd died, or posted before the new one ran, was
answered 503 and undone locally, though the members may have applied it:
CI saw it in test_880); every restart's clusterd stopped in order (its log
line, no warning); and node2 holds every session at the last acknowledged
count.
"""

import re
import threading
import time

import pytest

from pyhttpd import Client, HttpdEnv
from pyhttpd.cluster import (cluster_conf, member_states, start_env, status,
                             stop_env, wait_for)

COUNTER = "/cgi/counter.cgi"
ECHO = "/cgi/echo.cgi"
CLIENTS = 4
RESTARTS = 10
LIMIT = 30.0
STOPPED = re.compile(r"clusterd: stopping: every change taken was answered and "
                     r"sent in (\d+) ms")
STOPPED_LATE = re.compile(r"clusterd: stopping after \d+ ms with .*")
FAILED_SAVE = re.compile(r"clusterd did not take the change.*|died before answering.*|"
                         r"the channel to clusterd stayed full.*")


@pytest.fixture(params=["sync", "ack"])
def pair(request, module_path):
    envs = [HttpdEnv(f"rr-{r}", mpm="prefork", module=module_path, route=r)
            for r in ("node1", "node2")]
    members = [(e.route, e.cluster_addr) for e in envs]
    try:
        for e in envs:
            start_env(e, cluster_conf(e, members=members, send_mode=request.param))
        wait_for(lambda: all(member_states(e).get(o.route) == "up"
                             for e in envs for o in envs if o is not e),
                 LIMIT, "both members up on both nodes")
        yield envs, request.param
    finally:
        for e in envs:
            stop_env(e)


class Savers:
    """CLIENTS threads, each incrementing its own session on `env` until
    stopped (bounded in count and time), recording every non-200."""

    def __init__(self, env, rounds=2000, seconds=120.0):
        self.clients = [Client(env, f"rr{i}") for i in range(CLIENTS)]
        self.last = [0] * CLIENTS
        self.errors, self.gaps = [], []
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i, rounds, seconds),
                                         daemon=True) for i in range(CLIENTS)]

    def run(self, i, rounds, seconds):
        c, deadline = self.clients[i], time.monotonic() + seconds
        for _ in range(rounds):
            if self.halt.is_set() or time.monotonic() > deadline:
                return
            try:
                r = c.get(COUNTER, timeout=10)
            except Exception as e:          # reported by the test
                self.errors.append((i, repr(e)))
                continue
            if r.status != 200:
                self.errors.append((i, r.status))
                continue
            n = int(r.kv()["count"])
            if n != self.last[i] + 1:
                self.gaps.append((i, self.last[i], n))
            self.last[i] = n

    def total(self):
        return sum(self.last)

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in self.threads), "a saver hung"


def held_count(env, client):
    """The count env holds for client's session, read without saving."""
    r = Client(env, "reader").get(ECHO, cookies=client.cookie_header(),
                                  update_jar=False, timeout=10)
    assert r.status == 200, f"{env.name}: {ECHO} answered {r}"
    m = re.search(r"(?:^|&)count=(\d+)", r.kv().get("session", ""))
    return int(m.group(1)) if m else None


def test_310_01_graceful_restarts_under_load_answer_every_save(pair):
    (node1, node2), mode = pair
    mark = {e: e.error_log_size() for e in (node1, node2)}
    savers = Savers(node1)
    stop_ms = []
    savers.start()
    try:
        wait_for(lambda: savers.total() >= 20 or savers.errors, LIMIT,
                 "the saves are under way")
        for k in range(RESTARTS):
            starts = int(status(node1)[0]["ClusterdStarts"])
            done = savers.total()
            node1.graceful()
            wait_for(lambda: int(status(node1)[0]["ClusterdStarts"]) > starts
                     and member_states(node1).get("node2") == "up", LIMIT,
                     f"restart {k + 1}: a new clusterd with node2 up")
            wait_for(lambda: savers.total() >= done + 4 * CLIENTS or savers.errors,
                     LIMIT, f"restart {k + 1}: saves go on ({savers.errors[-3:]})")
    finally:
        savers.stop()
    text = node1.error_log_text(mark[node1])
    stop_ms = [int(m.group(1)) for m in STOPPED.finditer(text)]
    print(f"\n{mode}: {RESTARTS} graceful restarts of node1 under {CLIENTS} saving "
          f"clients: {savers.total()} saves answered 200, {len(savers.errors)} failed; "
          f"old clusterd stopped in order in {stop_ms} ms")
    assert not savers.errors, (f"saves failed across the restarts: {savers.errors[:10]}"
                               f"\n{FAILED_SAVE.findall(text)[:5]}")
    assert not savers.gaps, f"counts not following the last one: {savers.gaps[:10]}"
    assert not STOPPED_LATE.findall(text), STOPPED_LATE.findall(text)
    assert len(stop_ms) == RESTARTS, \
        f"{len(stop_ms)} orderly stops logged for {RESTARTS} restarts"
    # node2 holds what node1 acknowledged (sync: applied; ack: received,
    # applied a moment later)
    for i, c in enumerate(savers.clients):
        wait_for(lambda: held_count(node2, c) == savers.last[i], LIMIT,
                 f"node2 holds session {i} at {savers.last[i]} "
                 f"(has {held_count(node2, c)})")
