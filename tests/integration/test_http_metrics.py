"""GET /metrics: Prometheus text format (promtool clean, escaped labels) and counters that match
what a pgbench run did: N transactions by C clients grow the transaction histogram by exactly N*C."""
import http.client
import os
import re
import shutil
import struct
import subprocess
import threading

import pytest

from harness import clients
from harness.util import HOST, wait_for
from test_http import get_json, http_get, http_pooler

pytestmark = pytest.mark.pgsluice_only

PROM_CT = "text/plain; version=0.0.4; charset=utf-8"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def _unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse_metrics(text):
    """{(name, ((label, value), ...sorted)): float} of every sample; fails on a line it cannot read."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "unparsable sample line: %r" % line
        labels = tuple(sorted((k, _unescape(v)) for k, v in LABEL.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def scrape(p):
    status, headers, body = http_get(p.http_port, "/metrics")
    assert status == 200 and headers["content-type"] == PROM_CT, (status, headers)
    return parse_metrics(body)


def value(metrics, name, **labels):
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def buckets(metrics, name, **labels):
    """[(le, cumulative count)] of one histogram series, in bucket order."""
    rows = [(dict(k[1])["le"], v) for k, v in metrics.items() if k[0] == name + "_bucket"
            and all(dict(k[1]).get(a) == b for a, b in labels.items())]
    return sorted(rows, key=lambda r: float("inf") if r[0] == "+Inf" else float(r[0]))


def test_metrics_have_the_prometheus_content_type_and_pass_promtool_check_metrics(pooler):
    p = http_pooler(pooler)
    clients.assert_pooler_serves(p)
    status, headers, body = http_get(p.http_port, "/metrics")
    assert status == 200 and headers["content-type"] == PROM_CT
    parse_metrics(body)
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool is missing (Debian package prometheus; scripts/install-deps.sh installs it)")
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr


def test_metric_label_values_are_escaped(pooler, cluster):
    odd = 'we"ird\\db'
    p = http_pooler(pooler, dbs={odd: "host=%s port=%d dbname=appdb" % (HOST, cluster.primary_port)})
    status, headers, body = http_get(p.http_port, "/metrics")
    assert 'database="we\\"ird\\\\db"' in body
    assert value(parse_metrics(body), "pgsluice_database_backend_up", database=odd) == 1


def test_a_client_database_name_that_is_not_utf8_leaves_metrics_and_health_utf8(pooler, cluster):
    """Found by fuzzing (tests/fuzz/fuzz_http.c): through the "*" entry a client names any database,
    and once it has logged in the name reaches /metrics and /health. One byte that is not UTF-8 made
    both invalid (a Prometheus scrape fails on it); such bytes are now shown as U+FFFD."""
    p = http_pooler(pooler, {"auth_type": "trust"},
                    dbs={"*": "host=%s port=%d dbname=appdb" % (HOST, cluster.primary_port)})
    body = struct.pack("!I", 196608) + b"user\0app\0database\0caf\xe9\0\0"
    with clients.raw_socket(p) as s:
        s.sendall(struct.pack("!I", len(body) + 4) + body)
        # AuthenticationOk: the pool exists from the login on (it is made only for a logged-in client)
        assert s.recv(9) == b"R\0\0\0\x08\0\0\0\0"
        raw = wait_for(lambda: (lambda b: b if b"caf" in b else None)(raw_get(p.http_port, "/metrics")), timeout=10,
                       what="the pool in /metrics")
        text = raw.decode("utf-8")  # strict: fails on a byte that is not UTF-8
        assert value(parse_metrics(text), "pgsluice_pool_size", database="caf\ufffd", user="app") == 5
        status, doc = get_json(p.http_port, "/health")
        assert any(d["database"] == "caf\ufffd" for d in doc["pool_details"]), doc
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=raw, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr


def raw_get(port, path):
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().read()
    finally:
        conn.close()


def test_histograms_are_cumulative_and_end_with_inf(pooler):
    p = http_pooler(pooler)
    with clients.connect(p) as c:
        for i in range(5):
            c.execute("SELECT %s", (i,))
    m = wait_for(lambda: (lambda m: m if value(m, "pgsluice_query_duration_seconds_count", database="appdb") >= 5
                          else None)(scrape(p)), timeout=5, what="flushed query stats")
    for name in ("pgsluice_transaction_duration_seconds", "pgsluice_query_duration_seconds",
                 "pgsluice_client_wait_seconds"):
        rows = buckets(m, name, database="appdb")
        assert rows[0][0] == "0.0001" and rows[-2][0] == "30" and rows[-1][0] == "+Inf", rows
        counts = [c for _, c in rows]
        assert counts == sorted(counts), (name, rows)
        assert counts[-1] == value(m, name + "_count", database="appdb")


def _run_pgbench_while_scraping(p, script, n_xacts, n_clients):
    """Run pgbench in a thread and scrape /metrics until it ends; returns (result, scrapes)."""
    result = []
    t = threading.Thread(target=lambda: result.append(clients.pgbench(
        p, "-n", "-f", script, "-t", str(n_xacts), "-c", str(n_clients), "-j", "2")))
    t.start()
    scrapes = []
    while t.is_alive():
        scrapes.append(scrape(p))
        t.join(0.05)
    return result[0], scrapes


def test_pgbench_counts_match_metrics_and_stats_json(pooler):
    n_xacts, n_clients = 25, 8
    p = http_pooler(pooler, {"default_pool_size": 5})
    script = os.path.join(p.dir, "xact.sql")
    with open(script, "w") as f:
        f.write("BEGIN;\nSELECT 1;\nEND;\n")  # one transaction, three queries
    before = scrape(p)
    result, scrapes = _run_pgbench_while_scraping(p, script, n_xacts, n_clients)
    assert result.returncode == 0, result.stdout + result.stderr + p.describe(30)
    seen = [value(m, "pgsluice_transactions_total", database="appdb") for m in scrapes]
    assert seen == sorted(seen), "a counter went backwards during the run: %s" % seen

    total = n_xacts * n_clients

    def grew(m, name, **labels):
        return value(m, name, database="appdb", **labels) - value(before, name, database="appdb", **labels)

    after = wait_for(lambda: (lambda m: m if grew(m, "pgsluice_transactions_total") >= total else None)(scrape(p)),
                     timeout=10, what="all transactions in /metrics")
    assert grew(after, "pgsluice_transactions_total") == total
    assert grew(after, "pgsluice_transaction_duration_seconds_count") == total
    assert grew(after, "pgsluice_queries_total") == 3 * total
    assert grew(after, "pgsluice_query_duration_seconds_count") == 3 * total
    assert n_clients <= grew(after, "pgsluice_client_logins_total") <= n_clients + 1  # + pgbench's setup connection
    assert 1 <= grew(after, "pgsluice_server_connects_total") <= 5
    assert grew(after, "pgsluice_errors_total", **{"class": "other"}) == 0
    assert grew(after, "pgsluice_received_bytes_total") > 0 and grew(after, "pgsluice_sent_bytes_total") > 0
    accepted = sum(v for k, v in after.items() if k[0] == "pgsluice_worker_clients_accepted_total")
    assert accepted >= n_clients

    stats = [r for r in get_json(p.http_port, "/stats")[1] if r["database"] == "appdb"][0]
    assert stats["total_xact_count"] == value(after, "pgsluice_transactions_total", database="appdb")
    assert stats["total_query_count"] == value(after, "pgsluice_queries_total", database="appdb")
    assert stats["total_received"] == value(after, "pgsluice_received_bytes_total", database="appdb")
    assert value(after, "pgsluice_pool_clients", database="appdb", user="app", state="waiting") == 0
    assert value(after, "pgsluice_pool_size", database="appdb", user="app") == 5


def _admin_rows(p, command):
    """Rows of an admin console SHOW command as dicts (psql as the admin user postgres)."""
    r = clients.psql(p, "-F", "\t", "-P", "tuples_only=off", "-P", "footer=off", "-c", command,
                     db="pgbouncer", user="postgres")
    lines = [ln for ln in r.stdout.splitlines() if ln]
    header = lines[0].split("\t")
    return [dict(zip(header, ln.split("\t"))) for ln in lines[1:]]


def test_stats_json_and_pools_json_agree_with_the_admin_console(pooler):
    p = http_pooler(pooler, {"default_pool_size": 3})
    script = os.path.join(p.dir, "xact.sql")
    with open(script, "w") as f:
        f.write("BEGIN;\nSELECT 1;\nEND;\n")
    result = clients.pgbench(p, "-n", "-f", script, "-t", "20", "-c", "4", "-j", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: [r for r in get_json(p.http_port, "/stats")[1]
                      if r["database"] == "appdb" and r["total_xact_count"] == 80], timeout=10, what="flushed stats")
    show = [r for r in _admin_rows(p, "SHOW STATS") if r["database"] == "appdb"][0]
    mine = [r for r in get_json(p.http_port, "/stats")[1] if r["database"] == "appdb"][0]
    for col in ("total_xact_count", "total_query_count", "total_received", "total_sent"):
        assert int(show[col]) == mine[col], (col, show, mine)
    show = [r for r in _admin_rows(p, "SHOW POOLS") if r["database"] == "appdb" and r["user"] == "app"][0]
    mine = [r for r in get_json(p.http_port, "/pools")[1] if r["database"] == "appdb" and r["user"] == "app"][0]
    for col in ("cl_active", "cl_waiting", "sv_active", "sv_login", "pool_mode"):
        assert str(mine[col]) == show[col], (col, show, mine)
    assert mine["sv_idle"] + mine["sv_used"] == int(show["sv_idle"]) + int(show["sv_used"]), (show, mine)
