"""Client limits: max_client_conn, query_wait_timeout, running out of file descriptors."""
import shutil
import struct
import threading
import time

import psycopg
import pytest

from harness import clients
from harness.util import wait_for


def test_max_client_conn_refuses_the_extra_client(pooler):
    p = pooler({"max_client_conn": 3})
    held = [clients.connect(p) for _ in range(3)]
    try:
        with pytest.raises(psycopg.OperationalError) as ei:
            clients.connect(p)
        assert "no more connections allowed" in str(ei.value)
        held.pop().close()
        # a slot is free again once the pooler has seen the close
        c = wait_for(lambda: _try_connect(p), timeout=5, what="a free client slot")
        c.close()
    finally:
        for c in held:
            c.close()
    clients.assert_pooler_serves(p)


def _try_connect(p):
    try:
        return clients.connect(p)
    except psycopg.OperationalError:
        return None


@pytest.mark.pgsluice_only  # PgBouncer 1.18 answers 08P01
def test_max_client_conn_refusal_sqlstate_is_53300(pooler):
    p = pooler({"max_client_conn": 3})
    held = [clients.connect(p) for _ in range(3)]
    try:
        sqlstate, msg = clients.login_error(p)
        assert sqlstate == "53300", (sqlstate, msg)
        assert "no more connections allowed" in msg
    finally:
        for c in held:
            c.close()


def test_query_wait_timeout_fails_a_queued_query(pooler):
    p = pooler({"default_pool_size": 1, "reserve_pool_size": 0, "query_wait_timeout": 1})
    holder = clients.connect(p, autocommit=False)
    holder.execute("SELECT 1")  # opens a transaction: the only server connection is taken
    waiter = clients.connect(p)
    t0 = time.monotonic()
    try:
        with pytest.raises(psycopg.Error) as ei:
            waiter.execute("SELECT 'never runs'")
        elapsed = time.monotonic() - t0
        assert "query_wait_timeout" in str(ei.value)
        assert 0.8 <= elapsed < 10, "query_wait_timeout=1 fired after %.1fs" % elapsed
    finally:
        waiter.close()
        holder.rollback()
        holder.close()
    clients.assert_pooler_serves(p)


@pytest.mark.pgsluice_only
def test_out_of_file_descriptors_pauses_accepting_instead_of_spinning(pooler):
    # With RLIMIT_NOFILE nearly used up, accept() fails with EMFILE while the connection stays in the
    # backlog: the listening socket stays readable. The pooler must pause accepting (one log line per
    # pause), not spin on it, and accept again once descriptors are free.
    if not shutil.which("prlimit"):
        pytest.skip("prlimit (util-linux) is not installed")
    p = pooler({"workers": 1}, start=False)
    inner = p.command
    p.command = lambda: ["prlimit", "--nofile=48:48", "--"] + inner()
    p.start()
    socks = []
    try:
        for _ in range(60):  # more than the pooler can hold
            s = clients.raw_socket(p)
            s.sendall(struct.pack("!II", 8, 80877103))  # SSLRequest: answered 'N', then it waits
            socks.append(s)
        time.sleep(2.5)
        assert p.alive(), p.describe()
        pauses = p.log_text().count("not accepting new connections")
        assert 1 <= pauses <= 5, "expected a few pauses, got %d log lines\n%s" % (pauses, p.describe())
    finally:
        for s in socks:
            s.close()
    clients.assert_pooler_serves(p)


@pytest.mark.pgsluice_only
def test_connections_still_logging_in_count_towards_max_client_conn_and_the_console_stays_reachable(pooler):
    """A flood of connections that never finish logging in is bounded by max_client_conn (PgBouncer
    counts every client), and the console still lets an admin in."""
    p = pooler({"max_client_conn": 5, "client_login_timeout": 60})
    stalled = [clients.raw_socket(p) for _ in range(5)]  # connected, no startup packet
    try:
        def refused():
            try:
                clients.connect(p).close()
                return False
            except psycopg.OperationalError as e:
                return "no more connections allowed (max_client_conn)" in str(e)
        wait_for(refused, timeout=10, what="a login refused while 5 connections are still logging in")
        with psycopg.connect(p.dsn("pgbouncer", "postgres"), autocommit=True) as admin:
            assert admin.execute("SHOW VERSION").fetchone()
    finally:
        for s in stalled:
            s.close()
    wait_for(lambda: _try_connect(p), timeout=10, what="logins accepted once the stalled connections left").close()


@pytest.mark.pgsluice_only  # PgBouncer 1.18 has no query_wait_notify
def test_query_wait_notify_tells_a_waiting_client_why_nothing_happens(pooler):
    p = pooler({"default_pool_size": 1, "query_wait_notify": 1})
    holder = clients.connect(p, autocommit=False)
    holder.execute("SELECT 1")  # the only server, held by an open transaction
    waiter = clients.connect(p)
    notices = []
    waiter.add_notice_handler(lambda d: notices.append(d.message_primary))
    t = threading.Thread(target=lambda: waiter.execute("SELECT 2"))
    t.start()
    try:
        wait_for(lambda: notices, timeout=15, what="a NOTICE to the waiting client")
        assert notices[0] == 'No server connection available in pool "appdb/app", waiting'
    finally:
        holder.rollback()
        t.join(30)
        holder.close()
        waiter.close()
