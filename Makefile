# Makefile - the top-level commands for pgsluice.
#
#   make build   meson setup build (if needed) + ninja -C build
#   make deps    install the Debian packages needed to build and test (scripts/install-deps.sh, root)
#   make test    deps + build + unit tests (meson test) + driver-deps + the integration suite (pytest), run twice:
#                the full suite with SL_WORKERS=4, then the quick `core` subset (-m core) with
#                SL_WORKERS=1, so both the multi-worker and the single-worker pooler are covered
#                while `make test` stays a few minutes long. The full pass rewrites docs/CLIENTS.md
#                (the client matrix) from its results: commit it when it changed.
#   make demo    deps + build + scripts/demo.sh: the docker-compose stack without Docker (primary + replica +
#                pgsluice userlist + pgsluice on 127.0.0.1:6432, HTTP on 8081; DEMO_PORT / DEMO_HTTP_PORT move
#                them, and free ports are picked when the defaults are taken)
#   make asan    build-asan (ASan+UBSan, gcc), unit + integration tests against it (halt on the
#                first error, leak detection on; the suite fails on any sanitizer report in a log)
#   make tsan    build-tsan (TSan, clang), unit tests + the core integration subset with SL_WORKERS=4
#   make fuzz    build-fuzz (clang, libFuzzer, ASan+UBSan): replays each fuzz target's seeds and
#                regression inputs, then fuzzes each target for FUZZ_SECONDS (default 60) on a copy of
#                its seed corpus (scripts/fuzz.sh; FUZZ_TARGETS="startup config" picks some); fails on
#                any finding, keeping the input in build-fuzz/fuzz-work/<target>/ (tests/fuzz/README.md)
#   make test-pgbouncer   the integration suite against Debian's PgBouncer (validates the tests)
#   make bench   build-bench (release) + bench/bench.py: pgsluice vs PgBouncer vs direct PostgreSQL,
#                all scenarios (~15-20 min); writes bench/results/latest.md (see bench/README.md).
#                BENCH_SECONDS, BENCH_ROUNDS, BENCH_SCENARIOS, ... override (bench/bench.py --help)
#   make bench-smoke  the 5-second version (1 round, 2 s runs, scenarios 1-2, all three targets)
#                against build/pgsluice; `make test` runs it last, so the benchmark cannot rot
#   make driver-deps  npm ci in tests/drivers (postgres.js, node-postgres for test_drivers.py) and in
#                integrations/prisma (Prisma 7 for test_prisma.py, plus `prisma generate`), each only
#                when its package-lock.json (or the Prisma schema) changed since the last install
#   make prisma-deps  only the integrations/prisma half of driver-deps
#   make bench-scale  build-bench + bench/scale.sh: pgsluice workers 1..N against PgBouncer with PostgreSQL,
#                pgbench and the pooler pinned to separate CPU sets (for machines with >= 8 CPUs; see bench/README.md)
#   make soak    build + bench/soak.py: 30 minutes (SOAK_MINUTES) of mixed load, reloads and a server restart;
#                RSS, fds and threads must stay flat (bench/results/soak.md); not part of `make test`
#   make clean   remove build dirs and caches
#
# Variables: POOLER (pgsluice|pgbouncer), PYTEST_ARGS (e.g. PYTEST_ARGS="-x -k timezone"),
# FUZZ_SECONDS, FUZZ_TARGETS.
# The integration suite must run with Debian's /usr/bin/python3 (psycopg, asyncpg, pytest).

SHELL := /bin/bash
PY := /usr/bin/python3
PYTEST := $(PY) -m pytest
PYTEST_ARGS ?=
POOLER ?= pgsluice
ROOT := $(abspath .)
BUILD := build
ASAN_BUILD := build-asan
TSAN_BUILD := build-tsan
BENCH_BUILD := build-bench
FUZZ_BUILD := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=

ASAN_ENV := ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0:print_summary=1 \
            UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:print_summary=1 \
            LSAN_OPTIONS=print_suppressions=0
TSAN_ENV := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:atexit_sleep_ms=0

# integration SUITE: $(call integration,<build dir>)
define integration
	POOLER=$(POOLER) SL_BIN=$(ROOT)/$(1)/pgsluice SL_WORKERS=4 $(2) $(PYTEST) tests/integration $(PYTEST_ARGS)
	POOLER=$(POOLER) SL_BIN=$(ROOT)/$(1)/pgsluice SL_WORKERS=1 $(2) $(PYTEST) tests/integration -m core $(PYTEST_ARGS)
endef

.PHONY: all build deps driver-deps prisma-deps soak test unit integration demo asan tsan fuzz test-pgbouncer bench bench-smoke bench-scale clean

all: build

deps:
	@scripts/install-deps.sh

# npm writes node_modules/.package-lock.json on every install: a stamp newer than the lockfile.
DRIVERS_STAMP := tests/drivers/node_modules/.package-lock.json
$(DRIVERS_STAMP): tests/drivers/package.json tests/drivers/package-lock.json
	cd tests/drivers && npm ci --no-audit --no-fund
	touch $@

# integrations/prisma: npm ci, then the generated client (src/generated/prisma, not committed).
# CHECKPOINT_DISABLE: no update check from Prisma's CLI (this machine may be offline).
PRISMA_DIR := integrations/prisma
PRISMA_STAMP := $(PRISMA_DIR)/node_modules/.package-lock.json
PRISMA_CLIENT := $(PRISMA_DIR)/src/generated/prisma/client.ts
$(PRISMA_STAMP): $(PRISMA_DIR)/package.json $(PRISMA_DIR)/package-lock.json
	cd $(PRISMA_DIR) && npm ci --no-audit --no-fund
	touch $@
$(PRISMA_CLIENT): $(PRISMA_STAMP) $(PRISMA_DIR)/prisma/schema.prisma $(PRISMA_DIR)/prisma.config.ts
	cd $(PRISMA_DIR) && CHECKPOINT_DISABLE=1 npm run --silent db:generate
	touch $@

prisma-deps: $(PRISMA_CLIENT)

driver-deps: $(DRIVERS_STAMP) $(PRISMA_CLIENT)

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

unit: build
	meson test -C $(BUILD) --print-errorlogs

integration: build driver-deps
	$(call integration,$(BUILD))

test: deps
	$(MAKE) --no-print-directory build
	meson test -C $(BUILD) --print-errorlogs
	$(MAKE) --no-print-directory driver-deps
	$(call integration,$(BUILD))
	$(MAKE) --no-print-directory bench-smoke

test-pgbouncer: deps
	POOLER=pgbouncer $(PYTEST) tests/integration $(PYTEST_ARGS)

demo: deps
	$(MAKE) --no-print-directory build
	scripts/demo.sh

bench:
	@scripts/install-deps.sh --bench
	@test -f $(BENCH_BUILD)/build.ninja || meson setup $(BENCH_BUILD) --buildtype=release -Ddebug=true
	ninja -C $(BENCH_BUILD) pgsluice
	SL_BIN=$(ROOT)/$(BENCH_BUILD)/pgsluice $(PY) bench/bench.py

soak: build
	$(PY) bench/soak.py

bench-smoke: build
	SL_BIN=$(ROOT)/$(BUILD)/pgsluice BENCH_OUT=$(ROOT)/$(BUILD)/bench-smoke $(PY) bench/bench.py --smoke
	SL_BIN=$(ROOT)/$(BUILD)/pgsluice bench/scale.sh --plan

bench-scale:
	@scripts/install-deps.sh --bench
	@test -f $(BENCH_BUILD)/build.ninja || meson setup $(BENCH_BUILD) --buildtype=release -Ddebug=true
	ninja -C $(BENCH_BUILD) pgsluice
	SL_BIN=$(ROOT)/$(BENCH_BUILD)/pgsluice bench/scale.sh

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false

asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	$(MAKE) --no-print-directory driver-deps
	$(ASAN_ENV) meson test -C $(ASAN_BUILD) --print-errorlogs
	$(call integration,$(ASAN_BUILD),$(ASAN_ENV))

$(TSAN_BUILD)/build.ninja:
	CC=clang meson setup $(TSAN_BUILD) -Db_sanitize=thread -Db_lundef=false

tsan: deps $(TSAN_BUILD)/build.ninja
	ninja -C $(TSAN_BUILD)
	$(TSAN_ENV) meson test -C $(TSAN_BUILD) --print-errorlogs
	POOLER=$(POOLER) SL_BIN=$(ROOT)/$(TSAN_BUILD)/pgsluice SL_WORKERS=4 $(TSAN_ENV) $(PYTEST) tests/integration -m core $(PYTEST_ARGS)

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false

fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	$(ASAN_ENV) meson test -C $(FUZZ_BUILD) --suite fuzz --print-errorlogs
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BUILD=$(FUZZ_BUILD) scripts/fuzz.sh $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(BENCH_BUILD) $(FUZZ_BUILD) .pytest_cache
	find tests -name __pycache__ -type d -prune -exec rm -rf {} +
