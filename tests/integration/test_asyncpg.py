"""asyncpg (statement_cache_size=0) through the pooler in transaction mode."""
import asyncio

import asyncpg
import pytest

from harness import clients


@pytest.mark.core
def test_asyncpg_fetch(pooler):
    p = pooler()

    async def run():
        conn = await clients.aconnect(p)
        try:
            rows = await conn.fetch("SELECT g AS n, 'v' || g AS s FROM generate_series(1, $1::int) g", 500)
            assert len(rows) == 500 and rows[0]["n"] == 1 and rows[-1]["s"] == "v500"
            assert await conn.fetchval("SELECT $1::text || $2::text", "a", "b") == "ab"
            assert await conn.fetchrow("SELECT 1 AS a, 2 AS b") == (1, 2)
        finally:
            await conn.close()
    asyncio.run(run())


def test_asyncpg_transaction_commit_and_rollback(pooler):
    p = pooler()

    async def run():
        conn = await clients.aconnect(p)
        try:
            await conn.execute("DROP TABLE IF EXISTS sl_apg_tx; CREATE TABLE sl_apg_tx (v int)")
            async with conn.transaction():
                await conn.execute("INSERT INTO sl_apg_tx VALUES ($1)", 1)
            with pytest.raises(ZeroDivisionError):
                async with conn.transaction():
                    await conn.execute("INSERT INTO sl_apg_tx VALUES ($1)", 2)
                    raise ZeroDivisionError  # rolls the transaction back
            with pytest.raises(asyncpg.UniqueViolationError):
                async with conn.transaction():
                    await conn.execute("CREATE TEMP TABLE sl_apg_u (v int PRIMARY KEY) ON COMMIT DROP")
                    await conn.execute("INSERT INTO sl_apg_u VALUES (1), (1)")
            assert [r["v"] for r in await conn.fetch("SELECT v FROM sl_apg_tx ORDER BY v")] == [1]
        finally:
            await conn.close()
    asyncio.run(run())


def test_asyncpg_executemany(pooler):
    p = pooler()

    async def run():
        conn = await clients.aconnect(p)
        try:
            await conn.execute("DROP TABLE IF EXISTS sl_apg_many; CREATE TABLE sl_apg_many (id int, s text)")
            await conn.executemany("INSERT INTO sl_apg_many VALUES ($1, $2)", [(i, "s%d" % i) for i in range(1000)])
            assert await conn.fetchval("SELECT count(*) FROM sl_apg_many") == 1000
            assert await conn.fetchval("SELECT s FROM sl_apg_many WHERE id = 999") == "s999"
        finally:
            await conn.close()
    asyncio.run(run())
