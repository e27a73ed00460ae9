/* tls.h - TLS for pgsluice's streams (OpenSSL 3), both ways: applications -> pgsluice ("accept"
 * side: client_tls_*) and pgsluice -> PostgreSQL ("connect" side: server_tls_*).
 *
 *  - Contexts (sl_tls_ctx) are built from a config snapshot, immutable afterwards and reference
 *    counted: every worker may start connections from the same context at once (OpenSSL's SSL_CTX
 *    is safe for that once configured); a RELOAD builds new ones for new connections while open
 *    connections keep theirs. Building is also the check: a file that does not load, a key that
 *    does not match its certificate, a list that does not parse refuse the config (fail closed).
 *  - A TLS connection (an SSL object behind stream->tr_state) belongs to the worker that owns the
 *    stream, like the stream itself; a stream handed to another worker takes it along.
 *  - Starting TLS on a stream: after answering 'S' to a client's SSLRequest
 *    (sl_stream_accept_encryption), for a client that opened with a TLS ClientHello (direct TLS,
 *    PostgreSQL 17: sl_tls_is_direct_hello + sl_stream_start_tls_server(..., true, ...)), or
 *    towards a server that answered 'S' (sl_stream_request_encryption,
 *    sl_stream_encryption_answer, sl_stream_start_tls_client). Then sl_stream_handshake() until it
 *    says SL_IO_OK; reads and writes go through the stream as before.
 */
#ifndef SL_TLS_H
#define SL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "net/stream.h"

typedef enum {
    SL_TLS_ACCEPT = 0, /* pgsluice is the TLS server: client connections (client_tls_*) */
    SL_TLS_CONNECT,    /* pgsluice is the TLS client: server connections (server_tls_*) */
} sl_tls_side;

typedef struct sl_tls_ctx sl_tls_ctx;

/* ---- contexts ---- */

/* Build the context of one side from cfg. *out is NULL when that side's sslmode is disable (and
 * true is returned). false: err says which setting and file failed, e.g.
 * `client_tls_key_file "/etc/k.pem": No such file or directory`; nothing is built. The files are
 * read now; later changes to them reach only contexts built later. */
bool sl_tls_ctx_build(const sl_config *cfg, sl_tls_side side, sl_tls_ctx **out, char *err, size_t errlen);
sl_tls_ctx *sl_tls_ctx_ref(sl_tls_ctx *c);   /* any thread; returns c */
void sl_tls_ctx_unref(sl_tls_ctx *c);        /* any thread; NULL is fine; frees at zero */
sl_tls_side sl_tls_ctx_side(const sl_tls_ctx *c);
sl_tls_mode sl_tls_ctx_mode(const sl_tls_ctx *c);

/* Everything TLS in cfg loads (both sides)? For start-up, RELOAD and SET: false + err refuses the
 * snapshot. Builds the contexts and throws them away; sl_tls_install does the same and keeps them. */
bool sl_tls_config_check(const sl_config *cfg, char *err, size_t errlen);

/* The contexts new connections start from. sl_tls_install builds both sides from cfg and, only
 * if both build, puts them in place of the old ones (which live on in the connections that hold
 * them); false + err leaves the old ones. sl_tls_acquire: a reference to the current context of a
 * side (release with sl_tls_ctx_unref), NULL when that side is disabled. sl_tls_uninstall drops
 * them (at exit). Thread-safe; a mutex held for a pointer copy. */
bool sl_tls_install(const sl_config *cfg, char *err, size_t errlen);
sl_tls_ctx *sl_tls_acquire(sl_tls_side side);
void sl_tls_uninstall(void);

/* Do a and b differ in a setting of this side (sslmode, files, protocols, ciphers, curves)?
 * PgBouncer reconnects server connections when the server side's TLS settings change. */
bool sl_tls_settings_differ(const sl_config *a, const sl_config *b, sl_tls_side side);

/* ---- what a mode means ---- */

/* Client side: must a client on this socket use TLS (require, verify-ca, verify-full over TCP)?
 * Clients on a Unix socket never get TLS (their SSLRequest is answered 'N'), as in PostgreSQL. */
bool sl_tls_client_must_use_tls(sl_tls_mode mode, bool is_unix);
/* Client side: answer 'S' to an SSLRequest (a mode other than disable, over TCP)? */
bool sl_tls_client_may_use_tls(sl_tls_mode mode, bool is_unix);
/* Client side: request (and, in verify-ca and verify-full, require) a client certificate? */
bool sl_tls_client_cert_required(sl_tls_mode mode);

/* Server side: how to open a server connection. */
typedef enum {
    SL_TLS_PLAN_PLAIN = 0,       /* disable, or a Unix socket: no SSLRequest */
    SL_TLS_PLAN_TLS_OR_PLAIN,    /* prefer: SSLRequest; 'N' -> go on in plaintext */
    SL_TLS_PLAN_TLS_ONLY,        /* require, verify-ca, verify-full: SSLRequest; 'N' -> fail */
    SL_TLS_PLAN_PLAIN_THEN_TLS,  /* allow: plaintext; if the server refuses the login, once more with TLS */
} sl_tls_plan;
sl_tls_plan sl_tls_server_plan(sl_tls_mode mode, bool is_unix);

/* ---- negotiation on a stream (the bytes PostgreSQL's protocol uses before TLS) ---- */

/* Does a connection open with a TLS record (0x16, a ClientHello) instead of a startup packet?
 * One byte decides: no startup packet starts with 0x16 (it would be longer than 369 MB). */
static inline bool sl_tls_is_direct_hello(const uint8_t *buf, size_t n)
{
    return n >= 1 && buf[0] == 0x16;
}

/* Client side: answer 'S' to the SSLRequest just consumed from s's input and switch s to TLS (as
 * a server). The client must not have sent anything after its SSLRequest (bytes it sent before
 * TLS cannot be trusted: CVE-2021-23214); false + err then, and for any failure: close the
 * connection. Then drive sl_stream_handshake(). */
bool sl_stream_accept_encryption(sl_stream *s, sl_tls_ctx *ctx, char *err, size_t errlen);

/* Switch s to TLS as the server. direct: the client opened with its ClientHello (the bytes already
 * read into s's buffer, from s->pos, are handed to OpenSSL first) and must negotiate the ALPN
 * protocol "postgresql", as PostgreSQL 17 requires; without direct, s's input must be empty. */
bool sl_stream_start_tls_server(sl_stream *s, sl_tls_ctx *ctx, bool direct, char *err, size_t errlen);

/* Server side: queue an SSLRequest on s (sent by the next sl_stream_flush). */
void sl_stream_request_encryption(sl_stream *s);
typedef enum {
    SL_TLS_ANSWER_NEED_MORE = 0, /* nothing read yet */
    SL_TLS_ANSWER_YES,           /* 'S' (consumed): call sl_stream_start_tls_client */
    SL_TLS_ANSWER_NO,            /* 'N' (consumed): plaintext, if the plan allows it */
    SL_TLS_ANSWER_ERROR,         /* 'E': the server sent an ErrorResponse instead (left in the buffer) */
    SL_TLS_ANSWER_BAD,           /* anything else, or bytes after 'S' (a man in the middle: CVE-2021-23222) */
} sl_tls_answer;
/* The server's answer to the SSLRequest, from s's input buffer (read it with sl_stream_read first). */
sl_tls_answer sl_stream_encryption_answer(sl_stream *s);

/* Switch s to TLS as the client. host: the server's host name or address as configured (SNI unless
 * it is an IP address; checked against the certificate in verify-full); NULL or "" for none. s's
 * input must be empty. */
bool sl_stream_start_tls_client(sl_stream *s, sl_tls_ctx *ctx, const char *host, char *err, size_t errlen);

/* Drive the handshake: call once right after starting TLS. SL_IO_OK when done (again OK, at once,
 * if called later), SL_IO_AGAIN when it waits for the socket: the stream then polls for what
 * OpenSSL needs (whatever the owner's poll says), the loop drives the handshake on, and the owner
 * hears nothing until it is over: then its callback gets UV_READABLE | UV_WRITABLE once and calls
 * this again to learn the outcome. SL_IO_EOF or SL_IO_ERROR (sl_stream_tls_error says why, e.g.
 * "TLS handshake: certificate verify failed: certificate has expired"): close. After SL_IO_OK
 * the stream polls for what the owner last asked (sl_stream_set_poll). A reader or writer that
 * comes before the end of the handshake drives it too. A plain stream: SL_IO_OK. */
sl_io_status sl_stream_handshake(sl_stream *s);

/* ---- a TLS stream ---- */

bool sl_stream_is_tls(const sl_stream *s);
bool sl_stream_tls_handshaking(const sl_stream *s);
/* Why the last TLS step failed ("" when nothing failed). */
const char *sl_stream_tls_error(const sl_stream *s);
/* "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519" (SHOW CLIENTS' tls column); "" for a plain stream. */
const char *sl_stream_tls_describe(const sl_stream *s, char *buf, size_t len);
/* The peer's certificate Common Name (auth_type = cert): false when there is no certificate, no
 * CN, a CN with a NUL byte or longer than len - 1. *verified: the chain checked out against the CA
 * file (in allow/prefer/require a presented certificate is asked for only when client_tls_ca_file
 * is set, and not refused when it does not verify: cert auth must demand *verified). */
bool sl_stream_tls_peer_cn(const sl_stream *s, char *cn, size_t len, bool *verified);
/* Channel binding type tls-server-end-point (RFC 5929, SCRAM-SHA-256-PLUS): the hash of the
 * server's certificate (ours on a client connection, the server's on a server connection) with the
 * hash of its signature algorithm, SHA-256 when that is MD5 or SHA-1. false when the algorithm
 * names no single hash (e.g. Ed25519: PostgreSQL refuses channel binding then too) or before the
 * handshake. out needs up to 64 bytes. */
bool sl_stream_tls_server_end_point(const sl_stream *s, uint8_t *out, size_t cap, size_t *outlen);
/* The ALPN protocol negotiated ("postgresql") or NULL. */
const char *sl_stream_tls_alpn(const sl_stream *s, char *buf, size_t len);

#endif
