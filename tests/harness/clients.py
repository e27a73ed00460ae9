"""clients.py - client-side helpers for the integration tests: psycopg connections, psql and pgbench
runs, raw protocol sockets."""
import asyncio
import os
import socket
import struct
import subprocess
import threading
import time

import asyncpg
import psycopg

PG_BINDIR = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")


def connect(pooler, db="appdb", user="app", password=None, autocommit=True, **kw):
    """A psycopg 3 connection through the pooler. Automatic server-side prepared statements are off
    (prepare_threshold=None): PgBouncer 1.18 cannot keep named statements in transaction mode."""
    kw.setdefault("prepare_threshold", None)
    return psycopg.connect(pooler.dsn(db, user, password), autocommit=autocommit, **kw)


def direct(cluster, db="postgres", port=None):
    """A superuser psycopg connection straight to the primary (or `port`), autocommit."""
    return psycopg.connect(cluster.dsn(db, port=port), autocommit=True)


async def aconnect(pooler, db="appdb", user="app", password=None, **kw):
    """An asyncpg connection through the pooler with statement_cache_size=0 (unnamed statements, the
    pooler-friendly mode). Extra keywords go to asyncpg.connect (e.g. server_settings)."""
    kw.setdefault("statement_cache_size", 0)
    kw.setdefault("timeout", 15)
    kw.setdefault("command_timeout", 60)
    return await asyncpg.connect(host=pooler.host, port=pooler.port, user=user, database=db,
                                 password=pooler.cluster.passwords.get(user, "") if password is None else password,
                                 **kw)


def login_error(pooler, db="appdb", user="app", password=None, **kw):
    """Try to log in with asyncpg (which exposes the SQLSTATE of a startup-time ErrorResponse, unlike
    psycopg 3.1). Returns (sqlstate, message) of the refusal, or raises AssertionError if login worked.
    Extra keywords go to aconnect (e.g. timeout)."""
    async def attempt():
        try:
            conn = await aconnect(pooler, db, user, password, **kw)
        except asyncpg.PostgresError as e:
            return e.sqlstate, str(e)
        await conn.close()
        raise AssertionError("login db=%s user=%s unexpectedly succeeded" % (db, user))
    return asyncio.run(attempt())


def assert_pooler_serves(pooler, db="appdb", user="app"):
    """The pooler process is alive and a new client can run a query."""
    assert pooler.alive(), "pooler died\n" + pooler.describe()
    with connect(pooler, db, user) as c:
        assert c.execute("SELECT 41 + 1").fetchone()[0] == 42


def _env(pooler, user, password):
    env = dict(os.environ)
    env.update(PGPASSWORD=password if password is not None else pooler.cluster.passwords[user],
               PGCONNECT_TIMEOUT="10", LC_ALL="C.UTF-8")
    for k in ("PGSERVICE", "PGOPTIONS", "PGTZ", "PGSSLMODE", "PGHOST", "PGPORT"):
        env.pop(k, None)
    return env


def psql(pooler, *args, db="appdb", user="app", password=None, input=None, timeout=60, check=True, cwd=None):
    """Run psql through the pooler (-X, ON_ERROR_STOP, unaligned tuples-only). Returns CompletedProcess."""
    cmd = [os.path.join(PG_BINDIR, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
           "-h", pooler.host, "-p", str(pooler.port), "-U", user, "-d", db] + list(args)
    p = subprocess.run(cmd, env=_env(pooler, user, password), input=input, capture_output=True, text=True,
                       timeout=timeout, cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError("psql failed (%d): %s\nstdout: %s\nstderr: %s\n%s"
                             % (p.returncode, cmd, p.stdout[-2000:], p.stderr[-2000:], pooler.describe(30)))
    return p


def pgbench(pooler, *args, db="appdb", user="app", password=None, timeout=120):
    """Run pgbench through the pooler. Returns CompletedProcess (text) whatever the exit code."""
    cmd = [os.path.join(PG_BINDIR, "pgbench"), "-h", pooler.host, "-p", str(pooler.port), "-U", user] \
        + list(args) + [db]
    return subprocess.run(cmd, env=_env(pooler, user, password), capture_output=True, text=True,
                          timeout=timeout)


# ---- raw protocol ----

def msg(t, body=b""):
    """One protocol message: type byte, Int32 length, body."""
    return t + struct.pack("!I", len(body) + 4) + body


def recv_exact(sock, n):
    """Exactly n bytes from a blocking socket (ConnectionError if it closes first)."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class StandInServer:
    """A stand-in PostgreSQL server on a free TCP port of 127.0.0.1: each connection it accepts is
    served by self._serve(conn, n) (n: 1 for the first) on a thread of its own. Subclasses write
    _serve; close() stops accepting and closes the connections."""

    def __init__(self, backlog=16, nodelay=False):
        self.nodelay = nodelay  # small writes go out as they are
        self.conns = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.nodelay:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn, len(self.conns)), daemon=True).start()

    @property
    def nconns(self):
        """Connections accepted so far."""
        return len(self.conns)

    def _serve(self, conn, n):
        raise NotImplementedError

    @staticmethod
    def trust_login(conn):
        """Answer a startup packet (after refusing any SSLRequest) as a trust-authenticated PostgreSQL 15:
        AuthenticationOk, the usual ParameterStatus messages, BackendKeyData, ReadyForQuery."""
        while True:
            (length,) = struct.unpack("!I", recv_exact(conn, 4))
            body = recv_exact(conn, length - 4)
            if struct.unpack("!I", body[:4])[0] == 80877103:  # SSLRequest
                conn.sendall(b"N")
                continue
            break
        welcome = msg(b"R", struct.pack("!I", 0))
        for k, v in (("server_version", "15.0"), ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
                     ("TimeZone", "UTC"), ("integer_datetimes", "on"), ("standard_conforming_strings", "on")):
            welcome += msg(b"S", k.encode() + b"\0" + v.encode() + b"\0")
        conn.sendall(welcome + msg(b"K", struct.pack("!II", 1234, 5678)) + msg(b"Z", b"I"))

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def startup_packet(user="app", database="appdb", **params):
    """A v3 StartupMessage; values may be bytes (sent as they are) or text (UTF-8)."""
    body = struct.pack("!I", 196608)  # protocol 3.0
    for k, v in dict(user=user, database=database, **params).items():
        body += k.encode() + b"\0" + (v if isinstance(v, bytes) else str(v).encode()) + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def raw_socket(pooler, timeout=5.0):
    s = socket.create_connection((pooler.host, pooler.port), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_message(sock):
    """One whole backend message from a blocking socket: (type byte, body bytes)."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data
    head = exactly(5)
    return head[:1], exactly(struct.unpack("!I", head[1:5])[0] - 4)


def read_until_close(sock, timeout=5.0):
    """Read until the peer closes. Returns (bytes received, closed?) where closed is False when
    nothing ended the connection within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


def error_fields(data):
    """Parse the first ErrorResponse ('E') in a byte string into {field code: value}, or None."""
    i = 0
    while i + 5 <= len(data):
        typ = data[i:i + 1]
        (length,) = struct.unpack("!I", data[i + 1:i + 5])
        if typ == b"E":
            fields = {}
            for part in data[i + 5:i + 1 + length].split(b"\0"):
                if part:
                    fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
            return fields
        if length < 4:
            return None
        i += 1 + length
    return None
