/* textbuf.h - a growable text buffer for HTTP bodies, with JSON and Prometheus escaping. */
#ifndef SL_TEXTBUF_H
#define SL_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>

/* A failed allocation sets `failed` and later appends do nothing; check once at the end. */
typedef struct sl_tb {
    char *data;
    size_t len, cap;
    bool failed;
} sl_tb;

void sl_tb_init(sl_tb *b);
void sl_tb_free(sl_tb *b);
/* Hand the bytes over (caller frees with free()); the buffer is left empty. */
char *sl_tb_take(sl_tb *b, size_t *len);

void sl_tb_put(sl_tb *b, const char *s);
void sl_tb_printf(sl_tb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal, quotes included ("null" for NULL); bytes that are not UTF-8 become U+FFFD. */
void sl_tb_json_str(sl_tb *b, const char *s);
/* A Prometheus label value without the quotes: \ " and newline escaped; bytes not UTF-8 become U+FFFD. */
void sl_tb_prom_label(sl_tb *b, const char *s);
/* A number for JSON or Prometheus: finite values with up to 9 significant digits. */
void sl_tb_num(sl_tb *b, double v);

#endif
