#!/bin/bash
# primary-init.sh - runs once in the PostgreSQL primary container when its data directory is created
# (/docker-entrypoint-initdb.d): the application role SAV3_USER, the replication role for db-replica, and
# the pg_hba line that lets the replica stream. Passwords come from Docker secrets (*_FILE variables).
set -euo pipefail

read_secret() { # read_secret VAR: $VAR, else the file named by $VAR_FILE
  local var=$1 file_var="${1}_FILE"
  if [[ -n ${!var:-} ]]; then printf '%s' "${!var}"; return; fi
  [[ -n ${!file_var:-} && -r ${!file_var} ]] || { echo "primary-init: set $var or $file_var" >&2; exit 1; }
  head -n 1 "${!file_var}" | tr -d '\r\n'
}

SAV3_USER=${SAV3_USER:?set SAV3_USER}
sav3_password=$(read_secret SAV3_PASSWORD)
replication_password=$(read_secret REPLICATION_PASSWORD)
REPLICATION_USER=${REPLICATION_USER:-replicator}

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v app_user="$SAV3_USER" -v app_password="$sav3_password" \
     -v repl_user="$REPLICATION_USER" -v repl_password="$replication_password" \
     -v dbname="$POSTGRES_DB" <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
GRANT ALL PRIVILEGES ON DATABASE :"dbname" TO :"app_user";
GRANT ALL ON SCHEMA public TO :"app_user";
CREATE ROLE :"repl_user" REPLICATION LOGIN PASSWORD :'repl_password';
SQL

echo "host replication $REPLICATION_USER all scram-sha-256" >>"$PGDATA/pg_hba.conf"
