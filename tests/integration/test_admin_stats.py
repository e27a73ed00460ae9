"""Admin console under pgbench load: exact counters (SHOW STATS grows by exactly the transactions and
queries run), averages over stats_period, and every console command through psql against the live
pool without failing a pgbench transaction."""
import psycopg
import pytest

from harness import clients
from harness.util import wait_for
from admin_helpers import (admin_pooler, admin_psql, console, pgbench_finish, pgbench_load, pool_row,
                                psql_rows, show, stats_row)

COUNTERS = ["total_xact_count", "total_query_count", "total_received", "total_sent", "total_xact_time",
            "total_query_time", "total_wait_time", "total_server_assignment_count"]


def counters(p, db):
    row = stats_row(p, db)
    return {k: int(row[k]) if row else 0 for k in COUNTERS}


@pytest.mark.pgsluice_only  # PgBouncer 1.18 predates total_server_assignment_count
def test_stats_grow_by_exactly_the_transactions_run_while_pgbench_loads_another_database(pooler):
    p = admin_pooler(pooler, {"default_pool_size": 4})
    load = pgbench_load(p, db="appdb", clients_n=4, seconds=4)
    try:
        with clients.connect(p, db="sav3") as warm:
            warm.execute("SELECT 1")
        before = counters(p, "sav3")
        auto, xacts = 30, 20
        with clients.connect(p, db="sav3") as c:
            for _ in range(auto):
                c.execute("SELECT 1")
        with clients.connect(p, db="sav3", autocommit=False) as c:
            for _ in range(xacts):
                c.execute("SELECT 1")
                c.execute("SELECT 2")
                c.commit()  # BEGIN, two statements, COMMIT: four queries, one transaction
        after = counters(p, "sav3")
    finally:
        processed, failed, out = pgbench_finish(load)
    d = {k: after[k] - before[k] for k in COUNTERS}
    assert d["total_xact_count"] == auto + xacts, d
    assert d["total_query_count"] == auto + 4 * xacts, d
    assert d["total_received"] > 0 and d["total_sent"] > 0
    assert d["total_xact_time"] >= d["total_query_time"] > 0
    assert d["total_server_assignment_count"] >= auto + xacts
    assert d["total_wait_time"] >= 0
    assert failed == 0, out


@pytest.mark.pgsluice_only  # PgBouncer 1.18 predates total_server_assignment_count
def test_stats_count_exactly_the_transactions_pgbench_processed(pooler):
    p = admin_pooler(pooler, {"default_pool_size": 3})
    clients.assert_pooler_serves(p)
    before = counters(p, "appdb")
    load = pgbench_load(p, db="appdb", clients_n=6, seconds=0, extra=["-t", "50"])
    processed, failed, out = pgbench_finish(load)
    after = counters(p, "appdb")
    assert failed == 0 and processed == 300, out
    assert after["total_xact_count"] - before["total_xact_count"] == processed
    assert after["total_query_count"] - before["total_query_count"] == processed
    # SHOW TOTALS sums SHOW STATS, and STATS_TOTALS shows the same totals
    stats = show(p, "STATS")
    totals = {r["name"]: int(r["value"]) for r in show(p, "TOTALS")}
    assert totals["total_xact_count"] == sum(int(r["total_xact_count"]) for r in stats)
    assert totals["total_query_count"] == sum(int(r["total_query_count"]) for r in stats)
    assert totals["total_client_bytes"] == sum(int(r["total_received"]) for r in stats)
    st = {r["database"]: r for r in show(p, "STATS_TOTALS")}
    assert int(st["appdb"]["xact_count"]) == after["total_xact_count"]
    assert int(st["appdb"]["bytes_received"]) == after["total_received"]


@pytest.mark.pgsluice_only  # PgBouncer 1.18 predates avg_server_assignment_count
def test_averages_follow_the_load_over_stats_period(pooler):
    p = admin_pooler(pooler, {"stats_period": 1, "default_pool_size": 3})
    load = pgbench_load(p, db="appdb", clients_n=3, seconds=4)
    try:
        busy = wait_for(lambda: _busy_avg(p), timeout=15, what="non-zero averages for appdb")
        assert int(busy["avg_query_count"]) >= int(busy["avg_xact_count"]) > 0
        assert int(busy["avg_recv"]) > 0 and int(busy["avg_sent"]) > 0
        assert int(busy["avg_server_assignment_count"]) > 0
        avg = {r["database"]: r for r in show(p, "STATS_AVERAGES")}["appdb"]
        assert int(avg["xact_count"]) >= 0
    finally:
        processed, failed, out = pgbench_finish(load)
    assert failed == 0, out
    wait_for(lambda: int(stats_row(p, "appdb")["avg_xact_count"]) == 0, timeout=15,
             what="averages back to zero after the load")
    assert "stats:" in p.log_text()  # log_stats (on by default) reports each period


def _busy_avg(p):
    row = stats_row(p, "appdb")
    if row and int(row["avg_xact_count"]) > 0 and int(row["avg_query_time"]) > 0:
        return row
    return None


SHOWS = ["HELP", "POOLS", "CLIENTS", "SERVERS", "STATS", "STATS_TOTALS", "STATS_AVERAGES", "TOTALS", "DATABASES",
         "USERS", "CONFIG", "LISTS", "MEM", "STATE", "VERSION", "SOCKETS", "ACTIVE_SOCKETS", "DNS_HOSTS",
         "DNS_ZONES"]


@pytest.mark.pgsluice_only  # PgBouncer 1.18 has no SHOW STATE, KILL_CLIENT, SHUTDOWN WAIT_FOR_CLIENTS
def test_every_console_command_through_psql_under_pgbench_load(pooler):
    p = admin_pooler(pooler, {"default_pool_size": 4, "stats_period": 1})
    bystander = clients.connect(p, db="sav3", application_name="bystander")
    bystander.execute("SELECT 1")
    victim = clients.connect(p, db="postgres", application_name="to_kill")
    victim.execute("SELECT 1")
    # long enough to outlast the console commands below on a loaded machine (they check its clients)
    load = pgbench_load(p, db="appdb", clients_n=4, seconds=30)
    try:
        wait_for(lambda: int((stats_row(p, "appdb") or {}).get("total_xact_count", 0)) > 0, timeout=15,
                 what="pgbench running")
        xacts = int(stats_row(p, "appdb")["total_xact_count"])
        for what in SHOWS:
            admin_psql(p, "SHOW %s;" % what)
        out = admin_psql(p, "; ".join("SHOW " + w for w in SHOWS)).stdout
        assert "appdb" in out
        assert int(stats_row(p, "appdb")["total_xact_count"]) > xacts  # the numbers move under load
        pool = pool_row(p, "appdb")
        assert pool["sv_active"] + pool["sv_idle"] + pool["sv_used"] + pool["sv_tested"] + pool["sv_login"] <= 4
        assert pool["cl_active"] + pool["cl_waiting"] == 4

        admin_psql(p, "SET default_pool_size=5;")
        assert pool_row(p, "appdb")["pool_size"] == 5
        admin_psql(p, "RELOAD;")
        assert pool_row(p, "appdb")["pool_size"] == 4
        admin_psql(p, "PAUSE;")
        assert {r[0]: r[1] for r in psql_rows(admin_psql(p, "SHOW STATE").stdout)}["paused"] == "yes"
        assert pool_row(p, "appdb")["sv_active"] == 0
        admin_psql(p, "RESUME;")
        admin_psql(p, "PAUSE appdb;")
        admin_psql(p, "RESUME appdb;")
        admin_psql(p, "DISABLE sav3;")
        admin_psql(p, "ENABLE sav3;")
        admin_psql(p, "RECONNECT appdb;")
        admin_psql(p, "WAIT_CLOSE appdb;")
        admin_psql(p, "RECONNECT;")
        admin_psql(p, "WAIT_CLOSE;")
        cid = [r["id"] for r in show(p, "CLIENTS") if r["application_name"] == "to_kill"][0]
        admin_psql(p, "KILL_CLIENT %d;" % cid)
        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")
        admin_psql(p, "KILL sav3;")
        with pytest.raises(psycopg.OperationalError):
            bystander.execute("SELECT 1")
        admin_psql(p, "RESUME sav3;")
        with console(p) as con:  # SUSPEND lasts as long as the console that issued it
            con.execute("SUSPEND")
            con.execute("RESUME")
        assert int(stats_row(p, "appdb")["total_xact_count"]) > xacts
    finally:
        processed, failed, out = pgbench_finish(load)
        bystander.close()
        victim.close()
    assert failed == 0 and processed > 0, out
    clients.assert_pooler_serves(p, db="sav3")
    admin_psql(p, "SHUTDOWN WAIT_FOR_CLIENTS;")
    assert p.proc.wait(15) == 0
    p.returncode = 0


@pytest.mark.pgsluice_only  # total_client_login_count is from PgBouncer's development branch, after 1.25
def test_client_logins_are_counted_per_database_with_the_consoles_in_its_own_row(pooler):
    p = admin_pooler(pooler)
    before = {r["database"]: int(r["total_client_login_count"]) for r in show(p, "STATS")}
    for _ in range(5):
        clients.assert_pooler_serves(p)  # one login each
    for _ in range(2):
        clients.assert_pooler_serves(p, db="sav3")
    after = {r["database"]: int(r["total_client_login_count"]) for r in show(p, "STATS")}
    assert after["appdb"] - before.get("appdb", 0) == 5
    assert after["sav3"] - before.get("sav3", 0) == 2
    assert after["pgbouncer"] > before["pgbouncer"]  # the SHOW STATS sessions themselves
    totals = {r["name"]: int(r["value"]) for r in show(p, "TOTALS")}
    st = {r["database"]: int(r["client_login_count"]) for r in show(p, "STATS_TOTALS")}
    # each SHOW above is one more console login: the totals include the one that reads them
    assert totals["total_client_login_count"] == sum(st.values()) - 1


def _asan_build():
    from harness.pooler import pooler_binary
    with open(pooler_binary(), "rb") as f:
        return b"__asan_init" in f.read()


@pytest.mark.pgsluice_only  # PgBouncer's slabs differ: its free counts follow its own allocator
def test_client_objects_kept_for_reuse_show_in_lists_and_mem(pooler):
    """Clients that left leave their objects on their worker's free list for the next login: SHOW
    LISTS free_clients and SHOW MEM's client row count them, and agree."""
    p = admin_pooler(pooler)
    for _ in range(6):
        clients.assert_pooler_serves(p)  # one login and logout each

    def counts():
        with console(p) as c:
            lists = {r["list"]: int(r["items"]) for r in c.execute("SHOW LISTS").fetchall()}
            mem = {r["name"]: r for r in c.execute("SHOW MEM").fetchall()}
        return lists, mem

    # ASan builds keep nothing (a use after free must reach the allocator to be caught)
    want_free = 0 if _asan_build() else 1

    def kept():
        lists, mem = counts()
        return (lists, mem) if lists["free_clients"] >= want_free else None

    lists, mem = wait_for(kept, timeout=30, what="free_clients after 6 logouts")
    row = mem["client"]
    assert int(row["free"]) == lists["free_clients"]  # one console session: nobody came or went between
    assert int(row["memtotal"]) == (int(row["used"]) + int(row["free"])) * int(row["size"])
    if want_free:
        assert lists["free_clients"] <= 6  # only what the logouts left
