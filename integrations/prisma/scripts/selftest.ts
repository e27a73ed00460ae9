// selftest.ts - checks src/lib/prisma.ts against a running pgsluice, with the same environment as
// the app (DATABASE_URL, DATABASE_URL_REPLICA, ...), on a database migrated by scripts/migrate.ts.
// tests/integration/test_prisma.py runs it for pgsluice's client matrix; an operator can run it
// against a deployment (`npm run selftest`): it writes only users whose email starts with
// "selftest-<run id>-" and deletes them at the end.
//
//   tsx scripts/selftest.ts [--concurrency N] [--only a,b] [--replay-timeout MS]
//
// Scenarios (all by default, in this order):
//   crud          create, read, update, nested create, createMany, count, delete
//   batch         $transaction([...]): commits both writes; a failing one leaves nothing behind
//   interactive   $transaction(async tx => ...): one server for the whole transaction (one txid),
//                 commit, rollback on a thrown error, Serializable isolation
//   concurrent    N (200) requests at once (writes, reads, batch and interactive transactions)
//   replica       prismaReplica reads a standby; a write on prisma shows there once replayed
//   readonly      prismaReplica refuses writes before they reach the database
//   health        checkDatabaseConnection() says both databases answer
//
// Prints one JSON line {"ok": bool, "scenarios": {name: {ok, ms, ...details | error}}} and exits 1
// when a scenario failed.
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { ReadOnlyReplicaError } from "../src/lib/errors.ts";
import { checkDatabaseConnection, prisma, prismaReplica } from "../src/lib/prisma.ts";

const { values: opts } = parseArgs({
  options: {
    concurrency: { type: "string", default: "200" },
    only: { type: "string" },
    "replay-timeout": { type: "string", default: "15000" },
  },
});
const CONCURRENCY = Number(opts.concurrency);
const REPLAY_TIMEOUT_MS = Number(opts["replay-timeout"]);
const RUN = randomBytes(4).toString("hex");
const PREFIX = `selftest-${RUN}-`;
let serial = 0;
const email = (what: string) => `${PREFIX}${what}-${++serial}@example.test`;

class CheckFailed extends Error {}
function check(cond: unknown, message: string): asserts cond {
  if (!cond) throw new CheckFailed(message);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Details = Record<string, unknown>;

async function txid(tx: { $queryRaw: typeof prisma.$queryRaw }): Promise<string> {
  const rows = await tx.$queryRaw<{ x: string }[]>`SELECT txid_current()::text AS x`;
  return rows[0].x;
}

// ---- scenarios ----

async function crud(): Promise<Details> {
  const e = email("crud");
  const created = await prisma.user.create({ data: { email: e, name: "Ada", credits: 5 } });
  check(created.id > 0 && created.email === e && created.credits === 5, `create returned ${JSON.stringify(created)}`);
  const found = await prisma.user.findUnique({ where: { email: e } });
  check(found?.id === created.id && found.name === "Ada", `findUnique: ${JSON.stringify(found)}`);
  const updated = await prisma.user.update({ where: { id: created.id }, data: { name: "Ada L.", credits: { increment: 2 } } });
  check(updated.name === "Ada L." && updated.credits === 7, `update: ${JSON.stringify(updated)}`);
  const withProfile = await prisma.user.update({
    where: { id: created.id },
    data: { profile: { create: { bio: "nested write" } }, posts: { create: [{ title: "one" }, { title: "two" }] } },
    include: { profile: true, posts: { orderBy: { id: "asc" } } },
  });
  check(withProfile.profile?.bio === "nested write" && withProfile.posts.map((p) => p.title).join() === "one,two",
    `nested create: ${JSON.stringify(withProfile)}`);
  const many = await prisma.post.createMany({ data: [3, 4, 5].map((n) => ({ title: `p${n}`, authorId: created.id })) });
  check(many.count === 3, `createMany count ${many.count}`);
  const posts = await prisma.post.count({ where: { authorId: created.id } });
  check(posts === 5, `count of posts ${posts}`);
  const page = await prisma.post.findMany({ where: { authorId: created.id }, orderBy: { id: "desc" }, take: 2, skip: 1 });
  check(page.map((p) => p.title).join() === "p4,p3", `findMany page: ${page.map((p) => p.title)}`);
  const gone = await prisma.post.deleteMany({ where: { authorId: created.id, title: { startsWith: "p" } } });
  check(gone.count === 3, `deleteMany ${gone.count}`);
  const agg = await prisma.user.aggregate({ where: { email: { startsWith: PREFIX } }, _sum: { credits: true } });
  check((agg._sum.credits ?? 0) >= 7, `aggregate ${JSON.stringify(agg)}`);
  const missing = await prisma.user.update({ where: { id: -1 }, data: { name: "x" } }).then(() => null, (err) => err);
  check(missing?.code === "P2025", `update of a missing row: ${missing?.code ?? "no error"}`);
  const dup = await prisma.user.create({ data: { email: e } }).then(() => null, (err) => err);
  check(dup?.code === "P2002", `duplicate email: ${dup?.code ?? "no error"}`);
  return { userId: created.id };
}

async function batch(): Promise<Details> {
  const e = email("batch");
  const [user, profile] = await prisma.$transaction([
    prisma.user.create({ data: { email: e, name: "Grace" } }),
    prisma.profile.create({ data: { bio: "batch", user: { connect: { email: e } } } }),
  ]);
  check(profile.userId === user.id, `profile ${JSON.stringify(profile)} for user ${user.id}`);
  // The second statement fails (bio longer than VARCHAR(280)): the first must be rolled back.
  const bad = email("batch-bad");
  const err = await prisma.$transaction([
    prisma.user.create({ data: { email: bad } }),
    prisma.profile.create({ data: { bio: "x".repeat(281), user: { connect: { email: bad } } } }),
  ]).then(() => null, (x) => x);
  check(err?.code === "P2000", `failing batch: expected P2000 (value too long), got ${err?.code ?? "success"}`);
  check((await prisma.user.count({ where: { email: bad } })) === 0, "failing batch left its user behind");
  const [count, found] = await prisma.$transaction(
    [prisma.user.count({ where: { email: { startsWith: PREFIX } } }), prisma.user.findUnique({ where: { email: e } })],
    { isolationLevel: "RepeatableRead" },
  );
  check(count >= 1 && found?.id === user.id, `read batch: ${count} ${JSON.stringify(found)}`);
  return { userId: user.id };
}

async function interactive(): Promise<Details> {
  const [a, b] = await Promise.all([
    prisma.user.create({ data: { email: email("payer"), credits: 10 } }),
    prisma.user.create({ data: { email: email("payee"), credits: 0 } }),
  ]);
  const moved = await prisma.$transaction(async (tx) => {
    const first = await txid(tx);
    const payer = await tx.user.update({ where: { id: a.id }, data: { credits: { decrement: 4 } } });
    await tx.user.update({ where: { id: b.id }, data: { credits: { increment: 4 } } });
    check((await txid(tx)) === first, "two transaction ids inside one interactive transaction");
    return payer.credits;
  });
  check(moved === 6, `payer after commit ${moved}`);
  class Abort extends Error {}
  const err = await prisma.$transaction(async (tx) => {
    await tx.user.update({ where: { id: a.id }, data: { credits: { decrement: 100 } } });
    throw new Abort("insufficient");
  }).then(() => null, (x) => x);
  check(err instanceof Abort, `rollback: expected the thrown error back, got ${err}`);
  const after = await prisma.user.findMany({ where: { id: { in: [a.id, b.id] } }, orderBy: { id: "asc" } });
  check(after.map((u) => u.credits).join() === "6,4", `credits after rollback ${after.map((u) => u.credits)}`);
  const level = await prisma.$transaction(
    async (tx) => (await tx.$queryRaw<{ l: string }[]>`SELECT current_setting('transaction_isolation') AS l`)[0].l,
    { isolationLevel: "Serializable" },
  );
  check(level === "serializable", `isolation level inside the transaction: ${level}`);
  return { payer: a.id, payee: b.id };
}

async function concurrent(): Promise<Details> {
  const kinds = { write: 0, read: 0, batch: 0, interactive: 0 };
  const seed = await prisma.user.create({ data: { email: email("seed"), credits: 1_000_000 } });
  const started = performance.now();
  const results = await Promise.allSettled(Array.from({ length: CONCURRENCY }, async (_, i) => {
    switch (i % 4) {
      case 0: {
        const u = await prisma.user.create({ data: { email: email(`c${i}`), posts: { create: { title: `t${i}` } } }, include: { posts: true } });
        check(u.posts.length === 1 && u.posts[0].title === `t${i}`, `request ${i}: ${JSON.stringify(u)}`);
        kinds.write++;
        break;
      }
      case 1: {
        const rows = await prisma.user.findMany({ where: { email: { startsWith: PREFIX } }, take: 20, select: { id: true, email: true } });
        check(rows.length >= 1 && rows.every((r) => r.email.startsWith(PREFIX)), `request ${i}: ${rows.length} rows`);
        kinds.read++;
        break;
      }
      case 2: {
        const e = email(`b${i}`);
        const [u, p] = await prisma.$transaction([
          prisma.user.create({ data: { email: e } }),
          prisma.profile.create({ data: { bio: `b${i}`, user: { connect: { email: e } } } }),
        ]);
        check(p.userId === u.id, `request ${i}: profile of ${p.userId}, user ${u.id}`);
        kinds.batch++;
        break;
      }
      default: {
        const got = await prisma.$transaction(async (tx) => {
          const x = await txid(tx);
          const s = await tx.user.update({ where: { id: seed.id }, data: { credits: { decrement: 1 } } });
          check((await txid(tx)) === x, `request ${i}: two transaction ids in one transaction`);
          return s.credits;
        });
        check(got < 1_000_000, `request ${i}: credits ${got}`);
        kinds.interactive++;
      }
    }
  }));
  const failures = results.flatMap((r, i) => (r.status === "rejected" ? [`request ${i}: ${r.reason?.code ?? ""} ${r.reason?.message ?? r.reason}`] : []));
  const ms = Math.round(performance.now() - started);
  check(failures.length === 0, `${failures.length} of ${CONCURRENCY} requests failed, first: ${failures.slice(0, 3).join(" | ")}`);
  const left = await prisma.user.findUniqueOrThrow({ where: { id: seed.id } });
  check(left.credits === 1_000_000 - kinds.interactive, `seed credits ${left.credits} after ${kinds.interactive} decrements`);
  return { requests: CONCURRENCY, ...kinds, ms };
}

async function replica(): Promise<Details> {
  const [onReplica] = await prismaReplica.$queryRaw<{ r: boolean }[]>`SELECT pg_is_in_recovery() AS r`;
  const [onPrimary] = await prisma.$queryRaw<{ r: boolean }[]>`SELECT pg_is_in_recovery() AS r`;
  check(onPrimary.r === false, "prisma is connected to a server in recovery");
  check(onReplica.r === true, "prismaReplica is not connected to a standby (is DATABASE_URL_REPLICA set?)");
  // Read-after-write on the replica: visible once the standby has replayed the commit. Poll with a
  // deadline; read-your-writes routing in pgsluice is not built yet.
  const e = email("replica");
  const written = await prisma.user.create({ data: { email: e, name: "replicated" } });
  const t0 = performance.now();
  let polls = 0;
  for (;;) {
    polls++;
    const seen = await prismaReplica.user.findUnique({ where: { email: e } });
    if (seen) {
      check(seen.id === written.id && seen.name === "replicated", `replica row ${JSON.stringify(seen)}`);
      break;
    }
    check(performance.now() - t0 < REPLAY_TIMEOUT_MS, `the write was not visible on the replica after ${REPLAY_TIMEOUT_MS} ms`);
    await sleep(20);
  }
  return { replayMs: Math.round(performance.now() - t0), polls };
}

async function readonly(): Promise<Details> {
  const e = email("readonly");
  const create = await prismaReplica.user.create({ data: { email: e } }).then(() => null, (x) => x);
  check(create instanceof ReadOnlyReplicaError, `prismaReplica.user.create: ${create ?? "succeeded"}`);
  const raw = await prismaReplica.$executeRaw`DELETE FROM "User" WHERE false`.then(() => null, (x) => x);
  check(raw instanceof ReadOnlyReplicaError, `prismaReplica.$executeRaw: ${raw ?? "succeeded"}`);
  check((await prisma.user.count({ where: { email: e } })) === 0, "a refused write reached the database");
  return {};
}

async function health(): Promise<Details> {
  const h = await checkDatabaseConnection();
  check(h.primary === true && h.replica === true, `checkDatabaseConnection: ${JSON.stringify(h)}`);
  check(typeof h.latency.primary === "number" && typeof h.latency.replica === "number", `latency ${JSON.stringify(h.latency)}`);
  return h;
}

const SCENARIOS: Record<string, () => Promise<Details>> = { crud, batch, interactive, concurrent, replica, readonly, health };

const chosen = opts.only ? opts.only.split(",") : Object.keys(SCENARIOS);
const unknown = chosen.filter((s) => !(s in SCENARIOS));
if (unknown.length || !(CONCURRENCY > 0) || !(REPLAY_TIMEOUT_MS > 0)) {
  console.error(`selftest: bad arguments (unknown scenarios: ${unknown.join(",") || "none"}; scenarios are ${Object.keys(SCENARIOS).join(",")})`);
  process.exit(2);
}

const report: Record<string, Details> = {};
for (const name of chosen) {
  const t0 = performance.now();
  try {
    const details = await SCENARIOS[name]();
    report[name] = { ok: true, ms: Math.round(performance.now() - t0), ...details };
  } catch (e) {
    const err = e as Error & { code?: string };
    report[name] = { ok: false, ms: Math.round(performance.now() - t0), error: `${err.code ? `${err.code} ` : ""}${err.message}` };
    console.error(`selftest ${name}: ${err.stack ?? err}`);
  }
}
try {
  await prisma.profile.deleteMany({ where: { user: { email: { startsWith: PREFIX } } } });
  await prisma.post.deleteMany({ where: { author: { email: { startsWith: PREFIX } } } });
  await prisma.user.deleteMany({ where: { email: { startsWith: PREFIX } } });
} catch (e) {
  console.error(`selftest: cleaning up ${PREFIX}* failed: ${(e as Error).message}`);
}
await Promise.all([prisma.$disconnect(), prismaReplica.$disconnect()]);
const ok = Object.values(report).every((r) => r.ok);
console.log(JSON.stringify({ ok, run: RUN, scenarios: report }));
process.exitCode = ok ? 0 : 1;
