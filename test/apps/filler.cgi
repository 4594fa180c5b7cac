#!/bin/sh
# Creates/extends a session with ~4 KB of data (key `fill`), used to fill the store.
# Optional query: number of bytes (default 4000, max 7000).
n=4000
case "$QUERY_STRING" in
    ''|*[!0-9]*) ;;
    *) n=$QUERY_STRING ;;
esac
[ "$n" -gt 7000 ] && n=7000
v=$(head -c "$n" /dev/zero | tr '\0' 'f')
printf 'Content-Type: text/plain\r\n'
printf 'Cache-Control: no-store\r\n'
printf 'X-Replace-Session: fill=%s\r\n' "$v"
printf '\r\n'
printf 'filled=%s\n' "$n"
