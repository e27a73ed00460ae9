// migrate.ts - applies prisma/migrations/*/migration.sql in name order over DIRECT_URL: the stand-in
// for `prisma migrate deploy`, whose native schema engine Prisma 7 cannot get offline.
//
// It behaves like Prisma Migrate where it matters to a pooler: it takes the same session-level
// advisory lock, pg_advisory_lock(72707369), for the whole run (so two deploys, or this script and
// a real `prisma migrate deploy`, never interleave) and records what it applied in Prisma's
// _prisma_migrations table (same columns; checksum = SHA-256 of migration.sql). Each migration runs
// in its own transaction. A migration already recorded with a different checksum stops the run.
//
// Why DIRECT_URL and never DATABASE_URL: in transaction pooling a client owns a server connection
// only until its transaction ends. A session lock taken through pgsluice stays on whichever server
// connection ran it, while the script's next statements may run on others: the lock protects
// nothing, and since pg_advisory_unlock then runs on a connection that does not hold it, the lock
// stays behind on a pooled connection and blocks the next deploy. So this script reads only
// DIRECT_URL (PostgreSQL itself), refuses to start without it, and refuses a DIRECT_URL equal to
// DATABASE_URL. After taking the lock it checks, on the same connection, that this backend holds it,
// which catches most transaction-pooled URLs as well.
import { createHash, randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "prisma", "migrations");
const PRISMA_MIGRATE_LOCK = 72707369; // the key Prisma Migrate locks on

function fail(message: string): never {
  console.error(`migrate: ${message}`);
  process.exit(1);
}

const directUrl = process.env.DIRECT_URL?.trim();
if (!directUrl) {
  fail("DIRECT_URL is not set: migrations must connect to PostgreSQL directly, not through pgsluice (see scripts/migrate.ts)");
}
if (directUrl === process.env.DATABASE_URL?.trim()) {
  fail("DIRECT_URL equals DATABASE_URL: point DIRECT_URL at PostgreSQL itself, not at the pooler");
}

const migrations = readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

const client = new pg.Client({ connectionString: directUrl, application_name: "migrate" });
await client.connect().catch((e: Error) => fail(`cannot connect to DIRECT_URL: ${e.message}`));
let failed = false;
try {
  await client.query("SELECT pg_advisory_lock($1)", [PRISMA_MIGRATE_LOCK]);
  const held = await client.query(
    `SELECT count(*)::int AS n FROM pg_locks
      WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
        AND ((classid::bigint << 32) | objid::bigint) = $1`,
    [PRISMA_MIGRATE_LOCK],
  );
  if (held.rows[0].n !== 1) {
    throw new Error("the advisory lock is not held by this connection's backend: DIRECT_URL goes through a transaction pooler");
  }
  await client.query(`CREATE TABLE IF NOT EXISTS _prisma_migrations (
      id                  VARCHAR(36) PRIMARY KEY NOT NULL,
      checksum            VARCHAR(64) NOT NULL,
      finished_at         TIMESTAMPTZ,
      migration_name      VARCHAR(255) NOT NULL,
      logs                TEXT,
      rolled_back_at      TIMESTAMPTZ,
      started_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
      applied_steps_count INTEGER NOT NULL DEFAULT 0)`);
  let applied = 0;
  for (const name of migrations) {
    const sql = readFileSync(join(MIGRATIONS_DIR, name, "migration.sql"), "utf8");
    const checksum = createHash("sha256").update(sql).digest("hex");
    const done = await client.query(
      `SELECT checksum FROM _prisma_migrations
        WHERE migration_name = $1 AND finished_at IS NOT NULL AND rolled_back_at IS NULL`,
      [name],
    );
    if (done.rowCount) {
      if (done.rows[0].checksum !== checksum) {
        throw new Error(`${name} was applied with another checksum: migration.sql was edited after it ran`);
      }
      continue;
    }
    await client.query("BEGIN");
    try {
      await client.query(sql); // one simple-protocol message: DO blocks and functions are fine
      await client.query(
        `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count)
         VALUES ($1, $2, now(), $3, 1)`,
        [randomUUID(), checksum, name],
      );
      await client.query("COMMIT");
    } catch (e) {
      await client.query("ROLLBACK");
      throw new Error(`${name} failed, nothing of it was applied: ${(e as Error).message}`);
    }
    console.log(`migrate: applied ${name}`);
    applied++;
  }
  console.log(`migrate: ${applied} applied, ${migrations.length - applied} already there`);
} catch (e) {
  console.error(`migrate: ${(e as Error).message}`);
  failed = true;
} finally {
  await client.query("SELECT pg_advisory_unlock($1)", [PRISMA_MIGRATE_LOCK]).catch(() => {});
  await client.end();
}
process.exitCode = failed ? 1 : 0;
