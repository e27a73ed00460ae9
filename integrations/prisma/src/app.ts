// app.ts - the example app's HTTP routes, written the way the product guide's "Usage Patterns" say:
// writes on the primary (prisma), reads on the replica (prismaReplica), transactions on the primary.
//
//   GET  /health                 checkDatabaseConnection(): 200 when the primary answers (the replica
//                                may be down: "degraded"), 503 when it does not
//   POST /users                  {email, name?, credits?} -> 201 the user           (primary)
//   GET  /users?email=…          users, newest first, at most 100                   (replica)
//   GET  /users/:id              one user with profile and posts, 404 if unknown    (replica)
//   POST /signup                 {email, name?, bio} -> user + profile, both or neither:
//                                a batch $transaction([...]), as in the guide      (primary)
//   POST /users/:id/posts        {title} -> 201 the post                            (primary)
//   POST /transfers              {fromId, toId, amount} -> moves credits in an interactive
//                                $transaction; 409 and nothing changed when the payer has too few
//
// A read right after a write may not see it yet: the replica replays the primary's WAL a moment later
// (pgsluice's read-your-writes routing will remove that gap; until then read from `prisma` when you
// must see your own write). Errors answer JSON {error, code?}; unexpected ones are logged and answer 500.
import type { IncomingMessage, ServerResponse } from "node:http";
import { Prisma } from "./generated/prisma/client.ts";
import { ReadOnlyReplicaError } from "@/lib/errors";
import { checkDatabaseConnection, prisma, prismaReplica } from "@/lib/prisma";

const MAX_BODY_BYTES = 64 * 1024;

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly code?: string) {
    super(message);
  }
}

class InsufficientCredits extends HttpError {
  constructor(have: number, want: number) {
    super(409, `payer has ${have} credits, the transfer needs ${want}`, "INSUFFICIENT_CREDITS");
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
  } catch {
    throw new HttpError(400, "body is not valid JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, "body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

function str(body: Record<string, unknown>, key: string, required: true): string;
function str(body: Record<string, unknown>, key: string, required: false): string | undefined;
function str(body: Record<string, unknown>, key: string, required: boolean): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) {
    if (required) throw new HttpError(400, `${key} is required`);
    return undefined;
  }
  if (typeof v !== "string" || v.trim() === "") throw new HttpError(400, `${key} must be a non-empty string`);
  return v;
}

function int(value: unknown, key: string, min: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > 2_147_483_647) {
    throw new HttpError(400, `${key} must be a whole number >= ${min}`);
  }
  return value;
}

function idParam(raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < 1 || n > 2_147_483_647) {
    throw new HttpError(404, "no such user");
  }
  return n;
}

// ---- routes ----

async function health(res: ServerResponse): Promise<void> {
  const db = await checkDatabaseConnection();
  const status = !db.primary ? "unhealthy" : db.replica ? "healthy" : "degraded";
  send(res, db.primary ? 200 : 503, { status, timestamp: new Date().toISOString(), ...db });
}

async function createUser(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJson(req);
  const user = await prisma.user.create({
    data: {
      email: str(body, "email", true),
      name: str(body, "name", false),
      credits: body.credits === undefined ? 0 : int(body.credits, "credits", 0),
    },
  });
  send(res, 201, user);
}

async function listUsers(url: URL, res: ServerResponse): Promise<void> {
  const email = url.searchParams.get("email") ?? undefined;
  const users = await prismaReplica.user.findMany({
    where: email ? { email } : undefined,
    orderBy: { id: "desc" },
    take: 100,
  });
  send(res, 200, users);
}

async function getUser(id: number, res: ServerResponse): Promise<void> {
  const user = await prismaReplica.user.findUnique({
    where: { id },
    include: { profile: true, posts: { orderBy: { id: "asc" } } },
  });
  if (!user) throw new HttpError(404, "no such user");
  send(res, 200, user);
}

async function signup(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJson(req);
  const email = str(body, "email", true);
  // The guide's batch transaction: both statements commit together or not at all. The profile finds
  // its user by the unique email, which the first statement has just written in the same transaction.
  const [user, profile] = await prisma.$transaction([
    prisma.user.create({ data: { email, name: str(body, "name", false) } }),
    prisma.profile.create({ data: { bio: str(body, "bio", true), user: { connect: { email } } } }),
  ]);
  send(res, 201, { user, profile });
}

async function createPost(userId: number, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJson(req);
  const post = await prisma.post.create({ data: { title: str(body, "title", true), authorId: userId } });
  send(res, 201, post);
}

async function transfer(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJson(req);
  const fromId = int(body.fromId, "fromId", 1);
  const toId = int(body.toId, "toId", 1);
  const amount = int(body.amount, "amount", 1);
  if (fromId === toId) throw new HttpError(400, "fromId and toId must differ");
  // Interactive transaction: the decrement, the check and the increment run on one server
  // connection between BEGIN and COMMIT; throwing rolls everything back.
  const result = await prisma.$transaction(async (tx) => {
    const payer = await tx.user.update({ where: { id: fromId }, data: { credits: { decrement: amount } } });
    if (payer.credits < 0) throw new InsufficientCredits(payer.credits + amount, amount);
    const payee = await tx.user.update({ where: { id: toId }, data: { credits: { increment: amount } } });
    return { from: { id: payer.id, credits: payer.credits }, to: { id: payee.id, credits: payee.credits } };
  });
  send(res, 200, result);
}

// ---- dispatch ----

function prismaErrorToHttp(e: Prisma.PrismaClientKnownRequestError): HttpError {
  switch (e.code) {
    case "P2002":
      return new HttpError(409, "already exists (unique constraint)", e.code);
    case "P2000":
      return new HttpError(400, "a value is too long for its column", e.code);
    case "P2025":
    case "P2003":
    case "P2018":
      return new HttpError(404, "a referenced record does not exist", e.code);
    default:
      return new HttpError(500, "database error", e.code);
  }
}

async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const path = url.pathname.replace(/\/+$/, "") || "/";
  const m = path.match(/^\/users\/([^/]+)(\/posts)?$/);
  const method = req.method ?? "GET";

  if (path === "/health" && method === "GET") return health(res);
  if (path === "/users" && method === "POST") return createUser(req, res);
  if (path === "/users" && method === "GET") return listUsers(url, res);
  if (path === "/signup" && method === "POST") return signup(req, res);
  if (path === "/transfers" && method === "POST") return transfer(req, res);
  if (m && !m[2] && method === "GET") return getUser(idParam(m[1]), res);
  if (m && m[2] && method === "POST") return createPost(idParam(m[1]), req, res);
  throw new HttpError(404, `no route for ${method} ${path}`);
}

/** The request handler for http.createServer(). */
export async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    await route(req, res);
  } catch (e) {
    let err: HttpError;
    if (e instanceof HttpError) err = e;
    else if (e instanceof Prisma.PrismaClientKnownRequestError) err = prismaErrorToHttp(e);
    else if (e instanceof ReadOnlyReplicaError) err = new HttpError(500, e.message, "READ_ONLY_REPLICA");
    else err = new HttpError(500, "internal error");
    if (err.status >= 500) console.error(`${req.method} ${req.url}: ${(e as Error)?.stack ?? e}`);
    if (!res.headersSent) send(res, err.status, { error: err.message, ...(err.code ? { code: err.code } : {}) });
    else res.destroy();
  }
}
