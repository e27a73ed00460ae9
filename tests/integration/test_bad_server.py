"""Bad input from servers: a server that sends what PostgreSQL never would loses its connection, its
client gets an error, and the pooler keeps serving everyone else. The server here is a stand-in
that logs pgsluice in and answers each query with the bytes a test gives it."""
import re
import socket
import struct
import threading
import time

import psycopg
import pytest

from harness import clients
from harness.util import HOST

pytestmark = pytest.mark.pgsluice_only


_msg = clients.msg
_recv_exact = clients.recv_exact


class FakeServer(clients.StandInServer):
    """Accepts pgsluice's server connections: startup (SSLRequest refused), AuthenticationOk, a few
    ParameterStatus, BackendKeyData, ReadyForQuery; then answers each message with
    respond(type, body) (bytes to send; default: `answer` to a Query, ReadyForQuery to a Sync)."""

    def __init__(self, answer=b"", respond=None, bytewise=False, auth=None):
        self.answer = answer
        self.auth = auth  # sent instead of AuthenticationOk; what pgsluice answers goes to self.auth_answers
        self.auth_answers = []
        self.respond = respond or self._default_respond
        self.bytewise = bytewise  # send answers one byte at a time (they arrive in pieces)
        super().__init__(nodelay=True)

    def _serve(self, conn, n):
        try:
            while True:
                (n,) = struct.unpack("!I", _recv_exact(conn, 4))
                body = _recv_exact(conn, n - 4)
                if struct.unpack("!I", body[:4])[0] == 80877103:  # SSLRequest
                    conn.sendall(b"N")
                    continue
                break
            if self.auth is not None:
                conn.sendall(self.auth)
                t = _recv_exact(conn, 1)
                (n,) = struct.unpack("!I", _recv_exact(conn, 4))
                self.auth_answers.append((t, _recv_exact(conn, n - 4)))
                return
            welcome = _msg(b"R", struct.pack("!I", 0))
            for k, v in (("server_version", "15.0"), ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
                         ("TimeZone", "UTC"), ("integer_datetimes", "on"), ("standard_conforming_strings", "on")):
                welcome += _msg(b"S", k.encode() + b"\0" + v.encode() + b"\0")
            conn.sendall(welcome + _msg(b"K", struct.pack("!II", 1234, 5678)) + _msg(b"Z", b"I"))
            while True:
                t = _recv_exact(conn, 1)
                (n,) = struct.unpack("!I", _recv_exact(conn, 4))
                body = _recv_exact(conn, n - 4)
                if t == b"X":
                    return
                out = self.respond(t, body)
                if out and self.bytewise:
                    for i in range(len(out)):
                        conn.sendall(out[i:i + 1])
                        time.sleep(0.001)
                elif out:
                    conn.sendall(out)
        except (ConnectionError, OSError):
            return
        finally:
            conn.close()

    def _default_respond(self, t, body):
        return self.answer if t == b"Q" else _msg(b"Z", b"I") if t == b"S" else b""


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_server_message_length_over_2gb_ends_that_server_not_the_worker(pooler, pool_mode):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression server_length_ffffffff): a
    length of 0xFFFFFFFF made the forwarding loop's "rest of this message" wrap to 0, so a worker
    read the same header forever and served no one else."""
    fake = FakeServer(_msg(b"T", struct.pack("!H", 0))[:1] + b"\xff\xff\xff\xff" + b"\0" * 64)
    try:
        p = pooler({"pool_mode": pool_mode, "workers": 1},
                   dbs={"fakedb": "host=%s port=%d dbname=fakedb" % (HOST, fake.port)})
        outcome = {}

        def query():
            try:
                with clients.connect(p, "fakedb") as c:
                    c.execute("SELECT 1")
                outcome["result"] = "answered"
            except psycopg.Error as e:
                outcome["result"] = e

        t = threading.Thread(target=query, daemon=True)
        t.start()
        t.join(timeout=15)
        assert not t.is_alive(), "the client got no answer in 15 s (a worker is stuck?)"
        assert isinstance(outcome["result"], psycopg.OperationalError), outcome
        clients.assert_pooler_serves(p)  # one worker: it is not stuck
    finally:
        fake.close()


def test_odd_answer_to_pgsluices_own_close_is_dropped_whole(pooler):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression skipped_answer_not_whole):
    the answer to a Parse or Close pgsluice sends itself is dropped; a message there that was not
    whole in the buffer (here 20 kB before the CloseComplete) moved the read position past the end
    of the data."""
    odd = _msg(b"x", b"\0" * 20000)

    def respond(t, body):
        return {b"P": _msg(b"1"), b"C": odd + _msg(b"3"), b"S": _msg(b"Z", b"I")}.get(t, b"")

    from psycopg import pq
    fake = FakeServer(respond=respond)
    try:
        p = pooler({"pool_mode": "transaction", "workers": 1, "max_prepared_statements": 1},
                   dbs={"fakedb": "host=%s port=%d dbname=fakedb" % (HOST, fake.port)})
        c = pq.PGconn.connect(p.dsn("fakedb").encode())
        assert c.status == pq.ConnStatus.OK, c.error_message
        assert c.prepare(b"s1", b"SELECT 1").status == pq.ExecStatus.COMMAND_OK
        # evicts s1's statement (Close), closes s2's name before its Parse: two odd answers to drop
        r = c.prepare(b"s2", b"SELECT 2")
        assert r.status == pq.ExecStatus.COMMAND_OK, r.error_message
        c.finish()
        clients.assert_pooler_serves(p)
    finally:
        fake.close()


def test_answers_arriving_in_pieces_reach_the_client_in_order(pooler):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression split_ready_for_query): a
    ReadyForQuery (or an error) whose bytes arrive in pieces was looked at by the queue of answers
    once per piece, which took the next request's entry too: the ReadyForQuery was dropped as the
    answer to pgsluice's own Close, and the client waited for it forever."""
    def respond(t, body):
        return {b"P": _msg(b"1"), b"B": _msg(b"2"), b"E": _msg(b"C", b"SELECT 0\0"), b"S": _msg(b"Z", b"I"),
                b"C": _msg(b"3")}.get(t, b"")

    fake = FakeServer(respond=respond, bytewise=True)
    try:
        p = pooler({"pool_mode": "transaction", "workers": 1, "auth_type": "trust"},
                   dbs={"fakedb": "host=%s port=%d dbname=fakedb password=unused" % (HOST, fake.port)})
        with clients.raw_socket(p, timeout=10) as s:
            s.sendall(clients.startup_packet(database="fakedb"))
            got = b""
            while not got.endswith(_msg(b"Z", b"I")):
                chunk = s.recv(4096)
                assert chunk, got
                got += chunk
            batch = b""
            for name, sql in ((b"s1", b"SELECT 1"), (b"s2", b"SELECT 2")):
                batch += (_msg(b"P", name + b"\0" + sql + b"\0\0\0") + _msg(b"B", b"\0" + name + b"\0\0\0\0\0\0\0")
                          + _msg(b"E", b"\0\0\0\0\0") + _msg(b"S"))
            s.sendall(batch)
            want = (_msg(b"1") + _msg(b"2") + _msg(b"C", b"SELECT 0\0") + _msg(b"Z", b"I")) * 2
            got = b""
            while len(got) < len(want):
                chunk = s.recv(4096)
                assert chunk, got
                got += chunk
            assert got == want
    finally:
        fake.close()


def test_answer_pgsluice_gives_itself_waits_for_the_end_of_a_server_message_in_pieces(pooler):
    """Found by fuzzing (tests/fuzz/fuzz_extended_protocol.c, regression synth_inside_server_message):
    a CloseComplete pgsluice answers itself was written to the client when the client sent more,
    even while the server's previous answer (a RowDescription arriving in pieces) was only partly
    passed on: the client got it in the middle of that message."""
    cols = b"".join(b"column_%02d\0" % i + struct.pack("!IhIhih", 0, 0, 25, -1, -1, 0) for i in range(12))
    rowdesc = _msg(b"T", struct.pack("!H", 12) + cols)

    def respond(t, body):
        return {b"P": _msg(b"1"), b"D": _msg(b"t", b"\0\0") + rowdesc, b"S": _msg(b"Z", b"I"),
                b"C": _msg(b"3")}.get(t, b"")

    fake = FakeServer(respond=respond, bytewise=True)
    try:
        p = pooler({"pool_mode": "transaction", "workers": 1, "auth_type": "trust"},
                   dbs={"fakedb": "host=%s port=%d dbname=fakedb password=unused" % (HOST, fake.port)})
        with clients.raw_socket(p, timeout=10) as s:
            def read(n):
                got = b""
                while len(got) < n:
                    chunk = s.recv(n - len(got))
                    assert chunk, got
                    got += chunk
                return got

            s.sendall(clients.startup_packet(database="fakedb"))
            got = b""
            while not got.endswith(_msg(b"Z", b"I")):
                chunk = s.recv(4096)
                assert chunk, got
                got += chunk
            s.sendall(_msg(b"P", b"q\0SELECT 1\0\0\0") + _msg(b"S"))
            assert read(11) == _msg(b"1") + _msg(b"Z", b"I")
            s.sendall(_msg(b"P", b"\0SELECT 2\0\0\0") + _msg(b"D", b"S\0") + _msg(b"C", b"Sq\0") + _msg(b"H"))
            time.sleep(0.1)  # the RowDescription is arriving now, a byte per millisecond
            s.sendall(_msg(b"S"))
            want = _msg(b"1") + _msg(b"t", b"\0\0") + rowdesc + _msg(b"3") + _msg(b"Z", b"I")
            assert read(len(want)) == want
    finally:
        fake.close()


def test_server_offering_only_scram_plus_over_plaintext_is_refused(pooler):
    """SCRAM-SHA-256-PLUS binds to the TLS channel; a server that offers only it over a plaintext
    connection is not PostgreSQL (or is being impersonated): pgsluice refuses to log in, as libpq does,
    rather than answering with a mechanism the server did not offer."""
    fake = FakeServer(auth=_msg(b"R", struct.pack("!I", 10) + b"SCRAM-SHA-256-PLUS\0\0"))
    try:
        p = pooler({"server_tls_sslmode": "disable"},
                   dbs={"fakedb": "host=%s port=%d dbname=fakedb" % (HOST, fake.port)})
        with pytest.raises(psycopg.OperationalError) as e:
            with clients.connect(p, "fakedb") as c:
                c.execute("SELECT 1")
        assert "non-SSL" in str(e.value), str(e.value)
        assert all(t != b"p" for t, _ in fake.auth_answers), fake.auth_answers  # no SASLInitialResponse
        clients.assert_pooler_serves(p)
    finally:
        fake.close()


@pytest.mark.parametrize("skip", ["auth_ok", "ready"])
def test_server_that_skips_the_end_of_scram_is_not_believed(pooler, skip):
    """Found by fuzzing (tests/fuzz/fuzz_server_login.c, regressions auth_ok_before_scram_final and
    ready_without_auth_ok_after_sasl): a server that asked for SCRAM and then said AuthenticationOk
    without its server-final (without proving it knows the password: anyone in the middle could), or
    went straight to ReadyForQuery, was logged in to."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    sock.listen(4)
    logins = []

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            try:
                (n,) = struct.unpack("!I", _recv_exact(conn, 4))
                body = _recv_exact(conn, n - 4)
                if struct.unpack("!I", body[:4])[0] == 80877103:  # SSLRequest
                    conn.sendall(b"N")
                    (n,) = struct.unpack("!I", _recv_exact(conn, 4))
                    _recv_exact(conn, n - 4)
                conn.sendall(_msg(b"R", struct.pack("!I", 10) + b"SCRAM-SHA-256\0\0"))
                t = _recv_exact(conn, 1)
                (n,) = struct.unpack("!I", _recv_exact(conn, 4))
                logins.append(t + _recv_exact(conn, n - 4))
                ok = _msg(b"R", struct.pack("!I", 0)) if skip == "auth_ok" else b""
                conn.sendall(ok + _msg(b"K", struct.pack("!II", 1, 2)) + _msg(b"Z", b"I"))
                conn.recv(1024)
            except (ConnectionError, OSError):
                pass
            finally:
                conn.close()
    threading.Thread(target=serve, daemon=True).start()
    try:
        p = pooler({"server_login_retry": 1, "query_wait_timeout": 5},
                   dbs={"fakedb": "host=%s port=%d dbname=fakedb password=secret" % (HOST, sock.getsockname()[1])})
        with pytest.raises(psycopg.Error):
            with clients.connect(p, "fakedb") as c:
                c.execute("SELECT 1")
        assert logins and logins[0].startswith(b"p") and b"SCRAM-SHA-256" in logins[0], logins
        said = "before completing the SCRAM exchange" if skip == "auth_ok" else "ReadyForQuery before AuthenticationOk"
        assert said in open(p.log_path).read()
        clients.assert_pooler_serves(p)
    finally:
        sock.close()


class ScramStandIn(clients.StandInServer):
    """A stand-in server that asks for SCRAM-SHA-256 and answers client-first with `iterations`. When
    `complete` it checks the proof in client-final (deriving the keys itself, in parallel with pgsluice),
    signs server-final and logs pgsluice in, then answers each Query with `SELECT 0`. Events:
    first_sent (server-first is out), final_received (client-final arrived)."""

    PASSWORD = "secret"

    def __init__(self, iterations, complete=True):
        self.iterations = iterations
        self.complete = complete
        self.first_sent = threading.Event()
        self.final_received = threading.Event()
        self.proof_ok = None
        super().__init__(backlog=4)

    @staticmethod
    def _read(conn):
        t = _recv_exact(conn, 1)
        (n,) = struct.unpack("!I", _recv_exact(conn, 4))
        return t, _recv_exact(conn, n - 4)

    def _serve(self, conn, n):
        import base64
        import hashlib
        import hmac
        try:
            (n,) = struct.unpack("!I", _recv_exact(conn, 4))
            body = _recv_exact(conn, n - 4)
            if struct.unpack("!I", body[:4])[0] == 80877103:  # SSLRequest
                conn.sendall(b"N")
                (n,) = struct.unpack("!I", _recv_exact(conn, 4))
                _recv_exact(conn, n - 4)
            conn.sendall(_msg(b"R", struct.pack("!I", 10) + b"SCRAM-SHA-256\0\0"))
            t, body = self._read(conn)  # SASLInitialResponse: mechanism, length, client-first
            mech_end = body.index(b"\0")
            client_first = body[mech_end + 5:].decode()
            client_first_bare = client_first[client_first.index("n=", 3):]
            nonce = client_first_bare.split("r=", 1)[1] + "standin"
            salt = b"pgsluice-salt"
            server_first = "r=%s,s=%s,i=%d" % (nonce, base64.b64encode(salt).decode(), self.iterations)
            conn.sendall(_msg(b"R", struct.pack("!I", 11) + server_first.encode()))
            self.first_sent.set()
            keys = {}
            if self.complete:  # what pgsluice derives, derived here too meanwhile
                def derive():
                    salted = hashlib.pbkdf2_hmac("sha256", self.PASSWORD.encode(), salt, self.iterations)
                    keys["ck"] = hmac.new(salted, b"Client Key", "sha256").digest()
                    keys["sk"] = hmac.new(salted, b"Server Key", "sha256").digest()
                deriving = threading.Thread(target=derive, daemon=True)
                deriving.start()
            t, body = self._read(conn)
            self.final_received.set()
            if not self.complete:
                conn.sendall(_msg(b"E", b"SFATAL\0C28P01\0Mstand-in: not logging anyone in\0\0"))
                return
            deriving.join()
            client_final = body.decode()
            without_proof, proof = client_final.rsplit(",p=", 1)
            auth_msg = ",".join((client_first_bare, server_first, without_proof)).encode()
            stored = hashlib.sha256(keys["ck"]).digest()
            sig = hmac.new(stored, auth_msg, "sha256").digest()
            self.proof_ok = bytes(a ^ b for a, b in zip(keys["ck"], sig)) == base64.b64decode(proof)
            if not self.proof_ok:
                conn.sendall(_msg(b"E", b"SFATAL\0C28P01\0Mstand-in: wrong SCRAM proof\0\0"))
                return
            server_sig = base64.b64encode(hmac.new(keys["sk"], auth_msg, "sha256").digest())
            welcome = _msg(b"R", struct.pack("!I", 12) + b"v=" + server_sig) + _msg(b"R", struct.pack("!I", 0))
            for k, v in (("server_version", "15.0"), ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
                         ("TimeZone", "UTC"), ("integer_datetimes", "on"), ("standard_conforming_strings", "on")):
                welcome += _msg(b"S", k.encode() + b"\0" + v.encode() + b"\0")
            conn.sendall(welcome + _msg(b"K", struct.pack("!II", 1234, 5678)) + _msg(b"Z", b"I"))
            while True:
                t, body = self._read(conn)
                if t == b"X":
                    return
                if t == b"Q":
                    conn.sendall(_msg(b"C", b"SELECT 0\0") + _msg(b"Z", b"I"))
                elif t == b"S":
                    conn.sendall(_msg(b"Z", b"I"))
        except (ConnectionError, OSError, ValueError):
            return
        finally:
            conn.close()


def _in_thread(fn):
    """Run fn in a thread; returns (thread, outcome dict: "result" or "error")."""
    outcome = {}

    def run():
        try:
            outcome["result"] = fn()
        except Exception as e:  # noqa: BLE001 - the test looks at it
            outcome["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, outcome


def _wait(event, what, timeout=60):
    assert event.wait(timeout), "timed out waiting for " + what


def test_slow_scram_key_derivation_does_not_stall_the_worker(pooler):
    """Issue 14: a server that answers SCRAM with a large iteration count made pgsluice compute PBKDF2
    on the worker's thread, and every client of that worker waited meanwhile. The derivation runs in
    libuv's thread pool: on a single worker, another client's queries and a new client's login are
    answered while the slow login is still deriving (the stand-in has not received client-final yet),
    and the slow login then completes with the right proof."""
    fake = ScramStandIn(iterations=5_000_000)  # a few seconds of PBKDF2 (the limit is 10,000,000)
    try:
        p = pooler({"workers": 1, "server_connect_timeout": 120, "query_wait_timeout": 120},
                   dbs={"slowdb": "host=%s port=%d dbname=slowdb password=%s" % (HOST, fake.port, fake.PASSWORD)})
        with clients.connect(p) as other:  # logged in, with its server, before the slow login starts
            assert other.execute("SELECT 1").fetchone()[0] == 1

            def slow_login():  # its connect waits for the server login (ASan and a busy machine: give it time)
                with clients.connect(p, "slowdb", connect_timeout=180) as c:
                    c.execute("SELECT 1")
                return "answered"
            slow, outcome = _in_thread(slow_login)
            _wait(fake.first_sent, "the stand-in's server-first")
            assert other.execute("SELECT 2").fetchone()[0] == 2
            with clients.connect(p) as newcomer:
                assert newcomer.execute("SELECT 3").fetchone()[0] == 3
            assert not fake.final_received.is_set(), "the derivation ended before the other clients were served"
        slow.join(180)
        assert not slow.is_alive(), "the slow login never finished"
        assert outcome.get("result") == "answered", outcome
        assert fake.proof_ok is True
        clients.assert_pooler_serves(p)
    finally:
        fake.close()


def test_absurd_scram_iteration_count_is_refused_with_a_clear_error(pooler):
    """A server asking for 2,000,000,000 PBKDF2 iterations (a quarter of an hour of CPU per login) is
    refused before any derivation: its client gets an error saying why, the log says so, and nothing
    is sent back to the server."""
    fake = ScramStandIn(iterations=2_000_000_000, complete=False)
    try:
        p = pooler({"workers": 1, "server_login_retry": 1},
                   dbs={"slowdb": "host=%s port=%d dbname=slowdb password=%s" % (HOST, fake.port, fake.PASSWORD)})
        with pytest.raises(psycopg.Error) as e:
            with clients.connect(p, "slowdb") as c:
                c.execute("SELECT 1")
        assert "SCRAM iterations" in str(e.value), str(e.value)
        assert "server asks for 2000000000 SCRAM iterations" in open(p.log_path).read()
        assert not fake.final_received.is_set()
        clients.assert_pooler_serves(p)
    finally:
        fake.close()


def test_server_closed_while_its_scram_keys_are_derived(pooler):
    """server_connect_timeout closes a server connection whose SCRAM keys are still being derived in
    the thread pool: its client gets the timeout error, and the derivation, when it ends, finds the
    connection gone (no use of freed memory: the sanitizer builds run this) and the pooler serves on."""
    fake = ScramStandIn(iterations=8_000_000, complete=False)
    try:
        p = pooler({"workers": 1, "server_connect_timeout": 1, "server_login_retry": 1, "verbose": 1},
                   dbs={"slowdb": "host=%s port=%d dbname=slowdb password=%s" % (HOST, fake.port, fake.PASSWORD)})
        with pytest.raises(psycopg.Error) as e:
            with clients.connect(p, "slowdb") as c:
                c.execute("SELECT 1")
        assert "server_connect_timeout" in str(e.value), str(e.value)
        deadline = time.monotonic() + 120
        said = re.compile(r"SCRAM key derivation (finished|cancelled) after its server connection closed")
        while not said.search(open(p.log_path).read()):
            assert time.monotonic() < deadline, "the derivation never ended\n" + p.describe()
            time.sleep(0.1)
        assert not fake.final_received.is_set()
        clients.assert_pooler_serves(p)
    finally:
        fake.close()
