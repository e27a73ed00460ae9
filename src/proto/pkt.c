/* pkt.c - building and reading PostgreSQL protocol messages on byte buffers (no I/O). */
#include "proto/pkt.h"

#include "proto/msgtype.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl_pb_init(sl_pktbuf *pb) { memset(pb, 0, sizeof(*pb)); }

void sl_pb_free(sl_pktbuf *pb)
{
    free(pb->data);
    memset(pb, 0, sizeof(*pb));
}

void sl_pb_reset(sl_pktbuf *pb)
{
    pb->len = 0;
    pb->msg_start = 0;
    pb->failed = false;
}

bool sl_pb_reserve(sl_pktbuf *pb, size_t extra)
{
    if (pb->failed) return false;
    if (pb->len + extra <= pb->cap) return true;
    size_t ncap = pb->cap ? pb->cap : 256;
    while (ncap < pb->len + extra) ncap *= 2;
    uint8_t *n = realloc(pb->data, ncap);
    if (!n) {
        pb->failed = true;
        return false;
    }
    pb->data = n;
    pb->cap = ncap;
    return true;
}

void sl_pb_bytes(sl_pktbuf *pb, const void *p, size_t n)
{
    if (!sl_pb_reserve(pb, n)) return;
    if (n) memcpy(pb->data + pb->len, p, n);
    pb->len += n;
}

void sl_pb_u8(sl_pktbuf *pb, uint8_t v) { sl_pb_bytes(pb, &v, 1); }

void sl_pb_u16(sl_pktbuf *pb, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    sl_pb_bytes(pb, b, 2);
}

void sl_pb_u32(sl_pktbuf *pb, uint32_t v)
{
    uint8_t b[4];
    sl_put_u32(b, v);
    sl_pb_bytes(pb, b, 4);
}

void sl_pb_str(sl_pktbuf *pb, const char *s) { sl_pb_bytes(pb, s, strlen(s) + 1); }

void sl_pb_begin(sl_pktbuf *pb, char type)
{
    if (type) sl_pb_u8(pb, (uint8_t)type);
    pb->msg_start = pb->len;
    sl_pb_u32(pb, 0);
}

void sl_pb_end(sl_pktbuf *pb)
{
    if (pb->failed) return;
    sl_put_u32(pb->data + pb->msg_start, (uint32_t)(pb->len - pb->msg_start));
}

void sl_pb_error_v(sl_pktbuf *pb, const char *severity, const char *sqlstate, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    sl_pb_begin(pb, SL_BE_ERROR);
    sl_pb_u8(pb, SL_ERRF_SEVERITY);
    sl_pb_str(pb, severity);
    sl_pb_u8(pb, SL_ERRF_SEVERITY_NONLOCALIZED);
    sl_pb_str(pb, severity);
    sl_pb_u8(pb, SL_ERRF_CODE);
    sl_pb_str(pb, sqlstate);
    sl_pb_u8(pb, SL_ERRF_MESSAGE);
    sl_pb_str(pb, msg);
    sl_pb_u8(pb, 0);
    sl_pb_end(pb);
}

void sl_pb_error(sl_pktbuf *pb, bool fatal, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_pb_error_v(pb, fatal ? "FATAL" : "ERROR", sqlstate, fmt, ap);
    va_end(ap);
}

void sl_pb_notice_detail(sl_pktbuf *pb, const char *message, const char *detail)
{
    sl_pb_begin(pb, SL_BE_NOTICE);
    sl_pb_u8(pb, SL_ERRF_SEVERITY);
    sl_pb_str(pb, "NOTICE");
    sl_pb_u8(pb, SL_ERRF_SEVERITY_NONLOCALIZED);
    sl_pb_str(pb, "NOTICE");
    sl_pb_u8(pb, SL_ERRF_CODE);
    sl_pb_str(pb, "00000");
    sl_pb_u8(pb, SL_ERRF_MESSAGE);
    sl_pb_str(pb, message);
    if (detail) {
        sl_pb_u8(pb, SL_ERRF_DETAIL);
        sl_pb_str(pb, detail);
    }
    sl_pb_u8(pb, 0);
    sl_pb_end(pb);
}

/* The small fixed-shape messages of a login are written in one piece: room for the whole message
 * first, then the bytes (a login sends a dozen of them; byte-by-byte appends cost more than the
 * rest of building them). Same result as sl_pb_begin ... sl_pb_end. */
static uint8_t *msg_room(sl_pktbuf *pb, char type, size_t body)
{
    if (!sl_pb_reserve(pb, 5 + body)) return NULL;
    uint8_t *p = pb->data + pb->len;
    p[0] = (uint8_t)type;
    sl_put_u32(p + 1, (uint32_t)(4 + body));
    pb->msg_start = pb->len + 1;
    pb->len += 5 + body;
    return p + 5;
}

void sl_pb_ready(sl_pktbuf *pb, char status)
{
    uint8_t *p = msg_room(pb, SL_BE_READY, 1);
    if (p) p[0] = (uint8_t)status;
}

void sl_pb_auth(sl_pktbuf *pb, uint32_t code, const void *data, size_t len)
{
    uint8_t *p = msg_room(pb, SL_BE_AUTH, 4 + len);
    if (!p) return;
    sl_put_u32(p, code);
    if (len) memcpy(p + 4, data, len);
}

void sl_pb_param_statuses(sl_pktbuf *pb, const char *const *names, const char *const *values, int n)
{
    enum { MAX = 32 }; /* lengths kept per batch; a longer list goes in batches of MAX */
    for (int first = 0; first < n; first += MAX) {
        int m = n - first < MAX ? n - first : MAX;
        const char *const *nm = names + first, *const *val = values + first;
        size_t total = 0, nl[MAX], vl[MAX];
        for (int i = 0; i < m; i++) {
            if (!val[i]) continue;
            nl[i] = strlen(nm[i]) + 1;
            vl[i] = strlen(val[i]) + 1;
            total += 5 + nl[i] + vl[i];
        }
        if (!total) continue;
        if (!sl_pb_reserve(pb, total)) return;
        uint8_t *p = pb->data + pb->len;
        for (int i = 0; i < m; i++) {
            if (!val[i]) continue;
            p[0] = (uint8_t)SL_BE_PARAM_STATUS;
            sl_put_u32(p + 1, (uint32_t)(4 + nl[i] + vl[i]));
            memcpy(p + 5, nm[i], nl[i]);
            memcpy(p + 5 + nl[i], val[i], vl[i]);
            p += 5 + nl[i] + vl[i];
        }
        pb->len += total;
    }
}

void sl_pb_param_status(sl_pktbuf *pb, const char *name, const char *value)
{
    sl_pb_param_statuses(pb, &name, &value, 1);
}

void sl_pb_backend_key(sl_pktbuf *pb, uint32_t pid, uint32_t key)
{
    uint8_t *p = msg_room(pb, SL_BE_BACKEND_KEY, 8);
    if (!p) return;
    sl_put_u32(p, pid);
    sl_put_u32(p + 4, key);
}

void sl_pb_query(sl_pktbuf *pb, const char *sql)
{
    sl_pb_begin(pb, SL_FE_QUERY);
    sl_pb_str(pb, sql);
    sl_pb_end(pb);
}

void sl_pb_terminate(sl_pktbuf *pb)
{
    sl_pb_begin(pb, SL_FE_TERMINATE);
    sl_pb_end(pb);
}

void sl_pb_row_description(sl_pktbuf *pb, int ncols, const char *const *names, const uint32_t *type_oids)
{
    sl_pb_begin(pb, SL_BE_ROW_DESCRIPTION);
    sl_pb_u16(pb, (uint16_t)ncols);
    for (int i = 0; i < ncols; i++) {
        uint32_t oid = type_oids ? type_oids[i] : 25;
        sl_pb_str(pb, names[i]);
        sl_pb_u32(pb, 0);  /* table oid */
        sl_pb_u16(pb, 0);  /* column number */
        sl_pb_u32(pb, oid);
        sl_pb_u16(pb, (uint16_t)(oid == 20 ? 8 : oid == 23 ? 4 : 0xffff)); /* typlen */
        sl_pb_u32(pb, 0xffffffffu); /* typmod */
        sl_pb_u16(pb, 0);  /* text format */
    }
    sl_pb_end(pb);
}

void sl_pb_data_row(sl_pktbuf *pb, int ncols, const char *const *values)
{
    sl_pb_begin(pb, SL_BE_DATA_ROW);
    sl_pb_u16(pb, (uint16_t)ncols);
    for (int i = 0; i < ncols; i++) {
        if (!values[i]) {
            sl_pb_u32(pb, 0xffffffffu);
            continue;
        }
        size_t n = strlen(values[i]);
        sl_pb_u32(pb, (uint32_t)n);
        sl_pb_bytes(pb, values[i], n);
    }
    sl_pb_end(pb);
}

void sl_pb_command_complete(sl_pktbuf *pb, const char *tag)
{
    sl_pb_begin(pb, SL_BE_COMMAND_COMPLETE);
    sl_pb_str(pb, tag);
    sl_pb_end(pb);
}

/* ---- reader ---- */
const uint8_t *sl_rd_bytes(sl_rd *r, size_t n)
{
    if (r->failed || sl_rd_left(r) < n) {
        r->failed = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

uint8_t sl_rd_u8(sl_rd *r)
{
    const uint8_t *p = sl_rd_bytes(r, 1);
    return p ? p[0] : 0;
}

uint16_t sl_rd_u16(sl_rd *r)
{
    const uint8_t *p = sl_rd_bytes(r, 2);
    return p ? sl_get_u16(p) : 0;
}

uint32_t sl_rd_u32(sl_rd *r)
{
    const uint8_t *p = sl_rd_bytes(r, 4);
    return p ? sl_get_u32(p) : 0;
}

const char *sl_rd_str(sl_rd *r)
{
    if (r->failed) return NULL;
    const uint8_t *nul = memchr(r->p, 0, sl_rd_left(r));
    if (!nul) {
        r->failed = true;
        return NULL;
    }
    const char *s = (const char *)r->p;
    r->p = nul + 1;
    return s;
}

/* ---- startup packet ---- */
const char *sl_startup_status_str(sl_startup_status s)
{
    switch (s) {
    case SL_STARTUP_OK: return "ok";
    case SL_STARTUP_BAD_LENGTH: return "invalid length of startup packet";
    case SL_STARTUP_BAD_VERSION: return "unsupported frontend protocol";
    case SL_STARTUP_MALFORMED: return "malformed startup packet";
    case SL_STARTUP_TOO_MANY_PARAMS: return "too many startup parameters";
    }
    return "?";
}

sl_startup_status sl_startup_parse(const uint8_t *buf, size_t len, sl_startup *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 8 || len > SL_STARTUP_MAX || sl_get_u32(buf) != len) return SL_STARTUP_BAD_LENGTH;
    sl_rd r;
    sl_rd_init(&r, buf + 4, len - 4);
    out->code = sl_rd_u32(&r);
    if (out->code == SL_CANCEL_CODE) {
        if (len != 16) return SL_STARTUP_BAD_LENGTH;
        out->cancel_pid = sl_rd_u32(&r);
        out->cancel_key = sl_rd_u32(&r);
        return SL_STARTUP_OK;
    }
    if (out->code == SL_SSL_CODE || out->code == SL_GSSENC_CODE) return len == 8 ? SL_STARTUP_OK : SL_STARTUP_BAD_LENGTH;
    if ((out->code >> 16) != 3) return SL_STARTUP_BAD_VERSION;
    for (;;) {
        const char *name = sl_rd_str(&r);
        if (!name) return SL_STARTUP_MALFORMED;
        if (!*name) break;
        const char *value = sl_rd_str(&r);
        if (!value) return SL_STARTUP_MALFORMED;
        if (out->nparams >= SL_STARTUP_MAX_PARAMS) return SL_STARTUP_TOO_MANY_PARAMS;
        out->names[out->nparams] = name;
        out->values[out->nparams] = value;
        out->nparams++;
    }
    return sl_rd_left(&r) == 0 ? SL_STARTUP_OK : SL_STARTUP_MALFORMED;
}

const char *sl_startup_get(const sl_startup *s, const char *name)
{
    for (int i = 0; i < s->nparams; i++)
        if (strcmp(s->names[i], name) == 0) return s->values[i];
    return NULL;
}

const char *sl_error_field(const uint8_t *body, size_t len, char field)
{
    sl_rd r;
    sl_rd_init(&r, body, len);
    while (sl_rd_left(&r) > 0) {
        uint8_t f = sl_rd_u8(&r);
        if (f == 0) break;
        const char *v = sl_rd_str(&r);
        if (!v) break;
        if (f == (uint8_t)field) return v;
    }
    return NULL;
}
