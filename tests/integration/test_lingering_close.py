"""A client closed with a FATAL error while it has sent bytes pgsluice has not read (issue 14): the
client still gets the error text, not "connection reset". pgsluice writes the error, half-closes
and drains the client's input for a bounded time before it closes (net/stream_linger.c); closing a
socket with unread input would make the kernel reset the connection. The client here is libpq in
pipeline mode, waiting for a server (pool of 1, held by another client): its first batch is read,
the next one stays on the socket; then query_wait_timeout or an admin KILL closes it. 20 rounds
each."""
import time

import psycopg
import pytest
from psycopg import pq

from admin_helpers import admin_psql, pool_row
from harness import clients
from harness.util import wait_for

ROUNDS = 20
# a second batch of about 200 kB: more than a socket takes at once, most of it stays unread
PADDING = b"SELECT 2 /*" + b"x" * 200_000 + b"*/"


def _pipeline_client(p):
    pg = pq.PGconn.connect(p.dsn().encode())
    assert pg.status == pq.ConnStatus.OK, pg.error_message
    pg.nonblocking = 1
    pg.enter_pipeline_mode()
    return pg


def _send(pg, sql):
    """Queue a batch; what the socket does not take now stays in libpq's buffer (non-blocking mode),
    to go out while libpq waits for the answer."""
    pg.send_query_params(sql, None)
    pg.pipeline_sync()
    pg.flush()


def _what_the_client_hears(pg):
    """What libpq reports once the connection ends: the first error text (a FATAL from pgsluice, or
    libpq's own "server closed the connection unexpectedly" / "connection reset")."""
    nothing = 0
    while nothing < 3:  # three empty answers in a row: nothing more comes
        try:
            r = pg.get_result()
        except psycopg.OperationalError as e:  # libpq's report of the connection's end
            return str(e)
        if r is None:
            if pg.status == pq.ConnStatus.BAD:
                break
            nothing += 1
            continue
        nothing = 0
        msg = r.error_message.decode(errors="replace").strip()
        if msg:
            return msg
    return pg.error_message.decode(errors="replace").strip() or "(nothing)"


def _one_round(p, close_it):
    holder = clients.connect(p, autocommit=False)
    holder.execute("SELECT 1")  # holds the pool's one server in a transaction
    pg = _pipeline_client(p)
    try:
        _send(pg, b"SELECT 1")
        wait_for(lambda: (pool_row(p, "appdb") or {}).get("cl_waiting", 0) >= 1, timeout=15,
                 what="the client to wait for a server")
        _send(pg, PADDING)
        close_it()
        return _what_the_client_hears(pg)
    finally:
        pg.finish()
        holder.close()


@pytest.mark.pgsluice_only
def test_client_closed_by_query_wait_timeout_with_unread_input_gets_the_error(pooler):
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1, "query_wait_timeout": 1,
                "stats_users": "plainuser"})
    bad = []
    for i in range(ROUNDS):
        heard = _one_round(p, lambda: None)
        if "query_wait_timeout" not in heard:
            bad.append("round %d: %s" % (i, heard))
    assert bad == [], "\n".join(bad)
    clients.assert_pooler_serves(p)


@pytest.mark.pgsluice_only
def test_client_killed_by_the_admin_with_unread_input_gets_the_error(pooler):
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1, "stats_users": "plainuser"})
    bad = []
    for i in range(ROUNDS):
        # KILL also pauses the database (as PgBouncer's): RESUME for the next round
        heard = _one_round(p, lambda: admin_psql(p, "KILL appdb; RESUME appdb"))
        if "closed by the admin console (KILL)" not in heard:
            bad.append("round %d: %s" % (i, heard))
    assert bad == [], "\n".join(bad)
    clients.assert_pooler_serves(p)

