"""Bad input from clients: each case must end that client cleanly and leave the pooler serving."""
import struct

import psycopg
import pytest

from harness import clients


def _assert_refused(data, closed):
    assert closed, "the pooler kept the connection open (received %r)" % data[:200]
    assert data == b"" or data[:1] == b"E", "expected nothing or an ErrorResponse, got %r" % data[:200]


@pytest.mark.core
def test_garbage_bytes_are_refused_and_pooler_keeps_serving(pooler):
    p = pooler()
    with clients.raw_socket(p) as s:
        s.sendall(b"\xde\xad\xbe\xef" * 16)
        _assert_refused(*clients.read_until_close(s))
    clients.assert_pooler_serves(p)


def test_http_request_on_the_pooler_port_is_refused(pooler):
    p = pooler()
    with clients.raw_socket(p) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        _assert_refused(*clients.read_until_close(s))
    clients.assert_pooler_serves(p)


def test_truncated_startup_packet_then_close_leaves_pooler_serving(pooler):
    p = pooler()
    pkt = clients.startup_packet()
    for cut in (1, 3, 6, len(pkt) - 1):
        with clients.raw_socket(p) as s:
            s.sendall(pkt[:cut])
    clients.assert_pooler_serves(p)


@pytest.mark.core
def test_startup_packet_with_2gb_length_is_refused_promptly(pooler):
    p = pooler()
    with clients.raw_socket(p) as s:
        s.sendall(struct.pack("!II", 0x7FFFFFFF, 196608))
        data, closed = clients.read_until_close(s, timeout=5)
        _assert_refused(data, closed)
        if data:
            assert clients.error_fields(data).get("S") in ("FATAL", "ERROR"), data
    clients.assert_pooler_serves(p)


def test_unknown_database_is_refused(pooler):
    p = pooler()
    with pytest.raises(psycopg.OperationalError) as ei:
        clients.connect(p, "sl_no_such_db")
    assert "sl_no_such_db" in str(ei.value)
    clients.assert_pooler_serves(p)


@pytest.mark.pgsluice_only  # PgBouncer 1.18 answers 08P01 "no such database"
def test_unknown_database_sqlstate_is_3D000(pooler):
    p = pooler()
    sqlstate, msg = clients.login_error(p, "sl_no_such_db")
    assert sqlstate == "3D000", (sqlstate, msg)
    clients.assert_pooler_serves(p)
