"""The scenario of shared/seeds/tomcat5-cluster-howto.txt, step by step, with
TomcatA = node1 and TomcatB = node2 (delta manager, sync mode):

  1. A starts            2. B starts and receives state    3. A creates S1
  4. A crashes           5. B serves S1                     6. A starts and
  receives state before it serves   7. A invalidates S1     8. B creates S2
  9. S2 expires on A due to inactivity (and on B)
"""

import time

from pyhttpd import Client
from pyhttpd.cluster import (COOKIE_NAME, Cluster, count, route_of, split_id, status,
                             wait_for)

MAXAGE = 3


def test_840_seed_scenario(module_path):
    cl = Cluster(module_path, "seed", ("node1", "node2"), mode="sync", maxage=MAXAGE)
    a, b = cl.envs
    try:
        # 1. A starts: nobody to ask, so it serves as the first node
        cl.start(a)
        assert status(a)[0]["Ready"] == "1"
        assert "serving as the first node" in a.error_log_text()

        # 2. B starts and receives the (empty) state from A before it is ready
        cl.start(b)
        assert status(b)[0]["Ready"] == "1"
        assert "received 0 sessions from node1" in b.error_log_text()
        wait_for(cl.all_up, 10, "A and B see each other")

        # 3. A receives a request, a session S1 is created (and replicated)
        c = Client(a, "s1")
        assert [count(c, a) for _ in range(3)] == [1, 2, 3]
        s1 = split_id(c.jar[COOKIE_NAME])[0]
        assert int(status(b)[0]["SessionsPrimary"]) == 1

        # 4. A crashes
        cl.kill(a)
        wait_for(lambda: dict((r, s) for r, _, s in status(b)[1])["node1"] == "down",
                 10, "B sees A down")

        # 5. B receives a request for S1: served, and re-homed to B
        assert count(c, b) == 4
        assert route_of(c) == "node2" and split_id(c.jar[COOKIE_NAME])[0] == s1

        # 6. A starts and receives state before it serves
        cl.start(a)
        # (start_env waited for ?ready, which stays 503 until the transfer)
        auto = status(a)[0]
        assert auto["Ready"] == "1" and int(auto["SessionsTransferred"]) == 1
        assert "received 1 sessions from node2" in a.error_log_text()
        assert count(c, a) == 5

        # 7. A receives a request: invalidate S1; it is gone on B too
        c.env = a
        c.get("/cgi/invalidate.cgi")
        probe = Client(b, "probe")
        r = probe.get("/cgi/counter.cgi", cookies=f"{COOKIE_NAME}={s1}.node1")
        assert int(r.kv()["count"]) == 1, "B still served the invalidated S1"

        # 8. B receives a request for a new session S2
        c2 = Client(b, "s2")
        assert count(c2, b) == 1
        s2 = c2.jar[COOKIE_NAME]
        assert int(status(a)[0]["SessionsPrimary"]) >= 1

        # 9. S2 expires on A (and B) after MAXAGE seconds without requests
        time.sleep(MAXAGE + 1.5)
        for e in (a, b):
            r = Client(e, "late").get("/cgi/counter.cgi", cookies=f"{COOKIE_NAME}={s2}")
            assert int(r.kv()["count"]) == 1, f"{e.route} served the expired S2"
    finally:
        cl.stop()
