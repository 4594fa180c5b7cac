"""Rolling rotation of the cluster key (issue 9) under sync load, on loopback.

Three delta nodes (prefork MPM: mod_cgi, no CGI daemon restarted by the
graceful restarts), `ClusterSendMode sync`, all holding key A. A client keeps
incrementing a few sessions, each request on the next node. Then, node by
node with a graceful restart each (it reads the key files again):

  step 1: `ClusterSecretFile B A`  (offers B, still accepts A)
  step 2: `ClusterSecretFile B`

after each restart waiting until the node's new clusterd has linked with
both others both ways (the debug lines `connected to member` /
`member X connected from ... (key K)`) and every node shows every member up.

Proved: no member is ever shown `auth-failed` during the rotation (polled
all along, and looked at between restarts) and no link logs a refusal; no
request fails; every node ends holding exactly the acknowledged increments;
each link used the key it should (A while one end holds only A, then B;
the key ids are computed here from the key material); and afterwards a node
holding only A is refused `auth-failed` both ways: B is really in use.
"""

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from pyhttpd import Client, HttpdEnv
from pyhttpd.cluster import (StatusWatch, cluster_conf, member_reasons,
                             member_states, start_env, stop_env, wait_for)
from pyhttpd.wire import material_key_id

ROUTES = ("node1", "node2", "node3")
COUNTER = "/cgi/counter.cgi"
ECHO = "/cgi/echo.cgi"
LIMIT = 20.0            # bound of every poll (generous: the machine is shared)
CONNECTED_IN = re.compile(r"clusterd: member (\S+) connected from (\S+) \(key ([0-9a-f]{8})\)")
LINK_REFUSED = re.compile(r"clusterd: member (\S+) \(\S+\) refused: (\S+):")
SERVER_REFUSED_KEY = re.compile(r"refused a peer connection from \S+: authentication failed: "
                                r"it offers key ([0-9a-f]{8}), this node holds ([0-9a-f, ]+?) ")


# ------------------------------------------------------------------ helpers

def write_key(path, material: bytes):
    """A key file as `openssl rand -hex 32` writes it, mode 0600."""
    path.write_text(material.hex() + "\n")
    os.chmod(path, 0o600)
    return path


def tails(*envs, n=25):
    return "\n".join(f"--- {e.name} error log tail:\n{e.error_log_tail(n)}" for e in envs)


class Trio:
    """node1..node3 on loopback; each node's ClusterSecretFile in `keys`."""

    def __init__(self, module_path):
        # prefork (mod_cgi): with the event MPM, mod_cgid restarts its CGI
        # daemon on every graceful restart and a CGI request caught in it
        # fails with 503 (httpd's behaviour, see test_300); here every
        # request must succeed
        self.envs = [HttpdEnv(f"rot-{r}", mpm="prefork", module=module_path, route=r)
                     for r in ROUTES]
        self.members = [(e.route, e.cluster_addr) for e in self.envs]
        d = HttpdEnv.base_dir() / f"rotation-{os.getpid()}-{time.monotonic_ns()}"
        d.mkdir()
        self.material = {"A": os.urandom(32), "B": os.urandom(32)}
        self.path = {k: str(write_key(d / f"key-{k}", m)) for k, m in self.material.items()}
        self.id = {k: material_key_id(m) for k, m in self.material.items()}
        self.keys = {e.route: ("A",) for e in self.envs}    # newest first

    def conf(self, env):
        files = " ".join(self.path[k] for k in self.keys[env.route])
        return cluster_conf(env, members=self.members, send_mode="sync", secret_file=files)

    def start(self, env):
        start_env(env, self.conf(env))

    def everyone_up(self):
        return all(all(s == "up" for r, s in member_states(e).items() if r != e.route)
                   and len(member_states(e)) == len(self.envs) for e in self.envs)

    def stop(self):
        for e in self.envs:
            stop_env(e)


@pytest.fixture
def trio(module_path):
    t = Trio(module_path)
    try:
        with ThreadPoolExecutor(max_workers=3) as ex:
            for f in [ex.submit(t.start, e) for e in t.envs]:
                f.result()
        wait_for(t.everyone_up, LIMIT, f"3 members up everywhere\n{tails(*t.envs)}")
        yield t
    finally:
        t.stop()


class Load(threading.Thread):
    """Counter requests on `sessions` sessions, session s's j-th request on
    envs[(j + s) % 3]: every session visits every node in turn. Bounded in
    rounds and time; stop() ends it."""

    def __init__(self, envs, sessions=3, rounds=3000, seconds=120.0):
        super().__init__(daemon=True)
        self.envs, self.rounds, self.seconds = envs, rounds, seconds
        self.clients = [Client(envs[0], f"rot{s}") for s in range(sessions)]
        self.ok = [0] * sessions
        self.last = [0] * sessions
        self.errors, self.gaps = [], []
        self.halt = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.seconds
        for j in range(self.rounds):
            if self.halt.is_set() or time.monotonic() > deadline:
                return
            for s, c in enumerate(self.clients):
                env = self.envs[(j + s) % len(self.envs)]
                c.env = env
                try:
                    r = c.get(COUNTER, timeout=10)
                except requests.RequestException as e:
                    self.errors.append((time.monotonic(), s, env.route, repr(e)))
                    continue
                if r.status != 200:
                    self.errors.append((time.monotonic(), s, env.route, r.status))
                    continue
                n = int(r.kv()["count"])
                if n != self.last[s] + 1:
                    self.gaps.append((time.monotonic(), s, env.route, self.last[s], n))
                self.last[s] = n
                self.ok[s] += 1
            self.halt.wait(0.01)

    def stop(self):
        self.halt.set()
        self.join(timeout=30)
        assert not self.is_alive(), "the load thread did not end"


def auth_failed(env):
    """{route: "auth-failed"} of the members env shows refused for the key."""
    return {r: why for r, why in member_reasons(env).items() if why == "auth-failed"}


def inbound_keys(env, offset, route):
    """Key ids of the connections member `route` made to env since offset."""
    return [m.group(3) for m in CONNECTED_IN.finditer(env.error_log_text(offset))
            if m.group(1) == route]


def relinked(trio, env, marks):
    """env's new clusterd connected to both others, and both others to it."""
    others = [o for o in trio.envs if o is not env]
    text = env.error_log_text(marks[env])
    return (all(f"connected to member {o.route} (" in text for o in others)
            and all(inbound_keys(env, marks[env], o.route) for o in others)
            and all(inbound_keys(o, marks[o], env.route) for o in others))


def expected_key(trio, client, server):
    """The key a link from `client` to `server` must end up using: the
    client's newest one the server holds."""
    held = trio.keys[server.route]
    return trio.id[next(k for k in trio.keys[client.route] if k in held)]


def no_auth_failed_now(trio):
    for e in trio.envs:
        bad = {r: why for r, why in member_reasons(e).items() if why == "auth-failed"}
        assert not bad, f"{e.route} shows {bad} during the rotation\n{tails(*trio.envs)}"


def held_count(env, client):
    r = Client(env, "reader").get(ECHO, cookies=client.cookie_header(), update_jar=False,
                                  timeout=10)
    assert r.status == 200, f"{env.name}: {ECHO} answered {r}"
    m = re.search(r"(?:^|&)count=(\d+)", r.kv().get("session", ""))
    return int(m.group(1)) if m else None


# ------------------------------------------------------------------ the test

def test_880_01_rolling_rotation_under_sync_load(trio):
    envs = trio.envs
    start_mark = {e: e.error_log_size() for e in envs}
    load = Load(envs)
    watch = StatusWatch(envs, auth_failed, seconds=120.0)
    steps, links = [], []
    load.start()
    watch.start()
    try:
        wait_for(lambda: sum(load.ok) >= 9, LIMIT, "the load is under way")
        for step, keys in ((1, ("B", "A")), (2, ("B",))):
            t_step = time.monotonic()
            for env in envs:
                t0 = time.monotonic()
                marks = {e: e.error_log_size() for e in envs}
                trio.keys[env.route] = keys
                trio.conf(env).install()
                env.graceful()
                wait_for(lambda: relinked(trio, env, marks) and trio.everyone_up(), LIMIT,
                         f"step {step}: {env.route} with keys {keys} linked both ways with "
                         f"both others and every member up\n{tails(*envs)}")
                relink = time.monotonic() - t0
                no_auth_failed_now(trio)
                # every session visits every node a few times in this state
                done = sum(load.ok)
                wait_for(lambda: sum(load.ok) >= done + 30, LIMIT,
                         f"step {step}: the load goes on after {env.route}'s restart "
                         f"({load.errors[-3:]})")
                no_auth_failed_now(trio)
                for o in envs:
                    if o is env:
                        continue
                    for client, server in ((env, o), (o, env)):
                        used = inbound_keys(server, marks[server], client.route)
                        want = expected_key(trio, client, server)
                        assert used and all(k == want for k in used), \
                            (f"step {step}: {client.route} -> {server.route} used keys "
                             f"{used}, expected {want} (A={trio.id['A']}, B={trio.id['B']})")
                        links.append((step, client.route, server.route, used[-1]))
                steps.append((step, env.route, relink))
            steps.append((step, "in all (with 30 increments after each)",
                          time.monotonic() - t_step))
    finally:
        load.stop()
        watch.stop()
    print(f"\nkeys A={trio.id['A']} B={trio.id['B']}; rotation under sync load, graceful "
          f"restart to relinked both ways and all up: "
          + ", ".join(f"step {s} {r} {t:.2f}s" for s, r, t in steps))
    print(f"{sum(load.ok)} acknowledged increments on {len(load.ok)} sessions, "
          f"{len(load.errors)} failed requests, {len(load.gaps)} counts not following the "
          f"last one; {watch.looks} looks at every ?auto")
    refusals = [(e.route, m.groups()) for e in envs
                for m in SERVER_REFUSED_KEY.finditer(e.error_log_text(start_mark[e]))]
    print(f"servers' rate-limited refusals of a client's first offer "
          f"(node, (offered, held)): {refusals}")

    assert watch.looks >= 6, f"the watcher looked only {watch.looks} times"
    assert not watch.notes, \
        f"members shown auth-failed during the rotation: {watch.notes[:5]}"
    assert not watch.failures, f"?auto failed during the rotation: {watch.failures[:5]}"
    for e in envs:
        refused = [m.group(0) for m in LINK_REFUSED.finditer(e.error_log_text(start_mark[e]))]
        assert not refused, f"{e.route}: a link was refused during the rotation: {refused}"
    assert not load.errors, f"failed requests during the rotation: {load.errors[:10]}"
    assert not load.gaps, \
        (f"a count did not follow the last acknowledged one (t, session, node, last, got): "
         f"{load.gaps[:10]}")
    for s, c in enumerate(load.clients):
        for e in envs:
            held = held_count(e, c)
            assert held == load.ok[s], \
                (f"session {s}: {e.route} holds count={held}, {load.ok[s]} increments "
                 f"were acknowledged\n{tails(e)}")
    # every link uses B now
    assert all(k == trio.id["B"] for step, _, _, k in links if step == 2), links

    # a node holding only A is refused: B is really in use
    n1, n2, n3 = envs
    marks = {e: e.error_log_size() for e in envs}
    t0 = time.monotonic()
    trio.keys["node3"] = ("A",)
    trio.conf(n3).install()
    n3.graceful()
    took = wait_for(lambda: member_reasons(n1).get("node3") == "auth-failed"
                    and member_reasons(n2).get("node3") == "auth-failed"
                    and member_reasons(n3).get("node1") == "auth-failed"
                    and member_reasons(n3).get("node2") == "auth-failed", LIMIT,
                    f"node3 holding only A and node1, node2 holding only B refuse each "
                    f"other auth-failed\n{tails(*envs)}")
    for e in (n1, n2):
        wait_for(lambda: any(m.groups() == (trio.id["A"], trio.id["B"]) for m in
                             SERVER_REFUSED_KEY.finditer(e.error_log_text(marks[e]))), LIMIT,
                 f"{e.route} logs refusing node3's key A ({trio.id['A']}), holding B "
                 f"({trio.id['B']})\n{tails(e)}")
    states = {e.route: member_states(e) for e in envs}
    assert states["node1"]["node2"] == "up" and states["node2"]["node1"] == "up", states
    print(f"node3 back on key A alone: refused auth-failed both ways "
          f"{time.monotonic() - t0:.2f}s after its graceful restart ({took:.2f}s polling)")
