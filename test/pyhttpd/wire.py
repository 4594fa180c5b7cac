"""A test-side speaker of the peer wire protocol (mod_session_cluster/sc_wire.h:
sc_frame.h, sc_msg.h, sc_heartbeat.h),
written from the spec so tests can send well-formed, forged, tampered and
replayed frames at a live node's ClusterListen port.

Member links are TLS 1.3 (sc_tls.h). A Peer talks to a node exactly like a
member does: the test tool sc_tlspeer (test/tools/sc_tlspeer.c, built by
`./build.sh test`; its path is $SC_TLSPEER) dials the node and authenticates
with the module's own sc_tls/sc_keys code (a cluster key, `none`, or
certificates), then bridges the plaintext inside TLS to one end of a
socketpair; the Peer holds the other end. Frames (version 2, flags 0, never
sealed: TLS protects them) are built and read here.

Heartbeats (ClusterMulticast) are datagrams outside TLS; heartbeat() seals
them as sc_heartbeat.c does, with the heartbeat key of secret_key()."""

import atexit
import base64
import os
import select
import signal
import socket
import struct
import subprocess
import time
import weakref
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 2
HB_SEALED = 0x01
HELLO, PING, PONG, SESSION, DELTA, INVALIDATE, ACK, APPLIED = 1, 2, 3, 4, 5, 6, 7, 8
STATE_REQ, STATE_CHUNK, STATE_DONE, LOCATION, FETCH, MERGE_REQ = 9, 10, 11, 12, 13, 14
ACK_NOTFOUND = 5
ACK_OK = 0
MANAGER_DELTA, MANAGER_BACKUP = 0, 1

KEY_MATERIAL_MIN = 32
NONE_MATERIAL = b"mod_session_cluster: ClusterSecretFile none, no secret"
DEFAULT_TLSPEER = Path(__file__).resolve().parents[2] / ".build" / "sc_tlspeer"
# how long a Peer waits for sc_tlspeer's first line (the node allows a
# handshake 2 s, the tool 5 s; generous for a loaded machine)
TLS_LINE_WAIT = 15.0


# ------------------------------------------------------------------ payloads

def session_payload(sid, owner, version, expires_usec, data, backup=""):
    """A SESSION message body: u16 id, u16 owner, u16 backup (may be empty),
    u64 version, i64 expires, u32 data."""
    i, o, b, d = sid.encode(), owner.encode(), backup.encode(), data.encode()
    return (struct.pack(">H", len(i)) + i + struct.pack(">H", len(o)) + o
            + struct.pack(">H", len(b)) + b
            + struct.pack(">Qq", version, expires_usec) + struct.pack(">I", len(d)) + d)


def location_payload(sid, owner, backup, version, expires_usec):
    """A LOCATION body: a SESSION body without data."""
    return session_payload(sid, owner, version, expires_usec, "", backup=backup)


def id_payload(sid):
    """A FETCH body: u16 id."""
    i = sid.encode()
    return struct.pack(">H", len(i)) + i


def ack_status(payload):
    """(counter, status) of an ACK/APPLIED body: u64 counter, u32 status."""
    return struct.unpack(">QI", payload[:12])


def header(ftype, route, counter, flags=0, version=VERSION):
    r = route.encode()
    return bytes([version, ftype, flags, len(r)]) + r + struct.pack(">Q", counter)


def frame(ftype, route, counter, payload=b"", flags=0, version=VERSION):
    body = header(ftype, route, counter, flags, version) + payload
    return struct.pack(">I", len(body)) + body


def hello_payload(manager=MANAGER_DELTA, incarnation=1):
    """A HELLO payload: u8 ClusterManager (0 delta, 1 backup), u64 incarnation."""
    return bytes([manager]) + struct.pack(">Q", incarnation)


def hello_fields(payload):
    """(manager, incarnation) of a HELLO payload (exactly 9 bytes)."""
    assert len(payload) == 9, f"HELLO payload of {len(payload)} bytes: {payload!r}"
    return payload[0], struct.unpack(">Q", payload[1:])[0]


# ------------------------------------------------------------------ keys

_SPACE = b" \t\n\r\v\f"
_HEX = set(b"0123456789abcdefABCDEF")
_B64 = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _looks_like_text(data):
    """Valid UTF-8 without control characters other than whitespace."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(not ((ord(c) < 0x20 and c.encode() not in _SPACE) or ord(c) == 0x7f)
               for c in text)


def key_material(data):
    """The key material M of a ClusterSecretFile's contents, decoded as
    sc_keys.c does: hex text, base64 text (lines allowed) or raw bytes; a
    ValueError (with sc_keys' reason) for what the module refuses."""
    start, end = 0, len(data)
    if data[:3] == b"\xef\xbb\xbf":
        start = 3
    while end > start and data[end - 1] in _SPACE:
        end -= 1
    while start < end and data[start] in _SPACE:
        start += 1
    text = data[start:end]
    decoded = None
    if len(text) % 2 == 0 and all(c in _HEX for c in text):
        decoded = bytes.fromhex(text.decode())
    else:
        packed = bytes(c for c in text if c not in _SPACE)
        pad = packed.count(b"=")
        if (all(c in _B64 for c in packed) and packed and len(packed) % 4 == 0
                and pad <= 2 and packed.rstrip(b"=") == packed[:len(packed) - pad]):
            decoded = base64.b64decode(packed, validate=True)
    if decoded is not None:
        if len(decoded) < KEY_MATERIAL_MIN:
            raise ValueError(f"holds {len(decoded)} bytes of key material; at least "
                             f"{KEY_MATERIAL_MIN} are needed")
        return decoded
    if _looks_like_text(text):
        raise ValueError("holds text that is neither hex nor base64: a passphrase "
                         "is not a key")
    if len(data) < KEY_MATERIAL_MIN:
        raise ValueError(f"holds {len(data)} bytes; at least {KEY_MATERIAL_MIN} "
                         f"are needed")
    return data                          # raw bytes, whitespace and all


def _hkdf(ikm, info, salt=None, length=32):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt,
                info=info).derive(ikm)


def _material_of(key):
    """Key material from a key file path, or "none"."""
    if str(key) == "none":
        return NONE_MATERIAL
    return key_material(Path(key).read_bytes())


def secret_key(path):
    """The heartbeat key a node derives from its ClusterSecretFile `path`
    (HKDF-SHA256(M, no salt, "sc2 heartbeat")): what heartbeat(secret=...)
    seals with."""
    return _hkdf(_material_of(path), b"sc2 heartbeat")


def key_id(path):
    """The public 8-hex-digit id of the key in `path` (or "none")."""
    return material_key_id(_material_of(path))


def material_key_id(material: bytes) -> str:
    """The public id of key material: hex of HKDF(M, no salt, "sc2 key id")[:4]."""
    return _hkdf(material, b"sc2 key id", length=4).hex()


# ------------------------------------------------------------------ TLS peers

def tlspeer_path():
    """The sc_tlspeer tool ($SC_TLSPEER); a clear failure when it is missing."""
    path = os.environ.get("SC_TLSPEER", str(DEFAULT_TLSPEER))
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError(f"sc_tlspeer not found at {path} (SC_TLSPEER): build it "
                           f"with `./build.sh test` (see the README)")
    return path


class TLSRefused(Exception):
    """sc_tlspeer did not complete the TLS handshake: `line` is its
    "fail <kind> <why>" line, `kind` one of io, timeout, too-big, auth (or
    key, tls for a local problem)."""

    def __init__(self, line, output=""):
        self.line = line
        parts = line.split(None, 2)
        self.kind = parts[1] if len(parts) > 1 and parts[0] == "fail" else "?"
        self.why = parts[2] if len(parts) > 2 else ""
        super().__init__(f"TLS to the node failed: {line!r}"
                         + (f"; tool output: {output!r}" if output else ""))


_live = weakref.WeakSet()


@atexit.register
def _close_all():
    for p in list(_live):
        p.close()


class Peer:
    """One member link to a node at `addr`, as member `route`, inside TLS.

    Authentication (one of): key_file, a ClusterSecretFile path or a list of
    two (newest first), offering key `key_index` of them; none=True (the
    well-known `ClusterSecretFile none` key); cert, cert_key and ca (PEM
    files; peer_route: the route the node's certificate must name, default
    `route`). A failed handshake raises TLSRefused (see connect_tls() to
    get the failure as a value). Afterwards the Peer speaks plaintext frames
    through `sock`; the node's close is seen as EOF there."""

    def __init__(self, addr, route, key_file=None, none=False, cert=None,
                 cert_key=None, ca=None, peer_route=None, key_index=0,
                 timeout=3.0):
        self.route = route
        self.tx = 0
        self.rx = 0
        self.proc = None
        self.sock = None
        self.tls_line = None
        self.key_id = None
        self._rx = bytearray()      # read while sending, not yet taken
        self._eof = False
        args = [tlspeer_path(), "--connect", addr, "--route", route]
        if key_file is not None:
            files = [key_file] if isinstance(key_file, (str, os.PathLike)) else key_file
            for f in files:
                args += ["--key", str(f)]
            args += ["--key-index", str(key_index)]
        elif none:
            args.append("--none")
        elif cert:
            args += ["--cert", str(cert), "--cert-key", str(cert_key), "--ca", str(ca)]
            if peer_route:
                args += ["--peer", peer_route]
        else:
            raise ValueError("Peer needs key_file=, none=True or cert=/cert_key=/ca=")
        mine, theirs = socket.socketpair()
        try:
            args += ["--fd", str(theirs.fileno())]
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT,
                                         pass_fds=(theirs.fileno(),))
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self.sock = mine
        _live.add(self)
        line, rest = self._first_line()
        self.tls_line = line
        if not line.startswith("ok "):
            self.close()
            raise TLSRefused(line or "fail io sc_tlspeer said nothing", rest)
        self.key_id = line.split()[1]
        self.sock.settimeout(timeout)

    @classmethod
    def connect_tls(cls, addr, route, **kw):
        """(peer, line): the Peer and sc_tlspeer's "ok <key id>" line, or
        (None, "fail <kind> <why>") when the handshake failed."""
        try:
            p = cls(addr, route, **kw)
        except TLSRefused as e:
            return None, e.line
        return p, p.tls_line

    def _first_line(self):
        """sc_tlspeer's first stdout line (bounded wait), and any more output
        it wrote when it ended at once (a usage error)."""
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + TLS_LINE_WAIT
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return (f"fail timeout sc_tlspeer printed no line within "
                        f"{TLS_LINE_WAIT:.0f}s", buf.decode(errors="replace"))
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
        line, _, rest = buf.partition(b"\n")
        return line.decode(errors="replace").strip(), rest.decode(errors="replace")

    def send_raw(self, data):
        """Send all of data. What the node sends meanwhile is read into a
        buffer (recv_frame() takes it from there), so a long pipelined send
        never waits on the node waiting on us: sc_tlspeer moves both
        directions in one thread. Fails with socket.timeout when nothing
        moves either way for the socket's timeout."""
        view = memoryview(data)
        sent = 0
        wait = self.sock.gettimeout() or 30.0
        while sent < len(view):
            want_read = [] if self._eof else [self.sock]
            readable, writable, _ = select.select(want_read, [self.sock], [], wait)
            if not readable and not writable:
                raise socket.timeout(f"send_raw: nothing moved for {wait}s "
                                     f"({sent} of {len(view)} bytes sent)")
            if readable:
                try:
                    chunk = self.sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    self._rx += chunk
                else:
                    self._eof = True
            if writable:
                sent += self.sock.send(view[sent:sent + 65536])

    def recv_frame(self):
        """(type, route, counter, payload bytes), or None on EOF."""
        prefix = self._read(4)
        if prefix is None:
            return None
        (n,) = struct.unpack(">I", prefix)
        body = self._read(n)
        if body is None:
            return None
        rlen = body[3]
        route = body[4:4 + rlen].decode()
        (counter,) = struct.unpack(">Q", body[4 + rlen:12 + rlen])
        assert body[0] == VERSION and body[2] == 0, \
            f"frame with version {body[0]}, flags {body[2]} from the node"
        return body[1], route, counter, body[12 + rlen:]

    def _read(self, n):
        buf = bytes(self._rx[:n])
        del self._rx[:n]
        while len(buf) < n:
            if self._eof:
                return None
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                return None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self._eof = True
                return None
            buf += chunk
        return buf

    def closed_by_peer(self, wait=3.0):
        """True when the node closes the connection within `wait` seconds
        (sc_tlspeer then ends and closes its end of the socketpair)."""
        if self._rx:
            return False
        if self._eof:
            return True
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def handshake(self, manager=MANAGER_DELTA, incarnation=1):
        """Send our HELLO (as a member does first after TLS) and return the
        node's HELLO frame (type, route, counter, payload)."""
        self.send_raw(frame(HELLO, self.route, 0, hello_payload(manager, incarnation)))
        theirs = self.recv_frame()
        assert theirs and theirs[0] == HELLO, f"no HELLO back: {theirs}"
        return theirs

    def build(self, ftype, payload=b"", counter=None, route=None):
        """A frame with the next counter (or the given one)."""
        if counter is None:
            self.tx += 1
            counter = self.tx
        return frame(ftype, route or self.route, counter, payload)

    def ping(self, value=12345, counter=None):
        """Send a PING; the PONG's echoed value, or None if the node hung up."""
        self.send_raw(self.build(PING, struct.pack(">Q", value), counter))
        f = self.recv_frame()
        if f is None:
            return None
        assert f[0] == PONG, f
        return struct.unpack(">Q", f[3])[0]

    def close(self):
        """Close our end and end sc_tlspeer (by its PID, bounded waits)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            try:
                proc.wait(timeout=1.0)          # it ends by itself on our EOF
            except subprocess.TimeoutExpired:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=3.0)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5.0)
        finally:
            if proc.stdout:
                proc.stdout.close()
            _live.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


# ------------------------------------------------------------------ heartbeats

def heartbeat(route, listen, epoch=1, stamp=1, manager=0, ready=1, secret=None,
              random=None, version=VERSION):
    """A ClusterMulticast heartbeat datagram as sc_heartbeat.h lays it out; sealed
    (flags 1, AES-256-GCM under HKDF(secret, salt = its random bytes,
    "sc2 heartbeat sender"), nonce 4 zero bytes || stamp, the header as
    additional data) when `secret` (a heartbeat key: secret_key()) is given."""
    rnd = random or os.urandom(16)
    r, lis = route.encode(), listen.encode()
    head = (b"SCHB" + bytes([version, HB_SEALED if secret else 0]) + rnd
            + struct.pack(">H", len(r)) + r + struct.pack(">Q", stamp))
    body = (struct.pack(">H", len(lis)) + lis
            + struct.pack(">QBB", epoch, manager, ready))
    if not secret:
        return head + body
    key = _hkdf(secret, b"sc2 heartbeat sender", salt=rnd)
    nonce = b"\0" * 4 + struct.pack(">Q", stamp)
    return head + AESGCM(key).encrypt(nonce, body, head)
