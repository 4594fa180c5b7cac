"""Both backup-manager walkthrough cases through the balancer: the demo
(balancer + 3 nodes, ClusterManager backup, sync), the balancer forced to
the node each case needs by disabling the other one in balancer-manager,
then the session's primary killed with kill -9."""

import re
import signal
import os
import time

import pytest
import requests

from pyhttpd.cluster import COOKIE_NAME, parse_auto, parse_sessions, session_hash, split_id, wait_for
from pyhttpd.demo import ROUTES, Demo
from pyhttpd.env import _pid_alive, group_members

LIMIT = 15


@pytest.fixture(scope="module")
def demo(module_path):
    d = Demo(module_path, "backup", "sync")
    try:
        d.start()
        yield d
    finally:
        p = d.stop()
        assert p.returncode == 0, f"demo.sh stop failed: {p.stdout}{p.stderr}"
        assert not d.crash_lines(), d.crash_lines()


def node_url(demo, route, path=""):
    return f"http://127.0.0.1:{demo.port + int(route[4:])}{path}"


def placement(demo, h):
    """{route: role} of session h on the nodes that answer."""
    roles = {}
    for r in ROUTES:
        try:
            text = requests.get(node_url(demo, r, "/cluster-manager?sessions"), timeout=3).text
        except requests.RequestException:
            continue
        for e in parse_sessions(text):
            if e.h == h:
                roles[r] = (e.role, e.primary, e.backup)
    return roles


def set_disabled(demo, route, disabled):
    """Disable (or enable) a balancer member in balancer-manager."""
    url = demo.url("/balancer-manager")
    nonce = re.search(r"nonce=([0-9a-f-]+)", requests.get(url, timeout=5).text).group(1)
    r = requests.post(url, timeout=5, headers={"Referer": url},
                      data={"b": "cluster", "w": node_url(demo, route), "nonce": nonce,
                            "w_status_D": "1" if disabled else "0"})
    assert r.status_code == 200, r.text[:300]


def hit(demo, jar):
    r = requests.get(demo.url("/counter"), cookies=jar, timeout=LIMIT,
                     headers={"Connection": "close"})
    assert r.status_code == 200, (r.status_code, r.text[:300], demo.log_tails())
    if COOKIE_NAME in r.cookies:
        jar[COOKIE_NAME] = r.cookies[COOKIE_NAME]
    return int(r.text.split("=")[1])


def kill_node(demo, route):
    """kill -9 the node; return once all its processes are gone (a dying
    process still holding the listening socket would have the balancer's
    connection reset: a 502 that says nothing about the cluster)."""
    pgid = int((demo.dir / route / "run" / "httpd.pid").read_text())
    os.killpg(pgid, signal.SIGKILL)
    wait_for(lambda: not any(_pid_alive(p) for p in group_members(pgid)), LIMIT,
             f"{route}'s processes gone")


def restart_node(demo, route):
    d = demo.dir / route
    (d / "run" / "httpd.pid").unlink(missing_ok=True)
    os.system(f"apache2 -d {d} -f {d}/httpd.conf -k start")
    wait_for(lambda: requests.get(node_url(demo, route, "/cluster-manager?ready"),
                                  timeout=2).status_code == 200, LIMIT, f"{route} ready")
    # every node sees every member up, and its clusterd (which looks every
    # 100 ms) has handed its share of backups to the one that came back
    # (MemberChangesPending 0): the next case starts from a settled cluster,
    # not in the middle of a rebalance
    wait_for(lambda: all(settled(demo, r) for r in ROUTES), LIMIT,
             "every member up everywhere, and every node acted on it")
    # and the balancer uses the node again: the next case may have to fail
    # over to it alone
    wait_for(lambda: all(balancer_uses(demo, r) for r in ROUTES), LIMIT,
             f"the balancer uses {route} again: {balancer_states(demo)}")


def balancer_status(demo, route):
    """The Status cell of route's worker in balancer-manager ('Init Ok',
    'Init Err', 'Init HcFl', ...)."""
    text = requests.get(demo.url("/balancer-manager"), timeout=5).text
    for row in re.findall(r"<tr>(.*?)</tr>", text, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip()
                 for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
        if cells and cells[0] == node_url(demo, route):
            return next((c for c in cells if c.startswith("Init")), "")
    return ""


def balancer_states(demo):
    return {r: balancer_status(demo, r) for r in ROUTES}


def balancer_uses(demo, route):
    """The balancer's worker for route is usable ('Init Ok'). A health check
    that failed while the node was down clears at the next passing check
    (hcinterval 1 s); a worker put in error by the kill alone is tried again
    only by a request (after retry=1 s): one that sticks to it is sent."""
    state = balancer_status(demo, route)
    if state == "Init Ok":
        return True
    if "Err" in state and "HcFl" not in state:
        requests.get(demo.url("/cluster-manager?ready"), timeout=LIMIT,
                     cookies={COOKIE_NAME: f"{'A' * 24}.{route}"},
                     headers={"Connection": "close"})
    return False


def settled(demo, route):
    text = requests.get(node_url(demo, route, "/cluster-manager?auto"), timeout=2).text
    auto = parse_auto(text)[0]
    return int(auto["MembersUp"]) == len(ROUTES) and auto["MemberChangesPending"] == "0"


@pytest.mark.parametrize("case", ["backup", "proxy"])
def test_1020_walkthrough_case_through_balancer(demo, case):
    """case "backup" (walkthrough case 1): the balancer can only fail over to
    the session's backup; case "proxy" (case 2): only to the third node."""
    jar = {}
    assert [hit(demo, jar) for _ in range(3)] == [1, 2, 3]
    base, primary = split_id(jar[COOKIE_NAME])
    h = session_hash(base)
    wait_for(lambda: len(placement(demo, h)) == 3, LIMIT, "placement known everywhere")
    roles = placement(demo, h)
    backup = roles[primary][2]
    proxy = next(r for r in ROUTES if r not in (primary, backup))
    target, other = (backup, proxy) if case == "backup" else (proxy, backup)
    set_disabled(demo, other, True)
    try:
        t0 = time.monotonic()
        kill_node(demo, primary)
        assert hit(demo, jar) == 4, "the count did not go on through the balancer"
        ms = (time.monotonic() - t0) * 1000
        assert split_id(jar[COOKIE_NAME]) == (base, target), jar
        # the new primary answered in sync mode: its backup holds the change
        want_backup = proxy if case == "backup" else backup
        roles = placement(demo, h)
        assert roles[target] == ("primary", target, want_backup), roles
        assert roles[want_backup][0] == "backup", roles
        print(f"\nbalancer forced to the {case} ({target}): kill to answer {ms:.0f} ms; "
              f"{target} primary, {want_backup} backup: {roles}")
        assert hit(demo, jar) == 5
    finally:
        set_disabled(demo, other, False)
        restart_node(demo, primary)
