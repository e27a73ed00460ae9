"""Real drivers that prepare statements by default, through a transaction-mode pool of 5
(pgsluice rewrites named protocol-level statements; see tests/integration/test_prepared.py for
psycopg 3, asyncpg, pgbench and raw-protocol cases), and node-postgres COPY with pg-copy-streams.
Each test is a row of docs/CLIENTS.md.

The programs live in tests/drivers: node scripts (postgres.js and node-postgres from npm, installed
by `npm ci` there, which `make test` runs) and a single-file Java 17 program for pgjdbc (Debian
libpostgresql-jdbc-java). Each program checks every result itself, prints one JSON summary line
and exits 1 on the first wrong result. While a test runs, the server logs every statement
(log_statement = all for role app); a failure shows those lines, the program's output and the
pooler's log.

Skipped only when a runtime is missing (node, or java with its compiler and the pgjdbc jar);
scripts/install-deps.sh installs them all. PgBouncer 1.18 cannot do named statements in
transaction mode: pgsluice_only.
"""
import json
import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.pgsluice_only

DRIVERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "drivers")
TX5 = {"pool_mode": "transaction", "default_pool_size": 5}
RUN_TIMEOUT = 120  # seconds; the programs take a few seconds each
NODE_PACKAGES = ("pg", "postgres", "pg-copy-streams")


def _node_deps_installed():
    return all(os.path.isfile(os.path.join(DRIVERS, "node_modules", p, "package.json")) for p in NODE_PACKAGES)


@pytest.fixture(scope="module")
def node():
    """Path of node, with tests/drivers/node_modules installed (npm ci when missing)."""
    exe = shutil.which("node")
    if exe is None:
        pytest.skip("node is not installed (scripts/install-deps.sh installs nodejs)")
    if not _node_deps_installed():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed and tests/drivers/node_modules is missing")
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=DRIVERS, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0 and _node_deps_installed(), \
            "npm ci in tests/drivers failed (make test runs it before the suite):\n" + r.stdout + r.stderr
    return exe


def _pgjdbc_jar():
    jar = os.environ.get("PGJDBC_JAR", "/usr/share/java/postgresql.jar")
    return jar if os.path.isfile(jar) else None


@pytest.fixture(scope="module")
def java():
    """Path of a java that can run a single source file (needs the JDK's compiler) and the jar."""
    exe = shutil.which("java")
    if exe is None or shutil.which("javac") is None:
        pytest.skip("no JDK (java + javac; scripts/install-deps.sh installs default-jdk-headless)")
    jar = _pgjdbc_jar()
    if jar is None:
        pytest.skip("pgjdbc jar not found (scripts/install-deps.sh installs libpostgresql-jdbc-java)")
    return exe, jar


@pytest.fixture
def statement_log(cluster):
    """log_statement = all for role app while the test runs; returns a function giving the server
    log lines written since the test started (the statements the pooler sent, with their names)."""
    cluster.psql("ALTER ROLE app SET log_statement = 'all'")
    logfile = cluster.primary.logfile
    start = os.path.getsize(logfile) if os.path.exists(logfile) else 0

    def since(limit=200):
        try:
            with open(logfile, "rb") as f:
                f.seek(start)
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no server log)"
        if len(lines) > limit:
            lines = ["... (%d earlier lines)" % (len(lines) - limit)] + lines[-limit:]
        return "\n".join(lines)

    yield since
    cluster.psql("ALTER ROLE app RESET log_statement")


def _run(cmd, pooler, statement_log):
    """Run one driver program; return its JSON summary, or fail with everything needed to see why."""
    try:
        r = subprocess.run(cmd, cwd=DRIVERS, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        rc, out, err = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = "timeout after %ds" % RUN_TIMEOUT, e.stdout or "", e.stderr or ""
        out = out.decode("utf-8", "replace") if isinstance(out, bytes) else out
        err = err.decode("utf-8", "replace") if isinstance(err, bytes) else err
    lines = out.strip().splitlines()
    if rc == 0 and lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    pytest.fail("%s exited %s\n--- stdout ---\n%s\n--- stderr ---\n%s\n--- server log since the test began ---\n%s\n%s"
                % (" ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd)), rc, out[-3000:],
                   err[-6000:], statement_log(), pooler.describe(40)), pytrace=False)


def _assert_pooler_named(summary):
    # The program's self check: the statement that ran the check was prepared on its server under
    # a pooler-owned name, so the driver really used named statements and the pooler rewrote them.
    assert summary["server_statement_name"].startswith("SL_"), summary


@pytest.mark.client("postgres.js", "defaults (named statements with random names): 2 x 200 concurrent queries over "
                    "10 connections, `sql.begin` transactions, failing statements, 100 queries pipelined on one "
                    "connection")
def test_postgresjs_200_concurrent_pipelined_prepared_queries_and_transactions(pooler, node, statement_log):
    p = pooler(TX5)
    s = _run([node, "postgresjs.mjs", p.url()], p, statement_log)
    # two rounds of 200 over 10 connections (new statements on each connection, then the same ones
    # pipelined), then 100 queries in flight on a single connection
    assert s["queries"] == 400 and s["transactions"] == 100 and s["errors"] == 20, s
    assert s["pipelined"] == 100, s
    assert s["client_statement_name"] != s["server_statement_name"], s
    _assert_pooler_named(s)


@pytest.mark.client("node-postgres", "named queries (`{name, text, values}`) from a `pg.Pool` of 10, inside and "
                    "outside BEGIN/COMMIT; one name with two texts on two clients")
def test_node_postgres_named_queries_from_a_pool_of_10_clients(pooler, node, statement_log):
    p = pooler(TX5)
    s = _run([node, "pg_named.mjs", p.url()], p, statement_log)
    assert s["queries"] == 200 and s["transactions"] == 66, s
    _assert_pooler_named(s)


@pytest.mark.client("node-postgres", "`pipeline: true`: 4 clients x 3 rounds x 60 queries in flight, named and "
                    "unnamed, 6 in 60 failing")
def test_node_postgres_pipeline_mode_named_and_unnamed_queries_with_errors(pooler, node, statement_log):
    p = pooler(TX5)
    s = _run([node, "pg_pipeline.mjs", p.url()], p, statement_log)
    # 4 clients x 3 rounds x 60 queries, 6 of each 60 fail with division_by_zero
    assert s["queries"] == 720 and s["errors"] == 72, s
    _assert_pooler_named(s)


@pytest.mark.client("node-postgres", "COPY FROM STDIN / TO STDOUT with pg-copy-streams from 8 clients at once, in "
                    "autocommit and in transactions; a COPY failing halfway (22P02) leaves nothing and the client "
                    "works on")
def test_node_postgres_copy_in_and_out_with_pg_copy_streams(pooler, node, statement_log):
    p = pooler(TX5)
    s = _run([node, "pg_copy.mjs", p.url()], p, statement_log)
    assert s == {"copied_in": 8 * 5000, "copied_out": 8 * 5000, "failed_copies": 8, "clients": 8}, s


@pytest.mark.client("pgjdbc", "`prepareThreshold={threshold}`: 8 threads, PreparedStatements in autocommit and in "
                    "committed / rolled-back transactions, `executeBatch` (50 Bind/Execute, one Sync), a failing "
                    "execution")
@pytest.mark.parametrize("threshold", [1, 5], ids=["prepareThreshold_1", "default_prepareThreshold_5"])
def test_pgjdbc_prepared_statements_across_transactions_autocommit_and_batches(pooler, java, statement_log,
                                                                               threshold):
    exe, jar = java
    p = pooler(TX5)
    threads = 8  # more connections than the pool's 5 servers
    url = "jdbc:postgresql://%s:%d/appdb" % (p.host, p.port)
    s = _run([exe, "-cp", jar, "JdbcPrepared.java", url, "app", p.cluster.passwords["app"], str(threads),
              str(threshold)], p, statement_log)
    assert s["threads"] == threads and s["prepare_threshold"] == threshold, s
    assert s["executions"] == threads * 100 and s["transactions"] == threads * 10 and s["batches"] == threads * 3, s
    _assert_pooler_named(s)
