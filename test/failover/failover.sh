#!/usr/bin/env bash
# failover.sh - check session failover through a load balancer, with curl.
#
# usage: failover.sh BALANCER_URL KILL_CMD_TEMPLATE [RESTART_CMD_TEMPLATE]
#
#   BALANCER_URL          e.g. http://127.0.0.1:18080 (the counter app is at
#                         BALANCER_URL$COUNTER_PATH)
#   KILL_CMD_TEMPLATE     shell command that kills one node; %ROUTE% is replaced
#                         by the route of the node that owns the test session
#                         (the part of the cookie after the first '.'), e.g.
#                         'kill -9 -- -$(cat /tmp/sc-demo/%ROUTE%/run/httpd.pid)'
#                         'ssh %ROUTE%.example.net sudo systemctl kill -s KILL apache2'
#   RESTART_CMD_TEMPLATE  optional: shell command that starts that node again, e.g.
#                         'rm -f /tmp/sc-demo/%ROUTE%/run/httpd.pid; apache2 -d /tmp/sc-demo/%ROUTE% -f /tmp/sc-demo/%ROUTE%/httpd.conf -k start'
#
# The templates run with `bash -c` after %ROUTE% is replaced, so $(...) in
# them is evaluated at that moment (quote them in single quotes).
#
# Environment (all optional):
#   READY_URLS          "route=URL ..." readiness URL of each node, e.g.
#                       "node1=http://10.0.0.11/cluster-manager?ready node2=..."
#   READY_URL_TEMPLATE  readiness URL with %ROUTE%, used for routes missing in
#                       READY_URLS, e.g. "http://%ROUTE%.internal/cluster-manager?ready"
#   COUNTER_PATH        path of an app that answers "count=N" and increments N in
#                       the session on every request (default /counter)
#   COOKIE_NAME         session cookie (default JSESSIONID); value <id>.<route>
#   INCREMENTS          requests after the first, before the kill (default 5)
#   FAILOVER_TRIES      at most this many requests after the kill (default 60) ...
#   FAILOVER_SECONDS    ... spread over at most this many seconds (default 30)
#   READY_SECONDS       how long the restarted node may take to be ready (default 60)
#   PINNED_TRIES        requests pinned to the restarted node (default 20, 0.5 s apart)
#   PROBE_DURING_RESTART=1  while the restarted node is not ready yet, also send
#                       the session through the balancer with that node's route
#                       and fail if it comes back as a new session
#   KILL_RESTARTS=1     the kill command also starts the node again (what a
#                       supervisor does): the session may then come back to that
#                       node once it holds the state, under its old route
#   CURL_TIMEOUT        seconds per request (default 5)
#   CURL_OPTS           extra curl options, word-split (e.g. "-k --noproxy *")
#
# Output: one line per step (step, route, session id, count, ms, note), then
# exactly "PASS" or "FAIL: <reason>" as the last line; exit status 0 or 1.
set -u

usage() {
    sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}
{ [ $# -ge 2 ] && [ $# -le 3 ]; } || usage
case "$1" in -h|--help) usage ;; esac

BALANCER=${1%/}
KILL_TMPL=$2
RESTART_TMPL=${3:-}
COUNTER_PATH=${COUNTER_PATH:-/counter}
COOKIE_NAME=${COOKIE_NAME:-JSESSIONID}
INCREMENTS=${INCREMENTS:-5}
FAILOVER_TRIES=${FAILOVER_TRIES:-60}
FAILOVER_SECONDS=${FAILOVER_SECONDS:-30}
READY_SECONDS=${READY_SECONDS:-60}
PINNED_TRIES=${PINNED_TRIES:-20}
CURL_TIMEOUT=${CURL_TIMEOUT:-5}
READY_URLS=${READY_URLS:-}
READY_URL_TEMPLATE=${READY_URL_TEMPLATE:-}
# shellcheck disable=SC2206
CURL_EXTRA=(${CURL_OPTS:-})

for v in INCREMENTS FAILOVER_TRIES FAILOVER_SECONDS READY_SECONDS PINNED_TRIES CURL_TIMEOUT; do
    case "${!v}" in ''|*[!0-9]*) echo "FAIL: $v must be a number, not '${!v}'"; exit 1 ;; esac
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/failover.XXXXXX") || { echo "FAIL: mktemp"; exit 1; }
trap 'rm -rf "$TMP"' EXIT

now_ms() { date +%s%3N; }

# step NAME ROUTE SESSION COUNT MS [NOTE...]
step() {
    local name=$1 route=$2 sid=$3 count=$4 ms=$5
    shift 5
    printf '%-9s route=%-8s session=%-26s count=%-4s ms=%-6s %s\n' \
        "$name" "${route:--}" "${sid:--}" "${count:--}" "${ms:--}" "$*"
}

fail() { echo "FAIL: $*"; exit 1; }

# request [COOKIE_VALUE]: GET the counter through the balancer. Sets
#   CODE (HTTP status, 000 if no answer), COUNT (N of "count=N" or empty),
#   SETCOOKIE (value of a Set-Cookie for COOKIE_NAME, or empty), MS (duration).
request() {
    local t0 hdrs=()
    [ -n "${1:-}" ] && hdrs=(-H "Cookie: $COOKIE_NAME=$1")
    t0=$(now_ms)
    CODE=$(curl -s -m "$CURL_TIMEOUT" "${CURL_EXTRA[@]}" "${hdrs[@]}" \
               -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}' \
               "$BALANCER$COUNTER_PATH" 2>/dev/null) || true
    MS=$(( $(now_ms) - t0 ))
    [ -n "$CODE" ] || CODE=000
    COUNT=$(sed -n 's/^count=\([0-9][0-9]*\).*/\1/p' "$TMP/body" 2>/dev/null | head -n 1)
    SETCOOKIE=$(tr -d '\r' <"$TMP/headers" 2>/dev/null \
        | sed -n "s/^[Ss][Ee][Tt]-[Cc][Oo][Oo][Kk][Ii][Ee]: *$COOKIE_NAME=\([^;]*\).*/\1/p" \
        | tail -n 1)
    rm -f "$TMP/body" "$TMP/headers"
}

base_of() { printf '%s' "${1%%.*}"; }
route_of() { case "$1" in *.*) printf '%s' "${1#*.}" ;; esac; }
valid_route() { [[ $1 =~ ^[A-Za-z0-9_-]{1,31}$ ]]; }

ready_url_for() {            # route -> readiness URL (empty if none configured)
    local r=$1 kv
    for kv in $READY_URLS; do
        [ "${kv%%=*}" = "$r" ] && { printf '%s' "${kv#*=}"; return; }
    done
    [ -n "$READY_URL_TEMPLATE" ] && printf '%s' "${READY_URL_TEMPLATE//%ROUTE%/$r}"
}

run_template() {             # TEMPLATE ROUTE -> runs it, output to $TMP/cmd.out
    local cmd=${1//%ROUTE%/$2}
    printf '%s\n' "$cmd" >"$TMP/cmd"
    timeout 60 bash -c "$cmd" >"$TMP/cmd.out" 2>&1
}

# command_step STEP TEMPLATE T0: run TEMPLATE for the owner's route and print
# the step with the milliseconds since T0; a failing command fails the check
command_step() {
    if ! run_template "$2" "$owner"; then
        step "$1" "$owner" "$sid" "$count" $(( $(now_ms) - $3 )) "command failed: $(cat "$TMP/cmd")"
        sed -n '1,10p' "$TMP/cmd.out"
        fail "the $1 command failed"
    fi
    step "$1" "$owner" "$sid" "$count" $(( $(now_ms) - $3 )) "$(cat "$TMP/cmd")"
}

# ---------------------------------------------------------------- 1. create
request
[ "$CODE" = 200 ] || fail "create: $BALANCER$COUNTER_PATH answered HTTP $CODE"
[ -n "$COUNT" ] || fail "create: the answer has no count=N line (is $COUNTER_PATH the counter app?)"
[ -n "$SETCOOKIE" ] || fail "create: no Set-Cookie for $COOKIE_NAME"
cookie=$SETCOOKIE
sid=$(base_of "$cookie")
owner=$(route_of "$cookie")
[ -n "$owner" ] || fail "create: cookie $COOKIE_NAME=$cookie carries no route (<id>.<route>)"
valid_route "$owner" || fail "create: route '$owner' of the cookie is not a valid route"
[ "$COUNT" = 1 ] || fail "create: a new session answered count=$COUNT, not 1"
step create "$owner" "$sid" "$COUNT" "$MS" "new session"
count=$COUNT

# ---------------------------------------------------------------- 2. increment
for ((i = 1; i <= INCREMENTS; i++)); do
    request "$cookie"
    { [ "$CODE" = 200 ] && [ -n "$COUNT" ]; } || fail "increment $i: HTTP $CODE"
    [ "$COUNT" = $((count + 1)) ] || fail "increment $i: count=$COUNT after $count"
    if [ -n "$SETCOOKIE" ] && [ "$SETCOOKIE" != "$cookie" ]; then
        fail "increment $i: cookie changed to $SETCOOKIE without a failure (sticky session broken?)"
    fi
    count=$COUNT
    step increment "$owner" "$sid" "$count" "$MS"
done

# ---------------------------------------------------------------- 3. kill
step owner "$owner" "$sid" "$count" - "the session lives on $owner: killing it"
t_kill=$(now_ms)
command_step kill "$KILL_TMPL" "$t_kill"

# ---------------------------------------------------------------- 4. failover
interval_ms=$(( FAILOVER_SECONDS * 1000 / (FAILOVER_TRIES > 0 ? FAILOVER_TRIES : 1) ))
good=0
tries=0
for ((i = 1; i <= FAILOVER_TRIES; i++)); do
    tries=$i
    request "$cookie"
    if [ "$CODE" = 200 ] && [ -n "$COUNT" ]; then
        good=1
        break
    fi
    step retry "$owner" "$sid" "${COUNT:--}" "$MS" "try $i: HTTP $CODE"
    [ $(( $(now_ms) - t_kill )) -ge $(( FAILOVER_SECONDS * 1000 )) ] && break
    sleep "$(printf '%d.%03d' $((interval_ms / 1000)) $((interval_ms % 1000)))"
done
recovery_ms=$(( $(now_ms) - t_kill ))
[ $good = 1 ] || fail "no good response within $tries tries / ${FAILOVER_SECONDS}s after the kill"
new_route=$owner
[ -n "$SETCOOKIE" ] && new_route=$(route_of "$SETCOOKIE")
if [ "$COUNT" != $((count + 1)) ]; then
    step failover "$new_route" "$(base_of "${SETCOOKIE:-$sid}")" "$COUNT" "$recovery_ms" "count was $count"
    [ "$COUNT" = 1 ] && fail "the count restarted at 1 after the failover: the session was lost"
    fail "the count went from $count to $COUNT over the failover (expected $((count + 1)))"
fi
count=$COUNT
if [ -z "$SETCOOKIE" ] && [ "${KILL_RESTARTS:-}" = 1 ]; then
    step failover "$owner" "$sid" "$count" "$recovery_ms" \
        "kill to first good response: $recovery_ms ms, $tries tries; served by $owner again (restarted, with the state)"
    echo "recovery_ms=$recovery_ms"
    echo PASS
    exit 0
fi
if [ -z "$SETCOOKIE" ]; then
    step failover "$owner" "$sid" "$count" "$recovery_ms" "no new cookie"
    fail "the cookie was not re-issued: route still $owner (did the killed node really stop serving?)"
fi
if [ "$(base_of "$SETCOOKIE")" != "$sid" ]; then
    step failover "$new_route" "$(base_of "$SETCOOKIE")" "$count" "$recovery_ms" "new id"
    fail "the session id changed over the failover ($sid -> $(base_of "$SETCOOKIE"))"
fi
valid_route "$new_route" || fail "failover: re-issued cookie $SETCOOKIE has no valid route"
if [ "$new_route" = "$owner" ]; then
    step failover "$new_route" "$sid" "$count" "$recovery_ms" "same route"
    fail "the cookie's route did not change (still $owner)"
fi
cookie=$SETCOOKIE
step failover "$new_route" "$sid" "$count" "$recovery_ms" \
    "kill to first good response: $recovery_ms ms, $tries tries; route $owner -> $new_route"
echo "recovery_ms=$recovery_ms"

# the next request stays on the new node (sticky on the re-issued route)
request "$cookie"
{ [ "$CODE" = 200 ] && [ -n "$COUNT" ]; } || fail "after failover: HTTP $CODE"
[ "$COUNT" = $((count + 1)) ] || fail "after failover: count=$COUNT after $count"
count=$COUNT
if [ -n "$SETCOOKIE" ] && [ "$SETCOOKIE" != "$cookie" ]; then
    fail "after failover: the session moved again ($cookie -> $SETCOOKIE)"
fi
step sticky "$new_route" "$sid" "$count" "$MS" "stays on $new_route"

if [ -z "$RESTART_TMPL" ]; then
    echo PASS
    exit 0
fi

# ---------------------------------------------------------------- 5. restart
t_restart=$(now_ms)
command_step restart "$RESTART_TMPL" "$t_restart"

# PROBE_DURING_RESTART=1: while the restarted node is not ready, keep sending
# the session through the balancer with that node's route. Whoever serves it
# must continue the count; a new session (count=1) means the balancer sent it
# to the node before it had the state, and the node served it anyway.
PROBE=${PROBE_DURING_RESTART:-}
[ "$PROBE" = 0 ] && PROBE=
probes=0
probe() {
    local by
    request "$sid.$owner"
    probes=$((probes + 1))
    { [ "$CODE" = 200 ] && [ -n "$COUNT" ]; } || return 0
    by=$owner
    [ -n "$SETCOOKIE" ] && by=$(route_of "$SETCOOKIE")
    if [ "$COUNT" != $((count + 1)) ]; then
        step probe "$by" "$(base_of "${SETCOOKIE:-$sid}")" "$COUNT" "$MS" \
            "while $owner was not ready (ready: HTTP $1)"
        [ "$COUNT" = 1 ] && fail "session lost while $owner was rejoining: the balancer sent it to $by, which answered a new session (count=1${SETCOOKIE:+, cookie $SETCOOKIE}) while its ready URL answered $1"
        fail "while $owner was rejoining the count went from $count to $COUNT"
    fi
    count=$COUNT
}

ready_url=$(ready_url_for "$owner")
if [ -n "$ready_url" ]; then
    seen=
    last=
    runs=0
    ready=0
    for ((i = 0; i < READY_SECONDS * 20; i++)); do
        code=$(curl -s -m 2 "${CURL_EXTRA[@]}" -o /dev/null -w '%{http_code}' \
                    "$ready_url" 2>/dev/null) || true
        [ -n "$code" ] || code=000
        if [ "$code" != "$last" ]; then
            [ -n "$last" ] && seen+="$last x$runs, "
            last=$code
            runs=0
        fi
        runs=$((runs + 1))
        [ "$code" = 200 ] && { ready=1; break; }
        [ -n "$PROBE" ] && probe "$code"
        case "$code" in
            000|503) ;;
            *) fail "ready: $ready_url answered HTTP $code (expected 503 while receiving state, then 200)" ;;
        esac
        [ $(( $(now_ms) - t_restart )) -ge $(( READY_SECONDS * 1000 )) ] && break
        sleep 0.05
    done
    seen+="$last x$runs"
    ready_ms=$(( $(now_ms) - t_restart ))
    [ $ready = 1 ] || fail "ready: $owner not ready within ${READY_SECONDS}s ($seen)"
    case "$seen" in
        *503*) note="answered 503 before 200" ;;
        "200 x1") note="already ready at its first answer" ;;
        *) note="no 503 seen (not answering, then ready)" ;;
    esac
    [ -n "$PROBE" ] && note+="; $probes session requests meanwhile, none lost"
    step ready "$owner" "$sid" "$count" "$ready_ms" \
        "restart to ready: $ready_ms ms; $note; polled $ready_url: $seen"
    echo "ready_ms=$ready_ms"
else
    step ready "$owner" "$sid" "$count" - \
        "no READY_URLS / READY_URL_TEMPLATE for $owner: readiness not checked"
fi

# ---------------------------------------------------------------- 6. pinned
# Requests for the session with the restarted node's route. The balancer
# sends them there once its health check passes; until then another node
# serves them (and re-issues the cookie), which must still count on.
pinned="$sid.$owner"
served=
for ((i = 1; i <= PINNED_TRIES; i++)); do
    request "$pinned"
    if [ "$CODE" != 200 ] || [ -z "$COUNT" ]; then
        step pinned "$owner" "$sid" - "$MS" "try $i: HTTP $CODE"
    else
        by=$owner
        [ -n "$SETCOOKIE" ] && by=$(route_of "$SETCOOKIE")
        if [ "$COUNT" != $((count + 1)) ]; then
            step pinned "$by" "$sid" "$COUNT" "$MS" "try $i: count was $count"
            [ "$COUNT" = 1 ] && fail "the restarted node ($owner) does not have the session: count restarted at 1"
            fail "pinned to $owner: count went from $count to $COUNT (expected $((count + 1)))"
        fi
        count=$COUNT
        if [ "$by" = "$owner" ]; then
            served=1
            step pinned "$by" "$sid" "$count" "$MS" "served by the restarted node: it received the state"
            break
        fi
        step pinned "$by" "$sid" "$count" "$MS" "try $i: served by $by, not yet by $owner"
    fi
    sleep 0.5
done
[ -n "$served" ] || fail "the balancer never sent the session to the restarted node $owner ($PINNED_TRIES tries)"

# one more on the restarted node: the count goes on there
request "$pinned"
{ [ "$CODE" = 200 ] && [ -n "$COUNT" ]; } || fail "pinned again: HTTP $CODE"
[ "$COUNT" = $((count + 1)) ] || fail "pinned again: count=$COUNT after $count"
[ -z "$SETCOOKIE" ] || [ "$(route_of "$SETCOOKIE")" = "$owner" ] \
    || fail "pinned again: moved to $(route_of "$SETCOOKIE")"
count=$COUNT
step pinned "$owner" "$sid" "$count" "$MS" "the count goes on on $owner"
echo PASS
exit 0
