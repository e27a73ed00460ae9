"""PostgreSQL restarted behind pgsluice (issue 14): clients already logged in wait for it (within
query_wait_timeout) instead of failing, the pool refills as soon as it is back (no server_login_retry
back-off while the server answers "starting up" or refuses connections), and every COMMIT a client
saw acknowledged is in the table afterwards, once. A throwaway primary of its own: the suite's
cluster keeps running for the other tests."""
import os
import threading
import time

import psycopg
import pytest

from harness import clients
from harness.cluster import PG_BINDIR, Cluster
from harness.util import run_as_postgres, wait_for


@pytest.fixture(scope="module")
def own_cluster(session_dir):
    c = Cluster(os.path.join(session_dir, "pgrestart"), replica=False).start()
    yield c
    c.stop()


@pytest.fixture
def own_pooler(pooler, own_cluster):
    return lambda settings=None: pooler(settings, cluster=own_cluster)


def restart(cluster, mode):
    run_as_postgres([os.path.join(PG_BINDIR, "pg_ctl"), "-D", cluster.primary.datadir, "-m", mode, "-w",
                     "-t", "60", "restart", "-l", cluster.primary.logfile], timeout=90)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_connected_clients_wait_through_a_restart_and_the_pool_refills(own_pooler, own_cluster, mode):
    p = own_pooler({"default_pool_size": 5, "server_login_retry": 15, "query_wait_timeout": 60})
    conns = [clients.connect(p) for _ in range(5)]
    for c in conns:
        c.execute("SELECT 1")
    restart(own_cluster, mode)
    back = time.monotonic()
    # every client that was connected before keeps its connection and gets its answer; none sees an error
    results, errors = [], []

    def run(c):
        try:
            results.append(c.execute("SELECT 1").fetchone()[0])
        except psycopg.Error as e:  # noqa: PERF203
            errors.append(repr(e))
    threads = [threading.Thread(target=run, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and results == [1] * 5, errors
    waited = time.monotonic() - back
    assert waited < 15, "the pool took %.1f s to refill after the restart (server_login_retry is 15 s)" % waited
    for c in conns:
        c.close()


def test_every_acknowledged_commit_survives_a_restart_once(own_pooler, own_cluster):
    p = own_pooler({"default_pool_size": 10, "query_wait_timeout": 60})
    with clients.connect(p) as c:
        c.execute("DROP TABLE IF EXISTS sl_durable")
        c.execute("CREATE TABLE sl_durable (client int, seq int, PRIMARY KEY (client, seq))")
    acked = {i: [] for i in range(20)}
    unknown = {i: [] for i in range(20)}
    stop = threading.Event()

    def writer(i):
        seq = 0
        conn = None
        while not stop.is_set():
            seq += 1
            try:
                if conn is None or conn.closed:
                    conn = clients.connect(p, autocommit=False)
                conn.execute("INSERT INTO sl_durable VALUES (%s, %s)", (i, seq))
                conn.commit()
                acked[i].append(seq)
            except psycopg.Error:
                # the COMMIT's outcome is unknown (the connection broke) or the INSERT failed: reported,
                # never retried blindly (a retry could insert twice)
                unknown[i].append(seq)
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    wait_for(lambda: sum(len(v) for v in acked.values()) >= 100, timeout=30, what="writes flowing")
    restart(own_cluster, "fast")
    deadline = time.monotonic() + 30
    base = sum(len(v) for v in acked.values())
    while time.monotonic() < deadline and sum(len(v) for v in acked.values()) < base + 200:
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(60)
    with clients.connect(p) as c:
        rows = c.execute("SELECT client, seq FROM sl_durable").fetchall()
    in_table = {}
    for client, seq in rows:
        in_table.setdefault(client, []).append(seq)
    total_acked = 0
    for i in range(20):
        have = set(in_table.get(i, []))
        assert len(have) == len(in_table.get(i, [])), "client %d: a row is duplicated" % i
        missing = set(acked[i]) - have
        assert not missing, "client %d: acknowledged commits lost: %s" % (i, sorted(missing)[:10])
        extra = have - set(acked[i]) - set(unknown[i])
        assert not extra, "client %d: rows nobody committed: %s" % (i, sorted(extra)[:10])
        total_acked += len(acked[i])
    assert total_acked > base  # writes went on after the restart
    print("acknowledged %d, outcome unknown %d" % (total_acked, sum(len(v) for v in unknown.values())))
