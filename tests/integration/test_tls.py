"""TLS both ways, against a PostgreSQL 15 with ssl=on and certificates from a throwaway CA
(tests/unit/tls/make-certs.sh): applications -> pgsluice (client_tls_*: SSLRequest, PostgreSQL 17's
direct TLS, client certificates, auth_type cert) and pgsluice -> PostgreSQL (server_tls_*: prefer
by default, require, verify-ca, verify-full, allow), SHOW CLIENTS/SERVERS' tls column, and a TLS
configuration that cannot be honoured refusing to start or reload (fail closed)."""
import hashlib
import os
import shutil
import socket
import ssl
import struct
import subprocess

import psycopg
import pytest

from admin_helpers import console
from harness import clients
from harness.cluster import Cluster
from harness.pooler import PoolerError
from harness.util import chown_to_postgres, wait_for

pytestmark = pytest.mark.pgsluice_only  # direct TLS, SHOW's tls column, refusal texts

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_CERTS = os.path.join(HERE, "..", "unit", "tls", "make-certs.sh")
ALICE_PW = "alicepw"


@pytest.fixture(scope="module")
def certs(session_dir):
    d = os.path.join(session_dir, "tls-certs")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    subprocess.run(["sh", MAKE_CERTS, d], check=True, capture_output=True)
    # PostgreSQL wants its key owned by itself and unreadable by others
    pgd = os.path.join(d, "pg")
    os.makedirs(pgd, exist_ok=True)
    for f in ("server.crt", "server.key", "ca.crt"):
        shutil.copy(os.path.join(d, f), os.path.join(pgd, f))
    os.chmod(os.path.join(pgd, "server.key"), 0o600)
    chown_to_postgres(pgd, recursive=True)
    for f in os.listdir(d):
        p = os.path.join(d, f)
        if os.path.isfile(p) and f.endswith(".key"):
            os.chmod(p, 0o600)  # libpq refuses a client key readable by others
    return d


@pytest.fixture(scope="module")
def tls_cluster(session_dir, certs):
    pgd = os.path.join(certs, "pg")
    conf = ("ssl = on\nssl_cert_file = '%s/server.crt'\nssl_key_file = '%s/server.key'\n"
            "ssl_ca_file = '%s/ca.crt'\n" % (pgd, pgd, pgd))
    c = Cluster(os.path.join(session_dir, "pgtls"), replica=False, extra_conf=conf).start()
    # alice: logs in with her certificate (auth_type cert); tlsonly: PostgreSQL refuses her without TLS
    c.psql("CREATE ROLE alice LOGIN PASSWORD '%s'; CREATE ROLE tlsonly LOGIN PASSWORD 'tlsonlypw';"
           "GRANT CONNECT ON DATABASE appdb TO alice, tlsonly" % ALICE_PW)
    hba = os.path.join(c.primary.datadir, "pg_hba.conf")
    with open(hba) as f:
        body = f.read()
    with open(hba, "w") as f:
        f.write("hostnossl all tlsonly 127.0.0.1/32 reject\n" + body)
    c.psql("SELECT pg_reload_conf()")
    yield c
    c.stop()


def client_tls(certs, mode="require", **more):
    s = {"client_tls_sslmode": mode, "client_tls_key_file": os.path.join(certs, "server.key"),
         "client_tls_cert_file": os.path.join(certs, "server.crt")}
    s.update(more)
    return s


def server_ssl(c):
    """Is the server connection this client got encrypted? (PostgreSQL's own view of it.)"""
    return c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]


def tls_column(p, what):
    with console(p) as c:
        return [r["tls"] for r in c.execute("SHOW " + what).fetchall()]


# ---- pgsluice -> PostgreSQL ----

def test_server_connections_use_tls_by_default_when_postgresql_offers_it(pooler, tls_cluster):
    p = pooler(cluster=tls_cluster)  # server_tls_sslmode left at its default, prefer (as PgBouncer)
    with clients.connect(p) as c:
        assert server_ssl(c) is True
        described = [t for t in tls_column(p, "SERVERS") if t]
    assert described and described[0].startswith("TLSv1."), described


def test_prefer_goes_on_in_plaintext_with_a_server_without_ssl(pooler, cluster):
    p = pooler(cluster=cluster)  # the suite's cluster runs ssl = off
    with clients.connect(p) as c:
        assert server_ssl(c) is False
    assert tls_column(p, "SERVERS") == [""]


def test_server_verify_full_checks_the_certificate_and_host(pooler, tls_cluster, certs):
    p = pooler(cluster=tls_cluster, settings={"server_tls_sslmode": "verify-full",
                                  "server_tls_ca_file": os.path.join(certs, "ca.crt")})
    with clients.connect(p) as c:
        assert server_ssl(c) is True


def test_server_verify_ca_refuses_a_certificate_from_another_ca(pooler, tls_cluster, certs):
    p = pooler(cluster=tls_cluster, settings={"server_tls_sslmode": "verify-ca",
                                  "server_tls_ca_file": os.path.join(certs, "other-ca.crt"),
                                  "query_wait_timeout": 5})
    sqlstate, msg = clients.login_error(p)
    assert sqlstate.startswith("08"), (sqlstate, msg)
    wait_for(retry_on=(Exception,), timeout=20, predicate=lambda: "certificate verify failed" in p.log_text(), what="the handshake failure in the log")


def test_server_require_refuses_a_server_without_ssl(pooler, cluster):
    p = pooler(cluster=cluster, settings={"server_tls_sslmode": "require", "query_wait_timeout": 5})
    sqlstate, msg = clients.login_error(p)
    assert sqlstate.startswith("08"), (sqlstate, msg)
    wait_for(retry_on=(Exception,), timeout=20, predicate=lambda: "server does not support SSL, but SSL was required" in p.log_text(), what="the refusal")


def test_server_disable_never_asks_for_tls(pooler, tls_cluster):
    p = pooler(cluster=tls_cluster, settings={"server_tls_sslmode": "disable"})
    with clients.connect(p) as c:
        assert server_ssl(c) is False


def test_server_allow_asks_for_tls_once_postgresql_refused_plaintext(pooler, tls_cluster):
    p = pooler(cluster=tls_cluster, settings={"server_tls_sslmode": "allow", "server_login_retry": 0},
                    users={"tlsonly": "tlsonlypw"})

    def login():
        with clients.connect(p, user="tlsonly", password="tlsonlypw") as c:
            return server_ssl(c)
    assert wait_for(retry_on=(Exception,), timeout=20, predicate=login, what="a TLS login after the plaintext refusal") is True
    with clients.connect(p, user="app") as c:  # app's first connection was plaintext and worked
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_a_reload_that_changes_server_tls_settings_reconnects_servers(pooler, tls_cluster):
    p = pooler(cluster=tls_cluster)
    with clients.connect(p) as c:
        assert server_ssl(c) is True
    with console(p) as a:
        a.execute("SET server_tls_sslmode = 'disable'")
    with clients.connect(p) as c:
        assert server_ssl(c) is False


# ---- applications -> pgsluice ----

def test_client_require_refuses_plaintext_and_serves_tls(pooler, cluster, certs):
    p = pooler(cluster=cluster, settings=client_tls(certs, "require"))
    with pytest.raises(psycopg.OperationalError, match="SSL required"):
        clients.connect(p, sslmode="disable")
    with clients.connect(p, sslmode="require") as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("SELECT 1").fetchone() == (1,)
        described = [t for t in tls_column(p, "CLIENTS") if t]
    assert described and all(t.startswith("TLSv1.") for t in described), described
    # libpq checks pgsluice's certificate and host name
    with clients.connect(p, sslmode="verify-full", sslrootcert=os.path.join(certs, "ca.crt"),
                         host="localhost") as c:
        assert c.execute("SELECT 2").fetchone() == (2,)


def test_bulk_data_over_tls_both_ways_arrives_whole_and_in_order(pooler, tls_cluster, certs):
    """COPY in, COPY out and a large result through TLS on both sides: pgsluice reads several
    records per call (those OpenSSL read ahead) and forwards them together; nothing may be lost,
    repeated or reordered at the record boundaries."""
    p = pooler(cluster=tls_cluster, settings=client_tls(certs, "require"))
    lines = ["%07d %s" % (i, hashlib.sha256(str(i).encode()).hexdigest() * (1 + i % 7)) for i in range(20000)]
    want = hashlib.md5("".join(x + "\n" for x in lines).encode()).hexdigest()
    with clients.connect(p, sslmode="require") as c:
        assert c.pgconn.ssl_in_use and server_ssl(c) is True
        c.execute("CREATE TEMP TABLE bulk (line text)")  # pins: the same server for the whole test
        with c.cursor() as cur:
            with cur.copy("COPY bulk FROM STDIN") as cp:
                for i in range(0, len(lines), 997):  # writes of uneven sizes
                    cp.write("".join(x + "\n" for x in lines[i:i + 997]))
            got = cur.execute("SELECT count(*), md5(string_agg(line || E'\\n', '' ORDER BY line)) FROM bulk").fetchone()
            assert got == (len(lines), want)
            out = bytearray()
            with cur.copy("COPY (SELECT line FROM bulk ORDER BY line) TO STDOUT") as cp:
                for chunk in cp:
                    out += chunk
            assert hashlib.md5(bytes(out)).hexdigest() == want
            rows = cur.execute("SELECT line FROM bulk ORDER BY line").fetchall()
            assert [r[0] for r in rows] == lines


def test_client_require_does_not_apply_to_the_unix_socket(pooler, cluster, certs):
    p = pooler(cluster=cluster, settings=client_tls(certs, "require"))
    with psycopg.connect(p.dsn(host=p.unix_socket_dir), autocommit=True) as c:
        assert not c.pgconn.ssl_in_use
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_client_prefer_serves_both(pooler, cluster, certs):
    p = pooler(cluster=cluster, settings=client_tls(certs, "prefer"))
    with clients.connect(p, sslmode="disable") as c:
        assert not c.pgconn.ssl_in_use
    with clients.connect(p, sslmode="require") as c:
        assert c.pgconn.ssl_in_use


def test_client_verify_full_needs_a_client_certificate(pooler, cluster, certs):
    p = pooler(cluster=cluster, settings=client_tls(certs, "verify-full", client_tls_ca_file=os.path.join(certs, "ca.crt")))
    with pytest.raises(psycopg.OperationalError):
        clients.connect(p, sslmode="require")
    with clients.connect(p, sslmode="require", sslcert=os.path.join(certs, "client.crt"),
                         sslkey=os.path.join(certs, "client.key")) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    # a certificate from a CA pgsluice does not trust
    with pytest.raises(psycopg.OperationalError):
        clients.connect(p, sslmode="require", sslcert=os.path.join(certs, "stranger.crt"),
                        sslkey=os.path.join(certs, "stranger.key"))


def test_auth_type_cert_logs_in_the_user_named_by_the_certificate(pooler, tls_cluster, certs):
    p = pooler(cluster=tls_cluster, settings=client_tls(certs, "verify-ca", client_tls_ca_file=os.path.join(certs, "ca.crt"),
                                            auth_type="cert"), users={"alice": ALICE_PW})
    cert = {"sslcert": os.path.join(certs, "client.crt"), "sslkey": os.path.join(certs, "client.key")}
    with clients.connect(p, user="alice", password="", sslmode="require", **cert) as c:
        assert c.execute("SELECT current_user").fetchone() == ("alice",)
    with pytest.raises(psycopg.OperationalError, match='certificate authentication failed for user "app"'):
        clients.connect(p, user="app", password="", sslmode="require", **cert)


def test_auth_type_cert_without_client_tls_refuses_to_start(pooler, cluster):
    p = pooler(cluster=cluster, settings={"auth_type": "cert"}, start=False)
    with pytest.raises(PoolerError):
        p.start(attempts=1)
    assert "auth_type cert needs client_tls_sslmode" in p.log_text()


def _startup(user="app", db="appdb"):
    body = struct.pack("!I", 196608) + b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0\0"
    return struct.pack("!I", len(body) + 4) + body


def test_direct_tls_with_alpn_postgresql(pooler, cluster, certs):
    """PostgreSQL 17's sslnegotiation=direct: a ClientHello first, ALPN "postgresql" required."""
    p = pooler(cluster=cluster, settings=client_tls(certs, "require"))
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
    ctx.set_alpn_protocols(["postgresql"])
    with socket.create_connection((p.host, p.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            assert t.selected_alpn_protocol() == "postgresql"
            t.sendall(_startup())
            first = t.recv(1)
            assert first == b"R"  # an authentication request: the startup packet arrived over TLS
    # without ALPN the handshake is refused
    ctx2 = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
    with socket.create_connection((p.host, p.port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with ctx2.wrap_socket(raw, server_hostname="localhost") as t:
                t.sendall(_startup())
                if not t.recv(1):
                    raise ConnectionError("closed")
    clients.assert_pooler_serves(p)


def test_direct_tls_is_refused_when_client_tls_is_off(pooler, cluster, certs):
    p = pooler(cluster=cluster)
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
    ctx.set_alpn_protocols(["postgresql"])
    with socket.create_connection((p.host, p.port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            ctx.wrap_socket(raw, server_hostname="localhost")
    clients.assert_pooler_serves(p)


def test_bytes_pipelined_behind_the_ssl_request_are_refused(pooler, cluster, certs):
    """CVE-2021-23214: plaintext sent before the handshake must not be read as if it came over TLS."""
    p = pooler(cluster=cluster, settings=client_tls(certs, "require"))
    with socket.create_connection((p.host, p.port), timeout=10) as s:
        s.sendall(struct.pack("!II", 8, 80877103) + _startup())
        got = b""
        try:
            while True:
                chunk = s.recv(100)
                if not chunk:
                    break
                got += chunk
        except ConnectionError:
            pass
        assert not got.startswith(b"S"), got
    clients.assert_pooler_serves(p)


# ---- fail closed ----

def test_tls_asked_for_without_a_key_refuses_to_start(pooler, cluster, certs):
    p = pooler(cluster=cluster, settings={"client_tls_sslmode": "require",
                              "client_tls_cert_file": os.path.join(certs, "server.crt")}, start=False)
    with pytest.raises(PoolerError):
        p.start(attempts=1)
    assert "client_tls_key_file" in p.log_text()


def test_server_verify_full_with_an_unreadable_ca_refuses_to_start(pooler, cluster, certs):
    p = pooler(cluster=cluster, settings={"server_tls_sslmode": "verify-full",
                              "server_tls_ca_file": os.path.join(certs, "garbage.pem")}, start=False)
    with pytest.raises(PoolerError):
        p.start(attempts=1)
    assert "server_tls_ca_file" in p.log_text()


def test_a_reload_with_a_broken_certificate_keeps_the_running_tls(pooler, cluster, certs):
    cert = os.path.join(certs, "rotating.crt")
    shutil.copy(os.path.join(certs, "server.crt"), cert)
    p = pooler(cluster=cluster, settings=client_tls(certs, "require", client_tls_cert_file=cert))
    shutil.copy(os.path.join(certs, "garbage.pem"), cert)
    with console(p) as a:
        with pytest.raises(psycopg.Error, match="client_tls_cert_file"):
            a.execute("RELOAD")
    with clients.connect(p, sslmode="require") as c:  # still TLS, with the certificate loaded before
        assert c.pgconn.ssl_in_use
    with console(p) as a:
        with pytest.raises(psycopg.Error):
            a.execute("SET client_tls_key_file = '%s'" % os.path.join(certs, "missing.key"))
        assert a.execute("SHOW CONFIG").fetchall()
    # a renewed certificate is picked up by RELOAD
    shutil.copy(os.path.join(certs, "strong.crt"), cert)
    shutil.copy(os.path.join(certs, "strong.key"), os.path.join(certs, "rotating.key"))
    with console(p) as a:
        a.execute("SET client_tls_key_file = '%s'" % os.path.join(certs, "rotating.key"))
    with clients.connect(p, sslmode="require") as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


# ---- every client_tls_sslmode against every libpq sslmode ----

LIBPQ_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"])
def test_each_client_tls_sslmode_against_each_libpq_sslmode(pooler, cluster, certs, mode):
    settings = {"client_tls_sslmode": mode}
    if mode != "disable":
        settings = client_tls(certs, mode, client_tls_ca_file=os.path.join(certs, "ca.crt"))
    p = pooler(cluster=cluster, settings=settings)
    for client in LIBPQ_MODES:
        # a client certificate and the CA go with every attempt; libpq uses them only when asked
        kw = {"sslmode": client, "sslrootcert": os.path.join(certs, "ca.crt"), "host": "localhost",
              "sslcert": os.path.join(certs, "client.crt"), "sslkey": os.path.join(certs, "client.key")}
        if mode == "disable":
            works, tls = client in ("disable", "allow", "prefer"), False
        elif mode in ("allow", "prefer"):
            works, tls = True, client not in ("disable", "allow")  # libpq's allow tries plaintext first
        else:  # require, verify-ca, verify-full: plaintext is refused, libpq's allow then retries with TLS
            works, tls = client != "disable", True
        if not works:
            with pytest.raises(psycopg.OperationalError):
                clients.connect(p, **kw)
            continue
        with clients.connect(p, **kw) as c:
            assert bool(c.pgconn.ssl_in_use) == tls, (mode, client)
            assert c.execute("SELECT 1").fetchone() == (1,)


# ---- server certificates that must not pass ----

@pytest.fixture
def swap_server_cert(tls_cluster, certs):
    """Make the TLS cluster present another certificate (PostgreSQL rereads its files on reload)."""
    pgd = os.path.join(certs, "pg")

    def swap(name):
        for ext in ("crt", "key"):
            dst = os.path.join(pgd, "server." + ext)
            shutil.copy(os.path.join(certs, "%s.%s" % (name, ext)), dst)
            os.chmod(dst, 0o600)
        chown_to_postgres(pgd, recursive=True)
        tls_cluster.psql("SELECT pg_reload_conf()")
        # the reload is asynchronous: wait until a new connection sees the new certificate
        want = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
                               os.path.join(certs, name + ".crt")], capture_output=True, text=True).stdout

        def presented():  # PostgreSQL 15 speaks TLS only after an SSLRequest: s_client -starttls postgres
            hello = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                                    "%s:%d" % (tls_cluster.host, tls_cluster.primary_port)],
                                   stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10).stdout
            got = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=hello,
                                 capture_output=True, text=True).stdout
            return got == want
        wait_for(retry_on=(Exception,), timeout=20, predicate=lambda: _pg_presents(presented), what="PostgreSQL presenting %s.crt" % name)

    yield swap
    swap("server")


def _pg_presents(fn):
    try:
        return fn()
    except (OSError, ssl.SSLError):
        return False


@pytest.mark.parametrize("cert, words", [("wronghost", "certificate verify failed: IP address mismatch"),
                                         ("expired", "certificate has expired"),
                                         ("stranger", "certificate verify failed")])
def test_server_verify_full_refuses_a_wrong_name_an_expired_or_a_foreign_certificate(
        pooler, tls_cluster, certs, swap_server_cert, cert, words):
    swap_server_cert(cert)
    p = pooler(cluster=tls_cluster, settings={"server_tls_sslmode": "verify-full", "query_wait_timeout": 5,
                                  "server_tls_ca_file": os.path.join(certs, "ca.crt")})
    sqlstate, msg = clients.login_error(p)
    assert sqlstate.startswith("08"), (sqlstate, msg)
    wait_for(retry_on=(Exception,), timeout=20, predicate=lambda: words in p.log_text(), what=words)
    q = pooler(cluster=tls_cluster, settings={"server_tls_sslmode": "require"})  # require does not look at the certificate
    with clients.connect(q) as c:
        assert server_ssl(c) is True


# ---- cert through an hba line with a user map ----

def test_hba_cert_line_with_a_map(pooler, tls_cluster, certs, session_dir):
    d = os.path.join(session_dir, "tls-hba")
    os.makedirs(d, exist_ok=True)
    hba, ident = os.path.join(d, "hba.conf"), os.path.join(d, "ident.conf")
    with open(hba, "w") as f:
        f.write("hostssl all plainuser 127.0.0.1/32 cert map=certs\n"
                "hostssl all app 127.0.0.1/32 cert\n"
                "host all postgres 127.0.0.1/32 scram-sha-256\n")
    with open(ident, "w") as f:
        f.write("certs  alice  plainuser\n")
    p = pooler(cluster=tls_cluster, settings=client_tls(certs, "prefer", client_tls_ca_file=os.path.join(certs, "ca.crt"),
                                            auth_type="hba", auth_hba_file=hba, auth_ident_file=ident))
    cert = {"sslmode": "require", "sslcert": os.path.join(certs, "client.crt"),
            "sslkey": os.path.join(certs, "client.key")}
    with clients.connect(p, user="plainuser", password="", **cert) as c:  # CN alice maps to plainuser
        assert c.execute("SELECT current_user").fetchone() == ("plainuser",)
    with pytest.raises(psycopg.OperationalError, match='certificate authentication failed for user "app"'):
        clients.connect(p, user="app", password="", **cert)  # CN alice is not app, and no map
    with pytest.raises(psycopg.OperationalError, match="no pg_hba.conf entry"):
        clients.connect(p, user="plainuser", password="", sslmode="disable")  # hostssl only


# ---- SCRAM channel binding ----

def test_channel_binding_required_by_the_client_logs_in_over_tls(pooler, cluster, certs):
    p = pooler(cluster=cluster, settings=client_tls(certs, "require"))  # auth_type scram-sha-256 (the harness's)
    with clients.connect(p, sslmode="require", channel_binding="require") as c:
        assert c.execute("SELECT current_user").fetchone() == ("app",)
    # without TLS there is nothing to bind to: libpq refuses, pgsluice never offers PLUS in plaintext
    q = pooler(cluster=cluster)
    with pytest.raises(psycopg.OperationalError, match="channel binding"):
        clients.connect(q, sslmode="disable", channel_binding="require")


def test_server_logins_bind_to_postgresqls_certificate(pooler, tls_cluster):
    """PostgreSQL offers SCRAM-SHA-256-PLUS over TLS: pgsluice binds (with the keys passed through from
    the client's own SCRAM login); a wrong binding would be refused by PostgreSQL."""
    p = pooler(cluster=tls_cluster, settings={"server_tls_sslmode": "require", "verbose": 1})
    with clients.connect(p) as c:
        assert server_ssl(c) is True
        assert c.execute("SELECT current_user").fetchone() == ("app",)
    assert "SCRAM-SHA-256-PLUS: bound to the server's certificate" in p.log_text()


def test_libpq_verify_full_refuses_pgsluice_with_a_certificate_for_another_name(pooler, cluster, certs):
    p = pooler(cluster=cluster, settings=client_tls(certs, "require", client_tls_key_file=os.path.join(certs, "wronghost.key"),
                                        client_tls_cert_file=os.path.join(certs, "wronghost.crt")))
    ca = os.path.join(certs, "ca.crt")
    with pytest.raises(psycopg.OperationalError, match="does not match host name|server certificate"):
        clients.connect(p, sslmode="verify-full", sslrootcert=ca, host="localhost")
    with clients.connect(p, sslmode="verify-ca", sslrootcert=ca, host="localhost") as c:  # the CA still vouches
        assert c.execute("SELECT 1").fetchone() == (1,)
