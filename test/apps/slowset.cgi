#!/bin/sh
# A request still running while its session changes: /cgi/slowset.cgi?<token>
# writes <server root>/slow/<token>.started (the test makes that directory
# writable), waits (at most 20 s) until the test creates <token>.go there,
# then sets late=<token> in the session.
token=$(printf '%s' "$QUERY_STRING" | tr -cd 'a-z0-9')
[ -n "$token" ] || token=none
dir=$(dirname "$SCRIPT_FILENAME")/../slow
: > "$dir/$token.started" || exit 1
i=0
while [ ! -e "$dir/$token.go" ] && [ $i -lt 200 ]; do
    sleep 0.1
    i=$((i + 1))
done
printf 'Content-Type: text/plain\r\n'
printf 'Cache-Control: no-store\r\n'
printf 'X-Replace-Session: late=%s\r\n' "$token"
printf '\r\n'
printf 'late=%s\n' "$token"
