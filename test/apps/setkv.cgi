#!/bin/sh
# Sets session keys from the query string verbatim: /cgi/setkv.cgi?a=1&b=2
printf 'Content-Type: text/plain\r\n'
printf 'Cache-Control: no-store\r\n'
if [ -n "$QUERY_STRING" ]; then
    printf 'X-Replace-Session: %s\r\n' "$QUERY_STRING"
fi
printf '\r\n'
printf 'set=%s\n' "$QUERY_STRING"
