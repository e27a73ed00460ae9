"""The console's own login rule (PgBouncer's): the user "pgbouncer", over the Unix socket, from a process
of the OS user pgsluice runs as, is an admin without a password and whatever auth_type says; from
TCP, or under another name, the usual rules apply."""
import psycopg
import pytest

from harness import clients

pytestmark = pytest.mark.pgsluice_only  # the comparison PgBouncer runs as the postgres OS user, not as the test


def test_pgbouncer_over_the_unix_socket_from_our_own_os_user_is_an_admin(pooler):
    p = pooler({"auth_type": "scram-sha-256"})  # pgsluice runs as the test's OS user
    with psycopg.connect(p.dsn(db="pgbouncer", user="pgbouncer", password="", host=p.unix_socket_dir),
                         autocommit=True) as c:
        assert c.execute("SHOW VERSION").fetchone()
        c.execute("RELOAD")  # an admin command
    # psql as operators type it: psql -h /run/pgsluice -U pgbouncer pgbouncer
    out = clients.psql(p, "-h", p.unix_socket_dir, "-c", "SHOW VERSION", db="pgbouncer", user="pgbouncer", password="")
    assert out.stdout.strip()


def test_pgbouncer_over_tcp_needs_a_password_like_anyone(pooler):
    p = pooler({"auth_type": "scram-sha-256"})
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(p.dsn(db="pgbouncer", user="pgbouncer", password="x"))
