"""PgBouncer 1.23-1.25 configuration: per-database and per-user overrides load unchanged, show in
SHOW DATABASES / SHOW USERS and take effect; the timeouts tell the client why it was closed; a host
list with a dead first host serves."""
import time

import psycopg
import pytest

from admin_helpers import admin_pooler, show
from harness import clients
from harness.util import HOST, free_port, wait_for


def reason_of(e):
    return str(e).splitlines()[0]


@pytest.mark.pgsluice_only
def test_a_125_config_with_every_override_loads_and_shows(pooler, cluster):
    p = admin_pooler(pooler, {"pool_mode": "session", "max_db_client_connections": 50,
                              "max_user_client_connections": 40, "transaction_timeout": 0},
                     dbs={"appdb": "host=%s port=%d dbname=appdb pool_size=3 server_lifetime=1200 "
                                   "max_db_client_connections=7 query_wait_timeout=9 load_balance_hosts=disable "
                                   "auth_dbname=appdb" % (HOST, cluster.primary_port)},
                     user_settings={"app": "pool_mode=transaction pool_size=2 reserve_pool_size=1 "
                                           "max_user_connections=4 max_user_client_connections=5 query_timeout=30 "
                                           "query_wait_timeout=8 idle_transaction_timeout=40 transaction_timeout=50 "
                                           "client_idle_timeout=60"})
    dbs = {r["name"]: r for r in show(p, "DATABASES")}
    assert dbs["appdb"]["server_lifetime"] == 1200 and dbs["appdb"]["max_client_connections"] == 7
    assert dbs["sav3"]["max_client_connections"] == 50
    users = {r["name"]: r for r in show(p, "USERS")}
    assert users["app"]["pool_size"] == "2" and users["app"]["reserve_pool_size"] == "1"
    assert users["app"]["pool_mode"] == "transaction" and users["app"]["max_user_connections"] == 4
    assert users["app"]["max_user_client_connections"] == 5
    with clients.connect(p) as c:
        c.execute("SELECT 1")
        assert {r["name"]: r for r in show(p, "USERS")}["app"]["current_client_connections"] == 1
        assert {r["name"]: r for r in show(p, "DATABASES")}["appdb"]["current_client_connections"] == 1
    assert "not implemented" not in p.log_text()


def test_max_user_client_connections_refuses_the_next_client(pooler):
    p = pooler(user_settings={"app": "max_user_client_connections=2"})
    a, b = clients.connect(p), clients.connect(p)
    sqlstate, msg = clients.login_error(p)
    assert sqlstate == "53300" and "max_user_client_connections" in msg
    a.close()
    wait_for(lambda: clients.connect(p).close() is None, timeout=10, what="a free slot after a client left")
    b.close()


def test_max_db_client_connections_refuses_the_next_client_of_that_database_only(pooler, cluster):
    p = pooler(dbs={"appdb": "host=%s port=%d dbname=appdb max_db_client_connections=1" % (HOST, cluster.primary_port)})
    with clients.connect(p):
        sqlstate, msg = clients.login_error(p)
        assert sqlstate == "53300" and "max_db_client_connections" in msg
        clients.assert_pooler_serves(p, db="sav3")


@pytest.mark.parametrize("where", ["global", "user"])
def test_query_timeout_closes_the_client_with_the_reason(pooler, where):
    settings = {"query_timeout": 1} if where == "global" else {}
    users = {"app": "query_timeout=1"} if where == "user" else None
    p = pooler(settings, user_settings=users)
    with clients.connect(p) as c:
        with pytest.raises(psycopg.Error) as e:
            c.execute("SELECT pg_sleep(30)")
    assert "query timeout" in str(e.value)
    clients.assert_pooler_serves(p)


@pytest.mark.parametrize("where", ["global", "user"])
def test_idle_transaction_timeout_closes_the_client_with_the_reason(pooler, where):
    settings = {"idle_transaction_timeout": 1} if where == "global" else {}
    users = {"app": "idle_transaction_timeout=1"} if where == "user" else None
    p = admin_pooler(pooler, dict(settings, pool_mode="transaction"), user_settings=users)
    c = clients.connect(p, autocommit=False, application_name="idle-in-xact")
    c.execute("SELECT 1")
    wait_for(lambda: not any(r["application_name"] == "idle-in-xact" for r in show(p, "CLIENTS")), timeout=20,
             what="the idle transaction closed")  # (polling the client itself would keep it busy)
    assert "idle transaction timeout" in (_fails(c) or "")
    clients.assert_pooler_serves(p)


@pytest.mark.pgsluice_only  # PgBouncer 1.18 has no transaction_timeout
@pytest.mark.parametrize("where", ["global", "user"])
def test_transaction_timeout_closes_a_busy_transaction_with_the_reason(pooler, where):
    settings = {"transaction_timeout": 1} if where == "global" else {}
    users = {"app": "transaction_timeout=1"} if where == "user" else None
    p = pooler(dict(settings, pool_mode="transaction"), user_settings=users)
    c = clients.connect(p, autocommit=False)
    err = None
    deadline = time.monotonic() + 30
    while err is None and time.monotonic() < deadline:  # a transaction that keeps working
        try:
            c.execute("SELECT pg_sleep(0.2)")
        except psycopg.Error as e:
            err = e
    assert err is not None and "transaction timeout" in str(err)
    clients.assert_pooler_serves(p)


def _fails(c):
    try:
        c.execute("SELECT 1")
        return None
    except psycopg.Error as e:
        return str(e)


@pytest.mark.parametrize("where", ["global", "user"])
def test_client_idle_timeout_closes_an_idle_client(pooler, where):
    settings = {"client_idle_timeout": 1} if where == "global" else {}
    users = {"app": "client_idle_timeout=1"} if where == "user" else None
    p = admin_pooler(pooler, settings, user_settings=users)
    with clients.connect(p, application_name="idler") as c:
        c.execute("SELECT 1")
        wait_for(lambda: not any(r["application_name"] == "idler" for r in show(p, "CLIENTS")), timeout=20,
                 what="the idle client closed")
        with pytest.raises(psycopg.Error):
            c.execute("SELECT 1")


def backend_pid(p, **kw):
    with clients.connect(p, **kw) as c:
        return c.execute("SELECT pg_backend_pid()").fetchone()[0]


@pytest.mark.parametrize("where", ["global", "database"])
def test_server_lifetime_retires_servers(pooler, cluster, where):
    dbs = {"appdb": "host=%s port=%d dbname=appdb server_lifetime=1" % (HOST, cluster.primary_port)} if where == "database" else None
    p = pooler({"server_lifetime": 1} if where == "global" else {"server_lifetime": 3600}, dbs=dbs)
    first = backend_pid(p)
    wait_for(lambda: backend_pid(p) != first, timeout=20, what="a new server after server_lifetime")


def test_server_idle_timeout_closes_idle_servers(pooler, direct):
    p = admin_pooler(pooler, {"server_idle_timeout": 1, "min_pool_size": 0})
    pid = backend_pid(p)
    su = direct("postgres")
    wait_for(lambda: su.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 0,
             timeout=20, what="the idle server closed")


def test_max_db_connections_makes_clients_wait_for_a_server(pooler, cluster):
    p = admin_pooler(pooler, {"pool_mode": "transaction", "default_pool_size": 5},
                     dbs={"appdb": "host=%s port=%d dbname=appdb max_db_connections=1" % (HOST, cluster.primary_port)})
    a = clients.connect(p, autocommit=False)
    a.execute("SELECT 1")  # holds the only server
    b = clients.connect(p)
    import threading
    done = []
    t = threading.Thread(target=lambda: done.append(b.execute("SELECT 2").fetchone()))
    t.start()
    wait_for(lambda: any(r["database"] == "appdb" and r["cl_waiting"] == 1 for r in show(p, "POOLS")), timeout=10,
             what="the second client waiting")
    assert sum(r["sv_active"] + r["sv_idle"] + r["sv_used"] + r["sv_login"] for r in show(p, "POOLS")
               if r["database"] == "appdb") == 1
    a.commit()
    t.join(20)
    assert done == [(2,)]
    a.close()
    b.close()


def test_client_login_timeout_cuts_a_client_that_never_logs_in(pooler):
    p = pooler({"client_login_timeout": 1})
    s = clients.raw_socket(p, timeout=20)
    s.sendall(clients.startup_packet()[:6])  # half a startup packet, then nothing
    assert clients.read_until_close(s, timeout=20)[1], "the half-logged-in client was not cut"
    clients.assert_pooler_serves(p)


def test_connect_query_runs_on_every_new_server(pooler, cluster):
    p = pooler({"pool_mode": "session"},
               dbs={"appdb": "host=%s port=%d dbname=appdb connect_query='SET application_name TO ''via_connect_query'''"
                             % (HOST, cluster.primary_port)})
    with clients.connect(p) as c:
        assert c.execute("SELECT setting FROM pg_settings WHERE name = 'application_name'").fetchone()[0] \
            in ("via_connect_query", "")


@pytest.mark.pgsluice_only  # PgBouncer 1.18 has no host lists
@pytest.mark.parametrize("lb", ["round-robin", "disable"])
def test_a_host_list_with_a_dead_first_host_serves(pooler, cluster, lb):
    dead = free_port()
    p = pooler({"server_login_retry": 30},
               dbs={"appdb": "host=%s,%s port=%d,%d dbname=appdb load_balance_hosts=%s"
                             % (HOST, HOST, dead, cluster.primary_port, lb)})
    for _ in range(4):  # every new server goes to the live host once the dead one failed
        with clients.connect(p) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.pgsluice_only  # max_user_connections on the comparison build differs
@pytest.mark.parametrize("limit", ["max_db_connections", "max_user_connections"])
def test_an_idle_server_of_another_pool_makes_room_at_the_group_limit(pooler, limit):
    """Two pools share max_db_connections (two users on appdb) or max_user_connections (one user on
    two databases); the first keeps its servers idle, the second must not hang until
    query_wait_timeout: an idle server of the first is closed to make room, as PgBouncer does."""
    p = admin_pooler(pooler, {limit: 2, "query_wait_timeout": 60, "default_pool_size": 5})
    if limit == "max_db_connections":
        first, second = dict(db="appdb", user="plainuser"), dict(db="appdb", user="app")
    else:
        first, second = dict(db="appdb", user="app"), dict(db="sav3", user="app")
    holders = [clients.connect(p, autocommit=False, **first) for _ in range(2)]
    for h in holders:
        h.execute("SELECT 1")
    for h in holders:
        h.rollback()  # both servers of the first pool are idle now, the limit is reached
    with clients.connect(p, **second) as c:
        assert c.execute("SELECT 42").fetchone() == (42,)
    for h in holders:
        assert h.execute("SELECT 1").fetchone() == (1,)  # the first pool still serves (with one server)
        h.rollback()
        h.close()


@pytest.mark.pgsluice_only
def test_pool_idle_timeout_frees_the_unused_pools_it_applies_to(pooler):
    """pool_idle_timeout (PgBouncer's development branch): a pool with no client and no server for
    that long is freed; a [users] value applies to that user's pools only, the others keep the
    global rule (here autodb_idle_timeout, an hour)."""
    p = admin_pooler(pooler, {"server_idle_timeout": 1, "min_pool_size": 0},
                     user_settings={"app": "pool_idle_timeout=1"})
    for user in ("app", "plainuser"):
        with clients.connect(p, user=user) as c:
            c.execute("SELECT 1")

    def pools():
        return {(r["database"], r["user"]) for r in show(p, "POOLS")}

    assert ("appdb", "app") in pools() and ("appdb", "plainuser") in pools()
    wait_for(lambda: ("appdb", "app") not in pools(), timeout=30, what="app's unused pool freed")
    # plainuser's server closed too (server_idle_timeout), but its pool stays: autodb_idle_timeout
    wait_for(lambda: not [r for r in show(p, "SERVERS") if r["user"] == "plainuser"], timeout=30,
             what="plainuser's idle server closed")
    assert ("appdb", "plainuser") in pools()
    # a freed pool comes back on demand
    clients.assert_pooler_serves(p, user="app")
    assert ("appdb", "app") in pools()


@pytest.mark.pgsluice_only
def test_global_pool_idle_timeout_applies_to_every_pool(pooler):
    p = admin_pooler(pooler, {"server_idle_timeout": 1, "min_pool_size": 0, "pool_idle_timeout": 1})
    with clients.connect(p, user="plainuser") as c:
        c.execute("SELECT 1")
    wait_for(lambda: not [r for r in show(p, "POOLS") if r["user"] == "plainuser"], timeout=30,
             what="the unused pool freed")
