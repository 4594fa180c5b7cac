"""A small curl-like HTTP client with its own cookie jar (one per simulated browser)."""

import email.utils
import time

import requests


def parse_set_cookie(header: str):
    """Parse one Set-Cookie header: (name, value, attrs) with attrs lower-cased keys.

    Flag attributes (HttpOnly, Secure) map to True.
    """
    parts = [p.strip() for p in header.split(";")]
    name, _, value = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        if not p:
            continue
        k, sep, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip() if sep else True
    return name.strip(), value.strip(), attrs


def cookie_is_removal(attrs, value) -> bool:
    """True if the Set-Cookie deletes the cookie (Max-Age<=0 or Expires in the past)."""
    if "max-age" in attrs:
        try:
            if int(attrs["max-age"]) <= 0:
                return True
        except (TypeError, ValueError):
            pass
    if "expires" in attrs and isinstance(attrs["expires"], str):
        try:
            t = email.utils.parsedate_to_datetime(attrs["expires"].replace("-", " "))
            if t.timestamp() < time.time():
                return True
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return False


class Response:
    def __init__(self, r: requests.Response):
        self.status = r.status_code
        self.headers = r.headers
        self.text = r.text
        self.set_cookies = list(r.raw.headers.getlist("Set-Cookie")) if r.raw else []
        self.elapsed = r.elapsed.total_seconds()

    def cookies_named(self, name):
        """Parsed (name, value, attrs) of every Set-Cookie for `name`."""
        out = []
        for h in self.set_cookies:
            c = parse_set_cookie(h)
            if c[0] == name:
                out.append(c)
        return out

    def cookie(self, name):
        """The Set-Cookie for `name` (None if absent).

        Repeats are tolerated only if they agree on the value.
        """
        found = self.cookies_named(name)
        values = {c[1] for c in found}
        assert len(values) <= 1, \
            f"conflicting Set-Cookie headers for {name}: {self.set_cookies}"
        return found[-1] if found else None

    def kv(self):
        """Body of `k=v` lines as dict."""
        out = {}
        for line in self.text.splitlines():
            k, sep, v = line.partition("=")
            if sep:
                out[k.strip()] = v.strip()
        return out

    def __repr__(self):
        return (f"Response(status={self.status}, set_cookies={self.set_cookies}, "
                f"body={self.text[:300]!r})")


class Client:
    """One simulated browser: a cookie jar (name -> value) and plain GETs.

    Every request uses a fresh connection (Connection: close), so keep-alive
    connections never pin a client to an old server generation.
    """

    def __init__(self, env, name="client"):
        self.env = env
        self.name = name
        self.jar = {}
        self.last = None

    def cookie_header(self):
        return "; ".join(f"{k}={v}" for k, v in self.jar.items())

    def get(self, path, headers=None, cookies=None, timeout=20, update_jar=True):
        """GET path. cookies: explicit Cookie header string, overriding the jar."""
        h = {"Connection": "close", "User-Agent": f"sc-test/{self.name}"}
        cookie = cookies if cookies is not None else self.cookie_header()
        if cookie:
            h["Cookie"] = cookie
        if headers:
            h.update(headers)
        r = requests.get(self.env.url(path), headers=h, timeout=timeout,
                         allow_redirects=False)
        resp = Response(r)
        if update_jar:
            for sc in resp.set_cookies:
                name, value, attrs = parse_set_cookie(sc)
                if cookie_is_removal(attrs, value):
                    self.jar.pop(name, None)
                else:
                    self.jar[name] = value
        self.last = resp
        return resp
