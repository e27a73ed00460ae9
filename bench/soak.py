#!/usr/bin/python3
"""soak.py - pgsluice under mixed load for a long time (`make soak`, not part of `make test`).

A throwaway PostgreSQL 15 primary and pgsluice (transaction pooling, pool of 10), then for
SOAK_MINUTES (default 30): pgbench select-only with 20 clients, pgbench with a new connection per
transaction (-C, 5 clients: client churn), a TPC-B-like read/write pgbench (5 clients), a RELOAD every
30 s, one PostgreSQL restart (fast) at a third of the run, and a sample every 10 s of pgsluice's RSS,
open file descriptors and thread count. After a warm-up of a fifth of the run, each must stay within
5 % of its median (file descriptors: within the clients' own churn). A pgbench that ends early (its
clients aborted) is started again for the time left; each load's transactions, failures and aborted
clients over all its runs are reported, with the first abort's reason. Prints the tables and writes
SOAK_OUT/soak.md (default bench/results/soak.md). Exit status 1 when a figure drifts or pgsluice died.

Run as root with /usr/bin/python3 (PostgreSQL runs as the postgres OS user).
Environment: SL_BIN (default build/pgsluice), SOAK_MINUTES, SOAK_OUT.
"""
import datetime
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness.cluster import PG_BINDIR, Cluster  # noqa: E402
from harness.pooler import Pooler  # noqa: E402
from harness.util import run_as_postgres  # noqa: E402

PGBENCH = os.path.join(PG_BINDIR, "pgbench")


def proc_figures(pid):
    with open("/proc/%d/status" % pid) as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    rss_kb = int(status["VmRSS"].split()[0])
    threads = int(status["Threads"])
    fds = len(os.listdir("/proc/%d/fd" % pid))
    return rss_kb, fds, threads


def pgbench(p, seconds, *args):
    env = dict(os.environ, PGPASSWORD=p.cluster.passwords["app"], PGSSLMODE="disable")
    cmd = [PGBENCH, "-h", p.host, "-p", str(p.port), "-U", "app", "-T", str(seconds), "-n"] + list(args)
    cmd += ["appdb"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def main():
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    seconds = int(minutes * 60)
    out_dir = os.environ.get("SOAK_OUT", os.path.join(ROOT, "bench", "results"))
    os.environ.setdefault("SL_BIN", os.path.join(ROOT, "build", "pgsluice"))
    base = tempfile.mkdtemp(prefix="slsoak-")
    os.chmod(base, 0o755)
    cluster = Cluster(os.path.join(base, "pg"), replica=False).start()
    p = Pooler(cluster, base, settings={"default_pool_size": 10, "max_client_conn": 200, "query_wait_timeout": 60})
    p.start()
    env = dict(os.environ, PGPASSWORD=cluster.passwords["app"], PGSSLMODE="disable")
    subprocess.run([PGBENCH, "-i", "-s", "2", "-h", p.host, "-p", str(p.port), "-U", "app", "appdb"], env=env,
                   check=True, capture_output=True)
    samples, events, failures = [], [], []
    stop = threading.Event()

    def sampler():
        start = time.monotonic()
        while not stop.wait(10):
            try:
                samples.append((time.monotonic() - start,) + proc_figures(p.pid))
            except OSError:
                failures.append("pgsluice is gone")
                return

    def reloader():
        while not stop.wait(30):
            p.signal(signal.SIGHUP)
            events.append("reload")

    threads = [threading.Thread(target=sampler), threading.Thread(target=reloader)]
    for t in threads:
        t.start()
    # Each load runs until the end: pgbench stops a client whose transaction fails (the restart kills the
    # transactions in flight) and exits when all have stopped, so a run that ends early is started again
    # for the time left. Every run's counts go into the report.
    deadline = time.monotonic() + seconds
    kinds = (("select-only, 20 clients", ("-S", "-c", "20", "-j", "2")),
             ("select-only, new connection per transaction (-C), 5 clients", ("-S", "-C", "-c", "5")),
             ("TPC-B-like read/write, 5 clients", ("-c", "5")))
    runs = {name: [] for name, _ in kinds}

    def load(name, args):
        while True:
            left = int(deadline - time.monotonic())
            if left < 2:
                return
            lp = pgbench(p, left, *args)
            out = lp.communicate(timeout=left + 120)[0]
            runs[name].append((lp.returncode, out))
            if lp.returncode not in (0, 2):  # 2: some clients aborted (counted below)
                failures.append("pgbench (%s) failed to run: %s" % (name, out.strip().splitlines()[-1:]))
                return

    loaders = [threading.Thread(target=load, args=kind) for kind in kinds]
    for t in loaders:
        t.start()
    time.sleep(seconds / 3)  # the load runs meanwhile; this is the schedule, not a wait for a condition
    run_as_postgres([os.path.join(PG_BINDIR, "pg_ctl"), "-D", cluster.primary.datadir, "-m", "fast", "-w",
                     "restart", "-l", cluster.primary.logfile], timeout=120)
    events.append("server restart")
    for t in loaders:
        t.join()
    stop.set()
    for t in threads:
        t.join()
    alive = p.alive()
    p.stop()
    cluster.stop()

    warm = [s for s in samples if s[0] >= seconds / 5] or samples
    report = ["# pgsluice soak: %s" % datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "",
              "%.1f minutes; %d samples (every 10 s), %d after warm-up; events: %d reloads, %s." % (
                  minutes, len(samples), len(warm), events.count("reload"),
                  "one server restart" if "server restart" in events else "no server restart"), "",
              "| figure | median | min | max | max drift |", "|---|---|---|---|---|"]
    ok = alive and not failures
    for i, (name, slack) in enumerate((("RSS (KiB)", 0.05), ("open fds", None), ("threads", 0.0)), start=1):
        vals = [s[i] for s in warm]
        if not vals:
            continue
        med = statistics.median(vals)
        drift = max(abs(v - med) for v in vals) / med if med else 0.0
        report.append("| %s | %.0f | %.0f | %.0f | %.1f %% |" % (name, med, min(vals), max(vals), drift * 100))
        if slack is not None and drift > slack + 1e-9:
            ok = False
            failures.append("%s drifts %.1f %% from its median" % (name, drift * 100))
    report += ["", "| load | pgbench runs | transactions | failed | clients aborted | first abort |",
               "|---|---|---|---|---|---|"]
    for name, _ in kinds:
        txs = failed = aborted = 0
        first = ""
        for _, out in runs[name]:
            m = re.search(r"number of transactions actually processed: (\d+)", out)
            txs += int(m.group(1)) if m else 0
            m = re.search(r"number of failed transactions: (\d+)", out)
            failed += int(m.group(1)) if m else 0
            lines = [ln for ln in out.splitlines() if re.search(r"client \d+ aborted", ln)]
            aborted += len(lines)
            if lines and not first:
                first = lines[0].split("aborted", 1)[1].strip()[:120].replace("|", "/")
        report.append("| %s | %d | %d | %d | %d | %s |" % (name, len(runs[name]), txs, failed, aborted, first or "—"))
    report += ["", "Result: %s" % ("flat, pgsluice alive" if ok else "FAILED: " + "; ".join(failures or ["pgsluice died"]))]
    text = "\n".join(report) + "\n"
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "soak.md"), "w") as f:
        f.write(text)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
