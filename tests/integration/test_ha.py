"""Several pgsluice instances: the shipped HAProxy config (deploy/haproxy.cfg, Debian's haproxy, TCP mode,
checks each instance's /ready) in front of two instances, one killed under pgbench load while the run
goes on through the other and clients that reconnect succeed; and the shipped Kubernetes manifest
(deploy/kubernetes/pgsluice.yaml): its ConfigMap's pgsluice.ini loads, its probes are pages pgsluice
serves, its ports agree (kubectl --dry-run needs an API server, so the manifest is checked here)."""
import os
import re
import subprocess
import threading
import time

import psycopg
import pytest
import yaml

import test_http as th
from harness import clients
from harness.pooler import REPO
from harness.util import HOST, conninfo, free_port, port_is_open, wait_for
from test_replicas import HEALTH, hosts, wait_backend

pytestmark = pytest.mark.pgsluice_only

DEPLOY = os.path.join(REPO, "deploy")
HAPROXY = "/usr/sbin/haproxy"


class Front:
    """HAProxy's port as the clients helpers see a pooler."""

    def __init__(self, cluster, port):
        self.cluster, self.host, self.port = cluster, HOST, port

    def dsn(self, db="appdb", user="app", password=None, **extra):
        parts = {"host": self.host, "port": self.port, "dbname": db, "user": user,
                 "password": self.cluster.passwords.get(user, "") if password is None else password,
                 "connect_timeout": 10}
        parts.update(extra)
        return conninfo(parts)


def subst(text, pattern, repl):
    """Replace the one line matching pattern (the shipped file must keep its shape)."""
    n = len(re.findall(pattern, text, re.M))
    assert n == 1, "expected one line matching %r in the shipped file, found %d" % (pattern, n)
    return re.sub(pattern, repl, text, flags=re.M)


def haproxy_config(tmp_path, port, instances):
    with open(os.path.join(DEPLOY, "haproxy.cfg")) as f:
        text = f.read()
    text = subst(text, r"^    bind \*:6432$", "    bind %s:%d" % (HOST, port))
    for i, p in enumerate(instances, 1):
        text = subst(text, r"^    server pgsluice%d .*$" % i,
                     "    server pgsluice%d %s:%d check port %d" % (i, HOST, p.port, p.http_port))
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    return str(path)


def test_shipped_haproxy_config_is_valid():
    r = subprocess.run([HAPROXY, "-c", "-f", os.path.join(DEPLOY, "haproxy.cfg")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(os.path.join(DEPLOY, "haproxy.cfg")) as f:
        text = f.read()
    assert re.search(r"^\s*mode tcp$", text, re.M) and "http-check send meth GET uri /ready" in text


def test_two_instances_behind_haproxy_one_killed_under_pgbench_load(pooler, cluster, tmp_path):
    P, R = cluster.primary_port, cluster.replica_port
    dbs = {"sav3": "%s dbname=sav3 role_map=primary,replica" % hosts(P, R)}
    settings = dict(HEALTH, default_pool_size=4, max_client_conn=200)
    a = th.http_pooler(pooler, settings, dbs=dbs)
    b = th.http_pooler(pooler, settings, dbs=dbs)
    for p in (a, b):
        wait_backend(p, "sav3", P, health="up", serves="writes")
        wait_for(lambda p=p: th.get_json(p.http_port, "/ready")[0] == 200, timeout=10, what="/ready")
    port = free_port()
    cfg = haproxy_config(tmp_path, port, [a, b])
    log = open(tmp_path / "haproxy.log", "w")
    ha = subprocess.Popen([HAPROXY, "-db", "-f", cfg], stdout=log, stderr=subprocess.STDOUT)
    try:
        front = Front(cluster, port)
        wait_for(lambda: port_is_open(port), timeout=10, what="HAProxy's port")
        init = clients.pgbench(front, "-i", "-s", "1", "-q", db="sav3")
        assert init.returncode == 0, init.stderr

        # pgbench load: back-to-back 1-second runs with a new connection per transaction (-C). A run
        # under way when an instance dies loses the clients that were on it (pgbench never reconnects
        # a client); every run started after the kill must succeed whole, through the other instance.
        stop, ok, errors, runs = threading.Event(), [], [], []
        env = clients._env(front, "app", None)

        def bench_loop():
            while not stop.is_set():
                began = time.monotonic()
                r = subprocess.run([os.path.join(clients.PG_BINDIR, "pgbench"), "-h", HOST, "-p", str(port), "-U",
                                    "app", "-C", "-n", "-c", "4", "-j", "2", "-T", "1", "sav3"],
                                   env=env, capture_output=True, text=True, timeout=60)
                m = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
                runs.append((began, time.monotonic(), r.returncode, int(m.group(1)) if m else 0, r.stderr[-500:]))

        # and a client of our own that reconnects when its connection breaks
        def client():
            conn = None
            while not stop.is_set():
                try:
                    if conn is None:
                        conn = psycopg.connect(front.dsn("sav3"), autocommit=True)
                    conn.execute("SELECT 1")
                    ok.append(time.monotonic())
                except psycopg.Error as e:
                    errors.append((time.monotonic(), repr(e)))
                    conn = None
                time.sleep(0.02)
            if conn is not None:
                conn.close()
        threads = [threading.Thread(target=bench_loop), threading.Thread(target=client)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: len(runs) >= 2 and len(ok) >= 20, timeout=30, what="load through HAProxy")
            a.kill()
            killed = time.monotonic()
            wait_for(lambda: len([r for r in runs if r[0] > killed + 0.5]) >= 3, timeout=60,
                     what="three pgbench runs after the kill")
        finally:
            stop.set()
            for t in threads:
                t.join()
        before = [r for r in runs if r[1] < killed]
        after = [r for r in runs if r[0] > killed + 0.5]
        assert before and all(rc == 0 and n > 0 for _, _, rc, n, _ in before), before
        assert all(rc == 0 and n > 0 for _, _, rc, n, _ in after), after
        # the client that reconnects works again within a few seconds of the kill
        assert not [e for e in errors if e[0] > killed + 5], errors[-3:]
        # every new connection goes to the instance still alive
        with clients.connect(front, "sav3") as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
        clients.assert_pooler_serves(b, db="sav3")
    finally:
        ha.terminate()
        ha.wait(10)
        log.close()


def test_kubernetes_manifest_config_loads_and_probes_are_served(pooler, cluster, tmp_path):
    with open(os.path.join(DEPLOY, "kubernetes", "pgsluice.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ConfigMap", "Deployment", "Service"}
    dep, svc, cm = kinds["Deployment"], kinds["Service"], kinds["ConfigMap"]
    assert dep["spec"]["replicas"] >= 2
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    (ctr,) = dep["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    assert ctr["livenessProbe"]["httpGet"]["path"] == "/live"
    assert ctr["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert ctr["readinessProbe"]["httpGet"]["port"] == "http" and ports["http"] == 8081
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= set(ports)
    mounts = {m["mountPath"] for m in ctr["volumeMounts"]}
    ini = cm["data"]["pgsluice.ini"]
    assert "listen_port = 6432" in ini and "http_port = 8081" in ini and ports["postgres"] == 6432
    for path in re.findall(r"= (/etc/pgsluice/\S+)", ini):
        assert any(path.startswith(m) for m in mounts), path

    # the ConfigMap's pgsluice.ini loads (with this machine's paths, ports and servers) and its probe
    # paths are pages pgsluice serves
    pw = tmp_path / "postgres_password"
    pw.write_text(cluster.superuser_password + "\n")
    userlist = tmp_path / "userlist.txt"
    userlist.write_text('"app" "apppw"\n')
    local = ini.replace("/etc/pgsluice/auth/postgres_password", str(pw))
    local = local.replace("/etc/pgsluice/auth/userlist.txt", str(userlist))
    local = local.replace("host=db-primary,db-replica port=5432", hosts(cluster.primary_port, cluster.replica_port))
    http_port, port = free_port(), free_port()
    local = local.replace("listen_port = 6432", "listen_port = %d" % port).replace("http_port = 8081",
                                                                                   "http_port = %d" % http_port)
    local = local.replace("listen_addr = *", "listen_addr = %s" % HOST).replace("http_listen_addr = *",
                                                                                "http_listen_addr = %s" % HOST)
    cfg = tmp_path / "pgsluice.ini"
    cfg.write_text(local)
    proc = subprocess.Popen([os.environ.get("SL_BIN", os.path.join(REPO, "build", "pgsluice")), str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: port_is_open(http_port) or proc.poll() is not None, timeout=10, what="the HTTP port")
        assert proc.poll() is None, proc.stdout.read()
        assert th.get_json(http_port, "/live")[0] == 200
        wait_for(lambda: th.get_json(http_port, "/ready")[0] == 200, timeout=10, what="/ready 200")
        with psycopg.connect(conninfo({"host": HOST, "port": port, "dbname": "sav3_replica", "user": "app",
                                       "password": "apppw", "connect_timeout": 10})) as c:
            assert c.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    finally:
        proc.terminate()
        proc.wait(10)
