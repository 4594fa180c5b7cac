#!/bin/sh
# Session counter: reads `count` from HTTP_SESSION (SessionEnv On), writes
# count+1 back through the SessionHeader (X-Replace-Session).
count=$(printf '%s\n' "$HTTP_SESSION" | tr '&' '\n' | sed -n 's/^count=//p' | head -n 1)
case "$count" in
    ''|*[!0-9]*) count=0 ;;
esac
count=$((count + 1))
printf 'Content-Type: text/plain\r\n'
printf 'Cache-Control: no-store\r\n'
printf 'X-Replace-Session: count=%s\r\n' "$count"
printf '\r\n'
printf 'count=%s\n' "$count"
