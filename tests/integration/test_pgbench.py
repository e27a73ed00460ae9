"""pgbench through the pooler: initialise, then 50 clients over a pool of 5 in transaction mode."""
import re

import pytest

from harness import clients
from harness.pooler import Pooler


@pytest.fixture(scope="module")
def pgbench_init(cluster, session_dir):
    """`pgbench -i -s 1` into appdb through a pooler of its own; returns the CompletedProcess."""
    p = Pooler(cluster, session_dir).start()
    try:
        result = clients.pgbench(p, "-i", "-s", "1", "-q")
    finally:
        p.stop()
    if p.stop_problems:
        pytest.fail("pooler problems during pgbench -i: %s\n%s" % (p.stop_problems, p.describe()))
    result.log = p.describe()
    return result


def _assert_run_ok(result, pooler):
    out = result.stdout + result.stderr
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    detail = "pgbench exit %d\n%s\n%s" % (result.returncode, out[-3000:], pooler.describe(30))
    assert result.returncode == 0, detail
    assert processed and int(processed.group(1)) > 0, detail
    assert failed and int(failed.group(1)) == 0, detail


@pytest.mark.client("pgbench", "`pgbench -i -s 1` (COPY of 100,000 rows, DDL)", pool="transaction/5")
def test_pgbench_initializes_scale_1_through_the_pooler(pgbench_init, cluster):
    assert pgbench_init.returncode == 0, pgbench_init.stderr[-3000:] + "\n" + pgbench_init.log
    count = cluster.psql("SELECT count(*) FROM pgbench_accounts", dbname="appdb")
    assert count == "100000"


@pytest.mark.client("pgbench", "`-M {protocol}`, 50 clients for 3 s, no failed transactions")
@pytest.mark.parametrize("protocol", ["simple", pytest.param("extended", marks=pytest.mark.core)])
def test_pgbench_50_clients_over_pool_of_5_have_no_failed_transactions(pgbench_init, pooler, protocol):
    assert pgbench_init.returncode == 0, "pgbench -i failed"
    p = pooler({"pool_mode": "transaction", "default_pool_size": 5})
    result = clients.pgbench(p, "-M", protocol, "-c", "50", "-j", "2", "-T", "3", "-n")
    _assert_run_ok(result, p)
