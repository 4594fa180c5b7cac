"""balancer_conf/node-balancer.conf.in: every node is also a balancer. A
client may use any node's front door: stickiness sends it to its session's
node, and when that node dies the other front fails over to its own back end,
which serves the replicated session under its own route."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from pyhttpd import frontdoor
from pyhttpd.idleak import IdLeaks
from pyhttpd.cluster import COOKIE_NAME, split_id, wait_for
from pyhttpd.conf import shared_secret_file
from pyhttpd.env import MODULES_DIR, _pid_alive, find_module, group_members, repo_root
from pyhttpd.ports import free_port

TEMPLATE = repo_root() / "balancer_conf" / "node-balancer.conf.in"
COUNTER_APP = repo_root() / "test" / "apps" / "counter.cgi"


class Node:
    def __init__(self, base, route):
        self.route = route
        self.root = base / route
        self.front, self.back, self.cluster = free_port(), free_port(), free_port()
        for d in ("run", "logs", "htdocs", "cgi-bin"):
            (self.root / d).mkdir(parents=True)
        shutil.copy(COUNTER_APP, self.root / "cgi-bin" / "counter.cgi")
        os.chmod(self.root / "cgi-bin" / "counter.cgi", 0o755)
        for p in [self.root, *self.root.iterdir(), *self.root.parents]:
            if str(p).startswith(str(base.parent)):
                os.chmod(p, 0o755)

    def write(self, nodes):
        members = "\n".join(f"ClusterMember {n.route} 127.0.0.1:{n.cluster}" for n in nodes)
        balancers = "\n".join(
            f'        BalancerMember "http://127.0.0.1:{n.back}" route={n.route} '
            f"retry=1 disablereuse=On connectiontimeout=1 timeout=10 hcmethod=GET "
            f"hcuri=/cluster-manager?ready hcinterval=1" for n in nodes)
        text = TEMPLATE.read_text()
        for k, v in {"@ROOT@": str(self.root), "@MODDIR@": MODULES_DIR,
                     "@MODULE@": str(find_module()), "@ROUTE@": self.route,
                     "@CLUSTER_PORT@": str(self.cluster), "@FRONT_PORT@": str(self.front),
                     "@BACK_PORT@": str(self.back), "@CLUSTER_MEMBERS@": members,
                     "@SECRET_FILE@": str(shared_secret_file(self.root.parent)),
                     "@BALANCER_MEMBERS@": balancers}.items():
            text = text.replace(k, v)
        if os.geteuid() != 0:
            text = "\n".join(l for l in text.splitlines()
                             if not l.startswith(("User ", "Group ")))
        # the tests' own logging: the module at trace1, the cookies in an
        # access log, so the conftest can tell no id reaches the error log
        text += ("\nLogLevel warn session_cluster:trace1 proxy_balancer:info\n"
                 'LogFormat "%h %t \\"%r\\" %>s %b \\"%{Cookie}i\\" \\"%{Set-Cookie}o\\"" sc\n'
                 f'CustomLog "{self.root}/logs/access_log" sc\n')
        (self.root / "httpd.conf").write_text(text)
        IdLeaks.add_source(lambda: [([self.root / "logs" / "access_log"],
                                     [self.root / "logs" / "error_log"])])

    def apache(self, *args):
        return subprocess.run(["apache2", "-d", str(self.root), "-f",
                               str(self.root / "httpd.conf"), *args],
                              capture_output=True, text=True, timeout=30)

    def pid(self):
        try:
            return int((self.root / "run" / "httpd.pid").read_text())
        except (OSError, ValueError):
            return None

    def start(self):
        (self.root / "run" / "httpd.pid").unlink(missing_ok=True)
        r = self.apache("-k", "start")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: self.ready(), 15, f"{self.route} ready")

    def ready(self):
        try:
            return requests.get(f"http://127.0.0.1:{self.back}/cluster-manager?ready",
                                timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def front_sees_all_healthy(self, members):
        try:
            page = requests.get(f"http://127.0.0.1:{self.front}/balancer-manager",
                                timeout=2).text
        except requests.RequestException:
            return False
        return page.count("Init Ok") == members and "HcFl" not in page

    def kill(self):
        """kill -9 the whole node; return once every process of it is dead
        (until then a dying process may still hold its listening socket)."""
        pgid = self.pid()
        os.killpg(pgid, signal.SIGKILL)
        wait_for(lambda: not any(_pid_alive(p) for p in group_members(pgid)), 10,
                 f"{self.route}'s processes gone")

    def stop(self):
        pid = self.pid()
        if pid and _pid_alive(pid):
            self.apache("-k", "stop")
            wait_for(lambda: not _pid_alive(pid), 15, f"{self.route} stopped")

    def log(self):
        return (self.root / "logs" / "error_log").read_text(errors="replace")


def hit(front, jar, node=None):
    r = requests.get(f"http://127.0.0.1:{front}/counter", timeout=15,
                     cookies=jar, headers={"Connection": "close"})
    # on failure show the serving node's log: a rare 502 right after a kill
    # was seen once and its cause is not known yet
    assert r.status_code == 200, (r.status_code, r.text, node.log()[-3000:] if node else "")
    if COOKIE_NAME in r.cookies:
        jar[COOKIE_NAME] = r.cookies[COOKIE_NAME]
    return int(r.text.split("=")[1])


@pytest.fixture
def pair(module_path):
    base = Path(tempfile.mkdtemp(prefix="nodebal-"))
    nodes = [Node(base, "node1"), Node(base, "node2")]
    for n in nodes:
        n.write(nodes)
    try:
        for n in nodes:
            n.start()
        for n in nodes:     # each front has health-checked every back end
            wait_for(lambda: n.front_sees_all_healthy(len(nodes)), 15,
                     f"{n.route}'s balancer sees every member healthy")
        yield nodes
        for n in nodes:
            assert "Segmentation fault" not in n.log()
    finally:
        for n in nodes:
            n.stop()
        if not os.environ.get("SC_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


def test_910_01_any_front_door_sticks_and_fails_over(pair):
    n1, n2 = pair
    jar = {}
    assert [hit(n1.front, jar) for _ in range(3)] == [1, 2, 3]
    owner_route = split_id(jar[COOKIE_NAME])[1]
    owner = n1 if owner_route == "node1" else n2
    other = n2 if owner is n1 else n1
    # the other node's front door sends the session to its node
    assert hit(other.front, jar) == 4
    assert split_id(jar[COOKIE_NAME])[1] == owner_route
    owner.kill()
    t0 = time.monotonic()
    assert hit(other.front, jar, other) == 5, "the session did not survive its node"
    print(f"\nfront-door failover: {(time.monotonic() - t0) * 1000:.0f} ms")
    assert split_id(jar[COOKIE_NAME])[1] == other.route


def test_910_02_front_door_refuses_status_pages_and_forged_https(pair):
    """node-balancer.conf.in: every node's front passes only ?ready of the
    back ends' status pages; a client cannot claim https through it."""
    for n in pair:
        assert frontdoor.status_page_leaks(n.front) == [], n.route
        status, _, body = frontdoor.raw_get(n.front, "/cluster-manager?ready")
        assert status == 200, (n.route, status, body)
        attrs = frontdoor.session_cookie(n.front, "/counter", COOKIE_NAME,
                                         {"X-Forwarded-Proto": "https"})
        assert "secure" not in attrs, (n.route, attrs)
        attrs = frontdoor.session_cookie(n.back, "/counter", COOKIE_NAME,
                                         {"X-Forwarded-Proto": "https"})
        assert attrs.get("secure") is True, (n.route, attrs)
