"""pooler.py - start the pooler under test (pgsluice or PgBouncer) with a generated config.

Which pooler: env POOLER=pgsluice (default; binary from env SL_BIN, default build/pgsluice) or
POOLER=pgbouncer (/usr/sbin/pgbouncer, or env PGBOUNCER_BIN; run as the postgres OS user because
PgBouncer refuses root). Both get the same pgbouncer.ini-format file; pgsluice also gets
`workers = $SL_WORKERS` when that variable is set. Extra command-line arguments: env SL_ARGS.

    p = Pooler(cluster, base_dir, settings={"pool_mode": "session"}).start()
    psycopg.connect(p.dsn("appdb", "app"))
    p.reload({"default_pool_size": 2})    # rewrite the ini, SIGHUP
    p.stop()                              # SIGINT, then SIGTERM, then SIGKILL
"""
import os
import re
import shlex
import signal
import subprocess
import time

from harness.util import (HOST, as_postgres_kwargs, chown_to_postgres, conninfo, free_port, port_is_open,
                          tail)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The product guide's three blocks, verbatim (alignment and trailing comments included).
GUIDE_POOL_SIZING = """\
pool_mode = transaction
max_client_conn = 200          # Maximum client connections
default_pool_size = 25         # Connections per database/user
min_pool_size = 5              # Always-open connections
reserve_pool_size = 5          # Emergency connection reserve
max_db_connections = 50        # Total backend connections
"""
GUIDE_TIMEOUTS = """\
server_lifetime = 3600         # Recycle connections hourly
server_idle_timeout = 600      # Close idle connections after 10min
query_wait_timeout = 120       # Queue timeout for new queries
client_idle_timeout = 0        # No client timeout (handled by app)
"""
GUIDE_TUNING = """\
tcp_keepalive = 1              # Enable TCP keepalive
server_reset_query = DISCARD ALL  # Clean connection state
ignore_startup_parameters = extra_float_digits,search_path
"""
GUIDE_BLOCKS = GUIDE_POOL_SIZING + "\n" + GUIDE_TIMEOUTS + "\n" + GUIDE_TUNING

# Default settings for tests: the guide's blocks, adapted so that limits are exact and small.
DEFAULT_SETTINGS = {
    "pool_mode": "transaction",
    "max_client_conn": 400,          # guide: 200 (tests open 200 clients at once)
    "default_pool_size": 5,          # guide: 25 (a small pool makes queueing visible)
    "min_pool_size": 0,              # guide: 5 (tests count server connections)
    "reserve_pool_size": 0,          # guide: 5 (tests count server connections)
    "max_db_connections": 50,
    "server_lifetime": 3600,
    "server_idle_timeout": 600,
    "query_wait_timeout": 120,
    "client_idle_timeout": 0,
    "tcp_keepalive": 1,
    "server_reset_query": "DISCARD ALL",
    "ignore_startup_parameters": "extra_float_digits,search_path",
}

# Lines in a pooler log that mean a sanitizer or the C runtime found a bug.
BUG_PATTERNS = re.compile(r"AddressSanitizer|LeakSanitizer|ThreadSanitizer|UndefinedBehaviorSanitizer|"
                          r"runtime error:|Segmentation fault|double free|stack smashing")


PROBLEM_LINE = re.compile(r"\b(WARNING|ERROR|FATAL|PANIC)\b")


class PoolerError(Exception):
    pass


def pooler_kind():
    kind = os.environ.get("POOLER", "pgsluice")
    if kind not in ("pgsluice", "pgbouncer"):
        raise PoolerError("POOLER must be pgsluice or pgbouncer, not %r" % kind)
    return kind


def pooler_binary(kind=None):
    kind = kind or pooler_kind()
    if kind == "pgbouncer":
        return os.environ.get("PGBOUNCER_BIN", "/usr/sbin/pgbouncer")
    b = os.environ.get("SL_BIN", os.path.join(REPO, "build", "pgsluice"))
    return b if os.path.isabs(b) else os.path.join(REPO, b)


def default_dbs(cluster):
    p = cluster.primary_port
    dbs = {
        "appdb": "host=%s port=%d dbname=appdb" % (HOST, p),
        "sav3": "host=%s port=%d dbname=sav3" % (HOST, p),
        "postgres": "host=%s port=%d dbname=postgres" % (HOST, p),
    }
    if cluster.replica is not None:  # a primary-only cluster has no replica entry
        dbs["appdb_replica"] = "host=%s port=%d dbname=appdb" % (HOST, cluster.replica_port)
    return dbs


def default_userlist(cluster):
    """auth_file entries: SCRAM secrets copied from pg_authid (exercises SCRAM pass-through), an md5
    hash, and a plain-text password."""
    return {
        "app": cluster.secrets["app"],
        "app_md5": cluster.secrets["app_md5"],
        "plainuser": "plainpw",
        "postgres": cluster.secrets["postgres"],
    }


def _merge(base, override):
    out = dict(base)
    for k, v in (override or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


class Pooler:
    """One pooler process. Attributes: host, port, pid, unix_socket_dir, ini_path, log_path, kind."""

    _counter = 0

    def __init__(self, cluster, base_dir, settings=None, dbs=None, users=None, user_settings=None,
                 verbatim=None, kind=None, args=None):
        Pooler._counter += 1
        self.cluster = cluster
        self.kind = kind or pooler_kind()
        self.dir = os.path.join(base_dir, "pooler%d" % Pooler._counter)
        os.makedirs(self.dir, exist_ok=True)
        self.host = HOST
        self.port = free_port()
        self.unix_socket_dir = self.dir
        self.ini_path = os.path.join(self.dir, "pgbouncer.ini")
        self.userlist_path = os.path.join(self.dir, "userlist.txt")
        self.log_path = os.path.join(self.dir, "pooler.log")
        self.settings = _merge(DEFAULT_SETTINGS, settings)
        self.dbs = _merge(default_dbs(cluster), dbs)
        self.users = _merge(default_userlist(cluster), users)
        self.user_settings = user_settings or {}
        self.verbatim = verbatim
        self.args = list(args or [])  # command-line options before the config path, e.g. ["-d"]
        self.daemon = "-d" in self.args
        self._daemon_pid = None
        self._stopped = False
        self.proc = None
        self.returncode = None
        self.started_at = None
        self.stop_problems = []
        self._log_file = None

    # ---- config ----
    def render_ini(self, settings=None, extra_lines=None):
        settings = self.settings if settings is None else settings
        lines = [";; generated by tests/harness/pooler.py (POOLER=%s)" % self.kind, "[databases]"]
        lines += ["%s = %s" % kv for kv in self.dbs.items()]
        if self.user_settings:
            lines += ["", "[users]"] + ["%s = %s" % kv for kv in self.user_settings.items()]
        fixed = {
            "listen_addr": HOST,
            "listen_port": self.port,
            "unix_socket_dir": self.unix_socket_dir,
            "auth_type": "scram-sha-256",
            "auth_file": self.userlist_path,
            "admin_users": "postgres",
        }
        if self.kind == "pgsluice":
            # Its HTTP endpoint defaults to port 8081: off unless a test sets http_port (several
            # poolers run at once and would collide).
            fixed["http_port"] = 0
        body = _merge(fixed, settings)
        verbatim_keys = set()
        if self.verbatim:
            verbatim_keys = {ln.split("=", 1)[0].strip() for ln in self.verbatim.splitlines() if "=" in ln}
        if self.kind == "pgsluice" and os.environ.get("SL_WORKERS"):
            body.setdefault("workers", os.environ["SL_WORKERS"])
        lines += ["", "[pgbouncer]"]
        lines += ["%s = %s" % (k, v) for k, v in body.items() if k not in verbatim_keys]
        if self.verbatim:
            lines += ["", self.verbatim.rstrip("\n")]
        lines += list(extra_lines or [])
        return "\n".join(lines) + "\n"

    def write_config(self, settings=None, extra_lines=None):
        with open(self.userlist_path, "w") as f:
            for name, pw in self.users.items():
                f.write('"%s" "%s"\n' % (name, pw.replace('"', '""')))
        with open(self.ini_path, "w") as f:
            f.write(self.render_ini(settings, extra_lines))
        os.chmod(self.userlist_path, 0o600)
        chown_to_postgres(self.dir, recursive=True)

    # ---- lifecycle ----
    def command(self):
        binary = pooler_binary(self.kind)
        return [binary] + shlex.split(os.environ.get("SL_ARGS", "")) + self.args + [self.ini_path]

    def _popen_kwargs(self):
        # PgBouncer refuses to run as root: start it as the postgres OS user, unless the test passes
        # -u (then it starts as root and switches user itself).
        if self.kind == "pgbouncer" and "-u" not in self.args:
            return as_postgres_kwargs()
        return {}

    def start(self, timeout=15, attempts=3):
        """Write the config, start the pooler, wait until it accepts TCP connections. Retries on a
        new port if the chosen one was taken meanwhile. Raises PoolerError with the log tail."""
        binary = pooler_binary(self.kind)
        if not os.access(binary, os.X_OK):
            raise PoolerError("pooler binary %s is missing or not executable (POOLER=%s; run `make build` "
                              "or set SL_BIN)" % (binary, self.kind))
        for attempt in range(attempts):
            try:
                return self._start_once(timeout)
            except PoolerError:
                if attempt + 1 == attempts or "already in use" not in self.log_text():
                    raise
                self.port = free_port()
                self.proc = self.returncode = self._daemon_pid = None

    def _start_once(self, timeout):
        self.write_config()
        if self._log_file is None:
            self._log_file = open(self.log_path, "ab")
        self.started_at = time.time()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True,
                                     **self._popen_kwargs())
        deadline = time.monotonic() + timeout
        while True:
            if self.daemon:
                if self._daemon_pid is None and self.proc.poll() is not None:
                    if self.proc.returncode != 0:
                        self.returncode = self.proc.returncode
                        raise PoolerError("%s -d exited with code %s\n%s"
                                          % (self.kind, self.returncode, self.describe()))
                    self._daemon_pid = self._read_pidfile()
            elif self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise PoolerError("%s exited with code %s before accepting connections\n%s"
                                  % (self.kind, self.returncode, self.describe()))
            # the TCP port alone is not enough: the Unix socket comes a moment later, and with
            # so_reuseport another process may hold the port already
            if (not self.daemon or self._daemon_pid) and port_is_open(self.port, timeout=0.2) and \
                    self._unix_socket_ready():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise PoolerError("%s did not accept connections on %s:%d within %ss\n%s"
                                  % (self.kind, HOST, self.port, timeout, self.describe()))
            time.sleep(0.05)

    def _unix_socket_ready(self):
        d = self.settings.get("unix_socket_dir", self.unix_socket_dir)
        return not d or os.path.exists(os.path.join(str(d), ".s.PGSQL.%d" % self.port))

    def _read_pidfile(self):
        path = self.settings.get("pidfile")
        if not path:
            raise PoolerError("-d needs a pidfile setting so the harness can find the daemon")
        try:
            with open(path) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    @property
    def pid(self):
        if self.daemon:
            return self._daemon_pid
        return self.proc.pid if self.proc else None

    def alive(self):
        if self.daemon:
            return self._daemon_pid is not None and _pid_running(self._daemon_pid)
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def kill(self):
        """SIGKILL on purpose (a test playing a crashed instance): stop() then reports nothing for it."""
        self.signal(signal.SIGKILL)
        if not self.daemon and self.proc is not None:
            self.proc.wait(10)
            self.returncode = self.proc.returncode
        self._stopped = True
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def reload(self, new_settings=None, extra_lines=None, wait=0.5):
        """Merge new_settings (None values delete) into the config, rewrite the ini (plus any raw
        extra_lines, e.g. a deliberately broken one) and send SIGHUP. Returns after `wait` seconds."""
        settings = _merge(self.settings, new_settings)
        self.write_config(settings, extra_lines)
        if not extra_lines:
            self.settings = settings
        self.signal(signal.SIGHUP)
        time.sleep(wait)

    def _wait_gone(self, timeout):
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def wait_exit(self, timeout=10.0):
        """For a test that made the pooler exit on purpose: wait for the exit and return the exit
        code (None: still running after `timeout`, or a daemon). Later stop() calls do nothing."""
        if not self._wait_gone(timeout):
            return None
        self._stopped = True
        if not self.daemon:
            self.returncode = self.proc.wait()
        m = BUG_PATTERNS.search(self.log_text())
        if m:
            self.stop_problems.append("the pooler log reports a bug: %r" % m.group(0))
        return self.returncode

    def stop(self, timeout=5.0):
        """SIGINT; after `timeout` s SIGTERM; 3 s later SIGKILL. Returns the exit code (None for a
        daemon). Records problems (died early, ignored SIGINT, non-zero exit, sanitizer report) in
        stop_problems."""
        if self.proc is None or self._stopped:
            return self.returncode
        self._stopped = True
        if self.returncode is None and self.pid is not None:
            if not self.alive():
                code = "unknown" if self.daemon else _describe_code(self.proc.returncode)
                self.stop_problems.append("%s exited by itself during the test (code %s)" % (self.kind, code))
            else:
                self.signal(signal.SIGINT)
                if not self._wait_gone(timeout):
                    self.stop_problems.append("%s did not exit within %ss of SIGINT" % (self.kind, timeout))
                    self.signal(signal.SIGTERM)
                    if not self._wait_gone(3):
                        self.signal(signal.SIGKILL)
                        self._wait_gone(5)
                if not self.daemon and self.proc.returncode != 0 and not self.stop_problems:
                    self.stop_problems.append("%s exited with code %s after SIGINT"
                                              % (self.kind, _describe_code(self.proc.returncode)))
        if not self.daemon:
            if self.proc.poll() is None:
                self.proc.kill()
            self.returncode = self.proc.wait()
        else:
            self.proc.wait()
            self.returncode = 0 if not self.stop_problems else None
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        m = BUG_PATTERNS.search(self.log_text())
        if m:
            self.stop_problems.append("the pooler log reports a bug: %r" % m.group(0))
        return self.returncode

    # ---- connecting ----
    def dsn(self, db="appdb", user="app", password=None, **extra):
        """libpq key/value DSN through the pooler (TCP). Extra keywords are added (e.g. host=<socket dir>)."""
        if password is None:
            password = self.cluster.passwords.get(user, "")
        # No sslmode: libpq's default (prefer) sends an SSLRequest first, as real clients do.
        parts = {"host": self.host, "port": self.port, "dbname": db, "user": user, "password": password,
                 "connect_timeout": 10}
        parts.update(extra)
        return conninfo(parts)

    def url(self, db="appdb", user="app", password=None):
        if password is None:
            password = self.cluster.passwords.get(user, "")
        return "postgresql://%s:%s@%s:%d/%s" % (user, password, self.host, self.port, db)

    # ---- logs ----
    def _log_paths(self):
        """stdout/stderr capture, plus the `logfile` setting's file when there is one (a daemon
        writes only there)."""
        paths = [self.log_path]
        lf = self.settings.get("logfile")
        if lf and os.path.abspath(lf) != self.log_path:
            paths.append(lf)
        return paths

    def log_text(self):
        out = []
        for path in self._log_paths():
            try:
                with open(path, "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "".join(out)

    def log_tail(self, lines=60):
        return "\n".join(t for t in (tail(p, lines) for p in self._log_paths()) if t)

    def log_problems(self, limit=40):
        """The first log lines that report a problem (WARNING/ERROR/FATAL/PANIC or a sanitizer)."""
        hits = [ln for ln in self.log_text().splitlines()
                if PROBLEM_LINE.search(ln) or BUG_PATTERNS.search(ln)]
        return hits[:limit]

    def describe(self, lines=60):
        """Identity, the log's problem lines and its tail: what a failing test prints."""
        head = "--- %s (pid %s, port %d, config %s) ---" % (self.kind, self.pid, self.port, self.ini_path)
        problems = self.log_problems()
        parts = [head]
        if problems:
            parts += ["--- log lines reporting problems (first %d) ---" % len(problems)] + problems
        parts += ["--- log tail (%d lines) ---" % lines, self.log_tail(lines), "--- end of log ---"]
        return "\n".join(parts)


def _pid_running(pid):
    """True while pid exists and is not a zombie (a daemon's parent here may never reap it)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _describe_code(code):
    if code is not None and code < 0:
        try:
            return "%d (%s)" % (code, signal.Signals(-code).name)
        except ValueError:
            pass
    return str(code)

