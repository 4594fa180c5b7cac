"""Delta replication between real nodes (Tomcat DeltaManager behaviour), the
seed scenario of shared/seeds/tomcat5-cluster-howto.txt step by step, and the
send modes. Clients talk to nodes directly here; the balancer comes on top."""

import threading
import time

import pytest

from pyhttpd import Client
from pyhttpd.cluster import (COOKIE_NAME, COUNTER, Cluster, count, route_of, split_id,
                             status, wait_for)

LIMIT = 10.0


@pytest.fixture(scope="module")
def trio(module_path):
    cl = Cluster(module_path, "delta", ("node1", "node2", "node3"), mode="sync")
    for e in cl.envs:
        cl.start(e)
    wait_for(cl.all_up, LIMIT, "3 members up")
    yield cl
    cl.stop()


def test_820_01_every_node_serves_every_session(trio):
    n1, n2, n3 = trio.envs
    c = Client(n1, "roam")
    assert [count(c, n1) for _ in range(3)] == [1, 2, 3]
    assert route_of(c) == "node1"
    assert count(c, n2) == 4
    assert route_of(c) == "node2", "the cookie was not re-homed to node2"
    assert count(c, n3) == 5 and route_of(c) == "node3"
    assert count(c, n1) == 6 and route_of(c) == "node1"
    for e in trio.envs:
        assert int(status(e)[0]["SessionsPrimary"]) >= 1


def test_820_02_invalidate_is_gone_everywhere(trio):
    n1, n2, n3 = trio.envs
    c = Client(n1, "inv")
    count(c, n1)
    old = c.jar[COOKIE_NAME]
    c.env = n2
    assert c.get("/cgi/invalidate.cgi").status == 200
    assert COOKIE_NAME not in c.jar
    for e in (n1, n3, n2):
        probe = Client(e, "probe")
        r = probe.get(COUNTER, cookies=f"{COOKIE_NAME}={old}")
        assert int(r.kv()["count"]) == 1, f"invalidated session served by {e.route}"
        assert split_id(probe.jar[COOKIE_NAME])[0] != split_id(old)[0]


def test_820_03_concurrent_keys_both_survive(trio):
    n1, n2, _ = trio.envs
    c = Client(n1, "keys")
    c.env = n1
    c.get("/cgi/setkv.cgi?base=1")
    cookie = f"{COOKIE_NAME}={c.jar[COOKIE_NAME]}"
    errors = []

    def setter(env, key):
        for i in range(20):
            r = Client(env, key).get(f"/cgi/setkv.cgi?{key}={i}", cookies=cookie,
                                     update_jar=False)
            if r.status != 200:
                errors.append(r)
    threads = [threading.Thread(target=setter, args=(n1, "left")),
               threading.Thread(target=setter, args=(n1, "right"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    for e in trio.envs:
        r = Client(e, "check").get("/cgi/echo.cgi", cookies=cookie, update_jar=False)
        body = r.kv()["session"]
        assert "left=19" in body and "right=19" in body and "base=1" in body, \
            f"{e.route}: {body}"


def test_820_04_sync_owner_killed_mid_stream(trio):
    n1, n2, n3 = trio.envs
    c = Client(n3, "kill")
    seen = [count(c, n3) for _ in range(10)]
    assert seen == list(range(1, 11))
    trio.kill(n3)
    start = time.monotonic()
    assert count(c, n1) == 11, "an acknowledged increment was lost"
    print(f"\nowner killed: next count served by node1 after "
          f"{(time.monotonic() - start) * 1000:.0f} ms")
    assert route_of(c) == "node1"
    trio.start(n3)                       # it must receive state before ready
    assert status(n3)[0]["Ready"] == "1"
    assert count(c, n3) == 12
    wait_for(trio.all_up, LIMIT, "all up again")


def test_820_05_state_transfer_to_restarted_node(trio):
    n1, n2, n3 = trio.envs
    trio.kill(n2)
    clients = [Client(n1, f"st{i}") for i in range(50)]
    for c in clients:
        count(c, n1)
    trio.start(n2)
    auto, _ = status(n2)
    assert auto["Ready"] == "1" and int(auto["SessionsPrimary"]) >= 50
    assert "received" in n2.error_log_text() and "sessions from" in n2.error_log_text()
    for c in clients[:10]:
        assert count(c, n2) == 2


def test_820_06_bytes_delta_smaller_than_whole(trio):
    """A one-key change of a large session travels as a small delta."""
    n1, n2, _ = trio.envs
    c = Client(n1, "big")
    c.env = n1
    for i in range(3):
        assert c.get(f"/cgi/blob.cgi?set={i}&size=3000").status == 200
    count(c, n1)                          # a small change on a ~9 KB session
    mark = n1.error_log_size()
    count(c, n1)
    text = n1.error_log_text(mark)
    assert "patch 7)" in text or "patch 8)" in text, text[-1500:]
    assert count(c, n2) == 3


def test_820_07_graceful_restart_keeps_replicating(trio):
    n1, n2, _ = trio.envs
    c = Client(n1, "graceful")
    assert count(c, n1) == 1
    for _ in range(3):
        n1.graceful()
        before = count(c, n1)                # right after the new generation
        assert count(c, n2) == before + 1, "a save after graceful was not replicated"
        c.env = n1
    assert status(n1)[0]["Ready"] == "1"
