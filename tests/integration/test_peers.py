"""[peers] and peer_id: several pgsluice processes share a port (so_reuseport); a cancel request that
reaches the wrong one is forwarded to the process whose client it names (PgBouncer 1.19's scheme),
and SHOW PEERS lists them."""
import os
import socket
import struct

import pytest

from admin_helpers import console
from harness import clients
from harness.util import wait_for

pytestmark = pytest.mark.pgsluice_only  # the comparison PgBouncer 1.18 predates [peers]


def show(p, what):
    """SHOW on that very process: over its own Unix socket (the TCP port is shared)."""
    with console(p, host=p.unix_socket_dir) as c:
        return c.execute("SHOW " + what).fetchall()


def unix_sock(p):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(os.path.join(p.unix_socket_dir, ".s.PGSQL.%d" % p.port))
    return s


@pytest.fixture
def two_peers(pooler, session_dir):
    """Two pgsluice processes on one TCP port (so_reuseport), peer 1 and peer 2, each knowing the
    other by its Unix socket directory; trust logins so a raw client can log in."""
    settings = {"so_reuseport": 1, "auth_type": "trust"}
    a = pooler(settings, start=False)
    b = pooler(settings, start=False)
    b.port = a.port
    peers = "[peers]\n1 = host=%s port=%d\n2 = host=%s port=%d\n" % (a.unix_socket_dir, a.port,
                                                                    b.unix_socket_dir, b.port)
    for p, pid in ((a, 1), (b, 2)):
        p.settings = dict(p.settings, peer_id=pid)
        p.verbatim = peers
        p.start()
        # the shared TCP port answers as soon as the first one listens: wait for this one's own socket
        wait_for(lambda: os.path.exists(os.path.join(p.unix_socket_dir, ".s.PGSQL.%d" % p.port)), timeout=15,
                 what="the Unix socket of peer %d" % pid)
    return a, b


def test_a_cancel_sent_to_the_other_process_is_forwarded_to_the_right_one(two_peers):
    a, b = two_peers
    client = unix_sock(a)  # a client of process 1
    try:
        run_and_cancel(a, b, client)
    finally:
        client.close()  # a query left running would hold the poolers' graceful stop
    rows = show(b, "PEERS")
    assert [(r["peer_id"], r["host"]) for r in rows] == [(1, a.unix_socket_dir), (2, b.unix_socket_dir)]
    assert [r["peer_id"] for r in show(b, "PEER_POOLS")] == [1, 2]


def run_and_cancel(a, b, client):
    client.sendall(clients.startup_packet(user="plainuser"))  # its password is known in clear: servers log in
    key = None
    while True:
        kind, body = clients.read_message(client)
        if kind == b"K":
            key = struct.unpack("!II", body)
        if kind == b"Z":
            break
    assert key is not None
    assert (key[1] >> 16) & 0x3fff == 1  # the cancel key names peer 1
    q = b"SELECT pg_sleep(30)\0"
    client.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)
    wait_for(lambda: any(r["state"] == "active" for r in show(a, "SERVERS")), timeout=10, what="the query running")
    # the cancel goes to process 2, which does not know this client
    with unix_sock(b) as c:
        c.sendall(struct.pack("!IIII", 16, 80877102, key[0], key[1]))
    while True:
        kind, body = clients.read_message(client)
        if kind == b"E":
            assert b"57014" in body, body  # query_canceled
            break
