"""A server connection that dies behind the pool (issue 14): an idle server terminated with
pg_terminate_backend costs the next client that gets it no error (pgsluice notices it is dead, or
that it died without reading the request, and sends the request to another server); a server that
dies while it runs a query gives its client the error, and the query is never run a second time.
The last two tests use a stand-in server to produce each case exactly."""
import asyncio
import socket
import struct
import threading

import psycopg
import pytest

from harness import clients
from harness.util import HOST, wait_for

IDLE_SERVERS = ("SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity WHERE datname = 'appdb' "
                "AND usename = 'app' AND backend_type = 'client backend' AND state = 'idle' "
                "AND pid <> pg_backend_pid()")


def _fill_pool(p, n):
    """n servers in the pool: n clients each hold one for a moment at the same time."""
    conns = [clients.connect(p) for _ in range(n)]
    threads = [threading.Thread(target=c.execute, args=("SELECT pg_sleep(0.2)",)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for c in conns:
        c.close()


@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
def test_idle_servers_terminated_behind_the_pool_cost_no_client_an_error(pooler, direct, pool_mode):
    p = pooler({"pool_mode": pool_mode, "default_pool_size": 4, "server_login_retry": 1})
    admin = direct("appdb")
    if pool_mode == "transaction":
        _fill_pool(p, 4)
    errors, killed = [], 0
    for i in range(20):
        # session mode: each round's client gets a server from the pool (a new one after a few rounds)
        c = clients.connect(p)
        if pool_mode == "transaction" or i == 0:
            c.execute("SELECT 1")
        if pool_mode == "session":
            c.close()
            c = clients.connect(p)
        n = admin.execute(IDLE_SERVERS).fetchone()[0]
        killed += n
        try:
            # simple protocol, then the extended protocol (unnamed statement), at once after the kill
            assert c.execute("SELECT 41 + 1").fetchone()[0] == 42
            assert c.execute("SELECT %s::int * 2", (i,)).fetchone()[0] == 2 * i
        except psycopg.Error as e:
            errors.append("round %d: %r" % (i, e))
        c.close()
    assert errors == [], "%s\n%s" % (errors, open(p.log_path).read()[-6000:])
    assert killed >= 20, "only %d servers were terminated: the test did not test anything" % killed
    clients.assert_pooler_serves(p)


# a SELECT has sent its RowDescription when it dies; a DO block sends nothing before its end, so the
# FATAL is the first thing its client would see
@pytest.mark.parametrize("query", ["SELECT nextval('sl_midquery_seq'), pg_sleep(60)",
                                   "DO $$ BEGIN PERFORM nextval('sl_midquery_seq'); PERFORM pg_sleep(60); END $$"])
def test_server_terminated_mid_query_fails_its_client_and_is_not_run_again(pooler, direct, query):
    p = pooler({"default_pool_size": 2})
    admin = direct("appdb")
    admin.execute("DROP SEQUENCE IF EXISTS sl_midquery_seq")
    admin.execute("CREATE SEQUENCE sl_midquery_seq")
    admin.execute("GRANT USAGE ON SEQUENCE sl_midquery_seq TO app")
    outcome = {}

    def run():
        try:
            with clients.connect(p) as c:
                c.execute("SELECT 1")
                c.execute(query)
                outcome["done"] = True
        except psycopg.Error as e:
            outcome["error"] = e
    t = threading.Thread(target=run)
    t.start()
    running = "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%sl_midquery_seq%' " \
              "AND pid <> pg_backend_pid()"
    wait_for(lambda: admin.execute(running).fetchone() or outcome, timeout=15, what="the query to run")
    assert not outcome, outcome
    admin.execute("SELECT pg_terminate_backend(pid) FROM (%s) q" % running)
    t.join(20)
    assert not t.is_alive(), "the client is still waiting: was its query sent again?"
    assert "error" in outcome, outcome
    assert "terminating connection due to administrator command" in str(outcome["error"])
    # nextval is not rolled back: a second run of the query would show here
    assert admin.execute("SELECT last_value FROM sl_midquery_seq").fetchone()[0] == 1
    clients.assert_pooler_serves(p)


# ---- a stand-in server, to make each way of dying happen for sure ----

_msg = clients.msg
_recv_exact = clients.recv_exact


FATAL_57P01 = _msg(b"E", b"SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0")
ANSWER_1 = (_msg(b"T", struct.pack("!H", 1) + b"x\0" + struct.pack("!IHIhih", 0, 0, 23, 4, -1, 0)) +
            _msg(b"D", struct.pack("!HI", 1, 1) + b"1") + _msg(b"C", b"SELECT 1\0") + _msg(b"Z", b"I"))


class DyingServer(clients.StandInServer):
    """Logs pgsluice in and answers every Query with one row (1). `die` decides what the next
    connection to get a Query does instead: "unread" sends FATAL 57P01 and closes without reading it
    (as a backend terminated while idle, whose socket still holds the request: the kernel resets
    the connection); "read" reads it, then sends FATAL and closes (a backend that died running
    it); "after" answers it and sends FATAL right behind the answer, in one write, then closes (a
    backend terminated just after it finished: the client has its answer, the FATAL is no answer
    to anything it asked)."""

    def __init__(self):
        self.die = None
        self.queries = []  # (connection number, query text) of every Query read
        self.lock = threading.Lock()
        super().__init__()

    def _serve(self, conn, n):
        try:
            self.trust_login(conn)
            while True:
                conn.recv(1, socket.MSG_PEEK)  # wait for the next request
                with self.lock:
                    die, self.die = self.die, None
                if die == "unread":
                    conn.sendall(FATAL_57P01)
                    return  # closed with the request unread
                t = _recv_exact(conn, 1)
                (length,) = struct.unpack("!I", _recv_exact(conn, 4))
                body = _recv_exact(conn, length - 4)
                if t == b"X":
                    return
                if t == b"Q":
                    self.queries.append((n, body.rstrip(b"\0").decode()))
                if die == "read":
                    conn.sendall(FATAL_57P01)
                    return
                if die == "after":
                    conn.sendall(ANSWER_1 + FATAL_57P01)
                    return
                if t == b"Q":
                    conn.sendall(ANSWER_1)
        except (ConnectionError, OSError):
            return
        finally:
            conn.close()


@pytest.fixture
def dying_server():
    s = DyingServer()
    yield s
    s.close()


@pytest.mark.pgsluice_only
def test_server_that_dies_without_reading_the_request_is_replaced_silently(pooler, dying_server):
    p = pooler({"default_pool_size": 2}, dbs={"fakedb": "host=%s port=%d dbname=fakedb" % (HOST, dying_server.port)})
    with clients.connect(p, "fakedb") as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1
        assert dying_server.nconns == 1
        dying_server.die = "unread"
        assert c.execute("SELECT 1 AS again").fetchone()[0] == 1
    assert dying_server.nconns == 2, "the request did not go to a new server"
    assert [q for q in dying_server.queries if "again" in q[1]] == [(2, "SELECT 1 AS again")]


@pytest.mark.pgsluice_only
def test_server_that_dies_after_reading_the_request_fails_its_client(pooler, dying_server):
    p = pooler({"default_pool_size": 2}, dbs={"fakedb": "host=%s port=%d dbname=fakedb" % (HOST, dying_server.port)})
    with clients.connect(p, "fakedb") as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1
        dying_server.die = "read"
        with pytest.raises(psycopg.OperationalError, match="terminating connection due to administrator command"):
            c.execute("SELECT 1 AS once")
    assert [q for q in dying_server.queries if "once" in q[1]] == [(1, "SELECT 1 AS once")], dying_server.queries
    clients.assert_pooler_serves(p)



def _outcome(f, *args):
    try:
        f(*args)
    except Exception as e:  # noqa: BLE001 (reported by the test)
        return repr(e)
    return None


@pytest.mark.pgsluice_only
@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_server_that_dies_right_after_its_answer_costs_its_client_nothing(pooler, dying_server, driver):
    """The FATAL of a backend terminated just after it answered arrives with the answer. It answers
    nothing the client asked: passed on, a driver takes it for the answer to its next request
    (asyncpg's next operation fails with "another operation is in progress", or hangs; psycopg in
    pipeline mode reports AdminShutdown for statements that then succeed on another server; libpq
    outside a pipeline shows it as a notice). The server goes; the client sees nothing of it."""
    p = pooler({"default_pool_size": 2}, dbs={"fakedb": "host=%s port=%d dbname=fakedb" % (HOST, dying_server.port)})
    if driver == "asyncpg":
        async def run():
            c = await clients.aconnect(p, "fakedb")
            try:  # (simple queries: the stand-in knows no others)
                assert await c.execute("SELECT 1") == "SELECT 1"
                dying_server.die = "after"
                assert await c.execute("SELECT 1 AS last") == "SELECT 1"
                for q in ("SELECT 1 AS next", "SELECT 1 AS again"):
                    assert await c.execute(q) == "SELECT 1"
            finally:
                await c.close()
        # before the fix asyncpg could hang for good: bounded here by a thread (the fixture's stop
        # of the pooler ends the connection afterwards)
        failure = []
        t = threading.Thread(target=lambda: failure.append(_outcome(asyncio.run, run())), daemon=True)
        t.start()
        t.join(30)
        assert not t.is_alive(), "the asyncpg client hangs"
        assert failure == [None], failure
    else:
        notices = []
        with clients.connect(p, "fakedb") as c:
            c.add_notice_handler(lambda d: notices.append(d.message_primary))
            assert c.execute("SELECT 1").fetchone()[0] == 1
            dying_server.die = "after"
            assert c.execute("SELECT 1 AS last").fetchone()[0] == 1
            assert c.execute("SELECT 1 AS next").fetchone()[0] == 1
            assert c.execute("SELECT 1 AS again").fetchone()[0] == 1
        assert notices == [], notices
    assert dying_server.nconns == 2, "the dead server was not replaced"
    assert [q[0] for q in dying_server.queries if "next" in q[1]] == [2], dying_server.queries
    clients.assert_pooler_serves(p)
