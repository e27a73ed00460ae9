// errors.ts - errors the database module throws on its own (not PostgreSQL's or Prisma's).
export { ConfigError } from "./config.ts";

/** A write was attempted on prismaReplica; writes belong on prisma (the primary). */
export class ReadOnlyReplicaError extends Error {
  override name = "ReadOnlyReplicaError";
}
