"""Logins one after another (a connection per transaction), ending in every way a client can end;
each login must start from a clean slate whatever the previous connection (often given the same
descriptor number by the kernel) did."""
import socket
import struct

import psycopg
import pytest

from harness import clients
from admin_helpers import admin_pooler, show


def _raw_until_auth_request(p):
    s = clients.raw_socket(p)
    s.sendall(clients.startup_packet())
    data = s.recv(64)
    assert data[:1] == b"R", data
    return s


def _end_normally(p, i):
    with clients.connect(p, user="app_md5", application_name="churn%d" % i) as c:
        assert c.execute("SELECT %s::int + 1", (i,)).fetchone()[0] == i + 1
        assert c.execute("SHOW application_name").fetchone()[0] == "churn%d" % i


def _hang_up_during_auth(p, i):
    _raw_until_auth_request(p).close()


def _terminate_during_auth(p, i):
    s = _raw_until_auth_request(p)
    s.sendall(b"X" + struct.pack("!I", 4))
    assert clients.read_until_close(s)[1]
    s.close()


def _wrong_password(p, i):
    with pytest.raises(psycopg.OperationalError):
        clients.connect(p, user="app_md5", password="not-the-password")


def _cancel_request(p, i):
    s = clients.raw_socket(p)
    s.sendall(struct.pack("!IIII", 16, 80877102, i, 12345))
    assert clients.read_until_close(s)[1]
    s.close()


def _ssl_refused_then_hang_up(p, i):
    s = clients.raw_socket(p)
    s.sendall(struct.pack("!II", 8, 80877103))
    assert s.recv(1) == b"N"
    s.shutdown(socket.SHUT_WR)
    assert clients.read_until_close(s)[1]
    s.close()


ENDINGS = [_end_normally, _hang_up_during_auth, _end_normally, _terminate_during_auth, _wrong_password,
           _end_normally, _cancel_request, _ssl_refused_then_hang_up]


@pytest.mark.core
def test_connection_per_transaction_with_every_kind_of_ending(pooler):
    p = admin_pooler(pooler, {"auth_type": "md5"})
    for i in range(120):
        ENDINGS[i % len(ENDINGS)](p, i)
    clients.assert_pooler_serves(p)
    with clients.connect(p, user="app_md5", application_name="last") as c:
        assert c.execute("SHOW application_name").fetchone()[0] == "last"
        held = [r for r in show(p, "CLIENTS") if r["database"] == "appdb"]  # none of the 120 left over
        assert len(held) == 1, held
