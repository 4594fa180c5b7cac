"""Configuration: bad values are refused by `apache2 -t` and `-k start` with a
message naming the directive and the offending value; good configs start."""

import base64
import os

import pytest

from pyhttpd import HttpdConf, HttpdEnv
from pyhttpd.ports import free_port
from pyhttpd.cluster import stop_env, wait_ready

LONG_ROUTE = "r" * 32          # max is 31


@pytest.fixture(scope="module")
def env(module_path, default_mpm):
    env = HttpdEnv("config", mpm=default_mpm, module=module_path)
    # key files for the ClusterSecretFile cases (sc_keys.h: >= 32 bytes of key
    # material as hex, base64 or raw bytes, readable by the owner only)
    data = env.root / "data"
    key = os.urandom(32)
    files = {
        "secret-good": os.urandom(32),                       # raw bytes
        "secret-hex": (key.hex() + "\n").encode(),            # openssl rand -hex 32
        "secret-copy": (key.hex().upper() + "\n").encode(),   # the same key, written anew
        "secret-base64": base64.b64encode(os.urandom(32)) + b"\n",
        "secret-base64-wrapped": b"\n".join(                  # openssl rand -base64 48
            base64.b64encode(os.urandom(48))[i:i + 40] for i in range(0, 64, 40)) + b"\n",
        "secret-short": (os.urandom(31).hex() + "\n").encode(),  # 31 bytes as hex
        "secret-raw-short": b"\x00\x01\x02" + os.urandom(17),  # 20 raw bytes
        "secret-passphrase": b"correct horse battery staple, and long enough\n",
        "secret-group": (os.urandom(32).hex() + "\n").encode(),
    }
    for name, content in files.items():
        (data / name).write_bytes(content)
        os.chmod(data / name, 0o600)
    os.chmod(data / "secret-group", 0o640)
    yield env
    stop_env(env)


def build(env, route=True, listen=True, session_on=True, extra=(), cluster_extra=()):
    """A config with optional ClusterRoute/ClusterListen plus extra lines."""
    conf = HttpdConf(env)
    if route:
        conf.add(f"ClusterRoute {env.route}")
    if listen:
        conf.add(f"ClusterListen {env.cluster_addr}")
    for line in cluster_extra:
        conf.add(line.format(env=env, root=env.root))
    if session_on:
        conf.add_session_location("/")
    conf.add_manager()
    for line in extra:
        conf.add(line.format(env=env, root=env.root))
    return conf


# (id, build kwargs, expected substrings in the output / error log)
BAD_CASES = [
    ("manager-foo", dict(cluster_extra=["ClusterManager foo"]),
     ["ClusterManager", "foo"]),
    ("listen-nonsense", dict(listen=False, cluster_extra=["ClusterListen nonsense"]),
     ["ClusterListen", "nonsense"]),
    ("listen-bad-port", dict(listen=False, cluster_extra=["ClusterListen 127.0.0.1:99999"]),
     ["ClusterListen", "99999"]),
    ("member-duplicate-route", dict(cluster_extra=[
        "ClusterMember node1 {env.cluster_addr}",
        "ClusterMember node7 127.0.0.1:1",
        "ClusterMember node7 127.0.0.1:2"]),
     ["ClusterMember", "node7"]),
    ("member-bad-address", dict(cluster_extra=["ClusterMember node2 nonsense"]),
     ["ClusterMember", "nonsense"]),
    ("store-size-abc", dict(cluster_extra=["ClusterStoreSize abc"]),
     ["ClusterStoreSize", "abc"]),
    ("store-size-below-min", dict(cluster_extra=["ClusterStoreSize 512K"]),
     ["ClusterStoreSize", "512K"]),
    ("send-mode-maybe", dict(cluster_extra=["ClusterSendMode maybe"]),
     ["ClusterSendMode", "maybe"]),
    ("multicast-not-multicast", dict(cluster_extra=["ClusterMulticast 10.1.2.3:45564"]),
     ["ClusterMulticast", "10.1.2.3"]),
    ("multicast-bad-ttl", dict(cluster_extra=["ClusterMulticast 228.0.0.4:45564 ttl=abc"]),
     ["ClusterMulticast", "abc"]),
    ("route-bad-chars", dict(route=False, cluster_extra=["ClusterRoute node.1"]),
     ["ClusterRoute", "node.1"]),
    ("route-too-long", dict(route=False, cluster_extra=[f"ClusterRoute {LONG_ROUTE}"]),
     ["ClusterRoute", LONG_ROUTE]),
    ("secret-missing", dict(cluster_extra=["ClusterSecretFile {root}/data/no-such-secret"]),
     ["ClusterSecretFile", "no-such-secret", "not a readable file"]),
    ("secret-too-short", dict(cluster_extra=["ClusterSecretFile {root}/data/secret-short"]),
     ["ClusterSecretFile", "secret-short", "31 bytes of key material", "at least 32"]),
    ("secret-raw-too-short",
     dict(cluster_extra=["ClusterSecretFile {root}/data/secret-raw-short"]),
     ["ClusterSecretFile", "secret-raw-short", "20 bytes", "at least 32"]),
    ("secret-passphrase", dict(cluster_extra=["ClusterSecretFile {root}/data/secret-passphrase"]),
     ["ClusterSecretFile", "secret-passphrase", "passphrase", "openssl rand"]),
    ("secret-group-readable", dict(cluster_extra=["ClusterSecretFile {root}/data/secret-group"]),
     ["ClusterSecretFile", "secret-group", "group or others", "chmod 600"]),
    ("secret-older-missing", dict(cluster_extra=[
        "ClusterSecretFile {root}/data/secret-hex {root}/data/no-such-secret"]),
     ["ClusterSecretFile", "no-such-secret", "not a readable file"]),
    ("secret-two-files-same-key", dict(cluster_extra=[
        "ClusterSecretFile {root}/data/secret-hex {root}/data/secret-copy"]),
     ["ClusterSecretFile", "secret-copy", "the same key as the first file"]),
    ("secret-three-files", dict(cluster_extra=[
        "ClusterSecretFile {root}/data/secret-hex {root}/data/secret-good "
        "{root}/data/secret-base64"]),
     ["ClusterSecretFile"]),
    ("secret-none-and-a-file", dict(cluster_extra=[
        "ClusterSecretFile none {root}/data/secret-hex"]),
     ["ClusterSecretFile none takes no second file"]),
    ("clustered-without-secret", dict(cluster_extra=[
        "ClusterMember node1 {env.cluster_addr}", "ClusterMember node2 127.0.0.1:1"]),
     ["clustering needs a secret", "ClusterSecretFile", "openssl rand -base64 32"]),
    ("multicast-without-secret", dict(cluster_extra=[
        "ClusterMulticast 228.0.0.4:45564 interface=127.0.0.1"]),
     ["clustering needs a secret", "ClusterSecretFile", "openssl rand -base64 32"]),
    ("secret-none-member-beyond-loopback", dict(cluster_extra=[
        "ClusterMember node1 {env.cluster_addr}", "ClusterMember node2 192.0.2.7:9101",
        "ClusterSecretFile none"]),
     ["ClusterMember node2 192.0.2.7:9101 is not on loopback", "ClusterSecretFile none"]),
    ("secret-none-listen-beyond-loopback", dict(listen=False, cluster_extra=[
        "ClusterListen 192.0.2.7:{env.cluster_port}", "ClusterSecretFile none"]),
     ["ClusterListen 192.0.2.7", "is not on loopback", "ClusterSecretFile none"]),
    ("state-transfer-timeout-abc",
     dict(cluster_extra=["ClusterStateTransferTimeout abc"]),
     ["ClusterStateTransferTimeout", "abc"]),
    ("session-cluster-without-route", dict(route=False),
     ["ClusterRoute"]),
    ("session-cluster-without-listen", dict(listen=False),
     ["ClusterListen"]),
    ("route-in-location", dict(extra=[
        "<Location /x>", "ClusterRoute node1", "</Location>"]),
     ["ClusterRoute"]),
    ("route-in-virtualhost", dict(extra=[
        "<VirtualHost 127.0.0.1:{env.http_port}>", "ClusterRoute node1", "</VirtualHost>"]),
     ["ClusterRoute"]),
    ("session-cluster-maybe", dict(extra=[
        "<Location /y>", "SessionCluster maybe", "</Location>"]),
     ["SessionCluster"]),
]


def _assert_refused(env, what, r, expected, log_offset):
    log = env.error_log_text(log_offset)
    text = r.output + "\n" + log
    assert r.rc != 0, (f"{what} succeeded (rc=0) on a bad config; expected refusal "
                       f"naming {expected}\noutput: {r.output}\nlog: {log}")
    missing = [e for e in expected if e not in text]
    assert not missing, (f"{what} refused the config (rc={r.rc}) but the message "
                         f"lacks {missing}\noutput: {r.output}\nerror log: {log}")


@pytest.mark.parametrize("kwargs,expected", [c[1:] for c in BAD_CASES],
                         ids=[c[0] for c in BAD_CASES])
def test_100_01_bad_config(env, kwargs, expected):
    build(env, **kwargs).install()
    # apache2 -t
    off = env.error_log_size()
    r = env.configtest()
    _assert_refused(env, "apache2 -t", r, expected, off)
    # apache2 -k start
    off = env.error_log_size()
    r = env.start(check=False)
    try:
        _assert_refused(env, "apache2 -k start", r, expected, off)
        assert not env.is_running(), "server process is running despite bad config"
    finally:
        if env.is_running():
            env.stop()


def test_100_02_good_minimal(env):
    """ClusterRoute + ClusterListen + SessionCluster On: starts and is ready."""
    build(env).install()
    r = env.configtest()
    assert r.rc == 0, r.output
    assert "Syntax OK" in r.output
    env.start()
    try:
        assert wait_ready(env) == 200, env.error_log_tail()
    finally:
        env.stop()
    assert not env.is_running()


def test_100_03_good_full(env):
    """Every server directive with a valid value."""
    other = f"127.0.0.1:{free_port()}"
    conf = build(env, cluster_extra=[
        "ClusterManager backup",
        "ClusterMember node1 {env.cluster_addr}",
        f"ClusterMember node-2_b {other}",
        "ClusterSendMode sync",
        "ClusterStoreSize 64M",
        "ClusterSecretFile {root}/data/secret-good",
        "ClusterStateTransferTimeout 1",
    ])
    conf.add_session_location("/named/", cookie_name="MYSID")
    conf.install()
    r = env.configtest()
    assert r.rc == 0, r.output
    env.start()
    try:
        assert env.is_running()
    finally:
        env.stop()


@pytest.mark.parametrize("value", ["async", "ack", "sync"])
def test_100_04_good_send_modes(env, value):
    build(env, cluster_extra=[f"ClusterSendMode {value}"]).install()
    r = env.configtest()
    assert r.rc == 0, r.output


@pytest.mark.parametrize("value", ["1M", "2048K", "64M", "1G"])
def test_100_05_good_store_sizes(env, value):
    build(env, cluster_extra=[f"ClusterStoreSize {value}"]).install()
    r = env.configtest()
    assert r.rc == 0, r.output


def test_100_06_good_multicast(env):
    """Multicast clusters: a key is required (test_100_01 multicast-without-secret)."""
    build(env, cluster_extra=[
        "ClusterMulticast 228.0.0.4:45564 interface=127.0.0.1 ttl=1 "
        "frequency=500 droptime=3000",
        "ClusterSecretFile {root}/data/secret-hex"]).install()
    r = env.configtest()
    assert r.rc == 0, r.output


def test_100_07_module_loaded_unused(env):
    """No Cluster* directives and no SessionCluster On: the module stays idle."""
    build(env, route=False, listen=False, session_on=False).install()
    r = env.configtest()
    assert r.rc == 0, r.output
    env.start()
    try:
        assert env.is_running()
    finally:
        env.stop()


@pytest.mark.parametrize("secret", [
    "{root}/data/secret-hex",                                   # openssl rand -hex 32
    "{root}/data/secret-base64",                                # openssl rand -base64 32
    "{root}/data/secret-base64-wrapped",                        # lines of base64
    "{root}/data/secret-good",                                  # openssl rand 32
    "{root}/data/secret-hex {root}/data/secret-base64",         # a rotation: new, older
    "none",                                                     # loopback only
], ids=["hex", "base64", "base64-wrapped", "raw", "two-files", "none-on-loopback"])
def test_100_08_good_secret(env, secret):
    """A node with another member and each kind of key that is accepted."""
    build(env, cluster_extra=[
        "ClusterMember node1 {env.cluster_addr}", "ClusterMember node2 127.0.0.1:1",
        f"ClusterSecretFile {secret}"]).install()
    r = env.configtest()
    assert r.rc == 0, r.output
