"""A TCP relay for replication fault tests.

This kernel has no netem, so latency, fragmentation, stalls and resets on the
path between two cluster nodes come from here: give one node a `ClusterMember`
line that names the relay's port instead of the peer's ClusterListen, and the
relay forwards every connection it accepts to the peer.

    relay = Relay("127.0.0.1", peer_port, delay=(0.05, 0.15), split=True, seed=1)
    relay.start()            # listens on 127.0.0.1:relay.port
    relay.hold()             # stall: buffer everything, forward nothing
    relay.release()          # forward what was held (in order), go on
    relay.cut(partial=True)  # let a random prefix of what is buffered through,
                             # then reset every open connection
    relay.stop()             # reset everything, join the threads (bounded)

Per connection, each direction has a reader thread and a writer thread. Every
chunk the reader gets is due `random.uniform(*delay)` seconds after it was
read; the writer forwards chunks in order (TCP is a byte stream: order within
one direction of one connection is kept, a later chunk never overtakes an
earlier one) and, with `split`, in random pieces of 1..max_piece bytes with a
short gap between them, so the far end reads frames fragmented at arbitrary
byte boundaries. An end-of-stream is forwarded (shutdown of the write side)
once everything before it was; while held, not even that.

Every loop is bounded: sockets have short timeouts, and a stop flag and a
per-connection closing flag are checked on every turn. Randomness comes from
one seedable random.Random. Byte, piece and chunk counters per direction
("up": client to upstream, "down": upstream to client) are in stats().
"""

import collections
import random
import socket
import struct
import threading
import time

UP, DOWN = "up", "down"
_TICK = 0.05            # longest wait on a condition before looking again
_IO_TIMEOUT = 0.2       # socket timeout of every read, write and accept


def _send(sock, data, give_up):
    """Send all of data unless give_up() turns true (checked every
    _IO_TIMEOUT while the far end does not read). Returns the bytes sent;
    raises OSError if the socket fails."""
    sent = 0
    view = memoryview(data)
    while sent < len(data):
        try:
            sent += sock.send(view[sent:])
        except socket.timeout:
            if give_up():
                break
    return sent


def _rst_close(sock):
    """Close so that the peer gets a reset (RST), not an orderly FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Pipe:
    """One direction of one connection: src -> (buffer) -> dst."""

    def __init__(self, conn, direction, src, dst):
        self.conn = conn
        self.direction = direction
        self.src = src
        self.dst = dst
        self.cv = threading.Condition()
        self.send_lock = threading.Lock()   # held while a piece goes out
        self.buf = collections.deque()      # [due, bytes], oldest first
        self.eof = False                    # the reader saw the end of src
        self.broken = False                 # ... and it was a reset, not an EOF

    def pending(self):
        with self.cv:
            return sum(len(item[1]) for item in self.buf)


class _Conn:
    """One accepted connection and its upstream connection (4 threads)."""

    def __init__(self, relay, client, upstream, number):
        self.relay = relay
        self.number = number
        self.client = client
        self.upstream = upstream
        self.lock = threading.Lock()
        self.closing = False        # no more forwarding in either direction
        self.reset = False          # close with RST rather than FIN
        self.live = 4               # threads still running; the last closes
        self.pipes = {UP: _Pipe(self, UP, client, upstream),
                      DOWN: _Pipe(self, DOWN, upstream, client)}
        try:
            self.upstream_port = upstream.getsockname()[1]
        except OSError:
            self.upstream_port = None

    # -- lifecycle ------------------------------------------------------------
    def start(self):
        threads = []
        for pipe in self.pipes.values():
            threads.append(threading.Thread(target=self._read, args=(pipe,), daemon=True,
                                            name=f"{self.relay.name}-{self.number}-{pipe.direction}-r"))
            threads.append(threading.Thread(target=self._write, args=(pipe,), daemon=True,
                                            name=f"{self.relay.name}-{self.number}-{pipe.direction}-w"))
        self.relay._track(threads)
        for t in threads:
            t.start()

    def abort(self, partial=False):
        """Reset the connection. partial: first let a random prefix (at least
        one byte, never all of it) of what each direction holds through, so
        the far end gets part of a frame. Returns (bytes let through, bytes
        dropped)."""
        with self.lock:
            if self.closing:
                return 0, 0
            self.closing = True
            self.reset = True
        through = dropped = 0
        for pipe in self.pipes.values():
            with pipe.send_lock:                 # no piece half way out
                with pipe.cv:
                    data = b"".join(item[1] for item in pipe.buf)
                    pipe.buf.clear()
                    pipe.cv.notify_all()
                k = 0
                if partial and len(data) > 1:
                    want = self.relay._randint(1, len(data) - 1)
                    give_up = time.monotonic() + 1.0
                    try:
                        k = _send(pipe.dst, data[:want], lambda: time.monotonic() > give_up
                                  or self.relay._stopping.is_set())
                    except OSError:
                        pass
                    self.relay._count(pipe.direction, k, 1, 0)
                through += k
                dropped += len(data) - k
        self._wake_readers()
        return through, dropped

    def _wake_readers(self):
        # SHUT_RD sends nothing; it only makes a blocked recv() return at once
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def _thread_done(self):
        with self.lock:
            self.live -= 1
            last = self.live == 0
        if not last:
            return
        for s in (self.client, self.upstream):
            if self.reset:
                _rst_close(s)
            else:
                try:
                    s.close()
                except OSError:
                    pass
        self.relay._forget(self)

    def _finish_direction(self):
        """Both directions ended (EOF forwarded both ways): close quietly."""
        with self.lock:
            if all(p.eof and not p.buf for p in self.pipes.values()):
                self.closing = True
        for pipe in self.pipes.values():
            with pipe.cv:
                pipe.cv.notify_all()

    # -- threads ------------------------------------------------------------------
    def _read(self, pipe):
        relay = self.relay
        try:
            while not relay._stopping.is_set() and not self.closing:
                try:
                    data = pipe.src.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    # src was reset: what is buffered still goes out (it was
                    # "on the wire"), then the whole connection is reset
                    with pipe.cv:
                        pipe.eof = True
                        pipe.broken = True
                        pipe.cv.notify_all()
                    break
                if self.closing:
                    break
                if not data:
                    with pipe.cv:
                        pipe.eof = True
                        pipe.cv.notify_all()
                    break
                due = time.monotonic() + relay._draw_delay()
                with pipe.cv:
                    pipe.buf.append([due, data])
                    pipe.cv.notify_all()
                relay._count(pipe.direction, 0, 0, 1)
        finally:
            self._thread_done()

    def _next_piece(self, pipe):
        """Under pipe.cv: take the next piece of the head chunk (or all of it)."""
        item = pipe.buf[0]
        data = item[1]
        if self.relay.split:
            n = min(len(data), self.relay._randint(1, max(1, self.relay.max_piece)))
        else:
            n = len(data)
        piece = data[:n]
        if n == len(data):
            pipe.buf.popleft()
        else:
            item[1] = data[n:]
        return piece

    def _write(self, pipe):
        relay = self.relay
        try:
            while True:
                # wait (bounded turns) until a piece is due, the end is
                # reached, or the connection goes
                action = None
                with pipe.cv:
                    while action is None:
                        if relay._stopping.is_set() or self.closing:
                            return
                        if relay.held:
                            pipe.cv.wait(_TICK)
                            continue
                        if pipe.buf:
                            wait = pipe.buf[0][0] - time.monotonic()
                            if wait <= 0:
                                action = "send"
                            else:
                                pipe.cv.wait(min(wait, _TICK))
                        elif pipe.eof:
                            action = "end"
                        else:
                            pipe.cv.wait(_TICK)
                if action == "end":
                    if pipe.broken:
                        self.abort()
                        return
                    try:
                        pipe.dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    self._finish_direction()
                    # stay until the connection closes (the other direction
                    # may still run); the last thread out closes the sockets
                    while not relay._stopping.is_set() and not self.closing:
                        with pipe.cv:
                            pipe.cv.wait(_TICK)
                    return
                failed = False
                with pipe.send_lock:
                    if self.closing:
                        return
                    with pipe.cv:
                        if not pipe.buf or relay.held:
                            continue            # a cut or a hold came first
                        piece = self._next_piece(pipe)
                    try:
                        n = _send(pipe.dst, piece, lambda: relay._stopping.is_set()
                                  or self.closing)
                    except OSError:
                        n, failed = 0, True
                    relay._count(pipe.direction, n, 1, 0)
                    if n < len(piece) and not failed:
                        # a cut or stop came while the far end did not read:
                        # the rest goes back, so a cut's prefix stays a prefix
                        with pipe.cv:
                            pipe.buf.appendleft([0.0, piece[n:]])
                        return
                if failed:
                    # dst is gone: nothing more can be delivered this way
                    self.abort()
                    return
                if relay.split and relay.piece_gap > 0 and pipe.buf:
                    time.sleep(relay.piece_gap)
        finally:
            self._thread_done()


class Relay:
    """A delaying, fragmenting, stallable TCP relay to one upstream address.

    delay: (lo, hi) seconds each chunk is held before it is forwarded (a
    number means (n, n)); split: forward in random pieces of 1..max_piece
    bytes, piece_gap seconds apart; seed: for the random.Random used for
    delays, piece sizes and cut points. delay, split, max_piece and piece_gap
    may be changed at run time.
    """

    def __init__(self, upstream_host, upstream_port, delay=(0.0, 0.0), split=False,
                 max_piece=8, piece_gap=0.0005, seed=None, name="relay",
                 connect_timeout=2.0):
        self.upstream = (upstream_host, int(upstream_port))
        self.name = name
        self.delay = delay
        self.split = split
        self.max_piece = max_piece
        self.piece_gap = piece_gap
        self.connect_timeout = connect_timeout
        self.rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._lock = threading.Lock()
        self._conns = set()
        self._threads = []
        self._stopping = threading.Event()
        self._held = False
        self._listener = None
        self._accept_thread = None
        self._stats = {"bytes_up": 0, "bytes_down": 0, "pieces_up": 0, "pieces_down": 0,
                       "chunks_up": 0, "chunks_down": 0, "connections": 0,
                       "upstream_failures": 0, "cuts": 0, "cut_resets": 0,
                       "cut_bytes_through": 0, "cut_bytes_dropped": 0}
        self.upstream_ports = []        # local ports of the relay's upstream sockets
        self.port = None

    # -- settings ---------------------------------------------------------------------
    @property
    def delay(self):
        return self._delay

    @delay.setter
    def delay(self, value):
        lo, hi = (value, value) if isinstance(value, (int, float)) else value
        lo, hi = float(lo), float(hi)
        if not 0 <= lo <= hi:
            raise ValueError(f"delay must be 0 <= lo <= hi, not {value!r}")
        self._delay = (lo, hi)

    @property
    def held(self):
        return self._held

    def hold(self):
        """Stall: read and buffer everything, forward nothing, until release()."""
        self._held = True

    def release(self):
        """Forward what was held (chunks whose delay passed at once), and go on."""
        self._held = False
        for conn in self._open():
            for pipe in conn.pipes.values():
                with pipe.cv:
                    pipe.cv.notify_all()

    def cut(self, partial=False):
        """Reset every open connection (both ends get an RST). partial: a
        random prefix of what each direction holds gets through first (the
        far end sees a frame cut off in the middle). Returns a dict: resets,
        bytes_through, bytes_dropped."""
        resets = through = dropped = 0
        for conn in self._open():
            if conn.closing:
                continue
            t, d = conn.abort(partial=partial)
            resets += 1
            through += t
            dropped += d
        with self._lock:
            self._stats["cuts"] += 1
            self._stats["cut_resets"] += resets
            self._stats["cut_bytes_through"] += through
            self._stats["cut_bytes_dropped"] += dropped
        return {"resets": resets, "bytes_through": through, "bytes_dropped": dropped}

    # -- state --------------------------------------------------------------------------
    def pending(self, direction=None):
        """Bytes read but not forwarded yet (one direction, or both)."""
        total = 0
        for conn in self._open():
            for d, pipe in conn.pipes.items():
                if direction is None or d == direction:
                    total += pipe.pending()
        return total

    def open_connections(self):
        return sum(1 for c in self._open() if not c.closing)

    def open_upstream_ports(self):
        """Local ports of the upstream sockets of the open connections (how
        the upstream's logs name the connections that come through here)."""
        return {c.upstream_port for c in self._open() if not c.closing}

    def stats(self):
        with self._lock:
            out = dict(self._stats)
        out["open"] = self.open_connections()
        out["pending_up"] = self.pending(UP)
        out["pending_down"] = self.pending(DOWN)
        return out

    def __repr__(self):
        return (f"Relay({self.name} 127.0.0.1:{self.port} -> {self.upstream[0]}:"
                f"{self.upstream[1]}, delay={self._delay}, split={self.split}, "
                f"held={self._held})")

    # -- start / stop ------------------------------------------------------------------
    def start(self):
        if self._listener is not None:
            raise RuntimeError(f"{self.name}: already started")
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port or 0))
        ls.listen(64)
        ls.settimeout(_IO_TIMEOUT)
        self._listener = ls
        self.port = ls.getsockname()[1]
        self._stopping.clear()
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                               name=f"{self.name}-accept")
        self._accept_thread.start()
        return self

    def stop(self, timeout=5.0):
        """Stop accepting, reset every connection, join every thread (bounded).
        Returns True if every thread ended within `timeout`."""
        self._stopping.set()
        self._held = False
        for conn in self._open():
            conn.abort()
        deadline = time.monotonic() + timeout
        threads = [self._accept_thread] if self._accept_thread else []
        with self._lock:
            threads += list(self._threads)
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        self._listener = None
        self._accept_thread = None
        return not alive

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- internals ---------------------------------------------------------------------
    def _accept_loop(self):
        ls = self._listener
        try:
            while not self._stopping.is_set():
                try:
                    client, _ = ls.accept()
                except socket.timeout:
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break
                    time.sleep(_TICK)
                    continue
                self._connect(client)
        finally:
            try:
                ls.close()
            except OSError:
                pass

    def _connect(self, client):
        try:
            upstream = socket.create_connection(self.upstream, timeout=self.connect_timeout)
        except OSError:
            with self._lock:
                self._stats["upstream_failures"] += 1
            _rst_close(client)          # like the path being broken
            return
        for s in (client, upstream):
            s.settimeout(_IO_TIMEOUT)
            try:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        with self._lock:
            self._stats["connections"] += 1
            number = self._stats["connections"]
            conn = _Conn(self, client, upstream, number)
            self._conns.add(conn)
            if conn.upstream_port:
                self.upstream_ports.append(conn.upstream_port)
        if self._stopping.is_set():
            conn.abort()
        conn.start()

    def _open(self):
        with self._lock:
            return list(self._conns)

    def _forget(self, conn):
        with self._lock:
            self._conns.discard(conn)

    def _track(self, threads):
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + threads

    def _draw_delay(self):
        lo, hi = self._delay
        if hi <= 0:
            return 0.0
        with self._rng_lock:
            return self.rng.uniform(lo, hi)

    def _randint(self, a, b):
        with self._rng_lock:
            return self.rng.randint(a, b)

    def _count(self, direction, nbytes, pieces, chunks):
        with self._lock:
            self._stats[f"bytes_{direction}"] += nbytes
            self._stats[f"pieces_{direction}"] += pieces
            self._stats[f"chunks_{direction}"] += chunks
