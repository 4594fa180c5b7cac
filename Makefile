# Makefile - build mod_session_cluster with apxs, run its C unit tests.
#
#   make                 mod_session_cluster/.libs/mod_session_cluster.so (apxs);
#                        the build must be warning-free (SC_WERROR=1: also -Werror)
#   make check           the module, then `make unit`
#   make unit            C unit tests under ASan/UBSan (gcc), then every decoder
#                        under libFuzzer + ASan/UBSan (clang) for a few seconds
#   make install         apxs -i, plus mods-available/session_cluster.{load,conf}
#                        and /etc/apache2/cluster.key when /etc/apache2/mods-available exists
#   make tools           .build/sc_tlspeer (the pytest suite's member TLS end),
#                        .build/ipc_floor (the kernel's least CPU per answered change)
#   make bench-store     .build/bench_store (./build.sh bench)
#   make clean
#
# Variables: APXS (apxs, else apxs2), APR_CONFIG (apr-1-config), APU_CONFIG
# (apu-1-config), CC (gcc: unit tests and tools), CLANG (clang: fuzzers),
# SC_WERROR (non-empty: -Werror for the module), V=1 (show commands).
# Nothing here installs packages: on Debian `./build.sh deps` does.

.DEFAULT_GOAL := all

TOP := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
MOD := $(TOP)/mod_session_cluster
OUT := $(TOP)/.build
SO  := $(MOD)/.libs/mod_session_cluster.so

ifeq ($(origin APXS),undefined)
APXS := $(or $(shell command -v apxs 2>/dev/null),$(shell command -v apxs2 2>/dev/null),apxs)
endif
APR_CONFIG ?= apr-1-config
APU_CONFIG ?= apu-1-config
ifeq ($(origin CC),default)
CC := gcc
endif
CLANG ?= clang

ifeq ($(V),1)
Q :=
else
Q := @
endif

# ---------------------------------------------------------------------------
# The module: every mod_session_cluster/*.c, linked with OpenSSL.
MODULE_SRCS := $(sort $(notdir $(wildcard $(MOD)/*.c)))
MODULE_LIBS := -lssl -lcrypto
HEADERS     := $(wildcard $(MOD)/*.h $(TOP)/test/unit/*.h)

# ---------------------------------------------------------------------------
# How one unit test or fuzzer is built (the lists follow).
UNIT_TESTS :=
FUZZERS    :=

define unit_rule
UNIT_TESTS += $1
$1_ARGS := $4
$(OUT)/$1: $(TOP)/test/unit/$1.c $(addprefix $(MOD)/,$2) $(HEADERS) $(TOP)/Makefile | need-cc
	@mkdir -p $(OUT)
	@echo "  CC      .build/$1 (ASan/UBSan)"
	$$(Q)$$(CC) $$(UNIT_CFLAGS) -o $$@ $(TOP)/test/unit/$1.c $(addprefix $(MOD)/,$2) $$(APR_LIBS) $3
endef

define fuzz_rule
FUZZERS += $1
$1_SECS := $4
$(OUT)/$1: $(TOP)/test/unit/$1.c $(addprefix $(MOD)/,$2) $(HEADERS) $(TOP)/Makefile | need-clang
	@mkdir -p $(OUT)
	@echo "  CLANG   .build/$1 (libFuzzer + ASan/UBSan)"
	$$(Q)$$(CLANG) $$(FUZZ_CFLAGS) -o $$@ $(TOP)/test/unit/$1.c $(addprefix $(MOD)/,$2) $$(APR_LIBS) $3
endef

# ---------------------------------------------------------------------------
# The codec (sc_wire.h includes its headers): frames, message codecs, the
# seal, heartbeats, and what they share.
CODEC_SRCS := sc_frame.c sc_msg.c sc_seal.c sc_heartbeat.c sc_codec.c

# ---------------------------------------------------------------------------
# C unit tests: test/unit/NAME.c, one line each, in the order `make unit` runs
# them. $(call unit_test,NAME,MODULE SOURCES IT LINKS,LIBRARIES,ARGUMENTS)
unit_test = $(eval $(call unit_rule,$(strip $1),$(strip $2),$(strip $3),$(strip $4)))
$(call unit_test, test_id,      sc_id.c,                                         -lcrypto)
$(call unit_test, test_store,   sc_store.c)
$(call unit_test, test_wire,    $(CODEC_SRCS) sc_id.c sc_keys.c,                 -lcrypto)
$(call unit_test, test_kv,      sc_kv.c)
$(call unit_test, test_identity, sc_identity.c)
$(call unit_test, test_keys,    sc_keys.c,                                       -lcrypto)
$(call unit_test, test_tls,     sc_tls.c sc_keys.c sc_sock.c sc_id.c sc_frame.c sc_codec.c, -lssl -lcrypto, $(OUT)/unit-certs)
$(call unit_test, test_gate,    sc_gate.c)
$(call unit_test, test_chan,    sc_chan.c)
$(call unit_test, test_misses,  sc_misses.c)
$(call unit_test, test_manager, sc_manager.c sc_mgr_delta.c sc_mgr_backup.c sc_store.c)

# libFuzzer targets: test/unit/NAME.c, one line each, run in this order for at
# most SECONDS (or 200000 runs); the corpus stays in .build/corpus/NAME.
# $(call fuzzer,NAME,MODULE SOURCES IT LINKS,LIBRARIES,SECONDS)
fuzzer = $(eval $(call fuzz_rule,$(strip $1),$(strip $2),$(strip $3),$(strip $4)))
$(call fuzzer, fuzz_wire,       $(CODEC_SRCS) sc_id.c sc_keys.c,                 -lcrypto,  10)
$(call fuzzer, fuzz_kv,         sc_kv.c,                                         ,          10)
$(call fuzzer, fuzz_identity,   sc_identity.c,                                   ,          5)
# fuzz_keys' decoder is small: 5 s cover it, and keep the stage's total
$(call fuzzer, fuzz_keys,       sc_keys.c,                                       -lcrypto,  5)

# Test tools and benchmarks.
TLSPEER_SRCS     := sc_tls.c sc_keys.c sc_sock.c sc_id.c
BENCH_STORE_SRCS := sc_store.c

# ---------------------------------------------------------------------------
# Flags (the same for every host; apr-1-config supplies the platform's).
APXS_WERROR  := -Wc,-Werror
APXS_FLAGS    = -Wc,-Wall -Wc,-Wextra $(if $(SC_WERROR),$(APXS_WERROR))
APR_CFLAGS    = $(shell $(APR_CONFIG) --cflags --cppflags --includes)
APR_LIBS      = $(shell $(APR_CONFIG) --link-ld --libs)
UNIT_CFLAGS   = -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined \
                -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
                -I$(MOD) -I$(TOP)/test/unit $(APR_CFLAGS)
FUZZ_CFLAGS   = -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
                -I$(MOD) $(APR_CFLAGS)
TOOL_CFLAGS   = -g -O1 -Wall -Wextra -Werror -I$(MOD) $(APR_CFLAGS)
BENCH_CFLAGS  = -O2 -Wall -Wextra -I$(MOD) -I$(TOP)/test/unit $(APR_CFLAGS)
UNIT_ENV     := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1

MODULE_CMD    = $(APXS) -c $(APXS_FLAGS) -o mod_session_cluster.la $(MODULE_SRCS) $(MODULE_LIBS)

DEPS_HINT := Debian: ./build.sh deps; elsewhere: httpd-devel (apxs), apr and apr-util development files, OpenSSL development files, a C compiler (gcc), clang for the fuzzers

.PHONY: all check unit install tools bench-store clean need-module-tools need-cc need-clang FORCE

all: $(SO)

check: all unit

# ---------------------------------------------------------------------------
# The module. apxs compiles every source each time; the build is redone when
# a source, a header, this Makefile or the apxs command line changes.
$(OUT)/module.cmd: FORCE
	@mkdir -p $(OUT)
	@echo '$(MODULE_CMD)' | cmp -s - $@ 2>/dev/null || echo '$(MODULE_CMD)' >$@

$(SO): $(addprefix $(MOD)/,$(MODULE_SRCS)) $(wildcard $(MOD)/*.h) $(TOP)/Makefile $(OUT)/module.cmd | need-module-tools
	@echo "==> building mod_session_cluster with apxs"
	@log=$$(mktemp); \
	if ! (cd $(MOD) && $(MODULE_CMD)) >"$$log" 2>&1; then \
	    cat "$$log"; rm -f "$$log"; echo "make: the module build failed" >&2; exit 1; \
	fi; \
	if grep -E '(warning|error):' "$$log"; then \
	    rm -f "$$log" $@ $(MOD)/mod_session_cluster.la; \
	    echo "make: the build must be warning-free" >&2; exit 1; \
	fi; \
	rm -f "$$log"
	@echo "==> built $@"

need-module-tools:
	@command -v $(APXS) >/dev/null 2>&1 || { \
	    echo "make: apxs not found (tried apxs, apxs2; or make APXS=/path/to/apxs)." >&2; \
	    echo "  The module needs: $(DEPS_HINT)" >&2; exit 1; }
	@inc=$$($(APXS) -q INCLUDEDIR 2>/dev/null); \
	for h in httpd.h mod_session.h; do \
	    [ -f "$$inc/$$h" ] || { echo "make: $$inc/$$h not found (apxs -q INCLUDEDIR)." >&2; \
	        echo "  The module needs: $(DEPS_HINT)" >&2; exit 1; }; \
	done
	@for c in $(APR_CONFIG) $(APU_CONFIG); do \
	    command -v $$c >/dev/null 2>&1 || { echo "make: $$c not found." >&2; \
	        echo "  The module needs: $(DEPS_HINT)" >&2; exit 1; }; \
	done
	@printf '#include <apr_thread_pool.h>\n#include <openssl/ssl.h>\n' \
	    | $$($(APXS) -q CC) -E $$($(APR_CONFIG) --cppflags --includes) $$($(APU_CONFIG) --includes) \
	        -I$$($(APXS) -q INCLUDEDIR) -x c - >/dev/null 2>&1 || { \
	    echo "make: the APR-util (apr_thread_pool.h) or OpenSSL (openssl/ssl.h) headers are missing." >&2; \
	    echo "  The module needs: $(DEPS_HINT)" >&2; exit 1; }

# `make .build/NAME` (in the top directory) builds one test, fuzzer or tool.
.build/%: $(OUT)/% ;

# ---------------------------------------------------------------------------
# Checks for the tools the unit tests and fuzzers need.
need-cc:
	@command -v $(CC) >/dev/null 2>&1 || { echo "make: $(CC) not found ($(DEPS_HINT))" >&2; exit 1; }
	@command -v $(APR_CONFIG) >/dev/null 2>&1 || { \
	    echo "make: $(APR_CONFIG) not found ($(DEPS_HINT))" >&2; exit 1; }

need-clang: need-cc
	@command -v $(CLANG) >/dev/null 2>&1 || { \
	    echo "make: $(CLANG) not found: the fuzz targets need clang with its libFuzzer and" >&2; \
	    echo "  sanitizer runtime (Debian: ./build.sh deps; or make CLANG=/path/to/clang)" >&2; exit 1; }
	@mkdir -p $(OUT)
	@printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
	    | $(CLANG) -fsanitize=fuzzer,address,undefined -x c - -o $(OUT)/.fuzz-probe >/dev/null 2>&1 || { \
	    rm -f $(OUT)/.fuzz-probe; \
	    echo "make: $(CLANG) cannot link -fsanitize=fuzzer,address,undefined: its compiler-rt" >&2; \
	    echo "  runtime (libFuzzer, ASan, UBSan) is missing (Debian: ./build.sh deps installs the" >&2; \
	    echo "  one matching clang --version)" >&2; exit 1; }
	@rm -f $(OUT)/.fuzz-probe

# One shell runs every test, then every fuzzer, and names all that failed.
run_unit = echo "==> unit: $1 (ASan/UBSan)"; t0=$$(date +%s%N); \
	$(UNIT_ENV) $(OUT)/$1 $($1_ARGS) || failed="$$failed $1"; \
	echo "==> $1: $$(( ($$(date +%s%N) - t0) / 1000000 )) ms";
run_fuzz = echo "==> unit: $1 (libFuzzer + ASan/UBSan, at most $($1_SECS) s or 200000 runs)"; \
	mkdir -p $(OUT)/corpus/$1; t0=$$(date +%s%N); \
	if $(OUT)/$1 -max_total_time=$($1_SECS) -runs=200000 -print_final_stats=1 \
	        -artifact_prefix=$(OUT)/$1- $(OUT)/corpus/$1 >$(OUT)/$1.log 2>&1; then \
	    ms=$$(( ($$(date +%s%N) - t0) / 1000000 )); \
	    awk -v t=$1 -v ms=$$ms '/^stat::number_of_executed_units/ { runs = $$2 } \
	        /^stat::peak_rss_mb/ { rss = $$2 } \
	        END { printf "%s: %d runs in %.1f s (%d exec/s), peak RSS %d MB\n", \
	                     t, runs, ms / 1000, runs * 1000 / (ms ? ms : 1), rss }' $(OUT)/$1.log; \
	else \
	    tail -n 60 $(OUT)/$1.log; \
	    echo "==> $1 failed: full log $(OUT)/$1.log, crashing input $(OUT)/$1-*"; \
	    failed="$$failed $1"; \
	fi;

unit: $(addprefix $(OUT)/,$(UNIT_TESTS) $(FUZZERS))
	$(Q)$(TOP)/test/unit/unit-certs.sh $(OUT)/unit-certs
	$(Q)failed=; \
	$(foreach t,$(UNIT_TESTS),$(call run_unit,$t)) \
	$(foreach f,$(FUZZERS),$(call run_fuzz,$f)) \
	if [ -n "$$failed" ]; then echo "make: C unit tests failed:$$failed" >&2; exit 1; fi

# ---------------------------------------------------------------------------
tools: $(OUT)/sc_tlspeer $(OUT)/ipc_floor

$(OUT)/sc_tlspeer: $(TOP)/test/tools/sc_tlspeer.c $(addprefix $(MOD)/,$(TLSPEER_SRCS)) $(HEADERS) $(TOP)/Makefile | need-cc
	@mkdir -p $(OUT)
	@echo "  CC      .build/sc_tlspeer"
	$(Q)$(CC) $(TOOL_CFLAGS) -o $@ $< $(addprefix $(MOD)/,$(TLSPEER_SRCS)) $(APR_LIBS) -lssl -lcrypto

$(OUT)/ipc_floor: $(TOP)/test/bench/ipc_floor.c $(TOP)/Makefile | need-cc
	@mkdir -p $(OUT)
	@echo "  CC      .build/ipc_floor"
	$(Q)$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

bench-store: $(OUT)/bench_store

$(OUT)/bench_store: $(TOP)/test/unit/bench_store.c $(addprefix $(MOD)/,$(BENCH_STORE_SRCS)) $(HEADERS) $(TOP)/Makefile | need-cc
	@mkdir -p $(OUT)
	@echo "  CC      .build/bench_store"
	$(Q)$(CC) $(BENCH_CFLAGS) -o $@ $< $(addprefix $(MOD)/,$(BENCH_STORE_SRCS)) $(APR_LIBS)

# ---------------------------------------------------------------------------
# apxs -i; on a Debian-style layout also the a2enmod files and a cluster key
# (readable by root only; every node of a cluster needs the same file).
AVAIL := /etc/apache2/mods-available
KEY   := /etc/apache2/cluster.key

install: $(SO) | need-module-tools
	cd $(MOD) && $(APXS) -i -n session_cluster mod_session_cluster.la
	@libexec=$$($(APXS) -q LIBEXECDIR); \
	if [ -d $(AVAIL) ]; then \
	    printf '# Depends: session\nLoadModule session_cluster_module %s/mod_session_cluster.so\n' \
	        "$$libexec" >$(AVAIL)/session_cluster.load || exit 1; \
	    cp $(TOP)/balancer_conf/session_cluster.conf $(AVAIL)/session_cluster.conf || exit 1; \
	    if [ -e $(KEY) ]; then \
	        echo "==> cluster key $(KEY) kept"; \
	    else \
	        command -v openssl >/dev/null 2>&1 || { \
	            echo "make: openssl not found: cannot make $(KEY) (Debian: ./build.sh deps)" >&2; exit 1; }; \
	        (umask 077 && openssl rand -base64 32 >$(KEY)) || { echo "make: cannot write $(KEY)" >&2; exit 1; }; \
	        chmod 600 $(KEY); \
	        echo "==> made the cluster key $(KEY) (ClusterSecretFile $(KEY)): copy this same"; \
	        echo "==>   file to every node of the cluster (mode 600), e.g. scp -p"; \
	    fi; \
	    echo "==> installed; enable with: a2enmod session_cluster && systemctl reload apache2"; \
	else \
	    echo "==> installed $$libexec/mod_session_cluster.so; add after mod_session's LoadModule:"; \
	    echo "==>   LoadModule session_cluster_module $$libexec/mod_session_cluster.so"; \
	fi

clean:
	rm -rf $(OUT) $(MOD)/.libs $(MOD)/*.lo $(MOD)/*.slo $(MOD)/*.la $(MOD)/*.o
