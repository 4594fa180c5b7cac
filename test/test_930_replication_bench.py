"""test/bench/replication.py (./build.sh bench replication) runs: briefly, for
no members, a delta and a backup configuration, with the counter and a big
session, in two rounds (medians, and each run against its own round's "none"),
each run after a warm-up, it prints its table, writes the table, the figures and a plot, and
no save answered 200 is missing from the store; with --floor, this machine's
kernel floor follows the table. The figures themselves are for `./build.sh
bench replication`, not asserted here."""

import json
import re
import subprocess
import xml.etree.ElementTree as ET

from pyhttpd import repo_root
from pyhttpd.demo import DEMO_PORT_OFFSETS
from pyhttpd.ports import free_port

BENCH = repo_root() / "test" / "bench" / "replication.py"
FLOOR = repo_root() / ".build" / "ipc_floor"     # make tools
CONFIGS = ("none", "delta-sync", "backup-ack")


def test_930_replication_bench_table_and_plot(module_path, tmp_path):
    out = tmp_path / "bench"
    r = subprocess.run(["/usr/bin/python3", str(BENCH), str(module_path),
                        "--seconds", "1", "--connections", "4", "--big", "4000",
                        "--configs", ",".join(CONFIGS), "--rounds", "2", "--warmup", "1",
                        "--port", str(free_port(DEMO_PORT_OFFSETS)),
                        "--floor", str(FLOOR), "--out", str(out)],
                       capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stderr
    rows = re.findall(r"^(none|delta-sync|backup-ack)\s+(counter|4000 B)\s+(\d+)\s",
                      r.stdout, re.M)
    assert {(name, kind) for name, kind, _ in rows} == \
        {(n, k) for n in CONFIGS for k in ("counter", "4000 B")}, r.stdout
    assert all(int(rps) > 0 for _, _, rps in rows), r.stdout
    assert "after 1 s of warm-up" in r.stdout, r.stdout
    # the floor: both round trips, quiet and busy, and the sums per member count
    floor = r.stdout.split("this machine's kernel floor", 1)[1]
    for load in ("quiet", "busy"):
        for trip in ("TCP loopback", "futex"):
            assert re.search(rf"^{load}\s+{trip}.*?\s\d+\.\d\s", floor, re.M), floor
    sums = re.search(r"1 member \(backup\) ([\d.]+) quiet, ([\d.]+) busy; "
                     r"2 members \(delta, 3 nodes\) ([\d.]+) quiet, ([\d.]+) busy", floor)
    assert sums and all(float(v) > 0 for v in sums.groups()), floor
    assert "kernel floor" in (out / "replication.txt").read_text()
    figures = json.loads((out / "replication.json").read_text())
    assert len(figures) == 2 * len(CONFIGS)
    for f in figures:
        assert f["lost"] == 0 and f["ok"] > 0, f
        # two rounds, each compared with its own round's "none"; the row
        # holds their medians, the ratio's range and the summed counts
        assert f["rounds"] == 2 and len(f["runs"]) == 2, f
        assert f["ok"] == sum(run["ok"] for run in f["runs"]), f
        assert f["unconfirmed"] == sum(run["unconfirmed"] for run in f["runs"]), f
        low, high = f["x_none_range"]
        assert low <= f["x_none"] <= high, f
        if f["name"] == "none":
            assert low == high == 1.0, f
        if f["name"] != "none":
            # replicated changes travel, and wake clusterd to do it
            assert f["bytes_per_update"] > 0 and f["clusterd_switches"] > 0, f
    assert (out / "replication.txt").read_text().count("\n") >= 2 + 2 * len(CONFIGS)
    svg = ET.parse(out / "replication.svg").getroot()
    assert svg.tag.endswith("svg")
    assert len(list(svg.iter())) > 100, "the plot has next to nothing in it"
