"""Raw LOCATION and FETCH frames (backup manager) at a live node's
ClusterListen port, inside a member's TLS link (pyhttpd.wire.Peer with the
cluster's key): malformed ones are dropped with the connection and a log
line and change nothing; well-formed ones do what they say. The node is
node1 of a 3-member backup cluster whose other members are this test."""

import time

import pytest

from pyhttpd import Client, HttpdEnv
from pyhttpd.cluster import COOKIE_NAME, cluster_conf, split_id, start_env, status, stop_env
from pyhttpd.conf import shared_secret_file
from pyhttpd.drops import expect_drop
from pyhttpd.wire import (ACK, ACK_NOTFOUND, FETCH, LOCATION, SESSION, Peer, ack_status,
                          id_payload, location_payload)

FAKE_PEERS = [("node2", "127.0.0.1:1"), ("node3", "127.0.0.1:2")]
EXPIRES = int((time.time() + 600) * 1e6)


@pytest.fixture(scope="module")
def node(module_path):
    env = HttpdEnv("frames-backup", mpm="event", module=module_path, route="node1")
    start_env(env, cluster_conf(env, members=[("node1", env.cluster_addr)] + FAKE_PEERS,
                                manager="backup"))
    yield env
    stop_env(env)


def peer(env):
    p = Peer(env.cluster_addr, "node2", key_file=shared_secret_file(env.base_dir()))
    p.handshake(manager=1)                  # backup, as the node
    return p


def counts(env):
    v = status(env)[0]
    return int(v["SessionsPrimary"]), int(v["SessionsBackup"]), int(v["SessionsProxy"])


def test_815_01_location_becomes_a_proxy(node):
    before = counts(node)
    p = peer(node)
    p.send_raw(p.build(LOCATION, location_payload("loc0000000000000000000001", "node2",
                                                  "node3", 4, EXPIRES)))
    assert p.recv_frame()[0] == ACK and p.recv_frame()[0] == 8     # ACK, APPLIED
    p.close()
    after = counts(node)
    assert after == (before[0], before[1], before[2] + 1), (before, after)


@pytest.mark.parametrize("what,payload", [
    ("data in a location", location_payload("loc0000000000000000000002", "node2", "node3",
                                            4, EXPIRES)[:-4] + b"\x00\x00\x00\x03k=v"),
    ("bad backup route", location_payload("loc0000000000000000000003", "node2", "no.de",
                                          4, EXPIRES)),
    ("truncated", location_payload("loc0000000000000000000004", "node2", "node3",
                                   4, EXPIRES)[:-3]),
])
def test_815_02_malformed_location_dropped(node, what, payload):
    before = counts(node)
    mark = node.error_log_size()
    p = peer(node)
    p.send_raw(p.build(LOCATION, payload))
    assert p.recv_frame()[0] == ACK                 # received, never applied
    expect_drop(node, p, ["undecodable"], mark)
    assert counts(node) == before, what


@pytest.mark.parametrize("payload", [b"", b"\x00\x09short", b"\x00\x04a.b!",
                                     id_payload("ok000000000000000000000000") + b"x"])
def test_815_03_malformed_fetch_dropped(node, payload):
    mark = node.error_log_size()
    p = peer(node)
    p.send_raw(p.build(FETCH, payload))
    expect_drop(node, p, ["undecodable fetch"], mark)


def test_815_04_fetch_unknown_answers_notfound(node):
    p = peer(node)
    p.send_raw(p.build(FETCH, id_payload("unknown00000000000000000")))
    ftype, _, _, body = p.recv_frame()
    p.close()
    assert ftype == ACK and ack_status(body)[1] == ACK_NOTFOUND


def test_815_05_fetch_known_sends_data_and_location_keeps_primary(node):
    c = Client(node)
    assert c.get("/cgi/counter.cgi").status == 200
    base = split_id(c.jar[COOKIE_NAME])[0]
    p = peer(node)
    p.send_raw(p.build(FETCH, id_payload(base)))
    ftype, _, _, body = p.recv_frame()
    assert ftype == SESSION and b"count=1" in body, (ftype, body)
    # a location naming node1 as primary, as another member may send late:
    # node1 keeps the data it is primary of
    before = counts(node)
    p.send_raw(p.build(LOCATION, location_payload(base, "node1", "node3", 9, EXPIRES)))
    assert p.recv_frame()[0] == ACK and p.recv_frame()[0] == 8
    p.close()
    assert counts(node) == before
    r = c.get("/cgi/counter.cgi")
    assert r.status == 200 and r.kv()["count"] == "2"
