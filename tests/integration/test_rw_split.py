"""read_write_split: inside one database name, transactions declared read-only (BEGIN READ ONLY, START
TRANSACTION READ ONLY, SET TRANSACTION READ ONLY right after BEGIN, default_transaction_read_only=on
in the startup packet) go to a replica, everything else to the primary, through psycopg, asyncpg and
psql; and read-your-writes: a client's reads right after its write go to the primary until a replica
has replayed it (a replica with replay paused never shows a client a state older than its write)."""
import asyncio
import time

import psycopg
import pytest

from harness import clients
from harness.util import HOST, wait_for
from test_replicas import HEALTH, backends, hosts, routed_pooler, server_port, wait_backend

pytestmark = pytest.mark.pgsluice_only


def split_pooler(pooler, cluster, replica_port=None, settings=None):
    P, R = cluster.primary_port, replica_port or cluster.replica_port
    s = {"track_extra_parameters": "IntervalStyle, default_transaction_read_only"}
    s.update(settings or {})
    p = routed_pooler(pooler, s, dbs={
        "split": "%s dbname=appdb role_map=primary,replica read_write_split=on" % hosts(P, R)})
    wait_backend(p, "split", R, health="up", serves="reads")
    wait_backend(p, "split", P, health="up", serves="writes")
    return p


def test_declared_read_only_transactions_go_to_the_replica_everything_else_to_the_primary(pooler, cluster):
    P, R = cluster.primary_port, cluster.replica_port
    # read-your-writes off: every transaction here follows its declaration alone (it is tested below)
    p = split_pooler(pooler, cluster, settings={"read_your_writes": 0})
    with clients.connect(p, "split") as c:
        # autocommit statements are never guessed at: the primary, even a SELECT
        assert server_port(c) == (P, False)
        with c.transaction():
            assert server_port(c) == (P, False)
        c.read_only = True  # psycopg: BEGIN READ ONLY
        with c.transaction():
            assert server_port(c) == (R, True)
        c.read_only = None
        # START TRANSACTION READ ONLY, and BEGIN followed by SET TRANSACTION READ ONLY
        c.execute("START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        assert server_port(c) == (R, True)
        c.execute("COMMIT")
        c.execute("BEGIN")  # answered by pgsluice: the next statement decides
        c.execute("SET TRANSACTION READ ONLY")
        assert server_port(c) == (R, True)
        assert c.execute("SHOW transaction_read_only").fetchone() == ("on",)
        c.execute("COMMIT")
        c.execute("BEGIN")
        assert server_port(c) == (P, False)
        assert c.execute("SHOW transaction_isolation").fetchone() == ("read committed",)
        c.execute("ROLLBACK")
        c.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        assert c.execute("SHOW transaction_isolation").fetchone() == ("serializable",)  # the BEGIN replayed
        c.execute("COMMIT")
        c.execute("BEGIN")
        c.execute("COMMIT")  # an empty transaction, answered without a server
        c.execute("BEGIN READ WRITE")
        assert server_port(c) == (P, False)
        c.execute("COMMIT")
        # a read-only declaration followed by a write in the same query never reaches a replica
        c.execute("CREATE TABLE IF NOT EXISTS sl_split_t (v int)")
        cluster.wait_replica_caught_up()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("BEGIN READ ONLY; INSERT INTO sl_split_t VALUES (1)")
        c.execute("ROLLBACK")
        c.execute("BEGIN READ ONLY; SELECT 1; COMMIT; INSERT INTO sl_split_t VALUES (2)")  # ends, then writes
        assert c.execute("SELECT count(*) FROM sl_split_t WHERE v = 2").fetchone() == (1,)
        c.execute("DROP TABLE sl_split_t")
    # psql: the same with a script
    out = clients.psql(p, "-c", "BEGIN READ ONLY", "-c", "SELECT inet_server_port()", "-c", "COMMIT",
                       db="split").stdout.split()
    assert str(R) in out, out


def test_asyncpg_readonly_transaction_goes_to_the_replica(pooler, cluster):
    P, R = cluster.primary_port, cluster.replica_port
    p = split_pooler(pooler, cluster, settings={"read_your_writes": 0})

    async def run():
        c = await clients.aconnect(p, "split")
        try:
            async with c.transaction(readonly=True):
                ro = await c.fetchrow("SELECT inet_server_port(), pg_is_in_recovery()")
            async with c.transaction():
                rw = await c.fetchrow("SELECT inet_server_port(), pg_is_in_recovery()")
            return tuple(ro), tuple(rw)
        finally:
            await c.close()
    ro, rw = asyncio.run(run())
    assert ro == (R, True) and rw == (P, False)


def test_default_transaction_read_only_session_reads_from_the_replica(pooler, cluster):
    P, R = cluster.primary_port, cluster.replica_port
    p = split_pooler(pooler, cluster, settings={"read_your_writes": 0})
    with clients.connect(p, "split", options="-c default_transaction_read_only=on") as ro:
        for _ in range(3):
            assert server_port(ro) == (R, True)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            ro.execute("CREATE TABLE sl_never (x int)")
        ro.execute("BEGIN READ WRITE")  # declared read-write: the primary
        assert server_port(ro) == (P, False)
        ro.execute("COMMIT")


def test_read_your_writes_a_client_reads_its_own_write_at_once(pooler, cluster):
    r = cluster.add_replica("ryw")
    try:
        P = cluster.primary_port
        p = split_pooler(pooler, cluster, r.port)
        with clients.connect(p, "split") as c:
            c.execute("CREATE TABLE IF NOT EXISTS sl_ryw (id int)")
            cluster.psql("SELECT pg_wal_replay_pause()", port=r.port)  # the replica falls behind from now on
            c.read_only = False
            c.execute("INSERT INTO sl_ryw VALUES (1)")
            c.read_only = True
            with c.transaction():  # at once, and for as long as the replica has not replayed it
                assert server_port(c) == (P, False)
                assert c.execute("SELECT count(*) FROM sl_ryw WHERE id = 1").fetchone() == (1,)
            with c.transaction():  # again: the replica still has not replayed it
                assert server_port(c) == (P, False)
                assert c.execute("SELECT count(*) FROM sl_ryw WHERE id = 1").fetchone() == (1,)
            # another client that did not write reads from the replica (in rotation: lag 0 before the pause)
            cluster.psql("SELECT pg_wal_replay_resume()", port=r.port)
            written = time.monotonic()
            # once the replica has replayed it, this client's reads go there again
            wait_for(lambda: (lambda row: row == (r.port, True))(_ro_port(c)), timeout=15,
                     what="read-only transactions back on the replica")
            print("read-your-writes: reads back on the replica %.2f s after the write was replayed"
                  % (time.monotonic() - written))
            with c.transaction():
                assert c.execute("SELECT count(*) FROM sl_ryw WHERE id = 1").fetchone() == (1,)
            c.read_only = None
            c.execute("DROP TABLE sl_ryw")
    finally:
        cluster.remove_replica(r)


def _ro_port(c):
    with c.transaction():
        return server_port(c)
