#!/usr/bin/env bash
# check-health.sh - pgsluice health check: reads the HTTP endpoint's /health and the admin console's
# SHOW POOLS, prints a summary (pools, utilization, maxwait, backend reachability) and exits
# 0 healthy, 1 degraded, 2 unhealthy (or the endpoint cannot be reached), 3 usage error.
#
#   scripts/check-health.sh [--url URL] [--token TOKEN] [--host HOST] [--port PORT] [--user USER] [--no-admin]
#
# Defaults (also from the environment): PGSLUICE_HTTP_URL=http://127.0.0.1:8081, PGSLUICE_HTTP_TOKEN
# (bearer token, http_token), PGSLUICE_HOST=127.0.0.1, PGSLUICE_PORT=6432, PGSLUICE_ADMIN_USER=postgres;
# psql takes the password from PGPASSWORD or ~/.pgpass. Needs curl and jq; psql is optional.
set -uo pipefail

URL=${PGSLUICE_HTTP_URL:-http://127.0.0.1:8081}
TOKEN=${PGSLUICE_HTTP_TOKEN:-}
HOST=${PGSLUICE_HOST:-127.0.0.1}
PORT=${PGSLUICE_PORT:-6432}
ADMIN_USER=${PGSLUICE_ADMIN_USER:-postgres}
ADMIN=1

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    --url) URL=${2:?--url needs a value}; shift 2 ;;
    --token) TOKEN=${2:?--token needs a value}; shift 2 ;;
    --host) HOST=${2:?--host needs a value}; shift 2 ;;
    --port) PORT=${2:?--port needs a value}; shift 2 ;;
    --user) ADMIN_USER=${2:?--user needs a value}; shift 2 ;;
    --no-admin) ADMIN=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "check-health.sh: unknown argument: $1" >&2; usage >&2; exit 3 ;;
  esac
done

for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "check-health.sh: $tool is required" >&2; exit 3; }
done

BODY=$(mktemp)
trap 'rm -f "$BODY" "$BODY.err"' EXIT

# GET $1 from the endpoint into $BODY; echoes the HTTP status (000 when it cannot connect).
fetch() {
  local auth=()
  [[ -n "$TOKEN" ]] && auth=(-H "Authorization: Bearer $TOKEN")
  curl -sS -m 10 -o "$BODY" -w '%{http_code}' "${auth[@]}" "${URL%/}$1" 2>"$BODY.err" || true
}

print_summary() {
  jq -r '"pgsluice is \(.status | ascii_upcase) at \(.timestamp) (state: \(.state))",
         "  pools \(.pools), clients \(.clients), servers \(.servers), databases \(.databases)"' "$1"
  jq -r 'if (.messages | length) > 0 then "", "Messages:", (.messages[] | "  - \(.)") else empty end' "$1"
  echo
  echo "Pools:"
  jq -r '["DATABASE","USER","MODE","CL_ACTIVE","CL_WAITING","SV_ACTIVE","SV_IDLE","SV_LOGIN","SIZE","UTIL","MAXWAIT","STATUS"],
         (.pool_details[] | [.database, .user, .pool_mode, .cl_active, .cl_waiting, .sv_active, .sv_idle + .sv_used,
           .sv_login, .pool_size, "\(.utilization * 100 | round)%", "\(.maxwait_seconds * 10 | round / 10)s", .status])
         | @tsv' "$1" | column -t -s $'\t' | sed 's/^/  /'
  jq -e '.pool_details | length == 0' "$1" >/dev/null && echo "  (no pools yet: pools appear when clients log in)"
  echo
  echo "Backends:"
  jq -r '.backends[] | [.database, "\(.host):\(.port)", (if .reachable then "reachable" else "UNREACHABLE: \(.error)" end)]
         | @tsv' "$1" | column -t -s $'\t' | sed 's/^/  /'
}

# SHOW POOLS from the admin console; prints why when it is not available (it may answer an error).
print_admin() {
  echo
  echo "Admin console (SHOW POOLS on $HOST:$PORT as $ADMIN_USER):"
  if ! command -v psql >/dev/null; then
    echo "  not checked: psql is not installed"
    return
  fi
  local out
  if out=$(PGCONNECT_TIMEOUT=5 psql -X -h "$HOST" -p "$PORT" -U "$ADMIN_USER" -d pgbouncer -w -c "SHOW POOLS;" 2>&1); then
    sed 's/^/  /' <<<"$out"
  else
    echo "  not available: $(head -n 1 <<<"$out")"
  fi
}

status=$(fetch /health)
if [[ "$status" != 200 && "$status" != 503 ]]; then
  if [[ "$status" == 000 ]]; then why=$(head -n 1 "$BODY.err"); else why="HTTP $status: $(head -c 200 "$BODY")"; fi
  echo "pgsluice is UNHEALTHY: cannot read ${URL%/}/health ($why)"
  echo "  (is pgsluice running, with http_port set and the right --token?)"
  ((ADMIN)) && print_admin
  exit 2
fi
print_summary "$BODY"
((ADMIN)) && print_admin
verdict=$(jq -r .status "$BODY")
case "$verdict" in
  healthy) exit 0 ;;
  degraded) exit 1 ;;
  *) exit 2 ;;
esac
