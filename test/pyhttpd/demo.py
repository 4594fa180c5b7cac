"""The demo cluster of balancer_conf/demo.sh (a balancer and node1..3 on
loopback) as the tests drive it: Demo starts and stops one in its own
directory on its own ports and runs test/failover/failover.sh against it."""

import os
import subprocess
import time
from pathlib import Path

from .env import CRASH_PATTERNS, HttpdEnv, repo_root
from .idleak import IdLeaks
from .ports import free_port

ROOT = repo_root()
DEMO = ROOT / "balancer_conf" / "demo.sh"
FAILOVER = ROOT / "test" / "failover" / "failover.sh"
ROUTES = ("node1", "node2", "node3")
# the ports demo.sh uses for SC_DEMO_PORT=P: the balancer P, node N's HTTP
# P+N and replication P+1000+N, the multicast heartbeats (UDP) P+2000; the
# bench scripts (test/bench) run the demo on them too
DEMO_PORT_OFFSETS = (0, 1, 2, 3, 1001, 1002, 1003, 2000)


class Demo:
    """One demo cluster (balancer + node1..3) in its own directory and ports."""

    def __init__(self, module_path, manager, send_mode, membership="static"):
        self.manager = manager
        self.send_mode = send_mode
        self.name = f"{manager}-{send_mode}" + ("-multicast" if membership != "static" else "")
        # under the harness' base dir: world-searchable for the www-data
        # children, removed after a passing run, kept after a failing one
        self.dir = Path(HttpdEnv.base_dir()) / f"demo-{self.name}-{os.getpid()}"
        self.port = free_port(DEMO_PORT_OFFSETS)
        self.module = module_path
        # the tests' own logging on every node: the module at trace1 and the
        # cookies in an access log, so the conftest can tell that no id
        # reaches an error log (pyhttpd.idleak)
        self.node_conf = Path(HttpdEnv.base_dir()) / f"demo-{self.name}-{os.getpid()}.conf"
        self.node_conf.write_text(
            "LogLevel warn session_cluster:trace1\n"
            'LogFormat "%h %t \\"%r\\" %>s %b \\"%{Cookie}i\\" \\"%{Set-Cookie}o\\"" sc\n'
            'CustomLog "logs/access_log" sc\n')
        self.env = dict(os.environ, SC_DEMO_DIR=str(self.dir), SC_DEMO_PORT=str(self.port),
                        SC_DEMO_SEND_MODE=send_mode, SC_DEMO_MEMBERSHIP=membership,
                        SC_DEMO_NODE_CONF=str(self.node_conf))
        self.output = ""
        IdLeaks.add_source(lambda: [(sorted(self.dir.glob("node*/logs/access_log")),
                                     sorted(self.dir.glob("node*/logs/error_log")))])

    def url(self, path=""):
        return f"http://127.0.0.1:{self.port}{path}"

    def ready_urls(self):
        return " ".join(f"{r}=http://127.0.0.1:{self.port + int(r[4:])}/cluster-manager?ready"
                        for r in ROUTES)

    def run(self, *args, timeout=90):
        return subprocess.run([str(DEMO), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self):
        t0 = time.monotonic()
        p = self.run(str(self.module), self.manager)
        self.output = p.stdout + p.stderr
        assert p.returncode == 0, f"demo.sh failed (exit {p.returncode}):\n{self.output}"
        print(f"\n[{self.name}] demo up in {time.monotonic() - t0:.1f} s "
              f"on 127.0.0.1:{self.port}")

    def stop(self):
        return self.run("stop", timeout=120)

    def logs(self):
        return sorted(self.dir.glob("*/logs/*error_log"))

    def crash_lines(self):
        found = []
        for log in self.logs():
            for line in log.read_text(errors="replace").splitlines():
                if any(p.search(line) for p in CRASH_PATTERNS):
                    found.append(f"{log}: {line}")
        return found

    def log_tails(self, n=15):
        out = []
        for log in self.logs():
            lines = log.read_text(errors="replace").splitlines()[-n:]
            out.append(f"--- {log}\n" + "\n".join(lines))
        return "\n".join(out)

    def kill_template(self):
        return f"kill -9 -- -$(cat {self.dir}/%ROUTE%/run/httpd.pid)"

    def restart_template(self):
        d = f"{self.dir}/%ROUTE%"
        return f"rm -f {d}/run/httpd.pid; apache2 -d {d} -f {d}/httpd.conf -k start"

    def failover(self, *templates, extra_env=None, timeout=120):
        env = dict(os.environ, READY_URLS=self.ready_urls(), **(extra_env or {}))
        t0 = time.monotonic()
        p = subprocess.run([str(FAILOVER), self.url(), *templates], env=env,
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        print(f"[{self.name}] failover.sh ran {time.monotonic() - t0:.1f} s:\n{p.stdout}",
              end="")
        return p
