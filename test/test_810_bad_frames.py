"""Raw bytes at a live node's ClusterListen port: every malformed, oversized,
forged, tampered, replayed or unknown-sender frame is dropped, the connection
closed, a log line written, and the node goes on serving. One test per case,
without and with ClusterSecretFile."""

import struct
import time

import pytest

from pyhttpd import HttpdEnv
from pyhttpd.cluster import cluster_conf, start_env, status, stop_env, write_secret_file
from pyhttpd.wire import HELLO, PING, Peer, frame, hello_payload, secret_key

FAKE_PEERS = [("node2", "127.0.0.1:1"), ("node3", "127.0.0.1:2")]


def make_node(module_path, name, secret=False):
    env = HttpdEnv(name, mpm="event", module=module_path, route="node1")
    kw = {}
    if secret:
        kw["secret_file"] = str(write_secret_file(env.root / "cluster.key"))
    members = [("node1", env.cluster_addr)] + FAKE_PEERS
    start_env(env, cluster_conf(env, members=members, **kw))
    env.secret = secret_key(kw["secret_file"]) if secret else None
    return env


@pytest.fixture(scope="module")
def plain(module_path):
    env = make_node(module_path, "frames-plain")
    yield env
    stop_env(env)


@pytest.fixture(scope="module")
def sealed(module_path):
    env = make_node(module_path, "frames-sealed", secret=True)
    yield env
    stop_env(env)


def expect_drop(env, peer, log_words, mark):
    """The node closed the connection and logged why; it still serves."""
    assert peer.closed_by_peer(), "node kept the connection open"
    peer.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        text = env.error_log_text(mark)
        if "dropping connection" in text and all(w in text for w in log_words):
            break
        time.sleep(0.05)
    text = env.error_log_text(mark)
    assert "dropping connection" in text, text[-2000:]
    for w in log_words:
        assert w in text, f"log lacks {w!r}:\n{text[-2000:]}"
    assert status(env)[0]["Route"] == "node1"


def connect(env, route="node2"):
    return Peer(env.cluster_addr, route, secret=env.secret)


# ---- without a secret ------------------------------------------------------

def test_810_01_garbage(plain):
    mark = plain.error_log_size()
    p = connect(plain)
    p.send_raw(b"\x00\x00\x00\x10GET / HTTP/1.1\r\n")
    expect_drop(plain, p, [], mark)


def test_810_02_oversized_length(plain):
    mark = plain.error_log_size()
    p = connect(plain)
    p.send_raw(b"\xff\xff\xff\xff")
    expect_drop(plain, p, ["large"], mark)


def test_810_03_zero_length(plain):
    mark = plain.error_log_size()
    p = connect(plain)
    p.send_raw(b"\x00\x00\x00\x00")
    expect_drop(plain, p, [], mark)


def test_810_04_unknown_sender(plain):
    mark = plain.error_log_size()
    p = connect(plain, route="intruder")
    p.send_raw(frame(HELLO, "intruder", 0, hello_payload(False)))
    expect_drop(plain, p, ["not a member"], mark)


def test_810_05_self_route(plain):
    mark = plain.error_log_size()
    p = connect(plain, route="node1")
    p.send_raw(frame(HELLO, "node1", 0, hello_payload(False)))
    expect_drop(plain, p, ["not a member"], mark)


def test_810_06_bad_version(plain):
    mark = plain.error_log_size()
    p = connect(plain)
    p.send_raw(frame(HELLO, "node2", 0, hello_payload(False), version=9))
    expect_drop(plain, p, [], mark)


def test_810_07_ping_then_replay(plain):
    mark = plain.error_log_size()
    p = connect(plain)
    p.handshake()
    assert p.ping(7) == 7
    assert p.ping(8) == 8
    assert p.ping(9, counter=2) is None          # replay of counter 2
    expect_drop(plain, p, ["counter"], mark)


def test_810_08_counter_skips(plain):
    mark = plain.error_log_size()
    p = connect(plain)
    p.handshake()
    assert p.ping(1, counter=5) is None
    expect_drop(plain, p, ["counter"], mark)


def test_810_09_route_changes_mid_connection(plain):
    mark = plain.error_log_size()
    p = connect(plain)
    p.handshake()
    p.send_raw(frame(PING, "node3", 1, struct.pack(">Q", 1)))
    expect_drop(plain, p, ["route"], mark)


def test_810_10_unknown_type(plain):
    mark = plain.error_log_size()
    p = connect(plain)
    p.handshake()
    p.send_raw(frame(99, "node2", 1, b""))
    expect_drop(plain, p, ["type"], mark)


def test_810_11_truncated_body_then_hangup(plain):
    p = connect(plain)
    p.send_raw(b"\x00\x00\x01\x00" + b"\x01" * 10)
    p.close()
    time.sleep(0.3)
    assert status(plain)[0]["Route"] == "node1"


def test_810_12_sealed_hello_to_plain_node(plain):
    mark = plain.error_log_size()
    p = connect(plain)
    p.send_raw(frame(HELLO, "node2", 0, hello_payload(True)))
    expect_drop(plain, p, [], mark)


# ---- with a secret: frames are AES-256-GCM sealed ------------------------------

def test_810_20_sealed_ping_works(sealed):
    p = connect(sealed)
    p.handshake()
    assert p.ping(41) == 41 and p.ping(42) == 42
    p.close()


def test_810_21_wrong_secret(sealed):
    mark = sealed.error_log_size()
    p = Peer(sealed.cluster_addr, "node2", secret=b"x" * 32)
    p.handshake()
    assert p.ping(1) is None
    expect_drop(sealed, p, ["auth"], mark)


@pytest.mark.parametrize("where", ["header", "payload", "tag"])
def test_810_22_tampered(sealed, where):
    mark = sealed.error_log_size()
    p = connect(sealed)
    p.handshake()
    f = bytearray(p.build(PING, struct.pack(">Q", 5)))
    pos = {"header": 5, "payload": len(f) - 20, "tag": len(f) - 1}[where]
    f[pos] ^= 0x01
    p.send_raw(bytes(f))
    expect_drop(sealed, p, [], mark)


def test_810_23_plaintext_when_sealed(sealed):
    mark = sealed.error_log_size()
    p = connect(sealed)
    p.handshake()
    p.send_raw(frame(PING, "node2", 1, struct.pack(">Q", 1)))
    expect_drop(sealed, p, [], mark)


def test_810_24_sealed_replay(sealed):
    mark = sealed.error_log_size()
    p = connect(sealed)
    p.handshake()
    f = p.build(PING, struct.pack(">Q", 3))
    p.send_raw(f)
    assert p.recv_frame()[0] == 3            # PONG
    p.send_raw(f)                             # the same sealed frame again
    expect_drop(sealed, p, ["counter"], mark)


def test_810_25_plain_hello_to_sealed_node(sealed):
    mark = sealed.error_log_size()
    p = connect(sealed)
    p.send_raw(frame(HELLO, "node2", 0, hello_payload(False)))
    expect_drop(sealed, p, [], mark)


# ---- nothing of a bad frame reaches the store ------------------------------------

def _sessions(env):
    return int(status(env)[0]["SessionsPrimary"])


def _session_frame(p, sid, counter=None):
    from pyhttpd.wire import SESSION, session_payload
    payload = session_payload(sid, "node2", 1, int((time.time() + 600) * 1e6), "k=v")
    return p.build(SESSION, payload, counter)


def test_810_30_tampered_session_not_stored(sealed):
    before = _sessions(sealed)
    mark = sealed.error_log_size()
    p = connect(sealed)
    p.handshake()
    f = bytearray(_session_frame(p, "tampered00000000000000000"))
    f[-20] ^= 0x40                      # inside the sealed payload
    p.send_raw(bytes(f))
    expect_drop(sealed, p, ["auth"], mark)
    assert _sessions(sealed) == before


def test_810_31_undecodable_session_not_stored(plain):
    from pyhttpd.wire import SESSION
    before = _sessions(plain)
    mark = plain.error_log_size()
    p = connect(plain)
    p.handshake()
    p.send_raw(p.build(SESSION, b"\x00\x05abc"))         # id length past the end
    assert p.recv_frame()[0] == 7                          # ACK (received) ...
    expect_drop(plain, p, ["undecodable"], mark)           # ... but never applied
    assert _sessions(plain) == before


def test_810_32_well_formed_session_is_stored(plain):
    """The positive control for the two tests above."""
    before = _sessions(plain)
    p = connect(plain)
    p.handshake()
    p.send_raw(_session_frame(p, "wellformed000000000000000"))
    assert p.recv_frame()[0] == 7 and p.recv_frame()[0] == 8   # ACK, APPLIED
    p.close()
    assert _sessions(plain) == before + 1


def test_810_33_merge_request_with_payload(plain):
    """MERGE_REQ is empty; one carrying bytes is malformed."""
    from pyhttpd.wire import MERGE_REQ
    mark = plain.error_log_size()
    p = connect(plain)
    p.handshake()
    p.send_raw(p.build(MERGE_REQ, b"x" * 10))
    expect_drop(plain, p, ["merge request with a payload"], mark)
