"""HttpdEnv: one Apache httpd instance with its own server root and ports."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .ports import free_port

APACHE2 = os.environ.get("SC_APACHE2", "/usr/sbin/apache2")
MODULES_DIR = os.environ.get("SC_MODULES_DIR", "/usr/lib/apache2/modules")

# error log lines that mean a process crashed
CRASH_PATTERNS = [
    re.compile(r"exit signal Segmentation fault"),
    re.compile(r"exit signal Abort"),
    re.compile(r"exit signal Bus error"),
    re.compile(r"AddressSanitizer"),
    re.compile(r"LeakSanitizer"),
    re.compile(r"runtime error:"),          # UBSan
    re.compile(r"child pid \d+ exit signal"),
]


def repo_root() -> Path:
    """The repository root, computed from this file (test/pyhttpd/env.py)."""
    return Path(__file__).resolve().parents[2]


def find_module() -> Path:
    """Path of mod_session_cluster.so: $SC_MODULE, else the libtool build output."""
    env = os.environ.get("SC_MODULE")
    if env:
        return Path(env).resolve()
    return repo_root() / "mod_session_cluster" / ".libs" / "mod_session_cluster.so"


class ExecResult:
    def __init__(self, args, rc, stdout, stderr, duration):
        self.args = args
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.duration = duration

    @property
    def output(self):
        return (self.stdout or "") + (self.stderr or "")

    def __repr__(self):
        return (f"ExecResult(rc={self.rc}, args={self.args!r}, "
                f"stdout={self.stdout!r}, stderr={self.stderr!r})")


def process_states(field: str, value: int):
    """[(pid, state)] of the live processes whose /proc/<pid>/stat `field`
    ("ppid" or "pgrp") is `value` (zombies left out)."""
    index = {"ppid": 1, "pgrp": 2}[field]
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[index]) == value and fields[0] not in ("Z", "X"):
                out.append((int(entry), fields[0]))
        except (OSError, ValueError, IndexError):
            continue
    return out


def processes_where(field: str, value: int):
    """Pids of the live processes whose /proc/<pid>/stat `field` ("ppid" or
    "pgrp") is `value`: a server's children, or its whole process group."""
    return [pid for pid, _ in process_states(field, value)]


def group_members(pgid):
    """Pids in process group pgid, zombies included (_pid_alive() tells which
    of them still count)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[2]) == pgid:
                        pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return pids


def _pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie (PID 1 here may not reap).

    A multi-threaded process killed with SIGKILL shows its leader as a zombie
    while other threads are still exiting and still hold the shared fd table
    (listening sockets included): it counts as alive until they are gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        state = stat[stat.rindex(")") + 2:].split()[0]
        if state not in ("Z", "X"):
            return True
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except (OSError, ValueError, IndexError):
        return False


class HttpdEnv:
    """A server root with its ports, config, start/stop/graceful and log access.

    All instances are registered so the test session can check their error
    logs for crashes and stop them at the end.
    """

    registry = []
    _base_dir = None

    def __init__(self, name: str, mpm: str = "event", module=None,
                 route: str = "node1", load_cluster_module: bool = True,
                 host: str = "127.0.0.1", netns=None):
        """host: the address it listens on; netns: a NetBed Host to run it
        in (its own network namespace), or None for this one."""
        if mpm not in ("event", "prefork"):
            raise ValueError(f"unsupported mpm {mpm}")
        self.name = name
        self.mpm = mpm
        self.route = route
        self.module = Path(module) if module else find_module()
        self.load_cluster_module = load_cluster_module
        self.root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.base_dir()))
        self.http_port = free_port()
        self.cluster_port = free_port()
        self.host = host
        self.netns = netns
        self.conf_path = self.root / "conf" / "httpd.conf"
        self.pid_file = self.root / "run" / "httpd.pid"
        self.error_log = self.root / "logs" / "error_log"
        self.access_log = self.root / "logs" / "access_log"
        self.cgi_dir = self.root / "cgi-bin"
        self.htdocs = self.root / "htdocs"
        self.crash_checked = 0       # error log offset checked for crashes so far
        self._started = False
        self._setup_root()
        HttpdEnv.registry.append(self)

    # ---------------------------------------------------------------- layout
    @classmethod
    def base_dir(cls) -> Path:
        if cls._base_dir is None:
            base = os.environ.get("SC_TEST_DIR")
            if base:
                Path(base).mkdir(parents=True, exist_ok=True)
                cls._base_dir = Path(tempfile.mkdtemp(prefix="sc-test-", dir=base))
            else:
                cls._base_dir = Path(tempfile.mkdtemp(prefix="sc-test-"))
            # children run as www-data: the whole path must be traversable
            p = cls._base_dir
            for _ in range(10):
                if p == p.parent:
                    break
                try:
                    mode = p.stat().st_mode
                    if not mode & 0o001:
                        os.chmod(p, mode | 0o055)
                except PermissionError:
                    pass
                p = p.parent
        return cls._base_dir

    @classmethod
    def cleanup_base_dir(cls):
        if cls._base_dir is not None and not os.environ.get("SC_KEEP"):
            shutil.rmtree(cls._base_dir, ignore_errors=True)

    def _setup_root(self):
        for d in ("conf", "logs", "run", "htdocs", "cgi-bin", "data"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        for d in ("conf", "htdocs", "cgi-bin", "data"):
            os.chmod(self.root / d, 0o755)
        # run/ holds the cgid socket and mutexes; children must reach them
        os.chmod(self.root / "run", 0o755)
        (self.htdocs / "index.html").write_text("<html><body>ok</body></html>\n")
        os.chmod(self.htdocs / "index.html", 0o644)
        self.install_apps()

    def install_apps(self):
        """Copy test/apps/* into the server's cgi-bin, readable by www-data."""
        apps = Path(__file__).resolve().parents[1] / "apps"
        for src in sorted(apps.iterdir()):
            if src.is_file() and not src.name.startswith("."):
                dst = self.cgi_dir / src.name
                shutil.copyfile(src, dst)
                os.chmod(dst, 0o755)

    # ---------------------------------------------------------------- urls
    @property
    def http_addr(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def cluster_addr(self) -> str:
        return f"{self.host}:{self.cluster_port}"

    def url(self, path: str) -> str:
        if not path.startswith("/"):
            path = "/" + path
        return f"http://{self.host}:{self.http_port}{path}"

    # ---------------------------------------------------------------- config
    def base_config(self) -> str:
        """The part of httpd.conf every test server shares."""
        mods = [
            ("mpm_event_module" if self.mpm == "event" else "mpm_prefork_module",
             "mod_mpm_event.so" if self.mpm == "event" else "mod_mpm_prefork.so"),
            ("authz_core_module", "mod_authz_core.so"),
            ("mime_module", "mod_mime.so"),
            ("alias_module", "mod_alias.so"),
            ("cgid_module", "mod_cgid.so") if self.mpm == "event"
            else ("cgi_module", "mod_cgi.so"),
            ("session_module", "mod_session.so"),
            ("headers_module", "mod_headers.so"),
            ("setenvif_module", "mod_setenvif.so"),
            ("env_module", "mod_env.so"),
            ("dir_module", "mod_dir.so"),
            ("log_config_module", "mod_log_config.so"),
            ("unixd_module", "mod_unixd.so"),
        ]
        lines = [
            f"# generated by test/pyhttpd for {self.name}",
            f'ServerRoot "{self.root}"',
            f'DefaultRuntimeDir "{self.root}/run"',
            f'PidFile "{self.pid_file}"',
        ]
        for name, so in mods:
            # some (log_config, unixd) are compiled into Debian's apache2
            lines += [f"<IfModule !{name}>",
                      f"    LoadModule {name} {MODULES_DIR}/{so}",
                      "</IfModule>"]
        if self.load_cluster_module:
            lines.append(f'LoadModule session_cluster_module "{self.module}"')
        if os.geteuid() == 0:
            lines += ["User www-data", "Group www-data"]
        lines += [
            f"ServerName {self.host}",
            f"Listen {self.host}:{self.http_port}",
            f'ErrorLog "{self.error_log}"',
            "LogLevel warn session_cluster:trace1" if self.load_cluster_module
            else "LogLevel warn",
            'LogFormat "%h %t \\"%r\\" %>s %b \\"%{Cookie}i\\" \\"%{Set-Cookie}o\\" %D" sc',
            f'CustomLog "{self.access_log}" sc',
            "TypesConfig /etc/mime.types",
            "Timeout 30",
            "KeepAlive On",
            "MaxKeepAliveRequests 100",
            "KeepAliveTimeout 2",
            "GracefulShutdownTimeout 5",
        ]
        if self.mpm == "event":
            lines += [
                f'ScriptSock "{self.root}/run/cgisock"',
                "StartServers 2",
                "ServerLimit 4",
                "ThreadsPerChild 16",
                "MaxRequestWorkers 64",
                "MinSpareThreads 16",
                "MaxSpareThreads 64",
            ]
        else:
            lines += [
                "StartServers 4",
                "MinSpareServers 2",
                "MaxSpareServers 8",
                "ServerLimit 16",
                "MaxRequestWorkers 16",
            ]
        lines += [
            f'DocumentRoot "{self.htdocs}"',
            "DirectoryIndex index.html",
            "<Directory />",
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
            f'<Directory "{self.htdocs}">',
            "    Require all granted",
            "</Directory>",
            f'ScriptAlias /cgi/ "{self.cgi_dir}/"',
            f'<Directory "{self.cgi_dir}">',
            "    Options +ExecCGI",
            "    Require all granted",
            "</Directory>",
        ]
        return "\n".join(lines) + "\n"

    def write_config(self, conf) -> Path:
        """Write base config + the given HttpdConf/str snippet to httpd.conf."""
        text = self.base_config() + "\n" + str(conf)
        self.conf_path.write_text(text)
        return self.conf_path

    def config_text(self) -> str:
        return self.conf_path.read_text() if self.conf_path.exists() else ""

    # ---------------------------------------------------------------- control
    def run(self, args, timeout=30) -> ExecResult:
        start = time.monotonic()
        try:
            p = subprocess.run(args, capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc = -1
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = (e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or ""))
            err += f"\n[harness] timeout after {timeout}s"
        return ExecResult(args, rc, out, err, time.monotonic() - start)

    def apachectl(self, *args, timeout=30) -> ExecResult:
        inside = self.netns.prefix() if self.netns else []
        return self.run([*inside, APACHE2, "-d", str(self.root), "-f",
                         str(self.conf_path), *args], timeout=timeout)

    def configtest(self) -> ExecResult:
        return self.apachectl("-t")

    def pid(self):
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self.pid()
        return pid is not None and _pid_alive(pid)

    def _wait(self, predicate, timeout, interval=0.05):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return predicate()

    def _answers(self) -> bool:
        """True if the server answers an HTTP request on its port."""
        try:
            with socket.create_connection((self.host, self.http_port), timeout=2) as s:
                s.sendall(b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Connection: close\r\n\r\n")
                s.settimeout(2)
                return s.recv(12).startswith(b"HTTP/1.")
        except OSError:
            return False

    def start(self, check=True, timeout=15) -> ExecResult:
        """`apache2 -k start`, then wait until the pid file and port are live."""
        if self.is_running():
            raise RuntimeError(f"{self.name}: already running")
        # a killed server leaves its pid file; apache2 would take a zombie
        # (PID 1 here may not reap) with that pid for a live server
        if self.pid_file.exists():
            self.pid_file.unlink()
        self.log_mark_start = self.error_log_size()
        r = self.apachectl("-k", "start")
        if r.rc == 0:
            self._started = True
            ok = self._wait(lambda: self.is_running() and self._answers(), timeout)
            if not ok:
                r.rc = -2
                r.stderr += (f"\n[harness] server did not come up within {timeout}s; "
                             f"error log tail:\n{self.error_log_tail()}")
        if check and r.rc != 0:
            raise RuntimeError(f"{self.name}: start failed: {r}\n"
                               f"error log:\n{self.error_log_tail()}")
        return r

    def stop(self, timeout=15) -> ExecResult:
        """`apache2 -k stop`, then wait (bounded) for the parent pid to vanish."""
        pid = self.pid()
        r = self.apachectl("-k", "stop")
        if pid is not None:
            if not self._wait(lambda: not _pid_alive(pid), timeout, 0.1):
                # last resort: kill the process group this server leads, by pid
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self._wait(lambda: not _pid_alive(pid), 5, 0.1)
                r.stderr += f"\n[harness] had to SIGKILL pid {pid}"
        self._started = False
        return r

    def generation_count(self) -> int:
        """How many times the parent finished (re)configuring (AH00489/AH00494-ish)."""
        return self.error_log_text().count("resuming normal operations")

    def graceful(self, timeout=20) -> ExecResult:
        """`apache2 -k graceful`, wait until a new generation answers."""
        before = self.generation_count()
        pid = self.pid()
        r = self.apachectl("-k", "graceful")
        if r.rc != 0:
            raise RuntimeError(f"{self.name}: graceful failed: {r}")
        ok = self._wait(lambda: self.generation_count() > before and self._answers(),
                        timeout, 0.1)
        if not ok:
            raise RuntimeError(f"{self.name}: no new generation within {timeout}s; "
                               f"error log tail:\n{self.error_log_tail()}")
        if self.pid() != pid:
            raise RuntimeError(f"{self.name}: parent pid changed over graceful "
                               f"({pid} -> {self.pid()})")
        return r

    # ---------------------------------------------------------------- logs
    def error_log_size(self) -> int:
        try:
            return self.error_log.stat().st_size
        except OSError:
            return 0

    def error_log_text(self, offset: int = 0) -> str:
        try:
            with open(self.error_log, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def error_log_tail(self, n: int = 40) -> str:
        return "\n".join(self.error_log_text().splitlines()[-n:])

    def crash_lines(self, offset: int = 0):
        found = []
        for line in self.error_log_text(offset).splitlines():
            if any(p.search(line) for p in CRASH_PATTERNS):
                found.append(line)
        return found

    def check_crashes(self):
        """Crash lines logged since the last check (advances the mark)."""
        if self.error_log_size() < self.crash_checked:     # log was reset
            self.crash_checked = 0
        try:
            with open(self.error_log, "rb") as f:
                f.seek(self.crash_checked)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1          # only complete lines
        data = data[:end]
        self.crash_checked += end
        return [line for line in data.decode("utf-8", "replace").splitlines()
                if any(p.search(line) for p in CRASH_PATTERNS)]

    def __repr__(self):
        return f"HttpdEnv({self.name}, mpm={self.mpm}, port={self.http_port}, root={self.root})"
