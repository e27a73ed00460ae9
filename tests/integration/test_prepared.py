"""Prepared statements in transaction mode (pool of 5 unless said): named protocol-level statements
keep working when the next transaction runs on another server connection."""
import asyncio
import io
import threading
import time

import pytest

from harness import clients
from test_pgbench import _assert_run_ok, pgbench_init  # noqa: F401  (module fixture)

pytestmark = pytest.mark.pgsluice_only

TX = {"pool_mode": "transaction", "default_pool_size": 5}


def _pq(p):
    from psycopg import pq
    c = pq.PGconn.connect(p.dsn().encode())
    assert c.status == pq.ConnStatus.OK, c.error_message
    return c


def _ok(res):
    from psycopg import pq
    assert res.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK), res.error_message
    return res


@pytest.mark.core
@pytest.mark.client("pgbench", "`-M prepared` (named statements), 50 clients, TPC-B-like and `-S`")
def test_pgbench_prepared_50_clients_over_pool_of_5_have_no_failed_transactions(pgbench_init, pooler):  # noqa: F811
    assert pgbench_init.returncode == 0, "pgbench -i failed"
    p = pooler(TX)
    for script in ([], ["-S"]):
        result = clients.pgbench(p, "-M", "prepared", "-c", "50", "-j", "2", "-T", "3", "-n", *script)
        _assert_run_ok(result, p)


@pytest.mark.client("asyncpg", "defaults (statement cache 100, named statements): a pool of 10-20 connections, "
                    "100 concurrent tasks with queries and transactions")
def test_asyncpg_default_statement_cache_100_concurrent_tasks(pooler):
    import asyncpg
    p = pooler(TX)

    async def main():
        pool = await asyncpg.create_pool(p.url(), min_size=10, max_size=20)  # default statement cache

        async def task(i):
            async with pool.acquire() as con:
                assert await con.fetchval("SELECT $1::int * 2", i) == 2 * i
                async with con.transaction():
                    a = await con.fetchval("SELECT $1::int + 1", i)
                    b = await con.fetchval("SELECT txid_current() * 0 + $1::bigint", a)
                assert b == i + 1
                rows = await con.fetch("SELECT g FROM generate_series(1, $1::int) g", i % 7 + 1)
                assert [r["g"] for r in rows] == list(range(1, i % 7 + 2))
            return i

        done = await asyncio.gather(*(task(i) for i in range(100)))
        await pool.close()
        return done

    assert sorted(asyncio.run(main())) == list(range(100))


@pytest.mark.client("psycopg3", "`prepare=True` on two connections sharing one server, inside and outside "
                    "transactions")
def test_psycopg_prepare_true_survives_server_switches(pooler):
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1})
    with clients.connect(p, prepare_threshold=5) as a, clients.connect(p, prepare_threshold=5) as b:
        for i in range(20):
            assert a.execute("SELECT %s::int + 1", (i,), prepare=True).fetchone()[0] == i + 1
            assert b.execute("SELECT %s::int + 2", (i,), prepare=True).fetchone()[0] == i + 2
            with a.transaction():
                assert a.execute("SELECT %s::int * 3", (i,), prepare=True).fetchone()[0] == 3 * i


def test_syntax_error_in_named_parse_leaves_no_entry_and_a_good_parse_works(pooler):
    from psycopg import pq
    p = pooler(TX)
    c = _pq(p)
    bad = c.prepare(b"s1", b"SELEC 1")
    assert bad.status == pq.ExecStatus.FATAL_ERROR
    assert bad.error_field(pq.DiagnosticField.SQLSTATE) == b"42601"
    missing = c.exec_prepared(b"s1", [])
    assert missing.status == pq.ExecStatus.FATAL_ERROR
    assert missing.error_field(pq.DiagnosticField.SQLSTATE) == b"26000"  # does not exist
    _ok(c.prepare(b"s1", b"SELECT 41 + 1"))
    assert _ok(c.exec_prepared(b"s1", [])).get_value(0, 0) == b"42"
    c.finish()


class Raw:
    """A bare protocol client (auth_type trust) to send exactly the messages a test needs."""

    def __init__(self, p):
        import struct
        self.struct = struct
        self.sock = clients.raw_socket(p)
        self.sock.sendall(clients.startup_packet())
        self.until_ready()

    def msg(self, t, body=b""):
        self.sock.sendall(self.pack(t, body))

    def pack(self, t, body=b""):
        return t + self.struct.pack("!I", len(body) + 4) + body

    def recv_msg(self):
        head = self._read(5)
        n = self.struct.unpack("!I", head[1:5])[0]
        return head[:1], self._read(n - 4)

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "connection closed"
            buf += chunk
        return buf

    def until_ready(self):
        got = []
        while True:
            t, body = self.recv_msg()
            got.append((t, body))
            if t == b"Z":
                return got

    def types(self, got):
        return b"".join(t for t, _ in got)

    def parse(self, name, sql):
        self.msg(b"P", name + b"\0" + sql + b"\0" + b"\0\0")

    def bind_execute(self, name):
        self.msg(b"B", b"\0" + name + b"\0" + b"\0\0" + b"\0\0" + b"\0\0")
        self.msg(b"E", b"\0" + b"\0\0\0\0")

    def close(self, name):
        self.msg(b"C", b"S" + name + b"\0")

    def prepare(self, name, sql):
        """Parse and Sync, answered."""
        self.parse(name, sql)
        self.msg(b"S")
        assert self.types(self.until_ready()) == b"1Z"

    def simple(self, sql, types):
        """A simple query, answered with these message types."""
        self.msg(b"Q", sql + b"\0")
        got = self.until_ready()
        assert self.types(got) == types, got
        return got

    def fails_with(self, got, sqlstate):
        """got is an error then ReadyForQuery, with this SQLSTATE."""
        assert self.types(got) == b"EZ" and b"C" + sqlstate + b"\0" in got[0][1], got

    def bind_execute_sync_fails_with(self, name, sqlstate):
        self.bind_execute(name)
        self.msg(b"S")
        self.fails_with(self.until_ready(), sqlstate)


def _trust_pooler(pooler, cluster):
    db = "host=127.0.0.1 port=%d dbname=appdb password=%s" % (cluster.primary_port, cluster.passwords["app"])
    return pooler({"pool_mode": "transaction", "default_pool_size": 1, "auth_type": "trust"}, dbs={"appdb": db})


def test_close_then_reuse_the_name_for_another_statement(pooler, cluster):
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.parse(b"q", b"SELECT 'first'")
    c.bind_execute(b"q")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"12DCZ" and got[2][1].endswith(b"first")
    c.close(b"q")
    c.parse(b"q", b"SELECT 'second'")
    c.bind_execute(b"q")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"312DCZ", got
    assert got[3][1].endswith(b"second")


def test_parse_and_close_answered_in_order_with_flush(pooler, cluster):
    p = _trust_pooler(pooler, cluster)
    warm = Raw(p)
    warm.parse(b"w", b"SELECT 'warm'")
    warm.msg(b"S")
    assert warm.types(warm.until_ready()) == b"1Z"
    c = Raw(p)
    c.parse(b"mine", b"SELECT 'warm'")  # known statement: answered by pgsluice
    c.msg(b"H")
    t, _ = c.recv_msg()
    assert t == b"1"
    c.bind_execute(b"mine")
    c.close(b"mine")
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"2DC3Z"


def test_answer_to_a_parse_sent_after_a_sync_comes_after_that_ready_for_query(pooler, cluster):
    # Inside a transaction the client pipelines Sync, then Parse of a statement the server already
    # has (pgsluice answers that Parse itself) and Flush. The ParseComplete belongs after the
    # ReadyForQuery that answers the Sync.
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.parse(b"a", b"SELECT 'same'")
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"1Z"
    c.msg(b"Q", b"BEGIN\0")
    got = c.until_ready()
    assert c.types(got) == b"CZ" and got[-1][1] == b"T"
    # one write, so that the pooler sees all three before the server answers the Sync
    c.sock.sendall(c.pack(b"S") + c.pack(b"P", b"b\0SELECT 'same'\0\0\0") + c.pack(b"H"))
    got = [c.recv_msg(), c.recv_msg()]
    assert c.types(got) == b"Z1", got
    c.bind_execute(b"b")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"2DCZ" and got[1][1].endswith(b"same")
    c.msg(b"Q", b"COMMIT\0")
    assert c.types(c.until_ready()) == b"CZ"


def test_a_statement_shared_by_many_clients_is_prepared_once_per_server(pooler):
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1})
    conns = [_pq(p) for _ in range(5)]
    for c in conns:
        _ok(c.prepare(b"shared", b"SELECT 7 AS shared_marker"))
        assert _ok(c.exec_prepared(b"shared", [])).get_value(0, 0) == b"7"
    n = _ok(conns[0].exec_(b"SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT 7 AS shared_marker'"))
    assert n.get_value(0, 0) == b"1"
    for c in conns:
        c.finish()


def test_deallocate_all_clears_only_this_clients_statements(pooler):
    from psycopg import pq
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1})
    a, b = _pq(p), _pq(p)
    _ok(a.prepare(b"x", b"SELECT 1"))
    _ok(b.prepare(b"x", b"SELECT 1"))
    _ok(a.exec_(b"DEALLOCATE ALL"))
    gone = a.exec_prepared(b"x", [])
    assert gone.status == pq.ExecStatus.FATAL_ERROR
    assert _ok(b.exec_prepared(b"x", [])).get_value(0, 0) == b"1"
    _ok(a.exec_(b"DISCARD ALL"))
    assert _ok(b.exec_prepared(b"x", [])).get_value(0, 0) == b"1"
    a.finish()
    b.finish()


def test_discard_all_that_fails_keeps_the_clients_statements(pooler):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression discard_all_in_transaction):
    DISCARD ALL inside a transaction block fails (25001) and deallocates nothing, nor does
    DEALLOCATE ALL in a failed transaction (25P02). The client's statements work afterwards, as on
    PostgreSQL; a DISCARD ALL that runs still ends them."""
    from psycopg import pq
    sqlstate = pq.DiagnosticField.SQLSTATE
    p = pooler({"pool_mode": "transaction", "default_pool_size": 2})
    a = _pq(p)
    _ok(a.prepare(b"x", b"SELECT 1"))
    _ok(a.exec_(b"BEGIN"))
    assert a.exec_(b"DISCARD ALL").error_field(sqlstate) == b"25001"
    _ok(a.exec_(b"ROLLBACK"))
    assert _ok(a.exec_prepared(b"x", [])).get_value(0, 0) == b"1"
    _ok(a.exec_(b"BEGIN"))
    assert a.exec_(b"SELECT 1/0").error_field(sqlstate) == b"22012"
    assert a.exec_(b"DEALLOCATE ALL").error_field(sqlstate) == b"25P02"
    _ok(a.exec_(b"ROLLBACK"))
    assert _ok(a.exec_prepared(b"x", [])).get_value(0, 0) == b"1"
    _ok(a.exec_(b"DISCARD ALL"))
    assert a.exec_prepared(b"x", []).error_field(sqlstate) == b"26000"
    _ok(a.prepare(b"x", b"SELECT 2"))  # the name is free again
    assert _ok(a.exec_prepared(b"x", [])).get_value(0, 0) == b"2"
    a.finish()


def test_thousand_distinct_statements_with_max_prepared_statements_100(pooler):
    p = pooler({"pool_mode": "transaction", "default_pool_size": 2, "max_prepared_statements": 100})
    c = _pq(p)
    for i in range(1000):
        name = b"st%d" % i
        _ok(c.prepare(name, b"SELECT %d AS v" % i))
        assert _ok(c.exec_prepared(name, [])).get_value(0, 0) == str(i).encode()
    for i in (0, 1, 500, 999):  # evicted long ago on the server: prepared again transparently
        assert _ok(c.exec_prepared(b"st%d" % i, [])).get_value(0, 0) == str(i).encode()
    n = _ok(c.exec_(b"SELECT count(*) FROM pg_prepared_statements"))
    assert int(n.get_value(0, 0)) <= 100
    c.finish()


@pytest.mark.client("psycopg3", "pipeline mode: 8 prepared statements in one pipeline")
def test_pipelined_parse_bind_execute_without_sync_in_between(pooler):
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1})
    with clients.connect(p, prepare_threshold=5) as c:
        with c.pipeline():
            curs = [c.execute("SELECT %s::int * 10", (i,), prepare=True) for i in range(1, 6)]
            curs += [c.execute("SELECT %s::text || 'x'", (str(i),), prepare=True) for i in range(3)]
        assert [cur.fetchone()[0] for cur in curs] == [10, 20, 30, 40, 50, "0x", "1x", "2x"]


def test_prepared_statement_survives_its_server_being_terminated(pooler, direct):
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1})
    c = _pq(p)
    _ok(c.prepare(b"k", b"SELECT pg_backend_pid()"))
    pid = int(_ok(c.exec_prepared(b"k", [])).get_value(0, 0))
    d = direct("appdb")
    d.execute("SELECT pg_terminate_backend(%s)", (pid,))
    for _ in range(100):
        if d.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 0:
            break
        time.sleep(0.05)
    # pgsluice notices an idle server's EOF on its next loop turn (and peeks at servers idle for
    # over 100 ms before reuse); give it that turn, as any real client would have
    time.sleep(0.2)
    new_pid = int(_ok(c.exec_prepared(b"k", [])).get_value(0, 0))
    assert new_pid != pid
    c.finish()


def test_unnamed_statements_and_session_mode_still_work(pooler):
    p = pooler({"pool_mode": "session", "default_pool_size": 2})
    with clients.connect(p, prepare_threshold=5) as c:
        assert c.execute("SELECT %s::int", (5,)).fetchone()[0] == 5  # unnamed
        assert c.execute("SELECT %s::int", (6,), prepare=True).fetchone()[0] == 6
        names = [r[0] for r in c.execute("SELECT name FROM pg_prepared_statements").fetchall()]
        assert any(n.startswith("_pg3_") for n in names), names  # session mode: names reach the server untouched


def test_prepares_hits_and_evictions_are_counted_in_show_stats_and_servers(pooler):
    from admin_helpers import show, stats_row
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1, "max_prepared_statements": 2})
    c = _pq(p)
    for i in range(4):  # four statements on a server that keeps two: two evictions
        _ok(c.prepare(b"e%d" % i, b"SELECT %d" % i))
        for _ in range(3):
            _ok(c.exec_prepared(b"e%d" % i, []))
    time.sleep(0.3)  # counters of a busy server are flushed by the next tick
    st = stats_row(p, "appdb")
    assert st["total_client_parse_count"] == 4
    assert st["total_server_parse_count"] == 4
    assert st["total_bind_count"] == 12
    servers = [r for r in show(p, "SERVERS") if r["database"] == "appdb"]
    assert [r["prepared_statements"] for r in servers] == [2]
    c.finish()


def test_parse_of_a_name_in_use_fails_like_postgresql_and_keeps_the_old_statement(pooler, cluster):
    # PostgreSQL answers 42P05, keeps the existing statement, ignores the rest up to Sync, and
    # inside a transaction block the transaction fails.
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.parse(b"q", b"SELECT 'first'")
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"1Z"
    c.parse(b"q", b"SELECT 'second'")
    c.bind_execute(b"q")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"EZ", got
    assert b"C42P05\0" in got[0][1] and b'prepared statement "q" already exists' in got[0][1]
    assert got[-1][1] == b"I"
    c.bind_execute(b"q")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"2DCZ" and got[1][1].endswith(b"first")
    # the same between transactions, where pgsluice could answer a Parse by itself
    other = Raw(p)
    other.parse(b"q", b"SELECT 'first'")
    other.msg(b"S")
    assert other.types(other.until_ready()) == b"1Z"
    other.parse(b"q", b"SELECT 'first'")
    other.msg(b"S")
    assert other.types(other.until_ready()) == b"EZ"
    # inside a transaction block
    c.msg(b"Q", b"BEGIN\0")
    assert c.types(c.until_ready()) == b"CZ"
    c.parse(b"q", b"SELECT 'third'")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"EZ" and got[-1][1] == b"E", got
    c.msg(b"Q", b"ROLLBACK\0")
    got = c.until_ready()
    assert c.types(got) == b"CZ" and got[-1][1] == b"I"


def test_parse_of_a_name_in_use_reports_an_earlier_error_first_as_postgresql_does(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression dup_name_in_failed_transaction):
    PostgreSQL checks the text and refuses a failed transaction before it looks at the name, so a
    Parse of a name in use answers 42601 for bad SQL and 25P02 in a failed transaction, not 42P05."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.parse(b"q", b"SELECT 'first'")
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"1Z"
    c.parse(b"q", b"SELEC 'second'")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"EZ" and b"C42601\0" in got[0][1], got
    c.msg(b"Q", b"BEGIN\0")
    assert c.types(c.until_ready()) == b"CZ"
    c.msg(b"Q", b"SELECT 1/0\0")
    assert c.types(c.until_ready()) == b"EZ"
    c.parse(b"q", b"SELECT 'third'")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"EZ" and b"C25P02\0" in got[0][1], got
    c.msg(b"Q", b"ROLLBACK\0")
    assert c.types(c.until_ready()) == b"CZ"
    c.bind_execute(b"q")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"2DCZ" and got[1][1].endswith(b"first"), got


def test_requests_between_an_error_and_the_sync_get_no_answer_and_the_server_is_released(pooler, cluster):
    # The server answers a failed Parse at once and then discards everything up to Sync. Requests
    # that arrive after the error (here in later packets) must not be waited for.
    db = "host=127.0.0.1 port=%d dbname=appdb password=%s" % (cluster.primary_port, cluster.passwords["app"])
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1, "auth_type": "trust",
                "query_wait_timeout": 5}, dbs={"appdb": db})
    c = Raw(p)
    c.parse(b"bad", b"SELEC 1")
    c.msg(b"H")
    t, body = c.recv_msg()
    assert t == b"E" and b"C42601\0" in body
    c.bind_execute(b"bad")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"Z" and got[-1][1] == b"I"
    # the pool's only server is free again
    with clients.connect(p) as other:
        assert other.execute("SELECT 7").fetchone()[0] == 7
    c.parse(b"good", b"SELECT 'ok'")
    c.bind_execute(b"good")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"12DCZ" and got[2][1].endswith(b"ok")


@pytest.mark.client("psycopg3", "defaults (automatic prepare after 5 runs, `_pg3_N`): 10 threads x 30 rounds in "
                    "autocommit and in transactions, then the same statements in a pipeline with a failing one")
def test_psycopg_default_automatic_prepare_from_10_threads_and_in_a_pipeline(pooler):
    import psycopg
    p = pooler(TX)
    errors = []

    def work(t):
        try:
            with psycopg.connect(p.dsn(), autocommit=True) as c:  # psycopg's default prepare_threshold (5)
                for i in range(30):
                    assert c.execute("SELECT %s::int * 2 AS v", (i,)).fetchone() == (2 * i,)
                    with c.transaction():
                        x = c.execute("SELECT txid_current()").fetchone()[0]
                        assert c.execute("SELECT %s::text || '-' || %s::int", ("t", t)).fetchone() == ("t-%d" % t,)
                        assert c.execute("SELECT txid_current()").fetchone()[0] == x
                names = [r[0] for r in c.execute("SELECT name FROM pg_prepared_statements").fetchall()]
                assert names and not any(n.startswith("_pg3_") for n in names), names  # the pooler's names
                with pytest.raises(psycopg.errors.DivisionByZero):
                    with c.pipeline():
                        a = c.execute("SELECT %s::int * 2 AS v", (21,))
                        b = c.execute("SELECT 1 / %s::int", (0,))
                        b.fetchone()
                assert a.fetchone() == (42,)
                with c.pipeline():
                    curs = [c.execute("SELECT %s::int * 2 AS v", (i,)) for i in range(10)]
                assert [cur.fetchone()[0] for cur in curs] == [2 * i for i in range(10)]
        except BaseException as e:  # noqa: B902 - reported below
            errors.append("thread %d: %r" % (t, e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(10)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors[:3]


@pytest.mark.client("asyncpg", "defaults: binary COPY in (`copy_records_to_table`) and out (`copy_from_query`), "
                    "`executemany`, `prepare()`, a cursor in a transaction, a failing statement, from 8 connections")
def test_asyncpg_default_statement_cache_copy_executemany_prepare_and_cursor(pooler):
    import asyncpg
    p = pooler(TX)

    async def one(k):
        con = await asyncpg.connect(p.url(), command_timeout=60)  # default statement cache
        table = "apg_copy%d" % k
        try:
            await con.execute("DROP TABLE IF EXISTS %s; CREATE TABLE %s (id int PRIMARY KEY, s text)" % (table, table))
            n = await con.copy_records_to_table(table, records=[(i, "r%d" % i) for i in range(2000)])
            assert n == "COPY 2000", n
            await con.executemany("INSERT INTO %s VALUES ($1, $2)" % table, [(i, "m%d" % i) for i in range(2000, 2500)])
            st = await con.prepare("SELECT s FROM %s WHERE id = $1" % table)
            for i in (0, 1999, 2000, 2499):
                assert await st.fetchval(i) == ("r%d" % i if i < 2000 else "m%d" % i)
            async with con.transaction():
                seen = [r["id"] async for r in con.cursor("SELECT id FROM %s ORDER BY id" % table, prefetch=100)]
            assert seen == list(range(2500))
            with pytest.raises(asyncpg.UniqueViolationError):
                await con.execute("INSERT INTO %s VALUES ($1, 'dup')" % table, 1)
            buf = io.BytesIO()
            await con.copy_from_query("SELECT id, s FROM %s WHERE id < $1 ORDER BY id" % table, 10, output=buf,
                                      format="csv")
            assert buf.getvalue().decode().splitlines() == ["%d,r%d" % (i, i) for i in range(10)]
            assert await st.fetchval(5) == "r5"  # the prepared statement still works after all that
            await con.execute("DROP TABLE %s" % table)
        finally:
            await con.close()
        return k

    async def main():
        return await asyncio.gather(*(one(k) for k in range(8)))

    assert sorted(asyncio.run(main())) == list(range(8))


@pytest.mark.client("pgbench", "`\\startpipeline` / `\\endpipeline` script with `-M prepared`, 10 clients")
def test_pgbench_pipeline_mode_with_prepared_statements(pgbench_init, pooler, tmp_path):  # noqa: F811
    assert pgbench_init.returncode == 0, "pgbench -i failed"
    p = pooler(TX)
    script = tmp_path / "pipeline.sql"
    script.write_text("\\set aid random(1, 100000)\n\\set delta random(-5, 5)\n\\startpipeline\n"
                      "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n"
                      "UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n"
                      "SELECT :delta::int + 1;\n\\endpipeline\n")
    result = clients.pgbench(p, "-M", "prepared", "-c", "10", "-j", "2", "-T", "3", "-n", "-f", str(script))
    _assert_run_ok(result, p)


def test_pipelined_batch_after_a_failed_one_finds_the_statement_prepared_in_it(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression reprepare_in_failed_batch):
    pgsluice prepares a client's statement on a server that lacks it inside the client's batch; when
    that batch fails before the Parse, PostgreSQL skips it, and the next batch, pipelined behind the
    Sync, must not count on it. Likewise for the Close of an evicted statement."""
    db = "host=127.0.0.1 port=%d dbname=appdb password=%s" % (cluster.primary_port, cluster.passwords["app"])
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1, "auth_type": "trust",
                "max_prepared_statements": 1}, dbs={"appdb": db})
    c = Raw(p)
    c.parse(b"s1", b"SELECT 'one'")
    c.parse(b"s2", b"SELECT 'two'")  # evicts s1's statement from the server (Close)
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"11Z"
    # one write: a batch that fails first (s1 is prepared again inside it, s2 closed), then one
    # that uses both
    batch1 = c.pack(b"P", b"\0SELEC 1\0\0\0") + c.pack(b"B", b"\0s1\0\0\0\0\0\0\0") + c.pack(b"S")
    batch2 = (c.pack(b"B", b"\0s1\0\0\0\0\0\0\0") + c.pack(b"E", b"\0\0\0\0\0")
              + c.pack(b"B", b"\0s2\0\0\0\0\0\0\0") + c.pack(b"E", b"\0\0\0\0\0") + c.pack(b"S"))
    c.sock.sendall(batch1 + batch2)
    got = c.until_ready()
    assert c.types(got) == b"EZ", got
    got = c.until_ready()
    assert c.types(got) == b"2DC2DCZ", got
    assert got[1][1].endswith(b"one") and got[4][1].endswith(b"two")


def test_pipelined_bind_of_a_statement_whose_parse_fails_says_it_does_not_exist(pooler, cluster):
    """The Bind's statement is the one the first batch's Parse (unanswered behind a Sync) creates or
    not: the client gets PostgreSQL's answer to its Bind, 26000 (the message names pgsluice's name
    for the statement)."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.sock.sendall(c.pack(b"P", b"s1\0SELEC 1\0\0\0") + c.pack(b"S")
                   + c.pack(b"B", b"\0s1\0\0\0\0\0\0\0") + c.pack(b"E", b"\0\0\0\0\0") + c.pack(b"S"))
    first, second = c.until_ready(), c.until_ready()
    assert c.types(first) == b"EZ" and b"C42601\0" in first[0][1], first
    assert c.types(second) == b"EZ" and b"C26000\0" in second[0][1], second
    c.parse(b"s1", b"SELECT 'fine'")
    c.bind_execute(b"s1")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"12DCZ" and got[2][1].endswith(b"fine"), got


def test_parse_and_close_skipped_after_an_error_in_their_batch_leave_the_names_as_they_were(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression synth_answers_in_failed_batch):
    pgsluice answers some Parse and Close messages itself; when an earlier message of the same
    batch fails, PostgreSQL skips them, so the Parse's name stays free and the closed name stays."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.parse(b"q", b"SELECT 'kept'")
    c.parse(b"known", b"SELECT 'new'")  # the server has this statement from now on
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"11Z"
    # one write, so that pgsluice sees the whole batch before the error: the Bind fails and the
    # rest is skipped
    c.sock.sendall(c.pack(b"B", b"\0no_such\0\0\0\0\0\0\0") + c.pack(b"P", b"fresh\0SELECT 'new'\0\0\0")
                   + c.pack(b"C", b"Sq\0") + c.pack(b"S"))
    got = c.until_ready()
    assert c.types(got) == b"EZ" and b"C26000\0" in got[0][1], got
    c.bind_execute(b"q")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"2DCZ" and got[1][1].endswith(b"kept"), got
    c.bind_execute(b"fresh")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"EZ" and b"C26000\0" in got[0][1], got
    c.parse(b"fresh", b"SELECT 'new'")  # the name is free
    c.bind_execute(b"fresh")
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"12DCZ"


def test_answer_pgsluice_gives_itself_after_a_server_answer_comes_on_flush(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression synth_after_flush): Parse of
    an unnamed statement, then Parse of a statement the server already has (pgsluice answers it),
    then Flush. The second ParseComplete was only sent when something else came from the server
    or the client: a client waiting after its Flush waited forever."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.parse(b"q", b"SELECT 'known'")
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"1Z"
    c.sock.sendall(c.pack(b"P", b"\0SELECT 1\0\0\0") + c.pack(b"P", b"again\0SELECT 'known'\0\0\0") + c.pack(b"H"))
    got = [c.recv_msg(), c.recv_msg()]  # the socket times out after 5 s
    assert c.types(got) == b"11", got
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"Z"


def test_statement_whose_parse_was_skipped_does_not_exist_in_the_next_pipelined_batch(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression skipped_parse_then_bind):
    the client's Parse s1 is skipped (an earlier message of its batch failed), so the next batch's
    Bind s1 fails with 26000, as on PostgreSQL: pgsluice must not prepare it again by itself."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.sock.sendall(c.pack(b"B", b"\0no_such\0\0\0\0\0\0\0") + c.pack(b"P", b"s1\0SELECT 'never'\0\0\0") + c.pack(b"S")
                   + c.pack(b"B", b"\0s1\0\0\0\0\0\0\0") + c.pack(b"E", b"\0\0\0\0\0") + c.pack(b"S"))
    first, second = c.until_ready(), c.until_ready()
    assert c.types(first) == b"EZ", first
    assert c.types(second) == b"EZ" and b"C26000\0" in second[0][1], second


def test_statements_prepared_behind_a_pipelined_discard_all_work(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression parse_behind_discard_all):
    Parse and Bind pipelined behind DISCARD ALL run after it on the server, so they cannot count on
    what the server had prepared before."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.parse(b"s1", b"SELECT 'one'")
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"1Z"
    c.sock.sendall(c.pack(b"Q", b"DISCARD ALL\0") + c.pack(b"P", b"s1\0SELECT 'one'\0\0\0")
                   + c.pack(b"B", b"\0s1\0\0\0\0\0\0\0") + c.pack(b"E", b"\0\0\0\0\0") + c.pack(b"S"))
    first, second = c.until_ready(), c.until_ready()
    assert c.types(first) == b"CZ", first
    assert c.types(second) == b"12DCZ" and second[2][1].endswith(b"one"), second


def test_close_answered_by_pgsluice_comes_before_the_rows_of_the_next_execute(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression synth_before_datarow): the
    CloseComplete pgsluice gives itself between a Bind and an Execute went out after the first
    DataRow, which does not pass through the queue of answers."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.parse(b"s1", b"SELECT 'one'")
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"1Z"
    c.sock.sendall(c.pack(b"P", b"\0SELECT 2\0\0\0") + c.pack(b"B", b"\0\0\0\0\0\0\0\0") + c.pack(b"C", b"Ss1\0")
                   + c.pack(b"E", b"\0\0\0\0\0") + c.pack(b"S"))
    got = c.until_ready()
    assert c.types(got) == b"123DCZ", got


def test_parse_then_close_of_a_name_skipped_in_a_failed_batch_leave_it_free(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression parse_close_skipped): the
    skipped requests are undone latest first, so the Close does not give back the name its skipped
    Parse never created."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.sock.sendall(c.pack(b"D", b"Pno_such\0") + c.pack(b"P", b"s2\0SELECT 'x'\0\0\0") + c.pack(b"C", b"Ss2\0")
                   + c.pack(b"S"))
    got = c.until_ready()
    assert c.types(got) == b"EZ" and b"C34000\0" in got[0][1], got
    c.parse(b"s2", b"SELECT 'y'")
    c.bind_execute(b"s2")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"12DCZ" and got[2][1].endswith(b"y"), got


def test_parse_of_a_known_statement_in_a_failed_transaction_is_refused(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression parse_in_failed_transaction):
    pgsluice answers a Parse of a statement the server has by itself, but in a failed transaction
    PostgreSQL refuses every Parse (25P02), and the name must not exist afterwards; also when the
    Parse is pipelined behind the batch whose error fails the transaction."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.parse(b"s1", b"SELECT 'one'")
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"1Z"
    c.msg(b"Q", b"BEGIN\0")
    assert c.types(c.until_ready()) == b"CZ"
    c.msg(b"Q", b"SELECT 1/0\0")
    assert c.types(c.until_ready()) == b"EZ"
    c.parse(b"s2", b"SELECT 'one'")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"EZ" and b"C25P02\0" in got[0][1], got
    c.msg(b"Q", b"ROLLBACK\0")
    assert c.types(c.until_ready()) == b"CZ"
    c.msg(b"Q", b"BEGIN\0")
    assert c.types(c.until_ready()) == b"CZ"
    c.sock.sendall(c.pack(b"B", b"\0no_such\0\0\0\0\0\0\0") + c.pack(b"S") + c.pack(b"P", b"s3\0SELECT 'one'\0\0\0")
                   + c.pack(b"S"))
    first, second = c.until_ready(), c.until_ready()
    assert c.types(first) == b"EZ" and c.types(second) == b"EZ" and b"C25P02\0" in second[0][1], second
    c.msg(b"Q", b"ROLLBACK\0")
    assert c.types(c.until_ready()) == b"CZ"
    for name in (b"s2", b"s3"):
        c.bind_execute(name)
        c.msg(b"S")
        got = c.until_ready()
        assert c.types(got) == b"EZ" and b"C26000\0" in got[0][1], got
    c.bind_execute(b"s1")
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"2DCZ"


def test_close_of_the_unnamed_statement_between_transactions_reaches_the_server(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression close_unnamed_between_transactions):
    pgsluice answered Close of the unnamed statement by itself between transactions, so the
    server kept it and a later Bind of it worked where PostgreSQL answers 26000."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.parse(b"", b"SELECT 'unnamed'")
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"1Z"
    c.msg(b"C", b"S\0")
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"3Z"
    c.bind_execute(b"")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"EZ" and b"C26000\0" in got[0][1], got


def test_bind_of_a_failed_statement_evicted_meanwhile_says_it_does_not_exist(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression failed_statement_evicted):
    with max_prepared_statements 2, the pipelined Bind of s1 (whose Parse fails) came after s1's
    statement was evicted for two others; pgsluice prepared it again and passed on its syntax
    error, where PostgreSQL answers 26000 for the Bind."""
    db = "host=127.0.0.1 port=%d dbname=appdb password=%s" % (cluster.primary_port, cluster.passwords["app"])
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1, "auth_type": "trust",
                "max_prepared_statements": 2}, dbs={"appdb": db})
    c = Raw(p)
    c.sock.sendall(c.pack(b"P", b"s1\0SELEC 1\0\0\0") + c.pack(b"S") + c.pack(b"P", b"s2\0SELECT 2\0\0\0")
                   + c.pack(b"P", b"s3\0SELECT 3\0\0\0") + c.pack(b"B", b"\0s1\0\0\0\0\0\0\0") + c.pack(b"S"))
    first, second = c.until_ready(), c.until_ready()
    assert c.types(first) == b"EZ" and b"C42601\0" in first[0][1], first
    assert c.types(second) == b"11EZ" and b"C26000\0" in second[2][1], second


def test_parse_of_a_name_in_use_in_a_failed_transaction_reports_the_syntax_error_first(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression dup_name_in_known_failed_transaction):
    a DISCARD ALL that fails inside a transaction block leaves the client's statements, but pgsluice no
    longer counts on the server's; a Parse of a name in use with a syntax error, in that failed
    transaction, got 25P02 from pgsluice's own Parse of the old statement, where PostgreSQL reports
    the syntax error (42601) first."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.parse(b"s1", b"SELECT 'one'")
    c.msg(b"S")
    assert c.types(c.until_ready()) == b"1Z"
    c.msg(b"Q", b"BEGIN\0")
    assert c.types(c.until_ready()) == b"CZ"
    c.msg(b"Q", b"DISCARD ALL\0")
    got = c.until_ready()
    assert c.types(got) == b"EZ" and b"C25001\0" in got[0][1], got
    c.parse(b"s1", b"SELEC 1")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"EZ" and b"C42601\0" in got[0][1], got
    c.parse(b"s1", b"SELECT 2")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"EZ" and b"C25P02\0" in got[0][1], got
    c.msg(b"Q", b"ROLLBACK\0")
    assert c.types(c.until_ready()) == b"CZ"
    c.bind_execute(b"s1")  # the statement is still the client's
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"2DCZ" and got[1][1].endswith(b"one"), got


def test_close_skipped_in_a_failed_batch_then_deallocate_all_leaves_the_name_gone(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression skipped_close_then_deallocate_all):
    a Close skipped by PostgreSQL (its batch failed earlier) was undone into the client's names as
    they stood after a DEALLOCATE ALL pipelined behind it, so pgsluice still knew the statement and
    prepared it again for a later Bind, where PostgreSQL answers 26000."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.prepare(b"s1", b"SELECT 'one'")
    c.sock.sendall(c.pack(b"D", b"Pno_such\0") + c.pack(b"C", b"Ss1\0") + c.pack(b"S")
                   + c.pack(b"Q", b"DEALLOCATE ALL\0"))
    first, second = c.until_ready(), c.until_ready()
    c.fails_with(first, b"34000")
    assert c.types(second) == b"CZ", second
    c.bind_execute_sync_fails_with(b"s1", b"26000")


def test_discard_all_failing_in_a_block_then_deallocate_all_after_rollback_leaves_no_name(pooler, cluster):
    """The same for a DISCARD ALL that fails (inside a transaction block) with a DEALLOCATE ALL
    pipelined behind its ROLLBACK: the failing one's names go back to what the later one set aside,
    which then happens, so no name is left."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.prepare(b"s1", b"SELECT 'one'")
    c.simple(b"BEGIN", b"CZ")
    c.sock.sendall(c.pack(b"Q", b"DISCARD ALL\0") + c.pack(b"Q", b"ROLLBACK\0") + c.pack(b"Q", b"DEALLOCATE ALL\0"))
    first, second, third = c.until_ready(), c.until_ready(), c.until_ready()
    c.fails_with(first, b"25001")
    assert c.types(second) == b"CZ" and c.types(third) == b"CZ", (second, third)
    c.bind_execute_sync_fails_with(b"s1", b"26000")


def test_pipelined_bind_of_a_statement_whose_parse_failed_in_a_failed_transaction_says_it_does_not_exist(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression bind_after_parse_refused_in_failed_transaction):
    in a failed transaction, pipelined batches: Parse s3, Parse s1 of the same text (both refused:
    25P02), then a Bind of s1. PostgreSQL looks the statement up first and answers 26000. pgsluice,
    in doubt whether the server has the text (s3's Parse may fail), prepared it again for the Bind
    and passed on its own Parse's 25P02."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.simple(b"BEGIN", b"CZ")
    c.simple(b"SELECT 1/0", b"EZ")
    c.sock.sendall(c.pack(b"P", b"s3\0SELECT 'same'\0\0\0") + c.pack(b"S") + c.pack(b"P", b"s1\0SELECT 'same'\0\0\0")
                   + c.pack(b"S") + c.pack(b"B", b"\0s1\0\0\0\0\0\0\0") + c.pack(b"E", b"\0\0\0\0\0") + c.pack(b"S"))
    first, second, third = c.until_ready(), c.until_ready(), c.until_ready()
    c.fails_with(first, b"25P02")
    c.fails_with(second, b"25P02")
    c.fails_with(third, b"26000")
    c.simple(b"ROLLBACK", b"CZ")
    for name in (b"s1", b"s3"):
        c.bind_execute_sync_fails_with(name, b"26000")


def test_close_pipelined_behind_a_failed_parse_of_the_name_and_skipped_gives_nothing_back(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression close_behind_a_failed_parse_skipped):
    a Parse of s1 that fails, then in a batch pipelined behind it an error and a Close of s1 that
    PostgreSQL skips. pgsluice undid the skipped Close by giving s1 back, as the statement the client
    had asked for: a later Bind of s1 found it, and pgsluice prepared the failed text on the server,
    passing on that Parse's error (here 42601) where PostgreSQL answers 26000."""
    p = _trust_pooler(pooler, cluster)
    c = Raw(p)
    c.sock.sendall(c.pack(b"P", b"s1\0SELEC 'bad'\0\0\0") + c.pack(b"S")
                   + c.pack(b"P", b"\0SELEC 2\0\0\0") + c.pack(b"C", b"Ss1\0") + c.pack(b"S"))
    c.fails_with(c.until_ready(), b"42601")
    c.fails_with(c.until_ready(), b"42601")
    c.bind_execute_sync_fails_with(b"s1", b"26000")
    c.parse(b"s1", b"SELECT 'fine'")  # the name is free
    c.bind_execute(b"s1")
    c.msg(b"S")
    got = c.until_ready()
    assert c.types(got) == b"12DCZ" and got[2][1].endswith(b"fine"), got
