"""Helpers specific to mod_session_cluster: id format, status parsing, readiness;
Cluster (a set of member nodes on loopback) and the counter client helpers
count() and route_of()."""

import hashlib
import os
import re
import secrets
import signal
import string
import threading
import time

import pytest
import requests

from .conf import HttpdConf
from .env import HttpdEnv, _pid_alive, process_states

COOKIE_NAME = "JSESSIONID"
BASE_RE = re.compile(r"^[A-Za-z0-9_-]{24}$")
ID_RE = re.compile(r"^(?P<base>[A-Za-z0-9_-]{24})\.(?P<route>[A-Za-z0-9_-]{1,31})$")

MANAGER_PATH = "/cluster-manager"
COUNTER = "/cgi/counter.cgi"


def random_base() -> str:
    """A well-formed id base (24 x [A-Za-z0-9_-]) that the server never issued."""
    alphabet = string.ascii_letters + string.digits + "-_"
    return "".join(secrets.choice(alphabet) for _ in range(24))


def split_id(value: str):
    """(base, route) of a session cookie value, or None if not well-formed."""
    m = ID_RE.match(value or "")
    return (m.group("base"), m.group("route")) if m else None


def parse_auto(text: str):
    """Parse `?auto` output: (dict of single keys, list of member tuples).

    `Member: <route> <host:port> up|down [reason]` lines are collected as
    (route, address, state) tuples (member_reasons() has the reasons), all
    other `Key: value` lines into the dict.
    `Distribution:` lines (repeated, backup manager) are left to
    parse_distribution(), `MemberQueue:` lines to member_queues().
    """
    values, members = {}, []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, val = line.partition(":")
        assert sep, f"?auto line without 'Key: value' form: {line!r}"
        key, val = key.strip(), val.strip()
        if key in ("Distribution", "MemberQueue"):
            continue
        if key == "Member":
            parts = val.split()
            assert len(parts) in (3, 4) and parts[2] in ("up", "down"), \
                f"bad Member line: {line!r}"
            assert len(parts) == 3 or parts[2] == "down", \
                f"a reason on an up member: {line!r}"
            members.append(tuple(parts[:3]))
        else:
            assert key not in values, f"?auto key {key} repeated"
            values[key] = val
    return values, members


def parse_distribution(text: str):
    """`Distribution: <primary> <backup>|- <count>` lines of `?auto` (backup
    manager) as {(primary, backup): count}; backup is "-" when there is none."""
    dist = {}
    for line in text.splitlines():
        key, sep, val = line.partition(":")
        if key.strip() != "Distribution":
            continue
        parts = val.split()
        assert len(parts) == 3 and parts[2].isdigit(), f"bad Distribution line: {line!r}"
        pair = (parts[0], parts[1])
        assert pair not in dist, f"Distribution pair {pair} repeated: {text}"
        dist[pair] = int(parts[2])
    return dist


def status_full(env):
    """(values, members, distribution) of `?auto` (see parse_auto, parse_distribution)."""
    r = manager_get(env, "auto")
    assert r.status_code == 200, f"?auto answered {r.status_code}: {r.text[:500]}"
    values, members = parse_auto(r.text)
    return values, members, parse_distribution(r.text)


SESSION_HASH_RE = re.compile(r"^[0-9a-f]{12}$")
ROUTE_RE = re.compile(r"^[A-Za-z0-9_-]{1,31}$")
ROLES = ("primary", "backup", "proxy")


class SessionEntry:
    """One `Session: <h> <role> <primary> <backup> <version>` line of `?sessions`."""
    __slots__ = ("h", "role", "primary", "backup", "version")

    def __init__(self, h, role, primary, backup, version):
        self.h, self.role, self.primary = h, role, primary
        self.backup, self.version = backup, version

    def __repr__(self):
        return f"Session({self.h} {self.role} {self.primary} {self.backup} v{self.version})"


def session_hash(base: str) -> str:
    """How `?sessions` names a session: the first 12 hex chars of sha256(<id base>)."""
    return hashlib.sha256(base.encode("ascii")).hexdigest()[:12]


def parse_sessions(text: str):
    """`?sessions` output as a list of SessionEntry (strictly checked)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, val = line.partition(":")
        assert sep and key == "Session", f"?sessions line is not 'Session: ...': {line!r}"
        parts = val.split()
        assert len(parts) == 5, f"?sessions line needs 5 fields: {line!r}"
        h, role, primary, backup, version = parts
        assert SESSION_HASH_RE.match(h), f"?sessions: bad session hash {h!r}: {line!r}"
        assert role in ROLES, f"?sessions: role {role!r} not one of {ROLES}: {line!r}"
        assert ROUTE_RE.match(primary), f"?sessions: bad primary {primary!r}: {line!r}"
        assert backup == "-" or ROUTE_RE.match(backup), \
            f"?sessions: bad backup {backup!r}: {line!r}"
        assert version.isdigit(), f"?sessions: version {version!r} not a number: {line!r}"
        out.append(SessionEntry(h, role, primary, backup, int(version)))
    return out


def session_entries(env):
    """This node's `?sessions` entries (loopback-only plain text)."""
    r = manager_get(env, "sessions")
    assert r.status_code == 200, f"{env.name}: ?sessions answered {r.status_code}: {r.text[:300]}"
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("text/plain"), \
        f"{env.name}: ?sessions Content-Type {ctype!r}, body starts {r.text[:200]!r}"
    return parse_sessions(r.text)


def json_scalar(v) -> str:
    """Normalise a JSON scalar to the ?auto string form (true -> 1)."""
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def manager_get(env, query="", timeout=20):
    url = env.url(MANAGER_PATH + (f"?{query}" if query else ""))
    return requests.get(url, timeout=timeout, headers={"Connection": "close"})


def status(env):
    r = manager_get(env, "auto")
    assert r.status_code == 200, f"?auto answered {r.status_code}: {r.text[:500]}"
    return parse_auto(r.text)


def member_states(env):
    """{route: "up"|"down"} of every member env's status page lists."""
    _, members = status(env)
    return {route: state for route, _addr, state in members}


def member_reasons(env):
    """{route: reason} of the members env's `?auto` shows down with a reason
    (`Member: <route> <addr> down <reason>`, e.g. auth-failed)."""
    r = manager_get(env, "auto")
    assert r.status_code == 200, f"?auto answered {r.status_code}: {r.text[:500]}"
    out = {}
    for line in r.text.splitlines():
        key, _, val = line.partition(":")
        parts = val.split()
        if key.strip() == "Member" and len(parts) == 4:
            out[parts[0]] = parts[3]
    return out


def member_queues(env):
    """{route: (changes queued, bytes queued, changes not queued, batches)}
    of every other member's link (`MemberQueue:` lines of `?auto`)."""
    r = manager_get(env, "auto")
    assert r.status_code == 200, f"?auto answered {r.status_code}: {r.text[:500]}"
    out = {}
    for line in r.text.splitlines():
        key, _, val = line.partition(":")
        if key.strip() == "MemberQueue":
            route, *nums = val.split()
            assert len(nums) == 4, f"bad MemberQueue line: {line!r}"
            out[route] = tuple(int(n) for n in nums)
    return out


def all_see(envs, route, state):
    """Every env but `route` itself shows member `route` in `state`."""
    return all(member_states(e).get(route) == state for e in envs if e.route != route)


def write_secret_file(path):
    """A ClusterSecretFile (64 hex digits) readable by its owner only."""
    path.write_text(secrets.token_hex(32) + "\n")
    os.chmod(path, 0o600)
    return path


def wait_ready(env, timeout=20.0):
    """Poll ?ready until 200 (bounded). Returns the last status code."""
    deadline = time.monotonic() + timeout
    code = None
    for _ in range(int(timeout / 0.1) + 1):
        try:
            code = manager_get(env, "ready", timeout=5).status_code
        except requests.RequestException:
            code = None
        if code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return code


def cluster_conf(env, members=None, manager_handler=True, session_path="/",
                 **cluster_kw):
    """The standard single-node config: cluster directives + session on `/`."""
    conf = HttpdConf(env)
    if members is None:
        members = [(env.route, env.cluster_addr)]
    conf.add_cluster(members=members, **cluster_kw)
    conf.add_session_location(session_path)
    if manager_handler:
        conf.add_manager()
    return conf


def start_env(env, conf):
    """Install `conf`, start the server and wait until the cluster is ready."""
    conf.install()
    r = env.configtest()
    assert r.rc == 0, f"config test failed for {env.name}: {r.output}"
    env.start()
    code = wait_ready(env)
    assert code == 200, (f"{env.name}: /cluster-manager?ready answered {code} "
                         f"after 20s\n{env.error_log_tail()}")
    return env


def stop_env(env):
    """Stop a server and fail if stopping it revealed a crash."""
    if env.is_running():
        env.stop()
    crashes = env.check_crashes()
    if crashes:
        pytest.fail(f"{env.name}: crash signatures in error log on shutdown:\n"
                    + "\n".join(crashes), pytrace=False)


def run_threads(target, args_list, limit, what):
    """Run target(*args) for each args in threads at once; fail if any is
    still running after `limit` seconds."""
    threads = [threading.Thread(target=target, args=args, daemon=True)
               for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=limit)
    assert not any(t.is_alive() for t in threads), f"{what} hung"


def wait_for(predicate, limit, what):
    """Poll (bounded) until predicate() holds; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    pytest.fail(f"not within {limit}s: {what}")


class GroupControl:
    """Freeze, thaw and crash a node's whole process group (parent, children,
    clusterd, cgid) by its pid file's PID; a mixin for test beds, which keep
    the frozen envs in self.frozen so teardown can thaw them."""

    def freeze(self, env):
        """SIGSTOP the group; returns once every process in it is stopped."""
        pgid = env.pid()
        os.killpg(pgid, signal.SIGSTOP)
        self.frozen.add(env)
        wait_for(lambda: (process_states("pgrp", pgid)
                          and all(s == "T" for _, s in process_states("pgrp", pgid))),
                 5, f"{env.name}: every process of group {pgid} stopped: "
                    f"{process_states('pgrp', pgid)}")

    def thaw(self, env):
        pgid = env.pid()
        os.killpg(pgid, signal.SIGCONT)
        self.frozen.discard(env)
        wait_for(lambda: not any(s == "T" for _, s in process_states("pgrp", pgid)), 5,
                 f"{env.name}: group {pgid} running again: {process_states('pgrp', pgid)}")

    def kill9(self, env):
        """SIGKILL the whole group (a crash); clears the pid file after."""
        pid = env.pid()
        os.killpg(pid, signal.SIGKILL)
        wait_for(lambda: not _pid_alive(pid), 5, f"{env.name}: pid {pid} gone after SIGKILL")
        env.stop()

    def thaw_all(self):
        """SIGCONT every group still frozen (teardown; never fails)."""
        for e in list(self.frozen):
            try:
                os.killpg(e.pid(), signal.SIGCONT)
            except (ProcessLookupError, TypeError):
                pass
        self.frozen.clear()


class StatusWatch(threading.Thread):
    """Polls every env's ?auto every 0.2 s for `seconds` at most and keeps
    what `note(env)` returns when it is not empty (with the time and the
    env's route) in self.notes; failed status requests go to self.failures."""

    def __init__(self, envs, note, seconds=60.0):
        super().__init__(daemon=True)
        self.envs, self.note, self.seconds = envs, note, seconds
        self.halt = threading.Event()
        self.notes, self.failures, self.looks = [], [], 0

    def run(self):
        deadline = time.monotonic() + self.seconds
        for _ in range(int(self.seconds / 0.2) + 1):
            if self.halt.is_set() or time.monotonic() > deadline:
                return
            for e in self.envs:
                try:
                    seen = self.note(e)
                except (requests.RequestException, AssertionError) as ex:
                    self.failures.append((e.route, repr(ex)))
                    continue
                if seen:
                    self.notes.append((round(time.monotonic(), 2), e.route, seen))
            self.looks += 1
            self.halt.wait(0.2)

    def stop(self):
        self.halt.set()
        if self.ident is None:          # never started
            return
        self.join(timeout=10)
        assert not self.is_alive(), "the status watcher did not end"


class Cluster:
    """Nodes `routes` on loopback (event MPM), each a ClusterMember of all,
    started one by one with start(); ClusterManager as cluster_conf's default."""

    def __init__(self, module_path, name, routes, mode="ack", maxage=None):
        self.envs = [HttpdEnv(f"{name}-{r}", mpm="event", module=module_path, route=r)
                     for r in routes]
        self.members = [(e.route, e.cluster_addr) for e in self.envs]
        self.mode = mode
        self.maxage = maxage

    def conf(self, env):
        c = cluster_conf(env, members=self.members, send_mode=self.mode)
        if self.maxage:
            c.add(["<Location /cgi/>", f"    SessionMaxAge {self.maxage}", "</Location>"])
        return c

    def start(self, env):
        start_env(env, self.conf(env))

    def kill(self, env):
        os.killpg(env.pid(), signal.SIGKILL)
        env.stop()                      # reaps, clears the pid file

    def all_up(self):
        return all(status(e)[0]["MembersUp"] == str(len(self.envs)) for e in self.envs)

    def stop(self):
        for e in self.envs:
            stop_env(e)


def count(client, env, path=COUNTER):
    """GET the counter app on env with client's cookie jar: its count."""
    client.env = env
    r = client.get(path)
    assert r.status == 200, r
    return int(r.kv()["count"])


def route_of(client):
    """The route in client's session cookie."""
    return split_id(client.jar[COOKIE_NAME])[1]
