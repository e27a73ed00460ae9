"""auth_type hba (pg_hba.conf rules in auth_hba_file, user maps in auth_ident_file), pam and ldap,
through real clients: the first matching line decides the method, refusals carry PostgreSQL's words
and SQLSTATE 28000, peer logs in the OS user at the other end of the Unix socket, PAM checks a real
OS account on the thread pool, and a rules file that cannot be honoured refuses to load."""
import os
import pwd
import shutil
import subprocess
import threading

import psycopg
import pytest

from admin_helpers import console
from harness import clients
from harness.util import free_port, wait_for

pytestmark = pytest.mark.pgsluice_only  # PgBouncer 1.18 (the comparison build) has no peer/map/ldap


def hba_pooler(pooler, session_dir, rules, ident=None, settings=None, **kw):
    d = os.path.join(session_dir, "hba-%d" % os.getpid())
    os.makedirs(d, exist_ok=True)
    hba = os.path.join(d, "hba-%d.conf" % len(os.listdir(d)))
    with open(hba, "w") as f:
        f.write(rules)
    s = {"auth_type": "hba", "auth_hba_file": hba}
    if ident is not None:
        path = hba + ".ident"
        with open(path, "w") as f:
            f.write(ident)
        s["auth_ident_file"] = path
    s.update(settings or {})
    p = pooler(s, **kw)
    p.hba_path = hba
    return p


RULES = """
# the console and the scram user: scram; plainuser: cleartext; everyone else on TCP: rejected
host  all       postgres   127.0.0.1/32  scram-sha-256
host  appdb     app        127.0.0.1/32  scram-sha-256
host  appdb     plainuser  127.0.0.1/32  password
host  all       app_md5    127.0.0.1/32  reject
"""


def test_the_first_matching_rule_decides_the_method(pooler, session_dir):
    p = hba_pooler(pooler, session_dir, RULES)
    with clients.connect(p, user="app") as c:
        assert c.execute("SELECT current_user").fetchone() == ("app",)
    with clients.connect(p, user="plainuser") as c:
        assert c.execute("SELECT current_user").fetchone() == ("plainuser",)
    sqlstate, msg = clients.login_error(p, user="app", password="wrong")
    assert sqlstate == "28P01", (sqlstate, msg)


def test_a_reject_line_and_a_missing_line_are_refused_with_postgresqls_words(pooler, session_dir):
    p = hba_pooler(pooler, session_dir, RULES)
    sqlstate, msg = clients.login_error(p, user="app_md5")
    assert sqlstate == "28000"
    assert 'pg_hba.conf rejects connection for host "127.0.0.1", user "app_md5", database "appdb"' in msg, msg
    sqlstate, msg = clients.login_error(p, db="sav3", user="plainuser")
    assert sqlstate == "28000"
    assert 'no pg_hba.conf entry for host "127.0.0.1", user "plainuser", database "sav3"' in msg, msg
    clients.assert_pooler_serves(p)


def test_peer_logs_in_the_os_user_of_the_unix_socket_through_a_map(pooler, session_dir):
    me = pwd.getpwuid(os.getuid()).pw_name
    # plainuser: auth_file has its password in clear, so pgsluice can log its servers in
    rules = "local all plainuser peer map=apps\nlocal all app peer\n" + RULES
    p = hba_pooler(pooler, session_dir, rules, ident="apps  %s  plainuser\n" % me)
    # no password: the kernel says who is at the other end
    with psycopg.connect(p.dsn(user="plainuser", password="", host=p.unix_socket_dir), autocommit=True) as c:
        assert c.execute("SELECT current_user").fetchone() == ("plainuser",)
    if me != "app":
        with pytest.raises(psycopg.OperationalError, match='Peer authentication failed for user "app"'):
            psycopg.connect(p.dsn(user="app", password="", host=p.unix_socket_dir))


def test_a_reload_with_a_broken_rules_file_keeps_the_running_rules(pooler, session_dir):
    p = hba_pooler(pooler, session_dir, RULES)
    with open(p.hba_path, "a") as f:
        f.write("host all all 127.0.0.1/32 gss\n")
    with console(p) as a:
        with pytest.raises(psycopg.Error, match="gss"):
            a.execute("RELOAD")
    with clients.connect(p, user="app") as c:  # the old rules still decide
        assert c.execute("SELECT 1").fetchone() == (1,)
    sqlstate, _ = clients.login_error(p, user="app_md5")
    assert sqlstate == "28000"


def test_a_map_that_no_ident_line_defines_refuses_to_start(pooler, session_dir):
    p = hba_pooler(pooler, session_dir, "local all all peer map=nosuch\n", ident="other a b\n", start=False)
    with pytest.raises(Exception):
        p.start(attempts=1)
    assert 'map "nosuch" is not defined in auth_ident_file' in p.log_text()


def test_auth_type_hba_without_a_file_refuses_to_start(pooler):
    p = pooler({"auth_type": "hba"}, start=False)
    with pytest.raises(Exception):
        p.start(attempts=1)
    assert "auth_type hba needs auth_hba_file" in p.log_text()


def test_ldap_that_cannot_be_reached_refuses_the_login_and_the_pooler_goes_on(pooler):
    # a port nothing listens on: the check fails on the thread pool, the worker never waits for it
    p = pooler({"auth_type": "ldap",
                "auth_ldap_options": "ldapserver=127.0.0.1 ldapport=%d ldapprefix=uid= ldapsuffix=\",dc=example\""
                                     % free_port()})
    sqlstate, msg = clients.login_error(p, user="app")
    assert sqlstate == "28000" and 'LDAP authentication failed for user "app"' in msg, (sqlstate, msg)
    sqlstate, msg = clients.login_error(p, user="app", password="")
    assert sqlstate == "28000"
    assert "LDAP authentication failed" in p.log_text()


PAM_USER = "slpam%d" % (os.getpid() % 1000000)  # own to this run: another run on the machine may test at once
PAM_PW = "pam-Secret-42"


@pytest.fixture(scope="module")
def pam_account(cluster):
    """A throwaway OS account with a password and a PAM service for it (pam_unix), and the same role
    in PostgreSQL (pgsluice logs its servers in with the password PAM accepted)."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root and useradd to make a throwaway OS account")
    service = "pgsluice-it-%d" % os.getpid()
    path = "/etc/pam.d/" + service
    subprocess.run(["userdel", PAM_USER], capture_output=True)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", PAM_USER], check=True)
    subprocess.run(["chpasswd"], input="%s:%s\n" % (PAM_USER, PAM_PW), text=True, check=True)
    with open(path, "w") as f:
        f.write("auth required pam_unix.so\naccount required pam_unix.so\n")
    cluster.psql("DROP ROLE IF EXISTS %s; CREATE ROLE %s LOGIN PASSWORD '%s'"
                 % (PAM_USER, PAM_USER, PAM_PW))
    yield service
    os.unlink(path)
    subprocess.run(["userdel", PAM_USER], capture_output=True)
    cluster.psql("DROP ROLE IF EXISTS %s" % PAM_USER)


def test_pam_checks_the_os_account_and_logs_servers_in_with_that_password(pooler, session_dir, pam_account):
    rules = "host appdb %s 127.0.0.1/32 pam pamservice=%s\n" % (PAM_USER, pam_account) + RULES
    p = hba_pooler(pooler, session_dir, rules)
    with clients.connect(p, user=PAM_USER, password=PAM_PW) as c:
        assert c.execute("SELECT current_user").fetchone() == (PAM_USER,)
    sqlstate, msg = clients.login_error(p, user=PAM_USER, password="wrong")
    assert sqlstate == "28000" and 'PAM authentication failed for user "%s"' % PAM_USER in msg, (sqlstate, msg)
    with clients.connect(p, user="app") as c:  # other lines still apply
        assert c.execute("SELECT 1").fetchone() == (1,)


class SilentLdap(clients.StandInServer):
    """An LDAP server that accepts connections and never answers: each check waits for its timeout."""

    def _serve(self, conn, n):
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass


def test_logins_waiting_on_a_silent_ldap_server_do_not_hold_up_host_name_lookups(pooler, session_dir, cluster):
    """libuv's thread pool runs PAM/LDAP checks, host name lookups and SCRAM key derivations for
    every worker. Twenty logins waiting on an LDAP server that never answers (each check waits for
    its 10-second timeout) must not stop a client of a database given by host name from getting a
    server: at most half of the pool's 16 threads run checks, the other logins wait their turn.
    Before, with libuv's default of 4 threads, and then with 16 and no limit, the lookup waited for
    the checks to time out."""
    ldap = SilentLdap()
    try:
        rules = ('host all ldapuser 127.0.0.1/32 ldap ldapserver=127.0.0.1 ldapport=%d ldapprefix="uid=" '
                 'ldapsuffix=",dc=example"\nhost all app 127.0.0.1/32 scram-sha-256\n' % ldap.port)
        p = hba_pooler(pooler, session_dir, rules,
                       dbs={"bynamedb": "host=localhost port=%d dbname=appdb" % cluster.primary_port})
        results = []
        # the last ones wait for two rounds of eight 10-second checks first
        waiting = [threading.Thread(target=lambda: results.append(clients.login_error(p, user="ldapuser",
                                                                                      password="pw", timeout=120)))
                   for _ in range(20)]
        for t in waiting:
            t.start()
        wait_for(lambda: ldap.nconns >= 8, timeout=30, what="eight LDAP checks waiting")
        with clients.connect(p, db="bynamedb", user="app") as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
        done_before = len(results)
        for t in waiting:
            t.join(120)
        assert done_before == 0, "the lookup waited for %d LDAP checks to time out" % done_before
        assert len(results) == 20 and all(r[0] == "28000" for r in results), results
        assert ldap.nconns == 20  # every check ran, in turn
    finally:
        ldap.close()
