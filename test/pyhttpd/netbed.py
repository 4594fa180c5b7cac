"""A multi-host test bed on one machine: every host is a network namespace
with its own address, all on one Linux bridge (iproute2), like hosts on a LAN.

    bridge scb<tag>  10.<net>.0.254/24  (in the test's own namespace, so the
       |                                  tests reach every host directly)
    veth <-> eth0 of namespace sc<tag>-<host>   10.<net>.0.<n>/24

Multicast crosses the bridge (snooping off; every host has a route for
224.0.0.0/4 on eth0). partition(host) takes the host's link down, heal()
brings it back; while cut off, the host is reached with run_in() (a command
inside its namespace). Everything is created by the bed and removed by
destroy(); a machine where namespaces cannot be made fails with the reason.
Processes are stopped by their pids (HttpdEnv), never by name.
"""

import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest

IP = shutil.which("ip") or "/usr/sbin/ip"


def _ip(*args, check=True, timeout=20):
    p = subprocess.run([IP, *args], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip() or p.returncode}")
    return p


def _free_net(want):
    """`want`, or the next 10.<n>.0.0/24 (n < 255) no interface of this
    namespace is on: a bed left by a killed run (or another run beside this
    one) must not share our subnet, or the route to our hosts goes to its
    bridge and our servers look dead."""
    used = _ip("-4", "-o", "addr", "show").stdout
    for n in list(range(want, 255)) + list(range(100, want)):
        if f" 10.{n}.0." not in used:
            return n
    pytest.fail("no free 10.<n>.0.0/24 for the test bed", pytrace=False)


@dataclass
class Host:
    name: str
    ns: str
    addr: str
    veth: str           # the bridge's end of the host's link

    def prefix(self):
        """Argument prefix that runs a command inside this host."""
        return [IP, "netns", "exec", self.ns]


class NetBed:
    def __init__(self, tag=None, net=None):
        if os.geteuid() != 0:
            pytest.fail("the network-namespace test bed needs root (ip netns add); "
                        "CI runs as root", pytrace=False)
        if not os.path.exists(IP):
            pytest.fail("iproute2's ip is missing: apt-get install iproute2", pytrace=False)
        self.tag = tag or f"{os.getpid() % 10000:04d}"
        # a /24 of 10.0.0.0/8 per bed, away from what the machine uses
        self.net = _free_net(net if net is not None else 100 + os.getpid() % 100)
        self.bridge = f"scb{self.tag}"
        self.gateway = f"10.{self.net}.0.254"
        self.hosts = {}
        _ip("link", "del", self.bridge, check=False)      # left by a killed run
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
        except RuntimeError as e:
            pytest.fail(f"cannot create the test bed's bridge {self.bridge}: {e}",
                        pytrace=False)
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        # without an IGMP querier a snooping bridge may drop the heartbeats
        with open(f"/sys/class/net/{self.bridge}/bridge/multicast_snooping", "w") as f:
            f.write("0")

    def add_host(self, name, n):
        """Host `name` at 10.<net>.0.<n>."""
        ns, veth = f"sc{self.tag}-{name}", f"v{self.tag}{name}"[:15]
        addr = f"10.{self.net}.0.{n}"
        _ip("netns", "del", ns, check=False)              # left by a killed run
        try:
            _ip("netns", "add", ns)
        except RuntimeError as e:
            pytest.fail(f"cannot create network namespace {ns}: {e}", pytrace=False)
        host = Host(name, ns, addr, veth)
        self.hosts[name] = host
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", veth, "master", self.bridge)
        _ip("link", "set", veth, "up")
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
        return host

    def partition(self, host):
        """Cut the host off: nothing goes in or out of its link."""
        _ip("link", "set", host.veth, "down")

    def heal(self, host):
        _ip("link", "set", host.veth, "up")

    def run_in(self, host, args, timeout=30):
        return subprocess.run(host.prefix() + list(args), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def destroy(self):
        for host in self.hosts.values():
            _ip("netns", "del", host.ns, check=False)     # takes its veth pair along
        self.hosts = {}
        _ip("link", "del", self.bridge, check=False)
