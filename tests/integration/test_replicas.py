"""Primary and replicas on real streaming replication: a read/write name served by the primary and a
read-only name by the replicas (role_map, target_session_attrs), health checks (SHOW BACKENDS), load
spread over replicas, a replica stopped or lagging leaving the rotation and coming back, failover to a
promoted replica (writes wait, then go there; the old primary is never written to), read_write_split
with read-your-writes, and what /ready, /health and /metrics say meanwhile.

Tests that stop or break a server use replicas of their own (Cluster.add_replica) or a cluster of
their own (failover), so the session's primary and replica stay as every other test expects them."""
import os
import re
import threading
import time

import psycopg
import pytest

import test_http as th
from admin_helpers import show
from harness import clients
from harness.cluster import Cluster
from harness.pooler import REPO, Pooler
from harness.util import HOST, chown_to_postgres, run_as_postgres, wait_for

pytestmark = pytest.mark.pgsluice_only

HEALTH = {"health_check_user": "plainuser", "health_check_period": "0.2", "health_check_timeout": "2",
          "query_wait_timeout": "30"}


def hosts(*ports):
    return "host=%s port=%s" % (",".join([HOST] * len(ports)), ",".join(str(p) for p in ports))


def routed_pooler(pooler, settings=None, dbs=None, **kw):
    s = dict(HEALTH)
    s.update(settings or {})
    s.setdefault("http_port", 0)
    return pooler(s, dbs=dbs, **kw)


def backends(p, db):
    return {r["port"]: r for r in show(p, "BACKENDS") if r["database"] == db}


def wait_backend(p, db, port, timeout=20, **want):
    """Wait until SHOW BACKENDS has the row of db's host `port` with the wanted column values."""
    def ok():
        row = backends(p, db).get(port)
        return row if row and all(row[k] == v for k, v in want.items()) else None
    return wait_for(ok, timeout=timeout, what="%s %s: %s" % (db, port, want))


def server_port(conn):
    return conn.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone()


def test_write_name_gets_the_primary_read_name_a_replica_and_reads_see_replayed_writes(pooler, cluster):
    P, R = cluster.primary_port, cluster.replica_port
    p = routed_pooler(pooler, {"default_pool_size": 3}, dbs={
        "sav3": "%s dbname=sav3 role_map=primary,replica" % hosts(P, R),
        "sav3_replica": "%s dbname=sav3 target_session_attrs=read-only pool_size=2" % hosts(P, R)})
    wait_backend(p, "sav3_replica", R, health="up", serves="reads", role="replica")
    rows = backends(p, "sav3")
    assert rows[P]["role"] == "primary" and rows[P]["serves"] == "writes" and rows[P]["configured_role"] == "primary"
    assert rows[R]["role"] == "replica" and rows[R]["configured_role"] == "replica"
    with clients.connect(p, "sav3") as w, clients.connect(p, "sav3_replica") as r:
        assert server_port(w) == (P, False)
        assert server_port(r) == (R, True)
        w.execute("CREATE TABLE IF NOT EXISTS sl_rr_seen (v text)")
        w.execute("INSERT INTO sl_rr_seen VALUES ('hello from the primary')")
        cluster.wait_replica_caught_up()
        assert r.execute("SELECT count(*) FROM sl_rr_seen WHERE v = 'hello from the primary'").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            r.execute("INSERT INTO sl_rr_seen VALUES ('never')")
    # each name has its own pool size (SHOW DATABASES) and SHOW DATABASES names the primary
    dbs = {d["name"]: d for d in show(p, "DATABASES")}
    assert dbs["sav3"]["pool_size"] == 3 and dbs["sav3_replica"]["pool_size"] == 2
    assert dbs["sav3"]["target_session_attrs"] == "read-write"
    assert dbs["sav3_replica"]["target_session_attrs"] == "read-only"
    assert dbs["sav3"]["primary"] == "%s:%d" % (HOST, P) and dbs["sav3_replica"]["replicas"] == 1
    assert dbs["appdb"]["target_session_attrs"] is None
    servers = [s for s in show(p, "SERVERS") if s["database"] in ("sav3", "sav3_replica")]
    assert {(s["database"], s["port"], s["role"]) for s in servers} >= {("sav3", P, "primary"),
                                                                         ("sav3_replica", R, "replica")}
    with clients.connect(p, "sav3") as w:
        w.execute("DROP TABLE sl_rr_seen")


def test_libpq_style_host_list_finds_the_primary_without_a_role_map(pooler, cluster):
    P, R = cluster.primary_port, cluster.replica_port
    # the replica first: target_session_attrs=read-write must still land on the primary
    p = routed_pooler(pooler, dbs={"rw": "%s dbname=appdb target_session_attrs=read-write" % hosts(R, P),
                                   "sb": "%s dbname=appdb target_session_attrs=standby" % hosts(R, P)})
    wait_backend(p, "rw", P, serves="writes")
    for _ in range(5):
        with clients.connect(p, "rw") as c:
            assert server_port(c) == (P, False)
        with clients.connect(p, "sb") as c:
            assert server_port(c) == (R, True)


def _read_load(p, db, stop, seen, errors, new_connections=True):
    """A client loop: short read transactions through db, a new connection now and then."""
    conn = None
    i = 0
    while not stop.is_set():
        try:
            if conn is None or (new_connections and i % 5 == 0):
                if conn is not None:
                    conn.close()
                conn = clients.connect(p, db)
            port, _ = server_port(conn)
            seen.append((time.monotonic(), port))
        except psycopg.Error as e:
            errors.append((time.monotonic(), repr(e)))
            if conn is not None:
                conn.close()
            conn = None
        i += 1
    if conn is not None:
        conn.close()


def test_reads_are_spread_over_two_replicas(pooler, cluster):
    r2 = cluster.add_replica("spread2")
    try:
        P, R = cluster.primary_port, cluster.replica_port
        p = routed_pooler(pooler, {"default_pool_size": 6}, dbs={
            "ro": "%s dbname=appdb role_map=primary,replica,replica target_session_attrs=read-only"
                  % hosts(P, R, r2.port)})
        wait_backend(p, "ro", r2.port, health="up", serves="reads")
        wait_backend(p, "ro", R, health="up", serves="reads")
        stop, seen, errors = threading.Event(), [], []
        threads = [threading.Thread(target=_read_load, args=(p, "ro", stop, seen, errors, False)) for _ in range(6)]
        for t in threads:
            t.start()
        wait_for(lambda: len(seen) >= 300, timeout=30, what="300 reads")

        def balanced():  # the last 300 reads: the pool may start lopsided (one replica's servers open
            # first on a loaded machine) and evens out as idle servers of the busier one are given back
            last = [port for _, port in seen[-300:]]
            return 0.2 <= last.count(R) / len(last) <= 0.8
        try:
            wait_for(balanced, timeout=60, what="reads spread over both replicas")
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors[:3]
        ports = [port for _, port in seen]
        assert P not in ports  # the primary serves no read while a replica is in rotation
    finally:
        cluster.remove_replica(r2)


def test_replica_stopped_under_load_leaves_the_rotation_and_rejoins(pooler, cluster):
    r2 = cluster.add_replica("stopper")
    try:
        P, R = cluster.primary_port, cluster.replica_port
        p = routed_pooler(pooler, {"default_pool_size": 4}, dbs={
            "ro": "%s dbname=appdb target_session_attrs=read-only" % hosts(P, R, r2.port)})
        wait_backend(p, "ro", r2.port, health="up", serves="reads")
        stop, seen, errors = threading.Event(), [], []
        threads = [threading.Thread(target=_read_load, args=(p, "ro", stop, seen, errors)) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: any(port == r2.port for _, port in seen), timeout=15, what="reads on the second replica")
            stopped_at = time.monotonic()
            r2.stop()
            wait_backend(p, "ro", r2.port, health="down", serves="none")
            left_at = time.monotonic()
            n = len(seen)
            wait_for(lambda: len(seen) >= n + 50, timeout=20, what="50 more reads after the replica left")
            # transactions running on it when it stopped may fail; every one started after it left works
            late = [e for e in errors if e[0] > left_at]
            assert not late, late[:3]
            assert not [port for t, port in seen if t > left_at and port == r2.port]
            r2.start()
            cluster.wait_streaming(r2)
            wait_backend(p, "ro", r2.port, health="up", serves="reads")
            back_at = time.monotonic()
            wait_for(lambda: any(port == r2.port and t > back_at for t, port in seen), timeout=20,
                     what="reads on the replica once it is back")
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not [e for e in errors if e[0] < stopped_at], errors[:3]
        assert not [port for _, port in seen if port == P]
    finally:
        cluster.remove_replica(r2)


def test_replica_with_replay_paused_leaves_the_rotation_until_it_catches_up(pooler, cluster):
    r3 = cluster.add_replica("lagger")
    try:
        P = cluster.primary_port
        p = routed_pooler(pooler, dbs={
            "ro": "%s dbname=appdb role_map=primary,replica target_session_attrs=read-only max_replica_lag=1"
                  % hosts(P, r3.port)})
        wait_backend(p, "ro", r3.port, health="up", serves="reads")
        cluster.psql("SELECT pg_wal_replay_pause()", port=r3.port)
        # the primary writes; the replica receives it and does not replay it
        stop = threading.Event()

        def writer():
            while not stop.is_set():
                cluster.psql("CREATE TABLE IF NOT EXISTS sl_lag_probe (t timestamptz); "
                             "INSERT INTO sl_lag_probe VALUES (now())", dbname="appdb")
                time.sleep(0.2)
        t = threading.Thread(target=writer)
        t.start()
        try:
            row = wait_backend(p, "ro", r3.port, health="lagging", serves="none")
            # lag_us > max_replica_lag (1 s) shows as "1.000" when it is 1.0003 s
            assert float(row["lag_seconds"]) >= 1 and row["lag_bytes"] > 0
            # reads fall back to the primary (replica_fallback = 1)
            with clients.connect(p, "ro") as c:
                assert server_port(c) == (P, False)
        finally:
            stop.set()
            t.join()
        cluster.psql("SELECT pg_wal_replay_resume()", port=r3.port)
        wait_backend(p, "ro", r3.port, health="up", serves="reads")
        with clients.connect(p, "ro") as c:
            assert server_port(c) == (r3.port, True)
        cluster.psql("DROP TABLE IF EXISTS sl_lag_probe", dbname="appdb")
    finally:
        cluster.remove_replica(r3)


def test_monitoring_sees_replica_health_and_lag_and_ready_ignores_a_down_replica(pooler, cluster):
    r2 = cluster.add_replica("watched")
    try:
        P = cluster.primary_port
        p = th.http_pooler(pooler, dict(HEALTH), dbs={
            "sav3": "%s dbname=sav3 role_map=primary,replica" % hosts(P, r2.port),
            "sav3_replica": "%s dbname=sav3 role_map=primary,replica target_session_attrs=read-only "
                            "replica_fallback=off" % hosts(P, r2.port)})
        wait_backend(p, "sav3_replica", r2.port, health="up", serves="reads")
        addr = "%s:%d" % (HOST, r2.port)
        # the metric the shipped PgsluiceReplicaLag alert watches, with the labels its annotations use
        with open(os.path.join(REPO, "monitoring", "prometheus", "pgsluice-alerts.yml")) as f:
            rule = re.search(r"alert: PgsluiceReplicaLag\n\s+expr: (\w+)", f.read())
        assert rule
        sav3_lag = re.compile(r"^%s\{database=\"sav3\",replica=\"%s\"\} [\d.]+$" % (rule.group(1), re.escape(addr)), re.M)
        # sav3's hosts are checked on their own: its replica's lag is known once both hosts were seen
        # (read once too early under ASan)
        def metrics_with_sav3_lag():
            b = th.http_get(p.http_port, "/metrics")[2]
            return b if sav3_lag.search(b) else None

        body = wait_for(metrics_with_sav3_lag, timeout=20, what="sav3's replica lag in /metrics")
        assert 'pgsluice_replica_lag_seconds{database="sav3_replica",replica="%s"}' % addr in body
        assert 'pgsluice_backend_in_rotation{database="sav3",host="%s:%d",role="primary"} 1' % (HOST, P) in body
        assert th.get_json(p.http_port, "/ready")[0] == 200
        status, doc = th.get_json(p.http_port, "/health")
        assert status == 200 and doc["status"] == "healthy", doc
        r2.stop()
        wait_backend(p, "sav3_replica", r2.port, health="down")
        status, doc = th.get_json(p.http_port, "/health")
        assert status == 200 and doc["status"] == "degraded", doc
        assert any("sav3_replica" in m for m in doc["messages"]), doc["messages"]
        b = [x for x in doc["backends"] if x["database"] == "sav3_replica"][0]
        assert b["reachable"] is False and b["replicas_in_rotation"] == 0
        assert [h for h in b["hosts"] if h["host"] == addr][0]["health"] == "down"
        # a replica down never makes this pgsluice unready: it can still serve writes
        status, doc = th.get_json(p.http_port, "/ready")
        assert status == 200 and doc["ready"] is True, doc
        body = th.http_get(p.http_port, "/metrics")[2]
        assert 'pgsluice_backend_up{database="sav3_replica",host="%s",role="replica"} 0' % addr in body
        r2.start()
        wait_backend(p, "sav3_replica", r2.port, health="up")
    finally:
        cluster.remove_replica(r2)


# ---- failover: a cluster of its own ----

@pytest.fixture
def own_cluster(session_dir):
    c = Cluster(os.path.join(session_dir, "fo%d" % int(time.monotonic() * 1000 % 100000))).start()
    yield c
    c.stop()


@pytest.fixture
def own_pooler(own_cluster, session_dir, request):
    """pooler(settings, dbs) for own_cluster (its auth_file holds that cluster's secrets)."""
    made = []
    request.node._sl_poolers = made

    def factory(settings=None, dbs=None):
        p = Pooler(own_cluster, session_dir, settings=settings, dbs=dbs)
        made.append(p)
        return p.start()
    yield factory
    problems = []
    for p in made:
        p.stop()
        problems += p.stop_problems
    assert not problems, problems


def _pg_ctl(srv, *args):
    run_as_postgres([os.path.join("/usr/lib/postgresql/15/bin", "pg_ctl"), "-D", srv.datadir, "-w", "-t", "60"]
                    + list(args), timeout=90)


def _make_standby_of(old, new_port, password):
    """Turn a stopped former primary into a standby of the new one (standby.signal, primary_conninfo)."""
    with open(os.path.join(old.datadir, "standby.signal"), "w"):
        pass
    with open(os.path.join(old.datadir, "postgresql.auto.conf"), "a") as f:
        f.write("primary_conninfo = 'host=%s port=%d user=postgres password=%s'\n" % (HOST, new_port, password))
    chown_to_postgres(old.datadir, recursive=True)


def test_failover_writes_wait_then_go_to_the_promoted_replica(own_pooler, own_cluster, tmp_path):
    c = own_cluster
    P, R = c.primary_port, c.replica_port
    hook_log = tmp_path / "failover_command.log"
    hook = 'echo "$PGSLUICE_EVENT $PGSLUICE_DATABASE $PGSLUICE_HOST:$PGSLUICE_PORT" >> %s' % hook_log
    p = own_pooler(dict(HEALTH, http_port=0, failover_command=hook), dbs={
        "sav3": "%s dbname=sav3 role_map=primary,replica" % hosts(P, R),
        "sav3_replica": "%s dbname=sav3 role_map=primary,replica target_session_attrs=read-only" % hosts(P, R)})
    wait_backend(p, "sav3", R, health="up", serves="reads")
    idle = clients.connect(p, "sav3")  # a client that stays connected through the failover
    idle.execute("CREATE TABLE fo (at timestamptz, port int)")
    assert server_port(idle) == (P, False)

    stop, ok, errors = threading.Event(), [], []

    def writer():
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = clients.connect(p, "sav3")
                port = conn.execute("INSERT INTO fo VALUES (now(), inet_server_port()) RETURNING port").fetchone()[0]
                ok.append((time.monotonic(), port))
            except psycopg.Error as e:
                errors.append((time.monotonic(), repr(e)))
                conn = None
            time.sleep(0.02)
        if conn is not None:
            conn.close()
    t = threading.Thread(target=writer)
    t.start()
    try:
        wait_for(lambda: len(ok) >= 10, timeout=15, what="writes on the primary")
        c.primary.stop()
        stopped = time.monotonic()
        wait_backend(p, "sav3", P, health="down")
        # failover_command ran for each database that lost its primary (promotion is left to us here)
        wait_for(lambda: hook_log.exists() and "primary_lost sav3 %s:%d" % (HOST, P) in hook_log.read_text(),
                 timeout=10, what="failover_command's line")
        _pg_ctl(c.replica, "promote")
        wait_for(lambda: any(port == R for _, port in ok), timeout=30, what="a write on the promoted replica")
        first_new = min(at for at, port in ok if port == R)
        last_old = max(at for at, port in ok if port == P)
        gap = first_new - last_old
        print("failover gap: %.2f s from the last write on the old primary to the first on the promoted replica "
              "(primary stopped at +%.2f s)" % (gap, stopped - last_old))
        # the client that stayed connected writes again without reconnecting
        assert server_port(idle) == (R, False)
        idle.execute("INSERT INTO fo VALUES (now(), 0)")
        n = len(ok)
        wait_for(lambda: len(ok) >= n + 20, timeout=15, what="20 more writes")
        row = backends(p, "sav3")
        assert row[R]["role"] == "primary" and row[R]["serves"] == "writes"
        assert row[P]["health"] == "down"

        # the old primary comes back as a standby of the new one: read-only, never written to
        _make_standby_of(c.primary, R, c.superuser_password)
        c.primary.start()
        wait_backend(p, "sav3", P, health="up", role="replica")
        n = len(ok)
        wait_for(lambda: len(ok) >= n + 20, timeout=15, what="20 more writes")
    finally:
        stop.set()
        t.join()
    assert not [port for at, port in ok if at > stopped and port == P]
    # writes that failed did so around the stop (in flight on the old primary), none once promoted
    assert not [e for e in errors if e[0] > first_new + 1], errors[-3:]
    with clients.connect(p, "sav3_replica") as r:
        assert server_port(r) == (P, True)  # the old primary now serves reads
    idle.close()
    dbs = {d["name"]: d for d in show(p, "DATABASES")}
    assert dbs["sav3"]["primary"] == "%s:%d" % (HOST, R)


def test_two_writable_hosts_the_newest_timeline_wins_and_the_other_is_fenced(own_pooler, own_cluster):
    c = own_cluster
    P, R = c.primary_port, c.replica_port
    p = own_pooler(dict(HEALTH, http_port=0), dbs={"sav3": "%s dbname=sav3 role_map=primary,replica" % hosts(P, R)})
    wait_backend(p, "sav3", R, health="up", serves="reads")
    _pg_ctl(c.replica, "promote")  # split brain: the old primary still runs, writable
    wait_backend(p, "sav3", R, serves="writes", role="primary")
    row = wait_backend(p, "sav3", P, health="fenced", serves="none")
    assert row["timeline"] < backends(p, "sav3")[R]["timeline"]
    for _ in range(10):
        with clients.connect(p, "sav3") as w:
            assert server_port(w) == (R, False)
