"""Minimal pytest harness for running Apache httpd with mod_session_cluster.

Modelled after httpd's own test/pyhttpd: an Env that owns a server root on
free loopback ports, a config writer, and a small HTTP client with a cookie jar.
"""

from .env import HttpdEnv, ExecResult, find_module, repo_root, CRASH_PATTERNS
from .conf import HttpdConf
from .client import Client, Response, parse_set_cookie
from . import cluster

__all__ = [
    "HttpdEnv", "ExecResult", "HttpdConf", "Client", "Response",
    "parse_set_cookie", "find_module", "repo_root", "CRASH_PATTERNS", "cluster",
]
