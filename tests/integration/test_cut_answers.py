"""An error pgsluice sends while a server's answer is on its way to the client (issue 14): the
client's stream of messages stays whole. When query_timeout closes a client that is not reading a
large result, the rows already marked for it go first and the FATAL follows at a message boundary;
before, the FATAL was written into the middle of a DataRow (the rest of the row, still in
pgsluice's buffer, was dropped), which a driver reads as garbage. When the server dies after
sending part of a message that already reached the client, no error can follow it: the client is
closed without one (before, the 08006 FATAL went into the middle of that message)."""
import socket
import struct
import threading

import pytest

from admin_helpers import admin_pooler, show
from harness import clients
from harness.util import HOST, wait_for


def _login_trust(p):
    sock = clients.raw_socket(p, timeout=30)
    sock.sendall(clients.startup_packet())
    _read_messages_until(sock, b"Z")
    return sock


def _read_messages_until(sock, last):
    while True:
        t = clients.recv_exact(sock, 1)
        (n,) = struct.unpack("!I", clients.recv_exact(sock, 4))
        clients.recv_exact(sock, n - 4)
        if t == last:
            return


def _read_to_end(sock):
    data = b""
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return data
        data += chunk


def _walk(data):
    """The whole messages in data, then the cut one's bytes (b"" when the stream ends whole)."""
    msgs, i = [], 0
    while len(data) - i >= 5:
        (n,) = struct.unpack("!I", data[i + 1:i + 5])
        if len(data) - i < n + 1:
            break
        msgs.append((data[i:i + 1], data[i + 5:i + 1 + n]))
        i += n + 1
    return msgs, data[i:]


def _error_fields(body):
    return dict((f[:1], f[1:].decode()) for f in body.split(b"\0") if f)


def test_query_timeout_while_the_client_does_not_read_ends_with_the_error_at_a_message_boundary(pooler, cluster):
    db = "host=127.0.0.1 port=%d dbname=appdb password=%s" % (cluster.primary_port, cluster.passwords["app"])
    p = admin_pooler(pooler, {"pool_mode": "transaction", "auth_type": "trust", "query_timeout": 1},
                     dbs={"appdb": db})
    sock = _login_trust(p)
    try:
        # rows of 1,011 bytes on the wire: the socket buffers fill at some byte inside a row
        sock.sendall(clients.msg(b"Q", b"SELECT repeat('x', 1000) FROM generate_series(1, 200000)\0"))
        wait_for(lambda: not any(r["state"] == "active" and r["database"] == "appdb" for r in show(p, "CLIENTS")),
                 timeout=30, what="query_timeout to close the client")
        msgs, cut = _walk(_read_to_end(sock))
    finally:
        sock.close()
    types = b"".join(t for t, _ in msgs)
    assert types[:2] == b"TD", types[:20]
    rows = types[1:].rstrip(b"E")
    assert rows == b"D" * len(rows), "a message other than DataRow among the rows"
    for _, body in msgs[1:1 + len(rows)]:
        assert body == struct.pack("!hI", 1, 1000) + b"x" * 1000, "a row was corrupted"
    # pgsluice holds the rest of the result when the timeout fires: the error comes at a boundary
    assert cut == b"", "the stream ends inside a message: %r" % cut[:80]
    assert types.endswith(b"E"), types[-5:]
    err = _error_fields(msgs[-1][1])
    assert err[b"V"] == "FATAL" and err[b"C"] == "08P01" and err[b"M"] == "query timeout", err
    clients.assert_pooler_serves(p)


class HalfRowServer(clients.StandInServer):
    """Answers a query with a RowDescription, one whole DataRow and the first half of a second one,
    then closes: the second row reaches the client in part."""

    ROW = struct.pack("!hI", 1, 200) + b"y" * 200

    def __init__(self):
        super().__init__(nodelay=True)
        self.sent_half = threading.Event()
        self.half_sent_on = None

    def die(self):
        self.half_sent_on.shutdown(socket.SHUT_RDWR)  # wakes the recv; the connection ends with a FIN

    def _serve(self, conn, n):
        try:
            self.trust_login(conn)
            _read_messages_until(conn, b"Q")
            desc = struct.pack("!h", 1) + b"v\0" + struct.pack("!IhIhih", 0, 0, 25, -1, -1, 0)
            row = clients.msg(b"D", self.ROW)
            conn.sendall(clients.msg(b"T", desc) + row + row[:100])
            self.half_sent_on = conn
            self.sent_half.set()
            conn.recv(1)  # until the test ends the connection (die)
        except OSError:
            pass
        finally:
            conn.close()


@pytest.mark.pgsluice_only
def test_server_gone_after_part_of_a_message_reached_the_client_closes_it_without_an_error(pooler):
    server = HalfRowServer()
    try:
        p = pooler({"auth_type": "trust"}, dbs={"fakedb": "host=%s port=%d dbname=fakedb" % (HOST, server.port)})
        sock = clients.raw_socket(p, timeout=30)
        sock.sendall(clients.startup_packet(database="fakedb"))
        _read_messages_until(sock, b"Z")
        sock.sendall(clients.msg(b"Q", b"SELECT v FROM t\0"))
        assert server.sent_half.wait(30)
        # the half row reaches the client before the server goes
        got = b""
        want = 1 + 4 + 16 + 1 + 4 + len(HalfRowServer.ROW) + 100
        while len(got) < want:
            chunk = sock.recv(65536)
            assert chunk, "closed early: %r" % got
            got += chunk
        server.die()
        got += _read_to_end(sock)
        sock.close()
        msgs, cut = _walk(got)
        assert b"".join(t for t, _ in msgs) == b"TD", msgs
        assert cut == clients.msg(b"D", HalfRowServer.ROW)[:100], "something followed the cut message: %r" % cut
        wait_for(lambda: "in the middle of a message to the client" in open(p.log_path).read(), timeout=10,
                 what="the log to say why the client was closed")
        again = clients.raw_socket(p, timeout=30)  # the pooler serves on
        again.sendall(clients.startup_packet(database="fakedb"))
        _read_messages_until(again, b"Z")
        again.close()
    finally:
        server.close()
