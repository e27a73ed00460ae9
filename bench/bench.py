#!/usr/bin/python3
"""bench.py - pgsluice against PgBouncer and direct PostgreSQL, side by side in one run.

Starts a throwaway PostgreSQL 15 on 127.0.0.1, Debian's PgBouncer and pgsluice with the same pool
settings, and runs pgbench scenarios against each target interleaved (direct, pgbouncer, pgsluice,
direct, ...) for several rounds. Reports medians: TPS, mean and p99 latency, pooler CPU seconds per
1,000 transactions (utime+stime from /proc/PID/stat) and pooler RSS, each also as a ratio to
PgBouncer's. Then the steadier figure, instructions per proxied transaction (perf stat where the
machine has the counter, else callgrind on a fixed 20,000-transaction run), the same per login when
scenario 5 runs (its -C workload: one login per transaction), and a CPU profile of
both poolers (perf record, software cpu-clock event). Writes OUT/latest.md, OUT/latest.json and
OUT/latest.png (gnuplot). See bench/README.md.

Run as root (PostgreSQL and PgBouncer run as the postgres OS user) with /usr/bin/python3:
    bench/bench.py                 # the full run (make bench)
    bench/bench.py --smoke         # 1 round, 2 s runs, scenarios 1 and 2 (make test runs this)
Environment: SL_BIN, PGBOUNCER_BIN, BENCH_SECONDS, BENCH_ROUNDS, BENCH_SCENARIOS (e.g. "1,2,6"),
BENCH_SCALE, BENCH_IDLE (idle clients, 10000), BENCH_SL_WORKERS (pgsluice workers, 1), BENCH_AUTH
(md5|scram-sha-256), BENCH_TLS (1: every client connection, to PostgreSQL and to both poolers, uses TLS
with the same throwaway certificates; servers stay plaintext), BENCH_INSTR_TX (20000; 0 skips), BENCH_INSTR_LOGIN (2000 logins, with scenario 5;
0 skips), BENCH_PROFILE (1; 0 skips), BENCH_OUT.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness.util import (HOST, as_postgres_kwargs, chown_to_postgres, free_port, port_is_open,  # noqa: E402
                          run_as_postgres, tail)

PGBIN = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")
TLS = os.environ.get("BENCH_TLS", "0") not in ("", "0")
MAKE_CERTS = os.path.join(ROOT, "tests", "unit", "tls", "make-certs.sh")
TLS_DIR = None  # set by make_tls_certs()


def make_tls_certs(base):
    """BENCH_TLS: one CA and server certificate for PostgreSQL and both poolers (owned by postgres, 0600)."""
    global TLS_DIR
    TLS_DIR = os.path.join(base, "tls")
    os.makedirs(TLS_DIR, exist_ok=True)
    subprocess.run(["sh", MAKE_CERTS, TLS_DIR], check=True, capture_output=True)
    for f in os.listdir(TLS_DIR):
        if f.endswith(".key"):
            os.chmod(os.path.join(TLS_DIR, f), 0o600)
    chown_to_postgres(TLS_DIR, recursive=True)
    os.chmod(TLS_DIR, 0o755)
PGBENCH = os.path.join(PGBIN, "pgbench")
DB, USER, PASSWORD = "bench", "bench", "benchpw"
POOL_SIZE = 20

# The pgbench scenarios of issue 3 (6 and 7 are special-cased in Bench.run_scenario*).
SCENARIOS = {
    "1": dict(title="select-only, simple protocol", clients=50, mode="simple", select=True),
    "2": dict(title="select-only, extended protocol", clients=50, mode="extended", select=True),
    "3": dict(title="select-only, -M prepared", clients=50, mode="prepared", select=True),
    "4": dict(title="TPC-B-like read/write", clients=50, mode="simple", select=False),
    "5": dict(title="connection per transaction (-C)", clients=20, mode="simple", select=True, connect=True),
    "6": dict(title="20 active clients (select-only, simple) + idle clients", clients=20, mode="simple",
              select=True),
    "7": dict(title="scenario 2 with pgsluice default (no workers line), workers=1 and workers=2", clients=50,
              mode="extended",
              select=True),
    # large data (issue 15): BENCH_BIG_CLIENTS clients at once, each moving BENCH_BIG_MB MB (10^6 payload
    # bytes: rows of repeat('x', 1000)); see Bench.run_big
    "8": dict(title="large result set (SELECT repeat('x',1000) FROM generate_series(1,N))", big="result"),
    "9": dict(title="COPY out (COPY (SELECT repeat('x',1000) ...) TO STDOUT)", big="copy_out"),
    "10": dict(title="COPY in (COPY t FROM STDIN, 1,000-byte lines)", big="copy_in"),
}
# System calls counted per MB in the large-data scenarios (perf stat tracepoints; the total is
# raw_syscalls:sys_enter, the rest are the ones a forwarding loop makes).
BIG_SYSCALLS = ("read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg", "epoll_wait",
                "epoll_pwait", "epoll_ctl")
# Failures that are expected and reported, not errors of the harness: PgBouncer 1.18 does not track
# protocol-level prepared statements in transaction mode.
EXPECTED_FAILURES = {("3", "pgbouncer")}


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


# ---------------------------------------------------------------------------------------------
# /proc helpers
# ---------------------------------------------------------------------------------------------
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_split(pid):
    """(utime, stime) of a whole process (all threads), in seconds, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) / CLK_TCK, int(rest[12]) / CLK_TCK


def proc_cpu_seconds(pid):
    """utime + stime of a whole process (all threads), in seconds."""
    return sum(proc_cpu_split(pid))


def proc_ctx_switches(pid):
    """Voluntary + involuntary context switches of all threads of a process."""
    n = 0
    for st in glob.glob("/proc/%d/task/*/status" % pid):
        try:
            with open(st) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        n += int(line.split()[1])
        except OSError:
            pass
    return n


def proc_ctx_threads(pid):
    """{tid: (name, voluntary, involuntary)} context switches of each thread of a process."""
    out = {}
    for st in glob.glob("/proc/%d/task/*/status" % pid):
        name, v, nv = "?", 0, 0
        try:
            with open(st) as f:
                for line in f:
                    if line.startswith("Name:"):
                        name = line.split(None, 1)[1].strip() if len(line.split()) > 1 else "?"
                    elif line.startswith("voluntary_ctxt_switches:"):
                        v = int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        nv = int(line.split()[1])
        except OSError:
            continue
        out[int(st.split("/")[-2])] = (name, v, nv)
    return out


def ctx_delta(pid, before, after):
    """Context switches between two proc_ctx_threads() samples: (voluntary, involuntary, per thread
    [(label, voluntary, involuntary)]). A thread that came and went in between is missed."""
    per = []
    for tid, (name, v, nv) in sorted(after.items()):
        _, v0, nv0 = before.get(tid, (name, 0, 0))
        label = "%s (main)" % name if tid == pid else name
        per.append((label, v - v0, nv - nv0))
    return sum(x[1] for x in per), sum(x[2] for x in per), per


def proc_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler:
    """Polls a process's VmRSS in a thread; .stop() returns the largest value seen (KiB)."""

    def __init__(self, pid, interval=0.25):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self):
        if self.pid:
            self.peak = proc_rss_kb(self.pid)
            self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                self.peak = max(self.peak, proc_rss_kb(self.pid))
            except OSError:
                return

    def stop(self):
        if self.pid:
            self._stop.set()
            self._t.join()
            try:
                self.peak = max(self.peak, proc_rss_kb(self.pid))
            except OSError:
                pass
        return self.peak


def stop_process(proc, timeout=10):
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3), (signal.SIGKILL, 5)):
        try:
            proc.send_signal(sig)
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------
class Postgres:
    """One throwaway PostgreSQL 15 instance (no replica) tuned for benchmarking, not durability."""

    def __init__(self, base, auth):
        self.dir = os.path.join(base, "pg")
        self.datadir = os.path.join(self.dir, "data")
        self.sockdir = os.path.join(self.dir, "run")
        self.logfile = os.path.join(self.dir, "postgres.log")
        self.port = free_port()
        self.auth = auth
        self.started = False

    def start(self):
        os.makedirs(self.sockdir)
        chown_to_postgres(self.dir, recursive=True)
        run_as_postgres([os.path.join(PGBIN, "initdb"), "-D", self.datadir, "-U", "postgres",
                         "--auth-local=trust", "--auth-host=" + self.auth, "-E", "UTF8", "--locale=C.UTF-8",
                         "-N"], timeout=120)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("""
# --- bench/bench.py ---
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 400
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
checkpoint_timeout = 30min
password_encryption = '%s'
""" % (self.port, self.sockdir, self.auth))
            if TLS:
                f.write("ssl = on\nssl_cert_file = '%s/server.crt'\nssl_key_file = '%s/server.key'\n"
                        % (TLS_DIR, TLS_DIR))
        run_as_postgres([os.path.join(PGBIN, "pg_ctl"), "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60",
                         "start"], timeout=90)
        self.started = True
        self.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (USER, PASSWORD))
        self.psql("CREATE DATABASE %s OWNER %s" % (DB, USER))
        self.secret = self.psql("SELECT rolpassword FROM pg_authid WHERE rolname = '%s'" % USER)
        self.version = self.psql("SHOW server_version")

    def psql(self, sql, db="postgres"):
        p = run_as_postgres([os.path.join(PGBIN, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                             "-h", self.sockdir, "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
                            timeout=120)
        return p.stdout.strip()

    def stop(self):
        if not self.started:
            return
        self.started = False
        p = run_as_postgres([os.path.join(PGBIN, "pg_ctl"), "-D", self.datadir, "-m", "fast", "-w", "-t", "30",
                             "stop"], check=False, timeout=60)
        if p.returncode != 0:
            run_as_postgres([os.path.join(PGBIN, "pg_ctl"), "-D", self.datadir, "-m", "immediate", "-w",
                             "stop"], check=False, timeout=60)


# ---------------------------------------------------------------------------------------------
# Poolers
# ---------------------------------------------------------------------------------------------
class Target:
    """Something pgbench connects to: PostgreSQL itself ("direct") or a pooler process."""
    kind = "direct"
    pid = None

    def __init__(self, name, port):
        self.name, self.port = name, port

    def label(self):
        return self.name


class Pooler(Target):
    """PgBouncer or pgsluice with the shared pool settings. PgBouncer runs as the postgres OS user."""

    def __init__(self, name, kind, binary, base, pg, max_clients, workers=None, wrapper=None, dirname=None):
        super().__init__(name, free_port())
        self.kind, self.binary, self.pg, self.workers = kind, binary, pg, workers
        self.wrapper = wrapper or []
        self.dir = os.path.join(base, dirname or name)
        os.makedirs(self.dir, exist_ok=True)
        self.ini = os.path.join(self.dir, "pooler.ini")
        self.userlist = os.path.join(self.dir, "userlist.txt")
        self.logpath = os.path.join(self.dir, "pooler.log")
        self.max_clients = max_clients
        self.proc = None

    def label(self):
        return self.name

    def settings(self):
        s = {
            "listen_addr": HOST,
            "listen_port": self.port,
            "unix_socket_dir": self.dir,
            "auth_type": self.pg.auth,
            "auth_file": self.userlist,
            "pool_mode": "transaction",
            "default_pool_size": POOL_SIZE,
            "min_pool_size": 0,
            "reserve_pool_size": 0,
            "max_db_connections": 0,
            "max_client_conn": self.max_clients,
            "listen_backlog": 4096,
            "server_reset_query": "DISCARD ALL",
            "ignore_startup_parameters": "extra_float_digits",
            "log_connections": 0,
            "log_disconnections": 0,
            "log_stats": 0,
        }
        if self.kind == "pgsluice":
            if self.workers is not None:  # None: no workers line, the default a user gets
                s["workers"] = self.workers
            s["http_port"] = 0
            # BENCH_SL_SET="pkt_buf=65536,...": extra pgsluice settings, for trying a setting out
            for kv in os.environ.get("BENCH_SL_SET", "").split(","):
                if "=" in kv:
                    k, v = kv.split("=", 1)
                    s[k.strip()] = v.strip()
        if TLS:  # clients over TLS, servers in plaintext, for both poolers
            s.update(client_tls_sslmode="require", client_tls_key_file=os.path.join(TLS_DIR, "server.key"),
                     client_tls_cert_file=os.path.join(TLS_DIR, "server.crt"), server_tls_sslmode="disable")
        return s

    def write_config(self):
        with open(self.userlist, "w") as f:
            f.write('"%s" "%s"\n' % (USER, self.pg.secret))
        lines = [";; generated by bench/bench.py", "[databases]",
                 "%s = host=%s port=%d dbname=%s" % (DB, HOST, self.pg.port, DB), "", "[pgbouncer]"]
        lines += ["%s = %s" % kv for kv in self.settings().items()]
        with open(self.ini, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.userlist, 0o600)
        chown_to_postgres(self.dir, recursive=True)

    def start(self, timeout=20):
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("%s binary %s is missing" % (self.kind, self.binary))
        self.write_config()
        logf = open(self.logpath, "ab")
        kwargs = as_postgres_kwargs() if self.kind == "pgbouncer" or self.wrapper else {}
        self.proc = subprocess.Popen(self.wrapper + [self.binary, self.ini], stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True, **kwargs)
        logf.close()
        self.pid = self.proc.pid
        deadline = time.monotonic() + timeout
        while not port_is_open(self.port, timeout=0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("%s did not start (exit %s)\n%s" % (self.name, self.proc.returncode,
                                                                        tail(self.logpath, 30)))
            time.sleep(0.05)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        stop_process(self.proc)


def pooler_version(kind, binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
        return out.splitlines()[0].strip() if out else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


# ---------------------------------------------------------------------------------------------
# pgbench
# ---------------------------------------------------------------------------------------------
def pgbench_cmd(port, spec, seconds=None, per_client=None, log_prefix=None):
    cmd = [PGBENCH, "-h", HOST, "-p", str(port), "-U", USER, "-n", "-j", "1", "-c", str(spec["clients"]),
           "-M", spec["mode"]]
    if spec.get("select"):
        cmd.append("-S")
    if spec.get("connect"):
        cmd.append("-C")
    cmd += ["-T", str(seconds)] if seconds else ["-t", str(per_client)]
    if log_prefix:
        cmd += ["-l", "--log-prefix=" + log_prefix]
    return cmd + [DB]


def pgbench_env():
    env = dict(os.environ)
    env.update(PGPASSWORD=PASSWORD, PGSSLMODE="require" if TLS else "disable", PGCONNECT_TIMEOUT="20",
               LC_ALL="C.UTF-8")
    return env


def first_error(text):
    for line in text.splitlines():
        if "error" in line.lower() or "aborted" in line.lower() or "FATAL" in line:
            return re.sub(r"\s+", " ", line.strip())[:200]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "no output"


def parse_pgbench(out):
    r = {}
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    r["tx"] = int(m.group(1)) if m else 0
    m = re.search(r"number of failed transactions: (\d+)", out)
    r["failed_tx"] = int(m.group(1)) if m else 0
    m = re.search(r"latency average = ([\d.]+) ms", out)
    r["lat_mean_ms"] = float(m.group(1)) if m else None
    m = re.search(r"^tps = ([\d.]+)", out, re.M)
    r["tps"] = float(m.group(1)) if m else None
    return r


def latency_percentile(prefix, pct=99.0):
    """p-th percentile of per-transaction latency (ms) from pgbench -l files; removes the files."""
    lat = []
    for path in glob.glob(prefix + ".*"):
        with open(path) as f:
            for line in f:
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[2].isdigit():
                    lat.append(int(parts[2]))
        os.unlink(path)
    if not lat:
        return None
    lat.sort()
    return lat[min(len(lat) - 1, int(len(lat) * pct / 100.0))] / 1000.0


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------
def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


class Bench:
    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.seconds = env_int("BENCH_SECONDS", 2 if self.smoke else 10)
        self.rounds = env_int("BENCH_ROUNDS", 1 if self.smoke else 3)
        self.scale = env_int("BENCH_SCALE", 1 if self.smoke else 10)
        self.idle_n = env_int("BENCH_IDLE", 10000)
        self.big_mb = env_int("BENCH_BIG_MB", 1 if self.smoke else 100)
        self.big_clients = env_int("BENCH_BIG_CLIENTS", 4)
        self.big_runs = []      # scenarios 8-10: every run (dicts)
        self.big_syscalls = {}  # (scenario, target) -> system call counts of the counted run
        self.sl_workers = env_int("BENCH_SL_WORKERS", 1)
        self.auth = os.environ.get("BENCH_AUTH", "md5")
        self.instr_tx = env_int("BENCH_INSTR_TX", 0 if self.smoke else 20000)
        self.instr_login = env_int("BENCH_INSTR_LOGIN", 0 if self.smoke else 2000)
        self.do_profile = env_int("BENCH_PROFILE", 0 if self.smoke else 1) != 0
        default_sc = "1,2" if self.smoke else "1,2,3,4,5,6,7,8,9,10"
        self.scenarios = [s.strip() for s in os.environ.get("BENCH_SCENARIOS", default_sc).split(",") if s.strip()]
        for s in self.scenarios:
            if s not in SCENARIOS:
                raise SystemExit("bench: unknown scenario %r (known: %s)" % (s, ", ".join(SCENARIOS)))
        self.warmup = 0 if self.smoke else 2
        sl_bin = os.environ.get("SL_BIN", os.path.join(ROOT, "build-bench", "pgsluice"))
        self.sl_bin = sl_bin if os.path.isabs(sl_bin) else os.path.join(ROOT, sl_bin)
        self.pgb_bin = os.environ.get("PGBOUNCER_BIN", "/usr/sbin/pgbouncer")
        default_out = os.path.join(BENCH_DIR, "results")
        self.out = os.environ.get("BENCH_OUT") or (None if self.smoke else default_out)
        self.base = tempfile.mkdtemp(prefix="pgsluice-bench-")
        os.chmod(self.base, 0o755)
        if self.out is None:
            self.out = tempfile.mkdtemp(prefix="pgsluice-bench-smoke-")
        os.makedirs(self.out, exist_ok=True)
        self.pg = None
        self.targets = {}
        self.runs = []          # every measured run (dicts), for latest.json
        self.idle = {}          # scenario 6 details: target -> list of per-round dicts
        self.instr = {}         # pooler -> instructions-per-transaction result
        self.instr_logins = {}  # pooler -> instructions-per-login result (scenario 5's workload)
        self.instr_simple = {}  # pooler -> instructions-per-transaction result, simple protocol (scenario 1's)
        self.instr_tpcb = {}    # pooler -> instructions-per-transaction result, TPC-B-like (scenario 4's)
        self.profiles = {}      # pooler -> list of (share, symbol)
        self.notes = []
        self.problems = []
        self.load_before = os.getloadavg()
        self.torn_down = False
        self._perf_ok = {}
        self.elapsed = 0.0

    # ---- setup / teardown ----
    def setup(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = self.idle_n + 2000
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if "6" in self.scenarios and resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
            raise SystemExit("bench: RLIMIT_NOFILE hard limit %d is below %d (needed for %d idle clients)"
                             % (hard, need, self.idle_n))
        log("PostgreSQL 15 on 127.0.0.1 in %s (auth %s)" % (self.base, self.auth))
        if TLS:
            make_tls_certs(self.base)
        self.pg = Postgres(self.base, self.auth)
        self.pg.start()
        log("pgbench -i -s %d" % self.scale)
        p = subprocess.run([PGBENCH, "-i", "-s", str(self.scale), "-q", "-h", HOST, "-p", str(self.pg.port),
                            "-U", USER, DB], env=pgbench_env(), capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError("pgbench -i failed:\n" + p.stderr[-2000:])
        self.pg.psql("VACUUM ANALYZE", db=DB)
        max_clients = self.idle_n + 500
        self.targets["direct"] = Target("direct", self.pg.port)
        self.targets["pgbouncer"] = Pooler("pgbouncer", "pgbouncer", self.pgb_bin, self.base, self.pg, max_clients)
        workers = {self.sl_workers}
        if "7" in self.scenarios:
            workers |= {1, 2}
        for w in sorted(workers):
            name = "pgsluice" if w == self.sl_workers else "pgsluice-w%d" % w
            self.targets[name] = Pooler(name, "pgsluice", self.sl_bin, self.base, self.pg, max_clients, workers=w)
        if "7" in self.scenarios:  # what a PgBouncer user who switches gets: no workers line at all
            self.targets["pgsluice-default"] = Pooler("pgsluice-default", "pgsluice", self.sl_bin, self.base, self.pg,
                                                      max_clients, workers=None)
        for t in self.targets.values():
            if isinstance(t, Pooler):
                t.start()
                log("%s listening on %s:%d (pid %d)" % (t.name, HOST, t.port, t.pid))

    def teardown(self):
        if self.torn_down:
            return
        self.torn_down = True
        for t in self.targets.values():
            if isinstance(t, Pooler):
                t.stop()
                problems = re.findall(r".*(?:Sanitizer|Segmentation fault|PANIC).*", tail(t.logpath, 200))
                if problems:
                    self.problems.append("%s log: %s" % (t.name, problems[0][:200]))
        if self.pg:
            self.pg.stop()

    def cleanup(self):
        if self.args.keep:
            log("kept %s" % self.base)
        else:
            shutil.rmtree(self.base, ignore_errors=True)

    def target_for_sc7(self, w):
        return self.targets["pgsluice" if w == self.sl_workers else "pgsluice-w%d" % w]

    # ---- one measured pgbench run ----
    def measure(self, sc, target, rnd, record=True, seconds=None, extra=None):
        spec = SCENARIOS[sc]
        seconds = seconds or self.seconds
        if isinstance(target, Pooler) and not target.alive():
            raise RuntimeError("%s is not running any more\n%s" % (target.name, tail(target.logpath, 30)))
        prefix = os.path.join(self.base, "pgbench_log_%s_%s_%d" % (sc, target.name, rnd))
        cmd = pgbench_cmd(target.port, spec, seconds=seconds, log_prefix=prefix if record else None)
        pid = target.pid
        cpu0 = proc_cpu_split(pid) if pid else None
        cs0 = proc_ctx_threads(pid) if pid else None
        sampler = RssSampler(pid).start()
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, env=pgbench_env(), capture_output=True, text=True, cwd=self.base,
                               timeout=seconds + 120)
            out, rc = p.stdout + p.stderr, p.returncode
        except subprocess.TimeoutExpired as e:
            out, rc = "%s\npgbench timed out" % ((e.stdout or b"").decode(errors="replace")), -1
        wall = time.monotonic() - t0
        rss = sampler.stop()
        cpu1 = proc_cpu_split(pid) if pid else None
        cs1 = proc_ctx_threads(pid) if pid else None
        cpu = sum(cpu1) - sum(cpu0) if pid else None
        ucpu = cpu1[0] - cpu0[0] if pid else None
        r = parse_pgbench(out)
        if rc == 0 and r["tx"] == 0 and not r["failed_tx"] and seconds * 3 <= 60:
            # the run ended before its clients had connected (a loaded machine, 50 logins; PostgreSQL
            # itself forks a backend per login): not a failure of the target, a run too short; again,
            # three times longer each time, up to a minute
            log("  scenario %s round %d %-12s no transaction within %d s (clients still connecting): again for %d s"
                % (sc, rnd, target.name, seconds, seconds * 3))
            return self.measure(sc, target, rnd, record=record, seconds=seconds * 3,
                                extra=dict(extra or {}, longer=True))
        r.update(scenario=sc, target=target.name, round=rnd, rc=rc, wall_s=round(wall, 2),
                 pooler_cpu_s=cpu, rss_kb=rss if pid else None)
        r["p99_ms"] = latency_percentile(prefix) if record else None
        r["ok"] = rc == 0 and r["tx"] > 0 and r["tps"] is not None and r["failed_tx"] == 0
        if not r["ok"]:
            r["error"] = first_error(out)
        r["cpu_per_1k"] = (cpu / r["tx"] * 1000.0) if (cpu is not None and r["tx"]) else None
        r["ucpu_per_1k"] = (ucpu / r["tx"] * 1000.0) if (ucpu is not None and r["tx"]) else None
        if pid and r["tx"]:
            vol, invol, per = ctx_delta(pid, cs0, cs1)
            r["cs_per_tx"] = (vol + invol) / r["tx"]
            r["vcs_per_tx"], r["ivcs_per_tx"] = vol / r["tx"], invol / r["tx"]
            r["cs_threads"] = [(label, v / r["tx"], nv / r["tx"]) for label, v, nv in per if v or nv]
        if extra:
            r.update(extra)
        if record:
            self.runs.append(r)
            state = ("tps %.0f p99 %.2f ms" % (r["tps"], r["p99_ms"] or 0)) if r["ok"] else \
                "FAILED: %s" % r["error"]
            cpu_s = " cpu/1k %.3f s" % r["cpu_per_1k"] if r["cpu_per_1k"] is not None else ""
            log("  scenario %s round %d %-12s %s%s" % (sc, rnd, target.name, state, cpu_s))
        return r

    def warm(self, sc, targets):
        if not self.warmup:
            return
        for t in targets:
            self.measure(sc, t, 0, record=False, seconds=self.warmup)

    def scenario_targets(self, sc):
        if sc == "7":
            return [self.targets["pgbouncer"], self.targets["pgsluice-default"], self.target_for_sc7(1),
                    self.target_for_sc7(2)]
        return [self.targets["direct"], self.targets["pgbouncer"], self.targets["pgsluice"]]

    def run_simple(self, sc):
        targets = self.scenario_targets(sc)
        log("scenario %s: %s, %d clients, %d rounds x %d s" % (sc, SCENARIOS[sc]["title"],
                                                              SCENARIOS[sc]["clients"], self.rounds, self.seconds))
        self.warm(sc, targets)
        for rnd in range(1, self.rounds + 1):
            for t in targets:
                self.measure(sc, t, rnd)

    def run_idle(self, sc="6"):
        """Per round: direct with 20 clients; then for each pooler a fresh instance (so that memory kept
        by an earlier round does not hide the growth) runs 20 clients alone, then again while N idle
        logged-in clients are held open."""
        log("scenario 6: %d idle clients + 20 active select-only clients, %d rounds x %d s"
            % (self.idle_n, self.rounds, self.seconds))
        self.warm(sc, [self.targets["direct"]])
        for rnd in range(1, self.rounds + 1):
            for main in self.scenario_targets(sc):
                if not isinstance(main, Pooler):
                    self.measure(sc, main, rnd, extra={"idle": 0})
                    continue
                t = Pooler(main.name, main.kind, main.binary, self.base, self.pg, main.max_clients,
                           workers=main.workers, dirname="%s-s6-r%d" % (main.name, rnd))
                try:
                    t.start()
                    self._idle_round(sc, t, rnd)
                finally:
                    t.stop()

    def _idle_round(self, sc, t, rnd):
        self.warm(sc, [t])
        base = self.measure(sc, t, rnd, extra={"idle": 0})
        time.sleep(0.5)
        rss_before = proc_rss_kb(t.pid)
        idle = subprocess.Popen(
            [sys.executable, os.path.join(BENCH_DIR, "idle_clients.py"), "--host", HOST, "--port", str(t.port),
             "--user", USER, "--password", PASSWORD, "--db", DB, "-n", str(self.idle_n)] + (["--tls"] if TLS else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = idle.stdout.readline().strip()
            m = re.match(r"READY ok=(\d+) failed=(\d+) seconds=([\d.]+)", line)
            if not m:
                raise RuntimeError("idle_clients.py did not get ready: %r %s" % (line, idle.stderr.read()))
            ok, failed, login_s = int(m.group(1)), int(m.group(2)), float(m.group(3))
            time.sleep(1.0)
            rss_idle = proc_rss_kb(t.pid)
            loaded = self.measure(sc, t, rnd, extra={"idle": ok})
        finally:
            idle.stdin.close()
            try:
                idle.wait(60)
            except subprocess.TimeoutExpired:
                idle.kill()
                idle.wait()
        time.sleep(1.0)
        rss_after = proc_rss_kb(t.pid)
        # A-B-A: the 20 clients alone once more, so that a drift between runs (or an order effect)
        # shows up instead of being taken for the idle clients' cost.
        again = self.measure(sc, t, rnd, extra={"idle": 0, "after_idle": True})
        bases = [x for x in (base, again) if x["ok"]]
        d = dict(round=rnd, idle_ok=ok, idle_failed=failed, login_s=login_s, rss_before_kb=rss_before,
                 rss_idle_kb=rss_idle, rss_after_close_kb=rss_after,
                 bytes_per_idle=(rss_idle - rss_before) * 1024.0 / ok if ok else None,
                 tps_base=statistics.mean(x["tps"] for x in bases) if bases else None,
                 tps_base1=base["tps"] if base["ok"] else None, tps_base2=again["tps"] if again["ok"] else None,
                 tps_idle=loaded["tps"] if loaded["ok"] else None,
                 cpu_base=statistics.mean(x["cpu_per_1k"] for x in bases) if bases else None,
                 cpu_idle=loaded["cpu_per_1k"])
        self.idle.setdefault(t.name, []).append(d)
        log("  scenario 6 round %d %-12s %d idle logged in (%d failed) in %.1f s, RSS %d -> %d KiB (%.0f B/client), "
            "%d KiB after they left" % (rnd, t.name, ok, failed, login_s, rss_before, rss_idle,
                                        d["bytes_per_idle"] or 0, rss_after))
        if failed:
            self.notes.append("scenario 6, %s, round %d: %d of %d idle clients failed to log in"
                              % (t.name, rnd, failed, self.idle_n))

    # ---- large data: scenarios 8-10 ----
    def run_big(self, sc):
        """BENCH_BIG_CLIENTS clients at once, each moving BENCH_BIG_MB MB (rows of 1,000 bytes) through
        one target; the same interleaving as the pgbench scenarios. Measured per run: wall time from
        starting the clients to the last one done (throughput = clients x MB / wall), the pooler's
        CPU time (/proc/PID/stat), context switches and peak RSS. System calls are counted in a
        separate, unrecorded run per target (perf stat on syscall tracepoints costs the pooler a
        little per call): the warm-up run, or round 1 when there is none (the smoke run)."""
        kind = SCENARIOS[sc]["big"]
        targets = [self.targets["direct"], self.targets["pgbouncer"], self.targets["pgsluice"]]
        log("scenario %s: %s, %d clients x %d MB, %d rounds"
            % (sc, SCENARIOS[sc]["title"], self.big_clients, self.big_mb, self.rounds))
        self._big_prepare(kind)
        if self.warmup:
            for t in targets:
                self.big_measure(sc, t, 0, count_syscalls=True)
        for rnd in range(1, self.rounds + 1):
            for t in targets:
                self.big_measure(sc, t, rnd, count_syscalls=not self.warmup and rnd == 1)

    def _big_prepare(self, kind):
        rows = self.big_mb * 1000
        if kind == "result":
            self.big_script = os.path.join(self.base, "big_result.sql")
            with open(self.big_script, "w") as f:
                f.write("SELECT repeat('x', 1000) FROM generate_series(1, %d);\n" % rows)
        elif kind == "copy_in" and not getattr(self, "big_input", None):
            self.big_input = os.path.join(self.base, "big_copy_in.txt")
            line = b"x" * 1000 + b"\n"
            with open(self.big_input, "wb") as f:
                for _ in range(rows // 1000):
                    f.write(line * 1000)
            os.chmod(self.big_input, 0o644)
            for k in range(1, self.big_clients + 1):
                self.pg.psql("DROP TABLE IF EXISTS big_in_%d; CREATE UNLOGGED TABLE big_in_%d (t text); "
                             "ALTER TABLE big_in_%d OWNER TO %s" % (k, k, k, USER), db=DB)

    def big_commands(self, kind, port):
        rows = self.big_mb * 1000
        psql = [os.path.join(PGBIN, "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", str(port),
                "-U", USER, "-d", DB, "-c"]
        if kind == "result":  # pgbench: libpq reads the whole result, nothing is printed
            return [[PGBENCH, "-n", "-j", "1", "-c", str(self.big_clients), "-t", "1", "-M", "simple", "-h", HOST,
                     "-p", str(port), "-U", USER, "-f", self.big_script, DB]]
        if kind == "copy_out":  # \copy to a file: psql writes the data there and the "COPY n" tag to stdout
            return [psql + ["\\copy (SELECT repeat('x', 1000) FROM generate_series(1, %d)) TO '/dev/null'" % rows]
                    for _ in range(self.big_clients)]
        return [psql + ["\\copy big_in_%d FROM '%s'" % (k, self.big_input)] for k in range(1, self.big_clients + 1)]

    def syscall_events(self):
        """The syscall tracepoints perf can count here (None: perf stat cannot count tracepoints)."""
        if not hasattr(self, "_sc_events"):
            self._sc_events = None
            evs = ["raw_syscalls:sys_enter"] + ["syscalls:sys_enter_" + n for n in BIG_SYSCALLS]
            ok = []
            for ev in evs:
                try:
                    p = subprocess.run(["perf", "stat", "-x,", "-e", ev, "--", "true"], capture_output=True,
                                       text=True, timeout=30)
                except (OSError, subprocess.TimeoutExpired):
                    break
                if p.returncode == 0 and re.search(r"^\d+,", p.stderr, re.M):
                    ok.append(ev)
            if ok and ok[0] == "raw_syscalls:sys_enter":
                self._sc_events = ok
        return self._sc_events

    def big_measure(self, sc, target, rnd, count_syscalls=False):
        kind = SCENARIOS[sc]["big"]
        if isinstance(target, Pooler) and not target.alive():
            raise RuntimeError("%s is not running any more\n%s" % (target.name, tail(target.logpath, 30)))
        if kind == "copy_in":
            self.pg.psql("TRUNCATE " + ", ".join("big_in_%d" % k for k in range(1, self.big_clients + 1)), db=DB)
        pid = target.pid
        perf, perf_out = None, None
        events = self.syscall_events() if (count_syscalls and pid) else None
        if events:
            perf_out = os.path.join(self.base, "perfstat-big-%s-%s.txt" % (sc, target.name))
            perf = subprocess.Popen(["perf", "stat", "-x,", "-o", perf_out, "-e", ",".join(events), "-p", str(pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        cpu0 = proc_cpu_split(pid) if pid else None
        cs0 = proc_ctx_threads(pid) if pid else None
        sampler = RssSampler(pid).start()
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        procs = [subprocess.Popen(cmd, env=pgbench_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=self.base)
                 for cmd in self.big_commands(kind, target.port)]
        outs = []
        for p in procs:
            try:
                o, e = p.communicate(timeout=600)
            except subprocess.TimeoutExpired:
                p.kill()
                o, e = p.communicate()
                e += "\ntimed out"
            outs.append((p.returncode, o, e))
        wall = time.monotonic() - t0
        rss = sampler.stop()
        cpu1 = proc_cpu_split(pid) if pid else None
        cs1 = proc_ctx_threads(pid) if pid else None
        if perf:
            perf.send_signal(signal.SIGINT)
            try:
                perf.wait(30)
            except subprocess.TimeoutExpired:
                perf.kill()
                perf.wait()
        # did every client move all of its data?
        rows = self.big_mb * 1000
        error = None
        for rc, o, e in outs:
            if rc != 0:
                error = first_error(o + e)
            elif kind == "result":
                r = parse_pgbench(o)
                if r["tx"] != self.big_clients or r["failed_tx"]:
                    error = "pgbench processed %d of %d queries: %s" % (r["tx"], self.big_clients, first_error(o + e))
            elif not re.search(r"^COPY %d$" % rows, o, re.M):
                error = "psql did not report COPY %d: %s" % (rows, first_error(o + e))
            if error:
                break
        mb = float(self.big_clients * self.big_mb)
        r = dict(scenario=sc, target=target.name, round=rnd, wall_s=wall, mb=mb, ok=error is None, load=load,
                 mb_s=mb / wall if wall > 0 else None, rss_kb=rss if pid else None)
        if error:
            r["error"] = error
        if pid:
            r["cpu_ms_mb"] = (sum(cpu1) - sum(cpu0)) * 1000.0 / mb
            r["ucpu_ms_mb"] = (cpu1[0] - cpu0[0]) * 1000.0 / mb
            vol, invol, per = ctx_delta(pid, cs0, cs1)
            r["cs_mb"] = (vol + invol) / mb
        if perf_out:
            counts = {}
            try:
                with open(perf_out) as f:
                    for line in f:
                        m = re.match(r"^(\d+),[^,]*,(?:raw_syscalls:sys_enter|syscalls:sys_enter_(\w+))", line)
                        if m:
                            counts[m.group(2) or "total"] = int(m.group(1))
            except OSError:
                pass
            if counts.get("total"):
                self.big_syscalls[(sc, target.name)] = {k: v / mb for k, v in counts.items()}
                r["syscalls_mb"] = counts["total"] / mb
        if rnd == 0:
            log("  scenario %s warm-up %-12s %s" % (sc, target.name, "%.0f syscalls/MB" % r["syscalls_mb"]
                                                   if r.get("syscalls_mb") else "(no syscall count)"))
            return r
        self.big_runs.append(r)
        state = "%.0f MB/s" % r["mb_s"] if r["ok"] else "FAILED: %s" % r["error"]
        log("  scenario %s round %d %-12s %s%s (load %.2f)" % (
            sc, rnd, target.name, state, " cpu %.2f ms/MB" % r["cpu_ms_mb"] if pid else "", load))
        return r

    def big_summary(self, sc, target):
        rs = [r for r in self.big_runs if r["scenario"] == sc and r["target"] == target]
        if not rs:
            return None
        good = [r for r in rs if r["ok"]]
        s = {"rounds": len(rs), "failed": len(rs) - len(good)}
        if s["failed"]:
            s["error"] = next(r["error"] for r in rs if not r["ok"])
        for k in ("mb_s", "wall_s", "cpu_ms_mb", "ucpu_ms_mb", "cs_mb", "rss_kb", "load"):
            s[k] = median([r.get(k) for r in good])
        sys_ = self.big_syscalls.get((sc, target))
        if sys_:
            s["syscalls_mb"] = sys_["total"]
            s["syscalls_by_name"] = sys_
        return s

    # ---- instructions per transaction ----
    def perf_counts_instructions(self):
        try:
            p = subprocess.run(["perf", "stat", "-x,", "-e", "instructions", "--", "true"], capture_output=True,
                               text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return p.returncode == 0 and re.search(r"^\d+,", p.stderr, re.M) is not None

    def instructions(self):
        spec = dict(SCENARIOS["2"], clients=10)
        self._count_per_tx(spec, self.instr_tx, "scenario 2 (select-only, extended), 10 clients", "", self.instr)

    def instructions_simple(self):
        """The same counts on scenario 1's workload (simple protocol: every Query's text is read to
        see whether it acts on the session, where scenario 2 parses a statement once per client)."""
        spec = dict(SCENARIOS["1"], clients=10)
        self._count_per_tx(spec, self.instr_tx, "scenario 1 (select-only, simple), 10 clients", "simple-",
                           self.instr_simple)

    def instructions_tpcb(self):
        """The same counts on scenario 4's workload (TPC-B-like, simple protocol: seven statements per
        transaction, five of them with numbers that change every time)."""
        spec = dict(SCENARIOS["4"], clients=10)
        self._count_per_tx(spec, max(1, self.instr_tx // 4), "scenario 4 (TPC-B-like, simple), 10 clients",
                           "tpcb-", self.instr_tpcb)

    def instructions_per_login(self):
        """The same counts on scenario 5's workload (a new connection and md5/SCRAM login per select-only
        transaction, 20 clients): instructions and system calls per login."""
        spec = dict(SCENARIOS["5"])
        self._count_per_tx(spec, self.instr_login, "scenario 5 (-C: one login per select-only transaction), "
                           "%d clients" % spec["clients"], "login-", self.instr_logins)

    def _count_per_tx(self, spec, n, workload, tag, store):
        per_client = max(1, n // spec["clients"])
        total = per_client * spec["clients"]
        use_perf = self.perf_counts_instructions()
        method = "perf stat -e instructions" if use_perf else "valgrind --tool=callgrind (user-space Ir)"
        log("instructions per transaction: %s, %d transactions of %s" % (method, total, workload))
        # with scenario 7 also pgsluice as a user gets it (no workers line), so that one run has both
        for name in [n for n in ("pgbouncer", "pgsluice", "pgsluice-default") if n in self.targets]:
            src = self.targets[name]
            if use_perf:
                r = self._instr_perf(src, spec, per_client)
            else:
                r = self._instr_callgrind(src, spec, per_client, tag)
            r.update(method=method, workload=workload)
            if r.get("instructions") and r.get("tx"):
                r["per_tx"] = r["instructions"] / r["tx"]
                log("  %-10s %d instructions / %d tx = %.0f per tx" % (name, r["instructions"], r["tx"],
                                                                        r["per_tx"]))
            else:
                log("  %-10s FAILED: %s" % (name, r.get("error")))
            if self.perf_ok("trace"):
                r.update(self._syscalls(src, spec, per_client))
            store[name] = r

    def perf_ok(self, what):
        """Does `perf record` (cpu-clock) or `perf trace -s` work on this machine?"""
        if what not in self._perf_ok:
            cmd = {"record": ["perf", "record", "-e", "cpu-clock", "-o", "/dev/null", "--", "true"],
                   "trace": ["perf", "trace", "-s", "--", "true"]}[what]
            try:
                self._perf_ok[what] = subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                self._perf_ok[what] = False
        return self._perf_ok[what]

    def _syscalls(self, t, spec, per_client):
        """System calls per transaction on the native pooler (perf trace -s, all threads), same workload."""
        out = os.path.join(self.base, "perftrace-%s.txt" % t.name)
        self._pgbench_fixed(t.port, spec, 50)  # warm-up
        # context switches on an untraced run: perf trace's own process wakes up to read its buffers
        # and preempts the traced one, by amounts that differ from run to run
        cs0 = proc_ctx_threads(t.pid)
        rc = self._pgbench_fixed(t.port, spec, per_client)
        cs1 = proc_ctx_threads(t.pid)
        perf = subprocess.Popen(["perf", "trace", "-s", "-o", out, "-p", str(t.pid)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        r = self._pgbench_fixed(t.port, spec, per_client)
        perf.send_signal(signal.SIGINT)
        try:
            perf.wait(120)
        except subprocess.TimeoutExpired:
            perf.kill()
            perf.wait()
        calls = {}
        try:
            with open(out) as f:
                for line in f:
                    m = re.match(r"^\s+([a-z_0-9]+)\s+(\d+)\s+(\d+)\s+[\d.]+\s", line)
                    if m:
                        calls[m.group(1)] = calls.get(m.group(1), 0) + int(m.group(2))
        except OSError:
            pass
        if not calls or not r.get("tx"):
            return {"syscalls_error": "perf trace -s gave no counts"}
        total = sum(calls.values())
        return {"syscalls_tx": r["tx"], "syscalls": total, "syscalls_per_tx": total / r["tx"],
                "syscall_breakdown": sorted(((n / r["tx"], name) for name, n in calls.items()), reverse=True),
                "ctx_switches_per_tx": sum(ctx_delta(t.pid, cs0, cs1)[:2]) / rc["tx"] if rc.get("tx") else None,
                "ctx_threads": [(label, v / rc["tx"], nv / rc["tx"]) for label, v, nv in ctx_delta(t.pid, cs0, cs1)[2]
                                if v or nv] if rc.get("tx") else []}

    def _instr_perf(self, t, spec, per_client):
        out = os.path.join(self.base, "perfstat-%s.txt" % t.name)
        self._pgbench_fixed(t.port, spec, 50)  # warm-up
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "instructions", "-o", out, "-p", str(t.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        r = self._pgbench_fixed(t.port, spec, per_client)
        perf.send_signal(signal.SIGINT)
        perf.wait(30)
        with open(out) as f:
            m = re.search(r"^(\d+),[^,]*,instructions", f.read(), re.M)
        r["instructions"] = int(m.group(1)) if m else None
        if not m:
            r["error"] = "perf stat printed no instruction count"
        return r

    def _instr_callgrind(self, src, spec, per_client, tag=""):
        """Instructions per transaction under callgrind, by difference: a second instance of the pooler
        (same settings, own port) runs a short fixed workload, a third one the same plus per_client more
        transactions per client; each is stopped and its total Ir read. Start-up, logins and shutdown
        are the same in both and cancel out. (callgrind_control cannot be used: vgdb needs ptrace,
        which this kind of machine does not allow.)"""
        if not shutil.which("valgrind"):
            return {"error": "valgrind is not installed (scripts/install-deps.sh --bench)"}
        short = max(1, per_client // 10)
        a = self._callgrind_retry(src, spec, short, tag + "short")
        if a.get("error"):
            return a
        b = self._callgrind_retry(src, spec, short + per_client, tag + "long")
        if b.get("error"):
            return b
        r = {"tx": b["tx"] - a["tx"], "instructions": b["instructions"] - a["instructions"],
             "runs": {"short": {k: a[k] for k in ("tx", "instructions")},
                      "long": {k: b[k] for k in ("tx", "instructions")}}}
        fa = {fn: ir for _, ir, fn in a["functions"]}
        diff = sorted(((ir - fa.get(fn, 0), fn) for _, ir, fn in b["functions"]), reverse=True)
        r["top_functions"] = [(100.0 * ir / r["instructions"], ir, fn) for ir, fn in diff[:40]
                              if r["instructions"] > 0]
        if not self.smoke:
            with open(os.path.join(self.out, "callgrind-%s%s.txt" % (tag, src.name)), "w") as f:
                f.write("# %s: callgrind self cost per function, run with %d tx minus run with %d tx "
                        "(= %d transactions of %s)\n" % (src.name, b["tx"], a["tx"], r["tx"],
                                                        "scenario 5's workload, one login each" if tag
                                                        else "scenario 2's workload"))
                f.write("# total: %d instructions, %.0f per transaction\n" % (r["instructions"],
                                                                             r["instructions"] / max(1, r["tx"])))
                f.write("# %-8s %14s %12s  function\n" % ("share", "Ir", "Ir/tx"))
                for share, ir, fn in r["top_functions"]:
                    f.write("%8.2f%% %14d %12.1f  %s\n" % (share, ir, ir / max(1, r["tx"]), fn))
        return r

    def _callgrind_retry(self, src, spec, per_client, tag):
        r = self._callgrind_once(src, spec, per_client, tag)
        if r.get("error"):  # once more, and say so
            self.notes.append("callgrind run (%s, %s) failed and was repeated: %s" % (src.name, tag, r["error"]))
            r = self._callgrind_once(src, spec, per_client, tag + "2")
        return r

    def _callgrind_once(self, src, spec, per_client, tag):
        cgdir = os.path.join(self.base, "cg-%s-%s" % (src.name, tag))
        os.makedirs(cgdir, exist_ok=True)
        chown_to_postgres(cgdir)
        outfile = os.path.join(cgdir, "callgrind.out")
        wrapper = ["valgrind", "--tool=callgrind", "--vgdb=no", "--callgrind-out-file=" + outfile]
        t = Pooler("%s-callgrind-%s" % (src.name, tag), src.kind, src.binary, self.base, self.pg, 1000,
                   workers=getattr(src, "workers", None), wrapper=wrapper)
        try:
            t.start(timeout=120)
            r = self._pgbench_fixed(t.port, spec, per_client, timeout=3600)
        finally:
            stop_process(t.proc, timeout=120)
        if r.get("error") or not r.get("tx"):
            r.setdefault("error", "pgbench processed no transactions")
            r["error"] += " [pooler log: %s]" % " | ".join(tail(t.logpath, 4).splitlines())
            return r
        if not os.path.exists(outfile):
            r["error"] = "callgrind wrote no output (%s)" % tail(t.logpath, 5)
            return r
        with open(outfile) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    r["instructions"] = int(line.split()[1])
                    break
        ann = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", outfile],
                             capture_output=True, text=True, timeout=300).stdout
        r["functions"] = parse_callgrind_annotate(ann, r.get("instructions"), limit=None)
        if "instructions" not in r:
            r["error"] = "no totals line in the callgrind output"
        return r

    def _pgbench_fixed(self, port, spec, per_client, timeout=600):
        cmd = pgbench_cmd(port, spec, per_client=per_client)
        p = subprocess.run(cmd, env=pgbench_env(), capture_output=True, text=True, cwd=self.base, timeout=timeout)
        r = parse_pgbench(p.stdout + p.stderr)
        if p.returncode != 0:
            r["error"] = first_error(p.stdout + p.stderr)
        m = re.search(r"number of transactions actually processed: (\d+)", p.stdout)
        r["tx"] = int(m.group(1)) if m else 0
        return r

    # ---- CPU profile ----
    def profile(self):
        if not self.perf_ok("record"):
            self.notes.append("perf record is not available here: no CPU profile")
            return
        log("CPU profile (perf record -e cpu-clock) of both poolers during scenario 2")
        for name in ("pgsluice", "pgbouncer"):
            t = self.targets[name]
            data = os.path.join(self.base, "perf-%s.data" % name)
            perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-o", data, "-p",
                                     str(t.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.3)
            r = self.measure("2", t, 0, record=False)
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
            rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort",
                                  "dso,symbol", "--percent-limit", "0.3"], capture_output=True, text=True,
                                 timeout=300).stdout
            dso = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso"],
                                 capture_output=True, text=True, timeout=300).stdout
            with open(os.path.join(self.out, "perf-%s.txt" % name), "w") as f:
                f.write("# perf record -e cpu-clock -F 2000 -p <%s> during scenario 2 (%d s, %s tps)\n"
                        % (name, self.seconds, "%.0f" % r["tps"] if r.get("tps") else "?"))
                f.write(dso)
                f.write("\n")
                f.write(rep)
            self.profiles[name] = {"functions": parse_perf_report(rep), "objects": parse_perf_dso(dso),
                                   "tps": r.get("tps")}

    # ---- run everything ----
    def run(self):
        t0 = time.monotonic()
        self.setup()
        for sc in self.scenarios:
            if sc == "6":
                self.run_idle()
            elif SCENARIOS[sc].get("big"):
                self.run_big(sc)
            else:
                self.run_simple(sc)
        if self.instr_tx:
            self.instructions()
            if "1" in self.scenarios:
                self.instructions_simple()
            if "4" in self.scenarios:
                self.instructions_tpcb()
        if self.instr_login and "5" in self.scenarios:
            self.instructions_per_login()
        if self.do_profile:
            self.profile()
        self.elapsed = time.monotonic() - t0

    # ---- results ----
    def summary(self, sc, target):
        """Medians of a (scenario, target); in scenario 6 the poolers' loaded runs (with idle clients)."""
        want_idle = sc == "6" and target != "direct"
        return self._summ([r for r in self.runs if r["scenario"] == sc and r["target"] == target
                           and bool(r.get("idle")) == want_idle])

    def rows(self):
        rows = []
        for sc in self.scenarios:
            if SCENARIOS[sc].get("big"):
                continue  # their own table (big_rows)
            base = self.summary(sc, "pgbouncer")
            if sc == "6":
                # baseline rows (no idle) first, then the loaded rows
                def alone(t):
                    rs = [r for r in self.runs if r["scenario"] == "6" and r["target"] == t and r.get("idle") == 0]
                    s = self._summ(rs)
                    if s:  # RSS: the runs before the idle clients came (memory kept after them is in 6b's table)
                        s["rss_kb"] = median([r["rss_kb"] for r in rs if r["ok"] and not r.get("after_idle")])
                    return s
                for t in ("direct", "pgbouncer", "pgsluice"):
                    s = alone(t)
                    if s:
                        rows.append(("6a", "20 clients alone (before and after the idle clients)", t, s,
                                     alone("pgbouncer")))
                for t in ("pgbouncer", "pgsluice"):
                    s = self.summary("6", t)
                    if s:
                        rows.append(("6b", "20 clients + %d idle clients" % self.idle_n, t, s, base))
                continue
            for t in self.scenario_targets(sc):
                s = self.summary(sc, t.name)
                if s:
                    name = t.name
                    if sc == "7":
                        name = t.name if t.kind != "pgsluice" else (
                            "pgsluice default (no workers line)" if t.workers is None else
                            "pgsluice workers=%d" % t.workers)
                    rows.append((sc, SCENARIOS[sc]["title"], name, s, base))
        return rows

    def _summ(self, rs):
        if not rs:
            return None
        good = [r for r in rs if r["ok"]]
        s = {"rounds": len(rs), "failed": len(rs) - len(good)}
        if s["failed"]:
            s["error"] = next(r["error"] for r in rs if not r["ok"])
        for k in ("tps", "lat_mean_ms", "p99_ms", "cpu_per_1k", "ucpu_per_1k", "cs_per_tx", "vcs_per_tx",
                  "ivcs_per_tx", "rss_kb"):
            s[k] = median([r.get(k) for r in good])
        return s

    def idle_summary(self):
        out = {}
        for t, ds in self.idle.items():
            out[t] = {k: median([d[k] for d in ds]) for k in
                      ("rss_before_kb", "rss_idle_kb", "rss_after_close_kb", "bytes_per_idle", "tps_base",
                       "tps_idle", "login_s", "cpu_base", "cpu_idle")}
            out[t]["idle_ok"] = min(d["idle_ok"] for d in ds)
            b, i = out[t]["tps_base"], out[t]["tps_idle"]
            # per-round change, then the median: base and loaded runs of a round are back to back
            changes = [(d["tps_idle"] / d["tps_base"] - 1.0) * 100 for d in ds if d["tps_idle"] and d["tps_base"]]
            out[t]["tps_change_pct"] = median(changes) if changes else (None if not (b and i) else (i / b - 1) * 100)
        return out

    def target_checks(self):
        """The issue's targets, evaluated on this run's medians (informational: never asserted)."""
        checks = []

        def s(sc, t):
            return self.summary(sc, t) if sc in self.scenarios else None

        def add(what, value, limit, ok_if):
            shown = limit.replace("<", "≤ ").replace(">", "≥ ") + "×"
            if value is None:
                checks.append((what, "—", shown, "not measured"))
            else:
                ok = value <= float(limit[1:]) if ok_if == "le" else value >= float(limit[1:])
                checks.append((what, "%.2f×" % value, shown, "yes" if ok else "**no**"))
        for sc in ("1", "2", "4"):
            a, b = s(sc, "pgsluice"), s(sc, "pgbouncer")
            add("pooler CPU per transaction, scenario %s" % sc,
                ratio(a and a["cpu_per_1k"], b and b["cpu_per_1k"]), "<0.6", "le")
        for sc in ("1", "2", "4"):
            a, b = s(sc, "pgsluice"), s(sc, "pgbouncer")
            add("  of it user space (utime), scenario %s" % sc,
                ratio(a and a.get("ucpu_per_1k"), b and b.get("ucpu_per_1k")), "<0.6", "le")
        a, b = self.instr.get("pgsluice", {}), self.instr.get("pgbouncer", {})
        add("instructions per transaction (scenario 2)", ratio(a.get("per_tx"), b.get("per_tx")), "<0.6", "le")
        if "pgsluice-default" in self.instr:
            a = self.instr["pgsluice-default"]
            add("  the same, pgsluice with no workers line", ratio(a.get("per_tx"), b.get("per_tx")), "<0.6", "le")
        for sc in ("1", "2", "4"):
            a, b = s(sc, "pgsluice"), s(sc, "pgbouncer")
            add("TPS, scenario %s" % sc, ratio(a and a["tps"], b and b["tps"]), ">1.1", "ge")
        idle = self.idle_summary()
        a, b = idle.get("pgsluice", {}), idle.get("pgbouncer", {})
        add("RSS per idle client (scenario 6)", ratio(a.get("bytes_per_idle"), b.get("bytes_per_idle")),
            "<1.0", "le")
        ch = a.get("tps_change_pct")
        if ch is None:
            checks.append(("active TPS with %d idle clients (pgsluice)" % self.idle_n, "—", "≥ −5 %",
                           "not measured"))
        else:
            checks.append(("active TPS with %d idle clients (pgsluice)" % self.idle_n, "%+.1f %%" % ch, "≥ −5 %",
                           "yes" if ch >= -5.0 else "**no**"))
        a, b = s("5", "pgsluice"), s("5", "pgbouncer")
        add("TPS, scenario 5 (-C)", ratio(a and a["tps"], b and b["tps"]), ">1.0", "ge")
        a, b = s("2", "pgsluice"), s("2", "pgbouncer")
        add("p99 latency, scenario 2", ratio(a and a["p99_ms"], b and b["p99_ms"]), "<1.0", "le")
        for sc in ("8", "9", "10"):  # issue 15: large results and COPY
            if sc not in self.scenarios:
                continue
            a, b = self.big_summary(sc, "pgsluice"), self.big_summary(sc, "pgbouncer")
            add("pooler CPU per MB, scenario %s" % sc, ratio(a and a.get("cpu_ms_mb"), b and b.get("cpu_ms_mb")),
                "<0.5", "le")
            add("throughput, scenario %s" % sc, ratio(a and a.get("mb_s"), b and b.get("mb_s")), ">1.0", "ge")
        return checks

    def failures(self):
        """(scenario, target, error, expected) for every failed run."""
        out = []
        seen = set()
        runs = self.runs + self.big_runs
        for r in runs:
            if r["ok"]:
                continue
            key = (r["scenario"], r["target"])
            if key in seen:
                continue
            seen.add(key)
            n = sum(1 for x in runs if (x["scenario"], x["target"]) == key and not x["ok"])
            total = sum(1 for x in runs if (x["scenario"], x["target"]) == key)
            out.append((r["scenario"], r["target"], "%s (%d of %d runs)" % (r["error"], n, total),
                        key in EXPECTED_FAILURES))
        return out


# ---------------------------------------------------------------------------------------------
# report parsing and formatting
# ---------------------------------------------------------------------------------------------
def parse_callgrind_annotate(text, total, limit=25):
    """[(share %, Ir, function)] from `callgrind_annotate --inclusive=no --auto=no` output. Functions
    are shown as file:function (no directories), or object:address where there are no symbols."""
    out = []
    obj = ""
    started = False
    for line in text.splitlines():
        if "file:function" in line:
            started = True
            continue
        if not started:
            continue
        m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*?)(?:\s+\[(.+)\])?\s*$", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        where = m.group(2)
        obj = os.path.basename(m.group(3)) if m.group(3) else obj
        f, _, fn = where.rpartition(":")
        name = "%s %s" % (obj, fn) if f == "???" else "%s:%s" % (os.path.basename(f), fn)
        if total and ir <= total:
            out.append((100.0 * ir / total, ir, name))
        if limit and len(out) >= limit:
            break
    return out


def parse_perf_report(text):
    """[(share %, dso, symbol)] from `perf report --stdio --sort dso,symbol`."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.+?)(?:\s+-\s+-)?\s*$", line)
        if m:
            out.append((float(m.group(1)), m.group(2), m.group(4)))
    return out[:25]


def parse_perf_dso(text):
    """[(share %, dso)] from `perf report --stdio --sort dso`."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^\s+([\d.]+)%\s+(\S+)\s*$", line)
        if m:
            out.append((float(m.group(1)), m.group(2)))
    return out


def fmt(v, spec="%.0f", none="—"):
    return none if v is None else spec % v


def fmt_ratio(v):
    return "—" if v is None else "%.2f×" % v


def fmt_rss(kb):
    return "—" if kb is None else "%.1f" % (kb / 1024.0)


def result_cells(s, base):
    if s["failed"] == s["rounds"]:
        return ["FAILED"] + ["—"] * 13
    def pair(k, f):
        return [f(s[k]), fmt_ratio(ratio(s[k], base and not base["failed"] == base["rounds"] and base[k]))]
    cells = pair("tps", lambda v: fmt(v, "%.0f")) + pair("lat_mean_ms", lambda v: fmt(v, "%.2f")) \
        + pair("p99_ms", lambda v: fmt(v, "%.2f")) + pair("cpu_per_1k", lambda v: fmt(v, "%.3f")) \
        + pair("ucpu_per_1k", lambda v: fmt(v, "%.4f")) \
        + pair("cs_per_tx", lambda v: fmt(v, "%.3f")) + pair("rss_kb", fmt_rss)
    if s["failed"]:
        cells[0] += " (%d/%d failed)" % (s["failed"], s["rounds"])
    return cells


HEAD = ["#", "scenario", "target", "TPS", "×PgB", "mean ms", "×PgB", "p99 ms", "×PgB", "CPU s/1k tx", "×PgB", "user CPU s/1k tx", "×PgB",
        "ctx sw/tx", "×PgB", "RSS MiB", "×PgB"]


def ctx_switch_rows(b):
    """Per scenario (1, 2, 7) and pooler: each thread's context switches per transaction (mean of rounds)."""
    rows = []
    for sc in ("1", "2", "7"):
        if sc not in b.scenarios:
            continue
        for t in b.scenario_targets(sc):
            if not isinstance(t, Pooler):
                continue
            rs = [r for r in b.runs if r["scenario"] == sc and r["target"] == t.name and r["ok"] and r.get("cs_threads")]
            if not rs:
                continue
            acc = {}
            for r in rs:
                for label, v, nv in r["cs_threads"]:
                    a = acc.setdefault(label, [0.0, 0.0])
                    a[0] += v / len(rs)
                    a[1] += nv / len(rs)
            name = t.name if sc != "7" or t.kind != "pgsluice" else (
                "pgsluice default" if t.workers is None else "pgsluice workers=%d" % t.workers)
            for label, (v, nv) in sorted(acc.items(), key=lambda kv: -(kv[1][0] + kv[1][1])):
                if v + nv >= 0.0005:
                    rows.append([sc, name, label, "%.3f" % v, "%.3f" % nv, "%.3f" % (v + nv)])
    return rows


BIG_HEAD = ["#", "scenario", "target", "MB/s", "×PgB", "CPU ms/MB", "×PgB", "user CPU ms/MB", "×PgB", "syscalls/MB",
            "×PgB", "ctx sw/MB", "×PgB", "RSS MiB", "×PgB", "load"]
BIG_SC_SHOWN = ("recvfrom", "read", "sendto", "sendmsg", "writev", "write", "epoll_wait", "epoll_ctl")


def big_rows(b, big_sc):
    """The scenario 8-10 table and the system calls by name."""
    rows, srows = [], []
    for sc in big_sc:
        base = b.big_summary(sc, "pgbouncer")
        for t in ("direct", "pgbouncer", "pgsluice"):
            s = b.big_summary(sc, t)
            if not s:
                continue
            if s["failed"] == s["rounds"]:
                rows.append([sc, SCENARIOS[sc]["title"], t, "FAILED: %s" % s.get("error")] + ["—"] * 12)
                continue

            def pair(k, f):
                return [f(s.get(k)), fmt_ratio(ratio(s.get(k), base and base.get(k)))]
            cells = pair("mb_s", lambda v: fmt(v, "%.0f")) + pair("cpu_ms_mb", lambda v: fmt(v, "%.2f")) \
                + pair("ucpu_ms_mb", lambda v: fmt(v, "%.3f")) + pair("syscalls_mb", lambda v: fmt(v, "%.0f")) \
                + pair("cs_mb", lambda v: fmt(v, "%.1f")) + pair("rss_kb", fmt_rss) + [fmt(s.get("load"), "%.2f")]
            if s["failed"]:
                cells[0] += " (%d/%d failed: %s)" % (s["failed"], s["rounds"], s.get("error"))
            rows.append([sc, SCENARIOS[sc]["title"], t] + cells)
            by = s.get("syscalls_by_name")
            if by:
                srows.append([sc, t] + [fmt(by.get(n), "%.1f") for n in BIG_SC_SHOWN] + [fmt(by.get("total"), "%.1f")])
    return rows, srows


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def text_table(head, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def git_rev():
    if os.environ.get("BENCH_SL_REV"):
        return os.environ["BENCH_SL_REV"]
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+local changes in src/" if dirty else "")
    except OSError:
        return "?"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def cost_tables(instr, unit, noun, tag, md, text, text_title):
    """The instructions / system calls table, the system calls by name and the top functions."""
    pgb = instr.get("pgbouncer", {})
    head = ["pooler", "instructions per %s (user space)" % unit, "×PgB", "syscalls per %s" % unit, "×PgB",
            "context switches per %s" % unit, "×PgB"]
    irows = []
    for t in ("pgbouncer", "pgsluice", "pgsluice-default"):
        r = instr.get(t)
        if not r:
            continue
        ins = "{:,.0f}".format(r["per_tx"]) if r.get("per_tx") is not None else "FAILED: %s" % r.get("error")
        irows.append([t, ins, fmt_ratio(ratio(r.get("per_tx"), pgb.get("per_tx"))),
                      fmt(r.get("syscalls_per_tx"), "%.2f"),
                      fmt_ratio(ratio(r.get("syscalls_per_tx"), pgb.get("syscalls_per_tx"))),
                      fmt(r.get("ctx_switches_per_tx"), "%.3f"),
                      fmt_ratio(ratio(r.get("ctx_switches_per_tx"), pgb.get("ctx_switches_per_tx")))])
    md.append(md_table(head, irows))
    md.append("")
    by_thread = ["%s: %s" % (t, ", ".join("%s %.3f voluntary + %.3f involuntary" % x
                                          for x in instr[t]["ctx_threads"]))
                 for t in ("pgbouncer", "pgsluice", "pgsluice-default") if instr.get(t, {}).get("ctx_threads")]
    if by_thread:
        md.append("Context switches per %s by thread: %s.\n" % (noun, "; ".join(by_thread)))
    text.append("\n%s:\n" % text_title + text_table(head, irows))
    sc_rows = []
    names = []
    for t in ("pgbouncer", "pgsluice"):
        for per, name in (instr.get(t, {}).get("syscall_breakdown") or [])[:12 if tag else 8]:
            if name not in names:
                names.append(name)
    for name in names:
        row = [name]
        for t in ("pgbouncer", "pgsluice"):
            d = dict((n, per) for per, n in (instr.get(t, {}).get("syscall_breakdown") or []))
            row.append(fmt(d.get(name), "%.3f"))
        sc_rows.append(row)
    if sc_rows:
        md.append("System calls per %s by name:\n" % noun)
        md.append(md_table(["syscall", "pgbouncer", "pgsluice"], sc_rows))
        md.append("")
    for t in ("pgsluice", "pgbouncer"):
        top = instr.get(t, {}).get("top_functions")
        if top:
            md.append("Top functions of %s by instructions per %s (callgrind self cost; full listing in "
                      "`callgrind-%s%s.txt`):\n" % (t, noun, tag, t))
            md.append(md_table(["share", "Ir per %s" % unit, "function"],
                               [["%.1f %%" % sh, "{:,.0f}".format(ir / instr[t]["tx"]), "`%s`" % fn]
                                for sh, ir, fn in top[:20 if tag else 15]]))
            md.append("")


def report(b):
    rows = []
    for sc, title, tname, s, base in b.rows():
        rows.append([sc, title, tname] + result_cells(s, base))
    md = []
    md.append("# pgsluice benchmark: latest results\n")
    md.append("Generated by `%s` (bench/bench.py) on %s, in %.0f s.\n"
              % ("make bench-smoke" if b.smoke else "make bench",
                 datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), b.elapsed))
    md.append("- Machine: %d cores (%s), %s, Linux %s; load average before the run %.2f / %.2f / %.2f. "
              "pgbench, PostgreSQL and the pooler share the cores."
              % (os.cpu_count(), cpu_model(), "%.0f GiB RAM" % (os.sysconf("SC_PAGE_SIZE")
                                                                 * os.sysconf("SC_PHYS_PAGES") / 2 ** 30),
                 platform.release(), *b.load_before))
    if TLS:
        md.append("- BENCH_TLS: every client connection uses TLS (PGSSLMODE=require; PostgreSQL ssl=on, both poolers "
                  "client_tls_sslmode=require with the same EC P-256 certificate; server connections plaintext).")
    md.append("- pgsluice %s (`%s`, workers=%d), %s, PostgreSQL %s, pgbench -j 1, scale %d."
              % (git_rev(), os.path.relpath(b.sl_bin, ROOT) if b.sl_bin.startswith(ROOT) else b.sl_bin,
                 b.sl_workers, pooler_version("pgbouncer", b.pgb_bin), b.pg.version, b.scale))
    md.append("- Both poolers: pool_mode=transaction, default_pool_size=%d, auth_type=%s (userlist.txt), "
              "max_client_conn=%d, logging of connections off. %d round(s) of %d s per target, interleaved "
              "(direct, pgbouncer, pgsluice, direct, ...); the table shows medians over rounds."
              % (POOL_SIZE, b.auth, b.idle_n + 500, b.rounds, b.seconds))
    md.append("- CPU s/1k tx: pooler utime+stime (/proc/PID/stat) per 1,000 transactions; user CPU: utime alone "
              "(the part a pooler's own code decides; the rest is the kernel's socket work, most of it the same "
              "four socket calls per transaction in both poolers). RSS: the pooler's "
              "peak VmRSS during the run. ×PgB: the figure divided by PgBouncer's in the same scenario.\n")
    md.append("## Results\n")
    md.append(md_table(HEAD, rows))
    md.append("")
    text = [text_table(HEAD, rows)]

    fails = b.failures()
    if fails:
        md.append("Failed runs:\n")
        for sc, t, err, expected in fails:
            md.append("- scenario %s, %s: %s%s" % (sc, t, err, " (expected: PgBouncer 1.18 does not support "
                                                               "protocol-level prepared statements in "
                                                               "transaction mode)" if expected else ""))
        md.append("")
        text.append("\nFailed runs:\n" + "\n".join("  scenario %s, %s: %s%s" % (sc, t, e, " [expected]" if x else "")
                                                     for sc, t, e, x in fails))

    cs_rows = ctx_switch_rows(b)
    if cs_rows:
        md.append("Context switches per transaction of the pooler, by thread (select-only scenarios; "
                  "voluntary: the thread went to sleep, mostly in epoll_wait with nothing to do; "
                  "involuntary: it was preempted, on 2 cores mostly by pgbench or PostgreSQL), mean over "
                  "rounds; from /proc/PID/task/*/status before and after each run:\n")
        cs_head = ["#", "target", "thread", "voluntary/tx", "involuntary/tx", "total/tx"]
        md.append(md_table(cs_head, cs_rows))
        md.append("")
        text.append("\nContext switches per transaction by thread:\n" + text_table(cs_head, cs_rows))

    big_sc = [sc for sc in b.scenarios if SCENARIOS[sc].get("big")]
    if big_sc:
        brows, srows = big_rows(b, big_sc)
        md.append("## Scenarios 8-10: large results and COPY\n")
        md.append("%d clients at once, each moving %d MB (10^6 bytes of payload: %s rows of `repeat('x', 1000)`); "
                  "MB/s = all clients' MB / wall time from starting the clients to the last one done (client start "
                  "and login included). Scenario 8: `pgbench -f` with the SELECT (libpq reads every row); 9: psql "
                  "`\\copy (SELECT ...) TO '/dev/null'`; 10: psql `\\copy big_in_K FROM` a file of 1,000-byte "
                  "lines into an unlogged table (truncated before each run). The same interleaving as above "
                  "(direct, pgbouncer, pgsluice, ...); medians of %d rounds. CPU ms/MB: the pooler's utime+stime "
                  "(all threads) per MB; user: utime alone. Syscalls/MB: `perf stat` on the tracepoints "
                  "`raw_syscalls:sys_enter` (all) and `syscalls:sys_enter_*` (by name) on the pooler during the "
                  "warm-up run (not a measured one: counting costs a little per call). Load: the 1-minute load "
                  "average when the run started (median).\n"
                  % (b.big_clients, b.big_mb, "{:,}".format(b.big_mb * 1000), b.rounds))
        md.append(md_table(BIG_HEAD, brows))
        md.append("")
        if srows:
            md.append("System calls per MB by name (the counted run):\n")
            md.append(md_table(["#", "target"] + list(BIG_SC_SHOWN) + ["all"], srows))
            md.append("")
        text.append("\nLarge results and COPY:\n" + text_table(BIG_HEAD, brows))

    idle = b.idle_summary()
    if idle:
        pgb = idle.get("pgbouncer", {})
        head = ["target", "idle clients", "login time s", "RSS before MiB", "RSS with idle MiB", "bytes per idle client",
                "×PgB", "RSS after they left MiB", "TPS without idle", "TPS with idle", "change",
                "CPU s/1k tx without / with idle"]
        irows = []
        for t in ("pgbouncer", "pgsluice"):
            d = idle.get(t)
            if not d:
                continue
            irows.append([t, d["idle_ok"], fmt(d["login_s"], "%.1f"), fmt_rss(d["rss_before_kb"]),
                          fmt_rss(d["rss_idle_kb"]), fmt(d["bytes_per_idle"], "%.0f"),
                          fmt_ratio(ratio(d["bytes_per_idle"], pgb.get("bytes_per_idle"))),
                          fmt_rss(d["rss_after_close_kb"]),
                          fmt(d["tps_base"]), fmt(d["tps_idle"]), fmt(d["tps_change_pct"], "%+.1f %%"),
                          "%s / %s" % (fmt(d["cpu_base"], "%.3f"), fmt(d["cpu_idle"], "%.3f"))])
        md.append("## Scenario 6: idle clients\n")
        md.append("Per round and pooler, on a freshly started instance: 20 select-only clients alone (6a), then "
                  "%d idle clients are opened and logged in (bench/idle_clients.py, auth %s) and held while the "
                  "same 20 clients run again (6b), then they disconnect. Bytes per idle client = (VmRSS with idle "
                  "clients − VmRSS before) / idle clients; kernel socket buffers are not in RSS. RSS after they "
                  "left: VmRSS 1 s after the idle clients disconnected (memory the pooler keeps). The 20 clients "
                  "run alone again after that (A-B-A): TPS without idle is the mean of the runs before and after "
                  "(both are in 6a), change = TPS with idle / that mean − 1, per round, median.\n"
                  % (b.idle_n, b.auth))
        md.append(md_table(head, irows))
        md.append("")
        text.append("\nScenario 6 (idle clients):\n" + text_table(head, irows))

    if b.instr:
        any_r = next(iter(b.instr.values()))
        md.append("## Per-transaction costs (the steadier figures)\n")
        md.append("Scenario 2's workload (select-only, extended protocol) with 10 clients and a fixed number of "
                  "transactions per client (`pgbench -t`), through each pooler with the same settings.\n")
        md.append("- Instructions: %s. %s" % (any_r.get("method", "?"), (
            "Each pooler runs twice under callgrind (a separate instance each time): a short run and one with "
            "%s more transactions; the difference of the two totals is divided by the difference of the "
            "transaction counts, so start-up, logins and shutdown cancel out. User-space instructions only "
            "(the pooler, libc, libuv/libevent, OpenSSL), not the kernel's." % "{:,}".format(any_r.get("tx", 0))
            if "callgrind" in any_r.get("method", "") else "Counted on the running pooler (user and kernel).")))
        md.append("- System calls: `perf trace -s -p PID` on the running (native) pooler during %s "
                  "transactions, all threads; context switches from /proc/PID/task/*/status, on a run of as many "
                  "transactions just before, without perf trace (its own wake-ups preempt the traced pooler).\n"
                  % "{:,}".format(any_r.get("syscalls_tx") or 0))
        cost_tables(b.instr, "tx", "transaction", "", md, text, "Per-transaction costs (scenario 2 workload, "
                    "fixed transactions)")
        md.append("System calls per transaction are steady from run to run. Instructions are on a quiet machine; "
                  "on a busy one they move by a few hundred per transaction (an event loop's cost per "
                  "wake-up is spread over fewer events), for both poolers: compare runs made back to back. "
                  "Context switches depend on how busy the machine is (a loop that finds nothing to do "
                  "sleeps in epoll_wait).\n")
    # the same tables on the simple protocol's workloads, where each Query's text is read
    for store, title, intro, tag, ttitle in (
            (b.instr_simple, "simple protocol (scenario 1's workload)",
             "The same measurement on `pgbench -S` with the simple protocol (10 clients, %s transactions more in "
             "the long run): each Query's text is read by pgsluice to see whether it acts on the session "
             "(`sl_stmt_plain_count`: a one-pass scan, or the same statement with other numbers recognised "
             "from a per-thread table), where the extended protocol's statement is read once per client and "
             "then recognised.", "simple-", "simple protocol (scenario 1 workload, fixed transactions)"),
            (b.instr_tpcb, "TPC-B-like (scenario 4's workload)",
             "The same measurement on pgbench's default script (simple protocol, 10 clients, %s transactions "
             "more in the long run): seven statements per transaction (BEGIN, three UPDATEs, a SELECT, an "
             "INSERT, END), five of them with numbers that change every time.", "tpcb-",
             "TPC-B-like (scenario 4 workload, fixed transactions)")):
        if store:
            md.append("## Per-transaction costs, %s\n" % title)
            md.append(intro % "{:,}".format(next(iter(store.values())).get("tx", 0)) + "\n")
            cost_tables(store, "tx", "transaction", tag, md, text, "Per-transaction costs, " + ttitle)
    if b.instr_logins:
        any_r = next(iter(b.instr_logins.values()))
        md.append("## Per-login costs (scenario 5's workload)\n")
        md.append("`pgbench -C -S` with %d clients and a fixed number of transactions per client: every "
                  "transaction opens a connection, logs in (auth_type %s), runs one select and disconnects, so "
                  "each figure per transaction is the cost of one login plus one small query. Measured the same "
                  "way as the per-transaction costs (%s, by difference of a short and a long run with %s more "
                  "logins; `perf trace -s` on the native pooler during %s logins).\n"
                  % (SCENARIOS["5"]["clients"], b.auth, any_r.get("method", "?"),
                     "{:,}".format(any_r.get("tx", 0)), "{:,}".format(any_r.get("syscalls_tx") or 0)))
        cost_tables(b.instr_logins, "login", "login", "login-", md, text, "Per-login costs (scenario 5 workload, "
                    "fixed logins)")
    if b.profiles:
        md.append("## CPU profile during scenario 2 (perf record -e cpu-clock)\n")
        md.append("Share of the pooler process's sampled CPU time (user and kernel) per function; full "
                  "reports in `perf-pgsluice.txt` and `perf-pgbouncer.txt`.\n")
        for t in ("pgsluice", "pgbouncer"):
            prof = b.profiles.get(t)
            if prof:
                md.append("%s — by object: %s.\n" % (t, ", ".join("%s %.1f %%" % (o, sh) for sh, o in prof["objects"]
                                                                  if sh >= 0.1)))
                md.append(md_table(["share", "object", "function"],
                                   [["%.1f %%" % sh, dso, "`%s`" % sym] for sh, dso, sym in prof["functions"][:15]]))
                md.append("")

    checks = b.target_checks()
    md.append("## Issue 3 targets (pgsluice ÷ PgBouncer, this run)\n")
    md.append(md_table(["target", "measured", "required", "met"], checks))
    md.append("")
    text.append("\nTargets (pgsluice / PgBouncer):\n" + text_table(["target", "measured", "required", "met"], checks))

    if b.notes or b.problems:
        md.append("## Notes\n")
        md += ["- %s" % n for n in b.notes + b.problems]
        md.append("")
        text.append("\nNotes:\n" + "\n".join("  " + n for n in b.notes + b.problems))
    return "\n".join(md) + "\n", "\n".join(text) + "\n"


def chart(b, path):
    """PNG with two panels, TPS and p99 per scenario, one bar per target (gnuplot)."""
    gp = shutil.which("gnuplot")
    if not gp:
        b.notes.append("gnuplot is not installed: no chart (scripts/install-deps.sh installs gnuplot-nox)")
        return False
    short = {"1": "1 simple", "2": "2 extended", "3": "3 prepared", "4": "4 TPC-B", "5": "5 -C (connect)",
             "6a": "6a 20 active", "6b": "6b +%d idle" % b.idle_n}
    cols = ["direct", "pgbouncer", "pgsluice"]
    labels, table = [], {}

    def put(lab, col, val):
        if lab not in table:
            labels.append(lab)
            table[lab] = {c: (None, None) for c in cols}
        table[lab][col] = val
    rows = b.rows()
    if not rows:
        return False  # only scenarios 8-10 ran: no TPS to draw
    for sc, title, tname, s, base in rows:
        val = (s["tps"], s["p99_ms"]) if s["failed"] < s["rounds"] else (None, None)
        if sc != "7":
            put(short.get(sc, sc), tname, val)
        elif tname != "pgbouncer":
            put("7 " + tname.replace("pgsluice ", "").replace("workers", "w").replace(" (no workers line)", ""),
                "pgsluice", val)
    for sc, title, tname, s, base in rows:  # scenario 7: PgBouncer's bar beside each workers value
        if sc == "7" and tname == "pgbouncer":
            for lab in labels:
                if lab.startswith("7 "):
                    table[lab]["pgbouncer"] = (s["tps"], s["p99_ms"]) if s["failed"] < s["rounds"] else (None, None)
    dat = os.path.join(b.base, "chart.dat")
    with open(dat, "w") as f:
        f.write("scenario " + " ".join(cols) + " " + " ".join(c + "_p99" for c in cols) + "\n")
        for lab in labels:
            vals = [table[lab][c][0] for c in cols] + [table[lab][c][1] for c in cols]
            f.write('"%s" %s\n' % (lab, " ".join("NaN" if v is None else "%.3f" % v for v in vals)))
    script = """
set terminal pngcairo size 1400,900 font "sans,10"
set output '%s'
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key top right
set grid ytics
set multiplot layout 2,1 title "pgsluice vs PgBouncer vs direct (median of %d rounds x %d s; 7: pgsluice workers=1/2)"
set title "TPS per scenario (higher is better)"
set ylabel "transactions/s"
set yrange [0:*]
plot '%s' using 2:xtic(1) title 'direct' lc rgb '#888888', '' using 3 title 'pgbouncer' lc rgb '#1f77b4', \
     '' using 4 title 'pgsluice' lc rgb '#d62728'
set title "p99 latency per scenario (lower is better; log scale)"
set ylabel "ms"
set logscale y
set yrange [*:*]
plot '%s' using 5:xtic(1) title 'direct' lc rgb '#888888', '' using 6 title 'pgbouncer' lc rgb '#1f77b4', \
     '' using 7 title 'pgsluice' lc rgb '#d62728'
unset multiplot
""" % (path, b.rounds, b.seconds, dat, dat)
    p = subprocess.run([gp], input=script, capture_output=True, text=True, timeout=60)
    if p.returncode != 0 or not os.path.exists(path):
        b.notes.append("gnuplot failed: %s" % p.stderr.strip()[-300:])
        return False
    return True


def main():
    ap = argparse.ArgumentParser(description="pgsluice / PgBouncer / direct benchmark (issue 3)")
    ap.add_argument("--smoke", action="store_true", help="1 round, 2 s runs, scenarios 1 and 2, no profiling")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory (logs, configs)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (PostgreSQL and PgBouncer run as the postgres OS user)")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    b = Bench(args)
    try:
        return finish(b)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        b.teardown()
        b.cleanup()


def finish(b):
    rc = 0
    try:
        b.run()
    finally:
        b.teardown()
    png = os.path.join(b.out, "latest.png")
    have_chart = chart(b, png)
    md, text = report(b)
    if have_chart:
        md += "\nChart: `latest.png` (TPS and p99 per scenario).\n"
    with open(os.path.join(b.out, "latest.md"), "w") as f:
        f.write(md)
    with open(os.path.join(b.out, "latest.json"), "w") as f:
        json.dump({"settings": {"seconds": b.seconds, "rounds": b.rounds, "scale": b.scale, "idle": b.idle_n,
                                "sl_workers": b.sl_workers, "auth": b.auth, "scenarios": b.scenarios},
                   "runs": b.runs, "big_runs": b.big_runs,
                   "big_syscalls": {"%s/%s" % k: v for k, v in b.big_syscalls.items()}, "idle": b.idle, "instructions": b.instr,
                   "instructions_per_login": b.instr_logins, "instructions_simple": b.instr_simple,
                   "instructions_tpcb": b.instr_tpcb,
                   "profiles": b.profiles,
                   "load_before": b.load_before}, f, indent=1)
    print(text)
    print("bench: wrote %s/latest.md%s (%.0f s)" % (b.out, " and latest.png" if have_chart else "", b.elapsed))
    unexpected = [f for f in b.failures() if not f[3]]
    if unexpected:
        print("bench: FAILED: unexpected failures: %s" % "; ".join("scenario %s %s: %s" % f[:3] for f in unexpected),
              file=sys.stderr)
        rc = 1
    if b.problems:
        print("bench: FAILED: %s" % "; ".join(b.problems), file=sys.stderr)
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
