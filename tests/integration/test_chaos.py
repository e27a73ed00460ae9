"""Chaos: pgsluice never loses or corrupts a client's data under faults (transaction mode).

Twelve clients (psycopg 3 and asyncpg; simple and extended protocol; unnamed and named prepared
statements; pipelines and executemany batches; explicit transactions and single autocommit
statements) run a ledger workload through a pool of 4 servers while a chaos task terminates the
pool's backends (idle, mid-transaction, mid-statement), sends RELOAD, RECONNECT, KILL_CLIENT and
SET default_pool_size on the console, and restarts PostgreSQL once (fast mode).

pgsluice sends a request again to another server when the one it went to died without reading it
(docs/ARCHITECTURE.md, resend_ok): if it ever judged that wrongly, a transaction would run twice.
Every transaction writes a unique txid into a ledger without a unique constraint (a double run shows
as two rows instead of being refused) and adds its amount to an account in the same transaction.
Each client records what its driver told it: committed, failed (before COMMIT, or with the
connection still up), or unknown (the connection was lost while the COMMIT, or the one request that
was the whole transaction, was out). Checked against PostgreSQL directly at the end: committed ones
are there exactly once, failed ones are absent, unknown ones at most once, batches all or nothing,
no row that no client wrote, every account's balance equals its ledger rows; every error a client
saw was a PostgreSQL error with a SQLSTATE or a connection that ended (never a protocol desync on a
connection that stays up), no client hung, no more transactions failed than faults hit them outside
the restart (a terminated backend serves one client; one terminated idle in the pool costs none),
and pgsluice serves a new client afterwards with no server left behind.

It found: a backend terminated right after it answered sends its FATAL behind the answer; passed on
to the client between its transactions, drivers took it for the answer to the next request, which
ran on another server (psycopg pipelines reported AdminShutdown for statements that committed;
asyncpg failed "another operation is in progress" or hung). test_server_killed.py pins it.

Its own primary (the restart must not disturb the suite's cluster). Bounded by CHAOS_SECONDS of
chaos (env SL_CHAOS_SECONDS overrides; SL_CHAOS_SEED replays a seed)."""
import asyncio
import os
import random
import re
import socket
import time

import asyncpg
import psycopg
import pytest

from admin_helpers import pool_row
from harness import clients
from harness.cluster import PG_BINDIR, Cluster
from harness.util import run_as_postgres, wait_for

pytestmark = [
    pytest.mark.pgsluice_only,  # KILL_CLIENT, and resends: PgBouncer fails a client whose server died idle
    pytest.mark.slow,
    # asyncpg given a FATAL while idle in a transaction complains inside a callback too (what it
    # raises to the caller is checked)
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

CHAOS_SECONDS = float(os.environ.get("SL_CHAOS_SECONDS", "30"))
ACCOUNTS = 20
POOL_SIZE = 4
TXN_TIMEOUT = 60  # a transaction not done by then is a hung client (query_wait_timeout is 30)

# client styles, one task each (12 clients for a pool of 4)
STYLES = ["psy_tx", "psy_tx_prepared", "psy_simple", "psy_pipeline", "psy_tx", "psy_prepared_ac",
          "apg_tx", "apg_prepared", "apg_simple", "apg_many", "apg_tx", "apg_many_prepared"]
BATCHES = ("psy_pipeline", "psy_prepared_ac", "apg_many", "apg_many_prepared")  # 1-3 transactions at once

INSERT = "INSERT INTO chaos_ledger (txid, client, acct, amount) VALUES (%s, %s, %s, %s)"
UPDATE = "UPDATE chaos_accounts SET balance = balance + %s WHERE id = %s"
# one statement, one implicit transaction: the ledger row and the balance together
CTE = ("WITH l AS (INSERT INTO chaos_ledger (txid, client, acct, amount) VALUES (%s, %s, %s, %s) "
       "RETURNING acct, amount) UPDATE chaos_accounts a SET balance = a.balance + l.amount FROM l WHERE a.id = l.acct")


def dollar(q):
    """psycopg placeholders to asyncpg's $n."""
    n = iter(range(1, 100))
    return re.sub("%s", lambda m: "$%d" % next(n), q)


def literal(q, args):
    """The statement with its arguments inline (simple protocol; txids and ints only)."""
    return q % tuple("'%s'" % a if isinstance(a, str) else str(int(a)) for a in args)


# ---- what a client may see ----

# a connection lost without an error message: what each driver says then
LOSS_WORDS = re.compile(r"server closed the connection unexpectedly|connection (was )?closed|consuming input failed|"
                        r"connection reset|broken pipe|the connection is lost|connection is bad|"
                        r"connection to server .* failed|sending query failed|no connection to the server",
                        re.IGNORECASE)
# SQLSTATEs of an error that ends the connection
FATAL_STATES = ("08", "57P")


class Outcome:
    OK, FAILED, UNKNOWN = "ok", "failed", "unknown"


class Recorder:
    """Every txid a client tried, with what its driver said; batches (all-or-nothing groups)."""

    def __init__(self):
        self.outcome = {}   # txid -> Outcome
        self.groups = []    # lists of txids committed together (one implicit transaction)
        self.errors = {}    # (style, sqlstate or 'loss') -> count
        self.samples = {}   # key -> one error message of its kind
        self.bad = []       # errors that are neither a PostgreSQL error nor a clean connection loss
        self.hung = []
        self.per_style = {}  # style -> committed count
        self.failures = {Outcome.FAILED: 0, Outcome.UNKNOWN: 0}  # transactions (a batch is one)
        self.fail_times = []  # when each failed
        self.connects = 0

    def note(self, style, key, e):
        self.errors[(style, key)] = self.errors.get((style, key), 0) + 1
        self.samples.setdefault((style[:3], key), "%s: %s" % (type(e).__name__, " ".join(str(e).split())[:160]))


# ---- one client ----

class Client:
    def __init__(self, n, style, pooler, rec, rng, stop):
        self.n, self.style, self.p, self.rec, self.rng, self.stop = n, style, pooler, rec, rng, stop
        self.conn = None
        self.seq = 0
        self.psy = style.startswith("psy")

    def txid(self):
        self.seq += 1
        return "c%d-%d" % (self.n, self.seq)

    def args(self, txid):
        return (txid, self.n, self.rng.randrange(ACCOUNTS), self.rng.randint(1, 100))

    async def connect(self):
        p = self.p
        while True:
            try:
                self.rec.connects += 1
                if self.psy:
                    self.conn = await psycopg.AsyncConnection.connect(
                        p.dsn("appdb", "app", application_name="chaos-%d" % self.n),
                        autocommit=self.style in ("psy_simple", "psy_pipeline", "psy_prepared_ac"),
                        prepare_threshold=None)
                else:
                    self.conn = await clients.aconnect(
                        p, statement_cache_size=100 if self.style in ("apg_prepared", "apg_many_prepared") else 0,
                        server_settings={"application_name": "chaos-%d" % self.n})
                return
            except (psycopg.Error, asyncpg.PostgresError, OSError, asyncio.TimeoutError) as e:
                if isinstance(e, asyncio.TimeoutError):
                    self.rec.bad.append("%s: login timed out" % self.style)
                else:
                    await self.classify(e, "login")
                if self.stop.is_set():
                    return
                await asyncio.sleep(0.05)

    async def drop(self):
        c, self.conn = self.conn, None
        if c is not None:
            try:
                await asyncio.wait_for(c.close(), 10)
            except Exception:  # noqa: BLE001 (a broken connection may complain while closing)
                pass

    def alive(self):
        if self.conn is None:
            return False
        return not (self.conn.closed or self.conn.broken) if self.psy else not self.conn.is_closed()

    def local_port(self):
        try:
            if self.psy:
                with socket.socket(fileno=os.dup(self.conn.pgconn.socket)) as sk:
                    return sk.getsockname()[1]
            return self.conn._transport.get_extra_info("sockname")[1]
        except Exception:  # noqa: BLE001
            return None

    async def diagnose(self):
        """What pgsluice and PostgreSQL say about a hung client: its SHOW SOCKETS row, its server's,
        and that server's backend."""
        port = self.local_port()
        out = ["client local port %s" % port]
        try:
            async with await psycopg.AsyncConnection.connect(self.p.dsn("pgbouncer", "postgres"), autocommit=True,
                                                             prepare_threshold=None) as con:
                cur = await con.execute("SHOW SOCKETS")
                cols = [d.name for d in cur.description]
                rows = [dict(zip(cols, r)) for r in await cur.fetchall()]
            me = [r for r in rows if r["type"] == "C" and r["port"] == port]
            out += ["client: %s" % r for r in me]
            links = {r["link"] for r in me if r["link"]}
            srv = [r for r in rows if r["type"] == "S" and r["ptr"] in links]
            out += ["server: %s" % r for r in srv]
            async with await psycopg.AsyncConnection.connect(self.p.cluster.dsn("appdb"), autocommit=True) as d:
                for r in srv:
                    out.append("backend: %s" % (await (await d.execute(
                        "SELECT pid, state, wait_event, query FROM pg_stat_activity WHERE pid = %s",
                        (r["remote_pid"],))).fetchall()))
        except Exception as e:  # noqa: BLE001
            out.append("diagnosis failed: %r" % e)
        return "\n".join(out)

    async def drain(self, timeout=2.0):
        """psycopg: the results that still arrive on a connection that stayed up (diagnosis)."""
        pg, got = self.conn.pgconn, []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(got) < 40:
            try:
                pg.consume_input()
            except psycopg.OperationalError as e:
                got.append("consume: %s" % " ".join(str(e).split())[:100])
                break
            if pg.is_busy():
                await asyncio.sleep(0.02)
                continue
            r = pg.get_result()
            got.append(None if r is None else (r.status.name if hasattr(r.status, "name") else r.status,
                                               r.error_field(psycopg.pq.DiagnosticField.SQLSTATE),
                                               r.command_status))
        return got

    async def ends_soon(self, timeout=10.0):
        """The connection is found closed within timeout (the driver met its end)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            if self.psy:
                try:
                    self.conn.pgconn.consume_input()  # reads what arrived: a closed socket sets the status BAD
                except psycopg.OperationalError:
                    return True
                if self.conn.pgconn.status == psycopg.pq.ConnStatus.BAD:
                    return True
            await asyncio.sleep(0.02)
        return False

    async def classify(self, e, where):
        """What the driver said: (SQLSTATE or None, the connection ended). A PostgreSQL error has a
        SQLSTATE; without one, only a lost connection is acceptable (the driver's words for it, or a
        driver that tripped over the connection's end: asyncpg given a FATAL while idle, psycopg
        leaving a pipeline whose connection broke). Anything else is a protocol desync: recorded."""
        state = getattr(e, "sqlstate", None)
        if isinstance(e, asyncpg.ConnectionDoesNotExistError):
            state = None  # asyncpg's own words for a lost connection (its 08003)
        if state:
            key = state
        elif isinstance(e, (ConnectionError, asyncio.IncompleteReadError)) or LOSS_WORDS.search(str(e)):
            key = "loss"
        elif where != "login" and await self.ends_soon():
            key = "loss (%s)" % re.sub(r"\d+", "N", str(e))[:60]
        else:
            key = "bad"
            extra = ""
            if self.psy and self.conn is not None:
                pg = self.conn.pgconn
                extra = " status %s txn %s pipeline %s; then: %s" % (pg.status, pg.transaction_status, pg.pipeline_status,
                                                                     await self.drain())
            self.rec.bad.append("%s %s: %s: %r (the connection stayed up%s; context %r)" % (
                self.style, where, type(e).__name__, e, extra, e.__context__))
        self.rec.note(self.style, key, e)
        return state, state is None or state.startswith(FATAL_STATES) or not self.alive()

    async def run(self):
        while not self.stop.is_set():
            if self.conn is None:
                await self.connect()
                if self.conn is None:
                    return
            txids = [self.txid() for _ in range(self.rng.randint(1, 3) if self.style in BATCHES else 1)]
            phase = ["before"]
            try:
                await asyncio.wait_for(self.one(txids, phase), TXN_TIMEOUT)
            except asyncio.TimeoutError:
                self.rec.hung.append("%s: %s not done after %d s (phase %s)\n%s" % (
                    self.style, txids, TXN_TIMEOUT, phase[0], await self.diagnose()))
                for t in txids:
                    self.rec.outcome[t] = Outcome.UNKNOWN
                return  # the test fails: a hung client
            except (psycopg.Error, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                    OSError, asyncio.IncompleteReadError) as e:
                state, ended = await self.classify(e, phase[0])
                # lost while the COMMIT (or the whole transaction's one request) was out: unknown
                out = Outcome.UNKNOWN if phase[0] == "commit" and ended else Outcome.FAILED
                for t in txids:
                    self.rec.outcome[t] = out
                self.rec.failures[out] += 1
                self.rec.fail_times.append(time.monotonic())
                await self.drop()  # a new connection for the next one (also after a plain SQL error)
                continue
            for t in txids:
                self.rec.outcome[t] = Outcome.OK
            self.rec.per_style[self.style] = self.rec.per_style.get(self.style, 0) + len(txids)
            if self.rng.random() < 0.3:  # a pause now and then: servers sit idle in the pool
                await asyncio.sleep(self.rng.uniform(0, 0.02))
        await self.drop()

    async def one(self, txids, phase):
        """One transaction (or batch). phase[0] = "commit" from the moment its outcome may be decided."""
        c, style, rng = self.conn, self.style, self.rng
        args = [self.args(t) for t in txids]
        if len(txids) > 1:
            self.rec.groups.append(list(txids))
        a = args[0]
        upd = (a[3], a[2])
        if style in ("psy_tx", "psy_tx_prepared"):
            prep = style == "psy_tx_prepared"
            async with c.cursor() as cur:  # autocommit off: psycopg sends BEGIN first
                await cur.execute(INSERT, a, prepare=prep)
                if rng.random() < 0.2:
                    await cur.execute("SELECT pg_sleep(0.02)")  # time for a kill mid-transaction
                await cur.execute(UPDATE, upd, prepare=prep)
            phase[0] = "commit"
            await c.commit()
        elif style == "psy_simple":
            cur = psycopg.AsyncClientCursor(c)  # simple query protocol
            if rng.random() < 0.5:  # the whole transaction in one Query
                phase[0] = "commit"
                await cur.execute("BEGIN; %s; %s; COMMIT" % (literal(INSERT, a), literal(UPDATE, upd)))
            else:
                await cur.execute("BEGIN")
                await cur.execute("%s; %s" % (literal(INSERT, a), literal(UPDATE, upd)))
                phase[0] = "commit"
                await cur.execute("COMMIT")
        elif style == "psy_pipeline" or (style == "psy_prepared_ac" and len(args) > 1):
            phase[0] = "commit"  # one Sync at the end: one implicit transaction for the batch
            async with c.pipeline():
                for x in args:
                    await c.execute(CTE, x, prepare=style == "psy_prepared_ac")
        elif style == "psy_prepared_ac":  # autocommit single statement, a named statement
            phase[0] = "commit"
            await c.execute(CTE, a, prepare=True)
        elif style in ("apg_tx", "apg_prepared") and (style == "apg_tx" or rng.random() < 0.5):
            tr = c.transaction()
            await tr.start()
            await c.execute(dollar(INSERT), *a)
            if rng.random() < 0.2:
                await c.execute("SELECT pg_sleep(0.02)")
            await c.execute(dollar(UPDATE), *upd)
            phase[0] = "commit"
            await tr.commit()
        elif style == "apg_prepared":  # autocommit single statement, a named statement of asyncpg's cache
            phase[0] = "commit"
            await c.execute(dollar(CTE), *a)
        elif style == "apg_simple":
            if rng.random() < 0.5:
                phase[0] = "commit"
                await c.execute("BEGIN; %s; %s; COMMIT" % (literal(INSERT, a), literal(UPDATE, upd)))
            else:
                await c.execute("BEGIN; " + literal(INSERT, a))
                await c.execute(literal(UPDATE, upd))
                phase[0] = "commit"
                await c.execute("COMMIT")
        elif style in ("apg_many", "apg_many_prepared"):  # Bind/Execute pipelined, one Sync: atomic
            phase[0] = "commit"
            await c.executemany(dollar(CTE), args)
        else:
            raise AssertionError(style)


# ---- the chaos ----

POOL_BACKENDS = ("SELECT pid, state FROM pg_stat_activity WHERE datname = 'appdb' AND usename = 'app' "
                 "AND backend_type = 'client backend'")


class Chaos:
    def __init__(self, pooler, cluster, rec, rng, stop):
        self.p, self.cluster, self.rec, self.rng, self.stop = pooler, cluster, rec, rng, stop
        self.kills = {}  # pg_stat_activity state at the kill -> count
        self.restart_window = None  # (start, end) of the restart
        self.actions = {}
        self.direct = None
        self.console = None

    def count(self, what, n=1):
        self.actions[what] = self.actions.get(what, 0) + n

    async def _direct(self):
        if self.direct is None or self.direct.closed or self.direct.broken:
            self.direct = await psycopg.AsyncConnection.connect(self.cluster.dsn("appdb"), autocommit=True)
        return self.direct

    async def _console(self):
        if self.console is None or self.console.closed or self.console.broken:
            self.console = await psycopg.AsyncConnection.connect(self.p.dsn("pgbouncer", "postgres"),
                                                                 autocommit=True, prepare_threshold=None)
        return self.console

    async def terminate(self, how):
        d = await self._direct()
        rows = await (await d.execute(POOL_BACKENDS)).fetchall()
        if not rows:
            return
        if how == "all":
            victims = rows
        elif how in ("busy", "idle") and any((s == "idle") == (how == "idle") for _, s in rows):
            victims = [self.rng.choice([r for r in rows if (r[1] == "idle") == (how == "idle")])]
        else:
            victims = [self.rng.choice(rows)]
        for pid, state in victims:
            done = (await (await d.execute("SELECT pg_terminate_backend(%s)", (pid,))).fetchone())[0]
            if done:
                self.kills[state] = self.kills.get(state, 0) + 1

    async def admin(self, what):
        con = await self._console()
        if what == "KILL_CLIENT":
            cur = await con.execute("SHOW CLIENTS")
            cols = [d.name for d in cur.description]
            ids = [r[cols.index("id")] for r in await cur.fetchall() if r[cols.index("database")] == "appdb"]
            if not ids:
                return
            try:
                await con.execute("KILL_CLIENT %d" % self.rng.choice(ids))
            except psycopg.errors.DatabaseError as e:
                if "client not found" not in str(e):  # it left meanwhile
                    raise
        elif what == "POOL_SIZE":
            await con.execute("SET default_pool_size = %d" % self.rng.choice([POOL_SIZE - 1, POOL_SIZE]))
        else:
            await con.execute(what)
        self.count(what)

    async def restart(self):
        self.restart_window = [time.monotonic(), None]
        await asyncio.to_thread(run_as_postgres, [
            os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.cluster.primary.datadir, "-m", "fast", "-w", "-t", "60",
            "restart", "-l", self.cluster.primary.logfile], timeout=90)
        self.restart_window[1] = time.monotonic()
        self.count("restart")

    async def run(self, seconds):
        start = time.monotonic()
        restart_at = start + seconds * self.rng.uniform(0.3, 0.6)
        restarted = False
        while time.monotonic() - start < seconds:
            await asyncio.sleep(self.rng.uniform(0.02, 0.15))
            try:
                if not restarted and time.monotonic() >= restart_at:
                    restarted = True
                    await self.restart()
                    continue
                r = self.rng.random()
                if r < 0.35:
                    await self.terminate("busy")  # active, or idle in transaction: its client is mid-transaction
                elif r < 0.60:
                    await self.terminate("idle")  # in the pool: the next request to it must go elsewhere
                elif r < 0.70:
                    await self.terminate("any")
                elif r < 0.74:
                    await self.terminate("all")
                elif r < 0.82:
                    await self.admin("RECONNECT appdb")
                elif r < 0.90:
                    await self.admin("RELOAD")
                elif r < 0.95:
                    await self.admin("POOL_SIZE")
                else:
                    await self.admin("KILL_CLIENT")
            except psycopg.OperationalError:
                # the direct connection was terminated by the restart, or the server is starting: again
                for c in (self.direct, self.console):
                    if c is not None and (c.closed or c.broken):
                        await c.close()
        self.stop.set()
        for c in (self.direct, self.console):
            if c is not None:
                await c.close()


# ---- the test ----

@pytest.fixture(scope="module")
def own_cluster(session_dir):
    c = Cluster(os.path.join(session_dir, "pgchaos"), replica=False).start()
    yield c
    c.stop()


def _setup_tables(cluster):
    with psycopg.connect(cluster.dsn("appdb"), autocommit=True) as d:
        d.execute("DROP TABLE IF EXISTS chaos_ledger, chaos_accounts")
        d.execute("CREATE TABLE chaos_ledger (txid text NOT NULL, client int NOT NULL, acct int NOT NULL, "
                  "amount int NOT NULL)")  # no unique constraint: a double run shows as two rows
        d.execute("CREATE TABLE chaos_accounts (id int PRIMARY KEY, balance bigint NOT NULL)")
        d.execute("INSERT INTO chaos_accounts SELECT g, 0 FROM generate_series(0, %d) g" % (ACCOUNTS - 1))
        d.execute("GRANT ALL ON chaos_ledger, chaos_accounts TO app")


async def _workload(p, cluster, rec, seed):
    rng = random.Random(seed)
    stop = asyncio.Event()
    cl = [Client(i, s, p, rec, random.Random(rng.random()), stop) for i, s in enumerate(STYLES)]
    tasks = [asyncio.create_task(c.run()) for c in cl]
    # chaos starts once every client has committed something (all logged in, the pool full)
    deadline = time.monotonic() + 60
    while len(rec.per_style) < len(set(STYLES)) and time.monotonic() < deadline and not rec.bad:
        await asyncio.sleep(0.05)
    chaos = Chaos(p, cluster, rec, random.Random(rng.random()), stop)
    try:
        await chaos.run(CHAOS_SECONDS)
    finally:
        stop.set()
    # the clients finish their current transaction (or hang: recorded, then given up on)
    done, pending = await asyncio.wait(tasks, timeout=TXN_TIMEOUT + 15)
    for t in pending:
        rec.hung.append("a client task did not end")
        t.cancel()
    for t in done:
        if t.exception() is not None:
            rec.bad.append("client task crashed: %r" % t.exception())
    return chaos


def _check_ledger(cluster, rec):
    with psycopg.connect(cluster.dsn("appdb"), autocommit=True) as d:
        rows = dict(d.execute("SELECT txid, count(*) FROM chaos_ledger GROUP BY txid").fetchall())
        balances = d.execute("SELECT a.id, a.balance, coalesce(sum(l.amount), 0) FROM chaos_accounts a "
                             "LEFT JOIN chaos_ledger l ON l.acct = a.id GROUP BY a.id, a.balance "
                             "HAVING a.balance <> coalesce(sum(l.amount), 0)").fetchall()
        orphan_accts = d.execute("SELECT count(*) FROM chaos_ledger WHERE acct NOT IN "
                                 "(SELECT id FROM chaos_accounts)").fetchone()[0]
    problems = []
    twice = sorted(t for t, n in rows.items() if n > 1)
    if twice:
        problems.append("run twice (%d): %s" % (len(twice), twice[:20]))
    nobody = sorted(set(rows) - set(rec.outcome))
    if nobody:
        problems.append("rows no client wrote: %s" % nobody[:20])
    lost = sorted(t for t, o in rec.outcome.items() if o == Outcome.OK and rows.get(t, 0) != 1)
    if lost:
        problems.append("reported committed but not in the ledger exactly once (%d): %s" % (len(lost), lost[:20]))
    ghost = sorted(t for t, o in rec.outcome.items() if o == Outcome.FAILED and rows.get(t, 0))
    if ghost:
        problems.append("reported failed but committed (%d): %s" % (len(ghost), ghost[:20]))
    torn = [g for g in rec.groups if len({rows.get(t, 0) for t in g}) > 1]
    if torn:
        problems.append("batches half committed: %s" % torn[:10])
    if balances or orphan_accts:
        problems.append("balances differ from the ledger: %s (rows for unknown accounts: %d)" % (balances[:10], orphan_accts))
    unknown = [t for t, o in rec.outcome.items() if o == Outcome.UNKNOWN]
    return problems, rows, unknown


def test_no_transaction_is_lost_or_run_twice_under_chaos(pooler, own_cluster):
    seed = int(os.environ.get("SL_CHAOS_SEED") or random.SystemRandom().randrange(1 << 30))
    _setup_tables(own_cluster)
    p = pooler({"pool_mode": "transaction", "default_pool_size": POOL_SIZE, "query_wait_timeout": 30,
                "server_login_retry": 1, "stats_users": "plainuser"}, cluster=own_cluster)
    rec = Recorder()
    t0 = time.monotonic()
    chaos = asyncio.run(_workload(p, own_cluster, rec, seed))
    took = time.monotonic() - t0
    problems, rows, unknown = _check_ledger(own_cluster, rec)
    counts = {o: sum(1 for v in rec.outcome.values() if v == o) for o in (Outcome.OK, Outcome.FAILED, Outcome.UNKNOWN)}
    summary = ("seed %d (SL_CHAOS_SEED), %.1f s: txid outcomes %s, failed/unknown transactions %s, committed per style %s, kills by backend state %s, "
               "admin/restart %s, errors %s, logins %d, unknown txids %s"
               % (seed, took, counts, rec.failures, rec.per_style, chaos.kills, chaos.actions,
                  {"%s/%s" % k: v for k, v in sorted(rec.errors.items())}, rec.connects, unknown[:20]))
    log = p.log_text()
    summary += ("; unknown ones committed: %d of %d; pgsluice log: %d requests sent to another server (died unread), "
                "%d servers found dead in the pool, %d terminated right after an answer; error samples:\n  %s"
                % (sum(1 for t in unknown if rows.get(t)), len(unknown),
                   log.count("server closed before reading its client's request"),
                   log.count("server closed while idle in the pool"),
                   log.count("server terminated right after its client's last answer"),
                                                "\n  ".join("%s %s = %s" % (k[0], k[1], v) for k, v in sorted(rec.samples.items()))))
    print(summary)
    problems += ["client error that is no PostgreSQL error: %s" % b for b in rec.bad[:20]]
    problems += ["hung: %s" % h for h in rec.hung]
    # each fault costs at most one client its transaction: a terminated backend serves one client,
    # KILL_CLIENT ends one, the restart ends what every client had in flight
    # (what fails while PostgreSQL restarts, and a moment after, is the restart's: not counted)
    a, b = chaos.restart_window or (0, 0)
    failed = sum(1 for t in rec.fail_times if not a <= t <= b + 2)
    faults = sum(chaos.kills.values()) + chaos.actions.get("KILL_CLIENT", 0)
    if failed > faults:
        problems.append("%d transactions failed for %d faults (not counting the restart's)" % (failed, faults))
    assert not problems, "\n".join(problems) + "\n" + summary + "\n" + p.describe(80)
    # the test tested something
    assert sum(chaos.kills.values()) >= 10 and chaos.actions.get("restart") == 1, summary
    assert all(rec.per_style.get(s, 0) >= 5 for s in STYLES), summary
    # pgsluice is alive, serves new clients (both drivers), and no server stayed linked
    clients.assert_pooler_serves(p)

    async def apg():
        c = await clients.aconnect(p)
        try:
            assert await c.fetchval("SELECT count(*) FROM chaos_ledger") == sum(rows.values())
        finally:
            await c.close()
    asyncio.run(apg())
    wait_for(lambda: (lambda r: r and r["sv_active"] == 0 and r["cl_active"] == 0 and r["cl_waiting"] == 0)(
        pool_row(p, "appdb")), timeout=15, what="appdb's pool to be idle")
