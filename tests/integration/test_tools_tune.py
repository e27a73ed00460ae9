"""test_tools_tune.py - `pgsluice tune`: the guide's sizing on a given machine, caps from a live server's
max_connections, the diff it prints, --apply keeping comments with a backup and a reload the running pgsluice
shows in SHOW CONFIG, and refusals that leave the file as it was."""
import os
import re
import shutil
import tempfile

import pytest

from harness.cluster import Cluster
from harness.pooler import GUIDE_BLOCKS
from harness.util import wait_for
from admin_helpers import console
from tools_helpers import files_in, run_tool

pytestmark = pytest.mark.pgsluice_only


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def read(path):
    with open(path) as f:
        return f.read()


def guide_config(d, dbs, extra=""):
    """A config with the guide's three blocks verbatim (trailing comments included) and trust auth."""
    lines = ["; tuned by the tests", "[databases]"] + ["%s = %s" % kv for kv in dbs.items()]
    lines += ["", "[pgbouncer]", "listen_addr = 127.0.0.1", "listen_port = 6999", "auth_type = trust",
              "unix_socket_dir = " + d, extra, GUIDE_BLOCKS]
    return write(os.path.join(d, "pgsluice.ini"), "\n".join(lines))


def proposed(out, key):
    """The value a tune diff proposes for key (the '+key = N' line), or None."""
    m = re.search(r"^\+%s = (\d+)" % key, out, re.M)
    return int(m.group(1)) if m else None


@pytest.fixture
def tmpdir_short():
    d = tempfile.mkdtemp(prefix="sltune-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def small_server():
    """A PostgreSQL primary with max_connections = 50 (superuser_reserved_connections 3: 47 for poolers)."""
    c = Cluster(tempfile.mkdtemp(prefix="slt50-"), replica=False, extra_conf="max_connections = 50").start()
    yield c
    c.stop()


def test_tune_sizes_a_four_core_eight_gib_machine_as_the_guide_says(tmpdir_short):
    cfg = guide_config(tmpdir_short, {"sav3": "host=127.0.0.1 port=5999 dbname=sav3"})
    before = read(cfg)
    r = run_tool(["tune", "--cpus", "4", "--memory", "8GiB", "--no-connect", cfg])
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "4 CPU cores (--cpus), 8.0 GiB memory (--memory)" in out
    assert proposed(out, "default_pool_size") == 8
    assert proposed(out, "max_client_conn") == 80
    assert proposed(out, "max_db_connections") == 16
    # the diff shows the file's own lines, old and new, with the reason
    assert "-default_pool_size = 25         # Connections per database/user" in out
    assert "+default_pool_size = 8          # Connections per database/user" in out
    assert "2 x 4 CPU cores" in out and "10 x default_pool_size" in out and "2 x default_pool_size" in out
    assert "nothing written" in out
    assert read(cfg) == before, "tune without --apply changed the file"
    assert files_in(tmpdir_short) == ["pgsluice.ini"]


def test_tune_caps_pools_to_a_live_server_with_max_connections_50(tmpdir_short, small_server):
    port = small_server.primary_port
    dbs = {name: "host=127.0.0.1 port=%d dbname=%s" % (port, real)
           for name, real in (("appdb", "appdb"), ("sav3", "sav3"), ("postgres", "postgres"))}
    cfg = guide_config(tmpdir_short, dbs)
    env = {"PGPASSWORD": small_server.superuser_password}
    r = run_tool(["tune", "--cpus", "16", "--memory", "8GiB", cfg], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "max_connections 50, superuser_reserved_connections 3 -> 47 for poolers" in out, out
    max_db = proposed(out, "max_db_connections")
    pool = proposed(out, "default_pool_size")
    assert max_db == 47 // 3 == 15, out
    assert 3 * max_db <= 47
    assert pool == 15, out                      # 2 x 16 cores = 32, lowered to max_db_connections
    assert proposed(out, "max_client_conn") == 150
    assert "capped" in out

    # two instances behind a load balancer share the same 47 slots
    r = run_tool(["tune", "--cpus", "16", "--memory", "8GiB", "--instances", "2", cfg], env=env)
    assert r.returncode == 0, r.stderr
    max_db = proposed(r.stdout, "max_db_connections")
    assert max_db == 47 // 6 and 2 * 3 * max_db <= 47, r.stdout

    # --apply writes the capped values (no pgsluice runs on this file: nothing to reload)
    r = run_tool(["tune", "--cpus", "16", "--memory", "8GiB", "--apply", cfg], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no running pgsluice found" in r.stdout, r.stdout
    text = read(cfg)
    assert "max_db_connections = 15        # Total backend connections" in text
    assert "default_pool_size = 15         # Connections per database/user" in text


def test_tune_against_a_server_it_cannot_log_in_to_warns_and_does_not_cap(tmpdir_short, small_server):
    cfg = guide_config(tmpdir_short, {"sav3": "host=127.0.0.1 port=%d dbname=sav3" % small_server.primary_port})
    r = run_tool(["tune", "--cpus", "4", "--memory", "8GiB", cfg], env={"PGPASSWORD": "wrong"})
    assert r.returncode == 0, r.stderr
    assert "cannot connect to 127.0.0.1:%d as postgres" % small_server.primary_port in r.stderr
    assert "password authentication failed" in r.stderr
    assert "limits unknown" in r.stdout and "not capped" in r.stdout
    assert proposed(r.stdout, "max_db_connections") == 16


def test_tune_apply_keeps_comments_writes_a_backup_and_reloads_through_the_pidfile(pooler):
    p = pooler(start=False, verbatim=GUIDE_BLOCKS)
    pidfile = os.path.join(p.dir, "pgsluice.pid")
    p.settings["pidfile"] = pidfile
    p.start()
    wait_for(lambda: os.path.exists(pidfile), timeout=10, what="pidfile")
    before = read(p.ini_path)
    r = run_tool(["tune", "--apply", "--cpus", "4", "--memory", "8GiB", "--max-connections", "500", p.ini_path])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sent SIGHUP to pgsluice (pid %d" % p.pid in r.stdout, r.stdout
    after = read(p.ini_path)
    # only the three values changed; every comment, alignment and other line stays
    assert "default_pool_size = 8          # Connections per database/user" in after
    assert "max_client_conn = 80           # Maximum client connections" in after
    assert "max_db_connections = 16        # Total backend connections" in after
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(changed) == 3 and len(before.splitlines()) == len(after.splitlines()), changed
    backups = [f for f in os.listdir(p.dir) if f.startswith("pgbouncer.ini.") and f.endswith(".bak")]
    assert len(backups) == 1
    assert read(os.path.join(p.dir, backups[0])) == before

    def config():
        with console(p) as c:
            return {r["key"]: r["value"] for r in c.execute("SHOW CONFIG").fetchall()}
    wait_for(lambda: config()["default_pool_size"] == "8", timeout=10, what="SHOW CONFIG after the reload")
    cfg = config()
    assert cfg["max_client_conn"] == "80" and cfg["max_db_connections"] == "16"

    # a second run has nothing to change and writes nothing
    r = run_tool(["tune", "--apply", "--cpus", "4", "--memory", "8GiB", "--max-connections", "500", p.ini_path])
    assert r.returncode == 0 and "already tuned" in r.stdout, r.stdout
    assert len([f for f in os.listdir(p.dir) if f.endswith(".bak")]) == 1


def test_tune_apply_reloads_through_the_admin_console_without_a_pidfile(pooler, cluster):
    p = pooler(verbatim=GUIDE_BLOCKS)
    r = run_tool(["tune", "--apply", "--cpus", "2", "--memory", "8GiB", "--max-connections", "500", p.ini_path],
                 env={"PGPASSWORD": cluster.superuser_password})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "RELOAD done on the admin console" in r.stdout, r.stdout
    with console(p) as c:
        cfg = {row["key"]: row["value"] for row in c.execute("SHOW CONFIG").fetchall()}
    # RELOAD on the console is synchronous: the values are there when tune returns
    assert cfg["default_pool_size"] == "4" and cfg["max_client_conn"] == "40" and cfg["max_db_connections"] == "8"
    assert "min_pool_size = 4" in read(p.ini_path)   # guide's 5 is above the new pool: lowered, with its reason
    assert cfg["min_pool_size"] == "4"


def test_tune_apply_with_a_wrong_console_password_says_the_file_is_written_but_not_loaded(pooler):
    p = pooler(verbatim=GUIDE_BLOCKS)
    r = run_tool(["tune", "--apply", "--cpus", "4", "--memory", "8GiB", "--max-connections", "500", p.ini_path],
                 env={"PGPASSWORD": "wrong"})
    assert r.returncode == 2, r.stdout + r.stderr
    assert "the file is written but the running pgsluice did not reload" in r.stderr


def test_tune_adds_missing_settings_to_the_pgbouncer_section(tmpdir_short):
    cfg = write(os.path.join(tmpdir_short, "min.ini"),
                "[databases]\nx = host=127.0.0.1 port=5999\n\n[pgbouncer]\nauth_type = trust\nlisten_port = 6999\n")
    r = run_tool(["tune", "--apply", "--no-reload", "--cpus", "3", "--memory", "4GiB", "--no-connect", cfg])
    assert r.returncode == 0, r.stdout + r.stderr
    text = read(cfg)
    assert text.startswith("[databases]\nx = host=127.0.0.1 port=5999\n\n[pgbouncer]\nauth_type = trust\n"
                           "listen_port = 6999\n")
    for line in ("default_pool_size = 6", "max_db_connections = 12", "max_client_conn = 60"):
        assert line + "   ; added by pgsluice tune" in text


def test_tune_refuses_bad_input_and_leaves_the_file_alone(tmpdir_short, small_server):
    missing = os.path.join(tmpdir_short, "nope.ini")
    r = run_tool(["tune", missing])
    assert r.returncode == 1 and "cannot read %s: No such file or directory" % missing in r.stderr
    assert not os.path.exists(missing)

    cfg = guide_config(tmpdir_short, {"sav3": "host=127.0.0.1 port=5999 dbname=sav3"})
    before = read(cfg)
    for args, msg in ((["--cpus", "zero"], "--cpus needs a whole number"),
                      (["--memory", "lots"], "--memory needs a size like 8GiB"),
                      (["--instances", "0"], "--instances needs a whole number"),
                      (["--superuser-reserved", "3"], "--superuser-reserved goes with --max-connections")):
        r = run_tool(["tune", "--apply"] + args + [cfg])
        assert r.returncode == 1 and msg in r.stderr, (args, r.stderr)

    # a server that cannot hold one connection per database per instance: refused, nothing written
    r = run_tool(["tune", "--apply", "--cpus", "4", "--memory", "8GiB", "--max-connections", "5", "--instances",
                  "3", cfg])
    assert r.returncode == 1 and "too few for 1 database(s) x 3 pgsluice instance(s)" in r.stderr, r.stderr

    # a setting an %include sets again after the edited line: refused, file and directory unchanged
    write(os.path.join(tmpdir_short, "override.ini"), "max_client_conn = 999\n")
    with open(cfg, "a") as f:
        f.write("%include override.ini\n")
    before = read(cfg)
    r = run_tool(["tune", "--apply", "--no-reload", "--cpus", "4", "--memory", "8GiB", "--no-connect", cfg])
    assert r.returncode == 1, r.stdout
    assert "max_client_conn is still 999" in r.stderr and "Nothing written" in r.stderr, r.stderr
    assert read(cfg) == before
    assert files_in(tmpdir_short) == ["override.ini", "pgsluice.ini"]

    # a broken config is reported with file:line and not touched
    bad = write(os.path.join(tmpdir_short, "bad.ini"), "[pgbouncer]\nmax_client_conn = many\n")
    r = run_tool(["tune", "--apply", "--cpus", "4", "--memory", "8GiB", "--no-connect", bad])
    assert r.returncode == 1 and "bad.ini:2:" in r.stderr, r.stderr
    assert read(bad) == "[pgbouncer]\nmax_client_conn = many\n"
