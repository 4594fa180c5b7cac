#!/usr/bin/env bash
# demo.sh MODULE.so - start one live node on loopback (called by ./build.sh demo).
# SC_DEMO_DIR (default /tmp/sc-demo) and SC_DEMO_PORT (default 18080) move it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
module=${1:?usage: demo.sh path/to/mod_session_cluster.so}
root=${SC_DEMO_DIR:-/tmp/sc-demo}
port=${SC_DEMO_PORT:-18080}
conf=$root/httpd.conf

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -f "$root/run/httpd.pid" ] && kill -0 "$(cat "$root/run/httpd.pid")" 2>/dev/null; then
    echo "demo already running; stop it with: apache2 -d $root -f $conf -k stop" >&2
    exit 1
fi
for _ in $(seq 1 50); do port_busy "$port" || break; port=$((port + 1)); done
port_busy "$port" && { echo "demo: no free port near $port" >&2; exit 1; }

mkdir -p "$root"/{run,logs,htdocs,cgi-bin}
chmod 755 "$root" "$root"/cgi-bin "$root"/htdocs
install -m 755 "$here/../test/apps/counter.cgi" "$root/cgi-bin/counter.cgi"
sed -e "s#@ROOT@#$root#g" -e "s#@PORT@#$port#g" -e "s#@ROUTE@#node1#g" \
    -e "s#@CLUSTER_PORT@#$((port + 1000))#g" -e "s#@MODULE@#$module#g" \
    -e "s#@MODDIR@#$(apxs -q LIBEXECDIR)#g" "$here/node.conf.in" >"$conf"
if [ "$(id -u)" -ne 0 ]; then
    sed -i -e '/^User /d' -e '/^Group /d' "$conf"
fi
if ! apache2 -d "$root" -f "$conf" -k start; then
    echo "demo: httpd did not start; see $root/logs/error_log" >&2
    tail -n 5 "$root/logs/error_log" >&2 || true
    exit 1
fi
for _ in $(seq 1 50); do port_busy "$port" && break; sleep 0.1; done

cat <<MSG
mod_session_cluster demo: node1 on http://127.0.0.1:$port/
  counter   curl -c /tmp/jar -b /tmp/jar http://127.0.0.1:$port/counter
  status    http://127.0.0.1:$port/cluster-manager   (?auto ?json ?ready)
  log       $root/logs/error_log
  graceful  apache2 -d $root -f $conf -k graceful   (the count survives it)
  stop      apache2 -d $root -f $conf -k stop
MSG
