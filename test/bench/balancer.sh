#!/usr/bin/env bash
# balancer.sh - requests per second through the demo balancer (3 nodes on
# loopback) for each ClusterSendMode, measured with wrk. Prints figures;
# passes or fails only on whether the cluster ran.
#
#   balancer.sh MODULE.so [seconds] [connections]
#
# Each request loads a session, increments its counter and saves it (so every
# request is one replicated change). The counter is a Lua handler rather than
# the CGI, whose fork per request would be all that is measured.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
module=${1:?usage: balancer.sh MODULE.so [seconds] [connections]}
seconds=${2:-10}
connections=${3:-16}
sessions=48
work=$(mktemp -d /tmp/sc-bench.XXXXXX)
chmod 755 "$work"
export SC_DEMO_DIR=$work/demo SC_DEMO_PORT=${SC_BENCH_PORT:-28080}
demo=$here/../../balancer_conf/demo.sh
url=http://127.0.0.1:$SC_DEMO_PORT/lcounter

command -v wrk >/dev/null || { echo "balancer.sh: wrk is needed (apt-get install wrk)" >&2; exit 1; }
cleanup() { "$demo" stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

install -m 644 "$here/counter.lua" "$work/counter.lua"
sed -e "s|@MODDIR@|$(apxs -q LIBEXECDIR)|" -e "s|@COUNTER@|$work/counter.lua|" \
    "$here/lcounter.conf.in" >"$work/lcounter.conf"
export SC_DEMO_NODE_CONF=$work/lcounter.conf

printf '%-6s %10s %10s %10s %8s  %s\n' mode req/s p50 p99 errors "sessions: sum of counts"
for mode in async ack sync; do
    SC_DEMO_SEND_MODE=$mode "$demo" "$module" >"$work/demo-$mode.log" 2>&1 \
        || { cat "$work/demo-$mode.log" >&2; exit 1; }
    : >"$work/cookies"
    for ((i = 0; i < sessions; i++)); do
        cookie=$(curl -fsS -m 5 -o /dev/null -D - "$url" \
                 | sed -n 's/^[Ss]et-[Cc]ookie: JSESSIONID=\([^;]*\).*/\1/p' | tr -d '\r')
        [ -n "$cookie" ] || { echo "balancer.sh: no session cookie from $url" >&2; exit 1; }
        echo "$cookie" >>"$work/cookies"
    done
    SC_BENCH_COOKIES=$work/cookies wrk -t 2 -c "$connections" -d "${seconds}s" \
        --latency -s "$here/sessions.lua" "$url" >"$work/wrk-$mode.txt"
    rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk-$mode.txt")
    p50=$(awk '$1 == "50%" {print $2}' "$work/wrk-$mode.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$work/wrk-$mode.txt")
    errors=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {n += 1} END {print n + 0}' "$work/wrk-$mode.txt")
    # read every session back through the balancer: the counts add up to the
    # requests that incremented them (less lost races of concurrent requests
    # on one session, which mod_session does not serialise)
    total=0
    while read -r cookie; do
        n=$(curl -fsS -m 5 -H "Cookie: JSESSIONID=$cookie" "$url" | sed -n 's/^count=//p')
        total=$((total + n - 1))
    done <"$work/cookies"
    requests=$(awk '/requests in/ {print $1}' "$work/wrk-$mode.txt")
    printf '%-6s %10s %10s %10s %8s  %s of %s requests\n' "$mode" "$rps" "$p50" "$p99" \
        "$errors" "$((total - sessions))" "$requests"
    if [ "$mode" = sync ]; then
        # the same handler without a session, for what the balancer and the
        # proxying alone cost on this machine
        wrk -t 2 -c "$connections" -d "${seconds}s" --latency "${url%counter}plain" \
            >"$work/wrk-plain.txt"
        printf '%-6s %10s %10s %10s\n' "none" \
            "$(awk '/^Requests\/sec/ {print $2}' "$work/wrk-plain.txt")" \
            "$(awk '$1 == "50%" {print $2}' "$work/wrk-plain.txt")" \
            "$(awk '$1 == "99%" {print $2}' "$work/wrk-plain.txt")"
    fi
    "$demo" stop >/dev/null
done
