"""An idle server terminated behind the pool while its clients use named prepared statements in
transaction mode (issue 14): the client's next prepared execution goes to another server when the
one it got died without reading the request, and gets exactly one answer with no error. pgsluice
prepares the statement on the new server (Parse injected), and what it had recorded for the dead
one (its statements, the client's names changed by the request) does not carry over. The first two
tests run psycopg 3 (prepare=True) and asyncpg (conn.prepare) against PostgreSQL: each round kills
every idle server of the pool (waiting until the backends are gone) right after the client's last
use, then uses the statements at once; whether pgsluice sees a dead server's end of file first or
hands it out and resends is a race there, so the last two tests use a stand-in server that dies with
the request unread for sure and check what each server got."""
import asyncio
import socket
import struct
import threading

import asyncpg
import psycopg
import pytest

from harness import clients
from harness.util import HOST

IDLE_SERVERS = ("SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity WHERE datname = 'appdb' "
                "AND usename = 'app' AND backend_type = 'client backend' AND state = 'idle' "
                "AND pid <> pg_backend_pid()")
ROUNDS = 20


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


def _pooler(pooler):
    return pooler({"pool_mode": "transaction", "default_pool_size": 4, "server_login_retry": 1,
                   "max_prepared_statements": 100})


def _assert_servers_were_killed(killed):
    assert killed >= ROUNDS, "only %d servers were terminated: the test did not test anything" % killed


def test_psycopg_prepared_statements_survive_idle_servers_terminated_behind_the_pool(pooler, direct):
    p = _pooler(pooler)
    admin = direct("appdb")
    _fill_pool(p, 4)
    errors, killed = [], 0
    with clients.connect(p, prepare_threshold=0) as c:
        assert c.execute("SELECT %s::int + 1", (0,), prepare=True).fetchone()[0] == 1
        for i in range(ROUNDS):
            try:
                # a statement the client prepared before (Bind/Execute only; the new server lacks it)
                assert c.execute("SELECT %s::int + 1", (i,), prepare=True).fetchone()[0] == i + 1
                killed += admin.execute(IDLE_SERVERS).fetchone()[0]
                assert c.execute("SELECT %s::int + 1", (i,), prepare=True).fetchone()[0] == i + 1
                killed += admin.execute(IDLE_SERVERS).fetchone()[0]
                # a statement new to the client (its Parse goes in the very request that is resent)
                assert c.execute("SELECT %%s::int * %d" % (i + 2), (i,), prepare=True).fetchone()[0] == i * (i + 2)
                killed += admin.execute(IDLE_SERVERS).fetchone()[0]
                # a transaction block of prepared executions
                with c.transaction():
                    assert c.execute("SELECT %s::int + 1", (i,), prepare=True).fetchone()[0] == i + 1
                    assert c.execute("SELECT %%s::int * %d" % (i + 2), (1,), prepare=True).fetchone()[0] == i + 2
            except psycopg.Error as e:
                errors.append("round %d: %r" % (i, e))
        # the client's names are as they should be: each statement is still known, once
        assert c.execute("SELECT %s::int + 1", (41,), prepare=True).fetchone()[0] == 42
    assert errors == [], "%s\n%s" % (errors, p.log_text()[-6000:])
    _assert_servers_were_killed(killed)
    clients.assert_pooler_serves(p)


def test_asyncpg_prepared_statements_survive_idle_servers_terminated_behind_the_pool(pooler, direct):
    p = _pooler(pooler)
    admin = direct("appdb")
    _fill_pool(p, 4)

    async def main():
        errors, killed = [], 0
        # asyncpg's own statement cache: every query is a named statement (__asyncpg_stmt_N__)
        conn = await clients.aconnect(p, statement_cache_size=100)
        try:
            stmt = await conn.prepare("SELECT $1::int * 3")
            assert await stmt.fetchval(1) == 3
            for i in range(ROUNDS):
                try:
                    assert await stmt.fetchval(i) == 3 * i
                    killed += admin.execute(IDLE_SERVERS).fetchone()[0]
                    assert await stmt.fetchval(i) == 3 * i
                    killed += admin.execute(IDLE_SERVERS).fetchone()[0]
                    assert await conn.fetchval("SELECT $1::int - %d" % i, 100) == 100 - i  # a new statement
                    killed += admin.execute(IDLE_SERVERS).fetchone()[0]
                    rows = await stmt.fetch(i)
                    assert [tuple(r) for r in rows] == [(3 * i,)]
                except asyncpg.PostgresError as e:
                    errors.append("round %d: %r" % (i, e))
                except (OSError, asyncpg.InterfaceError) as e:
                    errors.append("round %d: %r" % (i, e))
                    break
            assert await stmt.fetchval(14) == 42
        finally:
            await conn.close()
        return errors, killed

    errors, killed = asyncio.run(main())
    assert errors == [], "%s\n%s" % (errors, p.log_text()[-6000:])
    _assert_servers_were_killed(killed)
    clients.assert_pooler_serves(p)


# ---- a stand-in server, to make the server die with the request unread for sure ----
# (with PostgreSQL, pgsluice usually sees the dead server's FATAL and end of file while it idles in
# the pool and opens another; the request meets the dead server only when it arrives first)

_msg = clients.msg
_recv_exact = clients.recv_exact

FATAL_57P01 = _msg(b"E", b"SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0")
ROW_DESC = _msg(b"T", struct.pack("!H", 1) + b"x\0" + struct.pack("!IHIhih", 0, 0, 23, 4, -1, 0))


class ExtendedDyingServer(clients.StandInServer):
    """Logs pgsluice in and speaks the extended protocol: every statement it prepares returns one
    row (1). Bind of a statement it has not prepared fails (26000) as PostgreSQL would. Records
    every message it reads as (connection number, type, statement name). die = "unread": the next
    connection to get a request sends FATAL 57P01 and closes with it unread (the kernel resets the
    connection), as a backend terminated while idle in the pool."""

    def __init__(self):
        self.die = None
        self.seen = []
        self.lock = threading.Lock()
        super().__init__()

    def _serve(self, conn, n):
        prepared = set()
        failed = False  # an error: everything up to Sync is skipped
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
                name = None
                if t == b"P":
                    name = body.split(b"\0")[0].decode()
                elif t == b"B":
                    name = body.split(b"\0")[1].decode()
                elif t in (b"C", b"D"):
                    name = ("S:" if body[:1] == b"S" else "P:") + body[1:].split(b"\0")[0].decode()
                self.seen.append((n, t.decode(), name))
                if t == b"S":
                    failed = False
                    conn.sendall(_msg(b"Z", b"I"))
                    continue
                if failed:
                    continue
                if t == b"P":
                    if name and name in prepared:
                        failed = True
                        conn.sendall(_msg(b"E", b"SERROR\0VERROR\0C42P05\0Mprepared statement \"%s\" already "
                                                b"exists\0\0" % name.encode()))
                        continue
                    if name:
                        prepared.add(name)
                    conn.sendall(_msg(b"1"))
                elif t == b"B":
                    if name and name not in prepared:
                        failed = True
                        conn.sendall(_msg(b"E", b"SERROR\0VERROR\0C26000\0Mprepared statement \"%s\" does not "
                                                b"exist\0\0" % name.encode()))
                        continue
                    conn.sendall(_msg(b"2"))
                elif t == b"C":
                    prepared.discard(name[2:])
                    conn.sendall(_msg(b"3"))
                elif t == b"D":
                    conn.sendall((_msg(b"t", struct.pack("!H", 0)) if name.startswith("S:") else b"") + ROW_DESC)
                elif t == b"E":
                    conn.sendall(_msg(b"D", struct.pack("!HI", 1, 1) + b"1") + _msg(b"C", b"SELECT 1\0"))
                elif t == b"Q":
                    conn.sendall(ROW_DESC + _msg(b"D", struct.pack("!HI", 1, 1) + b"1") + _msg(b"C", b"SELECT 1\0") +
                                 _msg(b"Z", b"I"))
        except (ConnectionError, OSError):
            return
        finally:
            conn.close()

    def of(self, n):
        return [(t, name) for (k, t, name) in self.seen if k == n]


@pytest.fixture
def dying_server():
    s = ExtendedDyingServer()
    yield s
    s.close()


def _assert_serves(p):
    assert p.alive(), "pooler died\n" + p.describe()
    with clients.connect(p, "fakedb") as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1


def _fake_pooler(pooler, server):
    return pooler({"pool_mode": "transaction", "default_pool_size": 2, "max_prepared_statements": 100},
                  dbs={"fakedb": "host=%s port=%d dbname=fakedb" % (HOST, server.port)})


@pytest.mark.core
@pytest.mark.pgsluice_only
def test_prepared_execution_sent_to_a_server_that_dies_unread_goes_to_a_new_one_which_gets_the_parse(
        pooler, dying_server):
    p = _fake_pooler(pooler, dying_server)
    with clients.connect(p, "fakedb", prepare_threshold=0) as c:
        assert c.execute("SELECT 1 AS once", prepare=True).fetchone()[0] == 1
        assert dying_server.nconns == 1
        first = dying_server.of(1)
        parsed = [name for (t, name) in first if t == "P"]
        assert len(parsed) == 1, first
        dying_server.die = "unread"
        # Bind/Execute only: the dead server had the statement, the new one must be given it
        assert c.execute("SELECT 1 AS once", prepare=True).fetchone()[0] == 1
        assert dying_server.nconns == 2, "the request did not go to a new server"
        second = dying_server.of(2)
        assert [t for (t, _) in second if t in "PB"] == ["P", "B"], second
        assert [name for (t, name) in second if t in "PB"] == parsed * 2, second
        assert dying_server.of(1) == first, "the dead server read the request"
        # and it goes on as usual on the new server
        assert c.execute("SELECT 1 AS once", prepare=True).fetchone()[0] == 1
        assert [t for (t, _) in dying_server.of(2) if t == "P"] == ["P"]
    _assert_serves(p)


@pytest.mark.pgsluice_only
def test_parse_of_a_new_statement_sent_to_a_server_that_dies_unread_is_answered_once(pooler, dying_server):
    p = _fake_pooler(pooler, dying_server)
    with clients.connect(p, "fakedb", prepare_threshold=0) as c:
        assert c.execute("SELECT 1 AS first", prepare=True).fetchone()[0] == 1
        dying_server.die = "unread"
        # its Parse put the name in the client's map for the dead server: undone, then done again for
        # the new one (left in place, the resent Parse would meet a name in use: 42P05)
        assert c.execute("SELECT 1 AS second", prepare=True).fetchone()[0] == 1
        assert dying_server.nconns == 2, "the request did not go to a new server"
        assert not [m for m in dying_server.of(1) if m[1] and "second" in str(m)]
        # both statements are known to the client once, each prepared on the new server when used
        assert c.execute("SELECT 1 AS first", prepare=True).fetchone()[0] == 1
        assert c.execute("SELECT 1 AS second", prepare=True).fetchone()[0] == 1
        parses = [name for (t, name) in dying_server.of(2) if t == "P"]
        assert len(parses) == len(set(parses)) == 2, dying_server.of(2)
    log = p.log_text()
    assert "server closed before reading its client's request" in log
    _assert_serves(p)
