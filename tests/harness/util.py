"""util.py - small process, port and file helpers shared by the cluster and pooler harness."""
import os
import pwd
import socket
import subprocess
import time

PG_OS_USER = "postgres"
HOST = "127.0.0.1"

# Ports the harness never hands out: Debian's default cluster and the demo's pooler port.
RESERVED_PORTS = {5432, 6432}
_handed_out = set()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now (never 5432/6432, never twice)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in RESERVED_PORTS and port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


def port_is_open(port, host=HOST, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pg_user():
    return pwd.getpwnam(PG_OS_USER)


def chown_to_postgres(path, recursive=False):
    """Give a path to the postgres OS user (initdb/postgres/pgbouncer refuse to run as root)."""
    if os.geteuid() != 0:
        return
    pw = pg_user()
    os.chown(path, pw.pw_uid, pw.pw_gid)
    if recursive:
        for root, dirs, files in os.walk(path):
            for n in dirs + files:
                os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid, follow_symlinks=False)


def as_postgres_kwargs():
    """Popen keyword arguments that run the child as the postgres OS user when we are root."""
    if os.geteuid() != 0:
        return {}
    pw = pg_user()
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def run_as_postgres(cmd, env=None, check=True, timeout=120, cwd="/"):
    """Run a command as the postgres OS user; return CompletedProcess (text). Raise with output on error."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("LC_ALL", "C.UTF-8")
    p = subprocess.run(cmd, env=full_env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       **as_postgres_kwargs())
    if check and p.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n--- stdout ---\n%s\n--- stderr ---\n%s"
                           % (p.returncode, " ".join(cmd), p.stdout[-4000:], p.stderr[-4000:]))
    return p


def tail(path, lines=60):
    """The last lines of a text file ('' if missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def wait_for(predicate, timeout, interval=0.05, what="condition", retry_on=()):
    """Poll predicate() until it returns truthy; return its value or raise TimeoutError. Exceptions of
    the types in retry_on count as "not yet" (the last one is quoted if time runs out)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = predicate()
        except retry_on as e:  # noqa: PERF203
            v, last = None, e
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s%s" % (timeout, what,
                                                                       " (last error: %r)" % last if last else ""))
        time.sleep(interval)


def conninfo(parts):
    """A libpq key/value connection string from a dict, values quoted where needed."""
    def q(v):
        v = str(v)
        if v and all(ch not in v for ch in " '\\"):
            return v
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return " ".join("%s=%s" % (k, q(v)) for k, v in parts.items())
