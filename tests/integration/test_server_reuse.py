"""What a server connection carries from one client to the next: nothing a client left behind."""
import socket
import time

import psycopg
import pytest

from harness import clients
from harness.util import free_port


def test_client_vanishing_inside_a_transaction_leaves_no_trace_for_the_next_client(pooler):
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1})
    with clients.connect(p) as setup:
        setup.execute("DROP TABLE IF EXISTS sl_vanish; CREATE TABLE sl_vanish (v int)")
    c = clients.connect(p, autocommit=False)
    c.execute("INSERT INTO sl_vanish VALUES (1)")
    # drop the TCP connection without Terminate, in the middle of the transaction
    s = socket.socket(fileno=c.pgconn.socket)
    s.shutdown(socket.SHUT_RDWR)
    s.detach()
    c.close()
    t0 = time.monotonic()
    with clients.connect(p) as nxt:  # the pool's only server must come back clean (or be replaced)
        assert nxt.execute("SELECT count(*) FROM sl_vanish").fetchone() == (0,)
        assert nxt.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert time.monotonic() - t0 < 10


def test_session_mode_resets_server_state_between_clients(pooler):
    p = pooler({"pool_mode": "session", "default_pool_size": 1, "server_reset_query": "DISCARD ALL"})
    with clients.connect(p) as a:
        pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        a.execute("SET sl.leftover = 'from client a'")
        a.execute("CREATE TEMP TABLE sl_leftover (v int)")
        a.execute("PREPARE sl_leftover_stmt AS SELECT 1")
    with clients.connect(p) as b:
        assert b.execute("SELECT pg_backend_pid()").fetchone()[0] == pid, "expected the same server connection"
        assert b.execute("SELECT current_setting('sl.leftover', true)").fetchone()[0] in (None, "")
        assert b.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
        assert b.execute("SELECT to_regclass('pg_temp.sl_leftover')").fetchone() == (None,)


def test_error_inside_a_pipeline_keeps_the_connection_usable(pooler):
    p = pooler({"pool_mode": "transaction"})
    with clients.connect(p) as c:
        with pytest.raises(psycopg.errors.DivisionByZero):
            with c.pipeline():
                c.execute("SELECT %s::int", (1,))
                c.execute("SELECT 1 / %s::int", (0,))
                c.execute("SELECT %s::int", (3,))
        assert c.execute("SELECT %s::int * 2", (21,)).fetchone() == (42,)
        with c.pipeline():
            curs = [c.execute("SELECT %s::int * 10", (i,)) for i in (1, 2, 3)]
        assert [cur.fetchone()[0] for cur in curs] == [10, 20, 30]


def test_notices_reach_the_client(pooler):
    p = pooler()
    got = []
    with clients.connect(p) as c:
        c.add_notice_handler(lambda d: got.append((d.severity, d.message_primary)))
        c.execute("DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; RAISE WARNING 'careful'; END $$")
    assert ("NOTICE", "hello from plpgsql") in got and ("WARNING", "careful") in got


def test_unreachable_server_fails_its_clients_and_pooler_keeps_serving(pooler):
    dead = free_port()  # nothing listens there
    p = pooler({"server_login_retry": 1, "query_wait_timeout": 5},
               dbs={"deaddb": "host=127.0.0.1 port=%d dbname=appdb" % dead})
    t0 = time.monotonic()
    with pytest.raises(psycopg.Error):
        with clients.connect(p, "deaddb") as c:
            c.execute("SELECT 1")
    assert time.monotonic() - t0 < 15
    clients.assert_pooler_serves(p)
