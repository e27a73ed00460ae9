"""SCRAM-SHA-256-PLUS channel binding (tls-server-end-point) of src/auth, over real TLS connections, run by
the scram_probe test tool (tests/integration/scram_probe.c, built next to pgsluice):

- pgsluice's client side logging in to a PostgreSQL 15 with ssl=on: bound, bound to a wrong certificate
  hash, the "y,," flag (refused by a server that offers binding), pass-through keys, a SHA-384 certificate;
- pgsluice's server side verifying libpq (psycopg) with channel_binding=require/prefer/disable: SHA-256,
  SHA-384 and SHA-512 certificates, a stripped PLUS (downgrade), a wrong hash, a wrong password.

The probe prints "OK ...", "ERROR <sqlstate> <message>" or "FAIL <reason>"; see its header."""
import base64
import hashlib
import hmac
import os
import shutil
import socket
import ssl
import subprocess
import time

import psycopg
import pytest

from harness.cluster import Cluster
from harness.util import chown_to_postgres, wait_for

pytestmark = pytest.mark.pgsluice_only  # src/auth's code, not a pooler's behaviour

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAKE_CERTS = os.path.join(HERE, "..", "unit", "tls", "make-certs.sh")
SL_BIN = os.environ.get("SL_BIN", os.path.join(REPO, "build", "pgsluice"))
PROBE = os.path.join(os.path.dirname(os.path.abspath(SL_BIN)), "tests", "integration", "scram_probe")
DOWNGRADE = ("SCRAM channel binding negotiation error (the client supports channel binding and thinks the "
             "server does not, but this server offered it)")


@pytest.fixture(scope="module")
def probe():
    assert os.access(PROBE, os.X_OK), "%s is missing: build with `make build` (or set SL_BIN)" % PROBE
    return PROBE


@pytest.fixture(scope="module")
def certs(session_dir):
    d = os.path.join(session_dir, "scram-certs")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    subprocess.run(["sh", MAKE_CERTS, d], check=True, capture_output=True)
    # a SHA-512 signature: tls-server-end-point is then 64 bytes, the most there is
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-sha512",
                    "-nodes", "-subj", "/CN=localhost", "-days", "30", "-keyout", os.path.join(d, "sha512.key"),
                    "-out", os.path.join(d, "sha512.crt")], check=True, capture_output=True)
    pgd = os.path.join(d, "pg")
    os.makedirs(pgd, exist_ok=True)
    for name in ("server", "strong"):
        for ext in (".crt", ".key"):
            shutil.copy(os.path.join(d, name + ext), os.path.join(pgd, name + ext))
        os.chmod(os.path.join(pgd, name + ".key"), 0o600)
    chown_to_postgres(pgd, recursive=True)
    return d


@pytest.fixture(scope="module")
def pg(session_dir, certs):
    pgd = os.path.join(certs, "pg")
    conf = "ssl = on\nssl_cert_file = '%s/server.crt'\nssl_key_file = '%s/server.key'\n" % (pgd, pgd)
    c = Cluster(os.path.join(session_dir, "pgscram"), replica=False, extra_conf=conf).start()
    yield c
    c.stop()


def served_cert(port):
    """The DER certificate PostgreSQL presents now (SSLRequest, then a TLS handshake)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")
        assert s.recv(1) == b"S"
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(s) as t:
            return t.getpeercert(binary_form=True)


def pem_to_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def client(probe, pg, *args, user="app", password="apppw"):
    cmd = [probe, "client", str(pg.primary_port), user, "--db", "appdb"]
    if password is not None:
        cmd += ["--password", password]
    r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout.strip().splitlines()


# ---- pgsluice's client side -> PostgreSQL 15 ----

def test_client_bound_login_is_accepted_by_postgresql(probe, pg):
    rc, out = client(probe, pg, "--cb", "bound", "--trace")
    assert out[0] == "offered: SCRAM-SHA-256-PLUS SCRAM-SHA-256"
    assert rc == 0 and out[-1] == "OK mechanism=SCRAM-SHA-256-PLUS cb_bytes=32", out
    c1 = [line for line in out if line.startswith("C1: ")][0]
    assert c1.startswith("C1: p=tls-server-end-point,,n=,r=")
    # c= carries the header and the certificate's SHA-256, as PostgreSQL computed it on its side
    want = base64.b64encode(b"p=tls-server-end-point,," + hashlib.sha256(served_cert(pg.primary_port)).digest())
    c2 = [line for line in out if line.startswith("C2: ")][0]
    assert c2.startswith("C2: c=" + want.decode() + ",r=")


def test_client_bound_to_another_certificate_is_refused(probe, pg):
    rc, out = client(probe, pg, "--cb", "bound-wrong")
    assert (rc, out[-1]) == (1, "ERROR 28000 SCRAM channel binding check failed"), out


def test_client_only_flag_is_refused_by_a_server_that_offers_binding(probe, pg):
    rc, out = client(probe, pg, "--cb", "client-only")
    assert (rc, out[-1]) == (1, "ERROR 28000 SCRAM channel binding negotiation error"), out


def test_client_only_flag_is_accepted_without_tls(probe, pg):
    rc, out = client(probe, pg, "--cb", "client-only", "--no-tls")
    assert out[0] == "offered: SCRAM-SHA-256"
    assert (rc, out[-1]) == (0, "OK mechanism=SCRAM-SHA-256 cb_bytes=0"), out


def test_client_unbound_over_tls_and_wrong_password(probe, pg):
    rc, out = client(probe, pg, "--cb", "none")
    assert (rc, out[-1]) == (0, "OK mechanism=SCRAM-SHA-256 cb_bytes=0"), out
    rc, out = client(probe, pg, "--cb", "bound", password="not-apppw")
    assert (rc, out[-1]) == (1, 'ERROR 28P01 password authentication failed for user "app"'), out


def test_client_pass_through_keys_bind_too(probe, pg):
    """ClientKey (recovered from a client's proof in real use) + ServerKey from pg_authid, bound."""
    secret = pg.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'").strip()
    head, keys = secret.split("$")[1], secret.split("$")[2]
    iterations, salt = head.split(":")
    server_key = keys.split(":")[1]
    salted = hashlib.pbkdf2_hmac("sha256", b"apppw", base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    ck = base64.b64encode(client_key).decode()
    rc, out = client(probe, pg, "--cb", "bound", "--keys", ck, server_key, password=None)
    assert (rc, out[-1]) == (0, "OK mechanism=SCRAM-SHA-256-PLUS cb_bytes=32"), out
    rc, out = client(probe, pg, "--cb", "bound-wrong", "--keys", ck, server_key, password=None)
    assert (rc, out[-1]) == (1, "ERROR 28000 SCRAM channel binding check failed"), out
    bad = base64.b64encode(bytes([client_key[0] ^ 1]) + client_key[1:]).decode()
    rc, out = client(probe, pg, "--cb", "bound", "--keys", bad, server_key, password=None)
    assert (rc, out[-1]) == (1, 'ERROR 28P01 password authentication failed for user "app"'), out


def test_client_bound_with_a_sha384_certificate(probe, pg, certs):
    pgd = os.path.join(certs, "pg")
    strong = pem_to_der(os.path.join(certs, "strong.crt"))
    usual = pem_to_der(os.path.join(certs, "server.crt"))

    def serve(name, der):
        pg.psql("ALTER SYSTEM SET ssl_cert_file = '%s/%s.crt'" % (pgd, name))
        pg.psql("ALTER SYSTEM SET ssl_key_file = '%s/%s.key'" % (pgd, name))
        pg.psql("SELECT pg_reload_conf()")
        wait_for(retry_on=(Exception,), timeout=20, predicate=lambda: served_cert(pg.primary_port) == der, what="PostgreSQL serving %s.crt" % name)

    serve("strong", strong)
    try:
        rc, out = client(probe, pg, "--cb", "bound")
        assert (rc, out[-1]) == (0, "OK mechanism=SCRAM-SHA-256-PLUS cb_bytes=48"), out
    finally:
        serve("server", usual)


# ---- libpq (psycopg) -> pgsluice's server side ----

def run_server(probe, certs, cert, *args, password="s3cret", sslmode="require", channel_binding="require"):
    """Start the probe's server side, log in with psycopg; returns (psycopg error or None, probe output)."""
    d = os.path.join(certs, "probe-run")
    os.makedirs(d, exist_ok=True)
    portfile = os.path.join(d, "port")
    if os.path.exists(portfile):
        os.unlink(portfile)
    proc = subprocess.Popen([probe, "server", portfile, os.path.join(certs, cert + ".crt"),
                             os.path.join(certs, cert + ".key"), "--password", "s3cret"] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    error = None
    try:
        port = wait_for(retry_on=(Exception,), timeout=20, predicate=lambda: os.path.exists(portfile) and open(portfile).read().strip(), what="probe port")
        try:
            psycopg.connect(host="127.0.0.1", port=int(port), user="app", dbname="x", password=password,
                            sslmode=sslmode, channel_binding=channel_binding, connect_timeout=10).close()
        except psycopg.OperationalError as e:
            error = str(e)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return error, out.strip().splitlines()


@pytest.mark.parametrize("cert,size", [("server", 32), ("strong", 48), ("sha512", 64)])
def test_server_verifies_libpq_with_channel_binding_required(probe, certs, cert, size):
    error, out = run_server(probe, certs, cert)
    assert error is None, (error, out)
    assert out == ["client chose SCRAM-SHA-256-PLUS, gs2 flag p",
                   "OK mechanism=SCRAM-SHA-256-PLUS flag=p cb_bytes=%d" % size]


def test_server_libpq_prefer_binds_and_disable_does_not(probe, certs):
    error, out = run_server(probe, certs, "server", channel_binding="prefer")
    assert error is None and out[-1] == "OK mechanism=SCRAM-SHA-256-PLUS flag=p cb_bytes=32", (error, out)
    error, out = run_server(probe, certs, "server", channel_binding="disable")
    assert error is None and out[-1] == "OK mechanism=SCRAM-SHA-256 flag=n cb_bytes=0", (error, out)


def test_server_without_binding_accepts_libpq_flag_y(probe, certs):
    """Over TLS without PLUS (we know no certificate hash), libpq says "y": that is no downgrade."""
    error, out = run_server(probe, certs, "server", "--offer", "none", channel_binding="prefer")
    assert error is None and out[-1] == "OK mechanism=SCRAM-SHA-256 flag=y cb_bytes=0", (error, out)
    error, out = run_server(probe, certs, "server", sslmode="disable", channel_binding="prefer")
    assert error is None and out[-1] == "OK mechanism=SCRAM-SHA-256 flag=n cb_bytes=0", (error, out)


def test_server_refuses_a_stripped_plus(probe, certs):
    """PLUS removed from the list on the way (we advertise SCRAM-SHA-256 only, but do have the hash):
    libpq's "y" reveals it, and the login is refused."""
    error, out = run_server(probe, certs, "server", "--offer", "plain", channel_binding="prefer")
    assert out[-1] == "ERROR 28000 " + DOWNGRADE, out
    assert error is not None and DOWNGRADE in error


def test_server_refuses_a_wrong_certificate_hash_and_a_wrong_password(probe, certs):
    error, out = run_server(probe, certs, "server", "--cb-wrong")
    assert out[-1] == "ERROR 28000 SCRAM channel binding check failed", out
    assert error is not None and "SCRAM channel binding check failed" in error
    error, out = run_server(probe, certs, "server", password="not-s3cret")
    assert out[-1] == "ERROR 28P01 SCRAM proof verification failed", out
    assert error is not None
