// pg_pipeline.mjs URL - node-postgres clients with `pipeline: true` (every query is sent at once,
// each ending with its own Sync) running named and unnamed queries, some failing, through a
// transaction-mode pooler: later queries in the pipeline Bind a statement whose Parse went out in
// an earlier Sync block, possibly answered by another server.
// Checks every result; exits 1 with a message on the first wrong one. Prints a JSON summary.
import pg from "pg";
import { check, fail, report } from "./common.mjs";

const url = process.argv[2];
if (!url) fail("usage: node pg_pipeline.mjs URL");

const out = { queries: 0, errors: 0 };

async function run(client, k) {
  const jobs = [];
  for (let i = 0; i < 60; i++) {
    const n = k * 1000 + i;
    if (i % 10 === 7) {
      // Division by zero in a named statement: only this query fails (its own Sync block).
      jobs.push(client.query({ name: "div", text: "SELECT 100 / $1::int AS v", values: [0] }).then(
        (r) => check(false, `query ${n}: expected division_by_zero, got ${JSON.stringify(r.rows)}`),
        (e) => { check(e.code === "22012", `query ${n}: expected 22012, got ${e.code} ${e.message}`); out.errors++; }));
    } else if (i % 3 === 0) {
      jobs.push(client.query({ name: "div", text: "SELECT 100 / $1::int AS v", values: [(i % 5) + 1] }).then((r) =>
        check(r.rows[0].v === Math.trunc(100 / ((i % 5) + 1)), `query ${n}: got ${JSON.stringify(r.rows)}`)));
    } else if (i % 3 === 1) {
      jobs.push(client.query({ name: "pair", text: "SELECT $1::int AS a, $2::text AS b", values: [n, "p" + n] }).then((r) =>
        check(r.rows[0].a === n && r.rows[0].b === "p" + n, `query ${n}: got ${JSON.stringify(r.rows)}`)));
    } else {
      jobs.push(client.query("SELECT $1::int - 1 AS v", [n]).then((r) =>
        check(r.rows[0].v === n - 1, `query ${n}: got ${JSON.stringify(r.rows)}`)));
    }
  }
  await Promise.all(jobs);
  out.queries += jobs.length;
}

const clients = Array.from({ length: 4 }, () => new pg.Client({ connectionString: url, pipeline: true }));
try {
  check(clients[0].pipeline === true, "this pg version has no pipeline option");
  await Promise.all(clients.map((c) => c.connect()));
  for (let round = 0; round < 3; round++) {
    await Promise.all(clients.map((c, k) => run(c, round * 10 + k)));
  }
  // The statement that runs this query is prepared on its server under a pooler-owned name.
  const self = await clients[0].query({
    name: "self_check",
    text: "SELECT name FROM pg_prepared_statements WHERE strpos(statement, 'pg_pipeline_self_check') > 0 AND $1::int = 1",
    values: [1],
  });
  check(self.rows.length === 1 && self.rows[0].name !== "self_check",
    `pg_prepared_statements for the self check: ${JSON.stringify(self.rows)}`);
  out.server_statement_name = self.rows[0].name;
} catch (e) {
  fail(e);
}
await Promise.all(clients.map((c) => c.end()));
report(out);
