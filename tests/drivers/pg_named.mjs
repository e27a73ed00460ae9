// pg_named.mjs URL - node-postgres named queries ({name, text, values}: Parse once per client
// connection, then Bind/Execute) from a pg.Pool of 10 clients through a transaction-mode pooler.
// The same names are used by every client with the same text, and one name is used by two
// clients for different texts (names are per client connection in PostgreSQL).
// Checks every result; exits 1 with a message on the first wrong one. Prints a JSON summary.
import pg from "pg";
import { check, fail, report, sameJSON } from "./common.mjs";

const url = process.argv[2];
if (!url) fail("usage: node pg_named.mjs URL");

const pool = new pg.Pool({ connectionString: url, max: 10, idleTimeoutMillis: 0 });
const out = { queries: 0, transactions: 0 };

const Q = {
  double: "SELECT $1::int * 2 AS v, $2::text AS s",
  series: "SELECT g FROM generate_series(1, $1::int) g",
  inc: "SELECT $1::int + 1 AS v",
  tx: "SELECT txid_current()::text AS x, $1::int * 10 AS v",
};

async function one(i) {
  const c = await pool.connect();
  try {
    switch (i % 3) {
      case 0: {
        const r = await c.query({ name: "double", text: Q.double, values: [i, "s" + i] });
        check(r.rows.length === 1 && r.rows[0].v === 2 * i && r.rows[0].s === "s" + i,
          `query ${i}: got ${JSON.stringify(r.rows)}`);
        break;
      }
      case 1: {
        const n = (i % 7) + 1;
        const r = await c.query({ name: "series", text: Q.series, values: [n] });
        check(sameJSON(r.rows.map((x) => x.g), Array.from({ length: n }, (_, k) => k + 1)),
          `query ${i}: got ${JSON.stringify(r.rows)}`);
        break;
      }
      default: {
        // Named statements inside an explicit transaction (BEGIN/COMMIT as simple queries).
        await c.query("BEGIN");
        const a = await c.query({ name: "inc", text: Q.inc, values: [i] });
        const b = await c.query({ name: "tx", text: Q.tx, values: [a.rows[0].v] });
        const d = await c.query({ name: "tx", text: Q.tx, values: [i] });
        await c.query("COMMIT");
        check(b.rows[0].v === (i + 1) * 10 && d.rows[0].v === i * 10, `transaction ${i}: got ${JSON.stringify([b.rows, d.rows])}`);
        check(b.rows[0].x === d.rows[0].x, `transaction ${i}: two txids ${b.rows[0].x} and ${d.rows[0].x} in one transaction`);
        out.transactions++;
      }
    }
    out.queries++;
  } finally {
    c.release();
  }
}

async function ownClients() {
  // Two clients, one statement name, two different texts: each client gets its own statement.
  const a = new pg.Client(url);
  const b = new pg.Client(url);
  await a.connect();
  await b.connect();
  try {
    for (let i = 0; i < 20; i++) {
      const [ra, rb] = await Promise.all([
        a.query({ name: "same_name", text: "SELECT 'from a'::text AS who, $1::int AS i", values: [i] }),
        b.query({ name: "same_name", text: "SELECT 'from b'::text AS who, $1::int * -1 AS i", values: [i] }),
      ]);
      check(ra.rows[0].who === "from a" && ra.rows[0].i === i, `same_name on a, round ${i}: ${JSON.stringify(ra.rows)}`);
      check(rb.rows[0].who === "from b" && rb.rows[0].i === -i, `same_name on b, round ${i}: ${JSON.stringify(rb.rows)}`);
    }
    // The statement that runs this query is prepared on its server under a pooler-owned name.
    const self = await a.query({
      name: "self_check",
      text: "SELECT name FROM pg_prepared_statements WHERE strpos(statement, 'pg_named_self_check') > 0 AND $1::int = 1",
      values: [1],
    });
    check(self.rows.length === 1 && self.rows[0].name !== "self_check",
      `pg_prepared_statements for the self check: ${JSON.stringify(self.rows)}`);
    out.server_statement_name = self.rows[0].name;
  } finally {
    await Promise.all([a.end(), b.end()]);
  }
}

try {
  await Promise.all(Array.from({ length: 200 }, (_, i) => one(i)));
  await ownClients();
} catch (e) {
  fail(e);
}
await pool.end();
report(out);
