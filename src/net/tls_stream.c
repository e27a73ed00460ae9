/* tls_stream.c - TLS on a stream: the bytes PostgreSQL's protocol exchanges before TLS (the 'S'
 * answer to an SSLRequest, an SSLRequest towards a server and its answer, a direct-TLS ClientHello
 * already read), switching the stream's transport, driving the handshake, and what the layers above
 * need to know of a TLS connection (peer certificate CN, tls-server-end-point, a description). */
#include "net/tls_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool fail(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
    return false;
}

/* Put a fresh TLS connection under s. */
static sl_tls_conn *install(sl_stream *s, sl_tls_ctx *ctx, bool server, char *err, size_t errlen)
{
    if (!ctx) return fail(err, errlen, "TLS is not configured"), NULL;
    if (s->tr != &sl_transport_plain) return fail(err, errlen, "the connection already uses TLS"), NULL;
    if ((ctx->side == SL_TLS_ACCEPT) != server)
        return fail(err, errlen, "TLS context of the wrong side"), NULL;
    if (sl_stream_out_pending(s))
        return fail(err, errlen, "plaintext output still queued when TLS starts"), NULL;
    sl_tls_conn *t = sl_tls_conn_new(ctx, s->fd, server, err, errlen);
    if (!t) return NULL;
    t->owner_want = s->want & (UV_READABLE | UV_WRITABLE);
    s->tr = &sl_transport_tls;
    s->tr_state = t;
    s->tr_extra = SL_TR_POLL_HOOK;
    return t;
}

bool sl_stream_start_tls_server(sl_stream *s, sl_tls_ctx *ctx, bool direct, char *err, size_t errlen)
{
    uint32_t have = s->buf ? s->end - s->pos : 0;
    if (!direct && have)
        return fail(err, errlen, "received unencrypted data after SSL request");
    if (direct && (s->msg_left || s->parse != s->pos))
        return fail(err, errlen, "direct TLS after other input");
    uint8_t *pre = NULL;
    if (have) {
        pre = malloc(have);
        if (!pre) return fail(err, errlen, "out of memory");
        memcpy(pre, s->buf + s->pos, have);
    }
    sl_tls_conn *t = install(s, ctx, true, err, errlen);
    if (!t) {
        free(pre);
        return false;
    }
    t->direct = direct;
    t->pre = pre;
    t->pre_len = have;
    if (s->buf) s->pos = s->parse = s->end = 0; /* the ClientHello is OpenSSL's now */
    return true;
}

bool sl_stream_accept_encryption(sl_stream *s, sl_tls_ctx *ctx, char *err, size_t errlen)
{
    if (s->buf && s->end > s->pos) return fail(err, errlen, "received unencrypted data after SSL request");
    if (!ctx) return fail(err, errlen, "TLS is not configured");
    if (sl_stream_out_pending(s)) return fail(err, errlen, "plaintext output still queued when TLS starts");
    /* 'S' goes out in plaintext, before any TLS byte: a fresh connection takes one byte at once */
    struct iovec iov = {.iov_base = "S", .iov_len = 1};
    size_t n = 0;
    sl_tr_result r = s->tr->writev(s, &iov, 1, &n);
    if (r != SL_TR_OK || n != 1) {
        char msg[128];
        snprintf(msg, sizeof(msg), "could not answer the SSL request: %s",
                 r == SL_TR_ERROR ? strerror(s->err) : "socket not writable");
        return fail(err, errlen, msg);
    }
    return sl_stream_start_tls_server(s, ctx, false, err, errlen);
}

void sl_stream_request_encryption(sl_stream *s)
{
    sl_pb_u32(&s->out, 8);
    sl_pb_u32(&s->out, SL_SSL_CODE);
}

sl_tls_answer sl_stream_encryption_answer(sl_stream *s)
{
    if (!s->buf || s->end == s->pos) return SL_TLS_ANSWER_NEED_MORE;
    uint8_t c = s->buf[s->pos];
    if (c == 'E') return SL_TLS_ANSWER_ERROR;
    if (c != 'S' && c != 'N') return SL_TLS_ANSWER_BAD;
    if (c == 'S' && s->end - s->pos > 1) return SL_TLS_ANSWER_BAD; /* injected before the handshake */
    s->pos++;
    s->parse = s->pos;
    return c == 'S' ? SL_TLS_ANSWER_YES : SL_TLS_ANSWER_NO;
}

static bool is_ip_address(const char *host)
{
    unsigned char a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

bool sl_stream_start_tls_client(sl_stream *s, sl_tls_ctx *ctx, const char *host, char *err, size_t errlen)
{
    if (s->buf && s->end > s->pos) return fail(err, errlen, "received unencrypted data after the SSL answer");
    sl_tls_conn *t = install(s, ctx, false, err, errlen);
    if (!t) return false;
    bool ok = true;
    if (host && *host && host[0] != '/') {
        bool ip = is_ip_address(host);
        if (!ip) ok = SSL_set_tlsext_host_name(t->ssl, host) == 1; /* SNI: names only */
        if (ok && ctx->mode == SL_TLS_VERIFY_FULL)
            ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) == 1
                    : SSL_set1_host(t->ssl, host) == 1;
    } else if (ctx->mode == SL_TLS_VERIFY_FULL) {
        ok = false;
    }
    if (!ok) {
        char msg[160];
        snprintf(msg, sizeof(msg), "server_tls_sslmode verify-full: cannot check host name \"%s\"", host ? host : "");
        ERR_clear_error();
        s->tr->release(s);
        s->tr = &sl_transport_plain;
        return fail(err, errlen, msg);
    }
    return true;
}

sl_io_status sl_stream_handshake(sl_stream *s)
{
    if (!s->tr->handshake) return SL_IO_OK;
    switch (s->tr->handshake(s)) {
    case SL_TR_OK: return SL_IO_OK;
    case SL_TR_WANT_READ:
    case SL_TR_WANT_WRITE: return SL_IO_AGAIN;
    case SL_TR_EOF: return SL_IO_EOF;
    case SL_TR_ERROR: break;
    }
    return SL_IO_ERROR;
}

/* ---- a TLS stream ---- */

bool sl_stream_is_tls(const sl_stream *s)
{
    return sl_tls_of(s) != NULL;
}

bool sl_stream_tls_handshaking(const sl_stream *s)
{
    sl_tls_conn *t = sl_tls_of(s);
    return t && t->handshaking;
}

const char *sl_stream_tls_error(const sl_stream *s)
{
    sl_tls_conn *t = sl_tls_of(s);
    return t ? t->errmsg : "";
}

const char *sl_stream_tls_describe(const sl_stream *s, char *buf, size_t len)
{
    sl_tls_conn *t = sl_tls_of(s);
    if (!len) return buf;
    buf[0] = '\0';
    if (!t || t->handshaking) return buf;
    int group = SSL_get_negotiated_group(t->ssl);
    const char *gname = group ? SSL_group_to_name(t->ssl, group) : NULL;
    snprintf(buf, len, "%s/%s%s%s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl), gname ? "/ECDH=" : "",
             gname ? gname : "");
    return buf;
}

bool sl_stream_tls_peer_cn(const sl_stream *s, char *cn, size_t len, bool *verified)
{
    sl_tls_conn *t = sl_tls_of(s);
    if (verified) *verified = false;
    if (!t || t->handshaking || !len) return false;
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    if (!cert) return false;
    X509_NAME *name = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0) return false;
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
    bool ok = n >= 0 && (size_t)n < len && !memchr(utf8, 0, (size_t)n);
    if (ok) {
        memcpy(cn, utf8, (size_t)n);
        cn[n] = '\0';
        if (verified) *verified = SSL_get_verify_result(t->ssl) == X509_V_OK;
    }
    OPENSSL_free(utf8);
    ERR_clear_error();
    return ok;
}

bool sl_stream_tls_server_end_point(const sl_stream *s, uint8_t *out, size_t cap, size_t *outlen)
{
    sl_tls_conn *t = sl_tls_of(s);
    if (!t || t->handshaking) return false;
    X509 *cert = t->server ? SSL_get_certificate(t->ssl) : SSL_get0_peer_certificate(t->ssl);
    int algo;
    if (!cert || !OBJ_find_sigid_algs(X509_get_signature_nid(cert), &algo, NULL)) return false;
    const EVP_MD *md = algo == NID_md5 || algo == NID_sha1 ? EVP_sha256() : EVP_get_digestbynid(algo);
    if (!md || (size_t)EVP_MD_get_size(md) > cap) return false;
    unsigned int n = 0;
    bool ok = X509_digest(cert, md, out, &n) == 1;
    ERR_clear_error();
    if (ok) *outlen = n;
    return ok;
}

const char *sl_stream_tls_alpn(const sl_stream *s, char *buf, size_t len)
{
    sl_tls_conn *t = sl_tls_of(s);
    if (!t || t->handshaking || !len) return NULL;
    const unsigned char *p;
    unsigned int n;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (!n || n >= len) return NULL;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}
