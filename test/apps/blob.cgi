#!/usr/bin/python3
"""Big sessions.

  /cgi/blob.cgi?set=K&size=N    sets key blobK to N (<= 6000) copies of a letter
                                derived from K (CGI header lines max 8 KB)
  /cgi/blob.cgi?check=C&size=N  verifies keys blob0..blob{C-1} are all present
                                with the expected content, prints ok=1 or ok=0
"""
import os
import sys
import urllib.parse


def value(k, size):
    return chr(ord("a") + (k % 26)) * size


def main():
    q = dict(urllib.parse.parse_qsl(os.environ.get("QUERY_STRING", "")))
    session = os.environ.get("HTTP_SESSION", "")
    entries = dict(urllib.parse.parse_qsl(session, keep_blank_values=True))
    size = min(int(q.get("size", "5000")), 6000)
    out = sys.stdout
    out.write("Content-Type: text/plain\r\nCache-Control: no-store\r\n")
    body = []
    if "set" in q:
        k = int(q["set"])
        out.write(f"X-Replace-Session: blob{k}={value(k, size)}\r\n")
        body.append(f"set=blob{k}")
    if "check" in q:
        n = int(q["check"])
        bad = [f"blob{k}" for k in range(n) if entries.get(f"blob{k}") != value(k, size)]
        body.append(f"ok={0 if bad else 1}")
        body.append(f"bad={','.join(bad)}")
    body.append(f"keys={len([k for k in entries if k.startswith('blob')])}")
    body.append(f"session_bytes={len(session)}")
    out.write("\r\n" + "\n".join(body) + "\n")


main()
