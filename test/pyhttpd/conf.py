"""HttpdConf: builds the per-test part of httpd.conf (appended to the base config)."""

import os
import secrets

_shared_secret = None


def shared_secret_file(base_dir):
    """The ClusterSecretFile every clustered test node uses unless its test
    says otherwise: 32 random bytes as hex, mode 0600, one per test run."""
    global _shared_secret
    if _shared_secret is None or not _shared_secret.exists():
        path = base_dir / "cluster.key"
        path.write_text(secrets.token_hex(32) + "\n")
        os.chmod(path, 0o600)
        _shared_secret = path
    return _shared_secret


class HttpdConf:
    def __init__(self, env=None):
        self.env = env
        self._lines = []

    def add(self, text):
        """Add one line or a block of lines (str) or a list of lines."""
        if isinstance(text, (list, tuple)):
            for t in text:
                self.add(t)
        else:
            self._lines.extend(str(text).splitlines())
        return self

    def add_cluster(self, route=None, listen=None, manager=None, members=None,
                    send_mode=None, store_size=None, secret_file=None,
                    multicast=None, state_transfer_timeout=None):
        """Server-scope Cluster* directives. members: list of (route, addr).

        secret_file: a path (or "path older-path", or "none"); None gives a
        node with other members (or multicast) the run's shared key file, as
        clustering needs one; False writes no ClusterSecretFile at all."""
        env = self.env
        route = route if route is not None else (env.route if env else None)
        listen = listen if listen is not None else (env.cluster_addr if env else None)
        if route:
            self.add(f"ClusterRoute {route}")
        if listen:
            self.add(f"ClusterListen {listen}")
        if manager:
            self.add(f"ClusterManager {manager}")
        for m_route, m_addr in (members or []):
            self.add(f"ClusterMember {m_route} {m_addr}")
        if multicast:
            self.add(f"ClusterMulticast {multicast}")
        if send_mode:
            self.add(f"ClusterSendMode {send_mode}")
        if store_size:
            self.add(f"ClusterStoreSize {store_size}")
        others = [m for m in (members or []) if m[0] != route]
        if secret_file is None and (others or multicast) and env is not None:
            secret_file = shared_secret_file(env.base_dir())
        if secret_file:
            files = str(secret_file).split()
            self.add("ClusterSecretFile " + " ".join(
                f for f in (files if files[0] == "none" else [f'"{f}"' for f in files])))
        if state_transfer_timeout is not None:
            self.add(f"ClusterStateTransferTimeout {state_transfer_timeout}")
        return self

    def add_session_location(self, path="/", cluster=True, maxage=None,
                             cookie_name=None, env=True, header="X-Replace-Session",
                             extra=None):
        """A <Location> with mod_session + SessionCluster."""
        self.add(f"<Location {path}>")
        self.add("    Session On")
        if cluster is not None:
            self.add(f"    SessionCluster {'On' if cluster else 'Off'}")
        if cookie_name:
            self.add(f"    SessionClusterCookieName {cookie_name}")
        if maxage is not None:
            self.add(f"    SessionMaxAge {maxage}")
        if env:
            self.add("    SessionEnv On")
        if header:
            self.add(f"    SessionHeader {header}")
        if extra:
            for line in ([extra] if isinstance(extra, str) else extra):
                self.add(f"    {line}")
        self.add("</Location>")
        return self

    def add_script_alias(self, url_prefix):
        """An extra ScriptAlias to the shared cgi-bin (for per-location settings)."""
        self.add(f'ScriptAlias {url_prefix} "{self.env.cgi_dir}/"')
        return self

    def add_manager(self, path="/cluster-manager"):
        self.add([f"<Location {path}>", "    SetHandler cluster-manager", "</Location>"])
        return self

    def install(self):
        """Write base config + these lines to the env's httpd.conf."""
        return self.env.write_config(self)

    def __str__(self):
        return "\n".join(self._lines) + "\n"
