#!/bin/bash
# replica-entrypoint.sh - the streaming replica container: on first start, clone the primary with
# pg_basebackup -R (which also writes primary_conninfo and standby.signal), then run PostgreSQL as a hot
# standby. Runs as root in the official postgres image and drops to the postgres user with gosu.
set -euo pipefail

PGDATA=${PGDATA:-/var/lib/postgresql/data}
PRIMARY_HOST=${PRIMARY_HOST:-db-primary}
PRIMARY_PORT=${PRIMARY_PORT:-5432}
REPLICATION_USER=${REPLICATION_USER:-replicator}

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  if [[ -n ${REPLICATION_PASSWORD_FILE:-} ]]; then
    PGPASSWORD=$(head -n 1 "$REPLICATION_PASSWORD_FILE" | tr -d '\r\n')
  else
    PGPASSWORD=${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD or REPLICATION_PASSWORD_FILE}
  fi
  export PGPASSWORD
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  until gosu postgres pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT"; do
    echo "replica: waiting for $PRIMARY_HOST:$PRIMARY_PORT"
    sleep 1
  done
  gosu postgres pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPLICATION_USER" -D "$PGDATA" \
    -R -X stream -c fast -w
  unset PGPASSWORD
fi
exec gosu postgres postgres -c hot_standby=on
