"""Cancel requests and server backends that die under a client."""
import threading
import time

import psycopg
import pytest

from harness import clients
from harness.util import wait_for


@pytest.mark.core
def test_cancel_request_stops_pg_sleep_and_connection_stays_usable(pooler):
    p = pooler()
    with clients.connect(p) as c:
        timer = threading.Timer(0.5, c.cancel)
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("SELECT pg_sleep(10)")
        elapsed = time.monotonic() - t0
        timer.join()
        assert elapsed < 5, "cancel took %.1fs" % elapsed
        assert c.execute("SELECT 'still usable'").fetchone() == ("still usable",)
    clients.assert_pooler_serves(p)


@pytest.mark.core
def test_terminated_server_backend_fails_its_client_and_pooler_keeps_serving(pooler, direct):
    p = pooler()
    admin = direct("postgres")
    c = clients.connect(p)
    result = {}

    def run():
        t0 = time.monotonic()
        try:
            c.execute("SELECT pg_sleep(10) /* sl_victim */")
        except Exception as e:  # noqa: BLE001 - we assert on it below
            result["error"] = e
        result["elapsed"] = time.monotonic() - t0

    th = threading.Thread(target=run)
    th.start()
    try:
        pid = wait_for(lambda: admin.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE %s AND pid <> "
                                             "pg_backend_pid()", ("%sl_victim%",)).fetchone(),
                       timeout=10, what="the victim's backend")[0]
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    finally:
        th.join(15)
    c.close()
    assert isinstance(result.get("error"), psycopg.OperationalError), result  # AdminShutdown is one too
    assert result["elapsed"] < 8, result
    clients.assert_pooler_serves(p)
