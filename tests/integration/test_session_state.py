"""Transaction pooling without surprises: session settings a client changes (SET search_path,
TimeZone, application_name, RESET, RESET ALL) follow it from server to server as on a direct
connection, and a client whose statements leave state on its server (advisory locks, temporary
tables, cursors WITH HOLD) keeps that server until the state is gone (pin_session_state)."""
import struct
import threading

import psycopg
import pytest

from admin_helpers import show
from harness import clients
from harness.util import wait_for
from test_http import http_pooler
from test_http_metrics import scrape, value

pytestmark = pytest.mark.pgsluice_only


def tx(size=2, **extra):
    s = {"pool_mode": "transaction", "default_pool_size": size, "max_client_conn": 200}
    s.update(extra)
    return s


def simple(conn, sql):
    """Run sql with the simple query protocol (psycopg's execute uses the extended one); the last
    result's first column of the first row, else its command tag."""
    from psycopg import pq
    res = conn.pgconn.exec_(sql.encode())
    assert res.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK), res.error_message
    if res.status == pq.ExecStatus.TUPLES_OK and res.ntuples:
        v = res.get_value(0, 0)
        return v.decode() if v is not None else None
    return res.command_status.decode()


def simple_error(conn, sql):
    """(SQLSTATE, message, hint) of a simple query that fails."""
    from psycopg import pq
    res = conn.pgconn.exec_(sql.encode())
    assert res.status == pq.ExecStatus.FATAL_ERROR, res.status
    f = pq.DiagnosticField
    return tuple((res.error_field(x) or b"").decode() for x in (f.SQLSTATE, f.MESSAGE_PRIMARY, f.MESSAGE_HINT))


def one(conn, sql, *args):
    return conn.execute(sql, args or None).fetchone()[0]


def pinned_of(p, app):
    rows = [r for r in show(p, "CLIENTS") if r["application_name"] == app]
    assert len(rows) == 1, rows
    return rows[0]["pinned"]


def pool_row(p):
    return [r for r in show(p, "POOLS") if r["database"] == "appdb" and r["user"] == "app"][0]


@pytest.fixture
def schemas(direct):
    """20 schemas s0..s19 in appdb, each with a table t holding its number; dropped afterwards."""
    d = direct("appdb")
    for i in range(20):
        d.execute("DROP SCHEMA IF EXISTS sp_s%d CASCADE" % i)
        d.execute("CREATE SCHEMA sp_s%d AUTHORIZATION app" % i)
        d.execute("CREATE TABLE sp_s%d.t (v int)" % i)
        d.execute("INSERT INTO sp_s%d.t VALUES (%d)" % (i, i))
        d.execute("ALTER TABLE sp_s%d.t OWNER TO app" % i)
    d.execute('DROP SCHEMA IF EXISTS "Sp Mixed" CASCADE')
    d.execute('CREATE SCHEMA "Sp Mixed" AUTHORIZATION app')
    d.execute('CREATE TABLE "Sp Mixed".t (v int)')
    d.execute('INSERT INTO "Sp Mixed".t VALUES (-1)')
    d.execute('ALTER TABLE "Sp Mixed".t OWNER TO app')
    yield
    for i in range(20):
        d.execute("DROP SCHEMA IF EXISTS sp_s%d CASCADE" % i)
    d.execute('DROP SCHEMA IF EXISTS "Sp Mixed" CASCADE')


# ---- settings followed from server to server ----

@pytest.mark.core
def test_set_search_path_20_clients_over_pool_of_2_each_see_their_own_schema(pooler, schemas):
    p = pooler(tx(2))
    conns = [clients.connect(p) for _ in range(20)]
    try:
        for i, c in enumerate(conns):
            # half with the simple query protocol, half with the extended one (psycopg's execute)
            if i % 2:
                simple(c, "SET search_path = sp_s%d, public" % i)
            else:
                c.execute("SET search_path TO sp_s%d" % i)
        for _ in range(3):  # interleaved: each query may run on either server
            for i, c in enumerate(conns):
                assert one(c, "SELECT v FROM t") == i
                assert int(simple(c, "SELECT v FROM t")) == i
        errors = []

        def worker(i, c):
            try:
                for _ in range(20):
                    with c.transaction():
                        assert one(c, "SELECT v FROM t") == i
                    assert one(c, "SHOW search_path").startswith("sp_s%d" % i)
            except Exception as e:  # noqa: BLE001
                errors.append((i, e))

        threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert all(not r["pinned"] for r in show(p, "CLIENTS") if r["database"] == "appdb")
        row = pool_row(p)
        assert row["sv_active"] + row["sv_idle"] + row["sv_used"] <= 2
    finally:
        for c in conns:
            c.close()


def test_client_that_never_set_search_path_gets_the_default_on_a_server_another_client_changed(pooler, schemas,
                                                                                            direct):
    default = one(direct("appdb"), "SHOW search_path")
    p = pooler(tx(1))
    with clients.connect(p) as a, clients.connect(p) as b:
        a.execute("SET search_path = sp_s3")
        assert one(a, "SELECT v FROM t") == 3
        assert one(b, "SHOW search_path") == default  # the one server had sp_s3: reset for b
        assert one(a, "SELECT v FROM t") == 3
        assert one(a, "SHOW search_path") == "sp_s3"


def test_search_path_values_are_replayed_with_their_quoting(pooler, schemas):
    p = pooler(tx(1))
    with clients.connect(p) as a, clients.connect(p) as b:
        simple(a, 'SET search_path = "Sp Mixed", public')
        b.execute("SET search_path = 'sp_s1'")  # a string literal: one schema name
        assert one(a, "SELECT v FROM t") == -1
        assert one(b, "SELECT v FROM t") == 1
        assert one(a, "SHOW search_path") == '"Sp Mixed", public'
        simple(b, "SET SCHEMA 'sp_s2'")
        assert one(a, "SELECT v FROM t") == -1
        assert one(b, "SELECT v FROM t") == 2


def test_timezone_and_application_name_behave_as_on_a_direct_connection(pooler, direct):
    d = direct("appdb")
    default_tz = one(d, "SHOW TimeZone")
    p = pooler(tx(1))
    with clients.connect(p) as a, clients.connect(p) as b:
        simple(a, "SET TIME ZONE 'Asia/Tokyo'")
        a.execute("SET application_name = 'it''s a'")
        b.execute("SET TimeZone = 'America/Lima'")
        b.execute("SET application_name = 'bee'")
        for _ in range(3):
            assert one(a, "SHOW TimeZone") == "Asia/Tokyo"
            assert one(a, "SHOW application_name") == "it's a"
            assert one(b, "SHOW TimeZone") == "America/Lima"
            assert one(b, "SHOW application_name") == "bee"
        apps = {r["application_name"] for r in show(p, "CLIENTS")}
        assert {"it's a", "bee"} <= apps
        # RESET: back to the server's default, as on a direct connection without startup settings
        a.execute("RESET TimeZone")
        assert one(b, "SHOW TimeZone") == "America/Lima"
        assert one(a, "SHOW TimeZone") == default_tz
        # RESET ALL
        simple(b, "RESET ALL")
        assert one(a, "SHOW application_name") == "it's a"
        assert one(b, "SHOW TimeZone") == default_tz
        assert one(b, "SHOW application_name") == ""


def test_reset_and_reset_all_of_search_path(pooler, schemas, direct):
    default = one(direct("appdb"), "SHOW search_path")
    p = pooler(tx(1))
    with clients.connect(p) as a, clients.connect(p) as b:
        a.execute("SET search_path = sp_s4")
        b.execute("SET search_path = sp_s5")
        assert one(a, "SELECT v FROM t") == 4
        a.execute("RESET search_path")
        assert one(b, "SELECT v FROM t") == 5
        assert one(a, "SHOW search_path") == default
        simple(b, "SET search_path = sp_s6; SET TimeZone = 'UTC'")
        assert one(a, "SHOW search_path") == default
        assert one(b, "SELECT v FROM t") == 6
        simple(b, "RESET ALL")
        assert one(a, "SHOW search_path") == default
        assert one(b, "SHOW search_path") == default
        b.execute("SET search_path TO sp_s7")
        b.execute("SET search_path TO DEFAULT")
        assert one(a, "SHOW search_path") == default
        assert one(b, "SHOW search_path") == default


def test_set_in_a_rolled_back_or_failed_transaction_and_set_local_are_not_remembered(pooler, schemas, direct):
    default = one(direct("appdb"), "SHOW search_path")
    p = pooler(tx(1))
    with clients.connect(p) as a, clients.connect(p) as b:
        # explicit transaction rolled back
        simple(a, "BEGIN")
        simple(a, "SET search_path = sp_s8")
        assert one(a, "SELECT v FROM t") == 8
        simple(a, "ROLLBACK")
        assert one(b, "SHOW search_path") == default
        assert one(a, "SHOW search_path") == default
        # SET LOCAL
        with a.transaction():
            a.execute("SET LOCAL search_path = sp_s9")
            assert one(a, "SELECT v FROM t") == 9
        assert one(b, "SHOW search_path") == default
        assert one(a, "SHOW search_path") == default
        # a multi-statement query that fails after the SET: its implicit transaction rolls back
        with pytest.raises(psycopg.errors.DivisionByZero):
            a.execute("SET search_path = sp_s10; SELECT 1/0")
        assert one(a, "SHOW search_path") == default
        assert a.pgconn.exec_(b"SET search_path = sp_s10; SELECT 1/0").error_message
        assert one(b, "SHOW search_path") == default
        assert one(a, "SHOW search_path") == default
        # a transaction that failed, then COMMIT (which rolls back)
        simple(a, "BEGIN")
        simple(a, "SET search_path = sp_s11")
        assert a.pgconn.exec_(b"SELECT 1/0").error_message
        simple(a, "COMMIT")
        assert one(a, "SHOW search_path") == default
        # an explicit transaction that commits: remembered
        simple(a, "BEGIN; SET search_path = sp_s12; COMMIT")
        assert one(b, "SHOW search_path") == default
        assert one(a, "SELECT v FROM t") == 12
        with a.transaction():
            a.execute("SET search_path = sp_s13")
        assert one(b, "SHOW search_path") == default
        assert one(a, "SELECT v FROM t") == 13
        # a SET that fails is not remembered either
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            a.execute("SET default_transaction_read_only = 'maybe'")
        assert one(a, "SELECT v FROM t") == 13


# ---- pinning ----

@pytest.mark.core
def test_advisory_lock_keeps_its_server_across_transactions_until_unlocked(pooler, direct):
    p = http_pooler(pooler, tx(2))
    d = direct("appdb")
    stop = threading.Event()
    errors = []

    def others(k):
        try:
            with clients.connect(p) as c:
                while not stop.is_set():
                    with c.transaction():
                        assert one(c, "SELECT %s::int + 1", k) == k + 1
                        # nobody else gets the lock while its holder has it (a transaction-level try
                        # does not pin)
                        got = one(c, "SELECT pg_try_advisory_xact_lock(777001)")
                        assert got is False or not holding.is_set(), "lock taken by another client"
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    holding = threading.Event()
    with clients.connect(p, application_name="locker") as a:
        a.execute("SELECT pg_advisory_lock(777001)")
        holding.set()
        pid = one(a, "SELECT pg_backend_pid()")
        assert pinned_of(p, "locker") == "advisory_lock"
        m = scrape(p)
        assert value(m, "pgsluice_pinned_clients") == 1
        assert value(m, "pgsluice_pins_total", reason="advisory_lock") == 1
        threads = [threading.Thread(target=others, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(5):
                with a.transaction():
                    assert one(a, "SELECT pg_backend_pid()") == pid
                    assert one(a, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s", pid) == 1
                assert one(d, "SELECT pg_try_advisory_lock(777001)") is False
                assert one(a, "SELECT %s::int", i) == i
            holding.clear()
            a.execute("SELECT pg_advisory_unlock_all()")
            assert pinned_of(p, "locker") == ""
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not errors, errors
        assert one(d, "SELECT pg_try_advisory_lock(777001)") is True
        one(d, "SELECT pg_advisory_unlock(777001)")
        assert value(scrape(p), "pgsluice_pinned_clients") == 0
        # the pool has its server back: both servers idle once the clients are quiet
        wait_for(lambda: pool_row(p)["sv_active"] == 0 and pool_row(p)["sv_idle"] + pool_row(p)["sv_used"] >= 1,
                 timeout=10, what="the pool's servers back to idle")
        assert all(r["state"] != "active" for r in show(p, "SERVERS") if r["database"] == "appdb")


def test_client_leaving_with_an_advisory_lock_releases_it_and_its_server(pooler, direct):
    p = pooler(tx(1))
    d = direct("appdb")
    with clients.connect(p) as a:
        a.execute("SELECT pg_advisory_lock(777002)")
        assert one(d, "SELECT pg_try_advisory_lock(777002)") is False
    # the one server was reset (DISCARD ALL) before going back to the pool
    wait_for(lambda: pool_row(p)["sv_idle"] == 1, timeout=10, what="the server back in the pool")
    with clients.connect(p) as b:
        assert one(b, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()") == 0
    assert one(d, "SELECT pg_try_advisory_lock(777002)") is True
    one(d, "SELECT pg_advisory_unlock(777002)")


def test_temp_table_lives_across_transactions_and_never_reaches_another_client(pooler):
    p = pooler(tx(2))
    with clients.connect(p, application_name="temper") as a, clients.connect(p) as b, clients.connect(p) as c:
        simple(a, "CREATE TEMP TABLE sp_tmp (v int)")
        assert pinned_of(p, "temper") == "temp_table"
        for i in range(5):
            with a.transaction():
                a.execute("INSERT INTO sp_tmp VALUES (%s)", (i,))
            # the others share the pool's other server meanwhile
            assert one(b, "SELECT to_regclass('pg_temp.sp_tmp') IS NULL") is True
            assert one(c, "SELECT %s::int", i) == i
        assert one(a, "SELECT sum(v) FROM sp_tmp") == 10
        a.execute("DISCARD TEMP")
        assert pinned_of(p, "temper") == ""
        simple(a, "CREATE TEMP TABLE sp_tmp2 (v int)")
        assert pinned_of(p, "temper") == "temp_table"
    # a left: its server was reset before anyone else got it
    with clients.connect(p) as b, clients.connect(p) as c:
        with b.transaction(), c.transaction():  # both servers at once
            for x in (b, c):
                assert one(x, "SELECT to_regclass('pg_temp.sp_tmp2') IS NULL") is True


def test_cursor_with_hold_is_fetched_over_several_transactions(pooler):
    p = pooler(tx(2))
    with clients.connect(p, application_name="holder") as a, clients.connect(p) as b, clients.connect(p) as c:
        a.execute("DECLARE sp_cur CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 9) g")
        assert pinned_of(p, "holder") == "cursor_with_hold"
        got = []
        for i in range(3):
            with a.transaction():
                got += [r[0] for r in a.execute("FETCH 3 FROM sp_cur").fetchall()]
            assert one(b, "SELECT %s::int", i) == i
            assert one(c, "SELECT 1") == 1
        assert got == list(range(1, 10))
        simple(a, "CLOSE ALL")
        assert pinned_of(p, "holder") == ""


def test_listen_and_sql_prepare_pin_until_unlisten_and_deallocate(pooler):
    # listen_fanout = 0: LISTEN pins (with the fan-out, a LISTEN alone between transactions does not:
    # test_listen_notify.py)
    p = pooler(tx(2, listen_fanout=0))
    with clients.connect(p, application_name="lp") as a:
        simple(a, "LISTEN sp_chan")
        simple(a, "PREPARE sp_q AS SELECT 41 + 1")
        assert pinned_of(p, "lp") == "listen,prepare"
        assert simple(a, "EXECUTE sp_q") == "42"
        simple(a, "UNLISTEN *")
        assert pinned_of(p, "lp") == "prepare"
        simple(a, "DEALLOCATE ALL")
        assert pinned_of(p, "lp") == ""


def test_listen_alone_between_transactions_does_not_pin_with_the_fanout(pooler):
    p = pooler(tx(2))
    with clients.connect(p, application_name="lf") as a:
        simple(a, "LISTEN sp_chan")
        simple(a, "PREPARE sp_q AS SELECT 41 + 1")
        assert pinned_of(p, "lf") == "prepare"
        # once pinned, a LISTEN goes to its server and pins (the fan-out gives that channel up)
        simple(a, "LISTEN sp_chan2")
        assert pinned_of(p, "lf") == "listen,prepare"
        simple(a, "UNLISTEN *")
        assert pinned_of(p, "lf") == "prepare"
        simple(a, "DEALLOCATE ALL")
        assert pinned_of(p, "lf") == ""


def test_close_unlisten_and_deallocate_of_the_last_name_end_the_pin(pooler):
    p = pooler(tx(2))
    with clients.connect(p, application_name="nm") as a, clients.connect(p) as b:
        simple(a, "DECLARE c1 CURSOR WITH HOLD FOR SELECT 1; DECLARE \"C2\" CURSOR WITH HOLD FOR SELECT 2")
        simple(a, "LISTEN ch_a")
        a.execute("LISTEN Ch_B")
        simple(a, "PREPARE q1 AS SELECT 1")
        assert pinned_of(p, "nm") == "cursor_with_hold,listen,prepare"
        simple(a, "CLOSE c1")
        assert pinned_of(p, "nm") == "cursor_with_hold,listen,prepare"
        a.execute('CLOSE "C2"')
        assert pinned_of(p, "nm") == "listen,prepare"
        simple(a, "UNLISTEN ch_b; UNLISTEN ch_a")
        assert pinned_of(p, "nm") == "prepare"
        # a DEALLOCATE that fails keeps the pin; one in a transaction that rolls back too (PostgreSQL
        # does not undo it, pgsluice stays on the safe side)
        assert a.pgconn.exec_(b"DEALLOCATE nosuch").error_message
        assert pinned_of(p, "nm") == "prepare"
        assert simple(a, "EXECUTE q1") == "1"
        simple(a, "BEGIN; DEALLOCATE q1")
        simple(a, "ROLLBACK")
        assert pinned_of(p, "nm") == "prepare"
        simple(a, "PREPARE q1 AS SELECT 1")
        # closed and made again in one query: still pinned
        simple(a, "DEALLOCATE q1; PREPARE q1 AS SELECT 2")
        assert pinned_of(p, "nm") == "prepare"
        assert simple(a, "EXECUTE q1") == "2"
        assert one(b, "SELECT 3") == 3
        simple(a, "DEALLOCATE PREPARE q1")
        assert pinned_of(p, "nm") == ""


def test_set_of_an_untracked_parameter_pins_until_reset_all(pooler):
    p = pooler(tx(2))
    with clients.connect(p, application_name="wm") as a:
        a.execute("SET work_mem = '7MB'")
        assert pinned_of(p, "wm") == "set"
        for _ in range(3):
            assert one(a, "SHOW work_mem") == "7MB"
        a.execute("RESET ALL")
        # RESET ALL also reset application_name (to the server's default, not the startup value: see
        # docs/OPERATIONS.md); a is the only client of appdb
        rows = [r for r in show(p, "CLIENTS") if r["database"] == "appdb"]
        assert [r["pinned"] for r in rows] == [""]


def test_unlock_in_a_rolled_back_transaction_keeps_the_pin(pooler):
    p = pooler(tx(2))
    with clients.connect(p, application_name="rb") as a:
        a.execute("SELECT pg_advisory_lock(777003)")
        simple(a, "BEGIN; SELECT pg_advisory_unlock_all()")
        simple(a, "ROLLBACK")
        assert pinned_of(p, "rb") == "advisory_lock"
        simple(a, "SELECT pg_advisory_unlock_all()")
        assert pinned_of(p, "rb") == ""


def test_advisory_unlock_of_the_last_lock_ends_the_pin(pooler, direct):
    """pg_advisory_unlock(key) of the last session-level lock held ends the pin: between the client's
    transactions pgsluice asks its server whether it still holds any. A lock taken twice needs two
    unlocks; a pg_try_advisory_lock that got nothing does not keep the pin. Over a pool of one, the
    other client gets the server back, and the lock."""
    p = pooler(tx(1))
    d = direct("appdb")
    with clients.connect(p, application_name="ul") as a, clients.connect(p, application_name="other") as b:
        a.execute("SELECT pg_advisory_lock(777010)")
        simple(a, "SELECT pg_advisory_lock(777011); SELECT pg_advisory_lock(777011)")
        pid = one(a, "SELECT pg_backend_pid()")
        assert pinned_of(p, "ul") == "advisory_lock"
        with a.transaction():
            assert one(a, "SELECT pg_advisory_unlock(%s)", 777010) is True
        # still holds 777011 (twice): kept (its next statement runs after the server was asked)
        assert one(a, "SELECT pg_backend_pid()") == pid
        assert pinned_of(p, "ul") == "advisory_lock"
        assert simple(a, "SELECT pg_advisory_unlock(777011)") == "t"
        assert one(a, "SELECT pg_backend_pid()") == pid
        assert pinned_of(p, "ul") == "advisory_lock"
        assert one(d, "SELECT pg_try_advisory_lock(777011)") is False
        # the last one: no longer pinned, and the pool's only server serves the other client
        assert one(a, "SELECT pg_advisory_unlock(%s)", 777011) is True
        wait_for(lambda: pinned_of(p, "ul") == "", 10, what="the pin to end")
        assert one(b, "SELECT pg_try_advisory_lock(777011)") is True
        assert one(b, "SELECT pg_advisory_unlock(777011)") is True
        assert one(b, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()") == 0
        # a try that gets nothing (another session holds the key) does not keep the client
        assert one(d, "SELECT pg_advisory_lock(777012) IS NOT NULL") is True
        assert one(a, "SELECT pg_try_advisory_lock(777012)") is False
        wait_for(lambda: pinned_of(p, "ul") == "", 10, what="no pin after a failed try")
        assert one(b, "SELECT 5") == 5
        one(d, "SELECT pg_advisory_unlock(777012)")
        # one that gets it does
        assert one(a, "SELECT pg_try_advisory_lock(777012)") is True
        assert one(a, "SELECT 6") == 6
        assert pinned_of(p, "ul") == "advisory_lock"
        assert one(a, "SELECT pg_advisory_unlock(777012)") is True
        wait_for(lambda: pinned_of(p, "ul") == "", 10, what="the pin to end")
    assert one(d, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0


# ---- pin_session_state = error / off ----

REFUSAL = ("pgsluice: %s is not supported in transaction pooling (pin_session_state = error)")


@pytest.mark.parametrize("sql,feature", [
    ("SELECT pg_advisory_lock(777004)", "a session-level advisory lock (pg_advisory_lock)"),
    ("CREATE TEMP TABLE sp_t (a int)", "a temporary table"),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "a cursor WITH HOLD"),
    ("LISTEN sp_chan", "LISTEN"),
    ("PREPARE sp_p AS SELECT 1", "SQL PREPARE"),
    ("SET work_mem = '8MB'", "SET of a parameter pgsluice does not track"),
])
def test_pin_session_state_error_refuses_with_the_documented_message(pooler, direct, sql, feature):
    # listen_fanout = 0: with the fan-out, a LISTEN alone between transactions pins nothing and is
    # served (test_listen_notify.py)
    p = pooler(tx(2, pin_session_state="error", listen_fanout=0))
    with clients.connect(p) as a:
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            a.execute(sql)
        assert e.value.diag.message_primary == REFUSAL % feature
        assert "pin_session_state = on" in e.value.diag.message_hint
        assert one(a, "SELECT 1") == 1
        code, msg, hint = simple_error(a, "SELECT 1; " + sql)
        assert (code, msg) == ("0A000", REFUSAL % feature) and "pin_session_state = on" in hint
        assert one(a, "SELECT 1") == 1
        # inside a transaction the refusal fails it, as a server error would
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            with a.transaction():
                with pytest.raises(psycopg.errors.FeatureNotSupported):
                    a.execute(sql)
                a.execute("SELECT 1")
        assert one(a, "SELECT 2") == 2
        # tracked settings still work
        a.execute("SET search_path = public")
        assert one(a, "SHOW search_path") == "public"
    assert one(direct("appdb"), "SELECT pg_try_advisory_lock(777004)") is True
    one(direct("appdb"), "SELECT pg_advisory_unlock(777004)")


def test_pin_session_state_error_with_bound_parameters_still_names_the_feature(pooler):
    p = pooler(tx(2, pin_session_state="error"))
    with clients.connect(p) as a:
        with pytest.raises(psycopg.errors.FeatureNotSupported) as e:
            a.execute("SELECT pg_advisory_lock(%s), %s::text", (777005, "x"))
        assert e.value.diag.message_primary == REFUSAL % "a session-level advisory lock (pg_advisory_lock)"
        assert one(a, "SELECT %s::int", 5) == 5


def test_pin_session_state_off_keeps_the_old_behaviour(pooler, direct):
    p = pooler(tx(1, pin_session_state="off"))
    with clients.connect(p, application_name="offc") as a, clients.connect(p) as b:
        a.execute("SELECT pg_advisory_lock(777006)")
        assert pinned_of(p, "offc") == ""
        # the server went back to the pool with the lock on it: the next client gets it
        assert one(b, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()") == 1
        b.execute("SELECT pg_advisory_unlock_all()")
    assert one(direct("appdb"), "SELECT pg_try_advisory_lock(777006)") is True
    one(direct("appdb"), "SELECT pg_advisory_unlock(777006)")


def test_large_bind_and_query_still_pass_and_settings_still_follow(pooler, schemas):
    """A Bind is only read up to its names (large parameter values stream through); a Query is read
    whole to be classified."""
    p = pooler(tx(1))
    big = "x" * (5 * 1024 * 1024)
    with clients.connect(p) as a, clients.connect(p) as b:
        a.execute("SET search_path = sp_s14")
        assert one(a, "SELECT length(%s::text)", big) == len(big)
        assert one(b, "SELECT length(%s::text)", big) == len(big)
        assert int(simple(a, "SELECT length('%s') + v FROM t" % big)) == len(big) + 14
        assert one(a, "SELECT v FROM t") == 14
        assert one(b, "SHOW search_path") != "sp_s14"


@pytest.mark.core
def test_the_same_plain_statement_over_and_over_then_one_that_pins_or_sets(pooler, schemas):
    """The hot path remembers a client's last plain Parse text and skips its classification: a
    statement that pins or sets right after many repeats of a plain one (unnamed statements, the
    extended protocol as psycopg sends it, and the simple protocol) is still followed."""
    p = pooler(tx(2))
    with clients.connect(p, application_name="hot") as a, clients.connect(p) as b:
        # a text that starts like the one remembered below, a lock call in its comment
        assert one(a, "SELECT %s::int + 1 /* pg_advisory_lock(1) */", 1) == 2
        for i in range(30):
            # as long as the statement that pins below: only the bytes tell them apart
            assert one(a, "SELECT %s::int + 1 AS abcde", i) == i + 1
            assert simple(a, "SELECT %d" % i) == str(i)
        assert pinned_of(p, "hot") == ""
        a.execute("SELECT pg_advisory_lock(%s)", (777002,))  # with a parameter: the extended protocol
        assert pinned_of(p, "hot") == "advisory_lock"
        pid = one(a, "SELECT pg_backend_pid()")
        for i in range(5):
            assert one(a, "SELECT %s::int + 1", i) == i + 1
            assert one(a, "SELECT pg_backend_pid()") == pid
        a.execute("SELECT pg_advisory_unlock_all()")
        assert pinned_of(p, "hot") == ""
        # a setting after the repeats follows the client to whichever server it gets
        a.execute("SET search_path = sp_s3")
        for i in range(10):
            assert one(a, "SELECT %s::int + 1", i) == i + 1
            assert one(b, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", "sp_s3") == 1  # b takes servers
            assert one(a, "SELECT v FROM t") == 3
        assert pinned_of(p, "hot") == ""


# ---- pipelines: a batch that ends some state, then one that makes it again, in one write ----

def _trust_pooler(pooler, cluster):
    """Two servers, auth_type trust: a bare protocol client logs in with its startup packet."""
    db = "host=127.0.0.1 port=%d dbname=appdb password=%s" % (cluster.primary_port, cluster.passwords["app"])
    return pooler(tx(2, auth_type="trust"), dbs={"appdb": db})


def _msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body


def _batch(sql, stmt=b""):
    """Parse (of statement stmt), Bind of the unnamed portal, Execute, Sync: one pipelined batch."""
    return (_msg(b"P", stmt + b"\0" + sql + b"\0\0\0") + _msg(b"B", b"\0" + stmt + b"\0\0\0\0\0\0\0")
            + _msg(b"E", b"\0\0\0\0\0") + _msg(b"S"))


def _answers(sock, n):
    """The message types answering n batches or queries (each up to its ReadyForQuery)."""
    got = b""
    for _ in range(n):
        t = None
        while t != b"Z":
            t, _ = clients.read_message(sock)
            got += t
    return got


def _raw_client(p, app):
    s = clients.raw_socket(p)
    s.sendall(clients.startup_packet(application_name=app))
    _answers(s, 1)
    return s


def test_pin_taken_in_a_pipeline_behind_a_batch_that_clears_it_is_kept(pooler, cluster):
    """DISCARD TEMP (or DEALLOCATE of a name) in one batch, CREATE TEMP TABLE (PREPARE of the name)
    in the next, sent in one write: the first batch commits before the second runs, and used to end
    the pin the second had taken as it was sent. The client then lost its server, and the reset of
    that server its temporary table (fuzz_extended_protocol: clear_pipelined_before_pin,
    deallocate_pipelined_before_prepare)."""
    p = _trust_pooler(pooler, cluster)
    with clients.connect(p) as other:
        s = _raw_client(p, "piped")
        s.sendall(_batch(b"DISCARD TEMP") + _batch(b"CREATE TEMP TABLE sp_piped (v int)"))
        assert _answers(s, 2) == b"12CZ12CZ"
        assert pinned_of(p, "piped") == "temp_table"
        for i in range(3):
            assert one(other, "SELECT %s::int", i) == i
            s.sendall(_msg(b"Q", b"SELECT count(*) FROM sp_piped\0"))
            assert _answers(s, 1) == b"TDCZ"
        s.sendall(_msg(b"Q", b"PREPARE sp_pq AS SELECT 1; DISCARD TEMP\0"))
        assert _answers(s, 1) == b"CCZ"
        assert pinned_of(p, "piped") == "prepare"
        # the DEALLOCATE commits first; the named statement's PREPARE runs after it
        s.sendall(_msg(b"Q", b"DEALLOCATE sp_pq\0") + _batch(b"PREPARE sp_pq AS SELECT 2", b"sp_st"))
        assert _answers(s, 2) == b"CZ12CZ"
        assert pinned_of(p, "piped") == "prepare"
        assert one(other, "SELECT 1") == 1
        s.sendall(_msg(b"Q", b"EXECUTE sp_pq\0"))
        got = b""
        t = None
        while t != b"Z":
            t, body = clients.read_message(s)
            got += t
            if t == b"D":
                assert body.endswith(b"2"), body
        assert got == b"TDCZ"
        s.close()


def test_sql_prepare_through_a_named_statement_after_deallocate_in_one_transaction_keeps_the_pin(pooler):
    """PREPARE, DEALLOCATE, then PREPARE again through a named (extended protocol) statement, in one
    transaction: its commit ended the pin although the statement exists (fuzz_extended_protocol:
    deallocate_then_prepare_in_transaction)."""
    p = pooler(tx(2))
    with clients.connect(p, application_name="redo") as a, clients.connect(p) as b:
        with a.transaction():
            simple(a, "PREPARE sp_q AS SELECT 1")
            simple(a, "DEALLOCATE sp_q")
            from psycopg import pq
            assert a.pgconn.prepare(b"sp_st", b"PREPARE sp_q AS SELECT 2").status == pq.ExecStatus.COMMAND_OK
            assert a.pgconn.exec_prepared(b"sp_st", []).status == pq.ExecStatus.COMMAND_OK
        assert pinned_of(p, "redo") == "prepare"
        assert one(b, "SELECT 1") == 1
        assert simple(a, "EXECUTE sp_q") == "2"
        simple(a, "DEALLOCATE sp_q")
        assert pinned_of(p, "redo") == ""


def test_rollback_to_a_savepoint_after_an_error_keeps_the_settings_made_before_it(pooler, schemas, direct):
    """BEGIN; SET; SAVEPOINT; an error; ROLLBACK TO SAVEPOINT; COMMIT: PostgreSQL commits the SET
    made before the savepoint. The error used to drop it from what pgsluice followed: the client was
    let go with the setting left on its server, unreset, and the next client there had it
    (fuzz_extended_protocol: rollback_to_savepoint_after_an_error). Which settings survive a
    ROLLBACK TO is not followed: the client is pinned."""
    default = one(direct("appdb"), "SHOW search_path")
    p = pooler(tx(1))
    with clients.connect(p, application_name="sp") as a:
        simple(a, "BEGIN")
        simple(a, "SET search_path = sp_s5")
        simple(a, "SAVEPOINT s")
        assert a.pgconn.exec_(b"SELECT 1/0").error_message
        simple(a, "ROLLBACK TO s")
        simple(a, "COMMIT")
        assert one(a, "SELECT v FROM t") == 5
        assert pinned_of(p, "sp") == "set"
        assert one(a, "SELECT v FROM t") == 5
    # a left: its server was reset before the next client got it
    with clients.connect(p) as b:
        assert one(b, "SHOW search_path") == default


def test_rollback_to_a_savepoint_undoes_a_discard_temp(pooler):
    """A DISCARD TEMP that a ROLLBACK TO SAVEPOINT undid ended the temporary table's pin at COMMIT,
    although the table is still there (fuzz_extended_protocol: rollback_to_savepoint_undoes_a_clear)."""
    p = pooler(tx(2))
    with clients.connect(p, application_name="rt") as a, clients.connect(p) as b:
        simple(a, "CREATE TEMP TABLE sp_rt (v int)")
        simple(a, "BEGIN")
        simple(a, "SAVEPOINT s")
        simple(a, "DISCARD TEMP")
        simple(a, "ROLLBACK TO s")
        simple(a, "COMMIT")
        assert pinned_of(p, "rt") == "temp_table"
        for i in range(3):
            with b.transaction():  # b takes the other server meanwhile
                assert one(b, "SELECT %s::int", i) == i
            assert simple(a, "SELECT count(*) FROM sp_rt") == "0"


def test_set_in_a_batch_whose_parse_pgsluice_refuses_in_its_own_words_is_rolled_back(pooler, cluster):
    """A SET in an implicit transaction that then fails on a Parse of a name the client already uses:
    pgsluice reports that server error as its own 42P05 for the client's name, and PostgreSQL rolls
    the SET back. The session-state tracking must see that error too: before, it kept the setting
    and set it on the client's next server link (found by the fuzzer with tracking on)."""
    from test_prepared import Raw, _trust_pooler
    p = _trust_pooler(pooler, cluster)  # one server: the other client takes it in between
    a = Raw(p)
    a.prepare(b"s1", b"SELECT 1")
    a.parse(b"", b"SET search_path = sp_rolled_back, public")
    a.bind_execute(b"")
    a.parse(b"s1", b"SELECT 2")  # a name in use: 42P05, the implicit transaction fails
    a.msg(b"S")
    got = a.until_ready()
    assert a.types(got) == b"12CEZ" and b"C42P05\0" in got[3][1], got
    b = Raw(p)
    b.simple(b"SELECT 1", b"TDCZ")  # the server goes to b and back
    got = a.simple(b"SHOW search_path", b"TDCZ")
    assert got[1][1][6:] == b'"$user", public', got


def _portal_bind(portal, stmt):
    """Bind of a portal to a statement, no parameters, text results."""
    return _msg(b"B", portal + b"\0" + stmt + b"\0\0\0\0\0\0\0")


def _portal_execute(portal):
    return _msg(b"E", portal + b"\0\0\0\0\0")


@pytest.mark.parametrize("in_a_block,max_prepared", [(False, 200), (True, 200), (False, 0), (True, 0)])
def test_named_portal_executed_after_a_discard_temp_keeps_its_temp_table_pin(pooler, cluster, in_a_block,
                                                                           max_prepared):
    """A named portal bound to CREATE TEMP TABLE, a DISCARD TEMP run (through the unnamed portal, or
    a simple query in a block) between its Bind and its Execute, in one transaction: the table is
    made after the DISCARD, so the client keeps its server. Before, the portal's Execute counted as a
    plain statement, the DISCARD's commit ended the pin, the client lost its server and the reset of
    that server dropped its table (fuzz_extended_protocol: named_portal_executed_after_a_clear,
    ..._in_a_block). The same with max_prepared_statements = 0 (the statement's text is then kept
    nowhere but in the session-state tracking), where a Bind of the statement after the pin ended
    did not pin again either."""
    db = "host=127.0.0.1 port=%d dbname=appdb password=%s" % (cluster.primary_port, cluster.passwords["app"])
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1, "auth_type": "trust",
                "max_prepared_statements": max_prepared}, dbs={"appdb": db})
    s = _raw_client(p, "portal")
    create = _msg(b"P", b"sp_st\0CREATE TEMP TABLE sp_portal (v int)\0\0\0") + _portal_bind(b"sp_p", b"sp_st")
    if in_a_block:
        s.sendall(_msg(b"Q", b"BEGIN\0") + create + _msg(b"S"))
        assert _answers(s, 2) == b"CZ12Z"
        s.sendall(_msg(b"Q", b"DISCARD TEMP\0"))
        assert _answers(s, 1) == b"CZ"
        s.sendall(_portal_execute(b"sp_p") + _msg(b"S") + _msg(b"Q", b"COMMIT\0"))
        assert _answers(s, 2) == b"CZCZ"
    else:
        s.sendall(create + _msg(b"P", b"\0DISCARD TEMP\0\0\0") + _portal_bind(b"", b"") + _portal_execute(b"")
                  + _portal_execute(b"sp_p") + _msg(b"S"))
        assert _answers(s, 1) == b"1212CCZ"
    assert pinned_of(p, "portal") == "temp_table"
    s.sendall(_msg(b"Q", b"SELECT count(*) FROM sp_portal\0"))
    assert _answers(s, 1) == b"TDCZ"
    # the table's end ends its pin (an advisory lock keeps the server, and the statement on it); the
    # statement bound again makes the table again, and pins again
    s.sendall(_msg(b"Q", b"SELECT pg_advisory_lock(7340)\0"))
    assert _answers(s, 1) == b"TDCZ"
    s.sendall(_msg(b"Q", b"DISCARD TEMP\0"))
    assert _answers(s, 1) == b"CZ"
    assert pinned_of(p, "portal") == "advisory_lock"
    s.sendall(_portal_bind(b"", b"sp_st") + _portal_execute(b"") + _msg(b"S"))
    assert _answers(s, 1) == b"2CZ"
    assert "temp_table" in pinned_of(p, "portal")
    s.sendall(_msg(b"Q", b"SELECT pg_advisory_unlock_all()\0"))
    assert _answers(s, 1) == b"TDCZ"
    assert pinned_of(p, "portal") == "temp_table"
    s.sendall(_msg(b"Q", b"SELECT count(*) FROM sp_portal\0"))
    assert _answers(s, 1) == b"TDCZ"
    s.sendall(_msg(b"Q", b"DISCARD TEMP\0"))
    assert _answers(s, 1) == b"CZ"
    assert pinned_of(p, "portal") == ""
    # a named portal of a plain statement pins nothing
    s.sendall(_msg(b"P", b"sp_plain\0SELECT 1\0\0\0") + _portal_bind(b"sp_p", b"sp_plain") + _portal_execute(b"sp_p")
              + _msg(b"S"))
    assert _answers(s, 1) == b"12DCZ"
    assert pinned_of(p, "portal") == ""
    s.close()


def test_named_portal_bound_before_a_query_that_ends_the_transaction_is_gone(pooler, cluster):
    """A named portal bound to CREATE TEMP TABLE in an extended batch's implicit transaction, then a
    simple query (DISCARD TEMP, which ends the pin the Parse took) before the Sync: the query commits
    that transaction, and PostgreSQL drops the portal with it, so the portal's Execute answers 34000,
    no table is made and the client keeps nothing on its server (pgsluice forgets the portal at that
    ReadyForQuery: its Execute takes no pin). The fuzzer's model of PostgreSQL kept such a portal
    (fuzz_extended_protocol: named_portal_after_a_query_ended_its_transaction); this pins what
    PostgreSQL does."""
    db = "host=127.0.0.1 port=%d dbname=appdb password=%s" % (cluster.primary_port, cluster.passwords["app"])
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1, "auth_type": "trust"}, dbs={"appdb": db})
    s = _raw_client(p, "gone")
    s.sendall(_msg(b"P", b"gp_st\0CREATE TEMP TABLE gp_portal (v int)\0\0\0") + _portal_bind(b"gp_p", b"gp_st")
              + _msg(b"Q", b"DISCARD TEMP\0"))
    assert _answers(s, 1) == b"12CZ"
    s.sendall(_portal_execute(b"gp_p") + _msg(b"S"))
    t, body = clients.read_message(s)
    assert t == b"E" and b"C34000\0" in body, (t, body)
    assert _answers(s, 1) == b"Z"
    assert pinned_of(p, "gone") == ""
    s.sendall(_msg(b"Q", b"SELECT to_regclass('pg_temp.gp_portal') IS NULL\0"))
    got = b""
    while True:
        t, body = clients.read_message(s)
        got += t
        if t == b"D":
            assert body.endswith(b"t"), body
        if t == b"Z":
            break
    assert got == b"TDCZ"
    s.close()


def _temp_table_exists(s, table):
    s.sendall(_msg(b"Q", b"SELECT to_regclass('pg_temp.%s') IS NOT NULL\0" % table))
    row = None
    while True:
        t, body = clients.read_message(s)
        if t == b"D":
            row = body[-1:]
        if t == b"Z":
            return row == b"t"


def test_unnamed_parse_skipped_after_an_error_leaves_the_statement_before_it(pooler, cluster):
    """Found by fuzzing: a batch parses the unnamed statement CREATE TEMP TABLE, fails (an Execute of
    a portal that does not exist), and so skips its next Parse of the unnamed statement, DISCARD TEMP;
    a batch pipelined behind it binds and runs the unnamed statement, which PostgreSQL still has as
    CREATE TEMP TABLE. pgsluice took it for the DISCARD TEMP, ended the pin, and let the server go
    with the client's table on it (fuzz_extended_protocol: unnamed_parse_skipped_after_an_error)."""
    db = "host=127.0.0.1 port=%d dbname=appdb password=%s" % (cluster.primary_port, cluster.passwords["app"])
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1, "auth_type": "trust"}, dbs={"appdb": db})
    s = _raw_client(p, "skipped")
    s.sendall(_msg(b"P", b"\0CREATE TEMP TABLE us_t (v int)\0\0\0") + _portal_execute(b"no_such")
              + _msg(b"P", b"\0DISCARD TEMP\0\0\0") + _msg(b"S")
              + _portal_bind(b"", b"") + _portal_execute(b"") + _msg(b"S"))
    t, body = clients.read_message(s)
    assert t == b"1", (t, body)
    t, body = clients.read_message(s)
    assert t == b"E" and b"C34000\0" in body, (t, body)
    assert _answers(s, 2) == b"Z2CZ"
    assert _temp_table_exists(s, b"us_t")
    assert "temp_table" in pinned_of(p, "skipped")
    s.close()


def test_pin_session_state_error_refuses_a_named_listen_the_fanout_prepared_once_bound_in_a_block(pooler, cluster):
    """pin_session_state = error: a named statement LISTEN prepared and run between transactions is
    served by the fan-out (no server, no pin); bound again inside a transaction block it would LISTEN on
    the server, which pins, and is refused as a Parse of it there would be (0A000 at its Execute, the
    name standing for the refusal from then on). Before, the client was pinned instead."""
    db = "host=127.0.0.1 port=%d dbname=appdb password=%s" % (cluster.primary_port, cluster.passwords["app"])
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1, "auth_type": "trust",
                "pin_session_state": "error"}, dbs={"appdb": db})
    s = _raw_client(p, "errl")
    run = _portal_bind(b"", b"sp_l") + _portal_execute(b"") + _msg(b"S")
    s.sendall(_msg(b"P", b"sp_l\0LISTEN sp_err_chan\0\0\0") + run)
    assert _answers(s, 1) == b"12CZ"
    assert pinned_of(p, "errl") == ""
    s.sendall(_msg(b"Q", b"BEGIN\0") + run)
    got = []
    while len([t for t, _ in got if t == b"Z"]) < 2:
        got.append(clients.read_message(s))
    assert b"".join(t for t, _ in got) == b"CZ2EZ", got
    err = got[3][1]
    assert b"C0A000\0" in err and (REFUSAL % "LISTEN").encode() in err, err
    s.sendall(_msg(b"Q", b"ROLLBACK\0"))
    assert _answers(s, 1) == b"CZ"
    assert pinned_of(p, "errl") == ""
    s.sendall(run)  # the name stands for the refusal now, as after a refused Parse
    assert _answers(s, 1) == b"2EZ"
    assert pinned_of(p, "errl") == ""
    s.close()
