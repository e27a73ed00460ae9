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

void sl_tb_json_str(sl_tb *b, const char *s)
{
    if (!s) {
        sl_tb_put(b, "null");
        return;
    }
    put_n(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            put_n(b, esc, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            sl_tb_printf(b, "\\u%04x", *p);
        } else {
            put_n(b, (const char *)p, 1);
        }
    }
    put_n(b, "\"", 1);
}

void sl_tb_prom_label(sl_tb *b, const char *s)
{
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '\\') put_n(b, "\\\\", 2);
        else if (*p == '"') put_n(b, "\\\"", 2);
        else if (*p == '\n') put_n(b, "\\n", 2);
        else put_n(b, p, 1);
    }
}

void sl_tb_num(sl_tb *b, double v)
{
    if (v != v || v > 1e300 || v < -1e300) v = 0; /* NaN and infinities are not valid JSON */
    if (v > -1e15 && v < 1e15 && v == (double)(long long)v) sl_tb_printf(b, "%lld", (long long)v);
    else sl_tb_printf(b, "%.9g", v);
}
