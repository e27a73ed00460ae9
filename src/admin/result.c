/* result.c - the admin console's result sets: built as text rows, sent as simple-query messages
 * or as extended-protocol answers in the result formats a driver asked for (binary included). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_int.h"

void adm_result_init(adm_result *r)
{
    memset(r, 0, sizeof(*r));
    sl_pb_init(&r->rows);
    sl_pb_init(&r->notices);
}

void adm_result_reset(adm_result *r)
{
    sl_pb_free(&r->rows);
    sl_pb_free(&r->notices);
    adm_result_init(r);
}

void adm_result_free(adm_result *r) { adm_result_reset(r); }

void adm_cols(adm_result *r, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int n = (int)strlen(types);
    for (int i = 0; i < n && r->ncols < ADM_MAX_COLS; i++) {
        r->types[r->ncols] = types[i];
        r->names[r->ncols++] = va_arg(ap, const char *);
    }
    va_end(ap);
}

/* "2024-05-01 12:00:00 UTC" style, in local time like PgBouncer. */
static const char *format_time(int64_t wall_us, char *buf, size_t len)
{
    time_t t = (time_t)(wall_us / 1000000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S %Z", &tm);
    return buf;
}

static void put_cell(sl_pktbuf *pb, const char *v)
{
    if (!v) {
        sl_pb_u32(pb, 0xffffffffu);
        return;
    }
    size_t n = strlen(v);
    sl_pb_u32(pb, (uint32_t)n);
    sl_pb_bytes(pb, v, n);
}

void adm_row(adm_result *r, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int n = (int)strlen(types);
    sl_pb_begin(&r->rows, 'D');
    sl_pb_u16(&r->rows, (uint16_t)n);
    for (int i = 0; i < n; i++) {
        char tmp[64];
        const char *v = tmp;
        switch (types[i]) {
        case 'i': snprintf(tmp, sizeof(tmp), "%d", va_arg(ap, int)); break;
        case 'q': snprintf(tmp, sizeof(tmp), "%" PRId64, va_arg(ap, int64_t)); break;
        case 'N': snprintf(tmp, sizeof(tmp), "%" PRIu64, va_arg(ap, uint64_t)); break;
        case 'T': {
            int64_t t = va_arg(ap, int64_t);
            v = t ? format_time(t, tmp, sizeof(tmp)) : NULL;
            break;
        }
        default: v = va_arg(ap, const char *); break;
        }
        put_cell(&r->rows, v);
    }
    sl_pb_end(&r->rows);
    va_end(ap);
    r->nrows++;
}

void adm_tag(adm_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->tag, sizeof(r->tag), fmt, ap);
    va_end(ap);
}

void adm_error(adm_result *r, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
    snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", sqlstate);
    r->failed = true;
}

void adm_notice(adm_result *r, const char *message, const char *detail)
{
    sl_pb_notice_detail(&r->notices, message, detail);
}

void adm_result_take_rows(adm_result *r, adm_result *part)
{
    sl_pb_bytes(&r->rows, part->rows.data, part->rows.len);
    r->nrows += part->nrows;
    if (part->rows.failed) r->rows.failed = true;
}

void adm_send_error(sl_pktbuf *out, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_pb_error_v(out, "ERROR", sqlstate, fmt, ap);
    va_end(ap);
}

static uint32_t type_oid(char t)
{
    switch (t) {
    case 'i': return 23;
    case 'q': return 20;
    case 'N': return 1700;
    default: return 25;
    }
}

static int16_t fmt_of(const int16_t *fmts, int nfmts, int col)
{
    if (nfmts <= 0) return 0;
    return nfmts == 1 ? fmts[0] : (col < nfmts ? fmts[col] : 0);
}

void adm_send_rowdesc(sl_pktbuf *out, const adm_result *r, const int16_t *fmts, int nfmts)
{
    if (r->ncols == 0) {
        sl_pb_begin(out, 'n');
        sl_pb_end(out);
        return;
    }
    sl_pb_begin(out, 'T');
    sl_pb_u16(out, (uint16_t)r->ncols);
    for (int i = 0; i < r->ncols; i++) {
        uint32_t oid = type_oid(r->types[i]);
        sl_pb_str(out, r->names[i]);
        sl_pb_u32(out, 0);
        sl_pb_u16(out, 0);
        sl_pb_u32(out, oid);
        sl_pb_u16(out, (uint16_t)(oid == 20 ? 8 : oid == 23 ? 4 : 0xffff));
        sl_pb_u32(out, 0xffffffffu);
        sl_pb_u16(out, (uint16_t)fmt_of(fmts, nfmts, i));
    }
    sl_pb_end(out);
}

static void send_complete(sl_pktbuf *out, const adm_result *r)
{
    sl_pb_bytes(out, r->notices.data, r->notices.len);
    if (r->failed) {
        adm_send_error(out, r->sqlstate, "%s", r->message);
        return;
    }
}

void adm_send_simple(sl_pktbuf *out, const adm_result *r)
{
    send_complete(out, r);
    if (r->failed) return;
    if (r->ncols) adm_send_rowdesc(out, r, NULL, 0);
    sl_pb_bytes(out, r->rows.data, r->rows.len);
    sl_pb_command_complete(out, r->tag);
}

/* PostgreSQL's binary numeric for a decimal integer: base-10000 digits, weight, sign, scale 0. */
static void put_numeric(sl_pktbuf *out, const char *txt, uint32_t len)
{
    bool neg = len > 0 && txt[0] == '-';
    const char *d = txt + (neg ? 1 : 0);
    uint32_t n = len - (neg ? 1 : 0);
    uint16_t groups[8];
    int ng = 0;
    for (int64_t end = n; end > 0 && ng < 8; end -= 4) {
        int64_t start = end - 4 < 0 ? 0 : end - 4;
        uint16_t g = 0;
        for (int64_t k = start; k < end; k++) g = (uint16_t)(g * 10 + (uint16_t)(d[k] - '0'));
        groups[ng++] = g; /* least significant first */
    }
    while (ng > 0 && groups[ng - 1] == 0) ng--;
    int weight = ng - 1, skip = 0;
    while (skip < ng && groups[skip] == 0) skip++; /* trailing zero groups are implied by the weight */
    int ndigits = ng - skip;
    sl_pb_u32(out, (uint32_t)(8 + 2 * ndigits));
    sl_pb_u16(out, (uint16_t)ndigits);
    sl_pb_u16(out, (uint16_t)(ndigits ? weight : 0));
    sl_pb_u16(out, neg && ndigits ? 0x4000 : 0);
    sl_pb_u16(out, 0);
    for (int i = ng - 1; i >= skip; i--) sl_pb_u16(out, groups[i]);
}

static void put_binary(sl_pktbuf *out, char type, const char *txt, uint32_t len)
{
    char num[32];
    if (type == 'i' || type == 'q') {
        snprintf(num, sizeof(num), "%.*s", (int)(len < 31 ? len : 31), txt);
        long long v = strtoll(num, NULL, 10);
        if (type == 'i') {
            sl_pb_u32(out, 4);
            sl_pb_u32(out, (uint32_t)(int32_t)v);
        } else {
            sl_pb_u32(out, 8);
            sl_pb_u32(out, (uint32_t)((uint64_t)v >> 32));
            sl_pb_u32(out, (uint32_t)(uint64_t)v);
        }
    } else if (type == 'N') {
        put_numeric(out, txt, len);
    } else {
        sl_pb_u32(out, len);
        sl_pb_bytes(out, txt, len);
    }
}

/* Re-encode one text DataRow (body at p) with the requested formats. */
static void put_row(sl_pktbuf *out, const adm_result *r, const uint8_t *p, const int16_t *fmts, int nfmts)
{
    uint16_t n = sl_get_u16(p);
    p += 2;
    sl_pb_begin(out, 'D');
    sl_pb_u16(out, n);
    for (int i = 0; i < n; i++) {
        uint32_t len = sl_get_u32(p);
        p += 4;
        if (len == 0xffffffffu) {
            sl_pb_u32(out, len);
            continue;
        }
        if (fmt_of(fmts, nfmts, i) == 1 && i < r->ncols) {
            put_binary(out, r->types[i], (const char *)p, len);
        } else {
            sl_pb_u32(out, len);
            sl_pb_bytes(out, p, len);
        }
        p += len;
    }
    sl_pb_end(out);
}

static bool any_binary(const int16_t *fmts, int nfmts)
{
    for (int i = 0; i < nfmts; i++)
        if (fmts[i] == 1) return true;
    return false;
}

void adm_send_execute(sl_pktbuf *out, const adm_result *r, const int16_t *fmts, int nfmts)
{
    send_complete(out, r);
    if (r->failed) return;
    if (!any_binary(fmts, nfmts)) {
        sl_pb_bytes(out, r->rows.data, r->rows.len);
    } else {
        for (size_t off = 0; off + 5 <= r->rows.len;) {
            uint32_t len = sl_get_u32(r->rows.data + off + 1);
            put_row(out, r, r->rows.data + off + 5, fmts, nfmts);
            off += 1 + len;
        }
    }
    sl_pb_command_complete(out, r->tag);
}
