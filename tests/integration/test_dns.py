"""Server host names: looked up off the worker threads (libuv's thread pool), every address of the
name tried in order (like libpq), the working one reused for dns_max_ttl, and a name that does not
resolve failing only its own pool's clients."""
import subprocess

import psycopg
import pytest

from harness import clients


def test_server_host_given_by_name_works_whichever_address_comes_first(pooler, cluster):
    # "localhost" may resolve to ::1 first while PostgreSQL listens on 127.0.0.1 only: the refused
    # address must be skipped, not reported.
    p = pooler({"pool_mode": "transaction"},
               dbs={"namedb": "host=localhost port=%d dbname=appdb" % cluster.primary_port})
    with clients.connect(p, "namedb") as c:
        assert c.execute("SELECT current_database()").fetchone()[0] == "appdb"
    # a second server connection while the first is busy: made from the remembered address
    with clients.connect(p, "namedb") as busy, clients.connect(p, "namedb") as other:
        busy.execute("BEGIN")
        pid1 = busy.execute("SELECT pg_backend_pid()").fetchone()[0]
        pid2 = other.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert pid1 != pid2
        busy.execute("COMMIT")


@pytest.mark.pgsluice_only
def test_host_name_that_does_not_resolve_fails_its_clients_and_others_are_served(pooler, monkeypatch):
    # keep a resolver that cannot be reached from turning this into a long wait
    monkeypatch.setenv("RES_OPTIONS", "timeout:1 attempts:1")
    p = pooler({"server_login_retry": 1, "query_wait_timeout": 30},
               dbs={"nodns": "host=no-such-host.invalid port=5432 dbname=appdb"})
    with pytest.raises(psycopg.Error) as e:
        with clients.connect(p, "nodns") as c:
            c.execute("SELECT 1")
    assert 'could not translate host name "no-such-host.invalid"' in str(e.value)
    clients.assert_pooler_serves(p)


def _own_hosts_file(p, tmp_path, lines):
    """Start pooler p in its own mount namespace where /etc/hosts says `lines` (needs root)."""
    hosts = tmp_path / "hosts"
    hosts.write_text(lines)
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", "mount --bind %s /etc/hosts" % hosts],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot make a mount namespace here: %s" % probe.stderr.decode(errors="replace").strip())
    inner = p.command

    def command():
        return ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts)] + inner()
    p.command = command
    p.start()


@pytest.mark.pgsluice_only
def test_a_refused_address_of_the_name_is_skipped_for_the_next(pooler, cluster, tmp_path):
    # pgdual resolves to ::1 first (nothing listens there: PostgreSQL is on 127.0.0.1 only), then to
    # 127.0.0.1. The first connect is refused; the pooler must go on to the second address.
    p = pooler({"pool_mode": "transaction"},
               dbs={"dual": "host=pgdual port=%d dbname=appdb" % cluster.primary_port}, start=False)
    _own_hosts_file(p, tmp_path, "::1 pgdual\n127.0.0.1 pgdual\n")
    for _ in range(2):
        with clients.connect(p, "dual") as busy, clients.connect(p, "dual") as other:
            busy.execute("BEGIN")
            assert busy.execute("SELECT 1").fetchone()[0] == 1
            assert other.execute("SELECT current_database()").fetchone()[0] == "appdb"
            busy.execute("COMMIT")
