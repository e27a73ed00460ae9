// config.ts - the database settings of the app, read from the product guide's environment
// variables, checked, with defaults. A missing or malformed setting is a ConfigError that names the
// variable and says what is expected: the app refuses to start rather than guess.
//
//   DATABASE_URL               required  primary, through pgsluice (postgresql://user:pw@host:6432/sav3)
//   DATABASE_URL_REPLICA       optional  replica, through pgsluice's replica database (…/sav3_replica);
//                                        unset: reads go to the primary
//   DATABASE_CONNECTION_LIMIT  10        connections in each of the app's two pg pools (primary, replica)
//   DATABASE_POOL_TIMEOUT      10000 ms  how long a query waits for a free connection in that pool
//                                        (including opening it) before it fails
//   DATABASE_SOCKET_TIMEOUT    30000 ms  how long a query waits for its answer before it fails; 0 = no limit
//   DATABASE_HEALTH_TIMEOUT    5000 ms   checkDatabaseConnection(): a database that has not answered
//                                        SELECT 1 within this time counts as down
//
// DIRECT_URL (PostgreSQL itself, bypassing pgsluice) is not read here: only migrations use it
// (scripts/migrate.ts).

export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface PoolSettings {
  /** connections in one pg pool (pg's `max`) */
  connectionLimit: number;
  /** ms to wait for a pooled connection, connecting included (pg's `connectionTimeoutMillis`) */
  poolTimeoutMs: number;
  /** ms to wait for a query's answer (pg's `query_timeout`); 0 = no limit */
  socketTimeoutMs: number;
}

export interface DatabaseConfig extends PoolSettings {
  primaryUrl: string;
  /** schema from DATABASE_URL's ?schema= (pg ignores the parameter; Prisma's adapter takes it) */
  primarySchema?: string;
  replicaUrl?: string;
  replicaSchema?: string;
  healthTimeoutMs: number;
}

export const DEFAULTS = {
  connectionLimit: 10,
  poolTimeoutMs: 10_000,
  socketTimeoutMs: 30_000,
  healthTimeoutMs: 5_000,
} as const;

// Query parameters that Prisma's classic engine read from the URL and that the pg driver adapter
// silently ignores: a URL that carries one would not do what its author thinks.
const IGNORED_URL_PARAMETERS: Record<string, string> = {
  connection_limit: "set DATABASE_CONNECTION_LIMIT instead",
  pool_timeout: "set DATABASE_POOL_TIMEOUT (milliseconds) instead",
  socket_timeout: "set DATABASE_SOCKET_TIMEOUT (milliseconds) instead",
  connect_timeout: "set DATABASE_POOL_TIMEOUT (milliseconds), which covers connecting",
  pgbouncer: "remove it: pgsluice keeps prepared statements working in transaction mode",
  statement_cache_size: "remove it: Prisma 7's pg adapter does not cache statements by default",
};

type Env = Record<string, string | undefined>;

function parseUrl(env: Env, name: string): { url: string; schema?: string } {
  const raw = env[name]?.trim();
  if (!raw) {
    throw new ConfigError(`${name} is not set: it must be a postgresql:// URL`);
  }
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a valid URL (expected postgresql://user:password@host:port/database)`);
  }
  if (u.protocol !== "postgresql:" && u.protocol !== "postgres:") {
    throw new ConfigError(`${name} must start with postgresql:// or postgres://, not ${u.protocol}//`);
  }
  if ((!u.hostname && !u.searchParams.get("host")) || u.pathname.replace(/^\//, "") === "") {
    throw new ConfigError(`${name} must name a host and a database (postgresql://user:password@host:port/database)`);
  }
  for (const [param, advice] of Object.entries(IGNORED_URL_PARAMETERS)) {
    if (u.searchParams.has(param)) {
      throw new ConfigError(`${name} has ?${param}=, which Prisma 7's pg adapter ignores: ${advice}`);
    }
  }
  const schema = u.searchParams.get("schema") ?? undefined;
  if (schema === undefined) return { url: raw };
  u.searchParams.delete("schema");
  return { url: u.toString(), schema };
}

function parseMs(env: Env, name: string, fallback: number, allowZero: boolean): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw) || (!allowZero && Number(raw) === 0) || !Number.isSafeInteger(Number(raw))) {
    throw new ConfigError(`${name} must be a ${allowZero ? "non-negative" : "positive"} whole number, not "${raw}"`);
  }
  return Number(raw);
}

/** Read and check the settings; throws ConfigError naming the first bad variable. */
export function loadDatabaseConfig(env: Env = process.env): DatabaseConfig {
  const primary = parseUrl(env, "DATABASE_URL");
  const replica = env.DATABASE_URL_REPLICA?.trim() ? parseUrl(env, "DATABASE_URL_REPLICA") : undefined;
  const connectionLimit = parseMs(env, "DATABASE_CONNECTION_LIMIT", DEFAULTS.connectionLimit, false);
  if (connectionLimit > 10_000) {
    throw new ConfigError(`DATABASE_CONNECTION_LIMIT is ${connectionLimit}: more than 10000 connections per pool is a mistake`);
  }
  return {
    primaryUrl: primary.url,
    primarySchema: primary.schema,
    replicaUrl: replica?.url,
    replicaSchema: replica?.schema,
    connectionLimit,
    poolTimeoutMs: parseMs(env, "DATABASE_POOL_TIMEOUT", DEFAULTS.poolTimeoutMs, false),
    socketTimeoutMs: parseMs(env, "DATABASE_SOCKET_TIMEOUT", DEFAULTS.socketTimeoutMs, true),
    healthTimeoutMs: parseMs(env, "DATABASE_HEALTH_TIMEOUT", DEFAULTS.healthTimeoutMs, false),
  };
}
