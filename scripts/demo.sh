#!/usr/bin/env bash
# demo.sh - pgsluice in front of a throwaway PostgreSQL 15 primary + streaming replica, configured
# with the product guide's settings, on 127.0.0.1:6432. Runs a short pgbench through it, prints how
# to connect, and waits: Ctrl-C stops pgsluice and both servers and removes every file it made.
#
# Run as root on Debian 12 after `make deps build` (or just `make demo`).
# Env: DEMO_PORT (default 6432), SL_BIN (default build/pgsluice), DEMO_POOLER=pgbouncer (run Debian's
#      PgBouncer instead, to compare), DEMO_NO_WAIT=1 (clean up and exit after the benchmark).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${DEMO_PORT:-6432}
POOLER=${DEMO_POOLER:-pgsluice}
PY=/usr/bin/python3
PGBIN=/usr/lib/postgresql/15/bin
if [[ $POOLER == pgbouncer ]]; then BIN=/usr/sbin/pgbouncer; else BIN=${SL_BIN:-$ROOT/build/pgsluice}; fi

die() { echo "demo: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (the PostgreSQL servers run as the postgres OS user)"
[[ -x $BIN ]] || die "$BIN not found: run 'make build' first (or 'make demo')"
[[ -x $PGBIN/pgbench ]] || die "PostgreSQL 15 is not installed: run 'make deps' first"
port_busy() {
  if command -v ss >/dev/null; then [[ -n $(ss -Htln "sport = :$1") ]]; else (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; fi
}
port_busy "$PORT" && die "port $PORT on 127.0.0.1 is already in use (another pooler?): stop it or set DEMO_PORT"

DIR=$(mktemp -d /tmp/pgsluice-demo.XXXXXX)
chmod 755 "$DIR"
POOLER_PID=
cleaned=0
cleanup() {
  ((cleaned)) && return
  cleaned=1
  trap - INT TERM
  echo
  echo "demo: stopping..."
  if [[ -n $POOLER_PID ]] && kill -0 "$POOLER_PID" 2>/dev/null; then
    kill -INT "$POOLER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$POOLER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$POOLER_PID" 2>/dev/null || true
    sleep 0.2
    kill -KILL "$POOLER_PID" 2>/dev/null || true
  fi
  PYTHONPATH=$ROOT/tests $PY -m harness cluster down --dir "$DIR/pg" >/dev/null 2>&1 || true
  rm -rf "$DIR"
  echo "demo: stopped $POOLER and both PostgreSQL servers, removed $DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "demo: starting a PostgreSQL 15 primary and a streaming replica in $DIR/pg ..."
VARS=$(PYTHONPATH=$ROOT/tests $PY -m harness cluster up --dir "$DIR/pg") || die "could not start PostgreSQL"
eval "$VARS"

INI=$DIR/pgsluice.ini
USERLIST=$DIR/userlist.txt
LOG=$DIR/$POOLER.log
cat >"$USERLIST" <<USERS
"postgres" "$PG_SUPERUSER_SECRET"
"app" "$APP_SECRET"
USERS
cat >"$INI" <<INI
;; pgsluice demo: the product guide's settings (pool sizing, timeouts, tuning blocks verbatim)
[databases]
sav3 = host=127.0.0.1 port=$PRIMARY_PORT dbname=sav3
sav3_replica = host=127.0.0.1 port=$REPLICA_PORT dbname=sav3

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir = $DIR
auth_type = scram-sha-256
auth_file = $USERLIST
admin_users = postgres
stats_users = postgres

pool_mode = transaction
max_client_conn = 200          # Maximum client connections
default_pool_size = 25         # Connections per database/user
min_pool_size = 5              # Always-open connections
reserve_pool_size = 5          # Emergency connection reserve
max_db_connections = 50        # Total backend connections

server_lifetime = 3600         # Recycle connections hourly
server_idle_timeout = 600      # Close idle connections after 10min
query_wait_timeout = 120       # Queue timeout for new queries
client_idle_timeout = 0        # No client timeout (handled by app)

tcp_keepalive = 1              # Enable TCP keepalive
server_reset_query = DISCARD ALL  # Clean connection state
ignore_startup_parameters = extra_float_digits,search_path
INI
if [[ $POOLER == pgbouncer ]]; then
  # PgBouncer 1.18 rejects trailing comments and refuses root: strip them, run as postgres.
  sed -i -E 's/[[:space:]]+#.*$//' "$INI"
  chown -R postgres: "$DIR"/*.ini "$DIR"/*.txt
  RUN=(setpriv --reuid=postgres --regid=postgres --clear-groups "$BIN" "$INI")
  chown postgres "$DIR"
else
  RUN=("$BIN" "$INI")
fi

echo "demo: starting $POOLER on 127.0.0.1:$PORT ..."
"${RUN[@]}" >"$LOG" 2>&1 </dev/null &
POOLER_PID=$!
for _ in $(seq 100); do
  kill -0 "$POOLER_PID" 2>/dev/null || { tail -n 20 "$LOG" >&2; die "$POOLER exited at start (log above)"; }
  port_busy "$PORT" && break
  sleep 0.1
done
port_busy "$PORT" || { tail -n 20 "$LOG" >&2; die "$POOLER does not listen on 127.0.0.1:$PORT"; }

export PGPASSWORD=$PG_SUPERUSER_PASSWORD
echo "demo: pgbench -i -s 1 through $POOLER ..."
"$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s 1 -q sav3 >"$DIR/pgbench-init.log" 2>&1 \
  || { cat "$DIR/pgbench-init.log" >&2; tail -n 20 "$LOG" >&2; die "pgbench -i failed"; }
echo "demo: pgbench -c 10 -j 2 -T 5 -M extended through $POOLER ..."
"$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 10 -j 2 -T 5 -M extended -n sav3 >"$DIR/pgbench.log" 2>&1 \
  || { cat "$DIR/pgbench.log" >&2; tail -n 20 "$LOG" >&2; die "pgbench failed"; }
grep -E "^(number of (transactions actually processed|failed transactions)|latency average|tps)" "$DIR/pgbench.log" | sed 's/^/  /'

PW=$PG_SUPERUSER_PASSWORD
cat <<EOF2

================================================================================
 $POOLER is running on 127.0.0.1:$PORT (pid $POOLER_PID) in front of PostgreSQL 15:
 primary on port $PRIMARY_PORT, streaming replica on port $REPLICA_PORT.

 Primary (read/write):
   psql "postgresql://postgres:$PW@127.0.0.1:$PORT/sav3"
 Replica (read-only):
   psql "postgresql://postgres:$PW@127.0.0.1:$PORT/sav3_replica"
 Admin console:
   PGPASSWORD=$PW psql -h 127.0.0.1 -p $PORT -U postgres pgbouncer -c "SHOW POOLS;"
 Health and metrics (pgsluice's own HTTP endpoint):
   curl http://127.0.0.1:8081/health      curl http://127.0.0.1:8081/metrics

 Config: $INI
 Log:    $LOG

 Ctrl-C to stop (stops $POOLER and both PostgreSQL servers, removes $DIR).
================================================================================
EOF2

if [[ -n ${DEMO_NO_WAIT:-} ]]; then
  exit 0
fi
set +e
wait "$POOLER_PID"
rc=$?
set -e
echo "demo: $POOLER exited (code $rc); log tail:" >&2
tail -n 20 "$LOG" >&2
exit "$rc"
