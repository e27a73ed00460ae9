#!/usr/bin/env bash
# install-deps.sh - install every Debian package needed to build and test pgsluice.
# Idempotent: installs only what is missing (one `apt-get update` first, only when installing).
# Must run as root when something is missing. Quiet unless it installs something.
# --bench: also what `make bench` needs for its instruction counts and profiles (valgrind, perf).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PKGS=(
  # build
  build-essential gcc clang meson ninja-build pkg-config
  libuv1-dev libssl-dev libcmocka-dev libmicrohttpd-dev
  # the pam and ldap authentication methods (src/auth/pam.c, ldap.c; config/hba.c parses ldapurl)
  libpam0g-dev libldap-dev
  # libpq: pgsluice tune / userlist talk to PostgreSQL and the admin console; libsystemd: sd_notify
  libpq-dev libsystemd-dev
  # the openssl command: tests/unit/tls/make-certs.sh makes the TLS unit tests' certificates
  openssl
  # clang's sanitizer runtimes and libFuzzer (TSan and `make fuzz` build with clang: libclang_rt.fuzzer)
  libclang-rt-14-dev
  # servers and clients used by the tests and the demo
  postgresql-15 postgresql-client-15 pgbouncer procps iproute2 util-linux
  python3 python3-pytest python3-pytest-timeout python3-psycopg python3-asyncpg
  # test_pam (a throwaway OS user checked by pam_unix) and test_ldap (a throwaway slapd with a test CA)
  passwd libpam-modules slapd
  # the client matrix (docs/CLIENTS.md): psycopg2 besides psycopg 3 and asyncpg
  python3-psycopg2
  # monitoring: promtool (checks the alert rules and /metrics), curl and jq (scripts/check-health.sh)
  prometheus curl jq
  # deployment checks (tests/integration/test_deploy.py): docker-compose validates deploy/docker-compose.yml
  # without an engine, systemd-analyze verifies the unit, groff/man render the man pages
  docker-compose python3-yaml systemd groff-base man-db binutils
  # several instances behind HAProxy (deploy/haproxy.cfg, tests/integration/test_ha.py)
  haproxy
  # the benchmark's chart (bench/bench.py; `make test` runs its smoke version)
  gnuplot-nox
  # driver tests (tests/drivers, tests/integration/test_drivers.py): node-postgres and postgres.js
  # from npm (npm itself: see below), pgjdbc run as a single-file Java 17 program (needs the JDK);
  # integrations/prisma (Prisma 7, test_prisma.py) also comes from npm and needs node >= 20.19
  nodejs libpostgresql-jdbc-java default-jdk-headless
)
if [[ ${1:-} == --bench ]]; then
  PKGS+=(valgrind linux-perf)
fi

missing=()
for p in "${PKGS[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [[ "$status" == ii* ]] || missing+=("$p")
done
# NodeSource's nodejs package ships npm and conflicts with Debian's npm package: ask for the
# Debian one only when no npm command exists (Debian's own nodejs comes without it).
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps.sh: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi

echo "install-deps.sh: installing ${missing[*]}"
# Installing postgresql-15 creates Debian's 15/main cluster on port 5432. The tests never use it
# (they run their own clusters on free ports); keep it from starting where policy-rc.d allows that.
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2> >(grep -v "^debconf: " >&2)

# If the package started the default cluster, stop it: it is not ours and takes port 5432.
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters -h 2>/dev/null | while read -r ver name port status _; do
    if [[ "$status" == online* ]]; then
      pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
    fi
  done
fi
# Debian's pgbouncer package may start a system pgbouncer on 6432 (the demo's port): stop it.
if [[ -x /etc/init.d/pgbouncer ]] && service pgbouncer status >/dev/null 2>&1; then
  service pgbouncer stop >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet pgbouncer 2>/dev/null; then
  systemctl disable --now pgbouncer >/dev/null 2>&1 || true
fi
# test_ldap starts its own slapd on free ports: stop the system one the slapd package may have started.
if [[ -x /etc/init.d/slapd ]] && service slapd status >/dev/null 2>&1; then
  service slapd stop >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet slapd 2>/dev/null; then
  systemctl disable --now slapd >/dev/null 2>&1 || true
fi
# Only promtool is needed from the prometheus package: stop a Prometheus server it may have started.
if [[ -x /etc/init.d/prometheus ]] && service prometheus status >/dev/null 2>&1; then
  service prometheus stop >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet prometheus 2>/dev/null; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
echo "install-deps.sh: done"
