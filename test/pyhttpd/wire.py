"""A test-side speaker of the peer wire protocol (mod_session_cluster/sc_wire.h),
written from the spec so tests can send well-formed, forged, tampered and
replayed frames at a live node's ClusterListen port."""

import hashlib
import os
import socket
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
SEALED = 0x01
HELLO, PING, PONG, SESSION, DELTA, INVALIDATE, ACK, APPLIED = 1, 2, 3, 4, 5, 6, 7, 8
STATE_REQ, STATE_CHUNK, STATE_DONE, LOCATION, FETCH, MERGE_REQ = 9, 10, 11, 12, 13, 14
ACK_NOTFOUND = 5
ACK_OK = 0


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


def secret_key(path):
    """The 32-byte key a node derives from its ClusterSecretFile."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read().strip()).digest()


def header(ftype, route, counter, flags=0, version=VERSION):
    r = route.encode()
    return bytes([version, ftype, flags, len(r)]) + r + struct.pack(">Q", counter)


def frame(ftype, route, counter, payload=b"", flags=0, version=VERSION):
    body = header(ftype, route, counter, flags, version) + payload
    return struct.pack(">I", len(body)) + body


def hello_payload(sealed, random=None, incarnation=1):
    """A HELLO payload: 16 random bytes, the sealed flag, u64 incarnation."""
    return ((random or os.urandom(16)) + bytes([1 if sealed else 0])
            + struct.pack(">Q", incarnation))


class Peer:
    """One connection to a node, impersonating member `route`."""

    def __init__(self, addr, route, secret=None, timeout=3.0):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.route = route
        self.secret = secret
        self.tx = 0
        self.rx = 0
        self.tx_key = self.rx_key = None

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv_frame(self):
        """(type, route, counter, payload bytes incl. tag), or None on EOF."""
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
        hdr, rest = body[:12 + rlen], body[12 + rlen:]
        if body[2] & SEALED:
            nonce = b"\0\0\0\0" + struct.pack(">Q", counter)
            rest = AESGCM(self.rx_key).decrypt(nonce, rest, hdr)
        return body[1], route, counter, rest

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except (ConnectionResetError, socket.timeout):
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def closed_by_peer(self, wait=3.0):
        """True when the node closes the connection within `wait` seconds."""
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def handshake(self):
        mine = os.urandom(16)
        self.send_raw(frame(HELLO, self.route, 0,
                            hello_payload(self.secret is not None, mine)))
        theirs = self.recv_frame()
        assert theirs and theirs[0] == HELLO, f"no HELLO back: {theirs}"
        if self.secret:
            salt = mine + theirs[3][:16]
            self.tx_key = self._hkdf(salt, b"sc1 c2s")
            self.rx_key = self._hkdf(salt, b"sc1 s2c")
        return theirs

    def _hkdf(self, salt, info):
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                    info=info).derive(self.secret)

    def build(self, ftype, payload=b"", counter=None, route=None):
        """A frame with the next counter (or the given one), sealed if keyed."""
        if counter is None:
            self.tx += 1
            counter = self.tx
        route = route or self.route
        if not self.tx_key:
            return frame(ftype, route, counter, payload)
        hdr = header(ftype, route, counter, SEALED)
        nonce = b"\0\0\0\0" + struct.pack(">Q", counter)
        body = hdr + AESGCM(self.tx_key).encrypt(nonce, payload, hdr)
        return struct.pack(">I", len(body)) + body

    def ping(self, value=12345, counter=None):
        """Send a PING; the PONG's echoed value, or None if the node hung up."""
        self.send_raw(self.build(PING, struct.pack(">Q", value), counter))
        f = self.recv_frame()
        if f is None:
            return None
        assert f[0] == PONG, f
        return struct.unpack(">Q", f[3])[0]

    def close(self):
        self.sock.close()


def heartbeat(route, listen, epoch=1, stamp=1, manager=0, ready=1, secret=None,
              random=None):
    """A ClusterMulticast heartbeat datagram as sc_wire.h lays it out; sealed
    (AES-256-GCM, key HKDF(secret, salt = its random bytes, "sc1 heartbeat"))
    when `secret` (the 32-byte key of secret_key()) is given."""
    rnd = random or os.urandom(16)
    r, lis = route.encode(), listen.encode()
    head = (b"SCHB" + bytes([VERSION, 1 if secret else 0]) + rnd
            + struct.pack(">H", len(r)) + r + struct.pack(">Q", stamp))
    body = (struct.pack(">H", len(lis)) + lis
            + struct.pack(">QBB", epoch, manager, ready))
    if not secret:
        return head + body
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=rnd,
               info=b"sc1 heartbeat").derive(secret)
    nonce = b"\0" * 4 + struct.pack(">Q", stamp)
    return head + AESGCM(key).encrypt(nonce, body, head)
