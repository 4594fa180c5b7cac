"""free_port(): the one way the tests choose ports for the servers they start.

Why not bind(0): a port the kernel hands out for bind(("127.0.0.1", 0)) is an
ephemeral port, one it also picks, at any moment, as the local port of an
outgoing connection (a test's client, a balancer's proxy connection, a member
link, sc_tlspeer) or of another bind(0), in this process or any other. Closed
and returned, it could be taken before httpd bound it (the old env.free_port),
and a random block checked once (the old test_900 free_base_port) could be
checked by two runs at once and handed to both.

How free_port() makes sure a port it returns is free for the caller:

1. Outside the ephemeral range. Ports come from SC_TEST_PORTS ("LO-HI") or
   else from 10000 up to just below the kernel's ephemeral range
   (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default; above
   it when there is more room there). The kernel never picks such a port by
   itself, so only a program that binds that very port can take it.
2. Reserved across processes. Every program that can bind one of them on
   purpose here is a test run, and every run reserves its ports: an exclusive
   fcntl (POSIX record) lock on byte <port> of one shared file,
   /tmp/sc-test-ports.lock (SC_PORT_LOCK), taken without waiting and held
   until the process exits; the kernel drops it when the process ends, killed
   or not, so nothing is left stale and there is nothing to clean up. Several
   pytest processes at once (CI next to a developer's run, xdist workers, a
   forked child) never get the same port. One byte per port keeps any number
   of reservations on one descriptor; flock(2) locks whole files, which would
   need a file per port or fixed ranges per process (wasteful for blocks
   spanning 2,000 ports, and a limit on how many runs fit).
3. Never twice in this process: POSIX locks do not conflict with their
   owner's own locks, so the process also remembers what it handed out
   (under a threading lock: tests start servers from threads).
4. Checked now. Each port, every port of a block, must bind at this moment,
   TCP with SO_REUSEADDR as httpd's Listen and ClusterListen do (a TIME_WAIT
   left by an earlier run is no obstacle to them, a listener anywhere is) and
   UDP (ClusterMulticast), on the wildcard address: this skips ports held by
   anything outside this scheme (a server of the machine's own, a demo
   started by hand on its default port).

What no scheme short of handing httpd an already bound socket can exclude: a
program outside the test runs binding that very port in the moment between
the check and httpd's bind. Holding a bound socket until httpd starts does
not close it (the holder must let go before httpd binds) and would need a
hook in every way the tests start servers (HttpdEnv, demo.sh, the bench
scripts); a reservation held for the whole run needs none.

Blocks: free_port(offsets) returns a base P such that P+o is reserved and free
for every o in offsets (the demo's balancer, nodes, cluster and multicast
ports, pyhttpd.demo.DEMO_PORT_OFFSETS)."""

import errno
import fcntl
import os
import random
import socket
import threading

LOCK_FILE = os.environ.get("SC_PORT_LOCK", "/tmp/sc-test-ports.lock")
LOWEST = 10000
MIN_RANGE = 4096                 # below that, the room left is too small to use

_mutex = threading.Lock()
_handed_out = set()
_lock_fd = None
_range = None
_cursor = None


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999       # Linux's default


def port_range():
    """(lo, hi), inclusive: where free_port() looks."""
    global _range
    if _range is None:
        env = os.environ.get("SC_TEST_PORTS")
        if env:
            lo, _, hi = env.partition("-")
            if not (lo.isdigit() and hi.isdigit() and 1024 <= int(lo) < int(hi) <= 65535):
                raise ValueError(f"SC_TEST_PORTS must be LO-HI within 1024-65535, not {env!r}")
            _range = (int(lo), int(hi))
        else:
            elo, ehi = _ephemeral_range()
            below, above = (LOWEST, elo - 1), (max(ehi + 1, LOWEST), 65535)
            size = lambda r: r[1] - r[0] + 1
            best = max((below, above), key=size)
            # a kernel whose ephemeral range leaves no room on either side:
            # the check by binding (4.) still applies, the guarantee of 1. not
            _range = best if size(best) >= MIN_RANGE else (LOWEST, LOWEST + 20000)
    return _range


def _open_lock_file():
    """The shared lock file, opened read-write. It is made mode 0666 so runs of
    other users share it; /tmp's protected_regular forbids O_CREAT on another
    user's file there, hence the open without O_CREAT first."""
    path = LOCK_FILE
    for _ in range(5):
        try:
            return os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            pass
        except PermissionError:
            break                 # another user's file, not shared with us
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue              # created meanwhile: open it as it is
        try:
            os.fchmod(fd, 0o666)  # whatever the umask
        except OSError:
            pass
        return fd
    # a lock file of our own: runs of this user still exclude each other
    path = f"{LOCK_FILE}.{os.getuid()}"
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _lock(port):
    try:
        fcntl.lockf(_lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port, os.SEEK_SET)
        return True
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EAGAIN):
            return False          # another process holds it
        raise


def _unlock(port):
    fcntl.lockf(_lock_fd, fcntl.LOCK_UN, 1, port, os.SEEK_SET)


def _bindable(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("", port))
            except OSError:
                return False
    return True


def _try_block(base, offsets):
    ports = [base + o for o in offsets]
    if any(p in _handed_out for p in ports):
        return False
    locked = []
    try:
        for p in ports:
            if not _lock(p):
                return False
            locked.append(p)
        if not all(_bindable(p) for p in ports):
            return False
        _handed_out.update(ports)
        locked = []               # kept: reserved until the process exits
        return True
    finally:
        for p in locked:
            _unlock(p)


def free_port(offsets=(0,)) -> int:
    """A port P, free now and reserved for this process until it exits, such
    that P+o is free and reserved as well for every o in offsets (default:
    just P). Never the same port twice, in this process or in any other test
    run on this machine at the same time; see the module's docstring."""
    global _lock_fd, _cursor
    offsets = sorted(set(int(o) for o in offsets))
    if not offsets or offsets[0] < 0:
        raise ValueError(f"offsets must be non-negative, at least one: {offsets}")
    lo, hi = port_range()
    top = hi - offsets[-1]                 # highest possible base
    if top < lo:
        raise ValueError(f"a block spanning {offsets[-1]} ports does not fit in {lo}-{hi}")
    with _mutex:
        if _lock_fd is None:
            _lock_fd = _open_lock_file()
        if _cursor is None:
            # each process starts somewhere else: runs side by side rarely
            # even try the same ports
            _cursor = random.SystemRandom().randint(lo, hi)
        span = top - lo + 1
        start = lo + (_cursor - lo) % span
        for i in range(span):
            base = lo + (start - lo + i) % span
            if _try_block(base, offsets):
                _cursor = base + 1
                return base
    raise RuntimeError(f"no free port block {offsets} in {lo}-{hi} "
                       f"({len(_handed_out)} handed out by this process)")
