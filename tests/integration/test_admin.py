"""Admin console: SHOW commands (PgBouncer 1.25 columns), the guide's commands, errors, permissions,
and the simple and extended query protocols (psql, psycopg, asyncpg, raw messages)."""
import asyncio
import socket
import struct

import asyncpg
import psycopg
import pytest

from harness import clients
from harness.util import wait_for
from admin_helpers import (ADMIN, OTHER_USER, STATS_USER, admin_pooler, admin_psql, columns, console,
                                pool_row, psql_rows, show)

TEXT, INT4, INT8, NUMERIC = 25, 23, 20, 1700

SOCKET_COLS = ["type", "user", "database", "replication", "state", "addr", "port", "local_addr", "local_port",
               "connect_time", "request_time", "wait", "wait_us", "close_needed", "ptr", "link", "remote_pid",
               "tls", "application_name", "prepared_statements", "id"]
DEBUG_COLS = ["recv_pos", "pkt_pos", "pkt_remain", "send_pos", "send_remain", "pkt_avail", "send_avail"]
STATS_TOTAL = ["total_server_assignment_count", "total_xact_count", "total_query_count", "total_received",
               "total_sent", "total_xact_time", "total_query_time", "total_wait_time", "total_client_parse_count",
               "total_server_parse_count", "total_bind_count", "total_client_login_count"]
STATS_AVG = ["avg_server_assignment_count", "avg_xact_count", "avg_query_count", "avg_recv", "avg_sent",
             "avg_xact_time", "avg_query_time", "avg_wait_time", "avg_client_parse_count",
             "avg_server_parse_count", "avg_bind_count", "avg_client_login_count"]
PLAIN = ["server_assignment_count", "xact_count", "query_count", "bytes_received", "bytes_sent", "xact_time",
         "query_time", "wait_time"]

# PgBouncer 1.25's columns, in order; pgsluice may only add columns after them.
EXPECTED_COLUMNS = {
    "POOLS": ["database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req",
              "sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login",
              "maxwait", "maxwait_us", "pool_mode", "load_balance_hosts"],
    "CLIENTS": SOCKET_COLS,
    "SERVERS": SOCKET_COLS,
    "SOCKETS": SOCKET_COLS + DEBUG_COLS,
    "ACTIVE_SOCKETS": SOCKET_COLS + DEBUG_COLS,
    "STATS": ["database"] + STATS_TOTAL + STATS_AVG,
    "STATS_TOTALS": ["database"] + PLAIN + ["client_parse_count", "server_parse_count", "bind_count",
                                                     "client_login_count"],
    "STATS_AVERAGES": ["database"] + PLAIN + ["avg_client_parse_count", "avg_server_parse_count", "avg_bind_count",
                                                       "avg_client_login_count"],
    "TOTALS": ["name", "value"],
    "DATABASES": ["name", "host", "port", "database", "force_user", "pool_size", "min_pool_size",
                  "reserve_pool_size", "server_lifetime", "pool_mode", "load_balance_hosts", "max_connections",
                  "current_connections", "max_client_connections", "current_client_connections", "paused",
                  "disabled"],
    "USERS": ["name", "pool_size", "reserve_pool_size", "pool_mode", "max_user_connections", "current_connections",
              "max_user_client_connections", "current_client_connections"],
    "CONFIG": ["key", "value", "default", "changeable"],
    "LISTS": ["list", "items"],
    "MEM": ["name", "size", "used", "free", "memtotal"],
    "STATE": ["key", "value"],
    "VERSION": ["version"],
    "DNS_HOSTS": ["hostname", "ttl", "addrs"],
    "DNS_ZONES": ["zonename", "serial", "count"],
    "PEERS": ["peer_id", "host", "port", "pool_size"],
    "PEER_POOLS": ["peer_id", "cl_active_cancel_req", "cl_waiting_cancel_req", "sv_active_cancel", "sv_login"],
}

ALL_SHOWS = ["HELP"] + list(EXPECTED_COLUMNS)


@pytest.mark.pgsluice_only  # PgBouncer 1.18 (the local reference) predates several of these columns
@pytest.mark.parametrize("what", list(EXPECTED_COLUMNS))
def test_show_columns_are_pgbouncers_in_order(pooler, what):
    p = admin_pooler(pooler)
    with clients.connect(p) as c:
        c.execute("SELECT 1")
    cols = columns(p, what)
    names = [n for n, _ in cols]
    expected = EXPECTED_COLUMNS[what]
    assert names[:len(expected)] == expected, names


@pytest.mark.pgsluice_only
def test_show_column_types_match_pgbouncer(pooler):
    p = admin_pooler(pooler)
    types = dict(columns(p, "POOLS"))
    assert types["database"] == TEXT and types["cl_active"] == INT4 and types["maxwait_us"] == INT4
    types = dict(columns(p, "STATS"))
    assert types["database"] == TEXT
    assert all(types[c] == NUMERIC for c in STATS_TOTAL + STATS_AVG)
    types = dict(columns(p, "CLIENTS"))
    assert types["port"] == INT4 and types["connect_time"] == TEXT and types["id"] == INT4
    assert dict(columns(p, "DNS_HOSTS"))["ttl"] == INT8
    assert dict(columns(p, "TOTALS"))["value"] == NUMERIC


@pytest.mark.pgsluice_only  # PgBouncer 1.18 (the local reference) has no SHOW STATE
def test_every_show_command_answers_through_psql(pooler):
    p = admin_pooler(pooler)
    clients.assert_pooler_serves(p)
    for what in ALL_SHOWS:
        r = admin_psql(p, "SHOW %s;" % what, check=False)
        assert r.returncode == 0, (what, r.stderr)
    out = admin_psql(p, "SHOW HELP").stderr
    assert "Console usage" in out and "SHOW" in out


def test_guide_troubleshooting_commands_verbatim(pooler):
    p = admin_pooler(pooler)
    clients.assert_pooler_serves(p)
    rows = psql_rows(admin_psql(p, "SHOW POOLS;").stdout)
    assert any(r[0] == "appdb" and r[1] == "app" for r in rows), rows
    r = admin_psql(p, "SET default_pool_size=30;")
    assert r.returncode == 0
    config = {row["key"]: row["value"] for row in show(p, "CONFIG")}
    assert config["default_pool_size"] == "30"
    assert admin_psql(p, "RELOAD;").returncode == 0
    config = {row["key"]: row["value"] for row in show(p, "CONFIG")}
    assert config["default_pool_size"] == "5"  # RELOAD re-reads the file


@pytest.mark.pgsluice_only  # PgBouncer answers only one command per query string
def test_psql_c_with_several_commands_answers_each(pooler):
    p = admin_pooler(pooler)
    clients.assert_pooler_serves(p)
    out = admin_psql(p, "SHOW POOLS; SHOW STATS").stdout
    rows = psql_rows(out)
    assert any(len(r) >= 17 and r[0] == "appdb" and r[1] == "app" for r in rows), out  # a POOLS row
    assert any(len(r) >= 23 and r[0] == "appdb" and r[1] != "app" for r in rows), out  # a STATS row
    r = admin_psql(p, "SHOW VERSION; SHOW NO_SUCH_THING; SHOW STATE", check=False)
    assert r.returncode != 0 and "invalid command" in r.stderr
    assert "active" not in r.stdout  # the statement after the error does not run, as in PostgreSQL


@pytest.mark.pgsluice_only  # the "pgsluice" alias is pgsluice's
def test_console_is_also_reachable_as_pgsluice(pooler):
    p = admin_pooler(pooler)
    with console(p, db="pgsluice") as c:
        assert c.execute("SHOW STATE").fetchall()


@pytest.mark.pgsluice_only  # PgBouncer answers every console error with 08P01
def test_unknown_command_and_syntax_errors_keep_the_session_usable(pooler):
    p = admin_pooler(pooler)
    with console(p) as c:
        for bad in ["SHOW NOTHING", "FROBNICATE", "SET = 3", "SHOW", "PAUSE a b", "SET default_pool_size",
                    "SHUTDOWN NOW_PLEASE", "'unterminated"]:
            with pytest.raises(psycopg.Error) as ei:
                c.execute(bad)
            assert ei.value.sqlstate in ("42601", "42704", "22023"), (bad, ei.value.sqlstate, str(ei.value))
            assert c.execute("SHOW VERSION").fetchone()["version"].startswith("pgsluice")
    with console(p) as c:
        with pytest.raises(psycopg.Error) as ei:
            c.execute("SHOW FOO")
        assert "invalid command 'SHOW FOO', use SHOW HELP;" in str(ei.value)
        assert c.execute("SHOW STATE").fetchall()


@pytest.mark.pgsluice_only  # PgBouncer answers every console error with 08P01
def test_set_rejects_unknown_fixed_and_invalid_settings(pooler):
    p = admin_pooler(pooler)
    with console(p) as c:
        for bad, code in [("SET no_such_setting = 1", "42704"), ("SET listen_port = 7000", "22023"),
                          ("SET default_pool_size = lots", "22023")]:
            with pytest.raises(psycopg.Error) as ei:
                c.execute(bad)
            assert ei.value.sqlstate == code, (bad, str(ei.value))
        c.execute("SET server_check_query = 'select 2'")
        c.execute("SET log_connections TO 0")
        config = {r["key"]: r["value"] for r in c.execute("SHOW CONFIG").fetchall()}
        assert config["server_check_query"] == "select 2" and config["log_connections"] == "0"
        c.execute("SET client_encoding = 'UTF8'")  # what some drivers send: accepted, ignored
        assert c.execute("SHOW client_encoding").fetchone()


# ---- permissions ----

@pytest.mark.pgsluice_only  # PgBouncer 1.18 has no SHOW STATE
def test_admin_user_may_run_control_commands(pooler):
    p = admin_pooler(pooler)
    with console(p, ADMIN) as c:
        c.execute("PAUSE")
        assert {r["key"]: r["value"] for r in c.execute("SHOW STATE")}["paused"] == "yes"
        c.execute("RESUME")
        c.execute("SET default_pool_size = 7")
        c.execute("RELOAD")


@pytest.mark.pgsluice_only  # PgBouncer 1.18 has no SHOW STATE; PgBouncer answers 08P01, the issue wants 42501
def test_stats_user_may_only_show(pooler):
    p = admin_pooler(pooler)
    clients.assert_pooler_serves(p)
    with console(p, STATS_USER) as c:
        for what in ALL_SHOWS:
            c.execute("SHOW " + what)
        for cmd in ["PAUSE", "RESUME", "SET default_pool_size = 9", "RELOAD", "KILL appdb", "DISABLE appdb",
                    "SUSPEND", "SHUTDOWN", "RECONNECT", "WAIT_CLOSE", "KILL_CLIENT 1"]:
            with pytest.raises(psycopg.Error) as ei:
                c.execute(cmd)
            assert ei.value.sqlstate == "42501", (cmd, str(ei.value))
            assert "admin" in str(ei.value)
        assert c.execute("SHOW STATE").fetchall()  # still usable
    config = {r["key"]: r["value"] for r in show(p, "CONFIG")}
    assert config["default_pool_size"] == "5"
    assert clients.psql(p, "-c", "SELECT 1").stdout.strip() == "1"  # SHUTDOWN was refused


@pytest.mark.pgsluice_only  # PgBouncer refuses with 08P01, the issue wants 42501
def test_other_users_are_refused_at_login_with_42501(pooler):
    p = admin_pooler(pooler)
    sqlstate, msg = clients.login_error(p, db="pgbouncer", user=OTHER_USER)
    assert sqlstate == "42501", (sqlstate, msg)
    assert "admin console" in msg
    r = admin_psql(p, "SHOW POOLS", user=OTHER_USER, check=False)
    assert r.returncode != 0 and "not allowed" in r.stderr


@pytest.mark.pgsluice_only  # PgBouncer refuses with 08P01, the issue wants 42501
def test_with_auth_type_trust_the_user_must_still_be_listed(pooler):
    p = admin_pooler(pooler, {"auth_type": "trust"})
    sqlstate, _ = clients.login_error(p, db="pgbouncer", user=OTHER_USER, password="wrong")
    assert sqlstate == "42501"
    with console(p, ADMIN) as c:
        assert c.execute("SHOW STATE").fetchall()


# ---- extended protocol ----

@pytest.mark.pgsluice_only  # PgBouncer's console has no extended query protocol
def test_psycopg_prepared_statements_on_the_console(pooler):
    p = admin_pooler(pooler)
    clients.assert_pooler_serves(p)
    with console(p, prepare_threshold=0) as c:  # every statement prepared (named)
        for _ in range(3):
            rows = c.execute("SHOW POOLS").fetchall()
            assert any(r["database"] == "appdb" for r in rows)
            stats = c.execute("SHOW STATS").fetchall()
            assert all(isinstance(r["total_xact_count"], type(stats[0]["total_xact_count"])) for r in stats)
        with pytest.raises(psycopg.Error):
            c.execute("SHOW NOTHING")
        assert c.execute("SHOW VERSION").fetchone()
        c.execute("SET default_pool_size = 6")
        assert c.execute("SHOW CLIENTS").fetchall()  # a command answered from every worker
    with console(p) as c:
        cur = c.cursor()
        cur.execute("SHOW DATABASES", prepare=True)
        assert cur.fetchall()
        cur.execute("SHOW DATABASES", prepare=True)
        assert cur.fetchall()


@pytest.mark.pgsluice_only  # PgBouncer refuses BEGIN on the console
def test_psycopg_without_autocommit_wraps_commands_in_a_harmless_transaction(pooler):
    p = admin_pooler(pooler)
    with psycopg.connect(p.dsn("pgbouncer", ADMIN), prepare_threshold=None) as c:
        assert c.execute("SHOW STATE").fetchall()
        c.commit()
        assert c.execute("SHOW LISTS").fetchall()
        c.rollback()


@pytest.mark.pgsluice_only  # PgBouncer's console has no extended query protocol
def test_asyncpg_fetches_with_binary_results(pooler):
    p = admin_pooler(pooler)
    clients.assert_pooler_serves(p)

    async def run():
        for cache in (0, 100):  # unnamed statements, then named ones (asyncpg's default)
            conn = await asyncpg.connect(host=p.host, port=p.port, user=ADMIN, database="pgbouncer",
                                         password=p.cluster.passwords[ADMIN], statement_cache_size=cache)
            try:
                for _ in range(2):
                    pools = await conn.fetch("SHOW POOLS")
                    row = [r for r in pools if r["database"] == "appdb"][0]
                    assert row["user"] == "app" and isinstance(row["cl_active"], int)
                    stats = [r for r in await conn.fetch("SHOW STATS") if r["database"] == "appdb"][0]
                    assert int(stats["total_xact_count"]) >= 1
                    assert (await conn.fetchval("SHOW VERSION")).startswith("pgsluice")
                    dns = await conn.fetch("SHOW DNS_HOSTS")
                    assert dns == []
                    clients_rows = await conn.fetch("SHOW CLIENTS")
                    assert any(r["database"] == "pgbouncer" for r in clients_rows)
                with pytest.raises(asyncpg.PostgresError):
                    await conn.fetch("SHOW NOTHING")
                await conn.execute("PAUSE appdb")
                await conn.execute("RESUME appdb")
                assert await conn.fetch("SHOW STATE")
            finally:
                await conn.close()
    asyncio.run(run())


# raw messages, to pin the exact answers of the extended protocol

def _msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body


def _read_until_ready(sock):
    msgs, buf = [], b""
    while True:
        while len(buf) >= 5:
            (n,) = struct.unpack("!I", buf[1:5])
            if len(buf) < n + 1:
                break
            msgs.append((buf[:1], buf[5:n + 1]))
            buf = buf[n + 1:]
            if msgs[-1][0] == b"Z":
                return msgs
        chunk = sock.recv(65536)
        assert chunk, "connection closed; got %r" % msgs
        buf += chunk


def _raw_console(p):
    s = clients.raw_socket(p)
    s.sendall(clients.startup_packet(user=ADMIN, database="pgbouncer"))
    msgs = _read_until_ready(s)
    assert msgs[0] == (b"R", struct.pack("!I", 0)), msgs[:2]
    params = dict(body.split(b"\0")[:2] for t, body in msgs if t == b"S")
    assert params[b"client_encoding"] == b"UTF8" and b"server_version" in params
    assert any(t == b"K" for t, _ in msgs)
    return s


@pytest.mark.pgsluice_only  # PgBouncer's console has no extended query protocol
def test_extended_protocol_messages_answer_like_postgresql(pooler):
    p = admin_pooler(pooler, {"auth_type": "trust"})
    s = _raw_console(p)
    try:
        # Parse, Bind, Describe portal, Execute, Sync
        s.sendall(_msg(b"P", b"\0SHOW STATE\0\0\0") + _msg(b"B", b"\0\0\0\0\0\0\0\0")
                  + _msg(b"D", b"P\0") + _msg(b"E", b"\0\0\0\0\0") + _msg(b"S"))
        types = [t for t, _ in _read_until_ready(s)]
        assert types == [b"1", b"2", b"T", b"D", b"D", b"D", b"C", b"Z"], types
        # Describe of a statement: ParameterDescription, then RowDescription; a command without rows: NoData
        s.sendall(_msg(b"P", b"st\0RESUME\0\0\0") + _msg(b"D", b"Sst\0") + _msg(b"P", b"s2\0SHOW LISTS\0\0\0")
                  + _msg(b"D", b"Ss2\0") + _msg(b"S"))
        types = [t for t, _ in _read_until_ready(s)]
        assert types == [b"1", b"t", b"n", b"1", b"t", b"T", b"Z"], types
        # an error skips to Sync (like PostgreSQL, an unknown SHOW fails when executed), then the session goes on
        s.sendall(_msg(b"P", b"\0SHOW NOPE\0\0\0") + _msg(b"B", b"\0\0\0\0\0\0\0\0") + _msg(b"E", b"\0\0\0\0\0")
                  + _msg(b"E", b"\0\0\0\0\0") + _msg(b"S"))
        msgs = _read_until_ready(s)
        assert [t for t, _ in msgs] == [b"1", b"2", b"E", b"Z"], msgs
        assert b"42601" in msgs[2][1]
        # a syntax error fails at Parse
        s.sendall(_msg(b"P", b"\0PAUSE a b c\0\0\0") + _msg(b"B", b"\0\0\0\0\0\0\0\0") + _msg(b"S"))
        assert [t for t, _ in _read_until_ready(s)] == [b"E", b"Z"]
        # binary results: int4 as 4 bytes, numeric in PostgreSQL's binary form
        s.sendall(_msg(b"P", b"\0SHOW LISTS\0\0\0") + _msg(b"B", b"\0\0\0\0\0\0\0\x01\0\x01")
                  + _msg(b"E", b"\0\0\0\0\0") + _msg(b"S"))
        msgs = _read_until_ready(s)
        rows = [body for t, body in msgs if t == b"D"]
        first = rows[0]
        (ncol,) = struct.unpack("!H", first[:2])
        (l1,) = struct.unpack("!I", first[2:6])
        name = first[6:6 + l1]
        (l2,) = struct.unpack("!I", first[6 + l1:10 + l1])
        assert ncol == 2 and name == b"databases" and l2 == 4
        # empty query and a simple Query still work on the same connection
        s.sendall(_msg(b"Q", b"\0"))
        assert [t for t, _ in _read_until_ready(s)] == [b"I", b"Z"]
        s.sendall(_msg(b"Q", b"SHOW VERSION;\0"))
        assert [t for t, _ in _read_until_ready(s)] == [b"T", b"D", b"C", b"Z"]
        s.sendall(_msg(b"X"))
    finally:
        s.close()


@pytest.mark.pgsluice_only  # PgBouncer 1.18 has no id column
def test_show_clients_and_servers_list_connections_of_every_worker(pooler):
    p = admin_pooler(pooler, {"default_pool_size": 10})
    conns = [clients.connect(p, application_name="lister%d" % i) for i in range(8)]
    holders = []
    try:
        for c in conns[:3]:  # three transactions hold their servers
            h = clients.connect(p, autocommit=False)
            h.execute("SELECT 1")
            holders.append(h)
        for c in conns:
            c.execute("SELECT 1")
        rows = show(p, "CLIENTS")
        mine = [r for r in rows if r["application_name"].startswith("lister")]
        assert len(mine) == 8
        assert len({r["id"] for r in rows}) == len(rows)
        assert all(r["type"] == "C" and r["database"] == "appdb" and r["user"] == "app" for r in mine)
        assert sum(r["state"] == "active" for r in rows if r["database"] == "appdb") >= 3
        assert any(r["database"] == "pgbouncer" for r in rows)  # the console itself, as PgBouncer shows it

        # servers the pool launched for the queue may still be logging in (remote_pid 0 until
        # PostgreSQL's BackendKeyData): wait for a settled pool rather than assert on a moment
        def settled():
            servers = [r for r in show(p, "SERVERS") if r["database"] == "appdb"]
            pool = pool_row(p, "appdb")
            total = pool["sv_active"] + pool["sv_idle"] + pool["sv_used"] + pool["sv_tested"] + pool["sv_login"]
            if pool["sv_login"] or len(servers) != total or not all(r["remote_pid"] > 0 for r in servers):
                return None
            return servers
        servers = wait_for(settled, timeout=20, what="every server logged in and listed")
        assert sum(1 for r in servers if r["state"] == "active" and r["link"]) >= 3
        sockets = show(p, "SOCKETS")
        assert {r["type"] for r in sockets} == {"C", "S"}
        show(p, "ACTIVE_SOCKETS")
    finally:
        # open transactions would hold the pooler's graceful stop (SIGINT waits for them)
        for h in holders:
            h.rollback()
            h.close()
        for c in conns:
            c.close()


@pytest.mark.pgsluice_only  # PgBouncer 1.18 has no pool_size in [users]
def test_show_databases_users_lists_and_pools_reflect_the_config(pooler):
    p = admin_pooler(pooler, user_settings={"app": "pool_size=3"})
    clients.assert_pooler_serves(p)
    dbs = {r["name"]: r for r in show(p, "DATABASES")}
    assert {"appdb", "sav3", "postgres", "appdb_replica", "pgbouncer"} <= set(dbs)
    assert dbs["appdb"]["port"] == p.cluster.primary_port and dbs["appdb"]["pool_size"] == 5
    users = {r["name"]: r for r in show(p, "USERS")}
    assert users["app"]["pool_size"] == "3" and users["postgres"]["pool_size"] == ""
    lists = {r["list"]: r["items"] for r in show(p, "LISTS")}
    assert lists["databases"] >= 5 and lists["pools"] >= 2
    pool = pool_row(p, "appdb")
    assert pool["pool_size"] == 3 and pool["pool_mode"] == "transaction"
    wait_for(lambda: pool_row(p, "appdb")["sv_idle"] + pool_row(p, "appdb")["sv_used"] == 1, timeout=10,
             what="the server back in the pool")
