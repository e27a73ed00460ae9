// prisma.ts - the product guide's Prisma module: the app's database clients through pgsluice.
//
//   prisma                    primary, read/write: DATABASE_URL (pgsluice's primary database, e.g. sav3)
//   prismaReplica             read-only: DATABASE_URL_REPLICA (pgsluice's replica database, e.g.
//                             sav3_replica); reads go to the primary when it is unset. Write calls
//                             are refused before they reach the network (ReadOnlyReplicaError, src/lib/errors.ts).
//   checkDatabaseConnection() SELECT 1 on both, with latencies in ms (what GET /health reports)
//
// Each client runs Prisma 7's query engine in-process over its own pg pool (@prisma/adapter-pg),
// sized and timed by DATABASE_CONNECTION_LIMIT, DATABASE_POOL_TIMEOUT, DATABASE_SOCKET_TIMEOUT
// (src/lib/config.ts). Importing this module with DATABASE_URL unset or malformed throws a
// ConfigError. Shut down with `await Promise.all([prisma.$disconnect(), prismaReplica.$disconnect()])`:
// that closes both pools (src/server.ts does it on SIGINT/SIGTERM).
//
// Through pgsluice in transaction mode every model query is one extended-protocol statement and a
// $transaction holds one server connection from BEGIN to COMMIT; nothing here relies on session state.
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../generated/prisma/client.ts";
import { loadDatabaseConfig, type PoolSettings } from "./config.ts";
import { ReadOnlyReplicaError } from "./errors.ts";

const config = loadDatabaseConfig();

function createClient(role: "primary" | "replica", url: string, schema: string | undefined, pool: PoolSettings) {
  const adapter = new PrismaPg(
    {
      connectionString: url,
      max: pool.connectionLimit,
      connectionTimeoutMillis: pool.poolTimeoutMs,
      query_timeout: pool.socketTimeoutMs || undefined,
      idleTimeoutMillis: 60_000, // give idle connections back to pgsluice after a minute
      keepAlive: true,
      application_name: `app-${role}`, // shows in pgsluice's SHOW CLIENTS
    },
    {
      schema,
      onPoolError: (err) => console.error(`[db:${role}] idle connection failed: ${err.message}`),
      onConnectionError: (err) => console.error(`[db:${role}] connection failed: ${err.message}`),
    },
  );
  // A transaction's BEGIN waits for a pooled connection like any query: give it the same time
  // (Prisma's own default, 2 s, fails busy apps with P2028 while their queries would still wait).
  return new PrismaClient({ adapter, transactionOptions: { maxWait: pool.poolTimeoutMs } });
}

/** Primary (read/write) through pgsluice. */
export const prisma = createClient("primary", config.primaryUrl, config.primarySchema, config);

// The replica's own client, or none: then reads go to the primary's client.
const replicaClient = config.replicaUrl
  ? createClient("replica", config.replicaUrl, config.replicaSchema, config)
  : undefined;

// Operations that write. A replica refuses them anyway (25006, read-only transaction); refusing them
// here also covers DATABASE_URL_REPLICA unset (reads on the primary) and gives a clear message.
const WRITE_OPERATIONS = new Set([
  "create", "createMany", "createManyAndReturn", "update", "updateMany", "updateManyAndReturn",
  "upsert", "delete", "deleteMany", "$executeRaw", "$executeRawUnsafe",
]);

/** Read-only client: pgsluice's replica database, or the primary when no replica is configured. */
export const prismaReplica = (replicaClient ?? prisma).$extends({
  name: "read-only-replica",
  query: {
    async $allOperations({ model, operation, args, query }) {
      if (WRITE_OPERATIONS.has(operation)) {
        throw new ReadOnlyReplicaError(
          `prismaReplica is read-only: ${model ? `${model}.` : ""}${operation} must use prisma (the primary)`,
        );
      }
      return query(args);
    },
  },
});

// SELECT 1 within the health timeout: the elapsed ms, and whether it answered.
async function ping(client: PrismaClient, timeoutMs: number): Promise<{ ok: boolean; ms: number }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  const query = client.$queryRaw<{ ok: number }[]>`SELECT 1 AS ok`;
  query.catch(() => {}); // after a timeout its failure is of no interest
  try {
    const rows = await Promise.race([query, deadline]);
    return { ok: rows.length === 1 && rows[0].ok === 1, ms: Math.round(performance.now() - started) };
  } catch {
    return { ok: false, ms: Math.round(performance.now() - started) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * SELECT 1 on the primary and on the replica at once. `primary` / `replica`: it answered within
 * DATABASE_HEALTH_TIMEOUT. `latency`: ms each check took (answer or failure); `replica` is false and
 * `latency.replica` absent when DATABASE_URL_REPLICA is unset. Never throws.
 */
export const checkDatabaseConnection = async (): Promise<{
  primary: boolean;
  replica: boolean;
  latency: { primary: number; replica?: number };
}> => {
  const [primary, replica] = await Promise.all([
    ping(prisma, config.healthTimeoutMs),
    replicaClient ? ping(replicaClient, config.healthTimeoutMs) : Promise.resolve(undefined),
  ]);
  return {
    primary: primary.ok,
    replica: replica?.ok ?? false,
    latency: replica ? { primary: primary.ms, replica: replica.ms } : { primary: primary.ms },
  };
};
