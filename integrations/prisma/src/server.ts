// server.ts - runs the example app (src/app.ts) on HOST:PORT (default 127.0.0.1:4000, so the guide's
// `curl http://localhost:4000/health` works) and shuts it down gracefully on SIGINT or SIGTERM:
// stop accepting, let running requests finish (at most SHUTDOWN_TIMEOUT ms, default 10000), then
// close both database clients, whose pg pools hand their connections back to pgsluice.
//
//   npm start            (tsx src/server.ts; reads .env when there is one)
import { createServer } from "node:http";
import { ConfigError } from "@/lib/errors";

// Loaded here rather than imported above so that a bad setting (ConfigError, thrown when the database
// module loads) ends the process with one clear line instead of a stack trace.
async function load() {
  try {
    return { ...(await import("./app.ts")), ...(await import("@/lib/prisma")) };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`${e.name}: ${e.message}`);
    process.exit(1);
  }
}
const { handle, prisma, prismaReplica } = await load();

function portFromEnv(): number {
  const raw = process.env.PORT ?? "4000";
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port < 1 || port > 65535) {
    throw new Error(`PORT must be a TCP port number (1-65535), not "${raw}"`);
  }
  return port;
}

const host = process.env.HOST ?? "127.0.0.1";
const port = portFromEnv();
const shutdownTimeoutMs = Number(process.env.SHUTDOWN_TIMEOUT ?? 10_000);

const server = createServer((req, res) => void handle(req, res));
server.keepAliveTimeout = 5_000;

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: closing the HTTP server, then the database clients`);
  const forced = setTimeout(() => {
    console.error(`requests still running after ${shutdownTimeoutMs} ms: closing their connections`);
    server.closeAllConnections();
  }, shutdownTimeoutMs);
  forced.unref();
  server.closeIdleConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  clearTimeout(forced);
  await Promise.all([prisma.$disconnect(), prismaReplica.$disconnect()]);
  console.log("stopped");
  // No process.exit(): with the HTTP server and both pools closed nothing keeps node running, so a
  // handle left open would show as a process that does not exit.
}

process.once("SIGINT", () => void shutdown("SIGINT"));
process.once("SIGTERM", () => void shutdown("SIGTERM"));

server.on("error", (err) => {
  console.error(`cannot listen on ${host}:${port}: ${err.message}`);
  process.exitCode = 1;
  void Promise.all([prisma.$disconnect(), prismaReplica.$disconnect()]);
});
server.listen(port, host, () => {
  console.log(`listening on http://${host}:${port}`);
});
