"""Peers must prove the secret (issue 9), on loopback with real servers.

- A member holding another ClusterSecretFile never shows `up`: both sides show
  it `down auth-failed` on ?auto, ?json and the HTML page, both error logs
  name the two key ids (rate-limited), and with the backup manager no session
  pretends to have a backup (after the primary dies they are gone, not served).
- The control: the same pair with the same key links up and replicates.
- Config: clustering without ClusterSecretFile, a key file open to the group,
  too short, a passphrase, `none` beyond loopback are refused; hex, base64,
  raw, two files (rotation) and `none` on loopback (with its warning) work.
- Another ClusterManager is refused on both sides (`manager-mismatch`).
- A busy ClusterListen port fails `apache2 -k start` on stderr, nothing left running.
- `ClusterSendMode sync|ack strict`: with no member up a save answers 503 and
  is undone, a new visitor gets no cookie; plain `sync` answers 200.
- Certificates (a test CA made with the openssl command line): members with
  the CA's certificates naming their routes link up and replicate; a
  certificate from another CA, or naming another route, is refused.

Key ids are computed here from the key material (HKDF-SHA256, info "sc2 key
id", first 4 bytes as hex) and must match what the module logs.
"""

import base64
import json
import os
import re
import secrets
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyhttpd import Client, HttpdEnv
from pyhttpd.cluster import (COOKIE_NAME, GroupControl, cluster_conf, manager_get, member_reasons,
                             member_states, split_id, start_env, status, status_full,
                             stop_env, wait_for)
from pyhttpd.env import _pid_alive
from pyhttpd.ports import free_port
from pyhttpd.wire import material_key_id

COUNTER = "/cgi/counter.cgi"
ECHO = "/cgi/echo.cgi"
LIMIT = 15.0            # members seeing each other up / down / refused (loaded machine)
DROP = 12.0             # a frozen member shown down (the module drops after ~3 s)
WATCH = 2.0             # how long a refused member is watched for never coming up

ERR = "[session_cluster:error]"
SERVER_REFUSED_AUTH = re.compile(
    r"\[session_cluster:error\] .*clusterd: refused a peer connection from "
    r"127\.0\.0\.1:\d+: authentication failed: it offers key ([0-9a-f]{8}), this "
    r"node holds ([0-9a-f]{8}) \(another ClusterSecretFile\) \((\d+) refused")


# ------------------------------------------------------------------ helpers

def write_key(path, material: bytes, form="hex", mode=0o600):
    """Write key material as `openssl rand -hex|-base64` text or raw bytes."""
    if form == "hex":
        data = (material.hex() + "\n").encode()
    elif form == "base64":
        data = base64.b64encode(material) + b"\n"
    elif form == "base64-wrapped":          # what `openssl rand -base64 64` writes
        text = base64.b64encode(material).decode()
        data = "".join(text[i:i + 64] + "\n" for i in range(0, len(text), 64)).encode()
    elif form == "raw":
        data = material
    else:
        raise ValueError(form)
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def raw_material(n):
    """n random bytes that are surely not text (a NUL first)."""
    return b"\x00" + os.urandom(n - 1)


def parallel(fns):
    with ThreadPoolExecutor(max_workers=len(fns)) as ex:
        return [f.result() for f in [ex.submit(fn) for fn in fns]]


def procs_of(env):
    """pids of processes whose command line names this server's config file."""
    needle = str(env.conf_path).encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if needle in f.read():
                    pids.append(int(d))
        except OSError:
            continue
    return [p for p in pids if _pid_alive(p)]


def log_lines(env, pattern, offset=0, level=None):
    """Error log lines (from offset) containing `pattern` (str or regex),
    optionally only at `level` (e.g. ERR)."""
    out = []
    for line in env.error_log_text(offset).splitlines():
        if level and level not in line:
            continue
        if (pattern.search(line) if hasattr(pattern, "search") else pattern in line):
            out.append(line)
    return out


def tails(*envs, n=25):
    return "\n".join(f"--- {e.name} error log tail:\n{e.error_log_tail(n)}" for e in envs)


def watch(seconds, check, every=0.1):
    """Call check() every `every` s for `seconds` (bounded by count too); the
    number of looks. For facts that must hold throughout, not a wait."""
    looks = 0
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / every) + 1):
        check()
        looks += 1
        if time.monotonic() >= deadline:
            break
        time.sleep(every)
    return looks


def up_both_ways(a, b):
    return member_states(a).get(b.route) == "up" and member_states(b).get(a.route) == "up"


def refused_both_ways(a, b, reasons):
    ra, rb = member_reasons(a).get(b.route), member_reasons(b).get(a.route)
    return ra in reasons and rb in reasons


def count(client, env, path=COUNTER):
    client.env = env
    r = client.get(path)
    assert r.status == 200, f"{env.name}: {path} answered {r}\n{tails(env)}"
    return int(r.kv()["count"])


def session_of(client, env):
    """The session as env hands it to CGI (echo.cgi, no change)."""
    client.env = env
    r = client.get(ECHO)
    assert r.status == 200, f"{env.name}: echo answered {r}\n{tails(env)}"
    return r.kv().get("session", "")


class Nodes(GroupControl):
    """node1..nodeN on loopback (event MPM), each with its own config kwargs."""

    def __init__(self, module_path, name, n=2):
        self.envs = [HttpdEnv(f"{name}-node{i}", mpm="event", module=module_path,
                              route=f"node{i}") for i in range(1, n + 1)]
        self.members = [(e.route, e.cluster_addr) for e in self.envs]
        self.kw = {e.route: {} for e in self.envs}
        self.frozen = set()

    def conf(self, env):
        return cluster_conf(env, members=self.members, **self.kw[env.route])

    def start(self, env):
        start_env(env, self.conf(env))

    def start_all(self):
        parallel([lambda e=e: self.start(e) for e in self.envs])

    def stop(self):
        self.thaw_all()
        for e in self.envs:
            stop_env(e)


# ------------------------------------------------------------------ 1. mismatched secrets (delta)

@pytest.fixture(scope="module")
def split(module_path):
    """Two delta nodes, each with a key file of its own."""
    nodes = Nodes(module_path, "split")
    nodes.keys = {}
    for e in nodes.envs:
        material = os.urandom(32)
        path = write_key(e.root / "data" / "own.key", material)
        nodes.keys[e.route] = (path, material)
        nodes.kw[e.route] = dict(secret_file=str(path))
    nodes.start_all()
    n1, n2 = nodes.envs
    wait_for(lambda: refused_both_ways(n1, n2, ("auth-failed",)), LIMIT,
             f"node1 and node2 show each other down auth-failed\n{tails(n1, n2)}")
    yield nodes
    nodes.stop()


def test_870_01_split_secret_never_up(split):
    """Both sides keep the other down auth-failed; MembersUp stays 1."""
    n1, n2 = split.envs

    def check():
        for a, b in ((n1, n2), (n2, n1)):
            r = manager_get(a, "auto")
            assert r.status_code == 200, r.text
            lines = [ln for ln in r.text.splitlines()
                     if ln.startswith(f"Member: {b.route} ")]
            values = dict(ln.split(": ", 1) for ln in r.text.splitlines() if ": " in ln
                          and not ln.startswith(("Member:", "Distribution:")))
            assert len(lines) == 1, r.text
            assert lines[0].split()[3:] == ["down", "auth-failed"], \
                (f"{a.route} shows {b.route} as {lines[0]!r} with another secret\n"
                 f"{tails(n1, n2)}")
            assert values.get("MembersUp") == "1", \
                f"{a.route}: MembersUp {values.get('MembersUp')} with another secret\n{r.text}"
    looks = watch(WATCH, check)
    assert looks >= 5, f"only {looks} looks in {WATCH}s"


def test_870_02_split_secret_json_and_html(split):
    n1, n2 = split.envs
    for a, b in ((n1, n2), (n2, n1)):
        r = manager_get(a, "json")
        assert r.status_code == 200, r.text
        doc = json.loads(r.text)
        entry = [m for m in doc["Members"] if m["route"] == b.route]
        assert len(entry) == 1, doc["Members"]
        assert entry[0]["state"] == "down" and entry[0]["reason"] == "auth-failed", \
            f"{a.route} ?json: {entry[0]}"
        assert doc["MembersUp"] == 1, doc
        html = manager_get(a, "").text
        assert "down: auth-failed" in html, f"{a.route}: HTML page lacks 'down: auth-failed'"


def test_870_03_split_secret_logs_name_both_keys(split):
    """Each node's error log: an error line refusing the other's connection,
    naming the key it offered and the key this node holds; the link side's
    error line `member nodeX (...) refused: auth-failed`."""
    n1, n2 = split.envs
    ids = {r: material_key_id(m) for r, (_, m) in split.keys.items()}
    assert ids["node1"] != ids["node2"]
    for a, b in ((n1, n2), (n2, n1)):
        # the module's own id for its key, as this test computes it
        assert log_lines(a, f"authenticated by cluster key {ids[a.route]}"), \
            f"{a.route}: no start line naming key {ids[a.route]}\n{tails(a)}"
        wait_for(lambda: log_lines(a, SERVER_REFUSED_AUTH), LIMIT,
                 f"{a.route}: an error line refusing {b.route}'s connection\n{tails(a)}")
        offered, held, _ = SERVER_REFUSED_AUTH.search(log_lines(a, SERVER_REFUSED_AUTH)[0]).groups()
        assert (offered, held) == (ids[b.route], ids[a.route]), \
            (f"{a.route} logged offered {offered} / holds {held}, expected "
             f"{ids[b.route]} / {ids[a.route]}")
        link = log_lines(a, f"clusterd: member {b.route} ({b.cluster_addr}) refused: "
                            "auth-failed", level=ERR)
        assert link, f"{a.route}: no error line 'member {b.route} (...) refused: auth-failed'"


def test_870_04_split_secret_logs_rate_limited(split):
    """Refusals come every ~0.5 s; the error log gets at most one line per
    kind every 10 s (server side) and one per reason change (link side)."""
    n1, n2 = split.envs
    marks = {e: e.error_log_size() for e in split.envs}
    start = time.monotonic()

    def attempts(a, b):
        # every attempt of a's link to b is logged (at debug after the first)
        return len(log_lines(a, f"clusterd: member {b.route} ({b.cluster_addr}) refused: "
                                "auth-failed", marks[a]))
    wait_for(lambda: attempts(n1, n2) >= 6 and attempts(n2, n1) >= 6, 30,
             "6 refused connection attempts each way")
    window = time.monotonic() - start
    for a, b in ((n1, n2), (n2, n1)):
        server = log_lines(a, SERVER_REFUSED_AUTH, marks[a])
        allowed = 1 + int(window // 10)
        assert len(server) <= allowed, \
            (f"{a.route}: {len(server)} 'refused a peer connection' error lines in "
             f"{window:.1f}s for {attempts(b, a)} attempts by {b.route} (at most "
             f"{allowed} expected):\n" + "\n".join(server))
        link = log_lines(a, f"member {b.route} ({b.cluster_addr}) refused:", marks[a], ERR)
        assert len(link) <= 1, \
            f"{a.route}: link-side error line repeated {len(link)} times:\n" + "\n".join(link)


def test_870_05_matching_secret_links_and_replicates(split):
    """The control: node2 restarted with node1's key (same material, written
    as base64 instead of hex) links up and replicates both ways."""
    n1, n2 = split.envs
    stop_env(n2)
    material = split.keys["node1"][1]
    write_key(split.keys["node2"][0], material, "base64")
    split.keys["node2"] = (split.keys["node2"][0], material)
    mark = n2.error_log_size()
    split.start(n2)
    assert log_lines(n2, f"authenticated by cluster key {material_key_id(material)}", mark), tails(n2)
    wait_for(lambda: up_both_ways(n1, n2), LIMIT, f"node1 and node2 up\n{tails(n1, n2)}")
    assert status(n1)[0]["MembersUp"] == "2" and status(n2)[0]["MembersUp"] == "2"
    c = Client(n1, "control")
    assert [count(c, n1), count(c, n1)] == [1, 2]
    assert count(c, n2) == 3, "a save on node1 did not reach node2 with the same key"
    assert count(c, n1) == 4, "a save on node2 did not reach node1 with the same key"


# ------------------------------------------------------------------ 2. mismatched secrets (backup)

def test_870_06_split_secret_backup_nothing_pretends_safe(module_path):
    """Backup manager with two keys: sessions on node1 have no backup, node2
    holds nothing, and after node1 is killed node2 does not serve them."""
    nodes = Nodes(module_path, "splitbak")
    n1, n2 = nodes.envs
    for e in nodes.envs:
        path = write_key(e.root / "data" / "own.key", os.urandom(32))
        nodes.kw[e.route] = dict(secret_file=str(path), manager="backup")
    try:
        nodes.start_all()
        wait_for(lambda: refused_both_ways(n1, n2, ("auth-failed",)), LIMIT,
                 f"both down auth-failed\n{tails(n1, n2)}")
        clients = [Client(n1, f"bak{i}") for i in range(4)]
        for c in clients:
            assert count(c, n1) == 1
        values, _, dist = status_full(n1)
        assert values["SessionsWithoutBackup"] == str(len(clients)), \
            f"node1 SessionsWithoutBackup {values['SessionsWithoutBackup']}, dist {dist}"
        assert not [pb for pb in dist if pb[1] == "node2"], \
            f"node1 claims backups on node2 it cannot reach: {dist}"
        v2, _, dist2 = status_full(n2)
        held = {k: v2[k] for k in ("SessionsPrimary", "SessionsBackup", "SessionsProxy")}
        assert held == dict.fromkeys(held, "0") and not dist2, \
            f"node2 holds sessions from a node with another key: {held} {dist2}"
        nodes.kill9(n1)
        for c in clients[:2]:
            old = split_id(c.jar[COOKIE_NAME])[0]
            assert count(c, n2) == 1, "node2 served a session it could never have received"
            assert split_id(c.jar[COOKIE_NAME])[0] != old, "node2 adopted the old id"
    finally:
        nodes.stop()


# ------------------------------------------------------------------ 4. config refusals

@pytest.fixture(scope="module")
def cfg(module_path):
    env = HttpdEnv("secretcfg", mpm="event", module=module_path)
    env.other = f"127.0.0.1:{free_port()}"
    yield env
    stop_env(env)


def cfg_conf(env, secret_file, other=None):
    members = [(env.route, env.cluster_addr), ("node2", other or env.other)]
    return cluster_conf(env, members=members, secret_file=secret_file)


def test_870_07_clustered_without_secret_refused(cfg):
    cfg_conf(cfg, secret_file=False).install()
    assert "ClusterSecretFile" not in cfg.config_text()
    r = cfg.configtest()
    assert r.rc != 0 and "openssl rand -base64 32" in r.output, \
        f"apache2 -t passed a clustered config without a secret: {r}"
    off = cfg.error_log_size()
    r = cfg.start(check=False)
    try:
        text = r.output + cfg.error_log_text(off)
        assert r.rc != 0, f"clustered without a secret started: {r}"
        assert "openssl rand -base64 32" in text, f"no how-to in the refusal: {text}"
        assert not cfg.is_running() and not procs_of(cfg)
    finally:
        if cfg.is_running():
            cfg.stop()


def _key_case(env, name):
    d = env.root / "data"
    m = os.urandom(32)
    if name == "hex32":
        return str(write_key(d / "k-hex", m, "hex"))
    if name == "base64-32":
        return str(write_key(d / "k-b64", m, "base64"))
    if name == "base64-64-wrapped":
        return str(write_key(d / "k-b64w", os.urandom(64), "base64-wrapped"))
    if name == "raw32":
        return str(write_key(d / "k-raw", raw_material(32), "raw"))
    if name == "two-files":
        return (f"{write_key(d / 'k-new', m, 'hex')} "
                f"{write_key(d / 'k-old', os.urandom(32), 'base64')}")
    if name == "mode-0640":
        return str(write_key(d / "k-0640", m, "hex", mode=0o640))
    if name == "mode-0604":
        return str(write_key(d / "k-0604", m, "hex", mode=0o604))
    if name == "raw16":
        return str(write_key(d / "k-raw16", raw_material(16), "raw"))
    if name == "hex16":
        return str(write_key(d / "k-hex16", os.urandom(16), "hex"))
    if name == "passphrase":
        p = d / "k-pass"
        p.write_text("correct horse battery staple, my cluster password!\n")
        os.chmod(p, 0o600)
        return str(p)
    if name == "same-key-twice":
        return (f"{write_key(d / 'k-same1', m, 'hex')} "
                f"{write_key(d / 'k-same2', m, 'base64')}")
    raise ValueError(name)


KEY_CASES = [
    # (case, accepted, substrings of the refusal)
    ("hex32", True, []),
    ("base64-32", True, []),
    ("base64-64-wrapped", True, []),
    ("raw32", True, []),
    ("two-files", True, []),
    ("mode-0640", False, ["group or others", "chmod 600"]),
    ("mode-0604", False, ["group or others", "chmod 600"]),
    ("raw16", False, ["16 bytes", "at least 32"]),
    ("hex16", False, ["16 bytes of key material", "at least 32"]),
    ("passphrase", False, ["passphrase"]),
    ("same-key-twice", False, ["same key"]),
]


@pytest.mark.parametrize("case,accepted,expected", KEY_CASES, ids=[c[0] for c in KEY_CASES])
def test_870_08_key_files(cfg, case, accepted, expected):
    secret = _key_case(cfg, case)
    cfg_conf(cfg, secret_file=secret).install()
    r = cfg.configtest()
    if accepted:
        assert r.rc == 0, f"{case}: a good key file refused: {r.output}"
    else:
        assert r.rc != 0, f"{case}: a bad key file accepted by apache2 -t"
        missing = [s for s in ["ClusterSecretFile"] + expected if s not in r.output]
        assert not missing, f"{case}: refusal lacks {missing}: {r.output}"


def test_870_09_none_beyond_loopback_refused(cfg):
    cfg_conf(cfg, secret_file="none", other="10.9.9.9:9000").install()
    r = cfg.configtest()
    assert r.rc != 0, f"ClusterSecretFile none with member 10.9.9.9:9000 accepted: {r}"
    assert "10.9.9.9:9000" in r.output and "loopback" in r.output, r.output
    # the same on loopback passes apache2 -t
    cfg_conf(cfg, secret_file="none").install()
    r = cfg.configtest()
    assert r.rc == 0, r.output


def test_870_10_none_on_loopback_works_and_warns(module_path):
    nodes = Nodes(module_path, "nonekey")
    n1, n2 = nodes.envs
    for e in nodes.envs:
        nodes.kw[e.route] = dict(secret_file="none")
    try:
        nodes.start_all()
        for e in nodes.envs:
            assert "ClusterSecretFile none" in e.config_text()
            assert log_lines(e, "ClusterSecretFile none: members are NOT authenticated",
                             level="[session_cluster:warn]"), \
                f"{e.name}: no warning about ClusterSecretFile none\n{tails(e)}"
        wait_for(lambda: up_both_ways(n1, n2), LIMIT, f"none: both up\n{tails(n1, n2)}")
        c = Client(n1, "none")
        assert count(c, n1) == 1 and count(c, n2) == 2 and count(c, n1) == 3
    finally:
        nodes.stop()


# ------------------------------------------------------------------ 5. manager mismatch

def test_870_11_manager_mismatch_refused_both_sides(module_path):
    nodes = Nodes(module_path, "mgrmix")
    n1, n2 = nodes.envs
    nodes.kw["node1"] = dict(manager="delta")
    nodes.kw["node2"] = dict(manager="backup")
    try:
        nodes.start_all()
        wait_for(lambda: refused_both_ways(n1, n2, ("manager-mismatch",)), LIMIT,
                 f"both down manager-mismatch\n{tails(n1, n2)}")

        def check():
            for a, b in ((n1, n2), (n2, n1)):
                assert member_states(a)[b.route] == "down", \
                    f"{a.route} shows {b.route} up with another ClusterManager"
                assert member_reasons(a)[b.route] == "manager-mismatch", tails(a)
        watch(WATCH, check)
        pat = re.compile(r"\[session_cluster:error\] .*runs ClusterManager "
                         r"(delta|backup), this node (delta|backup): not linking")
        for e, mine, other in ((n1, "delta", "backup"), (n2, "backup", "delta")):
            lines = log_lines(e, pat)
            assert lines, f"{e.name}: no error line naming both managers\n{tails(e)}"
            assert all(pat.search(ln).groups() == (other, mine) for ln in lines), lines
    finally:
        nodes.stop()


# ------------------------------------------------------------------ 6. busy ClusterListen port

def test_870_12_busy_cluster_port_fails_start(module_path):
    env = HttpdEnv("busyport", mpm="event", module=module_path)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind(("127.0.0.1", env.cluster_port))
        blocker.listen(1)
        cluster_conf(env).install()
        r = env.start(check=False, timeout=10)
        assert r.rc != 0, f"apache2 -k start succeeded on a busy ClusterListen port: {r}"
        assert f"ClusterListen {env.cluster_addr}" in r.stderr and \
            ("Address already in use" in r.stderr or "EADDRINUSE" in r.stderr), \
            f"stderr does not say why: {r.stderr!r}\n{tails(env)}"
        wait_for(lambda: not env.is_running() and not procs_of(env), 5,
                 f"no apache2 left running for {env.name}: {procs_of(env)}")
    finally:
        blocker.close()
        if env.is_running():
            env.stop()


# ------------------------------------------------------------------ 7. strict send modes

@pytest.fixture(scope="module")
def strict(module_path):
    """node1 `sync strict`, node2 `ack strict`, the run's shared key."""
    nodes = Nodes(module_path, "strict")
    n1, n2 = nodes.envs
    nodes.kw["node1"] = dict(send_mode="sync strict")
    nodes.kw["node2"] = dict(send_mode="ack strict")
    nodes.start_all()
    wait_for(lambda: up_both_ways(n1, n2), LIMIT, f"strict: both up\n{tails(n1, n2)}")
    yield nodes
    nodes.stop()


def _frozen_refuses(nodes, serve, frozen, client, mode):
    """Freeze `frozen`; once `serve` shows it down, a change and a new session
    on `serve` answer 503 (no cookie); thaw and wait until both are up."""
    nodes.freeze(frozen)
    try:
        wait_for(lambda: member_states(serve)[frozen.route] == "down", DROP,
                 f"{serve.route} shows frozen {frozen.route} down\n{tails(serve)}")
        mark = serve.error_log_size()
        live = status(serve)[0]["SessionsPrimary"]
        client.env = serve
        r = client.get(COUNTER)
        assert r.status == 503, f"{mode} strict: a change nobody confirmed answered {r}"
        newcomer = Client(serve, "newcomer")
        r = newcomer.get(COUNTER)
        assert r.status == 503, f"{mode} strict: a new session nobody confirmed: {r}"
        assert not r.cookies_named(COOKIE_NAME) and not newcomer.jar, \
            f"{mode} strict: a 503 gave out a session cookie: {r.set_cookies}"
        assert status(serve)[0]["SessionsPrimary"] == live, \
            f"{mode} strict: a refused new session is still held on {serve.route}"
        lines = log_lines(serve, f"ClusterSendMode {mode} strict); answering 503", mark)
        assert len(lines) >= 2, f"{serve.route}: no log line per refused save\n{tails(serve)}"
    finally:
        nodes.thaw(frozen)
    a, b = nodes.envs
    wait_for(lambda: up_both_ways(a, b), LIMIT, f"both up after thaw\n{tails(a, b)}")


def test_870_13_strict_refuses_unconfirmed_save(strict):
    n1, n2 = strict.envs
    assert status(n1)[0]["SendModeStrict"] == "1" and status(n2)[0]["SendModeStrict"] == "1"
    c = Client(n1, "strict")
    assert [count(c, n1), count(c, n1)] == [1, 2]
    assert count(c, n2) == 3 and count(c, n1) == 4
    _frozen_refuses(strict, n1, n2, c, "sync")
    assert session_of(c, n1) == "count=4", "a refused save was not undone on node1"
    assert count(c, n1) == 5, "the next save did not continue from the last good one"
    assert count(c, n2) == 6, "node2 did not get the save after it came back"
    # ack strict, on node2 with node1 frozen
    _frozen_refuses(strict, n2, n1, c, "ack")
    assert session_of(c, n2) == "count=6", "a refused ack save was not undone on node2"
    assert count(c, n2) == 7 and count(c, n1) == 8


def test_870_14_plain_sync_answers_200_alone(strict):
    """The contrast: plain `sync` (no strict) with the only member down answers 200."""
    n1, n2 = strict.envs
    strict.kw["node1"] = dict(send_mode="sync")
    strict.conf(n1).install()
    n1.graceful()
    assert status(n1)[0]["SendModeStrict"] == "0"
    wait_for(lambda: up_both_ways(n1, n2), LIMIT, f"both up after graceful\n{tails(n1, n2)}")
    c = Client(n1, "plain")
    assert count(c, n1) == 1
    strict.freeze(n2)
    try:
        wait_for(lambda: member_states(n1)["node2"] == "down", DROP,
                 f"node1 shows frozen node2 down\n{tails(n1)}")
        assert count(c, n1) == 2, "plain sync refused a save with no member up"
        fresh = Client(n1, "plain-new")
        assert count(fresh, n1) == 1 and fresh.jar.get(COOKIE_NAME)
    finally:
        strict.thaw(n2)


# ------------------------------------------------------------------ 8. certificates

def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"


def _make_ca(d, name):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
             "-subj", f"/CN=sc-test {name}", cwd=d)


def _make_cert(d, ca, name, route):
    """A key and a certificate (CN and SAN DNS = route) signed by ca."""
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={route}", cwd=d)
    (d / f"{name}.ext").write_text(f"subjectAltName=DNS:{route}\n"
                                   "extendedKeyUsage=serverAuth,clientAuth\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
             "-extfile", f"{name}.ext", cwd=d)
    os.chmod(d / f"{name}.key", 0o600)


class CertNodes(Nodes):
    """Nodes authenticated by certificates (the run's shared key still set)."""

    def __init__(self, module_path, name, d):
        super().__init__(module_path, name)
        self.dir = d
        self.cert = {}

    def use(self, env, cert):
        self.cert[env.route] = cert

    def conf(self, env):
        d, cert = self.dir, self.cert[env.route]
        return super().conf(env).add([f'ClusterCertificateFile "{d}/{cert}.crt"',
                                      f'ClusterCertificateKeyFile "{d}/{cert}.key"',
                                      f'ClusterCACertificateFile "{d}/ca.crt"'])


@pytest.fixture(scope="module")
def certs(module_path):
    """node1 and node2 with certificates of one CA; the tests restart node2
    with other ones. Made with the openssl command line: CA, second CA, a
    certificate per route, one from the second CA, one naming node3."""
    d = HttpdEnv.base_dir() / f"certs-{secrets.token_hex(4)}"
    d.mkdir()
    _make_ca(d, "ca")
    _make_ca(d, "ca2")
    for name, ca, route in (("node1", "ca", "node1"), ("node2", "ca", "node2"),
                            ("node2-other-ca", "ca2", "node2"),
                            ("node2-as-node3", "ca", "node3")):
        _make_cert(d, ca, name, route)
    nodes = CertNodes(module_path, "certs", d)
    nodes.use(nodes.envs[0], "node1")
    nodes.use(nodes.envs[1], "node2")
    nodes.start_all()
    yield nodes
    nodes.stop()


def test_870_15_certificates_link_and_replicate(certs):
    n1, n2 = certs.envs
    wait_for(lambda: up_both_ways(n1, n2), LIMIT, f"certificates: both up\n{tails(n1, n2)}")
    for e in certs.envs:
        assert log_lines(e, "authenticated by certificate"), tails(e)
    c = Client(n1, "certs")
    assert count(c, n1) == 1 and count(c, n2) == 2 and count(c, n1) == 3


@pytest.mark.parametrize("cert,reasons,server_says,own_view", [
    ("node2-other-ca", ("auth-failed",),
     r"\[session_cluster:error\] .*refused a peer connection from 127\.0\.0\.1:\d+: "
     r"authentication failed: TLS handshake failed: certificate verify failed",
     "auth-failed"),
    ("node2-as-node3", ("auth-failed", "wrong-route"),
     r"refused a peer connection from 127\.0\.0\.1:\d+: (not the member it claims: its "
     r"HELLO says node2, but it authenticated as another route|authentication failed)",
     None),
], ids=["other-ca", "names-node3"])
def test_870_16_certificate_refused(certs, cert, reasons, server_says, own_view):
    """node2 restarted with a certificate node1 must not accept: node1 shows
    it down (auth-failed, or wrong-route), neither side ever shows the other
    up, node1's link failed the certificate check and node1 refused node2's
    own connections (the line for its kind is not older than 10 s here).
    node2 itself learns it was refused when node1's TLS alert says so (a CA
    node1 does not trust: TLS 1.3 lets the client finish its handshake
    first, the alert comes with the first read): it shows node1
    `down auth-failed`, not silent."""
    n1, n2 = certs.envs
    stop_env(n2)
    certs.use(n2, cert)
    mark = n1.error_log_size()
    try:
        certs.start(n2)
        wait_for(lambda: member_reasons(n1).get("node2") in reasons, LIMIT,
                 f"node1 shows node2 ({cert}) down {reasons}\n{tails(n1, n2)}")

        def check():
            assert member_states(n1)["node2"] == "down", f"node1 shows node2 ({cert}) up"
            assert member_states(n2)["node1"] == "down", f"node2 ({cert}) shows node1 up"
        watch(WATCH, check)
        assert log_lines(n1, f"clusterd: member node2 ({n2.cluster_addr}) refused: auth-failed: "
                             "TLS handshake failed: certificate verify failed", mark), \
            f"node1's link did not fail node2's certificate ({cert})\n{tails(n1)}"
        wait_for(lambda: log_lines(n1, re.compile(server_says), mark), LIMIT,
                 f"node1 logs refusing node2's connection ({cert})\n{tails(n1)}")
        if own_view:
            wait_for(lambda: member_reasons(n2).get("node1") == own_view, LIMIT,
                     f"node2 ({cert}) shows node1 down {own_view}\n{tails(n2)}")
    finally:
        stop_env(n2)
        certs.use(n2, "node2")
        certs.start(n2)
        wait_for(lambda: up_both_ways(n1, n2), LIMIT, f"good node2 back up\n{tails(n1, n2)}")
