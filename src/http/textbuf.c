/* textbuf.c - growable text buffer with JSON and Prometheus escaping (HTTP bodies). */
#include "http/textbuf.h"

#include <stdarg.h>
#include <stdint.h>
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

/* Length of the valid UTF-8 sequence at p (no overlongs, surrogates or values above U+10FFFF), or
 * 0. Names reach the pages from the config file and from clients' startup packets (a database
 * reached through the "*" entry), so any bytes may arrive; JSON and Prometheus text must be UTF-8. */
static size_t utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80) return 1;
    size_t n;
    uint32_t cp;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) n = 2, cp = p[0] & 0x1fu;
    else if (p[0] >= 0xe0 && p[0] <= 0xef) n = 3, cp = p[0] & 0x0fu;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4) n = 4, cp = p[0] & 0x07u;
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0; /* also stops at the NUL */
        cp = (cp << 6) | (p[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

#define REPLACEMENT_CHAR "\xef\xbf\xbd" /* U+FFFD, for each byte that is not part of valid UTF-8 */

void sl_tb_json_str(sl_tb *b, const char *s)
{
    if (!s) {
        sl_tb_put(b, "null");
        return;
    }
    put_n(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            put_n(b, esc, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            sl_tb_printf(b, "\\u%04x", *p);
        } else if (n == 0) {
            put_n(b, REPLACEMENT_CHAR, 3);
            n = 1;
        } else {
            put_n(b, (const char *)p, n);
        }
        p += n;
    }
    put_n(b, "\"", 1);
}

void sl_tb_prom_label(sl_tb *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
        size_t n = utf8_len(p);
        if (*p == '\\') put_n(b, "\\\\", 2);
        else if (*p == '"') put_n(b, "\\\"", 2);
        else if (*p == '\n') put_n(b, "\\n", 2);
        else if (n == 0) put_n(b, REPLACEMENT_CHAR, 3), n = 1;
        else put_n(b, (const char *)p, n);
        p += n;
    }
}

void sl_tb_num(sl_tb *b, double v)
{
    if (v != v || v > 1e300 || v < -1e300) v = 0; /* NaN and infinities are not valid JSON */
    if (v > -1e15 && v < 1e15 && v == (double)(long long)v) sl_tb_printf(b, "%lld", (long long)v);
    else sl_tb_printf(b, "%.9g", v);
}
