"""The session cookie's attributes, read by name (issue 11, point 4).

`HttpOnly`, `SameSite=Lax` and `Path=/` are added unless the admin's
attributes (SessionClusterCookieName <name> <attributes>) name them, by
attribute name: `domain=httponly.secure-payments.example` is a Domain and
stops neither. `Secure` is added when the client used https as this server
knows it: over mod_ssl, with `ServerName https://...` (a node behind a
TLS-terminating proxy), with HTTPS=on from the configuration (the
X-Forwarded-Proto recipe of balancer_conf/, trusted from the balancer's
address only), or always when the admin writes `secure`.
"""

import subprocess

import pytest
import requests
import urllib3

from pyhttpd import HttpdEnv
from pyhttpd.client import parse_set_cookie
from pyhttpd.cluster import COOKIE_NAME, cluster_conf, split_id, start_env, stop_env
from pyhttpd.env import MODULES_DIR
from pyhttpd.ports import free_port

DOMAIN = "httponly.secure-payments.example"


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"


@pytest.fixture(scope="module")
def env(module_path, default_mpm):
    env = HttpdEnv("cookie", mpm=default_mpm, module=module_path, route="node1")
    env.tls_port, env.proxied_port = free_port(), free_port()
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", "tls.key", "-out", "tls.crt", "-days", "2",
             "-subj", "/CN=127.0.0.1", cwd=env.root)
    conf = cluster_conf(env)
    for prefix, attrs in (("/admin-secure/", "secure"),
                          ("/domain/", f"domain={DOMAIN}"),
                          ("/own/", "Path=/own/;HttpOnly;SameSite=Strict")):
        conf.add_script_alias(prefix)
        conf.add([f"<Location {prefix}>",
                  f'    SessionClusterCookieName {COOKIE_NAME} "{attrs}"',
                  "</Location>"])
    conf.add([
        # the recipe of balancer_conf/: a balancer we trust (here: loopback)
        # says the client used https
        "SetEnvIfExpr \"-R '127.0.0.0/8' && req('X-Forwarded-Proto') == 'https'\" HTTPS=on",
        # mod_ssl on a port of its own
        "<IfModule !ssl_module>",
        f"    LoadModule ssl_module {MODULES_DIR}/mod_ssl.so",
        "</IfModule>",
        f"Listen 127.0.0.1:{env.tls_port}",
        f"<VirtualHost 127.0.0.1:{env.tls_port}>",
        "    SSLEngine on",
        f'    SSLCertificateFile "{env.root}/tls.crt"',
        f'    SSLCertificateKeyFile "{env.root}/tls.key"',
        "</VirtualHost>",
        # a node behind a TLS-terminating proxy that says so the httpd way
        f"Listen 127.0.0.1:{env.proxied_port}",
        f"<VirtualHost 127.0.0.1:{env.proxied_port}>",
        "    ServerName https://shop.example",
        "</VirtualHost>",
    ])
    start_env(env, conf)
    yield env
    stop_env(env)


def new_cookie(url, headers=None):
    """The attributes of the session cookie a fresh visitor of `url` gets."""
    with urllib3.warnings.catch_warnings():
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        r = requests.get(url, headers=dict(headers or {}, Connection="close"),
                         timeout=20, verify=False)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    cookies = [parse_set_cookie(h) for h in r.raw.headers.getlist("Set-Cookie")]
    mine = [c for c in cookies if c[0] == COOKIE_NAME]
    assert len(mine) == 1, f"expected one {COOKIE_NAME} cookie: {cookies}"
    name, value, attrs = mine[0]
    assert split_id(value), f"malformed id {value!r}"
    return attrs


def http(env, path):
    return f"http://127.0.0.1:{env.http_port}{path}"


def test_210_01_plain_http_has_no_secure(env):
    attrs = new_cookie(http(env, "/cgi/counter.cgi"))
    assert "secure" not in attrs, attrs
    assert attrs.get("httponly") is True and attrs.get("samesite") == "Lax", attrs
    assert attrs.get("path") == "/", attrs


def test_210_02_mod_ssl_adds_secure(env):
    attrs = new_cookie(f"https://127.0.0.1:{env.tls_port}/cgi/counter.cgi")
    assert attrs.get("secure") is True, attrs


def test_210_03_servername_https_adds_secure(env):
    attrs = new_cookie(f"http://127.0.0.1:{env.proxied_port}/cgi/counter.cgi")
    assert attrs.get("secure") is True, attrs


def test_210_04_trusted_forwarded_proto_adds_secure(env):
    attrs = new_cookie(http(env, "/cgi/counter.cgi"), {"X-Forwarded-Proto": "https"})
    assert attrs.get("secure") is True, attrs
    attrs = new_cookie(http(env, "/cgi/counter.cgi"), {"X-Forwarded-Proto": "http"})
    assert "secure" not in attrs, attrs


def test_210_05_admin_secure_without_https(env):
    attrs = new_cookie(http(env, "/admin-secure/counter.cgi"))
    assert attrs.get("secure") is True, attrs
    # the admin's list had no path: the default one is kept
    assert attrs.get("path") == "/", attrs
    assert attrs.get("httponly") is True and attrs.get("samesite") == "Lax", attrs


def test_210_06_attribute_values_do_not_count_as_names(env):
    """Before: the substrings "secure" and "httponly" in a Domain stopped
    Secure and HttpOnly from being added."""
    attrs = new_cookie(http(env, "/domain/counter.cgi"), {"X-Forwarded-Proto": "https"})
    assert attrs.get("domain") == DOMAIN, attrs
    assert attrs.get("secure") is True, attrs
    assert attrs.get("httponly") is True, attrs
    assert attrs.get("samesite") == "Lax", attrs


def test_210_07_admin_attributes_are_kept(env):
    attrs = new_cookie(http(env, "/own/counter.cgi"))
    assert attrs.get("path") == "/own/", attrs
    assert attrs.get("samesite") == "Strict", attrs
    assert attrs.get("httponly") is True, attrs
