"""Zero-downtime restart: `pgsluice --takeover` (-R) takes the listening sockets and every client and
server connection over from the running process (src/core/takeover_*.c, docs/OPERATIONS.md).

Each test starts a pooler, then a second pgsluice with --takeover on the same config; the harness's
Pooler object is pointed at the new process once the old one has exited."""
import os
import re
import signal
import subprocess
import threading
import time

import psycopg
import pytest

from harness import clients
from harness.pooler import Pooler, pooler_binary
from harness.util import wait_for

from admin_helpers import console

pytestmark = pytest.mark.pgsluice_only


def start_takeover(p, env=None, timeout=30):
    """Start `pgsluice --takeover` on p's config, logging into p's log file."""
    e = dict(os.environ)
    e.update(env or {})
    log = open(p.log_path, "ab")
    proc = subprocess.Popen([pooler_binary(), "--takeover", "--takeover-timeout", str(timeout), p.ini_path],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=p.dir,
                            start_new_session=True, env=e)
    log.close()
    return proc


def complete_takeover(p, proc, timeout=30):
    """Wait until the old process has exited (code 0) and the new one runs; p then is the new one."""
    old = p.proc
    try:
        old.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the old process did not exit after the takeover\n" + p.describe(60))
    assert old.returncode == 0, "old process exit code %s\n%s" % (old.returncode, p.describe(60))
    assert proc.poll() is None, "the new process exited (%s)\n%s" % (proc.returncode, p.describe(60))
    p.proc = proc
    return proc


def totals(p):
    with console(p) as c:
        rows = c.execute("SHOW STATS").fetchall()
    return sum(int(r["total_xact_count"]) for r in rows if r["database"] == "appdb")


@pytest.fixture(scope="module")
def pgbench_tables(cluster, session_dir):
    p = Pooler(cluster, session_dir).start()
    try:
        result = clients.pgbench(p, "-i", "-s", "1", "-q")
    finally:
        p.stop()
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("protocol", [pytest.param("extended", marks=pytest.mark.core), "prepared", "simple"])
def test_takeover_under_pgbench_load_loses_no_transaction(pgbench_tables, pooler, protocol):
    p = pooler({"pool_mode": "transaction", "default_pool_size": 10})
    bench = subprocess.Popen(
        [os.path.join(clients.PG_BINDIR, "pgbench"), "-h", p.host, "-p", str(p.port), "-U", "app", "-M", protocol,
         "-c", "100", "-j", "2", "-T", "6", "-n", "appdb"],
        env=clients._env(p, "app", None), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # in the middle of the run: once transactions are flowing
        wait_for(lambda: totals(p) > 200, timeout=15, what="pgbench transactions through the old process")
        old_pid = p.proc.pid
        new = start_takeover(p)
        complete_takeover(p, new)
        assert p.proc.pid != old_pid
        before = totals(p)  # SHOW STATS of the new process: counters start again (documented)
        out, err = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
    text = out + err
    detail = "pgbench exit %s\n%s\n%s" % (bench.returncode, text[-3000:], p.describe(60))
    assert bench.returncode == 0, detail
    failed = re.search(r"number of failed transactions: (\d+)", text)
    assert failed and int(failed.group(1)) == 0, detail
    # the clients went on through the new process: it counted transactions of its own
    assert totals(p) > before, detail
    # every pgbench client was handed over (none reconnected: pgbench runs without -C)
    took = re.search(r"took over (\d+) clients", p.log_text())
    assert took and int(took.group(1)) >= 100, p.describe(40)


def test_takeover_waits_for_a_transaction_in_progress(pooler):
    p = pooler({"pool_mode": "transaction"})
    c = psycopg.connect(p.dsn("appdb", "app"), prepare_threshold=None)
    c.execute("BEGIN")
    pid_in_xact = c.execute("SELECT pg_backend_pid()").fetchone()[0]
    new = start_takeover(p)
    # the old process waits: the transaction is still open
    wait_for(lambda: "waiting for 1 connection" in p.log_text(), timeout=10, what="the takeover to wait")
    assert p.proc.poll() is None and new.poll() is None
    assert c.execute("SELECT pg_backend_pid()").fetchone()[0] == pid_in_xact
    c.execute("COMMIT")
    complete_takeover(p, new)
    # the same client connection goes on through the new process
    assert c.execute("SELECT 41 + 1").fetchone()[0] == 42
    c.execute("BEGIN")
    c.execute("SELECT 1")
    c.execute("COMMIT")
    c.close()


def test_takeover_that_times_out_leaves_the_old_process_serving(pooler):
    p = pooler({"pool_mode": "transaction"})
    c = psycopg.connect(p.dsn("appdb", "app"), prepare_threshold=None)
    c.execute("BEGIN")
    c.execute("SELECT 1")
    new = start_takeover(p, timeout=1)
    assert new.wait(30) != 0
    assert "still not between transactions" in p.log_text()
    assert p.proc.poll() is None
    c.execute("COMMIT")
    assert c.execute("SELECT 2").fetchone()[0] == 2
    with psycopg.connect(p.dsn("appdb", "app")) as c2:
        assert c2.execute("SELECT 3").fetchone()[0] == 3
    c.close()


@pytest.mark.core
def test_takeover_that_dies_halfway_leaves_the_old_process_serving(pooler):
    p = pooler({"pool_mode": "transaction"})
    conns = [psycopg.connect(p.dsn("appdb", "app"), autocommit=True, prepare_threshold=None) for _ in range(5)]
    for c in conns:
        c.execute("SELECT 1")
    new = start_takeover(p, env={"PGSLUICE_TAKEOVER_TEST_EXIT_AFTER_FDS": "3"})
    assert new.wait(30) == 3, p.describe(40)
    wait_for(lambda: "takeover called off, serving again" in p.log_text(), timeout=60,
             what="the old process to resume")
    assert p.proc.poll() is None
    # the clients it kept go on, and new ones get in
    for i, c in enumerate(conns):
        assert c.execute("SELECT %s::int", (i,)).fetchone()[0] == i
    with psycopg.connect(p.dsn("appdb", "app")) as c2:
        assert c2.execute("SELECT 7").fetchone()[0] == 7
    # and a later takeover still works
    new = start_takeover(p)
    complete_takeover(p, new)
    for i, c in enumerate(conns):
        assert c.execute("SELECT %s::int + 1", (i,)).fetchone()[0] == i + 1
        c.close()


@pytest.mark.core
def test_session_client_with_listen_keeps_its_server(pooler, direct):
    p = pooler({"pool_mode": "session"})
    c = psycopg.connect(p.dsn("appdb", "app"), autocommit=True, prepare_threshold=None)
    got = []
    c.add_notify_handler(lambda n: got.append((n.channel, n.payload)))
    backend = c.execute("SELECT pg_backend_pid()").fetchone()[0]
    c.execute("LISTEN takeover_chan")
    c.execute("SET application_name = 'kept_across_takeover'")
    new = start_takeover(p)
    complete_takeover(p, new)
    assert c.execute("SELECT pg_backend_pid()").fetchone()[0] == backend
    assert c.execute("SHOW application_name").fetchone()[0] == "kept_across_takeover"
    with direct("appdb") as d:
        d.autocommit = True
        d.execute("NOTIFY takeover_chan, 'after'")
    # the notification reaches it through the same server connection, now under the new process
    wait_for(lambda: c.execute("SELECT 1") and got, timeout=10, what="the notification")
    assert got == [("takeover_chan", "after")]
    c.close()


def test_takeover_keeps_prepared_statements_and_cancel(pooler):
    p = pooler({"pool_mode": "transaction", "max_prepared_statements": 100})
    c = psycopg.connect(p.dsn("appdb", "app"), autocommit=True, prepare_threshold=0)
    for i in range(3):
        assert c.execute("SELECT %s::int * 2", (i,)).fetchone()[0] == i * 2
    new = start_takeover(p)
    complete_takeover(p, new)
    for i in range(3, 6):
        assert c.execute("SELECT %s::int * 2", (i,)).fetchone()[0] == i * 2
    # the cancel key it got from the old process still works
    t = threading.Timer(0.5, c.cancel)
    t.start()
    with pytest.raises(psycopg.errors.QueryCanceled):
        c.execute("SELECT pg_sleep(20)")
    t.join()
    assert c.execute("SELECT 1").fetchone()[0] == 1
    c.close()


def test_takeover_refused_to_a_non_console_peer(pooler):
    p = pooler({"pool_mode": "transaction"})
    with console(p) as adm:  # over TCP as an admin user, not the Unix-socket peer
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="only allowed"):
            adm.execute("TAKEOVER")
    assert p.proc.poll() is None


def test_console_upgrade_starts_the_new_process_which_takes_over(pooler):
    """UPGRADE (the systemd path): the running process starts `<its binary> --takeover` itself."""
    p = pooler({"pool_mode": "transaction"})
    c = psycopg.connect(p.dsn("appdb", "app"), autocommit=True, prepare_threshold=None)
    assert c.execute("SELECT 1").fetchone()[0] == 1
    old = p.proc
    with console(p) as adm:
        adm.execute("UPGRADE 30")
    new_pid = None
    try:
        old.wait(30)
        assert old.returncode == 0, p.describe(40)
        p.returncode = 0  # the old process's exit is the point; the new one is stopped below
        m = re.search(r"takeover: process (\d+) took over", p.log_text())
        assert m, p.describe(40)
        new_pid = int(m.group(1))
        assert new_pid != old.pid
        os.kill(new_pid, 0)  # it runs
        assert c.execute("SELECT 2").fetchone()[0] == 2
        with psycopg.connect(p.dsn("appdb", "app")) as c2:
            assert c2.execute("SELECT 3").fetchone()[0] == 3
        c.close()
    finally:
        if new_pid:
            os.kill(new_pid, signal.SIGINT)
            wait_for(lambda: not os.path.exists("/proc/%d" % new_pid) or
                     open("/proc/%d/stat" % new_pid).read().split()[2] == "Z",
                     timeout=15, what="the upgraded process to stop")


@pytest.fixture(scope="module")
def tls_certs(session_dir):
    d = os.path.join(session_dir, "takeover-certs")
    os.makedirs(d, exist_ok=True)
    make_certs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit", "tls", "make-certs.sh")
    subprocess.run(["sh", make_certs, d], check=True, capture_output=True)
    for f in os.listdir(d):
        if f.endswith(".key"):
            os.chmod(os.path.join(d, f), 0o600)
    return d


def test_tls_client_is_closed_with_57P01_and_plaintext_clients_are_kept(pooler, tls_certs):
    """A TLS session cannot leave OpenSSL: the client is told (57P01) and closed between transactions;
    it reconnects to the new process."""
    p = pooler({"pool_mode": "transaction", "client_tls_sslmode": "prefer",
                "client_tls_key_file": os.path.join(tls_certs, "server.key"),
                "client_tls_cert_file": os.path.join(tls_certs, "server.crt")})
    tls = psycopg.connect(p.dsn("appdb", "app", sslmode="require"), autocommit=True)
    plain = psycopg.connect(p.dsn("appdb", "app", sslmode="disable"), autocommit=True)
    assert tls.pgconn.ssl_in_use and not plain.pgconn.ssl_in_use
    assert tls.execute("SELECT 1").fetchone()[0] == 1
    new = start_takeover(p)
    complete_takeover(p, new)
    assert plain.execute("SELECT 2").fetchone()[0] == 2
    with pytest.raises(psycopg.OperationalError) as e:
        tls.execute("SELECT 3")
    assert "could not be handed over" in str(e.value), str(e.value)
    with psycopg.connect(p.dsn("appdb", "app", sslmode="require"), autocommit=True) as again:
        assert again.pgconn.ssl_in_use
        assert again.execute("SELECT 4").fetchone()[0] == 4
    plain.close()
    tls.close()


def test_replication_connection_is_not_waited_for_and_closed_with_57P01(pooler):
    """A walsender connection is never between transactions: the takeover goes on without it and it is
    told to reconnect (to the new process)."""
    p = pooler({"pool_mode": "transaction"})
    repl = psycopg.connect(p.dsn("appdb", "postgres", replication="database"), autocommit=True)
    assert repl.execute("IDENTIFY_SYSTEM").fetchone()[0]
    plain = psycopg.connect(p.dsn("appdb", "app"), autocommit=True)
    assert plain.execute("SELECT 1").fetchone()[0] == 1
    new = start_takeover(p)
    complete_takeover(p, new)
    assert plain.execute("SELECT 2").fetchone()[0] == 2
    with pytest.raises(psycopg.OperationalError) as e:
        repl.execute("IDENTIFY_SYSTEM")
    assert "replication connections are not" in str(e.value), str(e.value)
    with psycopg.connect(p.dsn("appdb", "postgres", replication="database"), autocommit=True) as again:
        assert again.execute("IDENTIFY_SYSTEM").fetchone()[0]
    plain.close()
    repl.close()


def test_client_pinned_by_session_state_is_closed_with_57p01_and_its_state_released(pooler, direct):
    """Transaction mode: a client holding an advisory lock is pinned to its server (pin_session_state).
    That state cannot be carried to the new process: the client is told (57P01), its server is closed
    (the lock goes with the backend, it never reaches another client), plain clients are kept."""
    p = pooler({"pool_mode": "transaction", "default_pool_size": 2})
    key = 424200 + os.getpid() % 1000
    pinned = psycopg.connect(p.dsn("appdb", "app"), autocommit=True)
    pinned.execute("SELECT pg_advisory_lock(%s)" % key)
    plain = psycopg.connect(p.dsn("appdb", "app"), autocommit=True)
    assert plain.execute("SELECT 1").fetchone()[0] == 1

    def lock_held():
        with direct("appdb") as d:
            return d.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                             (key,)).fetchone()[0]
    assert lock_held() == 1
    new = start_takeover(p)
    complete_takeover(p, new)
    assert plain.execute("SELECT 2").fetchone()[0] == 2
    with pytest.raises(psycopg.OperationalError) as e:
        pinned.execute("SELECT 1")
    assert "session state pinned to its server" in str(e.value), str(e.value)
    wait_for(lambda: lock_held() == 0, timeout=15, what="the pinned server closed, its lock released")
    with psycopg.connect(p.dsn("appdb", "app"), autocommit=True) as again:
        assert again.execute("SELECT pg_try_advisory_lock(%s)" % key).fetchone()[0] is True
    plain.close()
    pinned.close()
