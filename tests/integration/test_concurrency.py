"""Many clients over a small pool in transaction mode: isolation, pinning, limits, per-client settings."""
import asyncio
import random
import threading
import time

import pytest

from harness import clients


def _gather(coros):
    async def run():
        return await asyncio.gather(*coros())
    return asyncio.run(run())


@pytest.mark.core
def test_200_concurrent_clients_each_read_back_their_own_write(pooler):
    p = pooler({"default_pool_size": 5})
    with clients.connect(p) as c:
        c.execute("DROP TABLE IF EXISTS sl_conc; CREATE TABLE sl_conc (client_id int PRIMARY KEY, val text)")
    token = "%08x" % random.getrandbits(32)

    async def run():
        # all connected at once; 200 logins at a time can take long on a loaded 2-core machine (TSan)
        conns = await asyncio.gather(*(clients.aconnect(p, timeout=120) for _ in range(200)))

        async def one(i, conn):
            try:
                async with conn.transaction():
                    await conn.execute("INSERT INTO sl_conc VALUES ($1, $2)", i, "v-%d-%s" % (i, token))
                    await asyncio.sleep(random.random() * 0.02)  # let other clients interleave
                    return await conn.fetchval("SELECT val FROM sl_conc WHERE client_id = $1", i)
            finally:
                await conn.close()
        return await asyncio.gather(*(one(i, c) for i, c in enumerate(conns)))

    got = asyncio.run(run())
    assert got == ["v-%d-%s" % (i, token) for i in range(200)]
    with clients.connect(p) as c:
        assert c.execute("SELECT count(*) FROM sl_conc WHERE val LIKE %s", ("%" + token,)).fetchone() == (200,)


@pytest.mark.core
def test_transaction_never_spans_two_server_connections(pooler):
    p = pooler({"default_pool_size": 5})

    async def run():
        async def client(k):
            conn = await clients.aconnect(p)
            bad = []
            try:
                for _ in range(8):
                    async with conn.transaction():
                        seen = set()
                        for _ in range(4):
                            seen.add(await conn.fetchrow("SELECT pg_backend_pid(), txid_current()"))
                            await asyncio.sleep(random.random() * 0.005)
                        if len(seen) != 1:
                            bad.append(seen)
            finally:
                await conn.close()
            return bad
        return await asyncio.gather(*(client(k) for k in range(25)))

    problems = [b for per_client in asyncio.run(run()) for b in per_client]
    assert problems == [], "transactions saw several (backend pid, txid) pairs: %r" % problems[:5]


def test_pool_never_opens_more_than_pool_size_server_connections(pooler, direct):
    p = pooler({"default_pool_size": 5, "reserve_pool_size": 0, "min_pool_size": 0})
    watcher = direct("postgres")
    peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            n = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND datname = 'appdb' "
                                "AND backend_start >= to_timestamp(%s)", (p.started_at,)).fetchone()[0]
            peak[0] = max(peak[0], n)
            time.sleep(0.02)

    async def run():
        async def client():
            conn = await clients.aconnect(p)
            try:
                async with conn.transaction():
                    pid = await conn.fetchval("SELECT pg_backend_pid()")
                    await conn.execute("SELECT pg_sleep(0.1)")
                return pid
            finally:
                await conn.close()
        return await asyncio.gather(*(client() for _ in range(40)))

    t = threading.Thread(target=watch)
    t.start()
    try:
        pids = asyncio.run(run())
    finally:
        stop.set()
        t.join()
    assert 1 <= len(set(pids)) <= 5, "40 clients used %d server connections" % len(set(pids))
    assert peak[0] <= 5, "saw %d server connections for a pool of 5" % peak[0]


@pytest.mark.core
def test_timezone_startup_parameter_kept_per_client_across_server_switches(pooler):
    # One server connection for two clients: every switch must restore the client's own TimeZone.
    # asyncpg puts server_settings into the startup packet (libpq's `options` would not be a
    # startup parameter the pooler tracks).
    p = pooler({"default_pool_size": 1})

    async def run():
        a = await clients.aconnect(p, server_settings={"TimeZone": "UTC"})
        b = await clients.aconnect(p, server_settings={"TimeZone": "America/New_York"})
        seen = {"a": [], "b": []}
        pids = set()
        try:
            for i in range(30):
                for name, conn in (("a", a), ("b", b)):
                    if i % 2:
                        async with conn.transaction():
                            seen[name].append(await conn.fetchval("SHOW TimeZone"))
                            pids.add(await conn.fetchval("SELECT pg_backend_pid()"))
                    else:
                        seen[name].append(await conn.fetchval("SELECT current_setting('TimeZone')"))

            async def loop(name, conn):
                for _ in range(20):
                    seen[name].append(await conn.fetchval("SHOW TimeZone"))
            await asyncio.gather(loop("a", a), loop("b", b))
        finally:
            await a.close()
            await b.close()
        return seen, pids

    seen, pids = asyncio.run(run())
    assert len(pids) == 1, "expected both clients on the one server connection, saw %r" % pids
    assert set(seen["a"]) == {"UTC"}, seen["a"]
    assert set(seen["b"]) == {"America/New_York"}, seen["b"]


def test_libpq_pgtz_timezone_kept_per_client_across_server_switches(pooler, monkeypatch):
    # libpq sends PGTZ as a lowercase `timezone` startup parameter: the pooler must treat it as the
    # TimeZone it tracks (names of startup parameters are case-insensitive).
    p = pooler({"default_pool_size": 1})
    conns = {}
    for tz in ("UTC", "Asia/Tokyo"):
        monkeypatch.setenv("PGTZ", tz)
        conns[tz] = clients.connect(p)
    monkeypatch.delenv("PGTZ")
    try:
        seen = {tz: set() for tz in conns}
        pids = set()
        for _ in range(15):
            for tz, c in conns.items():
                row = c.execute("SELECT current_setting('TimeZone'), pg_backend_pid()").fetchone()
                seen[tz].add(row[0])
                pids.add(row[1])
    finally:
        for c in conns.values():
            c.close()
    assert len(pids) == 1, pids
    assert seen == {"UTC": {"UTC"}, "Asia/Tokyo": {"Asia/Tokyo"}}


@pytest.mark.core
def test_servers_retiring_while_other_workers_take_them_lose_no_query(pooler):
    """Idle servers are taken by clients of other workers while their owner retires them
    (server_lifetime of a fraction of a second): every query still succeeds, and the pooler (under
    ASan in `make asan`) never touches a server it freed."""
    p = pooler({"default_pool_size": 3, "server_lifetime": "0.2", "server_idle_timeout": "0.1"})
    errors = []

    async def run():
        conns = await asyncio.gather(*(clients.aconnect(p) for _ in range(12)))

        async def one(conn):
            try:
                for i in range(60):
                    assert await conn.fetchval("SELECT $1::int", i) == i
                    if i % 7 == 0:
                        await asyncio.sleep(random.random() * 0.25)  # let servers go idle, then age
            except Exception as e:  # collected, so one failure does not hide the others
                errors.append(repr(e))
            finally:
                await conn.close()
        await asyncio.gather(*(one(c) for c in conns))

    asyncio.run(run())
    assert errors == []
    with clients.connect(p) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
