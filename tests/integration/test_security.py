"""Security: nothing is created for someone who has not logged in, cancels reach only their own
query, auth_type trust still needs a known user, and a refused login says nothing about which
databases exist."""
import os
import random
import re
import socket
import subprocess
import threading

import psycopg
import pytest

from admin_helpers import admin_pooler, show
from harness import clients
from harness.util import wait_for


def _running(p, text):
    with clients.direct(p.cluster, "appdb") as d:
        return d.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND state = 'active'"
                         " AND pid <> pg_backend_pid()", ("%" + text + "%",)).fetchone()[0] > 0


def test_cancel_racing_the_end_of_a_query_never_cancels_another_clients_statement(pooler):
    """Client A's cancel is sent as A's query ends; client B's query goes to the same server (a pool
    of 1) right after. The cancel may stop A's query, never B's."""
    p = pooler({"pool_mode": "transaction", "default_pool_size": 1})
    a, b = clients.connect(p), clients.connect(p)
    hit_b, cancelled_a = 0, 0
    for i in range(1000):
        t = threading.Timer(random.uniform(0.001, 0.004), a.cancel)
        t.start()
        try:
            a.execute("SELECT pg_sleep(0.003)")
        except psycopg.errors.QueryCanceled:
            cancelled_a += 1
        try:
            b.execute("SELECT pg_sleep(0.006)")
        except psycopg.errors.QueryCanceled:
            hit_b += 1
        t.join()
    assert hit_b == 0, "%d of client B's statements were cancelled by client A's cancels" % hit_b
    # the cancels do reach A's own queries (how many of the racing ones did, cancelled_a, depends on
    # timing, which load changes): one sent while A's query surely runs stops it
    t = threading.Thread(target=lambda: (wait_for(lambda: _running(p, "pg_sleep(30)"), timeout=20), a.cancel()))
    t.start()
    with pytest.raises(psycopg.errors.QueryCanceled):
        a.execute("SELECT pg_sleep(30)")
    t.join()
    assert a.execute("SELECT 1").fetchone() == (1,)
    a.close()
    b.close()


@pytest.mark.pgsluice_only
def test_trust_refuses_a_user_missing_from_auth_file(pooler):
    p = pooler({"auth_type": "trust"})
    with clients.connect(p, user="plainuser", password="") as c:  # in the auth file (plain: the server login works)
        assert c.execute("SELECT current_user").fetchone() == ("plainuser",)
    sqlstate, msg = clients.login_error(p, user="nosuchuser", password="x")
    assert sqlstate == "28000"
    assert "trust" in msg and "nosuchuser" in msg


@pytest.mark.pgsluice_only
def test_wrong_password_gets_the_same_answer_for_a_missing_database_as_for_an_existing_one(pooler):
    p = pooler()
    known = clients.login_error(p, db="appdb", user="app", password="wrong")
    missing = clients.login_error(p, db="no_such_db", user="app", password="wrong")
    assert known[0] == missing[0] == "28P01"
    assert known[1] == missing[1]
    # with the right password the client learns it, as it would from PostgreSQL
    assert clients.login_error(p, db="no_such_db")[0] == "3D000"


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def send_startup(p, user):
    s = socket.create_connection((p.host, p.port), timeout=5)
    try:
        s.sendall(clients.startup_packet(user=user, database="appdb"))
        s.recv(4096)  # the password request (or an error)
    finally:
        s.close()


@pytest.mark.pgsluice_only
def test_thousands_of_unknown_or_binary_user_names_create_no_pool_and_leave_monitoring_clean(pooler, tmp_path):
    from test_http import get_json, http_get, http_pooler
    p = http_pooler(pooler, {"min_pool_size": 5, "max_client_conn": 10000, "log_connections": 1})
    clients.assert_pooler_serves(p)
    before_pools = len(show(p, "POOLS"))
    before_rss = rss_kb(p.pid)
    names = ["ghost%d" % i for i in range(4990)]
    names += [b"\xff\xfe", b"evil\nLOG fake line", b"quote\"back\\slash", b"\x01ctl", b"x" * 63]
    for name in names:
        send_startup(p, name)
    assert len(show(p, "POOLS")) == before_pools
    if not os.environ.get("ASAN_OPTIONS"):  # ASan keeps freed memory in quarantine: RSS says nothing there
        assert rss_kb(p.pid) - before_rss < 8 * 1024, "RSS grew by %d kB" % (rss_kb(p.pid) - before_rss)
    status, health = get_json(p.http_port, "/health")
    assert status == 200 and health["pools"] == before_pools - 1  # SHOW POOLS also lists the console
    assert http_get(p.http_port, "/ready")[0] == 200
    status, _, metrics = http_get(p.http_port, "/metrics")
    assert status == 200 and "ghost" not in metrics
    prom = tmp_path / "metrics.txt"
    prom.write_text(metrics)
    r = subprocess.run(["promtool", "check", "metrics"], stdin=open(prom, "rb"), capture_output=True)
    assert r.returncode == 0, r.stdout + r.stderr
    log = p.log_text()
    assert not any(line.startswith("LOG fake line") for line in log.splitlines())
    clients.assert_pooler_serves(p)
