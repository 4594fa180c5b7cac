"""idleak: session ids are credentials; no error log may ever hold one.

Every server the tests start logs the Cookie and Set-Cookie headers of each
request to its access log (the test configs do; the shipped configs do not).
The ids found there are the ids the run issued or was sent. After every test
the conftest asks `IdLeaks.check()` whether any of them appears in any
server's error log (the module logs at session_cluster:trace1 in the
tests, so every log line the module has is exercised). Logs are read
incrementally: a log that shrank (was reset) is read again from the start.
"""

import re
from pathlib import Path

# an id base: 24 characters of URL-safe base64 (sc_id.h, SC_ID_BASE_LEN)
_TOKEN = r"[A-Za-z0-9_-]{24}"
# in a Cookie / Set-Cookie header: name=<base>[.<route>]
_COOKIE_ID = re.compile(r"=(" + _TOKEN + r")(?![A-Za-z0-9_-])")
# anywhere in an error log line, as a whole word
_LOG_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])(" + _TOKEN + r")(?![A-Za-z0-9_-])")


class _Reader:
    """Reads the complete lines added to one file since the last call."""

    def __init__(self):
        self.offsets = {}

    def new_lines(self, path):
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError:
            return []
        at = self.offsets.get(path, 0)
        if size < at:
            at = 0
        with open(path, "rb") as f:
            f.seek(at)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offsets[path] = at + end
        return data[:end].decode("utf-8", "replace").splitlines()


class IdLeaks:
    """The ids seen in access logs against the tokens seen in error logs."""

    sources = []            # callables returning [(access_logs, error_logs)]

    def __init__(self):
        self.reader = _Reader()
        self.ids = set()
        self.logged = {}    # token -> "file: line" where an error log had it
        self.reported = set()

    @classmethod
    def add_source(cls, fn):
        cls.sources.append(fn)

    def _scan(self):
        for source in list(self.sources):
            for access_logs, error_logs in source():
                for log in access_logs:
                    for line in self.reader.new_lines(log):
                        # only the quoted Cookie / Set-Cookie fields
                        for field in re.findall(r'"([^"]*)"', line)[1:]:
                            self.ids.update(_COOKIE_ID.findall(field))
                for log in error_logs:
                    for line in self.reader.new_lines(log):
                        for tok in _LOG_TOKEN.findall(line):
                            self.logged.setdefault(tok, f"{log}: {line[:300]}")

    def check(self):
        """Lines of error logs holding an id that was issued or sent (each
        reported once)."""
        self._scan()
        leaks = []
        for tok in sorted(self.ids & set(self.logged)):
            if tok not in self.reported:
                self.reported.add(tok)
                leaks.append(self.logged[tok])
        return leaks


CHECK = IdLeaks()
