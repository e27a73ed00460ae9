"""psycopg 3 through the pooler: autocommit, transactions, COPY, LISTEN/NOTIFY, large values."""
import hashlib
import os
import time

import psycopg
import pytest

from harness import clients


@pytest.mark.core
@pytest.mark.client("psycopg3", "autocommit: simple queries, parameters (extended protocol, unnamed), 1,000 rows")
def test_autocommit_queries(pooler):
    p = pooler()
    with clients.connect(p) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
        assert c.execute("SELECT %s::int + %s::int", (40, 2)).fetchone() == (42,)  # extended protocol
        assert c.execute("SELECT current_user, current_database()").fetchone() == ("app", "appdb")
        rows = c.execute("SELECT g, g * 2 FROM generate_series(1, 1000) g").fetchall()
        assert len(rows) == 1000 and rows[-1] == (1000, 2000)


@pytest.mark.core
@pytest.mark.client("psycopg3", "explicit transaction (autocommit off): commit is visible to another client")
def test_explicit_transaction_commit_is_visible_to_other_clients(pooler):
    p = pooler()
    with clients.connect(p) as setup:
        setup.execute("DROP TABLE IF EXISTS sl_commit; CREATE TABLE sl_commit (v text)")
    with clients.connect(p, autocommit=False) as c:
        c.execute("INSERT INTO sl_commit VALUES (%s)", ("committed",))
        c.execute("INSERT INTO sl_commit VALUES ('second')")
        c.commit()
    with clients.connect(p) as other:
        assert sorted(r[0] for r in other.execute("SELECT v FROM sl_commit")) == ["committed", "second"]


@pytest.mark.core
@pytest.mark.client("psycopg3", "explicit transaction: rollback discards the changes")
def test_explicit_transaction_rollback_discards_changes(pooler):
    p = pooler()
    with clients.connect(p) as setup:
        setup.execute("DROP TABLE IF EXISTS sl_rollback; CREATE TABLE sl_rollback (v text)")
    with clients.connect(p, autocommit=False) as c:
        c.execute("INSERT INTO sl_rollback VALUES ('gone')")
        assert c.execute("SELECT count(*) FROM sl_rollback").fetchone() == (1,)
        c.rollback()
        assert c.execute("SELECT count(*) FROM sl_rollback").fetchone() == (0,)
        c.commit()
    with clients.connect(p) as other:
        assert other.execute("SELECT count(*) FROM sl_rollback").fetchone() == (0,)


@pytest.mark.client("psycopg3", "COPY FROM STDIN (`write_row`) and COPY TO STDOUT (`rows()`), 5,000 rows")
def test_copy_in_and_out_with_cursor_copy(pooler):
    p = pooler()
    rows = [(i, "row %d\twith tab" % i) for i in range(5000)]
    with clients.connect(p) as c:
        c.execute("DROP TABLE IF EXISTS sl_copy; CREATE TABLE sl_copy (id int, s text)")
        with c.cursor() as cur:
            with cur.copy("COPY sl_copy (id, s) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
            assert c.execute("SELECT count(*) FROM sl_copy").fetchone() == (5000,)
            out = []
            with cur.copy("COPY (SELECT id, s FROM sl_copy ORDER BY id) TO STDOUT") as cp:
                cp.set_types(["int4", "text"])
                out.extend(cp.rows())
        assert out == rows
        # the connection is still in a clean state after COPY
        assert c.execute("SELECT 7").fetchone() == (7,)


@pytest.mark.client("psycopg3", "8 MB result set, COPY out and COPY in of 8 MB, byte for byte")
def test_large_result_and_copy_arrive_intact(pooler):
    """Megabytes in one go: the pooler reads such a stream in bulk (bigger buffers while the socket
    keeps filling them) and must pass every byte on, in order, then return to 4 KB reads for the
    next small query on the same connections."""
    p = pooler()
    n = 8000  # rows of 1,000 bytes, each different
    line = lambda i: ("%06d" % i) * 166 + "%04d" % (i % 10000)  # noqa: E731
    expect = [line(i) for i in range(n)]
    with clients.connect(p) as c:
        got = [r[0] for r in c.execute(
            "SELECT repeat(lpad(g::text, 6, '0'), 166) || lpad((g %% 10000)::text, 4, '0') "
            "FROM generate_series(0, %s) g ORDER BY g", (n - 1,)).fetchall()]
        assert got == expect
        c.execute("DROP TABLE IF EXISTS sl_bulk; CREATE TABLE sl_bulk (s text)")
        with c.cursor() as cur:
            with cur.copy("COPY sl_bulk (s) FROM STDIN") as cp:
                cp.write("".join(x + "\n" for x in expect).encode())
            assert c.execute("SELECT count(*), md5(string_agg(s, ',' ORDER BY s)) FROM sl_bulk").fetchone() == \
                (n, hashlib.md5(",".join(expect).encode()).hexdigest())
            data = bytearray()
            with cur.copy("COPY (SELECT s FROM sl_bulk ORDER BY s) TO STDOUT") as cp:
                for chunk in cp:
                    data += chunk
        assert bytes(data) == "".join(x + "\n" for x in expect).encode()
        assert c.execute("SELECT 7").fetchone() == (7,)


def test_listen_notify_in_session_mode(pooler):
    p = pooler({"pool_mode": "session"})
    got = []
    with clients.connect(p) as listener, clients.connect(p) as sender:
        # psycopg 3.1's conn.notifies() can hang; a handler sees notifies arriving with any result.
        listener.add_notify_handler(lambda n: got.append((n.channel, n.payload)))
        listener.execute("LISTEN sl_chan")
        sender.execute("NOTIFY sl_chan, 'hello from sender'")
        sender.execute("SELECT pg_notify('sl_chan', 'second')")
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            listener.execute("SELECT 1")
            time.sleep(0.05)
    assert got == [("sl_chan", "hello from sender"), ("sl_chan", "second")]


@pytest.mark.client("psycopg3", "10 MB bytea as a binary parameter, read back as text and as binary")
def test_10mb_bytea_round_trip(pooler):
    p = pooler()
    data = os.urandom(10 * 1024 * 1024)
    with clients.connect(p) as c:
        c.execute("DROP TABLE IF EXISTS sl_bytea; CREATE TABLE sl_bytea (id int, b bytea)")
        c.execute("INSERT INTO sl_bytea VALUES (1, %b)", (data,))  # binary parameter
        assert c.execute("SELECT md5(b) FROM sl_bytea WHERE id = 1").fetchone()[0] == hashlib.md5(data).hexdigest()
        text_back = c.execute("SELECT b FROM sl_bytea WHERE id = 1").fetchone()[0]  # 20 MB of hex text
        assert bytes(text_back) == data
        with c.cursor(binary=True) as cur:
            bin_back = cur.execute("SELECT b FROM sl_bytea WHERE id = 1").fetchone()[0]
        assert bytes(bin_back) == data
        c.execute("DROP TABLE sl_bytea")


def test_unix_socket_connection(pooler):
    p = pooler()
    with psycopg.connect(p.dsn(host=p.unix_socket_dir), autocommit=True) as c:
        assert c.execute("SELECT current_user").fetchone() == ("app",)


@pytest.mark.core
def test_replica_entry_reaches_the_standby(pooler, cluster):
    p = pooler()
    with clients.connect(p, "appdb") as primary:
        assert primary.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        primary.execute("DROP TABLE IF EXISTS sl_replicated; CREATE TABLE sl_replicated AS SELECT 42 AS v")
    cluster.wait_replica_caught_up()
    with clients.connect(p, "appdb_replica") as replica:
        assert replica.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert replica.execute("SELECT v FROM sl_replicated").fetchone() == (42,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            replica.execute("INSERT INTO sl_replicated VALUES (1)")
