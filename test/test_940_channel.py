"""The children's channel to clusterd (sc_chan: a ring in shared memory) and
the batched links, as an attacker and an admin see them:

- nothing is left in the runtime directory, and a CGI running as the httpd
  user finds no way in: no socket to connect to, no access to the memory of
  httpd's children or of clusterd;
- a frozen clusterd fills the ring: saves wait a bounded time, then answer
  503 (counted, logged once per interval), never 200 for a change that was
  not queued; once it runs again every session answered 200 reaches the
  other member;
- a frozen member: its link's queue is visible on the status page
  (`MemberQueue:` in ?auto, the JSON, the HTML page) and empties when it is
  dropped."""

import json
import os
import signal
import time

import pytest
import requests

from pyhttpd import HttpdEnv
from pyhttpd.cluster import (COOKIE_NAME, cluster_conf, manager_get, member_queues,
                             start_env, status, stop_env, wait_for)
from pyhttpd import repo_root

LIMIT = 15.0
COUNTER_LUA = repo_root() / "test" / "bench" / "counter.lua"
MODDIR = "/usr/lib/apache2/modules"

PROBE_CGI = r'''#!/usr/bin/python3
"""What a CGI running as the httpd user can reach of the session cluster:
sockets in the server's runtime directory, and the memory of every httpd
process on the machine (the channel is anonymous shared memory: reaching it
means opening another process's /proc/<pid>/mem or map_files)."""
import glob, json, os, socket
found, pids = [], []
rundir = os.environ["SCRIPT_FILENAME"].rsplit("/cgi-bin/", 1)[0] + "/run"
for path in glob.glob(rundir + "/*"):
    if os.path.basename(path).startswith("cgisock"):
        continue                              # mod_cgid's own socket
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(path)
        found.append("connected to " + path)
    except OSError:
        pass
for d in glob.glob("/proc/[0-9]*"):
    try:
        if b"apache2" not in open(d + "/cmdline", "rb").read():
            continue
    except OSError:
        continue
    pids.append(d)
    for flags in (os.O_RDONLY, os.O_RDWR):
        try:
            os.close(os.open(d + "/mem", flags))
            found.append(f"opened {d}/mem ({flags})")
        except OSError:
            pass
    try:
        names = os.listdir(d + "/map_files")
    except OSError:
        names = []
    for name in names:
        try:
            os.close(os.open(f"{d}/map_files/{name}", os.O_RDWR))
            found.append(f"opened {d}/map_files/{name}")
        except OSError:
            pass
print("Content-Type: application/json\r\n\r")
print(json.dumps({"uid": os.getuid(), "processes": len(pids), "found": found}))
'''


def lua_conf(env, conf):
    """The bench's Lua counter at /lcounter (?pad=N makes the session big)."""
    conf.add([
        "<IfModule !lua_module>",
        f"    LoadModule lua_module {MODDIR}/mod_lua.so",
        "</IfModule>",
        "LuaScope thread",
        f'LuaMapHandler "^/l(counter|plain)$" "{COUNTER_LUA}" handle',
    ])
    return conf


class Pair:
    def __init__(self, module_path, name, mode, extra=()):
        self.envs = [HttpdEnv(f"{name}-{r}", mpm="event", module=module_path, route=r)
                     for r in ("node1", "node2")]
        self.members = [(e.route, e.cluster_addr) for e in self.envs]
        self.mode = mode
        self.extra = list(extra)
        self.stopped = []                   # pids to SIGCONT at teardown

    def start(self):
        for e in self.envs:
            conf = lua_conf(e, cluster_conf(e, members=self.members,
                                            send_mode=self.mode, store_size="64M"))
            conf.add(self.extra)
            start_env(e, conf)
        wait_for(lambda: all(status(e)[0]["MembersUp"] == "2" for e in self.envs),
                 LIMIT, "2 members up")

    def stop(self):
        for pid in self.stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        for e in self.envs:
            stop_env(e)


@pytest.fixture
def pair(module_path, request):
    mode, *extra = request.param.split(";")
    p = Pair(module_path, f"chan-{mode}", mode, extra)
    p.start()
    yield p
    p.stop()


def proc_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def counter(env, cookie=None, pad=0, timeout=20):
    """One request to the Lua counter: (status, count or None, cookie)."""
    headers = {"Connection": "close"}
    if cookie:
        headers["Cookie"] = f"{COOKIE_NAME}={cookie}"
    r = requests.get(env.url(f"/lcounter?pad={pad}" if pad else "/lcounter"),
                     headers=headers, timeout=timeout)
    new = r.cookies.get(COOKIE_NAME) or cookie
    n = int(r.text.split("=")[1]) if r.status_code == 200 else None
    return r.status_code, n, new


@pytest.mark.parametrize("pair", ["sync"], indirect=True)
def test_940_01_nothing_in_the_runtime_dir_and_a_cgi_finds_no_way_in(pair):
    n1 = pair.envs[0]
    rundir = n1.root / "run"
    for _ in range(5):
        assert counter(n1)[0] == 200
    left = [p.name for p in rundir.iterdir() if p.is_socket() and not p.name.startswith("cgisock")]
    assert not left, f"sockets left in {rundir}: {left}"
    # a CGI of this server, running as the httpd user
    cgi = n1.cgi_dir / "probe.cgi"
    cgi.write_text(PROBE_CGI)
    os.chmod(cgi, 0o755)
    r = requests.get(n1.url("/cgi/probe.cgi"), timeout=20)
    assert r.status_code == 200, r.text
    seen = json.loads(r.text)
    print(f"\nprobe CGI (uid {seen['uid']}) against {seen['processes']} httpd "
          f"processes: {seen['found'] or 'nothing reachable'}")
    assert seen["uid"] != 0, "the CGI must run as the httpd user for this test"
    assert seen["processes"] >= 3
    assert seen["found"] == [], seen["found"]
    assert n1.graceful().rc == 0
    wait_for(lambda: manager_get(n1, "ready").status_code == 200, LIMIT, "node1 ready")
    assert counter(n1)[0] == 200
    left = [p.name for p in rundir.iterdir() if p.is_socket() and not p.name.startswith("cgisock")]
    assert not left, f"sockets left in {rundir} after a graceful restart: {left}"


@pytest.mark.parametrize("pair", ["async"], indirect=True)
def test_940_02_frozen_clusterd_saves_wait_then_503_and_nothing_is_lost(pair):
    n1, n2 = pair.envs
    pad = 30000                           # ~30 KB records: the 8 MiB ring fills fast
    daemon = int(status(n1)[0]["ClusterdPid"])
    os.kill(daemon, signal.SIGSTOP)
    pair.stopped.append(daemon)
    wait_for(lambda: proc_state(daemon) == "T", 5, "clusterd stopped")
    accepted, refused, took = [], 0, []
    deadline = time.monotonic() + 90
    for _ in range(600):                  # bounded: the ring holds ~280 of them
        t0 = time.monotonic()
        code, n, cookie = counter(n1, pad=pad)
        took.append(time.monotonic() - t0)
        if code == 200:
            accepted.append(cookie)
        else:
            assert code == 503, code
            refused += 1
            if refused >= 3:
                break
        assert time.monotonic() < deadline, "filling the ring took too long"
    auto = status(n1)[0]                  # served by a child: clusterd is frozen
    print(f"\nclusterd frozen: {len(accepted)} saves answered 200, then {refused} "
          f"answered 503 after {max(took):.2f} s at most; ChannelQueuedBytes "
          f"{auto['ChannelQueuedBytes']}, ChannelSavesGivenUp "
          f"{auto['ChannelSavesGivenUp']}")
    assert refused >= 3, "the ring never filled"
    assert len(accepted) > 100
    assert int(auto["ChannelSavesGivenUp"]) >= 3
    assert int(auto["ChannelQueuedBytes"]) > 4 * 1024 * 1024
    assert max(took) < 5, "a save waited far longer than the channel's bound"
    lines = [l for l in n1.error_log_text().splitlines()
             if "channel to clusterd stayed full" in l]
    assert 1 <= len(lines) <= 8, f"{len(lines)} 'stayed full' lines (rate-limited)"
    os.kill(daemon, signal.SIGCONT)
    pair.stopped.remove(daemon)
    # every session answered 200 reaches node2 (queued, or merged when the
    # members find each other again)
    wait_for(lambda: int(status(n2)[0]["SessionsPrimary"]) >= len(accepted), 30,
             f"node2 holds the {len(accepted)} sessions answered 200")
    for cookie in accepted[:: max(1, len(accepted) // 25)]:
        code, n, _ = counter(n2, cookie)
        assert code == 200 and n == 2, (code, n)


@pytest.mark.parametrize("pair", ["async"], indirect=True)
def test_940_03_a_frozen_members_queue_is_on_the_status_page(pair):
    n1, n2 = pair.envs
    os.killpg(n2.pid(), signal.SIGSTOP)
    pair.stopped.append(n2.pid())
    try:
        cookies = [counter(n1)[2] for _ in range(20)]
        wait_for(lambda: member_queues(n1)["node2"][0] > 0, LIMIT,
                 "node1 shows changes queued for the frozen node2")
        queued = member_queues(n1)["node2"]
        page = manager_get(n1).text
        js = json.loads(manager_get(n1, "json").text)
        print(f"\nqueue to frozen node2: {queued[0]} changes, {queued[1]} bytes")
        assert queued[1] > 0
        assert "queue:" in page and "change(s)" in page
        entry = next(m for m in js["Members"] if m["route"] == "node2")
        assert entry["queued"] >= 1 and entry["queued_bytes"] > 0
        # dropped after the usual drop time: its queue is let go
        wait_for(lambda: status(n1)[1] and dict((r, s) for r, _, s in status(n1)[1])
                 ["node2"] == "down", LIMIT, "node2 dropped")
        wait_for(lambda: member_queues(n1)["node2"][:2] == (0, 0), LIMIT,
                 "the dropped member's queue is empty")
    finally:
        os.killpg(n2.pid(), signal.SIGCONT)
        pair.stopped.remove(n2.pid())
    # back: what it missed is merged
    wait_for(lambda: status(n1)[0]["MembersUp"] == "2", LIMIT, "node2 up again")
    wait_for(lambda: all(counter(n2, c)[0] == 200 for c in cookies[-3:]), LIMIT,
             "node2 has the sessions made while it was frozen")


@pytest.mark.parametrize("pair", ["async;ClusterLinkQueueSize 2M"], indirect=True)
def test_940_04_a_full_link_queue_loses_nothing(pair):
    """A member frozen while big changes pour in: its queue (2 MiB here)
    overflows; the changes that did not fit are counted, and once the queue
    has drained the member is asked to pull this node's sessions, so it has
    every session answered 200 all the same."""
    n1, n2 = pair.envs
    os.killpg(n2.pid(), signal.SIGSTOP)
    pair.stopped.append(n2.pid())
    cookies = []
    try:
        for _ in range(80):                 # bounded: ~25 fill the queue
            code, _, cookie = counter(n1, pad=100000)
            assert code == 200
            cookies.append(cookie)
            if member_queues(n1)["node2"][2] > 0:
                break
        not_queued = member_queues(n1)["node2"][2]
    finally:
        os.killpg(n2.pid(), signal.SIGCONT)
        pair.stopped.remove(n2.pid())
    print(f"\n{len(cookies)} sessions of 100 KB while node2 was frozen; "
          f"{not_queued} change(s) did not fit its 2 MiB queue")
    assert not_queued > 0, "the queue never overflowed"
    wait_for(lambda: "asked member node2 to pull this node's sessions"
             in n1.error_log_text(), 30, "node1 asks node2 to pull its sessions")
    wait_for(lambda: int(status(n2)[0]["SessionsPrimary"]) >= len(cookies), 30,
             f"node2 holds all {len(cookies)} sessions")
    for cookie in cookies:
        code, n, _ = counter(n2, cookie)
        assert code == 200 and n == 2, (cookie[:6], code, n)
