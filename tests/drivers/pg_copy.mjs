// pg_copy.mjs URL - node-postgres with pg-copy-streams: COPY FROM STDIN and COPY TO STDOUT through a
// transaction-mode pooler, from 8 clients at once (more than the pool's 5 servers), in autocommit
// and inside transactions, plus a COPY that fails halfway (bad row) after which the client works on.
// Checks every result; exits 1 with a message on the first wrong one. Prints a JSON summary.
import pg from "pg";
import { from as copyFrom, to as copyTo } from "pg-copy-streams";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { check, fail, report } from "./common.mjs";

const url = process.argv[2];
if (!url) fail("usage: node pg_copy.mjs URL");

const CLIENTS = 8;
const ROWS = 5000;
const out = { copied_in: 0, copied_out: 0, failed_copies: 0, clients: CLIENTS };

function rowsOf(k) {
  // tab-separated text with characters COPY must escape
  return Array.from({ length: ROWS }, (_, i) => `${i}\tclient ${k} row ${i} \\\\ back\\tslash\n`);
}

async function copyIn(c, table, lines) {
  await pipeline(Readable.from(lines), c.query(copyFrom(`COPY ${table} (id, s) FROM STDIN`)));
}

async function copyOut(c, sql) {
  let text = "";
  await pipeline(c.query(copyTo(sql)), new Writable({
    write(chunk, _enc, cb) { text += chunk.toString("utf8"); cb(); },
  }));
  return text;
}

async function one(k) {
  const c = new pg.Client(url);
  await c.connect();
  const table = `copy_t${k}`;
  try {
    await c.query(`DROP TABLE IF EXISTS ${table}; CREATE TABLE ${table} (id int PRIMARY KEY, s text NOT NULL)`);
    const lines = rowsOf(k);
    // autocommit: the COPY is its own transaction
    await copyIn(c, table, lines.slice(0, ROWS / 2));
    // inside a transaction: COPY in, read back with COPY out, commit
    await c.query("BEGIN");
    await copyIn(c, table, lines.slice(ROWS / 2));
    const inTx = await copyOut(c, `COPY (SELECT id, s FROM ${table} ORDER BY id) TO STDOUT`);
    await c.query("COMMIT");
    check(inTx === lines.join(""), `client ${k}: COPY TO STDOUT inside the transaction returned other text`);
    out.copied_in += ROWS;
    // a COPY whose 3rd row is bad (not an int): 22P02, nothing of it stays, the client works on
    const err = await copyIn(c, table, [`${ROWS}\tok\n`, `${ROWS + 1}\tok\n`, "x\tbad\n"]).then(() => null, (e) => e);
    check(err && err.code === "22P02", `client ${k}: bad COPY: expected 22P02, got ${err && (err.code || err.message)}`);
    out.failed_copies++;
    const after = await c.query(`SELECT count(*)::int AS n, max(id) AS m FROM ${table}`);
    check(after.rows[0].n === ROWS && after.rows[0].m === ROWS - 1, `client ${k}: after the bad COPY ${JSON.stringify(after.rows)}`);
    // autocommit COPY out
    const text = await copyOut(c, `COPY ${table} TO STDOUT`);
    check(text.split("\n").length - 1 === ROWS, `client ${k}: COPY TO STDOUT gave ${text.split("\n").length - 1} lines`);
    out.copied_out += ROWS;
    await c.query(`DROP TABLE ${table}`);
  } finally {
    await c.end();
  }
}

try {
  await Promise.all(Array.from({ length: CLIENTS }, (_, k) => one(k)));
} catch (e) {
  fail(e);
}
report(out);
