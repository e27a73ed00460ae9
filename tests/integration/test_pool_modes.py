"""Pool modes: statement mode refuses transactions, session mode keeps session state."""
import psycopg
import pytest

from harness import clients


@pytest.mark.core
def test_statement_mode_refuses_a_multi_statement_transaction(pooler):
    p = pooler({"pool_mode": "statement"})
    with clients.connect(p) as c:
        with pytest.raises(psycopg.Error):
            c.execute("BEGIN")
            c.execute("SELECT 1")
            c.execute("COMMIT")
    clients.assert_pooler_serves(p)


def test_statement_mode_serves_single_statements(pooler):
    p = pooler({"pool_mode": "statement"})
    with clients.connect(p) as c:
        for i in range(20):
            assert c.execute("SELECT %s::int", (i,)).fetchone() == (i,)


@pytest.mark.core
def test_session_mode_keeps_session_state_between_transactions(pooler):
    p = pooler({"pool_mode": "session", "default_pool_size": 5})
    with clients.connect(p, autocommit=False) as c, clients.connect(p) as other:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        c.execute("SET sl.custom = 'kept'")
        c.execute("CREATE TEMP TABLE sl_session_tmp (v int)")
        c.commit()
        for i in range(5):
            other.execute("SELECT 1")  # another client between transactions
            c.execute("INSERT INTO sl_session_tmp VALUES (%s)", (i,))
            c.commit()
        assert c.execute("SELECT current_setting('sl.custom'), count(*), pg_backend_pid() "
                         "FROM sl_session_tmp").fetchone() == ("kept", 5, pid)
        c.commit()
