"""What ships for monitoring: the Prometheus alert rules (promtool check + unit tests), the Grafana
dashboard (valid JSON, valid PromQL, the guide's panels) and scripts/check-health.sh (summary and
exit codes 0/1/2 against a live pgsluice)."""
import json
import os
import re
import shutil
import subprocess

import pytest

from harness import clients
from harness.pooler import REPO
from harness.util import HOST, free_port
from test_http import http_pooler

PROM_DIR = os.path.join(REPO, "monitoring", "prometheus")
DASHBOARD = os.path.join(REPO, "monitoring", "grafana", "pgsluice-dashboard.json")
CHECK_HEALTH = os.path.join(REPO, "scripts", "check-health.sh")


def promtool():
    path = shutil.which("promtool")
    if not path:
        pytest.skip("promtool is missing (Debian package prometheus; scripts/install-deps.sh installs it)")
    return path


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def test_alert_rules_pass_promtool_check_rules():
    r = run([promtool(), "check", "rules", "pgsluice-alerts.yml"], cwd=PROM_DIR)
    assert r.returncode == 0, r.stdout + r.stderr


def test_alert_rules_pass_their_promtool_unit_tests():
    r = run([promtool(), "test", "rules", "pgsluice-alerts.test.yml"], cwd=PROM_DIR)
    assert r.returncode == 0, r.stdout + r.stderr


def test_alert_rules_cover_exhaustion_wait_latency_backend_down_and_replica_lag():
    text = open(os.path.join(PROM_DIR, "pgsluice-alerts.yml")).read()
    for name in ("PgsluicePoolExhausted", "PgsluiceHighWaitLatency", "PgsluiceClientsWaitingLong",
                 "PgsluiceBackendDown", "PgsluiceReplicaLag", "PgsluiceNoPrimary"):
        assert "alert: " + name in text, name


def _dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    return dash, {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in dash["panels"]}


def test_dashboard_has_the_guide_panels():
    _, exprs = _dashboard_exprs()
    joined = {title: " ".join(e) for title, e in exprs.items()}
    def panel_using(metric):
        return [t for t, e in joined.items() if metric in e]
    assert panel_using("pgsluice_pool_utilization_ratio")
    wait = panel_using("pgsluice_client_wait_seconds_bucket")
    assert wait and "0.5" in joined[wait[0]] and "0.99" in joined[wait[0]]
    assert panel_using("rate(pgsluice_transactions_total")
    assert panel_using("pgsluice_errors_total")
    assert panel_using("pgsluice_server_connects_total")


def test_dashboard_queries_are_valid_promql(tmp_path):
    tool = promtool()
    _, exprs = _dashboard_exprs()
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    i = 0
    for title, es in exprs.items():
        for e in es:
            e = e.replace("$__rate_interval", "5m").replace("$instance", ".*").replace("$database", ".*")
            i += 1
            rules += ["      - record: dashboard:expr_%d" % i, "        expr: %s" % json.dumps(e)]
    assert i >= 15
    path = tmp_path / "dashboard-rules.yml"
    path.write_text("\n".join(rules) + "\n")
    r = run([tool, "check", "rules", str(path)])
    assert r.returncode == 0, r.stdout + r.stderr


def check_health(p, *args, token=None):
    env = dict(os.environ, PATH=clients.PG_BINDIR + ":" + os.environ.get("PATH", ""),
               PGPASSWORD=p.cluster.passwords["postgres"])
    cmd = [CHECK_HEALTH, "--url", "http://%s:%d" % (HOST, p.http_port), "--host", p.host, "--port", str(p.port),
           "--user", "postgres"] + list(args)
    if token:
        cmd += ["--token", token]
    return run(cmd, env=env)


@pytest.mark.pgsluice_only
def test_check_health_exits_0_and_summarizes_a_healthy_pooler(pooler):
    p = http_pooler(pooler)
    clients.assert_pooler_serves(p)
    r = check_health(p)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pgsluice is HEALTHY" in r.stdout
    assert re.search(r"appdb\s+app\s+transaction", r.stdout), r.stdout
    assert re.search(r"appdb\s+127\.0\.0\.1:\d+\s+reachable", r.stdout), r.stdout
    # the admin console section is printed whether the console answers rows or an error
    assert "Admin console (SHOW POOLS" in r.stdout


@pytest.mark.pgsluice_only
def test_check_health_exits_1_when_degraded(pooler):
    p = http_pooler(pooler, {"default_pool_size": 1})
    holder = clients.connect(p, autocommit=False)
    holder.execute("SELECT 1")
    try:
        r = check_health(p, "--no-admin")
    finally:
        holder.rollback()
        holder.close()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "DEGRADED" in r.stdout and "utilization" in r.stdout and "100%" in r.stdout


@pytest.mark.pgsluice_only
def test_check_health_exits_2_when_a_backend_is_unreachable(pooler):
    p = http_pooler(pooler, dbs={"gone": "host=%s port=%d dbname=appdb" % (HOST, free_port())})
    r = check_health(p, "--no-admin")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "UNHEALTHY" in r.stdout and re.search(r"gone\s+127\.0\.0\.1:\d+\s+UNREACHABLE", r.stdout), r.stdout


@pytest.mark.pgsluice_only
def test_check_health_exits_2_when_the_endpoint_cannot_be_read(pooler):
    p = http_pooler(pooler, {"http_token": "t0ken"})
    r = check_health(p, "--no-admin")
    assert r.returncode == 2 and "HTTP 401" in r.stdout, r.stdout + r.stderr
    assert check_health(p, "--no-admin", token="t0ken").returncode == 0
    p.http_port = free_port()  # nothing listens there
    r = check_health(p)
    assert r.returncode == 2 and "cannot read" in r.stdout, r.stdout + r.stderr
