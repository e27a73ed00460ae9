/* transport_tls.c - the TLS transport: OpenSSL over the stream's non-blocking socket through a
 * small BIO of our own (recv/send without SIGPIPE, and bytes read before TLS started handed over
 * first), records cut so that partial progress is exact, and the poll bookkeeping a TLS stream
 * needs: decrypted bytes the socket will not announce, and a read that waits to write (or a write
 * that waits to read). */
#include "net/tls_int.h"

#include <errno.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- the BIO: the connection's socket (and pre-read bytes) ---- */

static int bio_read(BIO *b, char *buf, int len)
{
    sl_tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    if (t->pre_off < t->pre_len) {
        uint32_t n = t->pre_len - t->pre_off;
        if (n > (uint32_t)len) n = (uint32_t)len;
        memcpy(buf, t->pre + t->pre_off, n);
        t->pre_off += n;
        if (t->pre_off == t->pre_len) {
            free(t->pre);
            t->pre = NULL;
            t->pre_len = t->pre_off = 0;
        }
        return (int)n;
    }
    for (;;) {
        /* straight into the kernel, as the plain transport does (no cancellation bracketing) */
        ssize_t r = syscall(SYS_recvfrom, t->fd, buf, (size_t)len, 0, NULL, NULL);
        if (r >= 0) return (int)r; /* 0: end of file */
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            BIO_set_retry_read(b);
            return -1;
        }
        t->sock_err = errno;
        return -1;
    }
}

static int bio_write(BIO *b, const char *buf, int len)
{
    sl_tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    for (;;) {
        ssize_t r = syscall(SYS_sendto, t->fd, buf, (size_t)len, MSG_NOSIGNAL, NULL, 0);
        if (r >= 0) return (int)r;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            BIO_set_retry_write(b);
            return -1;
        }
        t->sock_err = errno;
        return -1;
    }
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "pgsluice socket");
    if (m && BIO_meth_set_read(m, bio_read) && BIO_meth_set_write(m, bio_write) && BIO_meth_set_ctrl(m, bio_ctrl) &&
        BIO_meth_set_create(m, bio_create))
        bio_method = m;
    else
        BIO_meth_free(m);
}

/* ---- the connection ---- */

sl_tls_conn *sl_tls_conn_new(sl_tls_ctx *ctx, int fd, bool server, char *err, size_t errlen)
{
    pthread_once(&bio_once, bio_method_init);
    sl_tls_conn *t = calloc(1, sizeof(*t));
    BIO *bio = NULL;
    if (!t || !bio_method) goto fail;
    ERR_clear_error();
    t->ssl = SSL_new(ctx->ssl);
    bio = BIO_new(bio_method);
    if (!t->ssl || !bio) goto fail;
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio); /* one reference for both directions, now the SSL's */
    bio = NULL;
    t->ctx = sl_tls_ctx_ref(ctx);
    t->fd = fd;
    t->server = server;
    t->handshaking = true;
    if (server)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    return t;
fail:
    snprintf(err, errlen, "cannot start TLS: out of memory");
    BIO_free(bio);
    if (t) SSL_free(t->ssl);
    free(t);
    ERR_clear_error();
    return NULL;
}

void sl_tls_conn_free(sl_tls_conn *t)
{
    if (!t) return;
    SSL_free(t->ssl);
    sl_tls_ctx_unref(t->ctx);
    free(t->pre);
    free(t);
}

bool sl_tls_conn_readable(const sl_tls_conn *t)
{
    if (t->handshaking) return false;
    if (SSL_pending(t->ssl) > 0 || t->pre_off < t->pre_len) return true;
    /* read-ahead may hold more records; a partial one waits for the socket (which will say so) */
    return !t->rd_blocked && SSL_has_pending(t->ssl);
}

void sl_tls_conn_fail(sl_tls_conn *t, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    long vr = SSL_get_verify_result(t->ssl);
    if (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK) {
        snprintf(t->errmsg, sizeof(t->errmsg), "%s: certificate verify failed: %s", what,
                 X509_verify_cert_error_string(vr));
    } else if (e) {
        const char *r = ERR_reason_error_string(e);
        snprintf(t->errmsg, sizeof(t->errmsg), "%s: %s", what, r ? r : "OpenSSL error");
    } else if (t->sock_err) {
        snprintf(t->errmsg, sizeof(t->errmsg), "%s: %s", what, strerror(t->sock_err));
    } else {
        snprintf(t->errmsg, sizeof(t->errmsg), "%s: connection closed", what);
    }
    ERR_clear_error();
}

/* ---- poll bookkeeping ---- */

#define R UV_READABLE
#define W UV_WRITABLE

static sl_tls_conn *conn(const sl_stream *s)
{
    return (sl_tls_conn *)s->tr_state;
}

/* What to ask the loop for: the owner's events, what a waiting step needs, and a writable "kick"
 * when decrypted bytes wait for an owner that reads (the socket will not become readable for
 * them, but it is writable at once, and dispatch turns that into a readable event). */
static int tls_poll_events(sl_stream *s, int owner)
{
    sl_tls_conn *t = conn(s);
    t->owner_want = owner;
    int ev = owner;
    if (t->handshaking) return t->hs_wait ? t->hs_wait : owner; /* nothing else moves until it is done */
    if (t->rd_wait && (owner & R)) ev |= t->rd_wait;
    if (t->wr_wait && (owner & W)) ev |= t->wr_wait;
    if ((owner & R) && !t->stuck && !t->in_dispatch && sl_tls_conn_readable(t)) ev |= W;
    return ev;
}

static void refresh_poll(sl_stream *s)
{
    sl_stream_set_poll(s, conn(s)->owner_want);
}

static sl_tr_result tls_handshake(sl_stream *s);

/* Every poll event of a TLS stream. While the handshake runs, the event drives it and the owner
 * hears nothing until it is over, then UV_READABLE | UV_WRITABLE once (it asks
 * sl_stream_handshake how it went). Afterwards the owner sees what it asked for, a read that
 * waited to write is retried on writable, a write that waited to read on readable, and decrypted
 * bytes the socket does not announce are handed out while the owner keeps reading them. */
static void tls_dispatch(sl_stream *s, int events)
{
    sl_tls_conn *t = conn(s);
    int ev;
    if (t->handshaking) {
        sl_tr_result r = tls_handshake(s);
        if (r == SL_TR_WANT_READ || r == SL_TR_WANT_WRITE) return;
        s->on_event(s, R | W);
        if (r != SL_TR_OK) return;
        ev = 0;
    } else {
        int want = t->owner_want;
        ev = (events & ~(R | W)) | (events & want);
        if ((events & W) && t->rd_wait == W) ev |= want & R;
        if ((events & R) && t->wr_wait == R) ev |= want & W;
        if ((events & W) && sl_tls_conn_readable(t)) ev |= want & R;
    }
    t->in_dispatch = true;
    if (ev) s->on_event(s, ev);
    /* bytes decrypted by the last read, the rest of a record the owner's buffer could not take */
    while (s->poll_open && (t->owner_want & R) && !t->handshaking && sl_tls_conn_readable(t)) {
        uint64_t before = t->rd_calls;
        s->on_event(s, R);
        if (t->rd_calls == before) {
            t->stuck = true; /* it does not read now; its next successful read lifts this */
            break;
        }
    }
    t->in_dispatch = false;
    if (s->poll_open) refresh_poll(s); /* drop a kick or a wait that no longer applies */
}

/* ---- the transport ---- */

static sl_tr_result tls_read(sl_stream *s, void *buf, size_t len, size_t *n)
{
    sl_tls_conn *t = conn(s);
    t->rd_calls++;
    if (t->handshaking) { /* an owner that reads before the handshake is done finishes it first */
        sl_tr_result r = tls_handshake(s);
        if (r != SL_TR_OK) return r;
    }
    ERR_clear_error();
    if (SSL_read_ex(t->ssl, buf, len, n) == 1) {
        bool was = t->rd_wait || t->stuck;
        t->rd_blocked = false;
        /* SSL_read gives one record; the records read ahead behind it go into the same buffer, so
         * that the owner forwards them in one write (a COPY's 4-8 KB records, three or four per
         * socket read). It stops at a partial record: its rest waits for the socket, and the error
         * of a failed record comes again on the next call. */
        size_t more;
        while (*n < len && SSL_has_pending(t->ssl)) {
            ERR_clear_error();
            if (SSL_read_ex(t->ssl, (uint8_t *)buf + *n, len - *n, &more) == 1) {
                *n += more;
                continue;
            }
            if (SSL_get_error(t->ssl, 0) == SSL_ERROR_WANT_READ) t->rd_blocked = true;
            ERR_clear_error();
            break;
        }
        t->rd_wait = 0;
        t->stuck = false;
        /* outside dispatch (the owner read from another stream's event): make sure what is left
         * of the record reaches the owner */
        if (was || (!t->in_dispatch && sl_tls_conn_readable(t))) refresh_poll(s);
        return SL_TR_OK;
    }
    int e = SSL_get_error(t->ssl, 0);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        t->rd_blocked = true;
        if (t->rd_wait) {
            t->rd_wait = 0;
            refresh_poll(s);
        }
        return SL_TR_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        if (t->rd_wait != W) {
            t->rd_wait = W;
            refresh_poll(s);
        }
        return SL_TR_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return SL_TR_EOF;
    case SSL_ERROR_SYSCALL:
        if (!t->sock_err && !ERR_peek_error()) return SL_TR_EOF;
        /* fall through */
    default:
        s->err = t->sock_err ? t->sock_err : EPROTO;
        sl_tls_conn_fail(t, "TLS read");
        return SL_TR_ERROR;
    }
}

/* One record's worth of plaintext for SSL_write, from the start of iov. After a blocked write the
 * same bytes come first again (the stream's queue only grows at its end), though perhaps from
 * elsewhere in memory or split differently: exactly that many are passed. */
static _Thread_local uint8_t gather_buf[SL_TLS_RECORD];

static const void *gather(const struct iovec *iov, int iovcnt, size_t len)
{
    if (iov[0].iov_len >= len) return iov[0].iov_base;
    size_t got = 0;
    for (int i = 0; i < iovcnt && got < len; i++) {
        size_t k = iov[i].iov_len < len - got ? iov[i].iov_len : len - got;
        memcpy(gather_buf + got, iov[i].iov_base, k);
        got += k;
    }
    return gather_buf;
}

static sl_tr_result tls_writev(sl_stream *s, const struct iovec *iov, int iovcnt, size_t *n)
{
    sl_tls_conn *t = conn(s);
    if (t->handshaking) {
        sl_tr_result r = tls_handshake(s);
        if (r != SL_TR_OK) return r;
    }
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
    *n = 0;
    if (total == 0) return SL_TR_OK;
    size_t len;
    if (t->wpend) {
        len = t->wpend;
        if (total < len) { /* the bytes OpenSSL took are no longer first in the queue */
            s->err = EPROTO;
            snprintf(t->errmsg, sizeof(t->errmsg), "TLS write: %zu bytes of a record are gone from the queue", len);
            return SL_TR_ERROR;
        }
    } else if (iov[0].iov_len >= SL_TLS_RECORD || iovcnt == 1) {
        len = iov[0].iov_len < SL_TLS_RECORD ? iov[0].iov_len : SL_TLS_RECORD;
    } else {
        /* a short piece (pooler output) and the forwarded bytes after it: one record, not two */
        len = total < SL_TLS_RECORD ? total : SL_TLS_RECORD;
    }
    const void *p = gather(iov, iovcnt, len);
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, p, len, n) == 1) {
        t->wpend = 0;
        if (t->wr_wait) {
            t->wr_wait = 0;
            refresh_poll(s);
        }
        return SL_TR_OK;
    }
    *n = 0;
    int e = SSL_get_error(t->ssl, 0);
    switch (e) {
    case SSL_ERROR_WANT_WRITE:
        t->wpend = (uint32_t)len;
        return SL_TR_WANT_WRITE;
    case SSL_ERROR_WANT_READ:
        t->wpend = (uint32_t)len;
        if (t->wr_wait != R) {
            t->wr_wait = R;
            refresh_poll(s);
        }
        return SL_TR_WANT_READ;
    default:
        s->err = t->sock_err ? t->sock_err : (e == SSL_ERROR_ZERO_RETURN ? EPIPE : EPROTO);
        sl_tls_conn_fail(t, "TLS write");
        return SL_TR_ERROR;
    }
}

static size_t tls_pending(const sl_stream *s)
{
    const sl_tls_conn *t = conn(s);
    if (t->handshaking) return 0;
    size_t n = (size_t)SSL_pending(t->ssl) + (t->pre_len - t->pre_off);
    if (n == 0 && !t->rd_blocked && SSL_has_pending(t->ssl)) n = 1; /* whole records read ahead */
    return n;
}

static bool alpn_is_postgresql(const sl_tls_conn *t)
{
    const unsigned char *p;
    unsigned int n;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    return n == 10 && memcmp(p, "postgresql", 10) == 0;
}

static sl_tr_result tls_handshake(sl_stream *s)
{
    sl_tls_conn *t = conn(s);
    if (!t->handshaking) return SL_TR_OK;
    if (t->hs_failed) { /* OpenSSL would now report a different, misleading error */
        if (t->hs_fail_result == SL_TR_ERROR && !s->err) s->err = EPROTO;
        return (sl_tr_result)t->hs_fail_result;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        if (t->direct && !alpn_is_postgresql(t)) {
            s->err = EPROTO;
            snprintf(t->errmsg, sizeof(t->errmsg), "TLS handshake: direct TLS without ALPN \"postgresql\"");
            t->hs_failed = true;
            t->hs_fail_result = SL_TR_ERROR;
            return SL_TR_ERROR;
        }
        t->handshaking = false;
        t->hs_wait = 0;
        refresh_poll(s);
        return SL_TR_OK;
    }
    int e = SSL_get_error(t->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: {
        uint8_t need = e == SSL_ERROR_WANT_READ ? R : W;
        if (t->hs_wait != need) {
            t->hs_wait = need;
            refresh_poll(s);
        }
        return e == SSL_ERROR_WANT_READ ? SL_TR_WANT_READ : SL_TR_WANT_WRITE;
    }
    case SSL_ERROR_SYSCALL:
        if (!t->sock_err && !ERR_peek_error()) {
            snprintf(t->errmsg, sizeof(t->errmsg), "TLS handshake: the peer closed the connection");
            t->hs_failed = true;
            t->hs_fail_result = SL_TR_EOF;
            return SL_TR_EOF;
        }
        /* fall through */
    default:
        s->err = t->sock_err ? t->sock_err : EPROTO;
        sl_tls_conn_fail(t, "TLS handshake");
        t->hs_failed = true;
        t->hs_fail_result = SL_TR_ERROR;
        return SL_TR_ERROR;
    }
}

/* close_notify (once, if the socket takes it now; nobody waits for the peer's), then the socket's
 * shutdown: SHUT_RDWR to end the connection, SHUT_WR to end only our side (what the peer sends
 * afterwards is still read: SSL_read goes on until the peer's close_notify). */
static void tls_close_notify(sl_stream *s, int how)
{
    sl_tls_conn *t = conn(s);
    if (!t->handshaking && !t->shut) {
        ERR_clear_error();
        (void)SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
    t->shut = true;
    if (s->fd >= 0) shutdown(s->fd, how);
}

static void tls_shutdown(sl_stream *s) { tls_close_notify(s, SHUT_RDWR); }

static void tls_end_output(sl_stream *s) { tls_close_notify(s, SHUT_WR); }

static void tls_release(sl_stream *s)
{
    sl_tls_conn_free(conn(s));
    s->tr_state = NULL;
    s->tr_extra = 0;
}

const sl_transport sl_transport_tls = {
    .name = "tls",
    .read = tls_read,
    .writev = tls_writev,
    .pending = tls_pending,
    .handshake = tls_handshake,
    .shutdown = tls_shutdown,
    .end_output = tls_end_output,
    .release = tls_release,
    .dispatch = tls_dispatch,
    .poll_events = tls_poll_events,
};
