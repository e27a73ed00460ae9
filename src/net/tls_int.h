/* tls_int.h - what the TLS files of the net layer share (tls.c: contexts; transport_tls.c: the
 * transport; tls_stream.c: starting TLS on a stream): the context and the per-connection state.
 * Not for other layers. */
#ifndef SL_TLS_INT_H
#define SL_TLS_INT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/tls.h"

struct sl_tls_ctx {
    SSL_CTX *ssl;
    sl_tls_side side;
    sl_tls_mode mode;
    int refcount; /* atomic */
};

/* The largest plaintext of one TLS record: a write is cut to it so that the bytes OpenSSL takes
 * when it cannot send at once are exactly what was passed (see tls_writev). */
#define SL_TLS_RECORD 16384

/* One TLS connection: stream->tr_state. Owned by the stream's worker. */
typedef struct sl_tls_conn {
    SSL *ssl;
    sl_tls_ctx *ctx;       /* a reference: the context outlives a RELOAD while we use it */
    int fd;
    int sock_err;          /* errno of the socket call that failed last (0: none) */
    /* direct TLS: bytes read before TLS started, handed to OpenSSL before the socket's */
    uint8_t *pre;
    uint32_t pre_len, pre_off;
    /* plaintext bytes of a record SSL_write took but could not send: the next write must pass
     * exactly these again (the stream's queue keeps them first) */
    uint32_t wpend;
    /* poll bookkeeping (transport_tls.c): what the owner asked for, what each step waits for */
    int owner_want;        /* UV_READABLE | UV_WRITABLE as the owner last set them */
    uint8_t hs_wait;       /* handshake waits for this event */
    uint8_t rd_wait;       /* UV_WRITABLE: a read must write first */
    uint8_t wr_wait;       /* UV_READABLE: a write must read first */
    bool server;           /* we are the TLS server (client connection) */
    bool direct;           /* direct TLS: ALPN "postgresql" required */
    bool handshaking;
    bool hs_failed;        /* the handshake failed: errmsg says why, and later calls say so again */
    int hs_fail_result;    /* what it failed with (SL_TR_EOF or SL_TR_ERROR) */
    bool rd_blocked;       /* the last read stopped for lack of socket bytes */
    bool stuck;            /* the owner was handed readable bytes and took none: no kick until it reads */
    bool in_dispatch;
    bool shut;
    uint64_t rd_calls;     /* reads the owner asked for (dispatch stops when one hands out nothing) */
    char errmsg[192];
} sl_tls_conn;

/* transport_tls.c */
sl_tls_conn *sl_tls_conn_new(sl_tls_ctx *ctx, int fd, bool server, char *err, size_t errlen);
void sl_tls_conn_free(sl_tls_conn *t);
/* Decrypted (or pre-read) bytes a read would return without the socket. */
bool sl_tls_conn_readable(const sl_tls_conn *t);
/* Record why a TLS call failed, from OpenSSL's error queue and the connection. */
void sl_tls_conn_fail(sl_tls_conn *t, const char *what);

static inline sl_tls_conn *sl_tls_of(const sl_stream *s)
{
    return s->tr == &sl_transport_tls ? (sl_tls_conn *)s->tr_state : NULL;
}

#endif
