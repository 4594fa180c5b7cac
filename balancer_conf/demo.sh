#!/usr/bin/env bash
# demo.sh - a live 3-node mod_session_cluster cluster with httpd as the load
# balancer in front, all on loopback (called by ./build.sh demo).
#
#   demo.sh MODULE.so [delta]   start node1..node3 (ClusterManager delta) and
#                               the balancer
#   demo.sh MODULE.so backup    the same with ClusterManager backup
#   demo.sh [MODULE.so] stop    stop everything by pid files (idempotent)
#
# Environment:
#   SC_DEMO_DIR        where the server roots go (default /tmp/sc-demo):
#                      <dir>/node1 .. <dir>/node3 and <dir>/balancer
#   SC_DEMO_PORT       the balancer's port (default 18080); node N listens on
#                      PORT+N for HTTP and PORT+1000+N for replication
#   SC_DEMO_SEND_MODE  ClusterSendMode of the nodes: async|ack|sync (default ack)
#   SC_DEMO_MEMBERSHIP static: ClusterMember lines (default); multicast: the
#                      nodes find each other by heartbeats on 239.77.0.1,
#                      UDP port PORT+2000, over 127.0.0.1 (ClusterMulticast);
#                      none: three nodes that do not replicate (benchmarks'
#                      baseline)
#   SC_DEMO_NODE_CONF  a file copied into every node's conf.d/ (extra locations)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=${SC_DEMO_DIR:-/tmp/sc-demo}
port=${SC_DEMO_PORT:-18080}
send_mode=${SC_DEMO_SEND_MODE:-ack}
membership=${SC_DEMO_MEMBERSHIP:-static}
routes=(node1 node2 node3)
APACHE2=${SC_APACHE2:-apache2}
START_WAIT=30        # seconds: every node ready and the balancer answering
STOP_WAIT=10         # seconds per server to exit after SIGTERM

say() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

node_port() { echo $((port + ${1#node})); }
cluster_port() { echo $((port + 1000 + ${1#node})); }

# alive PID: exists and is not a zombie (PID 1 may not reap orphans here)
alive() {
    local pid=$1 state
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# true if any process (non-zombie) is left in process group PGID
group_alive() {
    local pgid=$1 f st
    for f in /proc/[0-9]*/stat; do
        { read -r st <"$f"; } 2>/dev/null || continue
        # fields after "comm)": state ppid pgrp ...
        st=${st##*) }
        # shellcheck disable=SC2086
        set -- $st
        [ "${3:-}" = "$pgid" ] && [ "$1" != Z ] && [ "$1" != X ] && return 0
    done
    return 1
}

# Stop one server by its pid file: SIGTERM to the parent (httpd's graceless
# stop), wait bounded, then SIGKILL to its process group. Children left over
# by a `kill -9` of the parent alone are in the same process group and are
# swept up too. Removes the pid file. Idempotent.
stop_pidfile() {
    local pidfile=$1 name=$2 pid i cmd
    [ -f "$pidfile" ] || return 0
    pid=$(tr -dc '0-9' <"$pidfile")
    if [ -z "$pid" ]; then rm -f "$pidfile"; return 0; fi
    # a live process with this pid that is not an apache2 is someone else's
    cmd=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)
    if alive "$pid" && [[ $cmd != *apache2* ]]; then
        say "$name: pid $pid from $pidfile is not apache2; leaving it alone"
        rm -f "$pidfile"
        return 0
    fi
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < STOP_WAIT * 10; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
    fi
    if group_alive "$pid"; then
        kill -KILL -- "-$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            group_alive "$pid" || break
            sleep 0.1
        done
        say "$name: had to SIGKILL process group $pid"
    fi
    rm -f "$pidfile"
    say "$name stopped (pid $pid)"
}

stop_all() {
    local r
    stop_pidfile "$root/balancer/run/balancer.pid" balancer
    for r in "${routes[@]}"; do
        stop_pidfile "$root/$r/run/httpd.pid" "$r"
    done
    # the single-node demo of earlier releases kept its pid file here
    stop_pidfile "$root/run/httpd.pid" "single-node demo"
}

# ------------------------------------------------------------------ arguments
module=
if [ $# -gt 0 ] && [ "$1" != stop ] && [ "$1" != backup ] && [ "$1" != delta ]; then
    module=$1
    shift
fi
action=${1:-delta}
case "$action" in
    stop)   stop_all; exit 0 ;;
    backup|delta) manager=$action ;;
    *)      die "unknown argument '$action' (delta, backup, stop)" ;;
esac
[ -n "$module" ] || die "usage: demo.sh path/to/mod_session_cluster.so [delta|backup] | demo.sh stop"
[ -f "$module" ] || die "module not found: $module (build it: ./build.sh)"
module=$(cd "$(dirname "$module")" && pwd)/$(basename "$module")
case "$send_mode" in
    async|ack|sync) ;;
    *) die "SC_DEMO_SEND_MODE must be async, ack or sync, not '$send_mode'" ;;
esac
case "$membership" in
    static|multicast|none) ;;
    *) die "SC_DEMO_MEMBERSHIP must be static, multicast or none, not '$membership'" ;;
esac
case "$port" in
    ''|*[!0-9]*) die "SC_DEMO_PORT must be a number, not '$port'" ;;
esac
{ [ "$port" -ge 1024 ] && [ "$port" -le 64500 ]; } || die "SC_DEMO_PORT must be 1024..64500"
command -v curl >/dev/null || die "curl is needed"
command -v "$APACHE2" >/dev/null || die "$APACHE2 not found"

# ------------------------------------------------------------------ checks
for pf in "$root/balancer/run/balancer.pid" "$root"/node*/run/httpd.pid; do
    [ -f "$pf" ] || continue
    if alive "$(tr -dc '0-9' <"$pf")"; then
        die "demo already running ($pf); stop it with: $0 stop"
    fi
    rm -f "$pf"                  # stale: a killed (maybe zombie) parent
done

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
all_ports=("$port")
for r in "${routes[@]}"; do all_ports+=("$(node_port "$r")" "$(cluster_port "$r")"); done
for p in "${all_ports[@]}"; do
    port_busy "$p" && die "port 127.0.0.1:$p is in use; choose another SC_DEMO_PORT (now $port)"
done

moddir=$(apxs -q LIBEXECDIR 2>/dev/null || echo /usr/lib/apache2/modules)

# ------------------------------------------------------------------ configs
members=
bmembers=
for r in "${routes[@]}"; do
    [ "$membership" = static ] \
        && members+="ClusterMember $r 127.0.0.1:$(cluster_port "$r")"$'\n'
    bmembers+="    BalancerMember \"http://127.0.0.1:$(node_port "$r")\" route=$r retry=1 \\"$'\n'
    bmembers+="        disablereuse=On connectiontimeout=1 timeout=10 \\"$'\n'
    bmembers+="        hcmethod=GET hcuri=/cluster-manager?ready hcinterval=1 hcpasses=1 hcfails=1"$'\n'
done

if [ "$membership" = multicast ]; then
    members="ClusterMulticast 239.77.0.1:$((port + 2000)) interface=127.0.0.1"$'\n'
fi

# fill_template IN OUT NAME=VALUE...; a line that is only @MEMBERS@ becomes
# the (multi-line) MEMBERS value
fill_template() {
    local in=$1 out=$2 line kv name
    shift 2
    : >"$out"
    while IFS= read -r line || [ -n "$line" ]; do
        if [ "$(printf '%s' "$line" | tr -d ' ')" = "@MEMBERS@" ]; then
            printf '%s' "${MEMBERS:-}" >>"$out"
            continue
        fi
        for kv in "$@"; do
            name=${kv%%=*}
            line=${line//@$name@/${kv#*=}}
        done
        printf '%s\n' "$line" >>"$out"
    done <"$in"
    if [ "$(id -u)" -ne 0 ]; then
        sed -i -e '/^User /d' -e '/^Group /d' "$out"
    fi
}

mkdir -p "$root"
chmod 755 "$root"
# one cluster key for the demo's nodes, kept across demo runs (a node that
# is started again by hand must find the same key)
key=$root/cluster.key
if [ ! -s "$key" ]; then
    command -v openssl >/dev/null || die "openssl is needed to make the cluster key"
    (umask 077 && openssl rand -base64 32 >"$key") || die "cannot write $key"
fi
chmod 600 "$key"
for r in "${routes[@]}"; do
    d=$root/$r
    mkdir -p "$d"/{run,logs,htdocs,cgi-bin,conf.d}
    chmod 755 "$d" "$d"/run "$d"/cgi-bin "$d"/htdocs
    rm -f "$d"/conf.d/*.conf
    if [ -n "${SC_DEMO_NODE_CONF:-}" ]; then
        install -m 644 "$SC_DEMO_NODE_CONF" "$d/conf.d/"
    fi
    install -m 755 "$here/../test/apps/counter.cgi" "$d/cgi-bin/counter.cgi"
    MEMBERS=$members fill_template "$here/node.conf.in" "$d/httpd.conf" \
        ROOT="$d" PORT="$(node_port "$r")" ROUTE="$r" \
        CLUSTER_PORT="$(cluster_port "$r")" MODULE="$module" MODDIR="$moddir" \
        SEND_MODE="$send_mode" MANAGER="$manager" SECRET_FILE="$key"
done
# the nodes' children run as www-data when started as root: they must reach
# the CGI (a root-only parent directory, e.g. a pytest tmp_path, would not do)
if [ "$(id -u)" -eq 0 ] && command -v runuser >/dev/null \
   && ! runuser -u www-data -- test -x "$root/node1/cgi-bin/counter.cgi" 2>/dev/null; then
    die "www-data cannot reach $root/node1/cgi-bin/counter.cgi: choose an SC_DEMO_DIR whose parents are world-searchable"
fi
b=$root/balancer
mkdir -p "$b"/{run,logs}
chmod 755 "$b" "$b"/run
MEMBERS=$bmembers fill_template "$here/balancer.conf.in" "$b/balancer.conf" \
    ROOT="$b" PORT="$port" MODDIR="$moddir"

# ------------------------------------------------------------------ start
fail() {
    local what=$1 log=$2
    printf 'demo: %s\n' "$what" >&2
    if [ -f "$log" ]; then
        printf -- '--- last lines of %s:\n' "$log" >&2
        tail -n 20 "$log" >&2
    fi
    stop_all >&2
    exit 1
}

start_server() {             # NAME ROOT CONF LOG PIDFILE
    local out i
    if ! out=$("$APACHE2" -d "$2" -f "$3" -k start 2>&1); then
        fail "$1 did not start: $out" "$4"
    fi
    # the detached parent writes its pid file a moment after -k start returns
    for ((i = 0; i < 100; i++)); do
        [ -s "$5" ] && return 0
        sleep 0.05
    done
    fail "$1 wrote no pid file ($5) within 5 s" "$4"
}

code_of() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true; }

# fresh logs, so what the demo prints on failure is about this start
for r in "${routes[@]}"; do : >"$root/$r/logs/error_log"; done
: >"$b/logs/balancer_error_log"

# node1 first: it serves as the first node; the others join and receive state
for r in "${routes[@]}"; do
    start_server "$r" "$root/$r" "$root/$r/httpd.conf" "$root/$r/logs/error_log" \
        "$root/$r/run/httpd.pid"
done
start_server balancer "$b" "$b/balancer.conf" "$b/logs/balancer_error_log" \
    "$b/run/balancer.pid"

deadline=$(( $(date +%s) + START_WAIT ))
# wait_ready NAME URL LOG: URL answers 200 before the deadline, or fail
wait_ready() {
    local name=$1 url=$2 code= i
    for ((i = 0; i < START_WAIT * 10; i++)); do
        code=$(code_of "$url")
        [ "$code" = 200 ] && return 0
        [ "$(date +%s)" -ge "$deadline" ] && break
        sleep 0.1
    done
    fail "$name not ready within ${START_WAIT}s ($url answered '${code:-nothing}')" "$3"
}
for r in "${routes[@]}"; do
    wait_ready "$r" "http://127.0.0.1:$(node_port "$r")/cluster-manager?ready" \
        "$root/$r/logs/error_log"
done
# through the balancer to a node: the balancer proxies
wait_ready balancer "http://127.0.0.1:$port/cluster-manager?ready" "$b/logs/balancer_error_log"

# ------------------------------------------------------------------ report
ready_urls=
for r in "${routes[@]}"; do
    ready_urls+="$r=http://127.0.0.1:$(node_port "$r")/cluster-manager?ready "
done
queries="?auto ?json ?ready"
joins="receives the sessions"
if [ "$manager" = backup ]; then
    queries+=" ?sessions"
    joins="learns where every session lives"
fi
cat <<MSG
mod_session_cluster demo: 3 nodes (ClusterManager $manager, ClusterSendMode $send_mode, $membership membership) behind httpd's balancer
  balancer          http://127.0.0.1:$port/counter
                    curl -c /tmp/jar -b /tmp/jar http://127.0.0.1:$port/counter   (count=1, 2, 3 ...)
  balancer-manager  http://127.0.0.1:$port/balancer-manager
MSG
for r in "${routes[@]}"; do
    printf '  %-17s http://127.0.0.1:%s/cluster-manager   (%s)  log %s\n' \
        "$r" "$(node_port "$r")" "$queries" "$root/$r/logs/error_log"
done
cat <<MSG
  balancer log      $b/logs/balancer_error_log

  kill a node       kill -9 -- -\$(cat $root/nodeN/run/httpd.pid)
                    (the whole process group: parent, children and clusterd, like a crash;
                    "kill -9 \$(cat $root/nodeN/run/httpd.pid)" kills the parent only, and
                    httpd's children then keep serving on the node's port on their own)
  start it again    rm -f $root/nodeN/run/httpd.pid; $APACHE2 -d $root/nodeN -f $root/nodeN/httpd.conf -k start
                    (a kill -9'd parent leaves its pid file behind; the node $joins
                    before ?ready answers 200 and the balancer sends it traffic again)
  failover check    test/failover/failover.sh http://127.0.0.1:$port \\
                        'kill -9 -- -\$(cat $root/%ROUTE%/run/httpd.pid)' \\
                        'rm -f $root/%ROUTE%/run/httpd.pid; $APACHE2 -d $root/%ROUTE% -f $root/%ROUTE%/httpd.conf -k start'
                    with READY_URLS='${ready_urls% }'
  stop everything   $0 stop
MSG
