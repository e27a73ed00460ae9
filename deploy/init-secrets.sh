#!/usr/bin/env bash
# init-secrets.sh - create the Docker secrets docker-compose.yml reads (deploy/secrets/*.txt): random
# passwords for the PostgreSQL superuser, the application user and replication. Existing files are kept, so
# running it again changes nothing. The files never go into git (deploy/secrets/.gitignore).
# Compose mounts a file secret with its host mode and owner, and the containers read them as their own
# non-root users (postgres, pgsluice): so the files are 0644 and the directory that holds them is 0700,
# which keeps other users of the host out.
set -euo pipefail
dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/secrets
mkdir -p "$dir"
chmod 700 "$dir"
umask 022
for name in postgres_password sav3_password replication_password; do
  f=$dir/$name.txt
  if [[ -s $f ]]; then
    echo "kept    $f"
  else
    openssl rand -base64 24 | tr -d '\n/+=' >"$f"
    echo "created $f"
  fi
done
