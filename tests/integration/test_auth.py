"""Authentication: SCRAM secrets, plain-text and md5 auth_file entries, wrong passwords."""
import psycopg
import pytest

from harness import clients


@pytest.mark.core
def test_scram_secret_in_auth_file_passes_through_to_the_server(pooler):
    # The auth_file holds app's SCRAM secret from pg_authid, not its password: the pooler must log
    # in to PostgreSQL with the keys the client proved during its own SCRAM exchange.
    p = pooler({"auth_type": "scram-sha-256"})
    with clients.connect(p) as c:
        assert c.execute("SELECT current_user, pg_is_in_recovery()").fetchone() == ("app", False)


def test_plain_text_auth_file_password_logs_in_with_scram(pooler):
    p = pooler({"auth_type": "scram-sha-256"})
    with clients.connect(p, user="plainuser") as c:
        assert c.execute("SELECT current_user").fetchone() == ("plainuser",)


def test_md5_auth_file_entry_logs_in_with_auth_type_md5(pooler):
    p = pooler({"auth_type": "md5"})
    with clients.connect(p, user="app_md5") as c:
        assert c.execute("SELECT current_user").fetchone() == ("app_md5",)
    with clients.connect(p, user="app") as c:  # md5 mode still does SCRAM for SCRAM secrets
        assert c.execute("SELECT current_user").fetchone() == ("app",)


@pytest.mark.core
def test_wrong_password_is_refused(pooler):
    p = pooler()
    with pytest.raises(psycopg.OperationalError) as ei:
        clients.connect(p, password="not-the-password")
    assert "authentication failed" in str(ei.value)
    clients.assert_pooler_serves(p)


def test_user_missing_from_auth_file_is_refused(pooler):
    p = pooler(users={"plainuser": None})
    with pytest.raises(psycopg.OperationalError):
        clients.connect(p, user="plainuser")
    clients.assert_pooler_serves(p)


@pytest.mark.pgsluice_only  # PgBouncer 1.18 answers 08P01 "SASL authentication failed"
def test_wrong_password_sqlstate_is_28P01(pooler):
    p = pooler()
    sqlstate, msg = clients.login_error(p, password="not-the-password")
    assert sqlstate == "28P01", (sqlstate, msg)
    clients.assert_pooler_serves(p)


@pytest.mark.pgsluice_only  # auth_failure_delay is pgsluice's
def test_auth_failure_delay_holds_back_a_refusal_and_logs_the_address(pooler):
    import time
    p = pooler({"auth_failure_delay": 1})
    t = time.monotonic()
    sqlstate, msg = clients.login_error(p, password="not-the-password")
    assert sqlstate == "28P01" and time.monotonic() - t >= 0.9, (sqlstate, msg)
    assert 'login failed: password authentication failed for user "app"' in p.log_text()
    assert "@127.0.0.1:" in p.log_text()
    clients.assert_pooler_serves(p)  # a right password is not slowed, other clients are served meanwhile


@pytest.mark.pgsluice_only
def test_a_password_of_60000_bytes_is_checked_not_refused_as_too_long(pooler):
    p = pooler({"auth_type": "plain"})
    sqlstate, msg = clients.login_error(p, user="plainuser", password="x" * 60000)
    assert sqlstate == "28P01", (sqlstate, msg)


@pytest.mark.pgsluice_only  # PgBouncer 1.18 has no scram_iterations
def test_scram_iterations_sets_the_secret_derived_from_a_plain_password(pooler):
    import struct
    p = pooler({"auth_type": "scram-sha-256", "scram_iterations": 10000})
    with clients.raw_socket(p) as s:
        s.sendall(clients.startup_packet(user="plainuser"))
        kind, body = clients.read_message(s)
        assert kind == b"R" and struct.unpack("!I", body[:4])[0] == 10  # AuthenticationSASL
        first = b"n,,n=,r=abcdefghijklmnopqrstuvwx"
        msg = b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first
        s.sendall(b"p" + struct.pack("!I", len(msg) + 4) + msg)
        kind, body = clients.read_message(s)
        assert kind == b"R" and struct.unpack("!I", body[:4])[0] == 11  # AuthenticationSASLContinue
        assert b",i=10000" in body[4:], body
    with clients.connect(p, user="plainuser") as c:  # and the exchange completes with it
        assert c.execute("SELECT 1").fetchone() == (1,)
