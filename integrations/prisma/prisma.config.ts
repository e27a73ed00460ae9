// prisma.config.ts - configuration of the Prisma 7 CLI (`prisma generate`). The app itself never
// reads this file: src/lib/prisma.ts builds its clients from the environment.
import { fileURLToPath } from "node:url";
import { defineConfig } from "prisma/config";

// Prisma's native schema engine cannot be fetched offline and `generate` does not need it: point
// the CLI at a stub that only answers --version (scripts/no-schema-engine.sh). A real engine
// given in the environment wins.
process.env.PRISMA_SCHEMA_ENGINE_BINARY ??= fileURLToPath(new URL("./scripts/no-schema-engine.sh", import.meta.url));

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  // The CLI's own connection (migrate, db, studio) goes straight to PostgreSQL, never through a
  // transaction-mode pooler: Prisma Migrate holds a session-level advisory lock (see README.md).
  ...(process.env.DIRECT_URL ? { datasource: { url: process.env.DIRECT_URL } } : {}),
});
