"""Concurrent clients, each on its own session: every count is exact."""


import pytest

from pyhttpd import Client, HttpdEnv
from pyhttpd.cluster import (COOKIE_NAME, cluster_conf, run_threads, start_env, status,
                             stop_env)

THREADS = 4
REQUESTS = 25


@pytest.fixture(scope="module")
def env(module_path, default_mpm):
    env = HttpdEnv("concurrency", mpm=default_mpm, module=module_path)
    start_env(env, cluster_conf(env))
    yield env
    stop_env(env)


def test_600_01_parallel_sessions(env):
    results = {}
    errors = []

    def worker(i):
        c = Client(env, f"t{i}")
        seen = []
        try:
            for _ in range(REQUESTS):
                r = c.get("/cgi/counter.cgi", timeout=30)
                if r.status != 200:
                    errors.append(f"t{i}: status {r.status}: {r!r}")
                    return
                seen.append(int(r.kv()["count"]))
        except Exception as e:      # reported below
            errors.append(f"t{i}: {e!r}")
        results[i] = (seen, c.jar.get(COOKIE_NAME))

    run_threads(worker, [(i,) for i in range(THREADS)], 120, "worker threads")
    assert not errors, errors
    for i in range(THREADS):
        seen, sid = results[i]
        assert seen == list(range(1, REQUESTS + 1)), f"t{i}: {seen}"
    ids = {results[i][1] for i in range(THREADS)}
    assert len(ids) == THREADS and None not in ids
    assert int(status(env)[0]["SessionsPrimary"]) == THREADS
