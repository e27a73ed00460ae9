#!/bin/sh
# no-schema-engine.sh - stands in for Prisma's native schema engine, which no npm package ships and
# which cannot be downloaded offline. `prisma generate` only checks that PRISMA_SCHEMA_ENGINE_BINARY
# exists; `prisma --version` runs it with --version. Any migrate/db command fails loudly here
# (pointing the variable at `true` would make `prisma db push` print nothing and succeed).
[ "$1" = "--version" ] && { echo "schema-engine-cli offline-stub"; exit 0; }
echo "schema-engine is not available on this machine: apply SQL migrations with 'npm run db:migrate' (scripts/migrate.ts)" >&2
exit 1
