"""A live node dropping a peer connection: expect_drop() checks that it
closed the connection, logged why and still serves (test_810's and test_815's
raw frames at ClusterListen); wait_log() waits for a log line."""

import time

from .cluster import status

LOG_WAIT = 5.0          # a line the node writes at once, on a loaded machine
DROPPED = "dropping connection"


def wait_log(env, mark, check):
    """env's error log from mark on, once check(text) holds or LOG_WAIT has
    passed."""
    deadline = time.monotonic() + LOG_WAIT
    while time.monotonic() < deadline:
        if check(env.error_log_text(mark)):
            break
        time.sleep(0.05)
    return env.error_log_text(mark)


def expect_drop(env, peer, log_words, mark):
    """The node closed the connection and logged why; it still serves."""
    assert peer.closed_by_peer(), "node kept the connection open"
    peer.close()
    text = wait_log(env, mark, lambda t: DROPPED in t and all(w in t for w in log_words))
    assert DROPPED in text, text[-2000:]
    for w in log_words:
        assert w in text, f"log lacks {w!r}:\n{text[-2000:]}"
    assert status(env)[0]["Route"] == "node1"
