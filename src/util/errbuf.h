/* errbuf.h - filling a caller's error buffer (char *err, size_t errlen), the way every layer reports
 * why something failed. */
#ifndef SL_ERRBUF_H
#define SL_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>

/* Format into err (always NUL-terminated, truncated to errlen); err NULL or errlen 0: nothing. */
void sl_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void sl_verrf(char *err, size_t errlen, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

#endif
