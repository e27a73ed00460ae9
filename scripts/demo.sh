#!/usr/bin/env bash
# demo.sh - the container stack of deploy/docker-compose.yml, run without Docker: a throwaway PostgreSQL 15
# primary and streaming replica, an auth_file written by `pgsluice userlist --from-server` (the compose
# file's one-shot job), and pgsluice with deploy/pgsluice.ini (the guide's tuned config) on 127.0.0.1:6432 with
# /health and /metrics on 127.0.0.1:8081. Runs a short pgbench through it, reads the replica through it,
# prints how to connect, and waits: Ctrl-C stops pgsluice and both servers and removes every file it made.
#
# Run as root on Debian 12 after `make deps build` (or just `make demo`).
# Env: DEMO_PORT (default 6432) and DEMO_HTTP_PORT (default 8081): when left unset and the default is taken,
#      the next free port is used (and printed); when set, the port must be free.
#      SL_BIN (default build/pgsluice), DEMO_POOLER=pgbouncer (run Debian's PgBouncer instead, to compare),
#      DEMO_NO_WAIT=1 (clean up and exit after the checks).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
POOLER=${DEMO_POOLER:-pgsluice}
PY=/usr/bin/python3
PGBIN=/usr/lib/postgresql/15/bin
SL=${SL_BIN:-$ROOT/build/pgsluice}
if [[ $POOLER == pgbouncer ]]; then BIN=/usr/sbin/pgbouncer; else BIN=$SL; fi
DEPLOY_INI=$ROOT/deploy/pgsluice.ini

die() { echo "demo: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (the PostgreSQL servers run as the postgres OS user)"
[[ -x $BIN ]] || die "$BIN not found: run 'make build' first (or 'make demo')"
[[ -x $SL ]] || die "$SL not found: run 'make build' first (it writes the auth_file)"
[[ -x $PGBIN/pgbench ]] || die "PostgreSQL 15 is not installed: run 'make deps' first"
port_busy() {
  if command -v ss >/dev/null; then [[ -n $(ss -Htln "sport = :$1") ]]; else (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; fi
}
# choose_port NAME DEFAULT [AVOID]: the port in $NAME if set (must be free), else DEFAULT, else the next free one.
choose_port() {
  local name=$1 default=$2 avoid=${3:-} p
  if [[ -n ${!name:-} ]]; then
    p=${!name}
    [[ $p =~ ^[0-9]+$ ]] && ((p >= 1 && p <= 65535)) || die "$name=$p is not a port number"
    port_busy "$p" && die "$name=$p: port $p on 127.0.0.1 is already in use: choose another or leave $name unset"
    echo "$p"
    return
  fi
  p=$default
  while port_busy "$p" || [[ $p == "$avoid" ]]; do
    ((p++))
    ((p <= default + 200)) || die "no free port from $default to $((default + 200)): set $name"
  done
  if [[ $p != "$default" ]]; then
    echo "demo: port $default is taken: using $p for $name (set $name to choose)" >&2
  fi
  echo "$p"
}
PORT=$(choose_port DEMO_PORT 6432)
HTTP_PORT=$(choose_port DEMO_HTTP_PORT 8081 "$PORT")
[[ $PORT != "$HTTP_PORT" ]] || die "DEMO_PORT and DEMO_HTTP_PORT are both $PORT"

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

# The compose file's pgsluice-config job: copy the login roles' SCRAM secrets from the primary's pg_authid.
# The superuser password comes from a file, as the job's Docker secret does.
umask 077
printf '%s\n' "$PG_SUPERUSER_PASSWORD" >"$DIR/postgres_password"
umask 022
echo "demo: pgsluice userlist --from-server (as the compose file's pgsluice-config job) ..."
PGHOST=127.0.0.1 PGPORT=$PRIMARY_PORT PGUSER=postgres PGDATABASE=postgres PGPASSWORD_FILE=$DIR/postgres_password \
  "$SL" userlist --from-server --users=postgres,app "$USERLIST" || die "pgsluice userlist failed"

# deploy/pgsluice.ini with the container's names and addresses replaced by this machine's: each
# substitution must match exactly once, so the demo fails when the deployed file changes shape.
subst() { # subst FROM TO: replace the line FROM (anchored, whole key = value) in $INI
  local n
  n=$(grep -cE "^$1\$|^$1[[:space:]]" "$INI" || true)
  [[ $n == 1 ]] || die "deploy/pgsluice.ini: expected one line matching '$1', found $n"
  sed -i -E "s|^$1([[:space:]]\|\$)|$2\\1|" "$INI"
}
cp "$DEPLOY_INI" "$INI"
subst 'sav3 = host=db-primary,db-replica port=5432' "sav3 = host=127.0.0.1,127.0.0.1 port=$PRIMARY_PORT,$REPLICA_PORT"
subst 'sav3_replica = host=db-primary,db-replica port=5432' \
  "sav3_replica = host=127.0.0.1,127.0.0.1 port=$PRIMARY_PORT,$REPLICA_PORT"
subst 'health_check_password_file = /run/secrets/postgres_password' "health_check_password_file = $DIR/postgres_password"
subst 'listen_addr = \*' 'listen_addr = 127.0.0.1'
subst 'listen_port = 6432' "listen_port = $PORT"
subst 'http_listen_addr = \*' 'http_listen_addr = 127.0.0.1'
subst 'http_port = 8081' "http_port = $HTTP_PORT"
subst 'unix_socket_dir = /run/pgsluice' "unix_socket_dir = $DIR"
subst 'pidfile = /run/pgsluice/pgsluice.pid' "pidfile = $DIR/pgsluice.pid"
subst 'auth_file = /etc/pgsluice/auth/userlist.txt' "auth_file = $USERLIST"

if [[ $POOLER == pgbouncer ]]; then
  # PgBouncer 1.18 rejects trailing comments, has no HTTP endpoint and refuses root: adapt, run as postgres.
  # ... nor host lists with roles (1.18 has one host per database): the primary, and the replica
  sed -i -E 's/[[:space:]]+#.*$//; /^http_/d; /^health_check_/d' "$INI"
  sed -i -E "s/^(sav3 = ).*/\1host=127.0.0.1 port=$PRIMARY_PORT dbname=sav3/" "$INI"
  sed -i -E "s/^(sav3_replica = ).*/\1host=127.0.0.1 port=$REPLICA_PORT dbname=sav3/" "$INI"
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

in_recovery=$("$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PORT" -U postgres -d sav3_replica -c "SELECT pg_is_in_recovery()") \
  || die "reading the replica through $POOLER failed"
echo "demo: sav3_replica through $POOLER: pg_is_in_recovery = $in_recovery"
[[ $in_recovery == t ]] || die "sav3_replica does not reach the streaming replica"
app_user=$("$PGBIN/psql" -X -At "postgresql://app:apppw@127.0.0.1:$PORT/sav3" -c "SELECT current_user") \
  || die "the application user cannot log in through $POOLER with the generated auth_file"
echo "demo: SCRAM login as $app_user through $POOLER with the auth_file from pgsluice userlist: ok"
if [[ $POOLER == pgsluice ]]; then
  health=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/health") || die "GET http://127.0.0.1:$HTTP_PORT/health failed"
  echo "demo: GET /health on 127.0.0.1:$HTTP_PORT: $health"
fi

PW=$PG_SUPERUSER_PASSWORD
cat <<EOF2

================================================================================
 $POOLER is running on 127.0.0.1:$PORT (pid $POOLER_PID) in front of PostgreSQL 15:
 primary on port $PRIMARY_PORT, streaming replica on port $REPLICA_PORT.
 Ports: DEMO_PORT=$PORT DEMO_HTTP_PORT=$HTTP_PORT

 Primary (read/write):
   psql "postgresql://postgres:$PW@127.0.0.1:$PORT/sav3"
 Replica (read-only):
   psql "postgresql://postgres:$PW@127.0.0.1:$PORT/sav3_replica"
 Admin console (SHOW BACKENDS: each host's role, health and replication lag):
   PGPASSWORD=$PW psql -h 127.0.0.1 -p $PORT -U postgres pgbouncer -c "SHOW POOLS;"
 Health and metrics (pgsluice's own HTTP endpoint):
   curl http://127.0.0.1:$HTTP_PORT/health      curl http://127.0.0.1:$HTTP_PORT/metrics
 Size the pools for this machine (dry run; --apply writes and reloads):
   $SL tune $INI

 Config: $INI   (deploy/pgsluice.ini with local addresses)
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
