"""Prisma 7 through pgsluice: the product guide's module (integrations/prisma/src/lib/prisma.ts), its
self test (scripts/selftest.ts) and its example app (src/server.ts, HTTP), against a database
`prisma_app` on the primary that pgsluice serves as `prisma_app` (primary) and `prisma_app_replica`
(the streaming replica), in transaction mode over a pool of 5.

The package installs from npm (`make driver-deps` runs `npm ci` and `prisma generate` there; the
fixture does both when they are missing). The schema is applied with scripts/migrate.ts over a
direct connection (DIRECT_URL), as Prisma Migrate would: never through the pooler.

Each test marked `client` is a row of docs/CLIENTS.md.
"""
import concurrent.futures
import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from harness.pooler import Pooler
from harness.util import HOST, free_port, wait_for
from admin_helpers import show, stats_row

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PKG = os.path.join(REPO, "integrations", "prisma")
TSX = os.path.join(PKG, "node_modules", ".bin", "tsx")
GENERATED = os.path.join(PKG, "src", "generated", "prisma", "client.ts")
DB = "prisma_app"
TX5 = {"pool_mode": "transaction", "default_pool_size": 5}
# Prisma's CLI phones home (update check) unless told not to; this machine is offline.
NODE_ENV = {"CHECKPOINT_DISABLE": "1", "PRISMA_HIDE_UPDATE_MESSAGE": "1", "NO_COLOR": "1"}


def _env(**kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DIRECT_URL"))}
    env.update(NODE_ENV)
    env.update({k: str(v) for k, v in kw.items() if v is not None})
    return env


def _run(args, timeout=120, **env):
    return subprocess.run(args, cwd=PKG, env=_env(**env), capture_output=True, text=True, timeout=timeout)


def _fail(what, r, pooler=None):
    pytest.fail("%s exited %s\n--- stdout ---\n%s\n--- stderr ---\n%s\n%s"
                % (what, r.returncode, r.stdout[-4000:], r.stderr[-6000:], pooler.describe(40) if pooler else ""),
                pytrace=False)


@pytest.fixture(scope="module")
def prisma_pkg():
    """integrations/prisma with node_modules and the generated client (npm ci / prisma generate
    when missing; `make driver-deps` normally did both)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed (scripts/install-deps.sh installs nodejs)")
    v = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    if tuple(int(x) for x in v.lstrip("v").split(".")[:2]) < (20, 19):
        pytest.skip("Prisma 7 needs node >= 20.19, this is %s" % v)
    if not os.path.exists(TSX):
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed and integrations/prisma/node_modules is missing")
        r = _run([npm, "ci", "--no-audit", "--no-fund"], timeout=600)
        if r.returncode != 0 or not os.path.exists(TSX):
            _fail("npm ci in integrations/prisma", r)
    schema = os.path.join(PKG, "prisma", "schema.prisma")
    if not os.path.exists(GENERATED) or os.path.getmtime(GENERATED) < os.path.getmtime(schema):
        r = _run([os.path.join(PKG, "node_modules", ".bin", "prisma"), "generate"])
        if r.returncode != 0 or not os.path.exists(GENERATED):
            _fail("prisma generate", r)
    return PKG


def _direct_url(cluster, db=DB):
    return "postgresql://app:%s@%s:%d/%s" % (cluster.passwords["app"], HOST, cluster.primary_port, db)


def _dbs(cluster, replica_port=None):
    return {DB: "host=%s port=%d dbname=%s" % (HOST, cluster.primary_port, DB),
            DB + "_replica": "host=%s port=%d dbname=%s" % (HOST, replica_port or cluster.replica_port, DB)}


@pytest.fixture(scope="module")
def prisma_db(cluster, prisma_pkg):
    """A fresh database prisma_app owned by app, migrated over DIRECT_URL, replayed on the replica.
    Returns the first migration run (CompletedProcess)."""
    cluster.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB)
    cluster.psql("CREATE DATABASE %s OWNER app" % DB)
    r = _run([TSX, "scripts/migrate.ts"], DIRECT_URL=_direct_url(cluster))
    if r.returncode != 0:
        _fail("scripts/migrate.ts", r)
    cluster.wait_replica_caught_up()
    return r


@pytest.fixture(scope="module")
def module_pooler(cluster, session_dir, prisma_db):
    """One pgsluice (transaction mode, pool of 5) for the self test, shared by the module."""
    p = Pooler(cluster, session_dir, settings=TX5, dbs=_dbs(cluster)).start()
    yield p
    p.stop()
    if p.stop_problems:
        pytest.fail("pooler problems: %s\n%s" % (p.stop_problems, p.describe()), pytrace=False)


def _app_env(p, replica=True, **extra):
    env = {"DATABASE_URL": p.url(DB)}
    if replica:
        env["DATABASE_URL_REPLICA"] = p.url(DB + "_replica")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def selftest(module_pooler):
    """scripts/selftest.ts run once, all scenarios, 200 concurrent requests over 50 client
    connections; returns (summary, pooler) for the tests below to check one scenario each."""
    p = module_pooler
    r = _run([TSX, "scripts/selftest.ts", "--concurrency", "200"], timeout=300,
             **_app_env(p, DATABASE_CONNECTION_LIMIT=50, DATABASE_POOL_TIMEOUT=60000))
    lines = r.stdout.strip().splitlines()
    try:
        summary = json.loads(lines[-1])
    except (IndexError, ValueError):
        _fail("scripts/selftest.ts", r, p)
    summary["_stderr"] = r.stderr
    return summary, p


def _scenario(selftest, name):
    summary, p = selftest
    s = summary["scenarios"].get(name)
    assert s is not None, "selftest did not run %s: %s" % (name, summary)
    assert s["ok"], "selftest %s failed: %s\n--- stderr ---\n%s\n%s" % (name, s.get("error"), summary["_stderr"][-4000:],
                                                                      p.describe(40))
    return s


MODULE_POOL = "transaction/5"


@pytest.mark.client("prisma", "CRUD: create, findUnique, update, nested create, createMany, count, paging, "
                    "deleteMany, aggregate; P2025 and P2002 errors", pool=MODULE_POOL)
def test_prisma_crud(selftest):
    _scenario(selftest, "crud")


@pytest.mark.client("prisma", "batch `$transaction([...])` (user + profile, as in the guide): both commit; a "
                    "failing second statement leaves nothing; a RepeatableRead read batch", pool=MODULE_POOL)
def test_prisma_batch_transactions(selftest):
    _scenario(selftest, "batch")


@pytest.mark.client("prisma", "interactive `$transaction(async tx => ...)`: one txid throughout, commit, rollback "
                    "on a thrown error, Serializable isolation", pool=MODULE_POOL)
def test_prisma_interactive_transactions(selftest):
    _scenario(selftest, "interactive")


@pytest.mark.client("prisma", "200 concurrent requests (writes, reads, batch and interactive transactions) from "
                    "50 client connections over a pool of 5: all succeed", pool=MODULE_POOL)
def test_prisma_200_concurrent_requests_over_a_pool_of_5(selftest):
    s = _scenario(selftest, "concurrent")
    assert s["requests"] == 200 and s["write"] + s["read"] + s["batch"] + s["interactive"] == 200, s
    _, p = selftest
    servers = [r for r in show(p, "SERVERS") if r["database"] == DB]
    assert 1 <= len(servers) <= 5, servers
    st = stats_row(p, DB)
    # the pool was the bottleneck: clients queued for a server (microseconds)
    assert st["total_wait_time"] > 0, st


@pytest.mark.client("prisma", "read-after-write on `prismaReplica`: a standby (pg_is_in_recovery), sees the "
                    "primary's write once replayed (polled with a deadline)", pool=MODULE_POOL)
def test_prisma_replica_sees_the_write_once_replayed(selftest):
    s = _scenario(selftest, "replica")
    assert s["replayMs"] < 15000, s


@pytest.mark.client("prisma", "`prismaReplica` refuses create and $executeRaw before they reach the database",
                    pool=MODULE_POOL)
def test_prisma_replica_client_is_read_only(selftest):
    _scenario(selftest, "readonly")


@pytest.mark.client("prisma", "`checkDatabaseConnection()`: primary and replica true, latencies in ms",
                    pool=MODULE_POOL)
def test_prisma_check_database_connection(selftest):
    s = _scenario(selftest, "health")
    assert s["primary"] is True and s["replica"] is True, s


# ---- the example app over HTTP ----

class App:
    """src/server.ts in a child process on a free port."""

    def __init__(self, env, log_dir):
        self.port = free_port()
        self.log_path = os.path.join(log_dir, "app-%d.log" % self.port)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([TSX, "src/server.ts"], cwd=PKG, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=_env(PORT=self.port, HOST=HOST, **env), start_new_session=True)
        wait_for(lambda: "listening on" in self.log() or self.proc.poll() is not None, timeout=60,
                 what="the example app to listen")
        assert self.proc.poll() is None, "the app exited (%s):\n%s" % (self.proc.returncode, self.log())

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def request(self, method, path, body=None, timeout=60):
        c = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body)
            c.request(method, path, body=data, headers={"content-type": "application/json"} if data else {})
            r = c.getresponse()
            text = r.read().decode()
            return r.status, json.loads(text) if text else None
        finally:
            c.close()

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body):
        return self.request("POST", path, body)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Send sig and wait for the app to exit by itself; the exit code (None: still running)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
        return self.proc.returncode

    def kill(self):
        # tsx runs the app in a child node process: the whole process group goes (its own session),
        # or that child outlives the test holding its port and connections
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._log.close()


@pytest.fixture
def app(prisma_db, session_dir):
    """factory: app(pooler, replica=True, **env) -> a running example app; killed after the test."""
    started = []

    def factory(p, replica=True, **env):
        a = App(_app_env(p, replica, **env), session_dir)
        started.append(a)
        return a

    yield factory
    for a in started:
        a.kill()


def _user_on_replica(a, uid, credits=None):
    """GET /users/:id (a replica read): the user, or None while the replica has not replayed it (or
    not yet the given credits)."""
    st, body = a.get("/users/%d" % uid)
    if st != 200 or (credits is not None and body["credits"] != credits):
        return None
    return body


@pytest.mark.client("prisma", "example app over HTTP: POST /users (primary), GET /users/:id (replica, once "
                    "replayed), POST /signup (batch transaction), POST /transfers (interactive; 409 rolls back)")
def test_app_routes_write_on_primary_read_on_replica(pooler, app, cluster):
    p = pooler(TX5, dbs=_dbs(cluster))
    a = app(p)
    st, alice = a.post("/users", {"email": "alice@app.test", "name": "Alice", "credits": 10})
    assert st == 201 and alice["credits"] == 10, (st, alice)
    st, bob = a.post("/signup", {"email": "bob@app.test", "name": "Bob", "bio": "hi"})
    assert st == 201 and bob["profile"]["userId"] == bob["user"]["id"], (st, bob)
    # a failing batch (bio over 280 characters) writes nothing
    st, err = a.post("/signup", {"email": "carol@app.test", "bio": "x" * 281})
    assert st == 400 and err["code"] == "P2000", (st, err)
    st, dup = a.post("/users", {"email": "alice@app.test"})
    assert st == 409 and dup["code"] == "P2002", (st, dup)
    st, post = a.post("/users/%d/posts" % alice["id"], {"title": "first"})
    assert st == 201, (st, post)
    # reads go to the replica: wait for replay
    bob_id = bob["user"]["id"]
    seen = wait_for(lambda: _user_on_replica(a, bob_id), timeout=15, what="bob on the replica")
    assert seen["profile"]["bio"] == "hi", seen
    st, found = a.get("/users?email=carol@app.test")
    assert st == 200 and found == [], found
    # interactive transaction: 4 credits move; 100 do not (409, both balances unchanged)
    st, moved = a.post("/transfers", {"fromId": alice["id"], "toId": bob_id, "amount": 4})
    assert st == 200 and moved["from"]["credits"] == 6 and moved["to"]["credits"] == 4, (st, moved)
    st, refused = a.post("/transfers", {"fromId": alice["id"], "toId": bob_id, "amount": 100})
    assert st == 409 and refused["code"] == "INSUFFICIENT_CREDITS", (st, refused)
    wait_for(lambda: _user_on_replica(a, bob_id, credits=4), timeout=15, what="the transfer on the replica")
    assert cluster.psql('SELECT credits FROM "User" WHERE id = %d' % alice["id"], dbname=DB) == "6"
    # the replica really is the one answering GET: it refuses writes on its own too
    replica_only = cluster.psql("SELECT pg_is_in_recovery()", dbname=DB, port=cluster.replica_port)
    assert replica_only == "t"
    st, missing = a.get("/users/999999")
    assert st == 404, (st, missing)
    st, health = a.get("/health")
    assert st == 200 and health["status"] == "healthy" and health["primary"] and health["replica"], health


@pytest.mark.client("prisma", "example app: 200 concurrent HTTP requests (signups, posts, reads, transfers) with "
                    "DATABASE_CONNECTION_LIMIT=20 over a pool of 5: all succeed")
def test_app_200_concurrent_requests_over_a_pool_of_5(pooler, app, cluster):
    p = pooler(TX5, dbs=_dbs(cluster))
    a = app(p, DATABASE_CONNECTION_LIMIT=20)
    st, payer = a.post("/users", {"email": "rich@burst.test", "credits": 1000})
    assert st == 201, payer
    st, payee = a.post("/users", {"email": "poor@burst.test"})
    assert st == 201, payee

    def one(i):
        kind = i % 4
        if kind == 0:
            return a.post("/signup", {"email": "burst%d@burst.test" % i, "bio": "b%d" % i})
        if kind == 1:
            return a.post("/users/%d/posts" % payer["id"], {"title": "t%d" % i})
        if kind == 2:
            return a.get("/users?email=rich@burst.test")
        return a.post("/transfers", {"fromId": payer["id"], "toId": payee["id"], "amount": 1})

    with concurrent.futures.ThreadPoolExecutor(max_workers=200) as ex:
        results = list(ex.map(one, range(200)))
    bad = [(i, r) for i, r in enumerate(results) if r[0] not in (200, 201)]
    assert not bad, "%d of 200 requests failed, first: %s\n%s\n%s" % (len(bad), bad[:3], a.log()[-3000:], p.describe(30))
    assert cluster.psql('SELECT credits FROM "User" WHERE id = %d' % payer["id"], dbname=DB) == "950"
    assert cluster.psql('SELECT count(*) FROM "Post" WHERE "authorId" = %d' % payer["id"], dbname=DB) == "50"
    servers = [r for r in show(p, "SERVERS") if r["database"] == DB]
    assert 1 <= len(servers) <= 5, servers


@pytest.mark.client("prisma", "GET /health (`checkDatabaseConnection()`) while the replica is stopped: 200, "
                    "primary true, replica false; replica true again once it streams again")
def test_health_when_the_replica_is_stopped_and_comes_back(pooler, app, cluster):
    # A replica of its own: the session's replica must stay up for the other tests.
    standby = cluster.add_replica("prisma_standby")
    try:
        p = pooler(dict(TX5, server_login_retry=1), dbs=_dbs(cluster, replica_port=standby.port))
        a = app(p, DATABASE_HEALTH_TIMEOUT=3000)
        st, h = a.get("/health")
        assert st == 200 and h["primary"] is True and h["replica"] is True and h["status"] == "healthy", h
        assert isinstance(h["latency"]["primary"], int) and isinstance(h["latency"]["replica"], int), h
        standby.stop()
        t0 = time.monotonic()
        st, h = a.get("/health")
        assert st == 200 and h["primary"] is True and h["replica"] is False and h["status"] == "degraded", h
        assert time.monotonic() - t0 < 5, "the health check took %.1f s" % (time.monotonic() - t0)
        # reads on the replica fail, writes on the primary still work
        st, _ = a.get("/users")
        assert st == 500
        st, u = a.post("/users", {"email": "while-replica-down@app.test"})
        assert st == 201, u
        standby.start()
        cluster.wait_streaming(standby)
        wait_for(lambda: a.get("/health")[1]["replica"] is True, timeout=30, what="/health to see the replica again")
        st, h = a.get("/health")
        assert st == 200 and h["status"] == "healthy", h
    finally:
        cluster.remove_replica(standby)


@pytest.mark.client("prisma", "without DATABASE_URL_REPLICA reads go to the primary; /health reports replica false")
def test_without_a_replica_reads_go_to_the_primary(pooler, app, cluster):
    p = pooler(TX5, dbs=_dbs(cluster))
    a = app(p, replica=False)
    st, u = a.post("/users", {"email": "no-replica@app.test"})
    assert st == 201, u
    st, got = a.get("/users/%d" % u["id"])  # read-your-write: the read ran on the primary
    assert st == 200 and got["email"] == "no-replica@app.test", (st, got)
    st, h = a.get("/health")
    assert st == 200 and h["primary"] is True and h["replica"] is False and "replica" not in h["latency"], h


@pytest.mark.client("prisma", "graceful shutdown: SIGTERM closes the HTTP server and both clients' pools; the app "
                    "exits 0 by itself and pgsluice sees its clients leave")
def test_app_shuts_down_gracefully_on_sigterm(pooler, app, cluster):
    p = pooler(TX5, dbs=_dbs(cluster))
    a = app(p)
    assert a.get("/health")[0] == 200
    assert a.get("/users")[0] == 200
    assert [r for r in show(p, "CLIENTS") if r["database"] in (DB, DB + "_replica")]
    code = a.stop(signal.SIGTERM, timeout=15)
    assert code == 0, "exit code %s (None: still running 15 s after SIGTERM: a pool left open?)\n%s" % (code, a.log())
    assert "stopped" in a.log()
    wait_for(lambda: not [r for r in show(p, "CLIENTS") if r["database"] in (DB, DB + "_replica")], timeout=10,
             what="the app's clients to leave pgsluice")


# ---- the module's own checks (no pooler involved) ----

def test_typescript_typechecks(prisma_pkg):
    r = _run([os.path.join(PKG, "node_modules", ".bin", "tsc"), "-p", "."], timeout=180)
    if r.returncode != 0:
        _fail("tsc -p integrations/prisma", r)


@pytest.mark.parametrize("env, message", [
    ({}, "DATABASE_URL is not set"),
    ({"DATABASE_URL": "mysql://x@h/db"}, "DATABASE_URL must start with postgresql://"),
    ({"DATABASE_URL": "postgresql://app@127.0.0.1:1/db?connection_limit=5"},
     "DATABASE_URL has ?connection_limit=, which Prisma 7's pg adapter ignores: set DATABASE_CONNECTION_LIMIT instead"),
    ({"DATABASE_URL": "postgresql://app@127.0.0.1:1/db", "DATABASE_CONNECTION_LIMIT": "ten"},
     'DATABASE_CONNECTION_LIMIT must be a positive whole number, not "ten"'),
    ({"DATABASE_URL": "postgresql://app@127.0.0.1:1/db", "DATABASE_POOL_TIMEOUT": "0"},
     "DATABASE_POOL_TIMEOUT must be a positive whole number"),
    ({"DATABASE_URL": "postgresql://app@127.0.0.1:1/db", "DATABASE_URL_REPLICA": "not a url"},
     "DATABASE_URL_REPLICA is not a valid URL"),
], ids=["missing", "not-postgres", "classic-url-flag", "bad-limit", "zero-timeout", "bad-replica"])
def test_the_app_refuses_to_start_with_a_bad_setting(prisma_pkg, env, message):
    r = _run([TSX, "src/server.ts"], timeout=60, PORT=free_port(), **env)
    assert r.returncode != 0, r.stdout
    # one line that names the variable, no stack trace
    assert r.stderr.startswith("ConfigError: " + message) and len(r.stderr.strip().splitlines()) == 1, r.stderr[-3000:]
    assert "listening" not in r.stdout


def test_migrate_needs_a_direct_url_and_is_idempotent(prisma_db, cluster, pooler):
    r = _run([TSX, "scripts/migrate.ts"])
    assert r.returncode == 1 and "DIRECT_URL is not set" in r.stderr, r.stderr
    p = pooler(TX5, dbs=_dbs(cluster))
    r = _run([TSX, "scripts/migrate.ts"], DIRECT_URL=p.url(DB), DATABASE_URL=p.url(DB))
    assert r.returncode == 1 and "DIRECT_URL equals DATABASE_URL" in r.stderr, r.stderr
    assert "applied 20250101000000_init" in prisma_db.stdout, prisma_db.stdout
    again = _run([TSX, "scripts/migrate.ts"], DIRECT_URL=_direct_url(cluster))
    assert again.returncode == 0 and "0 applied, 1 already there" in again.stdout, again.stdout + again.stderr
    sql = open(os.path.join(PKG, "prisma", "migrations", "20250101000000_init", "migration.sql"), "rb").read()
    row = cluster.psql("SELECT migration_name || ' ' || checksum || ' ' || applied_steps_count "
                       "FROM _prisma_migrations", dbname=DB)
    assert row == "20250101000000_init %s 1" % hashlib.sha256(sql).hexdigest()
    # the session lock was released with the session
    assert cluster.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'", dbname=DB) == "0"
