"""Admin console control commands: PAUSE/RESUME (nothing lost mid-transaction), KILL, KILL_CLIENT,
DISABLE/ENABLE, RECONNECT/WAIT_CLOSE, SUSPEND, SET default_pool_size on live pools, RELOAD of a broken
file, SHUTDOWN and its variants."""
import struct
import time

import psycopg
import pytest

from harness import clients
from harness.util import port_is_open, wait_for
from admin_helpers import (Background, admin_pooler, admin_psql, console, pool_row, show, state)

TABLE = "admin_ctl_t"


@pytest.fixture
def table(direct):
    c = direct("appdb")
    c.execute("DROP TABLE IF EXISTS %s" % TABLE)
    c.execute("CREATE TABLE %s (v int)" % TABLE)
    c.execute("GRANT ALL ON %s TO app" % TABLE)
    yield c
    # a failed test may leave a transaction open on the table through a pooler that is still running
    c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'appdb' AND usename = 'app'")
    c.execute("DROP TABLE IF EXISTS %s" % TABLE)


def values(direct_conn):
    return sorted(r[0] for r in direct_conn.execute("SELECT v FROM %s" % TABLE).fetchall())


def insert_and_commit(p, v):
    with clients.connect(p, autocommit=False) as c:
        c.execute("INSERT INTO %s VALUES (%%s)" % TABLE, (v,))
        c.commit()
    return v


@pytest.mark.pgsluice_only  # PgBouncer 1.18 has no SHOW STATE
def test_pause_waits_for_the_running_transaction_then_holds_new_ones_until_resume(pooler, table):
    p = admin_pooler(pooler, {"default_pool_size": 2})
    a = clients.connect(p, autocommit=False)
    a.execute("INSERT INTO %s VALUES (1)" % TABLE)  # a transaction holds its server
    pause = Background(lambda: admin_psql(p, "PAUSE;"))
    wait_for(lambda: state(p)["paused"] == "yes", timeout=10, what="the pooler paused")
    a.execute("INSERT INTO %s VALUES (2)" % TABLE)  # the running transaction goes on while paused
    assert pause.alive(), "PAUSE returned while a transaction was still running"
    a.commit()
    assert pause.join().returncode == 0
    pool = pool_row(p, "appdb")
    assert pool["sv_active"] + pool["sv_idle"] + pool["sv_used"] + pool["sv_login"] == 0  # servers disconnected
    # new transactions wait, also on the connection that was mid-transaction
    b = Background(lambda: insert_and_commit(p, 3))
    c = Background(lambda: a.execute("INSERT INTO %s VALUES (4)" % TABLE) and a.commit())
    wait_for(lambda: pool_row(p, "appdb")["cl_waiting"] == 2, timeout=10, what="two clients held by the pause")
    assert b.alive() and c.alive()
    with console(p) as con:
        with pytest.raises(psycopg.Error, match="already suspended/paused"):
            con.execute("PAUSE")
        con.execute("RESUME")
    b.join()
    c.join()
    assert values(table) == [1, 2, 3, 4]
    assert state(p)["active"] == "yes"
    with console(p) as con:
        with pytest.raises(psycopg.Error, match="not paused"):
            con.execute("RESUME")
    a.close()


def test_pause_and_resume_one_database_leave_the_others_running(pooler, table):
    p = admin_pooler(pooler)
    clients.assert_pooler_serves(p, db="sav3")
    admin_psql(p, "PAUSE sav3")
    assert {r["name"]: r["paused"] for r in show(p, "DATABASES")}["sav3"] == 1
    held = Background(lambda: clients.psql(p, "-c", "SELECT 42", db="sav3").stdout.strip())
    wait_for(lambda: (pool_row(p, "sav3") or {}).get("cl_waiting") == 1, timeout=10, what="sav3 client waiting")
    clients.assert_pooler_serves(p, db="appdb")
    assert held.alive()
    admin_psql(p, "RESUME sav3")
    assert held.join() == "42"
    r = admin_psql(p, "PAUSE pgbouncer", check=False)
    assert r.returncode != 0 and "cannot pause admin db" in r.stderr
    r = admin_psql(p, "PAUSE no_such_db", check=False)
    assert r.returncode != 0 and "no such database" in r.stderr


@pytest.mark.pgsluice_only  # PgBouncer holds the login, pgsluice the first query
def test_kill_drops_the_databases_connections_and_holds_it_until_resume(pooler):
    p = admin_pooler(pooler)
    victim = clients.connect(p, db="sav3")
    victim.execute("SELECT 1")
    bystander = clients.connect(p, db="appdb")
    bystander.execute("SELECT 1")
    admin_psql(p, "KILL sav3")
    with pytest.raises(psycopg.OperationalError):
        victim.execute("SELECT 1")
    assert bystander.execute("SELECT 2").fetchone() == (2,)
    assert not [r for r in show(p, "SERVERS") if r["database"] == "sav3"]
    assert not [r for r in show(p, "CLIENTS") if r["database"] == "sav3"]
    later = Background(lambda: clients.psql(p, "-c", "SELECT 7", db="sav3").stdout.strip())
    wait_for(lambda: (pool_row(p, "sav3") or {}).get("cl_waiting") == 1, timeout=10, what="sav3 held after KILL")
    admin_psql(p, "RESUME sav3")
    assert later.join() == "7"
    victim.close()
    bystander.close()


@pytest.mark.pgsluice_only  # PgBouncer 1.18 requires a database for KILL
def test_kill_without_database_drops_every_pool_but_not_the_console(pooler):
    p = admin_pooler(pooler)
    a = clients.connect(p, db="appdb")
    b = clients.connect(p, db="sav3")
    a.execute("SELECT 1")
    b.execute("SELECT 1")
    with console(p) as con:
        con.execute("KILL")
        for c in (a, b):
            with pytest.raises(psycopg.OperationalError):
                c.execute("SELECT 1")
        assert [r["database"] for r in con.execute("SHOW CLIENTS").fetchall()] == ["pgbouncer"]
        con.execute("RESUME")
    clients.assert_pooler_serves(p)
    a.close()
    b.close()


@pytest.mark.pgsluice_only  # PgBouncer 1.18 has no KILL_CLIENT
def test_kill_client_closes_exactly_that_client(pooler):
    p = admin_pooler(pooler)
    victim = clients.connect(p, application_name="victim")
    other = clients.connect(p, application_name="other")
    victim.execute("SELECT 1")
    other.execute("SELECT 1")
    cid = [r["id"] for r in show(p, "CLIENTS") if r["application_name"] == "victim"][0]
    admin_psql(p, "KILL_CLIENT %d" % cid)
    with pytest.raises(psycopg.OperationalError):
        victim.execute("SELECT 1")
    assert other.execute("SELECT 3").fetchone() == (3,)
    assert not [r for r in show(p, "CLIENTS") if r["application_name"] == "victim"]
    r = admin_psql(p, "KILL_CLIENT %d" % cid, check=False)
    assert r.returncode != 0 and "client not found" in r.stderr
    r = admin_psql(p, "KILL_CLIENT not_a_number", check=False)
    assert r.returncode != 0 and "invalid client id" in r.stderr
    victim.close()
    other.close()


def test_disable_refuses_new_logins_and_enable_allows_them_again(pooler):
    p = admin_pooler(pooler)
    existing = clients.connect(p, db="sav3")
    existing.execute("SELECT 1")
    admin_psql(p, "DISABLE sav3")
    assert {r["name"]: r["disabled"] for r in show(p, "DATABASES")}["sav3"] == 1
    _, msg = clients.login_error(p, db="sav3")
    assert 'database "sav3" is disabled' in msg
    assert existing.execute("SELECT 5").fetchone() == (5,)  # connected clients keep working
    clients.assert_pooler_serves(p, db="appdb")
    admin_psql(p, "ENABLE sav3")
    clients.assert_pooler_serves(p, db="sav3")
    r = admin_psql(p, "DISABLE", check=False)
    assert r.returncode != 0 and "database is required" in r.stderr
    existing.close()


def test_reconnect_closes_servers_when_released_and_wait_close_waits_for_it(pooler):
    p = admin_pooler(pooler, {"default_pool_size": 2})
    a = clients.connect(p, autocommit=False)
    old_pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]  # in a transaction: the server is held
    idle = clients.connect(p)
    admin_psql(p, "RECONNECT appdb")
    marked = {r["remote_pid"]: r["close_needed"] for r in show(p, "SERVERS") if r["database"] == "appdb"}
    assert marked.get(old_pid) == 1, marked
    waiter = Background(lambda: admin_psql(p, "WAIT_CLOSE appdb"))
    assert a.execute("SELECT 1").fetchone() == (1,)
    assert waiter.alive(), "WAIT_CLOSE returned while a marked server was still in use"
    a.commit()
    assert waiter.join().returncode == 0
    pids = [r["remote_pid"] for r in show(p, "SERVERS") if r["database"] == "appdb"]
    assert old_pid not in pids
    new_pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
    assert new_pid != old_pid
    a.commit()
    assert idle.execute("SELECT 1").fetchone() == (1,)
    admin_psql(p, "WAIT_CLOSE")  # nothing is marked any more: answers at once
    a.close()
    idle.close()


@pytest.mark.pgsluice_only  # PgBouncer 1.18 has no SHOW STATE
def test_suspend_holds_new_transactions_until_resume(pooler):
    p = admin_pooler(pooler)
    clients.assert_pooler_serves(p)
    with console(p) as con:
        con.execute("SUSPEND")
        assert {r["key"]: r["value"] for r in con.execute("SHOW STATE")}["suspended"] == "yes"
        held = Background(lambda: clients.psql(p, "-c", "SELECT 9").stdout.strip())
        wait_for(lambda: pool_row(p, "appdb")["cl_waiting"] == 1, timeout=10, what="a client held by SUSPEND")
        with pytest.raises(psycopg.Error, match="already suspended"):
            con.execute("SUSPEND")
        con.execute("RESUME")
        assert held.join() == "9"
    # PgBouncer resumes by itself when the console that suspended goes away
    admin_psql(p, "SUSPEND")
    wait_for(lambda: state(p)["active"] == "yes", timeout=10, what="automatic RESUME")
    clients.assert_pooler_serves(p)


@pytest.mark.pgsluice_only  # a raw client that stops reading; PgBouncer 1.18 drops it the same way
def test_suspend_drops_a_connection_whose_buffers_do_not_flush_within_suspend_timeout(pooler):
    """A client that stops reading a large result keeps bytes in the pooler's buffers: SUSPEND waits
    for them up to suspend_timeout, then drops that connection and answers."""
    p = admin_pooler(pooler, {"suspend_timeout": "1", "auth_type": "trust", "pool_mode": "session"})
    stuck = clients.raw_socket(p)
    stuck.sendall(clients.startup_packet(user="plainuser"))  # its userlist password is plain: logs servers in
    while clients.read_message(stuck)[0] != b"Z":
        pass
    q = b"SELECT repeat('x', 1000) FROM generate_series(1, 300000)\0"
    stuck.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)  # about 300 MB it never reads

    def stuck_busy():  # bytes for it the socket does not take any more
        rows = [c for c in show(p, "SOCKETS") if c["user"] == "plainuser"]
        return any(r["send_remain"] > 0 or r["send_avail"] > 0 for r in rows)
    wait_for(stuck_busy, timeout=30, what="the stuck client's output piling up in the pooler")
    with console(p) as con:
        con.execute("SUSPEND")  # answers once the stuck connection is dropped
        con.execute("RESUME")
    assert "suspend_timeout" in p.log_text()
    _, closed = clients.read_until_close(stuck, timeout=30)
    assert closed
    stuck.close()
    clients.assert_pooler_serves(p, user="plainuser")


@pytest.mark.pgsluice_only  # SHOW POOLS' pool_size column is pgsluice's
def test_set_default_pool_size_changes_the_capacity_of_existing_pools(pooler):
    p = admin_pooler(pooler, {"default_pool_size": 2})
    holders = []
    for _ in range(2):
        h = clients.connect(p, autocommit=False)
        h.execute("SELECT 1")
        holders.append(h)
    assert pool_row(p, "appdb")["pool_size"] == 2
    third = Background(lambda: clients.psql(p, "-c", "SELECT 3").stdout.strip())
    wait_for(lambda: pool_row(p, "appdb")["cl_waiting"] == 1, timeout=10, what="the third client queued")
    admin_psql(p, "SET default_pool_size=3;")
    assert third.join() == "3"  # served at once by a third server
    pool = pool_row(p, "appdb")
    assert pool["pool_size"] == 3 and pool["cl_waiting"] == 0
    assert pool["sv_active"] + pool["sv_idle"] + pool["sv_used"] == 3
    assert {r["name"]: r["pool_size"] for r in show(p, "DATABASES")}["appdb"] == 3
    admin_psql(p, "SET default_pool_size=30;")
    assert pool_row(p, "appdb")["pool_size"] == 30
    for h in holders:
        h.rollback()
        h.close()


@pytest.mark.pgsluice_only  # SHOW POOLS' pool_size column is pgsluice's
def test_a_smaller_pool_gives_back_its_surplus_idle_servers_promptly(pooler):
    """SET default_pool_size below the servers open closes the idle surplus within a few ticks,
    not after server_idle_timeout (600 s here)."""
    p = admin_pooler(pooler, {"default_pool_size": 8, "server_idle_timeout": 600})
    conns = [clients.connect(p, autocommit=False) for _ in range(8)]
    for c in conns:
        c.execute("SELECT 1")  # eight transactions at once: eight servers
    for c in conns:
        c.rollback()
    wait_for(lambda: pool_row(p, "appdb")["sv_idle"] + pool_row(p, "appdb")["sv_used"] == 8, timeout=10,
             what="eight idle servers")
    admin_psql(p, "SET default_pool_size=3;")
    wait_for(lambda: (lambda r: r["sv_idle"] + r["sv_used"] + r["sv_active"] == 3)(pool_row(p, "appdb")),
             timeout=10, what="the pool trimmed to 3 servers")
    for c in conns:
        assert c.execute("SELECT 1").fetchone() == (1,)
        c.rollback()
        c.close()


@pytest.mark.pgsluice_only  # PgBouncer 1.18 ignores a bad value on RELOAD
def test_reload_of_a_broken_file_answers_an_error_and_keeps_the_running_config(pooler):
    p = admin_pooler(pooler)
    clients.assert_pooler_serves(p)
    p.write_config(dict(p.settings, default_pool_size="lots"))
    r = admin_psql(p, "RELOAD;", check=False)
    assert r.returncode != 0 and "RELOAD failed" in r.stderr and "default_pool_size" in r.stderr
    config = {row["key"]: row["value"] for row in show(p, "CONFIG")}
    assert config["default_pool_size"] == "5"
    clients.assert_pooler_serves(p)
    p.write_config(dict(p.settings, default_pool_size=4))
    admin_psql(p, "RELOAD;")
    assert pool_row(p, "appdb")["pool_size"] == 4


def _exited(p, timeout=15):
    code = p.proc.wait(timeout)
    p.returncode = code  # the harness must not count this exit as a crash
    return code


def test_shutdown_exits_at_once(pooler):
    p = admin_pooler(pooler)
    clients.assert_pooler_serves(p)
    r = admin_psql(p, "SHUTDOWN", check=False)
    assert r.returncode != 0  # like PgBouncer, the console gets no answer: the process is gone
    assert _exited(p) == 0


@pytest.mark.pgsluice_only  # PgBouncer 1.18 has no SHUTDOWN WAIT_FOR_CLIENTS
def test_shutdown_wait_for_clients_exits_when_the_last_client_leaves(pooler):
    p = admin_pooler(pooler)
    c = clients.connect(p)
    c.execute("SELECT 1")
    admin_psql(p, "SHUTDOWN WAIT_FOR_CLIENTS")
    wait_for(lambda: not port_is_open(p.port), timeout=10, what="listening stopped")
    assert c.execute("SELECT 2").fetchone() == (2,)  # the connected client is still served
    assert p.alive()
    # the Unix socket stays open for the console (as PgBouncer); other logins there are refused
    with psycopg.connect(p.dsn("pgbouncer", "postgres", host=p.unix_socket_dir), autocommit=True) as con:
        assert con.execute("SHOW VERSION").fetchone()
    with pytest.raises(psycopg.OperationalError, match="shutting down"):
        psycopg.connect(p.dsn(host=p.unix_socket_dir))
    c.close()
    assert _exited(p) == 0


@pytest.mark.pgsluice_only  # PgBouncer 1.18 has no SHUTDOWN WAIT_FOR_SERVERS
def test_shutdown_wait_for_servers_exits_once_transactions_finish(pooler):
    p = admin_pooler(pooler)
    c = clients.connect(p, autocommit=False)
    c.execute("SELECT 1")
    admin_psql(p, "SHUTDOWN WAIT_FOR_SERVERS")
    assert c.execute("SELECT 2").fetchone() == (2,)  # the running transaction finishes
    time.sleep(0.3)
    assert p.alive()
    c.commit()
    assert _exited(p) == 0
    c.close()


@pytest.mark.pgsluice_only
def test_cancel_request_calls_off_a_waiting_pause(pooler):
    """^C on a PAUSE that waits for a running transaction: the PAUSE ends with an error and the
    pooler keeps serving (PgBouncer resumes on a cancelled PAUSE too)."""
    import threading

    import psycopg

    from admin_helpers import admin_pooler, console
    p = admin_pooler(pooler, {"pool_mode": "transaction", "default_pool_size": 2})
    holder = clients.connect(p, autocommit=False)
    holder.execute("SELECT 1")  # a transaction stays open: PAUSE has to wait for it
    adm = console(p)
    outcome = {}

    def pause():
        try:
            adm.execute("PAUSE")
            outcome["result"] = "returned"
        except psycopg.Error as e:
            outcome["result"] = e.sqlstate or "error"

    t = threading.Thread(target=pause)
    t.start()
    time.sleep(0.5)
    assert t.is_alive(), "PAUSE should wait for the open transaction"
    adm.cancel()
    t.join(10)
    assert not t.is_alive() and outcome.get("result") not in (None, "returned"), outcome
    holder.rollback()
    holder.close()
    clients.assert_pooler_serves(p)
    adm.close()


@pytest.mark.pgsluice_only  # RECONNECT is PgBouncer 1.19+
@pytest.mark.parametrize("fast", [0, 1])
def test_server_fast_close_ends_a_session_whose_server_must_be_replaced(pooler, fast):
    p = admin_pooler(pooler, {"pool_mode": "session", "server_fast_close": fast})
    c = clients.connect(p)
    c.execute("SELECT 1")
    admin_psql(p, "RECONNECT appdb")
    if fast:
        # closed between transactions, with the client's session
        wait_for(lambda: not [r for r in show(p, "SERVERS") if r["database"] == "appdb"], timeout=10,
                 what="the session's server closed")
        with pytest.raises(psycopg.OperationalError):
            c.execute("SELECT 2")
    else:
        # the session keeps its server until it ends
        assert c.execute("SELECT 2").fetchone() == (2,)
        assert [r for r in show(p, "SERVERS") if r["database"] == "appdb"]
    c.close()
    clients.assert_pooler_serves(p)
