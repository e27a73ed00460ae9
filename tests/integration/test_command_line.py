"""The command line, as PgBouncer's: pgsluice [-d] [-q] [-v] [-u user] CONFIG, -V, and signals."""
import os
import pwd
import re
import signal
import subprocess
import threading
import time

import pytest

from harness import clients
from harness.util import wait_for
from harness.pooler import PoolerError, pooler_binary


def test_version_option_prints_a_version_and_exits_0():
    p = subprocess.run([pooler_binary(), "-V"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p
    assert re.search(r"\d+\.\d+", p.stdout + p.stderr), p


def test_invalid_config_value_makes_startup_fail_and_says_why(pooler):
    p = pooler({"default_pool_size": "banana"}, start=False)
    with pytest.raises(PoolerError):
        p.start()
    assert p.returncode not in (None, 0)
    assert "banana" in p.log_text() and "default_pool_size" in p.log_text(), p.describe()


def test_daemon_option_detaches_and_writes_the_pidfile(pooler):
    p = pooler(args=["-d"], start=False)
    pidfile = os.path.join(p.dir, "pooler.pid")
    p.settings.update(pidfile=pidfile, logfile=os.path.join(p.dir, "pooler-daemon.log"))
    p.start()
    assert p.proc.returncode == 0, "the launching process should exit 0 once the daemon runs"
    assert p.pid and p.pid != p.proc.pid and p.alive()
    clients.assert_pooler_serves(p)
    assert "login" in p.log_text() or "LOG" in p.log_text(), "the daemon should log to its logfile"
    p.stop()
    assert not p.alive() and p.stop_problems == [], p.stop_problems
    assert not os.path.exists(pidfile), "the pidfile should be removed at exit"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_user_option_switches_to_that_os_user(pooler):
    p = pooler(args=["-u", "postgres"])
    pg_uid = pwd.getpwnam("postgres").pw_uid

    def uids():
        with open("/proc/%d/status" % p.pid) as f:
            return next(line for line in f if line.startswith("Uid:")).split()[1:]
    # the sockets open first (a privileged port needs root), then the process switches: wait for it
    wait_for(lambda: all(int(u) == pg_uid for u in uids()), timeout=10, what="the switch to postgres")
    clients.assert_pooler_serves(p)


def test_quiet_option_keeps_stderr_silent(pooler):
    p = pooler(args=["-q"], start=False)
    p.settings["logfile"] = os.path.join(p.dir, "pooler-file.log")
    p.start()
    clients.assert_pooler_serves(p)
    p.stop()
    assert os.path.getsize(p.log_path) == 0, open(p.log_path).read()[-2000:]
    assert os.path.getsize(p.settings["logfile"]) > 0


def test_sigint_lets_a_running_query_finish_then_exits(pooler):
    p = pooler()
    c = clients.connect(p)
    result = {}

    def run():
        try:
            result["row"] = c.execute("SELECT pg_sleep(1.5), 'finished'").fetchone()
        except Exception as e:  # noqa: BLE001
            result["error"] = e

    th = threading.Thread(target=run)
    th.start()
    time.sleep(0.5)
    p.signal(signal.SIGINT)  # safe shutdown
    th.join(10)
    c.close()
    assert result.get("row") == ("", "finished"), result
    code = p.wait_exit(10)
    assert code == 0, "exit code %s after SIGINT (None: still running 10 s later)" % code
