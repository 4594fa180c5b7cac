#!/usr/bin/python3
"""link_cost.py - what replication over the member links costs, per change.

    link_cost.py [--seconds S] [--rounds R] [--connections C] MODULE.so [MODULE.so ...]

Two nodes on loopback (delta, ClusterSendMode sync, one shared key file),
wrk with C connections against node1 only, every request incrementing one of
32 sessions with the Lua counter (test/bench/counter.lua: no CGI fork), so
every request is one replicated change node1 -> node2. Each module given is
measured in turn, R rounds interleaved (so a busy moment of this shared
machine does not fall on one module only), and the table shows each
module's medians:

  req/s, p50, p99          wrk's figures
  node CPU us/req          CPU time (user + system, from /proc) of every
                           process of both nodes, per request
  clusterd us/change       CPU time of the two clusterds, per change
  bytes/change             ChangeBytesSent on node1 per change (frames on
                           the wire, before any TLS record overhead)

Give the module before a change and after it to compare them in one run on
one machine. Figures only: it passes or fails on whether the cluster ran.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyhttpd import HttpdEnv  # noqa: E402
from pyhttpd.env import processes_where  # noqa: E402
from pyhttpd.cluster import cluster_conf, start_env, status, wait_for  # noqa: E402
from pyhttpd.cluster import member_states, write_secret_file  # noqa: E402

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")
SESSIONS = 32


def cpu_of(pids):
    """User + system CPU seconds of these processes (threads included)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / TICK


def group_pids(pid):
    """Every process of the server led by `pid` (its process group)."""
    return processes_where("pgrp", pid)


def lua_conf(work):
    lua = work / "counter.lua"
    lua.write_text((HERE / "counter.lua").read_text())
    os.chmod(lua, 0o644)
    libexec = subprocess.run(["apxs", "-q", "LIBEXECDIR"], capture_output=True,
                             text=True).stdout.strip() or "/usr/lib/apache2/modules"
    return [f"<IfModule !lua_module>",
            f"    LoadModule lua_module {libexec}/mod_lua.so",
            "</IfModule>",
            "LuaScope thread",
            "LuaCodeCache stat",
            f'LuaMapHandler "^/lcounter$" "{lua}" handle']


def start_pair(module, key, work):
    nodes = [HttpdEnv(f"bench-{i}", route=f"node{i}", module=module) for i in (1, 2)]
    members = [(n.route, n.cluster_addr) for n in nodes]
    for n in nodes:
        conf = cluster_conf(n, members=members, send_mode="sync", secret_file=key,
                            session_path="/lcounter")
        conf.add(lua_conf(work))
        # what an admin runs (balancer_conf/node.conf.in), not the suite's
        # trace1, which logs a line per change
        conf.add(["LogLevel warn session_cluster:info"])
        start_env(n, conf)
    wait_for(lambda: all(member_states(n).get(o.route) == "up"
                         for n in nodes for o in nodes if o is not n), 20,
             "both members up")
    return nodes


def make_cookies(node, path):
    import requests
    lines = []
    for _ in range(SESSIONS):
        r = requests.get(node.url("/lcounter"), timeout=10)
        assert r.status_code == 200, r.text
        lines.append(r.cookies["JSESSIONID"])
    path.write_text("\n".join(lines) + "\n")


def wrk(node, cookies, seconds, connections):
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s",
                          "--latency", "-s", str(HERE / "sessions.lua"),
                          node.url("/lcounter")], capture_output=True, text=True,
                         env={**os.environ, "SC_BENCH_COOKIES": str(cookies)},
                         timeout=seconds + 60).stdout
    def ms(label):
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return reqs, float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), \
        ms("50%"), ms("99%"), int(non2xx.group(1)) if non2xx else 0


def measure(module, key, work, seconds, connections):
    nodes = start_pair(module, key, work)
    try:
        cookies = work / "cookies"
        make_cookies(nodes[0], cookies)
        groups = [group_pids(n.pid()) for n in nodes]
        clusterds = [int(status(n)[0]["ClusterdPid"]) for n in nodes]
        sent0 = int(status(nodes[0])[0]["ChangesSent"])
        bytes0 = int(status(nodes[0])[0]["ChangeBytesSent"])
        cpu0 = cpu_of(p for g in groups for p in g)
        cd0 = cpu_of(clusterds)
        reqs, rps, p50, p99, bad = wrk(nodes[0], cookies, seconds, connections)
        # children started meanwhile count too
        groups = [group_pids(n.pid()) for n in nodes]
        cpu1 = cpu_of(p for g in groups for p in g)
        cd1 = cpu_of(clusterds)
        values = status(nodes[0])[0]
        changes = int(values["ChangesSent"]) - sent0
        nbytes = int(values["ChangeBytesSent"]) - bytes0
        assert bad == 0, f"{bad} answers were not 2xx"
        return {"rps": rps, "p50": p50, "p99": p99,
                "node_us": (cpu1 - cpu0) * 1e6 / max(reqs, 1),
                "clusterd_us": (cd1 - cd0) * 1e6 / max(changes, 1),
                "bytes": nbytes / max(changes, 1)}
    finally:
        for n in nodes:
            n.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="+")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=8)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sc-linkcost-"))
    os.chmod(work, 0o755)
    key = write_secret_file(work / "cluster.key")
    results = {m: [] for m in args.modules}
    for r in range(args.rounds):
        for m in args.modules:
            res = measure(os.path.abspath(m), key, work, args.seconds, args.connections)
            results[m].append(res)
            print(f"round {r + 1} {m}: " + ", ".join(f"{k} {v:.1f}" for k, v in res.items()),
                  flush=True)
    print(f"\nmedians of {args.rounds} rounds, {args.seconds} s each, wrk -c {args.connections} "
          f"on node1, 2 nodes, sync")
    print(f"{'module':50s} {'req/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} "
          f"{'node us/req':>11s} {'clusterd us/chg':>15s} {'bytes/chg':>9s}")
    for m, rs in results.items():
        med = {k: statistics.median(x[k] for x in rs) for k in rs[0]}
        print(f"{m[-50:]:50s} {med['rps']:8.0f} {med['p50']:7.2f} {med['p99']:7.2f} "
              f"{med['node_us']:11.0f} {med['clusterd_us']:15.1f} {med['bytes']:9.1f}")
    HttpdEnv.cleanup_base_dir()


if __name__ == "__main__":
    main()
