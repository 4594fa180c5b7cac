#!/usr/bin/env bash
# build.sh - the one entry point of mod_session_cluster.
#
#   ./build.sh            install missing build packages (as root), build with apxs
#   ./build.sh install    build, install into the system httpd (a2enmod session_cluster)
#   ./build.sh test       build warning-free, C unit tests under ASan/UBSan, pytest suite
#   ./build.sh unit       only the C unit tests
#   ./build.sh bench      store benchmark (figures, no pass/fail)
#   ./build.sh bench balancer [seconds] [connections]
#                         req/s through the demo balancer per send mode (wrk)
#   ./build.sh bench link [other.so ...] [--rounds R] [--seconds S]
#                         CPU and latency per replicated change, this build
#                         and any other builds given, in one run
#   ./build.sh bench replication [module.so] [--seconds S] [--connections C] ...
#                         replication cost per ClusterManager and send mode:
#                         a table and a plot (test/bench/replication.py)
#   ./build.sh demo       start a live node on loopback and print its URLs
#   ./build.sh clean
set -euo pipefail

TOP=$(cd "$(dirname "$0")" && pwd)
MOD=$TOP/mod_session_cluster
SO=$MOD/.libs/mod_session_cluster.so
OUT=$TOP/.build
SOURCES=(mod_session_cluster.c sc_config.c sc_node.c sc_store.c sc_id.c sc_keys.c sc_wire.c sc_kv.c sc_mcast.c
         sc_sock.c sc_tls.c sc_gate.c sc_ratelog.c sc_misses.c sc_peer.c sc_link.c sc_apply.c sc_manager.c sc_mgr_delta.c sc_mgr_backup.c sc_chan.c sc_clusterd.c
         sc_provider.c sc_status.c)
BUILD_PKGS=(apache2 apache2-dev libapr1-dev libaprutil1-dev libssl-dev gcc)
TEST_PKGS=(python3-pytest python3-requests python3-cryptography python3-matplotlib curl
           iproute2 wrk openssl)
PYTHON=/usr/bin/python3

say() { printf '==> %s\n' "$*"; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

# Install Debian packages that are missing (root), or name them (others).
need_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "missing Debian packages: ${missing[*]}
    install them with: sudo apt-get install ${missing[*]}"
    fi
    say "installing ${missing[*]}"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
}

build() {
    need_pkgs "${BUILD_PKGS[@]}"
    local log; log=$(mktemp)
    say "building mod_session_cluster with apxs"
    (cd "$MOD" && apxs -c -Wc,-Wall -Wc,-Wextra ${SC_WERROR:+-Wc,-Werror} \
        -o mod_session_cluster.la "${SOURCES[@]}" -lssl -lcrypto) >"$log" 2>&1 \
        || { cat "$log"; rm -f "$log"; die "build failed"; }
    if grep -E '(warning|error):' "$log"; then
        rm -f "$log"; die "the build must be warning-free"
    fi
    rm -f "$log"
    say "built $SO"
}

# C unit tests under AddressSanitizer and UndefinedBehaviorSanitizer.
unit() {
    need_pkgs "${BUILD_PKGS[@]}" openssl
    mkdir -p "$OUT"
    local cflags ldflags t t0 d n rc=0 failed=()
    cflags="-g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined
            -fno-sanitize-recover=undefined -fno-omit-frame-pointer
            -I$MOD -I$TOP/test/unit $(apr-1-config --cflags --cppflags --includes)"
    ldflags="$(apr-1-config --link-ld --libs)"
    # shellcheck disable=SC2086
    {
    gcc $cflags -o "$OUT/test_store" "$TOP/test/unit/test_store.c" "$MOD/sc_store.c" $ldflags \
        || die "cannot build test_store"
    gcc $cflags -o "$OUT/test_id" "$TOP/test/unit/test_id.c" "$MOD/sc_id.c" $ldflags -lcrypto \
        || die "cannot build test_id"
    gcc $cflags -o "$OUT/test_wire" "$TOP/test/unit/test_wire.c" "$MOD/sc_wire.c" \
        "$MOD/sc_id.c" "$MOD/sc_keys.c" $ldflags -lcrypto || die "cannot build test_wire"
    gcc $cflags -o "$OUT/test_kv" "$TOP/test/unit/test_kv.c" "$MOD/sc_kv.c" $ldflags \
        || die "cannot build test_kv"
    gcc $cflags -o "$OUT/test_keys" "$TOP/test/unit/test_keys.c" "$MOD/sc_keys.c" \
        $ldflags -lcrypto || die "cannot build test_keys"
    gcc $cflags -o "$OUT/test_tls" "$TOP/test/unit/test_tls.c" "$MOD/sc_tls.c" \
        "$MOD/sc_keys.c" "$MOD/sc_sock.c" "$MOD/sc_id.c" "$MOD/sc_wire.c" \
        $ldflags -lssl -lcrypto || die "cannot build test_tls"
    gcc $cflags -o "$OUT/test_gate" "$TOP/test/unit/test_gate.c" "$MOD/sc_gate.c" \
        $ldflags || die "cannot build test_gate"
    gcc $cflags -o "$OUT/test_chan" "$TOP/test/unit/test_chan.c" "$MOD/sc_chan.c" \
        $ldflags || die "cannot build test_chan"
    gcc $cflags -o "$OUT/test_misses" "$TOP/test/unit/test_misses.c" "$MOD/sc_misses.c" \
        $ldflags || die "cannot build test_misses"
    gcc $cflags -o "$OUT/test_manager" "$TOP/test/unit/test_manager.c" "$MOD/sc_manager.c" \
        "$MOD/sc_mgr_delta.c" "$MOD/sc_mgr_backup.c" "$MOD/sc_store.c" \
        $ldflags || die "cannot build test_manager"
    }
    # A test CA and certificates for test_tls's certificate mode (made afresh
    # each run): node1, node2 and node3 signed by the CA, each naming its
    # route in CN and SAN DNS; node4 in its CN only; other-node1 naming node1,
    # signed by another CA.
    d=$OUT/unit-certs
    rm -rf "$d"
    mkdir -p "$d"
    cat >"$d/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
CNF
    (
        cd "$d"
        for n in ca other-ca; do
            openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
                -nodes -days 2 -subj "/CN=sc unit test $n" -config openssl.cnf \
                -extensions ca -keyout "$n.key" -out "$n.pem" 2>/dev/null || exit 1
        done
        for n in node1:ca node2:ca node3:ca node4:ca other-node1:other-ca; do
            local name=${n%%:*} ca=${n#*:} route
            route=${name#other-}
            printf '[leaf]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth,clientAuth\n' \
                >"$name.ext"
            # node4 is named by its CN alone
            [ "$name" = node4 ] || printf 'subjectAltName = DNS:%s\n' "$route" >>"$name.ext"
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -subj "/CN=$route" -config openssl.cnf -keyout "$name.key" \
                -out "$name.csr" 2>/dev/null || exit 1
            openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" \
                -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "$name.ext" \
                -extensions leaf -out "$name.pem" 2>/dev/null || exit 1
            openssl verify -CAfile "$ca.pem" "$name.pem" >/dev/null || exit 1
        done
        chmod 600 ./*.key
    ) || die "cannot make the test certificates in $d (openssl)"
    for t in test_id test_store test_wire test_kv test_keys test_tls test_gate test_chan test_misses test_manager; do
        say "unit: $t (ASan/UBSan)"
        t0=$(date +%s%N)
        if [ "$t" = test_tls ]; then
            ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "$OUT/$t" "$OUT/unit-certs" \
                || { rc=1; failed+=("$t"); }
        else
            ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "$OUT/$t" || { rc=1; failed+=("$t"); }
        fi
        say "$t: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    done
    fuzz_smoke || { rc=1; failed+=(fuzzing); }
    [ $rc -eq 0 ] || die "C unit tests failed: ${failed[*]}"
}

# Every decoder under libFuzzer (clang, ASan/UBSan) for a bounded time; the
# corpus is kept in .build/corpus so later runs start where earlier ones ended.
fuzz_smoke() {
    need_pkgs clang libclang-rt-14-dev
    command -v clang >/dev/null 2>&1 \
        || die "clang not found: the fuzz targets need it (Debian: apt-get install clang libclang-rt-14-dev)"
    local cflags ldflags t log t0 ms secs rc=0
    cflags="-g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined
            -fno-sanitize-recover=undefined -fno-omit-frame-pointer
            -I$MOD $(apr-1-config --cflags --cppflags --includes)"
    ldflags="$(apr-1-config --link-ld --libs)"
    # shellcheck disable=SC2086
    clang $cflags -o "$OUT/fuzz_wire" "$TOP/test/unit/fuzz_wire.c" "$MOD/sc_wire.c" \
        "$MOD/sc_id.c" "$MOD/sc_keys.c" $ldflags -lcrypto || die "cannot build fuzz_wire with clang"
    # shellcheck disable=SC2086
    clang $cflags -o "$OUT/fuzz_kv" "$TOP/test/unit/fuzz_kv.c" "$MOD/sc_kv.c" \
        $ldflags || die "cannot build fuzz_kv with clang"
    # shellcheck disable=SC2086
    clang $cflags -o "$OUT/fuzz_keys" "$TOP/test/unit/fuzz_keys.c" "$MOD/sc_keys.c" \
        $ldflags -lcrypto || die "cannot build fuzz_keys with clang"
    # fuzz_keys' decoder is small: 5 s cover it, and keep the stage's total
    for t in fuzz_wire:10 fuzz_kv:10 fuzz_keys:5; do
        secs=${t#*:}
        t=${t%%:*}
        say "unit: $t (libFuzzer + ASan/UBSan, at most $secs s or 200000 runs)"
        mkdir -p "$OUT/corpus/$t"
        log=$OUT/$t.log
        t0=$(date +%s%N)
        if "$OUT/$t" -max_total_time="$secs" -runs=200000 -print_final_stats=1 \
               -artifact_prefix="$OUT/$t-" "$OUT/corpus/$t" >"$log" 2>&1; then
            ms=$(( ($(date +%s%N) - t0) / 1000000 ))
            awk -v t="$t" -v ms="$ms" '/^stat::number_of_executed_units/ { runs = $2 }
                /^stat::peak_rss_mb/ { rss = $2 }
                END { printf "%s: %d runs in %.1f s (%d exec/s), peak RSS %d MB\n",
                             t, runs, ms / 1000, runs * 1000 / (ms ? ms : 1), rss }' "$log"
        else
            tail -n 60 "$log"
            say "$t failed: full log $log, crashing input $OUT/$t-*"
            rc=1
        fi
    done
    return $rc
}

bench() {
    if [ "${1:-}" = link ]; then
        shift
        build
        need_pkgs "${TEST_PKGS[@]}"
        # this build first, then any other builds given (e.g. the one before
        # a change), measured in one run on this machine
        "$PYTHON" "$TOP/test/bench/link_cost.py" "$SO" "$@"
        return
    fi
    if [ "${1:-}" = replication ]; then
        shift
        build
        need_pkgs "${TEST_PKGS[@]}"
        # a module given first (a path ending in .so) is measured instead
        local so=$SO
        case "${1:-}" in *.so) so=$1; shift ;; esac
        "$PYTHON" "$TOP/test/bench/replication.py" "$so" "$@"
        return
    fi
    if [ "${1:-}" = balancer ]; then
        shift
        build
        need_pkgs wrk curl
        "$TOP/test/bench/balancer.sh" "$SO" "$@"
        return
    fi
    need_pkgs "${BUILD_PKGS[@]}"
    mkdir -p "$OUT"
    # shellcheck disable=SC2046
    gcc -O2 -Wall -Wextra -I"$MOD" -I"$TOP/test/unit" $(apr-1-config --cflags --cppflags --includes) \
        -o "$OUT/bench_store" "$TOP/test/unit/bench_store.c" "$MOD/sc_store.c" \
        $(apr-1-config --link-ld --libs)
    "$OUT/bench_store" "$@"
}

# Test tools the pytest suite runs: sc_tlspeer (a member's TLS end, built
# from the module's own sc_tls and sc_keys).
tools() {
    need_pkgs "${BUILD_PKGS[@]}"
    mkdir -p "$OUT"
    # shellcheck disable=SC2046
    gcc -g -O1 -Wall -Wextra -Werror -I"$MOD" $(apr-1-config --cflags --cppflags --includes) \
        -o "$OUT/sc_tlspeer" "$TOP/test/tools/sc_tlspeer.c" "$MOD/sc_tls.c" \
        "$MOD/sc_keys.c" "$MOD/sc_sock.c" "$MOD/sc_id.c" \
        $(apr-1-config --link-ld --libs) -lssl -lcrypto \
        || die "cannot build test/tools/sc_tlspeer.c"
}

pytest_suite() {
    need_pkgs "${TEST_PKGS[@]}"
    tools
    say "pytest suite"
    local rc=0
    (cd "$TOP/test" && SC_MODULE=$SO SC_TLSPEER=$OUT/sc_tlspeer \
        "$PYTHON" -m pytest -q -rA "$@") || rc=$?
    # 5: no test collected, which must never pass silently
    [ $rc -eq 0 ] || die "pytest failed (exit $rc)"
}

# A cluster key (ClusterSecretFile) readable by root only, unless one is
# there already: every node of a cluster needs the same file.
make_key() {
    local key=$1
    if [ -e "$key" ]; then
        say "cluster key $key kept"
        return 0
    fi
    need_pkgs openssl
    (umask 077 && openssl rand -base64 32 >"$key") || die "cannot write $key"
    chmod 600 "$key"
    say "made the cluster key $key (ClusterSecretFile $key): copy this same"
    say "  file to every node of the cluster (mode 600), e.g. scp -p"
}

install_module() {
    build
    [ "$(id -u)" -eq 0 ] || die "install needs root"
    (cd "$MOD" && apxs -i -n session_cluster mod_session_cluster.la)
    local libexec avail
    libexec=$(apxs -q LIBEXECDIR)
    avail=/etc/apache2/mods-available
    if [ -d "$avail" ]; then
        cat >"$avail/session_cluster.load" <<LOAD
# Depends: session
LoadModule session_cluster_module $libexec/mod_session_cluster.so
LOAD
        cp "$TOP/balancer_conf/session_cluster.conf" "$avail/session_cluster.conf"
        make_key /etc/apache2/cluster.key
        say "installed; enable with: a2enmod session_cluster && systemctl reload apache2"
    else
        say "installed $libexec/mod_session_cluster.so; add after mod_session's LoadModule:"
        say "  LoadModule session_cluster_module $libexec/mod_session_cluster.so"
    fi
}

demo() {
    build
    need_pkgs curl
    "$TOP/balancer_conf/demo.sh" "$SO" "$@"
}

cmd=${1:-build}
[ $# -gt 0 ] && shift
case "$cmd" in
    build)   build ;;
    install) install_module ;;
    unit)    unit ;;
    bench)   bench "$@" ;;
    test)    SC_WERROR=1 build; unit; pytest_suite "$@" ;;
    demo)    demo "$@" ;;
    clean)   rm -rf "$OUT" "$MOD"/.libs "$MOD"/*.lo "$MOD"/*.slo "$MOD"/*.la "$MOD"/*.o ;;
    *)       die "unknown command '$cmd' (build, install, test, unit, bench, demo, clean)" ;;
esac
