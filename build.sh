#!/usr/bin/env bash
# build.sh - the one entry point of mod_session_cluster; building is the
# Makefile's (make, make unit, make install, make clean), this script adds the
# Debian packages, the pytest suite, benchmarks and the demo.
#
#   ./build.sh            build with apxs (make)
#   ./build.sh deps       install every Debian package the build, the unit tests
#                         and the pytest suite need (root; the only command that
#                         runs apt-get)
#   ./build.sh install    build, install into the system httpd (make install)
#   ./build.sh test       build warning-free, C unit tests under ASan/UBSan, pytest suite
#   ./build.sh unit       only the C unit tests (make unit)
#   ./build.sh bench      store benchmark (figures, no pass/fail)
#   ./build.sh bench balancer [seconds] [connections]
#                         req/s through the demo balancer per send mode (wrk)
#   ./build.sh bench link [other.so ...] [--rounds R] [--seconds S]
#                         CPU and latency per replicated change, this build
#                         and any other builds given, in one run
#   ./build.sh bench replication [module.so] [--seconds S] [--connections C]
#                         [--rounds R] ...
#                         replication cost per ClusterManager and send mode:
#                         a table and a plot (test/bench/replication.py);
#                         R interleaved rounds give medians and ranges,
#                         and the kernel's floor (ipc_floor) below the table
#   ./build.sh bench floor [--count N] [--rounds R] [--spinners K]
#                         the least CPU this machine's kernel takes for the
#                         messages of one answered change (test/bench/ipc_floor.c)
#   ./build.sh demo       start a live node on loopback and print its URLs
#   ./build.sh clean
set -euo pipefail

TOP=$(cd "$(dirname "$0")" && pwd)
MOD=$TOP/mod_session_cluster
SO=$MOD/.libs/mod_session_cluster.so
OUT=$TOP/.build
# Debian packages (./build.sh deps): the build, the unit tests, the suite.
# The fuzzers also need clang's compiler-rt (libFuzzer, ASan, UBSan): deps
# picks the package that matches `clang --version`.
BUILD_PKGS=(apache2 apache2-dev libapr1-dev libaprutil1-dev libssl-dev gcc make)
FUZZ_PKGS=(clang)
TEST_PKGS=(python3-pytest python3-requests python3-cryptography python3-matplotlib curl
           iproute2 wrk openssl)
PYTHON=/usr/bin/python3

say() { printf '==> %s\n' "$*"; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

# make in the top directory; never installs anything
mk() {
    command -v make >/dev/null 2>&1 \
        || die "make not found: install GNU make (Debian: ./build.sh deps)"
    make --no-print-directory -C "$TOP" -j "$(nproc 2>/dev/null || echo 2)" "$@"
}

# A command the chosen step needs, or a clear message.
need_cmd() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2 (Debian: ./build.sh deps)"
}

# ---- deps: the only place that installs packages -------------------------

# Install the Debian packages that are missing (root), or name them (others).
need_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'ok installed' >/dev/null \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "missing Debian packages: ${missing[*]}
    install them with: sudo apt-get install ${missing[*]}"
    fi
    say "installing ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
        # package lists missing or stale: refresh them once
        apt-get update -qq || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
            || die "apt-get install ${missing[*]} failed"
    fi
}

# apt knows a package that can be installed
apt_has() { apt-cache policy "$1" 2>/dev/null | grep 'Candidate: [^(]' >/dev/null; }

# The compiler-rt package (libFuzzer, ASan, UBSan) for the clang on PATH:
# Debian's unversioned libclang-rt-dev when it is the one for this clang's
# major version (it follows Debian's default clang), else libclang-rt-N-dev.
clang_rt_pkg() {
    local major try
    major=$(clang --version 2>/dev/null | sed -nE '1s/.*clang version ([0-9]+)\..*/\1/p')
    [ -n "$major" ] || { echo "build.sh: cannot read the version of clang --version" >&2; return 1; }
    for try in 1 2; do
        if apt_has libclang-rt-dev && apt-cache depends libclang-rt-dev 2>/dev/null \
               | grep -E "Depends: libclang-rt-$major-dev( |:|\$)" >/dev/null; then
            echo libclang-rt-dev
            return 0
        fi
        if apt_has "libclang-rt-$major-dev"; then
            echo "libclang-rt-$major-dev"
            return 0
        fi
        # package lists missing or stale: refresh them once (root)
        if [ "$try" = 1 ] && [ "$(id -u)" -eq 0 ] && apt-get update -qq >&2; then
            continue
        fi
        break
    done
    echo "build.sh: no Debian package with clang $major's compiler-rt" \
         "(libclang-rt-dev for clang $major, libclang-rt-$major-dev)" >&2
    return 1
}

# clang links a fuzzer with ASan and UBSan
fuzz_links() {
    local probe rc=0
    probe=$(mktemp)
    printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
        | clang -fsanitize=fuzzer,address,undefined -x c - -o "$probe" >/dev/null 2>&1 || rc=1
    rm -f "$probe"
    return $rc
}

deps() {
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
        die "deps installs Debian packages (apt-get). Elsewhere install by hand: httpd-devel
    (apxs), apr and apr-util development files, OpenSSL development files, gcc and
    GNU make (build); clang with its libFuzzer/ASan/UBSan runtime and openssl (unit
    tests); Apache httpd, python3 with pytest, requests, cryptography and matplotlib,
    curl, iproute2 and wrk (the pytest suite)"
    fi
    need_pkgs "${BUILD_PKGS[@]}" "${FUZZ_PKGS[@]}" "${TEST_PKGS[@]}"
    local rt
    if rt=$(clang_rt_pkg); then
        need_pkgs "$rt"
    fi
    fuzz_links || die "clang cannot link -fsanitize=fuzzer,address,undefined: its compiler-rt is missing"
    say "installed: ${BUILD_PKGS[*]} ${FUZZ_PKGS[*]} ${rt:-} ${TEST_PKGS[*]}"
}

# ---- building: the Makefile ----------------------------------------------

build() {
    mk all ${SC_WERROR:+SC_WERROR=$SC_WERROR}
}

# C unit tests under AddressSanitizer and UndefinedBehaviorSanitizer, then
# every decoder under libFuzzer for a bounded time (the corpus is kept in
# .build/corpus so later runs start where earlier ones ended).
unit() {
    mk unit || die "C unit tests failed"
}

# What the pytest suite and the benchmarks run with.
need_suite() {
    "$PYTHON" -c 'import pytest, requests, cryptography' >/dev/null 2>&1 \
        || die "the pytest suite needs $PYTHON with pytest, requests and cryptography (Debian: ./build.sh deps)"
    need_cmd curl "the pytest suite needs it"
    need_cmd openssl "the pytest suite needs it"
}

bench() {
    if [ "${1:-}" = link ]; then
        shift
        build
        need_suite
        # this build first, then any other builds given (e.g. the one before
        # a change), measured in one run on this machine
        "$PYTHON" "$TOP/test/bench/link_cost.py" "$SO" "$@"
        return
    fi
    if [ "${1:-}" = floor ]; then
        shift
        mk "$OUT/ipc_floor"
        "$OUT/ipc_floor" "$@"
        return
    fi
    if [ "${1:-}" = replication ]; then
        shift
        build
        need_suite
        mk "$OUT/ipc_floor"
        # a module given first (a path ending in .so) is measured instead
        local so=$SO
        case "${1:-}" in *.so) so=$1; shift ;; esac
        "$PYTHON" "$TOP/test/bench/replication.py" "$so" --floor "$OUT/ipc_floor" "$@"
        return
    fi
    if [ "${1:-}" = balancer ]; then
        shift
        build
        need_cmd wrk "the balancer benchmark needs it"
        need_cmd curl "the balancer benchmark needs it"
        "$TOP/test/bench/balancer.sh" "$SO" "$@"
        return
    fi
    mk bench-store
    "$OUT/bench_store" "$@"
}

# Test tools the pytest suite runs: sc_tlspeer (a member's TLS end, built
# from the module's own sc_tls and sc_keys).
tools() {
    mk tools || die "cannot build test/tools/sc_tlspeer.c"
}

pytest_suite() {
    need_suite
    tools
    say "pytest suite"
    local rc=0
    (cd "$TOP/test" && SC_MODULE=$SO SC_TLSPEER=$OUT/sc_tlspeer \
        "$PYTHON" -m pytest -q -rA "$@") || rc=$?
    # 5: no test collected, which must never pass silently
    [ $rc -eq 0 ] || die "pytest failed (exit $rc)"
}

# make install: apxs -i, and on Debian's layout the a2enmod files and a
# cluster key /etc/apache2/cluster.key (made only when there is none).
install_module() {
    [ "$(id -u)" -eq 0 ] || die "install needs root"
    mk install
}

demo() {
    build
    need_cmd curl "the demo needs it"
    "$TOP/balancer_conf/demo.sh" "$SO" "$@"
}

cmd=${1:-build}
[ $# -gt 0 ] && shift
case "$cmd" in
    build)   build ;;
    deps)    deps ;;
    install) install_module ;;
    unit)    unit ;;
    bench)   bench "$@" ;;
    test)    SC_WERROR=1 build; unit; pytest_suite "$@" ;;
    demo)    demo "$@" ;;
    clean)   mk clean ;;
    *)       die "unknown command '$cmd' (build, deps, install, test, unit, bench, demo, clean)" ;;
esac
