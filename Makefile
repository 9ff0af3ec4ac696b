# Sluice - build, test, run, bench, fuzz. No autotools: one Makefile.
#
#   make run     install what is missing, build, start HAProxy + agent (foreground)
#   make run-multi  the same for two edges sharing a local S3 bucket (examples/multi-edge-s3)
#   make test    install what is missing, build, run every suite (what CI runs)
#   make bench   benchmark against nginx proxy_cache, Varnish and HAProxy's cache behind the same HAProxy (tests/bench)
#   make fuzz    build the fuzz targets and run each for a while
#   make soak    mixed load under scheduled faults for SOAK_S seconds (default 600)
#   make memcheck  integration tests with the agent under valgrind memcheck
#
# Build variants live side by side under build/:
#   build/release  -O2, what `make run` and `make bench` use
#   build/asan     -O1 + AddressSanitizer/UBSan + the fault-injection seam
#                  (SLUICE_TESTING), what the test suites use
#   build/fuzz     clang libFuzzer targets
#   build/memcheck -O1 -g + the fault-injection seam, no sanitizers: what
#                  `make memcheck` runs under valgrind (ASan and valgrind
#                  cannot share a process)

SHELL := /bin/bash
CC ?= cc

APT_PKGS := build-essential clang libclang-rt-14-dev libev-dev libcurl4-openssl-dev libssl-dev \
            libcmocka-dev libhttp-parser-dev libyajl-dev zlib1g-dev haproxy curl python3 ca-certificates
# The e2e suite's Maven: mvn, javac for the test jars, and the plugin that
# `mvn dependency:get` runs (junit4: that plugin's POM names junit 4.x).
# cargo is not here: Debian's 0.66 has no sparse registries (tests/e2e/test_cargo.py
# skips without a cargo >= 1.68, e.g. rustup's in ~/.cargo/bin).
MAVEN_PKGS := maven default-jdk-headless libmaven-dependency-plugin-java junit4
# nodejs: the S3 tier's store (tests/lib/s3server.py: s3rver and its front)
# and the npm clients; npm comes with NodeSource's nodejs (Debian's is the
# separate package npm).
TEST_PKGS := $(APT_PKGS) valgrind iproute2 procps util-linux python3-venv prometheus nodejs \
             golang-go golang-golang-x-mod-dev $(MAVEN_PKGS) chromium

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wformat=2 -Wno-format-nonliteral
GEN_DIR := build/gen
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -g $(WARN) -Iagent/src -I$(GEN_DIR)
LIBS := -lev -lcurl -lcrypto -lz -lhttp_parser -lyajl -lpthread -lm

AGENT_SRC := $(wildcard agent/src/*/*.c)
AGENT_HDR := $(wildcard agent/src/*.h agent/src/*/*.h)
ifneq ($(words $(notdir $(AGENT_SRC))),$(words $(sort $(notdir $(AGENT_SRC)))))
$(error two agent sources share a file name: libsluice.a keeps base names only)
endif
UNIT_SRC := $(wildcard tests/unit/test_*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

REL_DIR := build/release
ASAN_DIR := build/asan
FUZZ_DIR := build/fuzz
MEM_DIR := build/memcheck

REL_CFLAGS := $(BASE_CFLAGS) -O2
ASAN_CFLAGS := $(BASE_CFLAGS) -O1 -fno-omit-frame-pointer -DSLUICE_TESTING \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined
MEM_CFLAGS := $(BASE_CFLAGS) -O1 -fno-omit-frame-pointer -DSLUICE_TESTING

.PHONY: all release asan memcheck-build memcheck unit unit-build fuzz-build fuzz fuzz-replay test soak run run-multi bench deps test-deps clean

all: release

# ---------------------------------------------------------------- dependencies
# Install only what is missing, so a machine that has everything pays nothing.
deps:
	@./tests/lib/ensure-packages $(APT_PKGS)

test-deps:
	@./tests/lib/ensure-packages $(TEST_PKGS)

# ------------------------------------------------------------------- variants
REL_OBJ := $(patsubst agent/src/%.c,$(REL_DIR)/obj/%.o,$(AGENT_SRC))
ASAN_OBJ := $(patsubst agent/src/%.c,$(ASAN_DIR)/obj/%.o,$(AGENT_SRC))
MEM_OBJ := $(patsubst agent/src/%.c,$(MEM_DIR)/obj/%.o,$(AGENT_SRC))

# -MMD -MP: every object (and test binary) also writes the list of headers
# it included, so changing a header rebuilds exactly what includes it.
DEPFLAGS = -MMD -MP

$(REL_DIR)/obj/%.o: agent/src/%.c
	@mkdir -p $(@D)
	@echo "  CC $@"; $(CC) $(REL_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(ASAN_DIR)/obj/%.o: agent/src/%.c
	@mkdir -p $(@D)
	@echo "  CC $@"; $(CC) $(ASAN_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(MEM_DIR)/obj/%.o: agent/src/%.c
	@mkdir -p $(@D)
	@echo "  CC $@"; $(CC) $(MEM_CFLAGS) $(DEPFLAGS) -c $< -o $@

# Made afresh each time: `ar r` never drops a member whose source is gone.
$(REL_DIR)/libsluice.a: $(REL_OBJ)
	@rm -f $@; ar rcs $@ $^

$(ASAN_DIR)/libsluice.a: $(ASAN_OBJ)
	@rm -f $@; ar rcs $@ $^

$(REL_DIR)/sluice: agent/src/main.c $(REL_DIR)/libsluice.a
	@echo "  CC $@"; $(CC) $(REL_CFLAGS) $(DEPFLAGS) -MF $@.d agent/src/main.c $(REL_DIR)/libsluice.a $(LIBS) -o $@

$(ASAN_DIR)/sluice: agent/src/main.c $(ASAN_DIR)/libsluice.a
	@echo "  CC $@"; $(CC) $(ASAN_CFLAGS) $(DEPFLAGS) -MF $@.d agent/src/main.c $(ASAN_DIR)/libsluice.a $(LIBS) -o $@

$(MEM_DIR)/libsluice.a: $(MEM_OBJ)
	@rm -f $@; ar rcs $@ $^

$(MEM_DIR)/sluice: agent/src/main.c $(MEM_DIR)/libsluice.a
	@echo "  CC $@"; $(CC) $(MEM_CFLAGS) $(DEPFLAGS) -MF $@.d agent/src/main.c $(MEM_DIR)/libsluice.a $(LIBS) -o $@

release: $(REL_DIR)/sluice
asan: $(ASAN_DIR)/sluice

# The admin status page is an HTML file in the tree, built in as a C string
# literal (one "line\n" per line) that admin_status.c includes.
STATUS_PAGE := $(GEN_DIR)/status_page.inc
$(STATUS_PAGE): agent/src/serve/status_page.html
	@mkdir -p $(@D)
	@echo "  GEN $@"; sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $< > $@.tmp && mv $@.tmp $@
$(REL_DIR)/obj/serve/admin_status.o $(ASAN_DIR)/obj/serve/admin_status.o $(MEM_DIR)/obj/serve/admin_status.o: $(STATUS_PAGE)

# --------------------------------------------------------------- unit tests
UNIT_BIN := $(patsubst tests/unit/%.c,$(ASAN_DIR)/unit/%,$(UNIT_SRC))

$(ASAN_DIR)/unit/%: tests/unit/%.c $(ASAN_DIR)/libsluice.a
	@mkdir -p $(@D)
	@echo "  CC $@"; $(CC) $(ASAN_CFLAGS) $(DEPFLAGS) -MF $@.d $< $(ASAN_DIR)/libsluice.a $(LIBS) -lcmocka -o $@

unit-build: $(UNIT_BIN)

unit: unit-build
	@./tests/run-suites unit

# ----------------------------------------------------------------------- fuzz
# libFuzzer targets; `make test` only checks that they build and replays
# their seed corpus, `make fuzz` runs a campaign (tests/fuzz/campaign): each
# target in turn for FUZZ_SECONDS, then a table of executions, coverage and
# crashers. FUZZ_MERGE=1 merges what it found into tests/fuzz/corpus,
# minimised. On a shared machine: nice -n 10 make fuzz FUZZ_SECONDS=120.
FUZZ_SECONDS ?= 300
FUZZ_MERGE ?= 0
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(FUZZ_SRC))
# UBSan does not recover: a report is a crash libFuzzer keeps an input for.
FUZZ_CFLAGS := $(BASE_CFLAGS) -O1 -fno-omit-frame-pointer -DSLUICE_TESTING \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
# The agent is instrumented once (-fsanitize=fuzzer on -c adds coverage
# only, no main) into build/fuzz/libsluice.a, which every target links.
FUZZ_OBJ := $(patsubst agent/src/%.c,$(FUZZ_DIR)/obj/%.o,$(AGENT_SRC))

$(FUZZ_DIR)/obj/%.o: agent/src/%.c
	@mkdir -p $(@D)
	@echo "  CC $@"; clang $(FUZZ_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(FUZZ_DIR)/obj/serve/admin_status.o: $(STATUS_PAGE)

$(FUZZ_DIR)/libsluice.a: $(FUZZ_OBJ)
	@rm -f $@; ar rcs $@ $^

$(FUZZ_DIR)/%: tests/fuzz/%.c $(FUZZ_DIR)/libsluice.a
	@mkdir -p $(@D)
	@echo "  FUZZ $@"; clang $(FUZZ_CFLAGS) $(DEPFLAGS) -MF $@.d $< $(FUZZ_DIR)/libsluice.a $(LIBS) -o $@

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_MERGE=$(FUZZ_MERGE) ./tests/fuzz/campaign

fuzz-replay: fuzz-build
	@./tests/run-suites fuzz

# ------------------------------------------------------------------ memcheck
# Integration tests with the agent under valgrind memcheck (tests/memcheck/run):
# no invalid access, no definite or indirect leak. `make memcheck` runs the
# representative subset (MEMCHECK_SET=full), `make test` a small one.
MEMCHECK_SET ?= full
memcheck-build: $(MEM_DIR)/sluice

memcheck: test-deps
	@$(MAKE) --no-print-directory memcheck-build
	@./tests/memcheck/run $(MEMCHECK_SET)

# ---------------------------------------------------------------- test / run
# Every suite, listed by `tests/run-suites --list`: unit, fuzz (corpus
# replay), lib, integration, contract, e2e, soak (60 s), memcheck.
test: test-deps
	@$(MAKE) --no-print-directory asan release memcheck-build unit-build fuzz-build
	@./tests/run-suites

# The soak (docs/soak.md): every route under mixed load through the real
# edge with an S3 L2 while faults are injected on a schedule; then the
# failure contract is checked and a table printed. `make test` runs a
# 60-second one (the soak suite); this is the long one.
SOAK_S ?= 600
soak: test-deps
	@$(MAKE) --no-print-directory asan
	@SOAK_S=$(SOAK_S) ./tests/soak/run

run: deps
	@$(MAKE) --no-print-directory release
	@exec ./haproxy/sluice-edge

# Two edges sharing one S3 bucket as their L2, with the S3 store (s3rver
# behind a SigV4-checking front, needs node and npm) and a front HAProxy
# hashing paths over them: examples/multi-edge-s3/README.md.
run-multi: deps
	@./tests/lib/ensure-packages nodejs
	@$(MAKE) --no-print-directory release
	@exec ./examples/multi-edge-s3/run-multi

bench: deps
	@$(MAKE) --no-print-directory release
	@./tests/bench/run

clean:
	rm -rf build

# The header lists written by -MMD (absent before the first build).
-include $(shell find build -name '*.d' 2>/dev/null)
