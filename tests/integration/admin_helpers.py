"""Helpers shared by the admin console tests (test_admin*.py); no tests here.

The console is the virtual database "pgbouncer". In the harness config `postgres` is the admin user;
the tests add `plainuser` as a stats user; `app` is in neither list."""
import os
import subprocess
import tempfile
import threading

import psycopg
from psycopg.rows import dict_row

from harness import clients

ADMIN = "postgres"
STATS_USER = "plainuser"
OTHER_USER = "app"

ADMIN_SETTINGS = {"stats_users": STATS_USER}


def admin_pooler(pooler, settings=None, **kw):
    s = dict(ADMIN_SETTINGS)
    s.update(settings or {})
    return pooler(s, **kw)


def console(p, user=ADMIN, db="pgbouncer", **kw):
    """A psycopg connection to the console (autocommit, dict rows)."""
    kw.setdefault("prepare_threshold", None)
    return psycopg.connect(p.dsn(db, user), autocommit=True, row_factory=dict_row, **kw)


def show(p, what, user=ADMIN):
    with console(p, user) as c:
        return c.execute("SHOW " + what).fetchall()


def columns(p, what, user=ADMIN):
    with console(p, user) as c:
        cur = c.execute("SHOW " + what)
        return [(d.name, d.type_code) for d in cur.description]


def admin_psql(p, sql, user=ADMIN, check=True, timeout=60):
    """psql -c SQL on the console; returns the CompletedProcess (stdout: unaligned tuples)."""
    return clients.psql(p, "-c", sql, db="pgbouncer", user=user, check=check, timeout=timeout)


def psql_rows(text):
    return [line.split("|") for line in text.splitlines() if line]


def pool_row(p, db, user="app"):
    for r in show(p, "POOLS"):
        if r["database"] == db and r["user"] == user:
            return r
    return None


def stats_row(p, db):
    for r in show(p, "STATS"):
        if r["database"] == db:
            return r
    return None


def state(p):
    return {r["key"]: r["value"] for r in show(p, "STATE")}


class Background:
    """Run fn in a thread; .result / .error when done."""

    def __init__(self, fn):
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn):
        try:
            self.result = fn()
        except BaseException as e:  # noqa: B902 - handed to the test
            self.error = e

    def alive(self):
        return self.thread.is_alive()

    def join(self, timeout=30):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "background call did not finish within %ss" % timeout
        if self.error:
            raise self.error
        return self.result


def pgbench_load(p, db="appdb", clients_n=4, seconds=6, script="SELECT 1;\n", user="app", extra=()):
    """Start pgbench with a custom script (no other queries: -n) in the background; returns the Popen.
    Output is text; call .communicate() to finish."""
    fd, path = tempfile.mkstemp(prefix="admin-bench-", suffix=".sql")
    with os.fdopen(fd, "w") as f:
        f.write(script)
    os.chmod(path, 0o644)
    cmd = [os.path.join(clients.PG_BINDIR, "pgbench"), "-h", p.host, "-p", str(p.port), "-U", user, "-n",
           "-f", path, "-c", str(clients_n), "-j", "2"]
    cmd += ["-T", str(seconds)] if seconds else []
    cmd += list(extra) + [db]
    env = clients._env(p, user, None)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.script_path = path
    return proc


def pgbench_finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    os.unlink(proc.script_path)
    text = out + err
    import re
    processed = re.search(r"number of transactions actually processed: (\d+)", text)
    failed = re.search(r"number of failed transactions: (\d+)", text)
    assert proc.returncode == 0, "pgbench exit %d\n%s" % (proc.returncode, text[-3000:])
    assert processed and failed, text[-3000:]
    return int(processed.group(1)), int(failed.group(1)), text
