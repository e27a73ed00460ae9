"""psycopg2 (Debian python3-psycopg2) through the pooler in transaction mode, pool of 5.

psycopg2 interpolates parameters on the client and sends every statement as a simple Query, opens
a transaction implicitly before the first statement (unless autocommit), and does server-side
cursors with DECLARE inside that transaction. Each test is a row of docs/CLIENTS.md.
"""
import datetime
import decimal
import io
import threading

import pytest

psycopg2 = pytest.importorskip("psycopg2", reason="python3-psycopg2 is not installed (scripts/install-deps.sh)")
import psycopg2.errors  # noqa: E402
import psycopg2.extras  # noqa: E402
import psycopg2.pool  # noqa: E402

TX5 = {"pool_mode": "transaction", "default_pool_size": 5}


def connect(p, **kw):
    return psycopg2.connect(p.dsn(), **kw)


@pytest.mark.client("psycopg2", "client-side parameters of many types, implicit transactions (commit, rollback, "
                    "`with conn:`), an error inside a transaction then rollback, autocommit")
def test_psycopg2_parameters_and_transactions(pooler):
    p = pooler(TX5)
    c = connect(p)
    try:
        cur = c.cursor()
        values = (42, "it's \\ a 'quote'", b"\x00\x01\xff", decimal.Decimal("12.345"), datetime.date(2024, 2, 29),
                  [1, 2, 3], psycopg2.extras.Json({"k": [1, "v"]}), None, True)
        cur.execute("SELECT %s::int, %s::text, %s::bytea, %s::numeric, %s::date, %s::int[], %s::jsonb, %s::text, %s",
                    values)
        got = cur.fetchone()
        assert (got[0], got[1], bytes(got[2])) == (42, "it's \\ a 'quote'", b"\x00\x01\xff"), got
        assert got[3:6] == (decimal.Decimal("12.345"), datetime.date(2024, 2, 29), [1, 2, 3]), got
        assert got[6] == {"k": [1, "v"]} and got[7] is None and got[8] is True, got
        cur.execute("DROP TABLE IF EXISTS pg2_tx; CREATE TABLE pg2_tx (id int PRIMARY KEY, v text)")
        c.commit()
        # one implicit transaction: both statements run on the same server (same txid)
        cur.execute("INSERT INTO pg2_tx VALUES (1, 'a') RETURNING txid_current()")
        x1 = cur.fetchone()[0]
        cur.execute("SELECT txid_current()")
        assert cur.fetchone()[0] == x1
        c.commit()
        cur.execute("INSERT INTO pg2_tx VALUES (2, 'rolled back')")
        c.rollback()
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute("INSERT INTO pg2_tx VALUES (1, 'dup')")
        with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
            cur.execute("SELECT 1")
        c.rollback()
        with c:  # commits on leaving the block
            cur.execute("INSERT INTO pg2_tx VALUES (%s, %s)", (3, "with block"))
        c.autocommit = True
        cur.execute("INSERT INTO pg2_tx VALUES (4, 'autocommit')")
        cur.execute("SELECT array_agg(id ORDER BY id) FROM pg2_tx")
        assert cur.fetchone()[0] == [1, 3, 4]
    finally:
        c.close()


@pytest.mark.client("psycopg2", "COPY: `copy_from` / `copy_expert` in and `copy_to` / `copy_expert` out (5,000 "
                    "rows), a COPY failing halfway rolls back and the connection works on")
def test_psycopg2_copy_in_and_out(pooler):
    p = pooler(TX5)
    rows = ["%d\tline %d with \\\\ and \\t" % (i, i) for i in range(5000)]
    c = connect(p)
    try:
        cur = c.cursor()
        cur.execute("DROP TABLE IF EXISTS pg2_copy; CREATE TABLE pg2_copy (id int, s text)")
        cur.copy_from(io.StringIO("\n".join(rows[:2500]) + "\n"), "pg2_copy", columns=("id", "s"))
        cur.copy_expert("COPY pg2_copy (id, s) FROM STDIN", io.StringIO("\n".join(rows[2500:]) + "\n"))
        c.commit()
        out = io.StringIO()
        cur.copy_expert("COPY (SELECT id, s FROM pg2_copy ORDER BY id) TO STDOUT", out)
        assert out.getvalue().splitlines() == rows
        out2 = io.StringIO()
        cur.copy_to(out2, "pg2_copy", columns=("id",))
        assert sorted(int(x) for x in out2.getvalue().split()) == list(range(5000))
        c.commit()
        with pytest.raises(psycopg2.errors.InvalidTextRepresentation):
            cur.copy_expert("COPY pg2_copy FROM STDIN", io.StringIO("9001\tok\nnot-a-number\tbad\n"))
        c.rollback()
        cur.execute("SELECT count(*), max(id) FROM pg2_copy")
        assert cur.fetchone() == (5000, 4999)
        cur.execute("DROP TABLE pg2_copy")
        c.commit()
    finally:
        c.close()


@pytest.mark.client("psycopg2", "`executemany`, `extras.execute_batch` and `extras.execute_values` (3 x 1,000 rows "
                    "in one transaction each)")
def test_psycopg2_batch_helpers(pooler):
    p = pooler(TX5)
    c = connect(p)
    try:
        cur = c.cursor()
        cur.execute("DROP TABLE IF EXISTS pg2_many; CREATE TABLE pg2_many (id int PRIMARY KEY, s text)")
        cur.executemany("INSERT INTO pg2_many VALUES (%s, %s)", [(i, "m%d" % i) for i in range(1000)])
        psycopg2.extras.execute_batch(cur, "INSERT INTO pg2_many VALUES (%s, %s)",
                                      [(i, "b%d" % i) for i in range(1000, 2000)], page_size=100)
        psycopg2.extras.execute_values(cur, "INSERT INTO pg2_many (id, s) VALUES %s",
                                       [(i, "v%d" % i) for i in range(2000, 3000)], page_size=250)
        c.commit()
        cur.execute("SELECT count(*), count(DISTINCT left(s, 1)) FROM pg2_many")
        assert cur.fetchone() == (3000, 3)
        cur.execute("DROP TABLE pg2_many")
        c.commit()
    finally:
        c.close()


@pytest.mark.client("psycopg2", "server-side (named) cursor over 10,000 rows fetched 500 at a time, and SQL "
                    "PREPARE / EXECUTE / DEALLOCATE, inside one transaction")
def test_psycopg2_named_cursor_and_sql_prepare_in_a_transaction(pooler):
    p = pooler(TX5)
    c = connect(p)
    try:
        with c.cursor(name="pg2_big") as big:
            big.itersize = 500
            big.execute("SELECT g, md5(g::text) FROM generate_series(1, 10000) g")
            n = 0
            for i, (g, h) in enumerate(big, start=1):
                assert g == i and len(h) == 32
                n += 1
        assert n == 10000
        cur = c.cursor()
        cur.execute("PREPARE pg2_add(int, int) AS SELECT $1 + $2")
        for i in range(5):
            cur.execute("EXECUTE pg2_add(%s, %s)", (i, 40))
            assert cur.fetchone()[0] == i + 40
        cur.execute("DEALLOCATE pg2_add")
        c.commit()
    finally:
        c.close()


@pytest.mark.client("psycopg2", "`pool.ThreadedConnectionPool` of 20 connections, 20 threads x 25 transactions "
                    "over a pool of 5 servers")
def test_psycopg2_threaded_pool_of_20_over_a_pool_of_5(pooler):
    p = pooler(TX5)
    setup = connect(p)
    setup.autocommit = True
    setup.cursor().execute("DROP TABLE IF EXISTS pg2_threads; CREATE TABLE pg2_threads (t int, i int, x bigint)")
    setup.close()
    tpool = psycopg2.pool.ThreadedConnectionPool(20, 20, p.dsn())
    errors = []

    def work(t):
        try:
            for i in range(25):
                c = tpool.getconn()
                try:
                    with c, c.cursor() as cur:  # one transaction
                        cur.execute("INSERT INTO pg2_threads VALUES (%s, %s, txid_current())", (t, i))
                        cur.execute("SELECT x = txid_current() FROM pg2_threads WHERE t = %s AND i = %s", (t, i))
                        assert cur.fetchone() == (True,)
                finally:
                    tpool.putconn(c)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("thread %d: %r" % (t, e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    tpool.closeall()
    assert not errors, errors[:3]
    c = connect(p)
    try:
        cur = c.cursor()
        cur.execute("SELECT count(*), count(DISTINCT x) FROM pg2_threads")
        assert cur.fetchone() == (500, 500)
        cur.execute("DROP TABLE pg2_threads")
        c.commit()
    finally:
        c.close()


@pytest.mark.client("psycopg2", "`connection.cancel()` stops a running pg_sleep (57014); the connection works on")
def test_psycopg2_cancel(pooler):
    p = pooler(TX5)
    c = connect(p)
    c.autocommit = True
    try:
        timer = threading.Timer(0.3, c.cancel)
        timer.start()
        with pytest.raises(psycopg2.errors.QueryCanceled):
            c.cursor().execute("SELECT pg_sleep(10)")
        timer.join()
        cur = c.cursor()
        cur.execute("SELECT 'still usable'")
        assert cur.fetchone() == ("still usable",)
    finally:
        c.close()
