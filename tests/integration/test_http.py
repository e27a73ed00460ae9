"""The built-in HTTP endpoint: /health (and /), /live, /ready, /pools, /stats, error answers and the
bearer token. Metrics are in test_http_metrics.py. Helpers here are shared by the other test_http*
and test_monitoring* modules."""
import http.client
import json
import re
import socket
import threading

import pytest

from harness import clients
from harness.util import HOST, free_port, port_is_open, wait_for

pytestmark = pytest.mark.pgsluice_only

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def http_get(port, path, token=None, method="GET"):
    """(status, headers dict with lower-case names, body text) of one request to 127.0.0.1:port."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = {"Authorization": "Bearer " + token} if token else {}
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode("utf-8")
    finally:
        conn.close()


def get_json(port, path, token=None):
    status, headers, body = http_get(port, path, token)
    assert headers["content-type"] == "application/json; charset=utf-8", headers
    return status, json.loads(body)


def http_pooler(pooler, settings=None, **kw):
    """A pgsluice with its HTTP endpoint on a free port (attribute http_port)."""
    port = free_port()
    p = pooler(dict(settings or {}, http_port=port), **kw)
    p.http_port = port
    # the harness waits for the PostgreSQL port; the HTTP server starts just after the workers
    wait_for(lambda: port_is_open(port), timeout=10, what="the HTTP port")
    return p


def raw_http(port, data):
    """Send raw bytes, return the status line of the answer ('' if the connection closed silently)."""
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(data)
        got = b""
        while b"\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    return got.split(b"\r\n")[0].decode("latin-1")


def pool_detail(doc, db, user="app"):
    found = [p for p in doc["pool_details"] if p["database"] == db and p["user"] == user]
    return found[0] if found else None


def test_health_serves_the_guide_document_with_structured_pool_details(pooler):
    p = http_pooler(pooler)
    clients.assert_pooler_serves(p)
    status, doc = get_json(p.http_port, "/health")
    assert status == 200, doc
    assert doc["status"] == "healthy", doc
    assert RFC3339_UTC.match(doc["timestamp"]), doc["timestamp"]
    for key in ("pools", "clients", "servers", "databases"):
        assert isinstance(doc[key], int), (key, doc)
    assert doc["messages"] == []
    assert doc["databases"] == len(p.dbs)
    pool = pool_detail(doc, "appdb")
    assert pool is not None, doc["pool_details"]
    assert pool["pool_mode"] == "transaction" and pool["pool_size"] == 5 and pool["cl_waiting"] == 0
    wait_for(lambda: (lambda d: d["sv_idle"] + d["sv_used"] >= 1)(pool_detail(get_json(p.http_port, "/health")[1], "appdb")),
             timeout=5, what="the server back in the idle list")
    assert all(b["reachable"] for b in doc["backends"]), doc["backends"]
    assert any("replica lag" in r for r in doc["rules"]["not_checked"])


def test_root_path_serves_the_health_document(pooler):
    p = http_pooler(pooler)
    status, doc = get_json(p.http_port, "/")
    assert status == 200 and doc["status"] == "healthy", doc


def test_live_and_ready_answer_200_while_running_with_backends_up(pooler):
    p = http_pooler(pooler)
    status, doc = get_json(p.http_port, "/live")
    assert status == 200 and doc["status"] == "alive", doc
    status, doc = get_json(p.http_port, "/ready")
    assert status == 200 and doc["ready"] is True, doc


def test_health_is_503_while_a_backend_is_unreachable_and_200_once_it_returns(pooler, cluster):
    good = "host=%s port=%d dbname=appdb" % (HOST, cluster.primary_port)
    p = http_pooler(pooler, {"server_login_retry": 1}, dbs={"flaky": good})
    clients.assert_pooler_serves(p, db="flaky")
    assert get_json(p.http_port, "/health")[0] == 200

    p.dbs["flaky"] = "host=%s port=%d dbname=appdb" % (HOST, free_port())  # nothing listens there
    p.reload()
    status, doc = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(get_json(p.http_port, "/health")),
                           timeout=10, what="/health to turn 503")
    assert doc["status"] == "unhealthy"
    assert any("flaky" in m and "unreachable" in m for m in doc["messages"]), doc["messages"]
    assert [b for b in doc["backends"] if b["database"] == "flaky"][0]["reachable"] is False
    assert get_json(p.http_port, "/ready")[0] == 503
    assert get_json(p.http_port, "/live")[0] == 200

    p.dbs["flaky"] = good
    p.reload()
    wait_for(lambda: get_json(p.http_port, "/health")[0] == 200, timeout=15, what="/health back to 200")
    assert get_json(p.http_port, "/ready")[0] == 200
    clients.assert_pooler_serves(p, db="flaky")


def test_health_is_503_while_server_logins_fail_within_server_login_retry(pooler, cluster):
    bad = "host=%s port=%d dbname=no_such_database" % (HOST, cluster.primary_port)
    p = http_pooler(pooler, {"server_login_retry": 30}, dbs={"nodb": bad})
    assert get_json(p.http_port, "/health")[0] == 200  # the port answers; no login tried yet
    with pytest.raises(Exception):
        clients.connect(p, db="nodb").execute("SELECT 1")
    status, doc = get_json(p.http_port, "/health")
    assert status == 503, doc
    assert any("nodb" in m and "login failed" in m for m in doc["messages"]), doc["messages"]


def test_degraded_when_utilization_is_over_80_percent_and_unhealthy_when_waiters_wait_too_long(pooler):
    p = http_pooler(pooler, {"default_pool_size": 1})
    holder = clients.connect(p, autocommit=False)
    holder.execute("SELECT 1")  # an open transaction keeps the only server busy
    try:
        status, doc = get_json(p.http_port, "/health")
        assert status == 200 and doc["status"] == "degraded", doc
        assert any("utilization" in m for m in doc["messages"]), doc["messages"]

        waiter = threading.Thread(target=lambda: clients.connect(p).execute("SELECT 1").close(), daemon=True)
        waiter.start()
        wait_for(lambda: pool_detail(get_json(p.http_port, "/health")[1], "appdb")["cl_waiting"] == 1,
                 timeout=10, what="a waiting client")
        status, doc = get_json(p.http_port, "/health?maxwait=0")
        assert status == 503 and doc["status"] == "unhealthy", doc
        assert any("100%" in m for m in doc["messages"]), doc["messages"]
        pool = pool_detail(doc, "appdb")
        assert pool["maxwait_seconds"] > 0 and pool["status"] == "unhealthy"
        assert get_json(p.http_port, "/health")[0] == 200  # default threshold: 5 s
    finally:
        holder.rollback()
        holder.close()
    waiter.join(10)


def test_pools_and_stats_json_use_show_pools_and_show_stats_columns(pooler):
    p = http_pooler(pooler)
    with clients.connect(p) as c:
        c.execute("SELECT 1")
        c.execute("SELECT 2")
    status, pools = get_json(p.http_port, "/pools")
    assert status == 200
    row = [r for r in pools if r["database"] == "appdb" and r["user"] == "app"][0]
    for col in ("cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "sv_login", "maxwait", "maxwait_us",
                "pool_mode"):
        assert col in row, (col, row)
    status, stats = get_json(p.http_port, "/stats")
    assert status == 200
    row = wait_for(lambda: [r for r in get_json(p.http_port, "/stats")[1]
                            if r["database"] == "appdb" and r["total_query_count"] >= 2], timeout=5,
                   what="flushed stats")[0]
    for col in ("total_xact_count", "total_query_count", "total_received", "total_sent", "total_xact_time",
                "total_query_time", "total_wait_time"):
        assert isinstance(row[col], int), (col, row)
    assert row["total_received"] > 0 and row["total_sent"] > 0


def test_unknown_path_is_404_and_other_methods_are_405(pooler):
    p = http_pooler(pooler)
    status, _, body = http_get(p.http_port, "/nope")
    assert status == 404 and json.loads(body)["error"]
    status, headers, _ = http_get(p.http_port, "/health", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("request_bytes", [
    b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nthis line has no colon\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n",
    b"GET /" + b"a" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["bad-content-length", "header-without-colon", "huge-header", "huge-uri"])
def test_malformed_request_gets_a_4xx_answer(pooler, request_bytes):
    p = http_pooler(pooler)
    line = raw_http(p.http_port, request_bytes)
    assert re.match(r"HTTP/1\.[01] 4\d\d ", line), line
    assert get_json(p.http_port, "/live")[0] == 200  # still serving


def test_bearer_token_is_required_when_set_and_follows_reload(pooler):
    p = http_pooler(pooler, {"http_token": "s3cret"})
    for token in (None, "wrong", "s3cre", "s3cret2"):
        status, headers, _ = http_get(p.http_port, "/metrics", token=token)
        assert status == 401, token
        assert headers["www-authenticate"].startswith("Bearer")
    assert http_get(p.http_port, "/health", token="s3cret")[0] == 200
    assert http_get(p.http_port, "/nope", token="wrong")[0] == 401
    p.reload({"http_token": "other"})
    assert http_get(p.http_port, "/live", token="s3cret")[0] == 401
    assert http_get(p.http_port, "/live", token="other")[0] == 200


def listening_tcp_ports(pid):
    """TCP ports the process listens on (from /proc: its socket inodes in LISTEN state)."""
    import os
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def test_http_port_0_turns_the_endpoint_off(pooler):
    p = pooler({"http_port": 0})
    clients.assert_pooler_serves(p)
    assert listening_tcp_ports(p.pid) == {p.port}
    q = http_pooler(pooler)
    assert listening_tcp_ports(q.pid) == {q.port, q.http_port}


@pytest.mark.pgsluice_only
def test_a_taken_http_port_is_logged_and_sql_is_served(pooler):
    """Monitoring never stops SQL traffic: the address, port and reason are logged, the pooler serves."""
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        p = pooler({"http_port": port})
        clients.assert_pooler_serves(p)
        wait_for(lambda: "http: cannot listen on 127.0.0.1:%d: Address already in use" % port in p.log_text(),
                 timeout=10)
    finally:
        blocker.close()


@pytest.mark.pgsluice_only
def test_with_so_reuseport_two_pgsluice_processes_share_the_http_port(pooler):
    port = free_port()
    a = pooler({"http_port": port, "so_reuseport": 1})
    b = pooler({"http_port": port, "so_reuseport": 1})
    for p in (a, b):
        clients.assert_pooler_serves(p)
        assert "cannot listen" not in p.log_text()
    assert http_get(port, "/live")[0] == 200
