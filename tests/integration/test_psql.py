"""psql through the pooler: simple queries, a multi-statement -c string, \\copy in and out."""
import os

import pytest

from harness import clients


@pytest.mark.core
@pytest.mark.client("psql", "`-c \"SELECT 1\"`")
def test_psql_select_1(pooler):
    p = pooler()
    assert clients.psql(p, "-c", "SELECT 1").stdout.strip() == "1"


@pytest.mark.core
@pytest.mark.client("psql", "one `-c` string of several statements (one implicit transaction, a temp table)")
def test_psql_multi_statement_command_string(pooler):
    # One -c string is one simple Query message with several statements: one implicit transaction,
    # so the temp table lives until the end of the string even in transaction mode.
    p = pooler()
    out = clients.psql(p, "-c", "CREATE TEMP TABLE sl_multi(x int); INSERT INTO sl_multi VALUES (1), (2), (39); "
                                "SELECT sum(x) FROM sl_multi").stdout.strip()
    assert out == "42"


@pytest.mark.client("psql", "`\\copy` in and out, 2,000 rows")
def test_psql_copy_in_and_out(pooler, tmp_path):
    p = pooler()
    src, dst = tmp_path / "in.tsv", tmp_path / "out.tsv"
    rows = ["%d\tvalue %d with\\ttab" % (i, i) for i in range(2000)]
    src.write_text("\n".join(rows) + "\n")
    clients.psql(p, "-c", "DROP TABLE IF EXISTS sl_psql_copy; CREATE TABLE sl_psql_copy (id int, s text)")
    clients.psql(p, "-c", "\\copy sl_psql_copy FROM '%s'" % src)
    assert clients.psql(p, "-c", "SELECT count(*) FROM sl_psql_copy").stdout.strip() == "2000"
    clients.psql(p, "-c", "\\copy (SELECT * FROM sl_psql_copy ORDER BY id) TO '%s'" % dst)
    assert dst.read_text().splitlines() == rows
    clients.psql(p, "-c", "DROP TABLE sl_psql_copy")
    assert os.path.getsize(dst) > 0
