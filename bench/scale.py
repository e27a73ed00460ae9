#!/usr/bin/python3
"""scale.py - how pgsluice's throughput grows with `workers` when the pooler has cores of its own,
against PgBouncer (one thread) on the same cores. Run through bench/scale.sh (see bench/README.md).

PostgreSQL, pgbench and the pooler are pinned to separate CPU sets (sched_setaffinity on every
thread, as `taskset -a -p` does; PostgreSQL's backends inherit the postmaster's set). Each step
starts a fresh pooler (PgBouncer, then pgsluice with workers = 1, 2, 4, ...) and runs select-only
pgbench (-S, simple protocol) through it; reported per step: TPS, the pooler's CPU in cores
(utime+stime / wall time), its CPU µs and context switches per transaction, and TPS ÷ PgBouncer's.

On a machine with >= 8 CPUs the default split is a quarter of them for the pooler, a quarter for
pgbench and the rest for PostgreSQL. With fewer (the 2-core development VM) the sets overlap and the
sweep is only a check that the script works: the pooler gets CPU 0, pgbench and PostgreSQL the
last CPU; no speed-up can show there.

Environment: SCALE_POOLER_CPUS, SCALE_BENCH_CPUS, SCALE_PG_CPUS (lists like "0-3,8"),
SCALE_WORKERS ("1 2 4"; default powers of two up to the pooler's CPUs), SCALE_CLIENTS (default
32 per pooler CPU, at least 50), SCALE_SECONDS (10), SCALE_SCALE (pgbench -i -s, 10),
SCALE_POOL_SIZE (server connections per pool; default 2 per PostgreSQL CPU, at least 8), SL_BIN,
PGBOUNCER_BIN, SCALE_OUT (a directory for scale.md; default: print only). --smoke: 1-second runs,
scale 1, workers 1 and 2.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import shutil
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
import bench  # noqa: E402  (the throwaway PostgreSQL, the pooler configs, /proc helpers)


def parse_cpus(text):
    out = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-")
            out.update(range(int(a), int(b) + 1))
        else:
            out.add(int(part))
    return sorted(out)


def fmt_cpus(cpus):
    return ",".join(str(c) for c in cpus)


def split_cpus(avail):
    """(pooler, pgbench, postgres) CPU lists."""
    n = len(avail)
    if n >= 8:
        q = n // 4
        return avail[:q], avail[q:2 * q], avail[2 * q:]
    if n >= 4:
        return avail[:1], avail[1:2], avail[2:]
    return avail[:1], avail[-1:], avail[-1:]  # degenerate: only a check that the script works


def pin_all_threads(pid, cpus):
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass


def pin_postgres(pg, cpus):
    with open(os.path.join(pg.datadir, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    pids = [postmaster] + [int(p) for p in subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True,
                                                         text=True).stdout.split()]
    for pid in pids:
        pin_all_threads(pid, cpus)


def main():
    ap = argparse.ArgumentParser(description="pgsluice workers sweep against PgBouncer with pinned CPU sets")
    ap.add_argument("--smoke", action="store_true", help="1-second runs, scale 1, workers 1 and 2")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory")
    ap.add_argument("--plan", action="store_true", help="print the CPU sets and steps, run nothing (make test "
                    "runs this: a full --smoke takes ~20 s, mostly initdb and pgbench -i)")
    args = ap.parse_args()
    if os.geteuid() != 0 and not args.plan:
        raise SystemExit("scale: run as root (PostgreSQL and PgBouncer run as the postgres OS user)")
    avail = sorted(os.sched_getaffinity(0))
    d_pool, d_bench, d_pg = split_cpus(avail)
    env = os.environ.get
    pool_cpus = parse_cpus(env("SCALE_POOLER_CPUS") or fmt_cpus(d_pool))
    bench_cpus = parse_cpus(env("SCALE_BENCH_CPUS") or fmt_cpus(d_bench))
    pg_cpus = parse_cpus(env("SCALE_PG_CPUS") or fmt_cpus(d_pg))
    seconds = int(env("SCALE_SECONDS") or (1 if args.smoke else 10))
    scale = int(env("SCALE_SCALE") or (1 if args.smoke else 10))
    clients = int(env("SCALE_CLIENTS") or max(50, 32 * len(pool_cpus)))
    bench.POOL_SIZE = int(env("SCALE_POOL_SIZE") or max(8, 2 * len(pg_cpus)))
    if env("SCALE_WORKERS"):
        workers = [int(w) for w in env("SCALE_WORKERS").split()]
    elif args.smoke:
        workers = [1, 2]
    else:
        workers, w = [], 1
        while w <= len(pool_cpus):
            workers.append(w)
            w *= 2
        if workers[-1] != len(pool_cpus):
            workers.append(len(pool_cpus))
    sl_bin = env("SL_BIN") or os.path.join(bench.ROOT, "build-bench", "pgsluice")
    pgb_bin = env("PGBOUNCER_BIN") or "/usr/sbin/pgbouncer"
    # degenerate: sets that overlap, or too few CPUs for pgbench and PostgreSQL to outrun the pooler
    overlap = bool(set(pool_cpus) & set(bench_cpus) or set(pool_cpus) & set(pg_cpus) or set(bench_cpus) & set(pg_cpus)
                   or len(avail) < 8)
    if args.plan:
        for c in pool_cpus + bench_cpus + pg_cpus:
            if c not in avail:
                raise SystemExit("scale: CPU %d is not available to this process (%s)" % (c, fmt_cpus(avail)))
        print("scale plan: %d CPUs; pooler %s, pgbench %s, PostgreSQL %s%s; %d clients, %d s per step, "
              "default_pool_size %d; PgBouncer (%s), then pgsluice (%s) with workers %s"
              % (len(avail), fmt_cpus(pool_cpus), fmt_cpus(bench_cpus), fmt_cpus(pg_cpus),
                 " (degenerate: overlapping sets or < 8 CPUs)" if overlap else "", clients, seconds, bench.POOL_SIZE, pgb_bin, sl_bin,
                 " ".join(map(str, workers))))
        for b in (sl_bin, pgb_bin):
            if not os.access(b, os.X_OK):
                raise SystemExit("scale: %s is not executable" % b)
        return 0
    base = tempfile.mkdtemp(prefix="pgsluice-scale-")
    os.chmod(base, 0o755)
    pg = bench.Postgres(base, "md5")
    rows, steps = [], []
    load = os.getloadavg()
    try:
        bench.log("CPUs: pooler %s, pgbench %s, PostgreSQL %s%s" % (fmt_cpus(pool_cpus), fmt_cpus(bench_cpus),
                  fmt_cpus(pg_cpus), " (degenerate: overlapping sets or < 8 CPUs, no speed-up can show)" if overlap else ""))
        pg.start()
        pin_postgres(pg, pg_cpus)
        p = subprocess.run(["taskset", "-c", fmt_cpus(bench_cpus), bench.PGBENCH, "-i", "-s", str(scale), "-q",
                            "-h", bench.HOST, "-p", str(pg.port), "-U", bench.USER, bench.DB],
                           env=bench.pgbench_env(), capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError("pgbench -i failed:\n" + p.stderr[-2000:])
        pin_postgres(pg, pg_cpus)  # backends started since
        steps = [("pgbouncer", "pgbouncer", pgb_bin, None)] + \
            [("pgsluice-w%d" % w, "pgsluice", sl_bin, w) for w in workers]
        for name, kind, binary, w in steps:
            t = bench.Pooler(name, kind, binary, base, pg, clients + 100, workers=w)
            t.start()
            try:
                pin_all_threads(t.pid, pool_cpus)
                cmd = ["taskset", "-c", fmt_cpus(bench_cpus), bench.PGBENCH, "-h", bench.HOST, "-p", str(t.port),
                       "-U", bench.USER, "-n", "-S", "-M", "simple", "-c", str(clients),
                       "-j", str(min(len(bench_cpus), clients)), "-T", str(seconds), bench.DB]
                # warm-up: the clients log in and the pool fills
                subprocess.run(cmd[:-3] + ["-T", "1", bench.DB], env=bench.pgbench_env(), capture_output=True,
                               timeout=120)
                cpu0, cs0, t0 = bench.proc_cpu_seconds(t.pid), bench.proc_ctx_switches(t.pid), time.monotonic()
                r = subprocess.run(cmd, env=bench.pgbench_env(), capture_output=True, text=True,
                                   timeout=seconds + 120)
                wall = time.monotonic() - t0
                cpu, cs = bench.proc_cpu_seconds(t.pid) - cpu0, bench.proc_ctx_switches(t.pid) - cs0
                res = bench.parse_pgbench(r.stdout + r.stderr)
                if r.returncode != 0 or not res["tx"]:
                    raise RuntimeError("%s: pgbench failed: %s" % (name, bench.first_error(r.stdout + r.stderr)))
                rows.append(dict(name=name, workers=w, tps=res["tps"], cores=cpu / wall,
                                 us_per_tx=cpu / res["tx"] * 1e6, cs_per_tx=cs / res["tx"]))
                bench.log("  %-14s %8.0f tps, pooler %.2f cores, %.1f µs CPU/tx, %.2f ctx sw/tx"
                          % (name, res["tps"], cpu / wall, cpu / res["tx"] * 1e6, cs / res["tx"]))
            finally:
                t.stop()
    finally:
        pg.stop()
        if args.keep:
            bench.log("kept %s" % base)
        else:
            shutil.rmtree(base, ignore_errors=True)
    pgb = rows[0]["tps"]
    best = max(r["tps"] for r in rows[1:])
    head = ["pooler", "workers", "TPS", "×PgB", "pooler CPU (cores)", "µs CPU/tx", "ctx sw/tx"]
    body = [[r["name"].split("-")[0], "—" if r["workers"] is None else r["workers"], "%.0f" % r["tps"],
             "%.2f×" % (r["tps"] / pgb), "%.2f" % r["cores"], "%.1f" % r["us_per_tx"], "%.3f" % r["cs_per_tx"]]
            for r in rows]
    md = ["# pgsluice workers sweep (bench/scale.sh)", "",
          "%d CPUs; pooler on %s, pgbench on %s (-j %d, %d clients, -S, simple), PostgreSQL on %s; %d s per step; "
          "default_pool_size %d; load average before %.2f / %.2f / %.2f.%s" % (
              len(avail), fmt_cpus(pool_cpus), fmt_cpus(bench_cpus), min(len(bench_cpus), clients), clients,
              fmt_cpus(pg_cpus), seconds, bench.POOL_SIZE, load[0], load[1], load[2],
              " Degenerate run (CPU sets overlap or fewer than 8 CPUs): it only checks that the sweep works."
              if overlap else ""), "",
          bench.md_table(head, body), "",
          "Best pgsluice step: %.2f× PgBouncer's TPS." % (best / pgb), ""]
    text = "\n".join(md)
    print(text)
    out = env("SCALE_OUT")
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "scale.md"), "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
