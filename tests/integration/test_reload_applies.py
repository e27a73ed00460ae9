"""Settings whose docs/CONFIG.md "Reload" column says `yes` reach clients connected before the
change, whether it comes from RELOAD (SIGHUP with a rewritten file) or the console's SET: each
worker switches to the new snapshot and its clients read their settings from it."""
import psycopg
import pytest

from admin_helpers import admin_pooler, console, show
from harness import clients
from harness.util import wait_for

CHANGE = ["reload", "set"]


def change(p, name, value, how):
    if how == "reload":
        p.reload({name: value}, wait=0)
    else:
        with console(p) as con:
            con.execute("SET %s = '%s'" % (name, value))
    wait_for(lambda: {r["key"]: r["value"] for r in show(p, "CONFIG")}[name] == str(value), timeout=15,
             what="%s = %s in SHOW CONFIG" % (name, value))


def client_gone(p, app):
    return not any(r["application_name"] == app for r in show(p, "CLIENTS"))


@pytest.mark.parametrize("how", CHANGE)
def test_query_timeout_reaches_a_client_connected_before(pooler, how):
    p = admin_pooler(pooler, {"pool_mode": "transaction", "query_timeout": 0})
    with clients.connect(p) as c:
        c.execute("SELECT 1")
        change(p, "query_timeout", 1, how)
        with pytest.raises(psycopg.Error, match="query timeout"):
            c.execute("SELECT pg_sleep(30)")
    clients.assert_pooler_serves(p)


@pytest.mark.parametrize("how", CHANGE)
def test_client_idle_timeout_reaches_a_client_connected_before(pooler, how):
    p = admin_pooler(pooler, {"pool_mode": "transaction", "client_idle_timeout": 0})
    app = "idle-before-%s" % how
    with clients.connect(p, application_name=app) as c:
        c.execute("SELECT 1")
        change(p, "client_idle_timeout", 1, how)
        wait_for(lambda: client_gone(p, app), timeout=20, what="the idle client closed")
        with pytest.raises(psycopg.Error):
            c.execute("SELECT 1")


@pytest.mark.parametrize("how", CHANGE)
def test_idle_transaction_timeout_reaches_a_client_connected_before(pooler, how):
    p = admin_pooler(pooler, {"pool_mode": "transaction", "idle_transaction_timeout": 0})
    app = "idle-in-xact-%s" % how
    with clients.connect(p, autocommit=False, application_name=app) as c:
        c.execute("SELECT 1")  # a transaction is open and idle from here on
        change(p, "idle_transaction_timeout", 1, how)
        wait_for(lambda: client_gone(p, app), timeout=20, what="the client idle in a transaction closed")
        with pytest.raises(psycopg.Error):
            c.execute("SELECT 1")


def prepared_of(p, app):
    rows = [r for r in show(p, "CLIENTS") if r["application_name"] == app]
    return rows[0]["prepared_statements"] if rows else None


@pytest.mark.pgsluice_only  # SHOW CLIENTS' prepared_statements column is PgBouncer 1.21's
@pytest.mark.parametrize("how", CHANGE)
def test_max_prepared_statements_reaches_a_client_connected_before(pooler, how):
    p = admin_pooler(pooler, {"pool_mode": "transaction", "max_prepared_statements": 0})
    app = "prepares-%s" % how
    with clients.connect(p, application_name=app, prepare_threshold=100) as c:  # prepare=True only
        c.execute("SELECT %s::int", [1], prepare=True)
        assert prepared_of(p, app) == 0  # names pass through untouched: nothing tracked
        c.execute("DEALLOCATE ALL")
        change(p, "max_prepared_statements", 100, how)
        c.execute("SELECT %s::int + 1", [1], prepare=True)
        assert c.execute("SELECT %s::int + 1", [2], prepare=True).fetchone() == (3,)
        assert prepared_of(p, app) >= 1  # the same client's statements are now tracked
        change(p, "max_prepared_statements", 0, how)
        c.execute("DEALLOCATE ALL")
