#!/bin/sh
# scale.sh - pgsluice `workers` sweep against PgBouncer with PostgreSQL, pgbench and the pooler
# pinned to separate CPU sets (bench/scale.py does the work; see bench/README.md, "Many cores").
#   bench/scale.sh            # full sweep: a quarter of the CPUs for the pooler (>= 8 CPUs to mean anything)
#   bench/scale.sh --smoke    # a few seconds: workers 1 and 2, 1-second runs (make test runs this)
# SCALE_POOLER_CPUS / SCALE_BENCH_CPUS / SCALE_PG_CPUS, SCALE_WORKERS, SCALE_CLIENTS, SCALE_SECONDS,
# SCALE_SCALE, SCALE_POOL_SIZE, SL_BIN, PGBOUNCER_BIN, SCALE_OUT override.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$here/scale.py" "$@"
