// postgresjs.mjs URL - postgres.js (prepared statements by default, random statement names,
// concurrent queries pipelined on each connection) through a transaction-mode pooler.
// Checks every result; exits 1 with a message on the first wrong one. Prints a JSON summary.
import postgres from "postgres";
import { check, report, fail } from "./common.mjs";

const url = process.argv[2];
if (!url) fail("usage: node postgresjs.mjs URL");

const sql = postgres(url, { max: 10, idle_timeout: 0, connect_timeout: 10, onnotice: () => {} });
const out = { queries: 0, transactions: 0, errors: 0 };

async function one(i) {
  // Three statement shapes with parameters, so that each connection holds several named
  // statements and the pooler sees many client names for the same text.
  switch (i % 4) {
    case 0: {
      const [r] = await sql`SELECT ${i}::int * 2 AS v, ${"n" + i}::text AS s`;
      check(r.v === 2 * i && r.s === "n" + i, `query ${i}: got ${JSON.stringify(r)}`);
      break;
    }
    case 1: {
      if (i % 20 === 5) {
        // A failing prepared statement among the pipelined ones: only this query fails.
        const err = await sql`SELECT 100 / ${(i % 20) - 5}::int AS v`.then((r) => r, (e) => e);
        check(err.code === "22012", `query ${i}: expected division_by_zero (22012), got ${JSON.stringify(err)}`);
        out.errors++;
        break;
      }
      const rows = await sql`SELECT g FROM generate_series(1, ${(i % 9) + 1}::int) g`;
      check(JSON.stringify(rows.map((r) => r.g)) === JSON.stringify([...Array((i % 9) + 1).keys()].map((k) => k + 1)),
        `query ${i}: got ${JSON.stringify(rows)}`);
      break;
    }
    case 2: {
      const [r] = await sql`SELECT ${i}::bigint + ${1000}::bigint AS v, ${i % 2 === 0}::bool AS even`;
      check(r.v === String(i + 1000) && r.even === (i % 2 === 0), `query ${i}: got ${JSON.stringify(r)}`);
      break;
    }
    default: {
      // A transaction of several prepared statements: all on one server, in order.
      const got = await sql.begin(async (tx) => {
        const [a] = await tx`SELECT ${i}::int + 1 AS v`;
        const [b] = await tx`SELECT txid_current() AS x, ${a.v}::int * 10 AS v`;
        const [c] = await tx`SELECT txid_current() AS x, ${b.v}::int + 3 AS v`;
        check(b.x === c.x, `transaction ${i}: two txids ${b.x} and ${c.x} inside one transaction`);
        return c.v;
      });
      check(got === (i + 1) * 10 + 3, `transaction ${i}: got ${got}`);
      out.transactions++;
    }
  }
  out.queries++;
}

try {
  // Round 1: 200 concurrent queries (statements new to every connection: Parse/Describe/Flush first).
  await Promise.all(Array.from({ length: 200 }, (_, i) => one(i)));
  // Round 2: the same shapes again, now prepared on every connection: Bind/Execute/Sync pipelined.
  await Promise.all(Array.from({ length: 200 }, (_, i) => one(i + 200)));

  // One connection only: 100 queries in flight on it at once (postgres.js pipelines up to 100),
  // alternating two statements, after one warm-up query each.
  const one_conn = postgres(url, { max: 1, idle_timeout: 0, connect_timeout: 10 });
  try {
    await one_conn`SELECT ${0}::int * 7 AS v`;
    await one_conn`SELECT ${"w"}::text || 'x' AS s`;
    const piped = await Promise.all(Array.from({ length: 100 }, (_, i) =>
      i % 2 ? one_conn`SELECT ${"w" + i}::text || 'x' AS s` : one_conn`SELECT ${i}::int * 7 AS v`));
    piped.forEach(([r], i) => check(i % 2 ? r.s === "w" + i + "x" : r.v === 7 * i, `pipelined ${i}: got ${JSON.stringify(r)}`));
    out.pipelined = piped.length;
  } finally {
    await one_conn.end({ timeout: 5 });
  }

  // The statement that runs this query was prepared on this server under a pooler-owned name
  // (the rewriting path was used, not a fall back to unnamed statements).
  const mine = await sql.begin(async (tx) =>
    tx`SELECT name, statement FROM pg_prepared_statements WHERE strpos(statement, 'pjs_self_check') > 0 AND ${1}::int = 1`);
  check(mine.length === 1, `pg_prepared_statements: expected one row for this statement, got ${JSON.stringify(mine)}`);
  out.server_statement_name = mine[0].name;
  out.client_statement_name = mine.statement.name;
  check(out.client_statement_name && out.server_statement_name !== out.client_statement_name,
    `statement name reached the server unchanged: ${JSON.stringify(out)}`);
} catch (e) {
  fail(e);
} finally {
  await sql.end({ timeout: 5 });
}
report(out);
