#!/usr/bin/python3
"""replication.py - what replication costs, measured in one run on one machine.

    replication.py MODULE.so [--seconds S] [--connections C] [--configs LIST]
                   [--big BYTES] [--rounds R] [--warmup W] [--out DIR] [--port P]
                   [--floor IPC_FLOOR]

Three nodes from balancer_conf/node.conf.in behind the demo's event-MPM
balancer (byrequests, sticky), started by balancer_conf/demo.sh; the Lua
counter (counter.lua) as the application; wrk (owned.lua) with one session
per connection, each used by one request at a time, so that every 200 is one
increment the store must hold afterwards. For each configuration:

    none          the same nodes and application, no ClusterMember lines
    delta-async, delta-ack, delta-sync, backup-ack, backup-sync
and each once with the counter alone and once with a BYTES-byte session of
which every request changes one key (--big, default 10000; 0: skip).
Each run is measured after W seconds of the same load on other sessions
(--warmup, default 2; 0: none): in the first second of load each node's
event MPM forks its extra children and every worker thread makes its Lua
state, and requests stalled 50-700 ms then, in every configuration. The
warm-up's saves are counted back too.

Measured: req/s (requests that carried a session, answered, per second),
p50 and p99 (wrk), node CPU per request (utime + stime of every process of
the three nodes, from /proc, over the run; "clusterd": the daemons' share,
"cd cs/req": the daemons' context switches per request, a wake-up each but
for a few preemptions),
bytes per update (ChangeBytesSent of the nodes over the 200s), saves lost
(increments answered 200 that the store does not hold), mod_session's "not
saved" lines and the nodes' "unconf" lines (an ack/sync save that fewer
members confirmed than it was sent to), both over the whole run, warm-up
included, and "timeouts" (wrk's socket errors and timeouts, plus
requests it sent without a session because a timed-out one never gave its
session back; a run with socket errors leaves wrk's output and every
server's error log in DIR/errors/); each configuration's req/s as a ratio
to "none" of the same payload, its CPU as the difference. Prints a table,
writes it (replication.txt), the figures (replication.json) and a plot
(replication.svg, python3-matplotlib) to DIR (default
.build/bench-replication). Fails only when the cluster did not run or a
save was lost.

With --rounds R every configuration runs R times, the rounds one after the
other (none, then each configuration, then none again...), so a busy moment
of this shared machine falls on all of them alike. Each run is compared with
the "none" of its own round; the table shows the medians of the R runs (the
ratio's and the difference's medians too), the ratio's lowest and highest
in "x range", and the counts (200s, lost...) summed over the rounds; each
row of replication.json keeps its runs.

With --floor (the path of .build/ipc_floor, test/bench/ipc_floor.c; ./build.sh
bench replication gives it) the table is followed by this machine's kernel
floor, measured right after the runs: the CPU of a bare TCP round trip and a
bare futex round trip between two processes, quiet and with every CPU busy,
and what one answered change (ack/sync) costs at least with one member
(backup) and two (delta, three nodes), whatever a module does. Set against
the "+ vs none" column it says how much of an ack/sync change's cost the
kernel's messages are.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOP = HERE.parents[1]
DEMO = TOP / "balancer_conf" / "demo.sh"
CONFIGS = {
    "none": ("delta", "async", "none"),
    "delta-async": ("delta", "async", "static"),
    "delta-ack": ("delta", "ack", "static"),
    "delta-sync": ("delta", "sync", "static"),
    "backup-ack": ("backup", "ack", "static"),
    "backup-sync": ("backup", "sync", "static"),
}
TICK = os.sysconf("SC_CLK_TCK")


def die(msg):
    print(f"replication.py: {msg}", file=sys.stderr)
    sys.exit(1)


def get(port, path, cookie=None, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Cookie": f"JSESSIONID={cookie}"} if cookie else {}
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read().decode("utf-8", "replace")
    set_cookie = resp.getheader("Set-Cookie") or ""
    conn.close()
    return resp.status, body, set_cookie


def group_cpu(pgid):
    """utime + stime (seconds) of every live process in process group pgid."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:                     # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def proc_cpu(pid):
    """utime + stime (seconds) of one process; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_switches(pid):
    """Context switches (voluntary and not) of every thread of one process;
    0 when it is gone. A thread that ended takes its count with it: clusterd's
    threads live as long as it does."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        total += sum(int(v) for v in re.findall(r"^\w*ctxt_switches:\s+(\d+)$",
                                                 text, re.M))
    return total


def autogroup():
    """The kernel's sched_autogroup: when on, each daemonized httpd (a
    session of its own) is one scheduling group, and the nodes, the balancer
    and wrk share the CPUs as six groups rather than thread by thread; the
    figures differ a lot between the two (see README)."""
    try:
        on = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    except OSError:
        return "no sched_autogroup"
    return "sched_autogroup " + ("on" if on == "1" else "off")


def node_pids(root):
    return [int((root / r / "run" / "httpd.pid").read_text().strip())
            for r in ("node1", "node2", "node3")]


def auto(port):
    status, body, _ = get(port, "/cluster-manager?auto")
    if status != 200:
        die(f"?auto on port {port} answered {status}")
    return dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)


def wrk_figures(text):
    def latency(label):
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    total = re.search(r"^\s*(\d+) requests in", text, re.M)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                       r"timeout (\d+)", text)
    return {"requests": int(total.group(1)) if total else 0,
            "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
            "p50": latency("50%"), "p99": latency("99%")}


def new_sessions(args, name, path, cookies_file):
    """One new session per connection, their cookies one per line."""
    cookies = []
    for _ in range(args.connections):
        status, _, set_cookie = get(args.port, path)
        m = re.search(r"JSESSIONID=([^;]+)", set_cookie)
        if status != 200 or not m:
            die(f"{name}: no session from {path} ({status})")
        cookies.append(m.group(1))
    cookies_file.write_text("\n".join(cookies) + "\n")


def run_wrk(args, name, path, seconds, cookies_file, out_file, env):
    wrk = subprocess.run(
        ["wrk", "-t", str(args.threads), "-c", str(args.connections),
         "-d", f"{seconds}s", "--latency", "-s", str(HERE / "owned.lua"),
         f"http://127.0.0.1:{args.port}{path}"],
        env=dict(env, SC_BENCH_COOKIES=str(cookies_file), SC_BENCH_OUT=str(out_file)),
        capture_output=True, text=True, timeout=seconds + 60)
    if wrk.returncode:
        die(f"{name}: wrk failed:\n{wrk.stdout}{wrk.stderr}")
    return wrk


def keep_evidence(args, name, big, root, wrk_out):
    """A run where wrk saw socket errors: its output and every server's
    error log go to DIR/errors/<configuration>-<payload>-<n>/, to read."""
    base = Path(args.out) / "errors"
    base.mkdir(parents=True, exist_ok=True)
    n = len(list(base.glob(f"{name}-{big}-*"))) + 1
    dest = base / f"{name}-{big}-{n}"
    dest.mkdir()
    (dest / "wrk.txt").write_text(wrk_out)
    for log in list(root.glob("*/logs/*error_log")):
        shutil.copy(log, dest / f"{log.parent.parent.name}-{log.name}")
    print(f"  wrk saw socket errors: its output and the error logs are in {dest}",
          file=sys.stderr)


def count_back(args, name, path, out_file):
    """The 200s owned.lua counted per session against what the store holds:
    a session read back holds one increment per 200 (and at most one more
    per request that was under way when wrk stopped: "extra")."""
    c = dict(ok=0, failed=0, lost=0, extra=0, plain=0)
    for line in out_file.read_text().split("\n"):
        if line.startswith("plain "):
            c["plain"] = int(line.split()[1])
            continue
        if not line:
            continue
        cookie, n_ok, n_failed = line.split()
        c["ok"] += int(n_ok)
        c["failed"] += int(n_failed)
        status, body, _ = get(args.port, path, cookie)
        m = re.search(r"count=(\d+)", body)
        if status != 200 or not m:
            die(f"{name}: cannot read a session back ({status})")
        stored = int(m.group(1)) - 1          # reading counts one more
        c["lost"] += max(0, 1 + int(n_ok) - stored)
        c["extra"] += max(0, stored - 1 - int(n_ok) - int(n_failed))
    return c


def run_one(args, name, big, work):
    manager, mode, membership = CONFIGS[name]
    root = work / "demo"
    env = dict(os.environ, SC_DEMO_DIR=str(root), SC_DEMO_PORT=str(args.port),
               SC_DEMO_SEND_MODE=mode, SC_DEMO_MEMBERSHIP=membership,
               SC_DEMO_NODE_CONF=str(work / "lcounter.conf"))
    node_ports = [args.port + i for i in (1, 2, 3)]
    started = subprocess.run([str(DEMO), args.module, manager], env=env,
                             capture_output=True, text=True)
    if started.returncode:
        die(f"{name}: the demo did not start:\n{started.stdout}{started.stderr}")
    try:
        path = f"/lcounter?pad={big}" if big else "/lcounter"
        wrk_env = dict(env, SC_BENCH_PATH=path, SC_BENCH_THREADS=str(args.threads))
        warm_lost = 0
        if args.warmup:
            # the same load on other sessions first: each node's event MPM
            # forks its extra children and every worker thread makes its Lua
            # state then (requests stalled 50-700 ms in the first second of a
            # run, in every configuration); those saves are counted back too
            new_sessions(args, name, path, work / "warm-cookies")
            run_wrk(args, name, path, args.warmup, work / "warm-cookies",
                    work / "warm.out", wrk_env)
            warm_lost = count_back(args, name, path, work / "warm.out")["lost"]
        new_sessions(args, name, path, work / "cookies")
        pids = node_pids(root)
        autos = [auto(p) for p in node_ports]
        bytes0 = sum(int(a.get("ChangeBytesSent", 0)) for a in autos)
        daemons = [int(a.get("ClusterdPid", 0)) for a in autos]
        cpu0 = sum(group_cpu(pid) for pid in pids)
        daemon0 = sum(proc_cpu(pid) for pid in daemons)
        switches0 = sum(proc_switches(pid) for pid in daemons)
        wrk = run_wrk(args, name, path, args.seconds, work / "cookies",
                      work / "owned.out", wrk_env)
        cpu = sum(group_cpu(pid) for pid in pids) - cpu0
        daemon = sum(proc_cpu(pid) for pid in daemons) - daemon0
        switches = sum(proc_switches(pid) for pid in daemons) - switches0
        sent = sum(int(auto(p).get("ChangeBytesSent", 0)) for p in node_ports) - bytes0
        fig = wrk_figures(wrk.stdout)
        counted = count_back(args, name, path, work / "owned.out")
        ok, failed = counted["ok"], counted["failed"]
        logs = [(root / r / "logs" / "error_log").read_text()
                for r in ("node1", "node2", "node3")]
        if fig["socket_errors"]:
            keep_evidence(args, name, big, root, wrk.stdout)
        not_saved = sum(log.count("AH01822") for log in logs)
        unconfirmed = sum(log.count(" member(s) confirmed within ") for log in logs)
        # session requests only: a wrk connection whose session never came
        # back (a timed-out request) sends requests without one
        fig.update(rps=(ok + failed) / args.seconds, plain=counted["plain"])
        fig.update(name=name, big=big, ok=ok, failed=failed,
                   lost=counted["lost"] + warm_lost, extra=counted["extra"],
                   not_saved=not_saved, unconfirmed=unconfirmed,
                   cpu_ms=1000.0 * cpu / max(ok + failed, 1),
                   clusterd_ms=1000.0 * daemon / max(ok + failed, 1),
                   clusterd_switches=switches / max(ok + failed, 1),
                   bytes_per_update=sent / max(ok, 1))
        return fig
    finally:
        subprocess.run([str(DEMO), "stop"], env=env, capture_output=True)


def compare(runs):
    """Each run of one round against that round's "none" of its payload."""
    base = {r["big"]: r for r in runs if r["name"] == "none"}
    for r in runs:
        b = base.get(r["big"])
        r["x_none"] = r["rps"] / b["rps"] if b and b["rps"] else None
        r["cpu_above"] = r["cpu_ms"] - b["cpu_ms"] if b else None


MEDIANS = ("rps", "p50", "p99", "cpu_ms", "clusterd_ms", "clusterd_switches",
           "bytes_per_update", "x_none", "cpu_above")
SUMS = ("ok", "failed", "lost", "extra", "not_saved", "unconfirmed", "socket_errors",
        "plain")


def aggregate(rounds):
    """One row per configuration and payload: medians and sums of its runs."""
    rows = []
    for first in rounds[0]:
        runs = [r for rnd in rounds for r in rnd
                if (r["name"], r["big"]) == (first["name"], first["big"])]
        row = {"name": first["name"], "big": first["big"], "rounds": len(runs),
               "runs": runs}
        for key in MEDIANS:
            values = [r[key] for r in runs if r[key] is not None]
            row[key] = statistics.median(values) if values else None
        for key in SUMS:
            row[key] = sum(r[key] for r in runs)
        ratios = [r["x_none"] for r in runs if r["x_none"] is not None]
        row["x_none_range"] = (min(ratios), max(ratios)) if ratios else None
        rows.append(row)
    return rows


def table(results):
    head = (f"{'configuration':<13} {'session':>8} {'req/s':>8} {'x none':>7} "
            f"{'x range':>9} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'CPU ms/req':>10} {'+ vs none':>9} "
            f"{'clusterd':>8} {'cd cs/req':>9} "
            f"{'B/update':>8} {'200s':>7} {'other':>6} {'lost':>5} {'AH01822':>7} {'unconf':>6} "
            f"{'timeouts':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        ratio = f"{r['x_none']:.2f}" if r["x_none"] is not None else "-"
        above = f"{r['cpu_above']:+.3f}" if r["cpu_above"] is not None else "-"
        low_high = r["x_none_range"]
        spread = (f"{low_high[0]:.2f}-{low_high[1]:.2f}"
                  if low_high and r["rounds"] > 1 else "-")
        lines.append(f"{r['name']:<13} {(str(r['big']) + ' B') if r['big'] else 'counter':>8} "
                     f"{r['rps']:>8.0f} {ratio:>7} {spread:>9} "
                     f"{r['p50']:>7.2f} {r['p99']:>7.2f} "
                     f"{r['cpu_ms']:>10.3f} {above:>9} {r['clusterd_ms']:>8.3f} "
                     f"{r['clusterd_switches']:>9.1f} "
                     f"{r['bytes_per_update']:>8.1f} "
                     f"{r['ok']:>7} {r['failed']:>6} {r['lost']:>5} {r['not_saved']:>7} "
                     f"{r['unconfirmed']:>6} "
                     f"{r['socket_errors'] + r['plain']:>8}")
    return "\n".join(lines)


def plot(results, path, title):
    import matplotlib
    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    payloads = sorted({r["big"] for r in results})
    names = [n for n in CONFIGS if any(r["name"] == n for r in results)]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5))
    width = 0.8 / len(payloads)
    for k, big in enumerate(payloads):
        rows = {r["name"]: r for r in results if r["big"] == big}
        xs = [i + k * width for i in range(len(names))]
        label = f"{big} B session" if big else "counter"
        for ax, key in zip(axes, ("rps", "cpu_ms", "p99")):
            heights = [rows[n][key] if n in rows else 0 for n in names]
            # the runs' lowest and highest, when there were several rounds
            spread = [[h - min(r[key] for r in rows[n]["runs"]) for n, h in
                       zip(names, heights) if n in rows],
                      [max(r[key] for r in rows[n]["runs"]) - h for n, h in
                       zip(names, heights) if n in rows]]
            ax.bar(xs, heights, width, label=label,
                   yerr=spread if all(n in rows for n in names) else None,
                   capsize=2)
    for ax, what in zip(axes, ("requests per second", "node CPU ms per request",
                               "p99 latency (ms)")):
        ax.set_title(what)
        ax.set_xticks([i + width * (len(payloads) - 1) / 2 for i in range(len(names))])
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)


def kernel_floor(tool, seconds):
    """ipc_floor's figures (a few seconds: its round trips scale with the
    runs' length), or die: asked for, they are part of the result."""
    count = max(200, min(3000, 300 * seconds))
    r = subprocess.run([tool, "--count", str(count), "--rounds", "5"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode or "least kernel CPU per answered change" not in r.stdout:
        die(f"{tool} did not measure:\n{r.stdout}{r.stderr}")
    return r.stdout.rstrip("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("module")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--big", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--port", type=int, default=int(os.environ.get("SC_BENCH_PORT", 28080)))
    ap.add_argument("--out", default=str(TOP / ".build" / "bench-replication"))
    ap.add_argument("--floor", help="ipc_floor, to print the kernel's floor below the table")
    args = ap.parse_args()
    args.module = str(Path(args.module).resolve())
    names = [n for n in args.configs.split(",") if n]
    for n in names:
        if n not in CONFIGS:
            die(f"unknown configuration '{n}' (known: {', '.join(CONFIGS)})")
    if not shutil.which("wrk"):
        die("wrk is needed (apt-get install wrk)")
    if args.connections % args.threads:
        die("--connections must be a multiple of --threads")
    if args.warmup < 0:
        die("--warmup must not be negative")
    if args.rounds < 1:
        die("--rounds must be at least 1")
    if args.floor and not os.access(args.floor, os.X_OK):
        die(f"--floor {args.floor}: not an executable (make tools builds .build/ipc_floor)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sc-bench-repl."))
    os.chmod(work, 0o755)
    try:
        shutil.copy(HERE / "counter.lua", work / "counter.lua")
        moddir = subprocess.check_output(["apxs", "-q", "LIBEXECDIR"], text=True).strip()
        (work / "lcounter.conf").write_text(
            (HERE / "lcounter.conf.in").read_text()
            .replace("@MODDIR@", moddir).replace("@COUNTER@", str(work / "counter.lua")))
        rounds = []
        for k in range(args.rounds):
            runs = []
            for big in ([0, args.big] if args.big else [0]):
                for name in names:
                    r = run_one(args, name, big, work)
                    runs.append(r)
                    print(f"  round {k + 1}/{args.rounds}: {name} "
                          f"{'counter' if not big else f'{big} B'}: "
                          f"{r['rps']:.0f} req/s, lost {r['lost']}", file=sys.stderr)
            compare(runs)
            rounds.append(runs)
        results = aggregate(rounds)
        text = table(results)
        title = (f"mod_session_cluster replication cost: 3 nodes + balancer on "
                 f"{os.cpu_count()} cores ({autogroup()}), "
                 f"wrk -t{args.threads} -c{args.connections}, "
                 f"{args.seconds} s per run"
                 + (f" after {args.warmup} s of warm-up" if args.warmup else "")
                 + (f", medians of {args.rounds} rounds" if args.rounds > 1 else ""))
        if args.floor:
            text += "\n\nthis machine's kernel floor, measured after the runs:\n" \
                + kernel_floor(args.floor, args.seconds)
        print(title)
        print(text)
        (out / "replication.txt").write_text(title + "\n" + text + "\n")
        (out / "replication.json").write_text(json.dumps(results, indent=1) + "\n")
        plot(results, out / "replication.svg", title)
        print(f"table: {out / 'replication.txt'}\nplot: {out / 'replication.svg'}")
        lost = sum(r["lost"] for r in results)
        if lost:
            die(f"{lost} save(s) answered 200 are not in the store")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
