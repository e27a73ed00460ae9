"""A client closed with a FATAL error while it has sent bytes pgsluice has not read (issue 14): the
client still gets the error text, not "connection reset". pgsluice writes the error, half-closes
and drains the client's input for a bounded time before it closes (net/stream_linger.c); closing a
socket with unread input would make the kernel reset the connection. The client here is libpq in
pipeline mode, waiting for a server (pool of 1, held by another client): its first batch is read,
the next one stays on the socket; then query_wait_timeout or an admin KILL closes it. 20 rounds
each, over plain TCP and over TLS. Over plain TCP the client then checks the lingering itself: it can
still send (pgsluice reads and drops it) and, once it ends its side, sees an orderly end of file, not
a reset; and a client that keeps sending is closed within the bounded time."""
import os
import socket
import subprocess
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


HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_CERTS = os.path.join(HERE, "..", "unit", "tls", "make-certs.sh")


@pytest.fixture(scope="module")
def certs(session_dir):
    d = os.path.join(session_dir, "linger-certs")
    os.makedirs(d, exist_ok=True)
    subprocess.run(["sh", MAKE_CERTS, d], check=True, capture_output=True)
    return d


def _pipeline_client(p, **dsn):
    pg = pq.PGconn.connect(p.dsn(**dsn).encode())
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


def _one_round(p, close_it, after=None, **dsn):
    holder = clients.connect(p, autocommit=False)
    holder.execute("SELECT 1")  # holds the pool's one server in a transaction
    pg = _pipeline_client(p, **dsn)
    raw = socket.socket(fileno=os.dup(pg.socket))  # the same connection, to look at it after libpq
    try:
        _send(pg, b"SELECT 1")
        wait_for(lambda: (pool_row(p, "appdb") or {}).get("cl_waiting", 0) >= 1, timeout=15,
                 what="the client to wait for a server")
        _send(pg, PADDING)
        close_it()
        heard = _what_the_client_hears(pg)
        if after:
            after(raw)
        return heard
    finally:
        raw.close()
        pg.finish()
        holder.close()


def _ends_in_order(raw):
    """pgsluice still reads what the client sends after the error, and ends with a FIN, no reset."""
    raw.settimeout(15)
    raw.sendall(b"Q" + b"\0\0\0\x0cSELECT 3\0" * 4096)  # dropped by pgsluice
    raw.shutdown(socket.SHUT_WR)
    rest = raw.recv(65536)  # ConnectionResetError here: closed with unread input
    while rest:
        rest = raw.recv(65536)


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
@pytest.mark.parametrize("transport", ["plain", "tls"])
def test_client_killed_by_the_admin_with_unread_input_gets_the_error(pooler, certs, transport):
    settings = {"pool_mode": "transaction", "default_pool_size": 1, "stats_users": "plainuser"}
    dsn = {}
    if transport == "tls":
        settings.update(client_tls_sslmode="require", client_tls_key_file=os.path.join(certs, "server.key"),
                        client_tls_cert_file=os.path.join(certs, "server.crt"))
        dsn = {"sslmode": "require"}
    p = pooler(settings)
    bad = []
    for i in range(ROUNDS):
        # KILL also pauses the database (as PgBouncer's): RESUME for the next round
        heard = _one_round(p, lambda: admin_psql(p, "KILL appdb; RESUME appdb"),
                           after=_ends_in_order if transport == "plain" else None, **dsn)
        if "closed by the admin console (KILL)" not in heard:
            bad.append("round %d: %s" % (i, heard))
    assert bad == [], "\n".join(bad)
    clients.assert_pooler_serves(p)


@pytest.mark.pgsluice_only
def test_lingering_is_bounded_for_a_client_that_keeps_sending(pooler):
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1, "stats_users": "plainuser"})
    state = {}

    def keeps_sending(raw):
        raw.settimeout(15)
        start = time.monotonic()
        chunk = b"Q" + b"\0\0\0\x0cSELECT 3\0" * 100

        def reset():  # pgsluice gave up on it: its end of the connection is gone
            try:
                raw.sendall(chunk)
                return False
            except OSError:
                return True
        wait_for(reset, timeout=20, interval=0.02, what="pgsluice to stop lingering")
        state["lingered"] = time.monotonic() - start
    heard = _one_round(p, lambda: admin_psql(p, "KILL appdb; RESUME appdb"), after=keeps_sending)
    assert "closed by the admin console (KILL)" in heard
    # SL_STREAM_LINGER_MS is 2 s, counted from the KILL (a little before this client's clock starts):
    # it lingered (a plain close resets at once), and not for long
    assert 0.5 < state["lingered"] < 10, state
    clients.assert_pooler_serves(p)
