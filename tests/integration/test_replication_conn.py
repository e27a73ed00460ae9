"""Replication connections through the pooler (startup packet replication=true|database), as
PgBouncer 1.23 passes them: each client gets a server connection of its own, opened with its
parameters, never pooled, closed when the client leaves; physical (pg_basebackup, pg_receivewal,
IDENTIFY_SYSTEM) and logical (pg_recvlogical, subscribers) alike. The superuser has the REPLICATION
attribute and initdb's pg_hba.conf lets it in for replication from 127.0.0.1."""
import os
import signal
import subprocess

import psycopg
import pytest

from harness import clients
from harness.cluster import Cluster
from harness.util import wait_for

from admin_helpers import show

pytestmark = pytest.mark.pgsluice_only

SU = "postgres"


def _repl_psql(p, kind, sql, check=True, app=None):
    conninfo = "dbname=appdb replication=%s" % kind + (" application_name=%s" % app if app else "")
    return clients.psql(p, "-c", sql, db=conninfo, user=SU, check=check)


def _servers(p, kind):
    return [s for s in show(p, "SERVERS") if s["replication"] == kind]


@pytest.mark.parametrize("kind,shown", [("true", "physical"), ("database", "logical")])
def test_identify_system_over_a_replication_connection(pooler, direct, kind, shown):
    p = pooler({"pool_mode": "transaction"})
    with direct() as d:
        sysid = d.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()[0]
    out = _repl_psql(p, kind, "IDENTIFY_SYSTEM").stdout.strip()
    assert out.split("|")[0] == sysid, out
    # the server went with its client: nothing replication-kind stays open or pooled
    wait_for(lambda: not _servers(p, shown), timeout=10, what="replication server closed with its client")
    clients.assert_pooler_serves(p)


def test_replication_connection_gets_its_own_server_with_its_application_name(pooler, direct):
    """A standby's application_name decides synchronous replication: it must reach the walsender."""
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1})
    # the ordinary pool of one is busy in a transaction: the replication client does not wait for it
    with clients.connect(p, user=SU, autocommit=False) as busy:
        busy.execute("SELECT 1")
        rows = _repl_psql(p, "true", "SHOW application_name", app="sl_standby_x").stdout.strip()
        assert rows == "sl_standby_x"
        busy.rollback()


def test_logical_stream_through_the_pooler_and_visible_in_show(pooler, direct, tmp_path):
    p = pooler({"pool_mode": "transaction"})
    slot = "sl_repl_test_%d" % os.getpid()
    with direct("appdb") as d:
        d.autocommit = True
        d.execute("DROP TABLE IF EXISTS sl_repl_t; CREATE TABLE sl_repl_t (id int primary key, v text)")
        d.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (slot,))
    out = tmp_path / "decoded.txt"
    proc = subprocess.Popen(
        [os.path.join(clients.PG_BINDIR, "pg_recvlogical"), "-d", p.dsn("appdb", SU), "-S", slot, "--start",
         "-f", str(out), "-F", "1", "-s", "1", "--no-loop"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clients._env(p, SU, None))
    try:
        wait_for(lambda: any(c["replication"] == "logical" for c in show(p, "CLIENTS")), timeout=20,
                 what="a logical replication client in SHOW CLIENTS")
        wait_for(lambda: [s for s in _servers(p, "logical") if s["state"] == "active"], timeout=20,
                 what="its server, active, in SHOW SERVERS")
        # one SHOW POOLS row per (database, user), replication connections counted in it
        pools = [r for r in show(p, "POOLS") if r["database"] == "appdb" and r["user"] == SU]
        assert len(pools) == 1 and pools[0]["sv_active"] >= 1, pools
        with direct("appdb") as d:
            d.autocommit = True
            for i in range(3):
                d.execute("INSERT INTO sl_repl_t VALUES (%s, %s)", (i, "row-%d" % i))
        wait_for(lambda: out.exists() and out.read_text().count("INSERT") >= 3, timeout=30,
                 what="three decoded inserts")
        text = out.read_text()
        assert "row-0" in text and "row-2" in text, text
        clients.assert_pooler_serves(p)  # ordinary clients meanwhile
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    wait_for(lambda: not _servers(p, "logical"), timeout=15, what="the logical server closed with its client")

    def slot_free():
        with direct("appdb") as d:
            return d.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone() == (False,)
    wait_for(slot_free, timeout=15, what="the slot released by the walsender")
    with direct("appdb") as d:
        d.autocommit = True
        d.execute("SELECT pg_drop_replication_slot(%s)", (slot,))


def test_pg_basebackup_through_the_pooler(pooler, cluster, tmp_path):
    """Physical replication tools (pg_basebackup, pg_receivewal, a standby's primary_conninfo) send the
    database name "replication" whatever the connection string says: it needs a [databases] entry (or
    the * fallback), as with PgBouncer."""
    p = pooler({"pool_mode": "transaction"},
               dbs={"replication": "host=127.0.0.1 port=%d dbname=postgres" % cluster.primary_port})
    target = tmp_path / "base"
    proc = subprocess.run(
        [os.path.join(clients.PG_BINDIR, "pg_basebackup"), "-d", p.dsn("appdb", SU), "-D", str(target),
         "-X", "stream", "-c", "fast", "--no-sync", "--no-verify-checksums"],
        capture_output=True, text=True, env=clients._env(p, SU, None), timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert (target / "PG_VERSION").exists() and (target / "backup_manifest").exists()
    wait_for(lambda: not _servers(p, "physical"), timeout=15, what="the backup's servers closed")


def test_bad_replication_value_is_refused(pooler):
    p = pooler()
    r = _repl_psql(p, "maybe", "SELECT 1", check=False)
    assert r.returncode != 0
    assert 'invalid value for parameter "replication"' in r.stderr, r.stderr
    clients.assert_pooler_serves(p)


def test_console_refuses_replication(pooler):
    p = pooler()
    r = clients.psql(p, "-c", "SHOW POOLS", db="dbname=pgbouncer replication=database", user=SU, check=False)
    assert r.returncode != 0 and "replication" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def subscriber(session_dir):
    """A second PostgreSQL that subscribes to the session's primary through the pooler."""
    c = Cluster(os.path.join(session_dir, "pgsub"), replica=False).start()
    yield c
    c.stop()


def test_logical_subscription_through_the_pooler(pooler, direct, subscriber):
    """CREATE SUBSCRIPTION on another server with a CONNECTION to pgsluice: the initial table copy
    (a tablesync worker: a replication=database connection that runs SQL and COPY) and the stream
    (the apply worker) both pass through; rows written later on the publisher arrive."""
    p = pooler({"pool_mode": "transaction"})
    tag = "%d" % os.getpid()
    with direct("appdb") as d:
        d.autocommit = True
        d.execute("DROP PUBLICATION IF EXISTS sl_pub_%s" % tag)
        d.execute("DROP TABLE IF EXISTS sl_sub_t; CREATE TABLE sl_sub_t (id int primary key, v text)")
        d.execute("INSERT INTO sl_sub_t SELECT g, 'before-' || g FROM generate_series(1, 100) g")
        d.execute("CREATE PUBLICATION sl_pub_%s FOR TABLE sl_sub_t" % tag)
    sub = psycopg.connect(subscriber.dsn("appdb"), autocommit=True)
    try:
        sub.execute("CREATE TABLE sl_sub_t (id int primary key, v text)")
        conninfo = "host=%s port=%d dbname=appdb user=postgres password=%s" % (
            p.host, p.port, p.cluster.passwords["postgres"])
        sub.execute("CREATE SUBSCRIPTION sl_sub_%s CONNECTION '%s' PUBLICATION sl_pub_%s" % (tag, conninfo, tag))
        wait_for(lambda: sub.execute("SELECT count(*) FROM sl_sub_t").fetchone()[0] == 100, timeout=60,
                 what="the initial copy through the pooler")
        with direct("appdb") as d:
            d.autocommit = True
            d.execute("INSERT INTO sl_sub_t SELECT g, 'after-' || g FROM generate_series(101, 150) g")
        wait_for(lambda: sub.execute("SELECT count(*) FROM sl_sub_t").fetchone()[0] == 150, timeout=60,
                 what="the streamed inserts through the pooler")
        assert any(s["replication"] == "logical" and s["state"] == "active" for s in show(p, "SERVERS"))
        sub.execute("DROP SUBSCRIPTION sl_sub_%s" % tag)  # drops its slot on the publisher, through us
        wait_for(lambda: not _servers(p, "logical"), timeout=30, what="the apply worker's server closed")
    finally:
        sub.close()
        with direct("appdb") as d:
            d.autocommit = True
            d.execute("DROP PUBLICATION IF EXISTS sl_pub_%s" % tag)
