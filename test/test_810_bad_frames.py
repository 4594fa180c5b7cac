"""Bytes at a live node's ClusterListen port. Member links are TLS 1.3, so the
test talks to the node like a member does: pyhttpd.wire.Peer runs sc_tlspeer,
which authenticates with the cluster's key (the module's own sc_tls/sc_keys
code) and carries the test's frames inside TLS.

- The TLS layer: plaintext, another key, or the public `none` key are refused
  at the handshake and never reach the frame layer (no member connected, no
  frame read, the member stays down); TLS records changed on the wire by a man
  in the middle (a flipped bit in a record's header, ciphertext or tag, a
  record sent twice, plaintext put between records) break the link, and
  nothing of them reaches the store.
- Between the handshake and a member's link: a HELLO that is malformed,
  oversized, from an unknown sender, from this node's own route, from another
  route than the one the key was offered for, or with another ClusterManager
  is refused with a log line naming the reason.
- The frame layer: every malformed, oversized, replayed or misrouted frame is
  dropped, the connection closed, a log line written, and the node goes on
  serving; nothing of a bad frame reaches the store.

Refusals before a link is made are logged at most once per reason every 10 s
(by design, so strangers cannot flood the log): each such case runs on a node
(`fresh`) where no refusal of its reason has been logged yet, so its own line
must be there. One test per case."""

import select
import socket
import struct
import threading
import time

import pytest

from pyhttpd import HttpdEnv
from pyhttpd.cluster import (cluster_conf, member_states, start_env, status, stop_env,
                             write_secret_file)
from pyhttpd.conf import shared_secret_file
from pyhttpd.drops import DROPPED, expect_drop, wait_log
from pyhttpd.wire import (HELLO, PING, Peer, TLSRefused, frame, hello_payload,
                          key_id)

FAKE_PEERS = [("node2", "127.0.0.1:1"), ("node3", "127.0.0.1:2")]
REFUSED = "refused a peer connection from 127.0.0.1:"
# the module's words for each kind of refusal before a link is made
MALFORMED_HELLO = "malformed HELLO"
NOT_A_MEMBER = "not the member it claims"
AUTH_FAILED = "authentication failed"
OTHER_MANAGER = "another ClusterManager"
NOT_TLS = "not TLS"


def make_node(module_path, name):
    env = HttpdEnv(name, mpm="event", module=module_path, route="node1")
    members = [("node1", env.cluster_addr)] + FAKE_PEERS
    start_env(env, cluster_conf(env, members=members))
    env.key = shared_secret_file(env.base_dir())
    return env


class Fresh:
    """Nodes for refusals before a link: `take(reason)` is a node where no
    refusal of that reason was logged yet (one is started when none is
    left). No member ever links to these nodes, so their members stay down."""

    def __init__(self, module_path):
        self.module_path = module_path
        self.envs = []
        self.used = []                  # per env: the refusal reasons spent

    def take(self, reason):
        for env, used in zip(self.envs, self.used):
            if reason not in used:
                used.add(reason)
                return env
        self.envs.append(make_node(self.module_path, f"refusals-{len(self.envs) + 1}"))
        self.used.append({reason})
        return self.envs[-1]

    def stop(self):
        for env in self.envs:
            stop_env(env)


@pytest.fixture(scope="module")
def fresh(module_path):
    pool = Fresh(module_path)
    yield pool
    pool.stop()


@pytest.fixture(scope="module")
def node(module_path):
    """The node the frame-layer cases link to."""
    env = make_node(module_path, "frames")
    yield env
    stop_env(env)


def connect(env, route="node2", **kw):
    """A member's TLS link to env, with the cluster's key unless told."""
    if not kw:
        kw = {"key_file": env.key}
    return Peer(env.cluster_addr, route, **kw)


def expect_refused(env, reason, why_words, mark, route="node2"):
    """A refusal before any link: one line naming `reason` and the words of
    why; nothing reached the frame layer (no member connected, no frame
    dropped) and member `route` did not come up; the node still serves."""
    def line_of(text):
        return [l for l in text.splitlines()
                if REFUSED in l and reason in l and all(w in l for w in why_words)]
    text = wait_log(env, mark, line_of)
    assert line_of(text), (f"no '{reason}' refusal naming {why_words} in the log:\n"
                           f"{text[-3000:]}")
    line = line_of(text)[0]
    port = line.split(REFUSED, 1)[1].split(":", 1)[0]
    other = [l for l in text.splitlines() if f"127.0.0.1:{port}" in l and l != line]
    assert not other, "the refused connection went on:\n" + "\n".join(other)
    assert "connected from" not in text and DROPPED not in text, \
        f"the refused peer reached the frame layer:\n{text[-3000:]}"
    assert member_states(env)[route] == "down", status(env)
    assert status(env)[0]["Route"] == "node1"
    return line


def refused_after_hello(env, peer, hello):
    """Send `hello` (raw bytes) after the TLS handshake: the node must close
    the connection without answering a HELLO."""
    peer.send_raw(hello)
    assert peer.recv_frame() is None, "the node answered a HELLO it should refuse"
    assert peer.closed_by_peer(), "the node kept the connection open"
    peer.close()


# ---- the TLS layer: who may talk at all ---------------------------------------

def test_810_01_plaintext_hello_refused(fresh):
    """A HELLO frame in the clear, as a member spoke before TLS: the TLS
    handshake fails, at most an alert comes back, never a frame."""
    env = fresh.take(NOT_TLS)
    mark = env.error_log_size()
    with socket.create_connection(("127.0.0.1", env.cluster_port), timeout=5) as s:
        s.sendall(frame(HELLO, "node2", 0, hello_payload()))
        got = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        else:
            pytest.fail("the node kept a plaintext connection open for 5 s")
    # a TLS alert record (content type 21) or nothing
    assert got == b"" or (got[0] == 21 and len(got) <= 7), got
    line = expect_refused(env, NOT_TLS, ["its first byte is 0x00, not a TLS handshake"],
                          mark)
    assert "[session_cluster:warn]" in line, line


def test_810_02_another_key_refused_at_the_handshake(fresh, tmp_path):
    """TLS with another key fails the handshake on both ends, the node names
    both key ids; not one frame is read."""
    env = fresh.take(AUTH_FAILED)
    other = write_secret_file(tmp_path / "other.key")
    mark = env.error_log_size()
    peer, line = Peer.connect_tls(env.cluster_addr, "node2", key_file=other)
    assert peer is None, f"TLS with another key succeeded: {line}"
    assert line.startswith("fail auth "), line
    expect_refused(env, AUTH_FAILED, [f"it offers key {key_id(other)}",
                                      f"this node holds {key_id(env.key)}"], mark)


def test_810_03_none_key_refused(fresh):
    """The public key of `ClusterSecretFile none` is not this cluster's."""
    env = fresh.take(AUTH_FAILED)
    mark = env.error_log_size()
    with pytest.raises(TLSRefused) as e:
        connect(env, none=True)
    assert e.value.kind == "auth", e.value.line
    expect_refused(env, AUTH_FAILED, [f"it offers key {key_id('none')}"], mark)


def test_810_04_member_key_links(node):
    """The positive control: with the cluster's key the handshake names the
    node's key id, the HELLOs cross, and PINGs are answered."""
    p = connect(node)
    assert p.key_id == key_id(node.key), p.tls_line
    ftype, route, counter, _ = p.handshake()
    assert (ftype, route, counter) == (HELLO, "node1", 0)
    assert p.ping(41) == 41 and p.ping(42) == 42
    p.close()


# ---- between the handshake and the link: the HELLO ----------------------------

def test_810_05_unknown_sender(fresh):
    env = fresh.take(NOT_A_MEMBER)
    mark = env.error_log_size()
    p = connect(env, route="intruder")
    refused_after_hello(env, p, frame(HELLO, "intruder", 0, hello_payload()))
    expect_refused(env, NOT_A_MEMBER, ["route intruder is not a member"], mark)


def test_810_06_self_route(fresh):
    env = fresh.take(NOT_A_MEMBER)
    mark = env.error_log_size()
    p = connect(env, route="node1")
    refused_after_hello(env, p, frame(HELLO, "node1", 0, hello_payload()))
    expect_refused(env, NOT_A_MEMBER, ["route node1 is not a member"], mark)


def test_810_07_hello_names_another_route_than_the_key(fresh):
    """The key was offered for node2; a HELLO claiming node3 (a member too)
    is refused."""
    env = fresh.take(NOT_A_MEMBER)
    mark = env.error_log_size()
    p = connect(env, route="node2")
    refused_after_hello(env, p, frame(HELLO, "node3", 0, hello_payload()))
    expect_refused(env, NOT_A_MEMBER, ["its HELLO says node3",
                                       "authenticated as another route"], mark,
                   route="node3")


def test_810_08_hello_bad_version(fresh):
    env = fresh.take(MALFORMED_HELLO)
    mark = env.error_log_size()
    p = connect(env)
    refused_after_hello(env, p, frame(HELLO, "node2", 0, hello_payload(), version=1))
    expect_refused(env, MALFORMED_HELLO, ["HELLO: bad version"], mark)


def test_810_09_hello_of_the_old_format(fresh):
    """The version-1 HELLO payload (16 random bytes, a sealed flag, u64
    incarnation) is 16 bytes too long for today's."""
    env = fresh.take(MALFORMED_HELLO)
    mark = env.error_log_size()
    p = connect(env)
    old = bytes(16) + b"\x01" + struct.pack(">Q", 1)
    refused_after_hello(env, p, frame(HELLO, "node2", 0, old))
    expect_refused(env, MALFORMED_HELLO, ["HELLO: trailing bytes"], mark)


def test_810_10_hello_oversized(fresh):
    """A HELLO length over SC_WIRE_HELLO_MAX is refused from the 4-byte
    prefix alone: the node reads and allocates nothing more."""
    env = fresh.take(MALFORMED_HELLO)
    mark = env.error_log_size()
    p = connect(env)
    refused_after_hello(env, p, struct.pack(">I", 1000))
    expect_refused(env, MALFORMED_HELLO, ["HELLO too large"], mark)


def test_810_11_hello_other_manager(fresh):
    """A backup-manager HELLO to a delta node: the node answers its own HELLO
    (so the other side can refuse too), then closes; an error line."""
    env = fresh.take(OTHER_MANAGER)
    mark = env.error_log_size()
    p = connect(env)
    ftype, route, _, payload = p.handshake(manager=1)
    assert (ftype, route, payload[0]) == (HELLO, "node1", 0)
    assert p.closed_by_peer(), "the node kept a link with another ClusterManager"
    p.close()
    line = expect_refused(env, OTHER_MANAGER, ["runs ClusterManager backup",
                                               "this node delta"], mark)
    assert "[session_cluster:error]" in line, line


# ---- the frame layer, inside an authenticated link ------------------------------

def test_810_20_garbage(node):
    mark = node.error_log_size()
    p = connect(node)
    p.handshake()
    p.send_raw(b"\x00\x00\x00\x10GET / HTTP/1.1\r\n")
    expect_drop(node, p, ["bad version"], mark)


def test_810_21_oversized_length(node):
    mark = node.error_log_size()
    p = connect(node)
    p.handshake()
    p.send_raw(b"\xff\xff\xff\xff")
    expect_drop(node, p, ["large"], mark)


def test_810_22_zero_length(node):
    mark = node.error_log_size()
    p = connect(node)
    p.handshake()
    p.send_raw(b"\x00\x00\x00\x00")
    expect_drop(node, p, ["empty frame"], mark)


def test_810_23_bad_version(node):
    mark = node.error_log_size()
    p = connect(node)
    p.handshake()
    p.send_raw(frame(PING, "node2", 1, struct.pack(">Q", 1), version=1))
    expect_drop(node, p, ["bad version"], mark)


def test_810_24_flags_set(node):
    """The flags byte must be 0: TLS protects frames, none is sealed."""
    mark = node.error_log_size()
    p = connect(node)
    p.handshake()
    p.send_raw(frame(PING, "node2", 1, struct.pack(">Q", 1), flags=1))
    expect_drop(node, p, ["unknown flags"], mark)


def test_810_25_ping_then_replay(node):
    mark = node.error_log_size()
    p = connect(node)
    p.handshake()
    assert p.ping(7) == 7
    assert p.ping(8) == 8
    assert p.ping(9, counter=2) is None          # replay of counter 2
    expect_drop(node, p, ["counter"], mark)


def test_810_26_counter_skips(node):
    mark = node.error_log_size()
    p = connect(node)
    p.handshake()
    assert p.ping(1, counter=5) is None
    expect_drop(node, p, ["counter"], mark)


def test_810_27_route_changes_mid_connection(node):
    mark = node.error_log_size()
    p = connect(node)
    p.handshake()
    p.send_raw(frame(PING, "node3", 1, struct.pack(">Q", 1)))
    expect_drop(node, p, ["route"], mark)


def test_810_28_unknown_type(node):
    mark = node.error_log_size()
    p = connect(node)
    p.handshake()
    p.send_raw(frame(99, "node2", 1, b""))
    expect_drop(node, p, ["type"], mark)


def test_810_29_truncated_body_then_hangup(node):
    mark = node.error_log_size()
    p = connect(node)
    p.handshake()
    p.send_raw(b"\x00\x00\x01\x00" + b"\x01" * 10)
    p.close()
    text = wait_log(node, mark, lambda t: "truncated frame" in t)
    assert "truncated frame" in text, text[-2000:]
    assert status(node)[0]["Route"] == "node1"


# ---- TLS records changed on the wire ---------------------------------------------

class Tamper:
    """A man in the middle on one member link: forwards both ways and, on the
    way to the node, cuts the stream into TLS records (5-byte header: type,
    version, u16 length) so that the next record after arm() is changed:
    a bit flipped in its header (also the AEAD's additional data), its
    ciphertext or its tag, or the record sent twice. inject() puts bytes that
    are no record between two records. Every wait is bounded."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.lsock.settimeout(10)
        self.port = self.lsock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.action = None
        self.applied = threading.Event()
        self.raw = b""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def arm(self, action):
        with self.lock:
            self.action = action
            self.applied.clear()

    def inject(self, data):
        with self.lock:
            self.raw += data

    def _change(self, record):
        action, self.action = self.action, None
        if action is None:
            return record
        self.applied.set()
        pos = {"header": 2, "ciphertext": 5 + (len(record) - 5 - 16) // 2,
               "tag": len(record) - 1}.get(action)
        if pos is not None:
            r = bytearray(record)
            r[pos] ^= 0x01
            return bytes(r)
        assert action == "replay", action
        return record + record

    def _run(self):
        try:
            client, _ = self.lsock.accept()
        except OSError:
            return
        up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
        buf = b""
        try:
            while not self.stop.is_set():
                with self.lock:
                    raw, self.raw = self.raw, b""
                if raw:
                    up.sendall(raw)
                ready, _, _ = select.select([client, up], [], [], 0.05)
                if up in ready:
                    data = up.recv(65536)
                    if not data:
                        break
                    client.sendall(data)
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        break
                    buf += data
                    while len(buf) >= 5 and len(buf) >= 5 + struct.unpack(">H", buf[3:5])[0]:
                        n = 5 + struct.unpack(">H", buf[3:5])[0]
                        record, buf = buf[:n], buf[n:]
                        with self.lock:
                            record = self._change(record)
                        up.sendall(record)
        except OSError:
            pass
        finally:
            client.close()
            up.close()

    def close(self):
        self.stop.set()
        self.lsock.close()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive(), "the tamper thread did not end"


@pytest.fixture
def tamper(node):
    t = Tamper(node.cluster_port)
    yield t
    t.close()


def _linked_through(tamper, env):
    """A member link through the man in the middle, HELLOs exchanged and one
    PING answered: from here on the next record is the test's."""
    p = Peer(tamper.addr, "node2", key_file=env.key)
    p.handshake()
    assert p.ping(1) == 1
    return p


@pytest.mark.parametrize("where", ["header", "ciphertext", "tag"])
def test_810_30_tampered_record(node, tamper, where):
    mark = node.error_log_size()
    p = _linked_through(tamper, node)
    tamper.arm(where)
    assert p.ping(2) is None, "a tampered record was answered"
    assert tamper.applied.is_set()
    expect_drop(node, p, ["TLS failed"], mark)


def test_810_31_replayed_record(node, tamper):
    mark = node.error_log_size()
    p = _linked_through(tamper, node)
    tamper.arm("replay")
    assert p.ping(2) == 2                         # the original, then the copy
    assert tamper.applied.is_set()
    expect_drop(node, p, ["TLS failed"], mark)


def test_810_32_plaintext_between_records(node, tamper):
    """A well-formed frame in the clear, put into the TLS stream."""
    mark = node.error_log_size()
    p = _linked_through(tamper, node)
    tamper.inject(frame(PING, "node2", 2, struct.pack(">Q", 2)))
    assert p.recv_frame() is None, "plaintext inside a TLS link was answered"
    expect_drop(node, p, [], mark)


# ---- nothing of a bad frame reaches the store ------------------------------------

def _sessions(env):
    return int(status(env)[0]["SessionsPrimary"])


def _session_frame(p, sid, counter=None):
    from pyhttpd.wire import SESSION, session_payload
    payload = session_payload(sid, "node2", 1, int((time.time() + 600) * 1e6), "k=v")
    return p.build(SESSION, payload, counter)


def test_810_40_tampered_session_not_stored(node, tamper):
    before = _sessions(node)
    mark = node.error_log_size()
    p = _linked_through(tamper, node)
    tamper.arm("ciphertext")
    p.send_raw(_session_frame(p, "tampered00000000000000000"))
    expect_drop(node, p, ["TLS failed"], mark)
    assert tamper.applied.is_set()
    assert _sessions(node) == before


def test_810_41_undecodable_session_not_stored(node):
    from pyhttpd.wire import SESSION
    before = _sessions(node)
    mark = node.error_log_size()
    p = connect(node)
    p.handshake()
    p.send_raw(p.build(SESSION, b"\x00\x05abc"))         # id length past the end
    assert p.recv_frame()[0] == 7                          # ACK (received) ...
    expect_drop(node, p, ["undecodable"], mark)            # ... but never applied
    assert _sessions(node) == before


def test_810_42_well_formed_session_is_stored(node):
    """The positive control for the two tests above."""
    before = _sessions(node)
    p = connect(node)
    p.handshake()
    p.send_raw(_session_frame(p, "wellformed000000000000000"))
    assert p.recv_frame()[0] == 7 and p.recv_frame()[0] == 8   # ACK, APPLIED
    p.close()
    assert _sessions(node) == before + 1


def test_810_43_merge_request_with_payload(node):
    """MERGE_REQ is empty; one carrying bytes is malformed."""
    from pyhttpd.wire import MERGE_REQ
    mark = node.error_log_size()
    p = connect(node)
    p.handshake()
    p.send_raw(p.build(MERGE_REQ, b"x" * 10))
    expect_drop(node, p, ["merge request with a payload"], mark)
