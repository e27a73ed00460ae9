#!/usr/bin/python3
"""idle_clients.py - open N PostgreSQL client connections, log each one in, and hold them idle.

Used by bench/bench.py (scenario 6) to load a pooler with thousands of idle, logged-in clients while
pgbench runs a few active ones. Speaks the v3 wire protocol on raw asyncio streams (stdlib only):
StartupMessage (with --tls after an SSLRequest and a TLS handshake), then trust, cleartext, md5 or
SCRAM-SHA-256 authentication, then waits for ReadyForQuery. Nothing is sent after that until the end, when each connection sends Terminate.

    idle_clients.py --host 127.0.0.1 --port 6432 --user bench --password pw --db bench -n 10000

Prints one line `READY ok=N failed=M seconds=S` on stdout once every connection has either logged
in or failed (with the first few errors on stderr), then holds the connections until stdin reaches
EOF or SIGTERM/SIGINT arrives, then closes them all and exits (code 0 if all N logged in, else 1).
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import resource
import signal
import ssl
import struct
import sys
import time


class LoginError(Exception):
    pass


def _msg(tag, body):
    return tag + struct.pack("!I", len(body) + 4) + body


def _startup(user, db):
    params = b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0" \
        + b"application_name\0idle_clients\0\0"
    body = struct.pack("!I", 196608) + params
    return struct.pack("!I", len(body) + 4) + body


async def _read_msg(reader):
    hdr = await reader.readexactly(5)
    tag, length = hdr[:1], struct.unpack("!I", hdr[1:])[0]
    if length < 4 or length > 1 << 20:
        raise LoginError("bad message length %d (tag %r)" % (length, tag))
    return tag, await reader.readexactly(length - 4)


def _error_text(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[part[:1]] = part[1:].decode("utf-8", "replace")
    return "%s: %s" % (fields.get(b"S", "ERROR"), fields.get(b"M", "?"))


class _Scram:
    """Client side of SCRAM-SHA-256 (no channel binding)."""

    def __init__(self, password):
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = "n=,r=" + self.nonce
        self.server_sig = None

    def first(self):
        return "n,," + self.first_bare

    def final(self, server_first):
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise LoginError("SCRAM: server nonce does not extend ours")
        salt, iters = base64.b64decode(attrs["s"]), int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iters)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = "c=biws,r=" + attrs["r"]
        auth_msg = ",".join((self.first_bare, server_first, without_proof)).encode()
        sig = hmac.new(stored_key, auth_msg, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.server_sig = base64.b64encode(hmac.new(server_key, auth_msg, hashlib.sha256).digest()).decode()
        return without_proof + ",p=" + base64.b64encode(proof).decode()


async def login(host, port, user, password, db, timeout, tls=None):
    """Open one connection and log it in; return (reader, writer) at ReadyForQuery. tls: an
    ssl.SSLContext for sslmode=require (SSLRequest first, then the handshake)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        if tls is not None:
            writer.write(struct.pack("!II", 8, 80877103))
            answer = await asyncio.wait_for(reader.readexactly(1), timeout)
            if answer != b"S":
                raise LoginError("the server refused TLS (%r)" % answer)
            await asyncio.wait_for(writer.start_tls(tls), timeout)
        writer.write(_startup(user, db))
        scram = None
        deadline = time.monotonic() + timeout
        while True:
            tag, body = await asyncio.wait_for(_read_msg(reader), max(0.1, deadline - time.monotonic()))
            if tag == b"R":
                code = struct.unpack("!I", body[:4])[0]
                if code == 0:
                    continue
                if code == 3:
                    writer.write(_msg(b"p", password.encode() + b"\0"))
                elif code == 5:
                    inner = hashlib.md5((password + user).encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + body[4:8]).hexdigest()
                    writer.write(_msg(b"p", b"md5" + outer.encode() + b"\0"))
                elif code == 10:
                    if b"SCRAM-SHA-256\0" not in body[4:]:
                        raise LoginError("server offers no SCRAM-SHA-256")
                    scram = _Scram(password)
                    first = scram.first().encode()
                    writer.write(_msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
                elif code == 11 and scram:
                    writer.write(_msg(b"p", scram.final(body[4:].decode()).encode()))
                elif code == 12 and scram:
                    if body[4:].decode() != "v=" + scram.server_sig:
                        raise LoginError("SCRAM: wrong server signature")
                else:
                    raise LoginError("unsupported authentication request %d" % code)
            elif tag == b"E":
                raise LoginError(_error_text(body))
            elif tag == b"Z":
                return reader, writer
            # S (ParameterStatus), K (BackendKeyData), N (notice): nothing to do
    except BaseException:
        writer.close()
        raise


async def main_async(args):
    sem = asyncio.Semaphore(args.concurrency)
    tls = None
    if args.tls:  # sslmode=require: encrypted, the certificate not checked
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    conns, errors = [], []

    async def one():
        async with sem:
            try:
                conns.append(await login(args.host, args.port, args.user, args.password, args.db,
                                         args.timeout, tls))
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, LoginError) as e:
                errors.append("%s: %s" % (type(e).__name__, e))

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(args.n)))
    elapsed = time.monotonic() - t0
    for e in errors[:5]:
        print("idle_clients: login failed: %s" % e, file=sys.stderr)
    print("READY ok=%d failed=%d seconds=%.2f" % (len(conns), len(errors), elapsed), flush=True)

    # Hold until stdin closes or a signal arrives. Data the pooler sends meanwhile (e.g. a
    # ParameterStatus) stays unread in the socket buffers; a connection the pooler closes is counted.
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stdin_eof = loop.run_in_executor(None, sys.stdin.buffer.read)
    stop_wait = asyncio.ensure_future(stop.wait())
    await asyncio.wait([stdin_eof, stop_wait], return_when=asyncio.FIRST_COMPLETED)
    stop_wait.cancel()

    closed_by_peer = sum(1 for r, _ in conns if r.at_eof())
    for _, w in conns:
        try:
            w.write(_msg(b"X", b""))
            w.close()
        except (OSError, RuntimeError):
            pass
    await asyncio.sleep(0.2)
    print("idle_clients: closed %d connections (%d had been closed by the server)"
          % (len(conns), closed_by_peer), file=sys.stderr)
    return 0 if not errors else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", default="")
    ap.add_argument("--db", required=True)
    ap.add_argument("-n", type=int, default=10000, help="connections to open (default 10000)")
    ap.add_argument("--concurrency", type=int, default=64, help="logins in flight at once (default 64)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds allowed per login")
    ap.add_argument("--tls", action="store_true", help="log in over TLS (sslmode=require)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.n + 100
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY
                                                    else want, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < want:
        print("idle_clients: RLIMIT_NOFILE hard limit %d is below %d" % (hard, want), file=sys.stderr)
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
