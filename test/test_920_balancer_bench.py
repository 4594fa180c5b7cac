"""test/bench/balancer.sh (./build.sh bench balancer) runs: for each send
mode the demo cluster takes a wrk load through the balancer without a single
error, and every session's count accounts for the requests that reached it.
Short runs: the figures themselves are for `./build.sh bench balancer`."""

import re
import subprocess

from pyhttpd import repo_root
from pyhttpd.demo import DEMO_PORT_OFFSETS
from pyhttpd.ports import free_port

BENCH = repo_root() / "test" / "bench" / "balancer.sh"

CONNECTIONS = 4


def test_920_balancer_bench_runs_clean(module_path):
    r = subprocess.run(["bash", str(BENCH), str(module_path), "1", str(CONNECTIONS)],
                       capture_output=True, text=True, timeout=180,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                            "SC_BENCH_PORT": str(free_port(DEMO_PORT_OFFSETS))})
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stderr
    rows = {m.group(1): m for m in re.finditer(
        r"^(async|ack|sync)\s+([\d.]+)\s+\S+\s+\S+\s+(\d+)\s+(\d+) of (\d+) requests",
        r.stdout, re.M)}
    assert set(rows) == {"async", "ack", "sync"}, r.stdout
    for mode, m in rows.items():
        assert float(m.group(2)) > 0, mode
        assert m.group(3) == "0", f"{mode}: wrk saw errors"
        counted, requests = int(m.group(4)), int(m.group(5))
        # concurrent requests on one session may lose a race (last save
        # wins), never invent increments; wrk does not count the requests
        # in flight on its CONNECTIONS when its time is up, the nodes did
        assert 0.9 * requests <= counted <= requests + CONNECTIONS, \
            (mode, counted, requests)
    assert re.search(r"^none\s+[\d.]+", r.stdout, re.M), r.stdout
