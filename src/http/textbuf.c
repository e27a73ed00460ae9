/* textbuf.c - growable text buffer with JSON and Prometheus escaping (HTTP bodies). */
#include "http/textbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl_tb_init(sl_tb *b) { memset(b, 0, sizeof(*b)); }

void sl_tb_free(sl_tb *b)
{
    free(b->data);
    sl_tb_init(b);
}

char *sl_tb_take(sl_tb *b, size_t *len)
{
    char *d = b->data;
    *len = b->len;
    sl_tb_init(b);
    return d;
}

static bool reserve(sl_tb *b, size_t more)
{
    if (b->failed) return false;
    if (b->len + more + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->failed = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

static void put_n(sl_tb *b, const char *s, size_t n)
{
    if (!reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sl_tb_put(sl_tb *b, const char *s) { put_n(b, s, strlen(s)); }

void sl_tb_printf(sl_tb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        put_n(b, small, (size_t)n);
        return;
    }
    if (!reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the well-formed UTF-8 sequence at p (1..4), or 0 when it is not one (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf) return 0;
    return n;
}

/* Client-chosen names may be any bytes: what is not UTF-8 becomes U+FFFD, so JSON and the
 * Prometheus exposition format (both UTF-8 only) stay valid. Returns the bytes consumed. */
static size_t put_utf8(sl_tb *b, const unsigned char *p)
{
    size_t n = utf8_len(p);
    if (n) {
        put_n(b, (const char *)p, n);
        return n;
    }
    put_n(b, "\xef\xbf\xbd", 3);
    return 1;
}

void sl_tb_json_str(sl_tb *b, const char *s)
{
    if (!s) {
        sl_tb_put(b, "null");
        return;
    }
    put_n(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            put_n(b, esc, 2);
            p++;
        } else if (*p < 0x20 || *p == 0x7f) {
            sl_tb_printf(b, "\\u%04x", *p);
            p++;
        } else {
            p += put_utf8(b, p);
        }
    }
    put_n(b, "\"", 1);
}

void sl_tb_prom_label(sl_tb *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
        if (*p == '\\') put_n(b, "\\\\", 2);
        else if (*p == '"') put_n(b, "\\\"", 2);
        else if (*p == '\n') put_n(b, "\\n", 2);
        else {
            p += put_utf8(b, p);
            continue;
        }
        p++;
    }
}

void sl_tb_num(sl_tb *b, double v)
{
    if (v != v || v > 1e300 || v < -1e300) v = 0; /* NaN and infinities are not valid JSON */
    if (v > -1e15 && v < 1e15 && v == (double)(long long)v) sl_tb_printf(b, "%lld", (long long)v);
    else sl_tb_printf(b, "%.9g", v);
}
