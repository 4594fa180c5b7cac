"""Static membership between real nodes: clusterd pings every member; a node
killed (kill -9 of its whole process group) or frozen (SIGSTOP, its kernel
still accepts TCP) is marked down within seconds and up again when it comes
back; a killed clusterd is started again by httpd."""

import os
import signal

import pytest

from pyhttpd import HttpdEnv
from pyhttpd.cluster import (all_see, cluster_conf, member_states, start_env, status,
                             stop_env, wait_for)

ROUTES = ("node1", "node2", "node3")
DETECT_LIMIT = 8.0          # seconds allowed to notice a change (droptime is 3)


@pytest.fixture(scope="module")
def nodes(module_path):
    envs = [HttpdEnv(f"member-{r}", mpm="event", module=module_path, route=r)
            for r in ROUTES]
    members = [(e.route, e.cluster_addr) for e in envs]
    for e in envs:
        start_env(e, cluster_conf(e, members=members))
    yield envs
    for e in envs:
        stop_env(e)



def test_800_01_all_members_up(nodes):
    took = wait_for(lambda: all(all_see(nodes, r, "up") for r in ROUTES),
                    DETECT_LIMIT, "every node sees every member up")
    for e in nodes:
        auto, _ = status(e)
        assert auto["MembersUp"] == "3" and auto["MembersTotal"] == "3"
        assert int(auto["ClusterdPid"]) > 0
    print(f"\nall 3 members up after {took:.2f}s")


def test_800_02_kill9_node_down_and_back(nodes):
    n1, n2, n3 = nodes
    wait_for(lambda: all_see(nodes, "node3", "up"), DETECT_LIMIT, "node3 up")
    os.killpg(n3.pid(), signal.SIGKILL)         # parent, children, clusterd
    took = wait_for(lambda: all_see([n1, n2], "node3", "down"), DETECT_LIMIT,
                    "node1 and node2 see node3 down")
    print(f"\nkill -9 of node3 detected in {took:.2f}s")
    assert "member node3" in n1.error_log_text() and "is down" in n1.error_log_text()
    n3.stop()                                    # clears the stale pid file
    start_env(n3, cluster_conf(n3, members=[(e.route, e.cluster_addr) for e in nodes]))
    took = wait_for(lambda: all(all_see(nodes, r, "up") for r in ROUTES),
                    DETECT_LIMIT, "node3 back up everywhere")
    print(f"restarted node3 seen up in {took:.2f}s")


def test_800_03_sigstop_node_down_sigcont_up(nodes):
    n1, n2, _ = nodes
    wait_for(lambda: all_see([n1], "node2", "up"), DETECT_LIMIT, "node2 up")
    pgid = n2.pid()
    os.killpg(pgid, signal.SIGSTOP)
    try:
        took = wait_for(lambda: member_states(n1).get("node2") == "down",
                        DETECT_LIMIT, "node1 sees the frozen node2 down")
        print(f"\nSIGSTOP of node2 detected in {took:.2f}s")
    finally:
        os.killpg(pgid, signal.SIGCONT)
    took = wait_for(lambda: member_states(n1).get("node2") == "up", DETECT_LIMIT,
                    "node2 up again after SIGCONT")
    print(f"SIGCONT of node2 seen up in {took:.2f}s")


def test_800_04_clusterd_respawned(nodes):
    n1 = nodes[0]
    auto, _ = status(n1)
    old_pid, starts = int(auto["ClusterdPid"]), int(auto["ClusterdStarts"])
    os.kill(old_pid, signal.SIGKILL)

    def respawned():
        a, _ = status(n1)
        return int(a["ClusterdPid"]) not in (0, old_pid) \
            and int(a["ClusterdStarts"]) == starts + 1
    wait_for(respawned, DETECT_LIMIT, "clusterd started again")
    wait_for(lambda: all(s == "up" for s in member_states(n1).values()),
             DETECT_LIMIT, "members up again through the new clusterd")
    assert "clusterd (pid %d) died" % old_pid in n1.error_log_text()


def test_800_05_graceful_restarts_clusterd(nodes):
    n1 = nodes[0]
    old_pid = int(status(n1)[0]["ClusterdPid"])
    n1.graceful()
    wait_for(lambda: int(status(n1)[0]["ClusterdPid"]) != old_pid, DETECT_LIMIT,
             "a new clusterd after graceful")
    wait_for(lambda: all(s == "up" for s in member_states(n1).values()),
             DETECT_LIMIT, "members up after graceful")
    assert not _pid_alive(old_pid), "the old generation's clusterd is still alive"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
