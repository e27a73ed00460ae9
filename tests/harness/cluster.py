#!/usr/bin/python3
"""cluster.py - a throwaway PostgreSQL 15 primary + streaming replica for tests and the demo.

Library:  c = Cluster(base_dir); c.start(); ... c.stop()
CLI:      tests/harness/cluster.py up --dir D      (prints ports etc. as shell variables)
          tests/harness/cluster.py down --dir D
          /usr/bin/python3 -m harness cluster up|down|status --dir D   (with tests/ on PYTHONPATH)

Everything runs on 127.0.0.1 on free ports, with unix sockets in the cluster's own directory.
initdb/postgres run as the postgres OS user (they refuse root).
"""
import argparse
import atexit
import json
import os
import re
import shlex
import shutil
import sys
import tempfile

if __package__ in (None, ""):  # run as a script: make `harness` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "harness"  # noqa: A001

from harness.util import (HOST, chown_to_postgres, conninfo, free_port, run_as_postgres, tail,  # noqa: E402
                          wait_for)

PG_BINDIR = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")

SUPERUSER = "postgres"
DEFAULT_SUPERUSER_PASSWORD = "postgrespw"

# Roles the tests use: name -> (password, how the server stores it)
ROLES = {
    "app": ("apppw", "scram-sha-256"),
    "app_md5": ("md5pw", "md5"),
    "plainuser": ("plainpw", "scram-sha-256"),
}
# Databases: name -> owner
DATABASES = {"appdb": "app", "sav3": "app"}

_SERVER_CONF = """
# --- added by tests/harness/cluster.py ---
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockdir}'
max_connections = 200
wal_level = logical
max_wal_senders = 5
max_replication_slots = 5
hot_standby = on
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
log_line_prefix = '%m [%p] %q%u@%d '
log_connections = off
"""


class Server:
    """One postgres instance (data dir + port) driven with pg_ctl as the postgres OS user."""

    def __init__(self, name, datadir, port, logfile):
        self.name, self.datadir, self.port, self.logfile = name, datadir, port, logfile

    def start(self):
        run_as_postgres([os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.datadir, "-l", self.logfile,
                         "-w", "-t", "60", "start"], timeout=90)

    def stop(self):
        if not os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
            return
        p = run_as_postgres([os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.datadir, "-m", "fast",
                             "-w", "-t", "20", "stop"], check=False, timeout=60)
        if p.returncode != 0:
            run_as_postgres([os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.datadir, "-m", "immediate",
                             "-w", "-t", "20", "stop"], check=False, timeout=60)

    def log_tail(self, lines=40):
        return tail(self.logfile, lines)


class Cluster:
    """A primary and a streaming replica under base_dir. Ports, passwords and secrets as attributes."""

    def __init__(self, base_dir=None, superuser_password=DEFAULT_SUPERUSER_PASSWORD, keep=False, replica=True,
                 extra_conf=""):
        self.own_dir = base_dir is None
        self.base_dir = os.path.abspath(base_dir or tempfile.mkdtemp(prefix="slpg-"))
        self.superuser_password = superuser_password
        self.keep = keep  # True: leave servers running when this process exits (CLI "up")
        self.with_replica = replica  # False: a primary only (faster, for tests that need a special server)
        self.extra_conf = extra_conf  # postgresql.conf lines appended last (e.g. "max_connections = 50")
        self.sockdir = os.path.join(self.base_dir, "run")
        self.primary = None
        self.replica = None
        self.extra_replicas = []  # add_replica()
        self.secrets = {}  # role -> rolpassword from pg_authid (SCRAM secret or md5 hash)
        self._stopped = False

    # ---- properties the tests use ----
    @property
    def host(self):
        return HOST

    @property
    def primary_port(self):
        return self.primary.port

    @property
    def replica_port(self):
        return self.replica.port

    @property
    def passwords(self):
        d = {name: pw for name, (pw, _) in ROLES.items()}
        d[SUPERUSER] = self.superuser_password
        return d

    def dsn(self, dbname="postgres", user=SUPERUSER, password=None, port=None, **extra):
        """A libpq key/value DSN straight to the primary (or to `port`)."""
        if password is None:
            password = self.passwords.get(user, "")
        parts = {"host": HOST, "port": port or self.primary_port, "dbname": dbname, "user": user,
                 "password": password, "connect_timeout": 10}
        parts.update(extra)
        return conninfo(parts)

    # ---- lifecycle ----
    def start(self):
        os.makedirs(self.base_dir, exist_ok=True)
        os.makedirs(self.sockdir, exist_ok=True)
        chown_to_postgres(self.base_dir)
        chown_to_postgres(self.sockdir)
        os.chmod(self.base_dir, 0o755)
        if not self.keep:
            atexit.register(self.stop)
        try:
            self._start_primary()
            self._create_roles()
            if self.with_replica:
                self._start_replica()
        except BaseException:
            self.stop()
            raise
        if self.with_replica:
            self._write_state()
        return self

    def stop(self):
        if self._stopped:
            return
        self._stopped = True
        for srv in self.extra_replicas + [self.replica, self.primary]:
            if srv is not None:
                try:
                    srv.stop()
                except Exception as e:  # keep going: always clean up
                    print("harness: stopping %s failed: %s" % (srv.name, e), file=sys.stderr)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def _start_primary(self):
        datadir = os.path.join(self.base_dir, "primary")
        pwfile = os.path.join(self.base_dir, "superuser.pw")
        with open(pwfile, "w") as f:
            f.write(self.superuser_password + "\n")
        chown_to_postgres(pwfile)
        run_as_postgres([os.path.join(PG_BINDIR, "initdb"), "-D", datadir, "-U", SUPERUSER,
                         "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=" + pwfile,
                         "-E", "UTF8", "--locale=C.UTF-8", "-N"], timeout=120)
        os.unlink(pwfile)
        port = free_port()
        with open(os.path.join(datadir, "postgresql.conf"), "a") as f:
            f.write(_SERVER_CONF.format(port=port, sockdir=self.sockdir) + self.extra_conf + "\n")
        # app_md5's password is stored as md5, which a scram-sha-256 hba line refuses: give it an
        # md5 line first (md5 method also accepts SCRAM-stored passwords, but only app_md5 uses it).
        hba = os.path.join(datadir, "pg_hba.conf")
        with open(hba) as f:
            body = f.read()
        with open(hba, "w") as f:
            f.write("host all app_md5 127.0.0.1/32 md5\n" + body)
        self.primary = Server("primary", datadir, port, os.path.join(self.base_dir, "primary.log"))
        self.primary.start()

    def psql(self, sql, dbname="postgres", port=None):
        """Run SQL as the superuser over the unix socket (trust); return stdout (unaligned, tuples only)."""
        p = run_as_postgres([os.path.join(PG_BINDIR, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                             "-h", self.sockdir, "-p", str(port or self.primary_port), "-U", SUPERUSER,
                             "-d", dbname, "-c", sql], timeout=60)
        return p.stdout.strip()

    def _create_roles(self):
        # SET and CREATE ROLE in one -c string: one session, so the SET applies to the CREATE.
        for name, (pw, enc) in ROLES.items():
            self.psql("SET password_encryption = '%s'; CREATE ROLE %s LOGIN PASSWORD '%s'" % (enc, name, pw))
        for db, owner in DATABASES.items():
            self.psql("CREATE DATABASE %s OWNER %s" % (db, owner))
        rows = self.psql("SELECT rolname || '|' || rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL")
        for line in rows.splitlines():
            name, secret = line.split("|", 1)
            self.secrets[name] = secret
        assert self.secrets["app"].startswith("SCRAM-SHA-256$"), self.secrets
        assert self.secrets["app_md5"].startswith("md5"), self.secrets

    def _start_replica(self):
        self.replica = self._make_replica("replica")

    def _make_replica(self, name):
        """pg_basebackup -R from the primary into base_dir/<name>, start it, wait until it streams.
        Its walreceiver reports cluster_name = name in the primary's pg_stat_replication."""
        datadir = os.path.join(self.base_dir, name)
        run_as_postgres([os.path.join(PG_BINDIR, "pg_basebackup"), "-h", HOST, "-p", str(self.primary_port),
                         "-U", SUPERUSER, "-D", datadir, "-R", "-X", "stream", "-c", "fast", "-w"],
                        env={"PGPASSWORD": self.superuser_password}, timeout=120)
        port = free_port()
        with open(os.path.join(datadir, "postgresql.conf"), "a") as f:
            f.write("port = %d\ncluster_name = '%s'\n" % (port, name))
        os.chmod(datadir, 0o700)
        srv = Server(name, datadir, port, os.path.join(self.base_dir, name + ".log"))
        srv.start()
        in_recovery = self.psql("SELECT pg_is_in_recovery()", port=port)
        if in_recovery != "t":
            srv.stop()
            raise RuntimeError("%s is not in recovery (pg_is_in_recovery=%r)\n%s"
                               % (name, in_recovery, srv.log_tail()))
        self.wait_streaming(srv)
        return srv

    def wait_streaming(self, srv, timeout=30):
        """Wait until the standby `srv` streams from the primary (e.g. after it was restarted)."""
        wait_for(lambda: self.psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' "
                                   "AND application_name = '%s'" % srv.name) == "1",
                 timeout=timeout, what="%s streaming" % srv.name)

    def add_replica(self, name):
        """Another streaming replica of the primary, for a test that stops or breaks it (the
        session's own replica must stay up for every other test). Remove it with remove_replica();
        stop() removes any that are left."""
        if name in ("primary", "replica", "run") or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError("bad replica name %r" % name)
        srv = self._make_replica(name)
        self.extra_replicas.append(srv)
        return srv

    def remove_replica(self, srv):
        """Stop a replica made by add_replica() and delete its data directory."""
        srv.stop()
        shutil.rmtree(srv.datadir, ignore_errors=True)
        if srv in self.extra_replicas:
            self.extra_replicas.remove(srv)

    def wait_replica_caught_up(self, timeout=15):
        """Wait until the replica has replayed everything the primary has written so far."""
        # insert LSN, not write LSN: with synchronous_commit=off a commit may not be written yet
        lsn = self.psql("SELECT pg_current_wal_insert_lsn()")
        wait_for(lambda: self.psql("SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % lsn,
                                   port=self.replica_port) == "t", timeout=timeout, what="replica replay")

    # ---- state file (for the CLI's down/status) ----
    def state(self):
        return {"base_dir": self.base_dir, "host": HOST, "sockdir": self.sockdir,
                "primary_port": self.primary_port, "replica_port": self.replica_port,
                "primary_datadir": self.primary.datadir, "replica_datadir": self.replica.datadir,
                "superuser": SUPERUSER, "superuser_password": self.superuser_password,
                "passwords": self.passwords, "secrets": self.secrets}

    def _write_state(self):
        with open(os.path.join(self.base_dir, "cluster.json"), "w") as f:
            json.dump(self.state(), f, indent=1)

    @classmethod
    def from_state(cls, base_dir):
        with open(os.path.join(base_dir, "cluster.json")) as f:
            st = json.load(f)
        c = cls(base_dir, st["superuser_password"], keep=True)
        c.primary = Server("primary", st["primary_datadir"], st["primary_port"],
                           os.path.join(base_dir, "primary.log"))
        c.replica = Server("replica", st["replica_datadir"], st["replica_port"],
                           os.path.join(base_dir, "replica.log"))
        c.secrets = st["secrets"]
        return c



def shell_vars(c):
    """The cluster as shell variable assignments (eval-able)."""
    v = {
        "SL_PG_DIR": c.base_dir,
        "PG_HOST": HOST,
        "PG_SOCKDIR": c.sockdir,
        "PRIMARY_PORT": c.primary_port,
        "REPLICA_PORT": c.replica_port,
        "PG_SUPERUSER": SUPERUSER,
        "PG_SUPERUSER_PASSWORD": c.superuser_password,
        "PG_SUPERUSER_SECRET": c.secrets.get(SUPERUSER, ""),
        "APP_USER": "app",
        "APP_PASSWORD": ROLES["app"][0],
        "APP_SECRET": c.secrets.get("app", ""),
    }
    return "\n".join("%s=%s" % (k, shlex.quote(str(val))) for k, val in v.items())


def main(argv=None):
    ap = argparse.ArgumentParser(prog="cluster", description="throwaway PostgreSQL 15 primary + replica")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="create and start; print shell variables")
    up.add_argument("--dir", help="directory to create the cluster in (default: a new temp dir)")
    up.add_argument("--password", default=DEFAULT_SUPERUSER_PASSWORD, help="superuser password")
    for name in ("down", "status"):
        p = sub.add_parser(name)
        p.add_argument("--dir", required=True)
    args = ap.parse_args(argv)

    if args.cmd == "up":
        if args.dir and os.path.isdir(args.dir) and os.listdir(args.dir):
            ap.error("%s is not empty ('down' removes the whole directory, so it must be ours)" % args.dir)
        c = Cluster(args.dir, args.password, keep=True)
        try:
            c.start()
        except Exception as e:
            print("cluster up failed: %s" % e, file=sys.stderr)
            return 1
        print(shell_vars(c))
        return 0
    if not os.path.exists(os.path.join(args.dir, "cluster.json")):
        print("no cluster in %s" % args.dir, file=sys.stderr)
        return 0 if args.cmd == "down" else 1
    c = Cluster.from_state(args.dir)
    if args.cmd == "status":
        print(shell_vars(c))
        return 0
    c.stop()  # stops both servers and removes the directory
    return 0


if __name__ == "__main__":
    sys.exit(main())
