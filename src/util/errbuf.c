/* errbuf.c - filling a caller's error buffer (see errbuf.h). */
#include "util/errbuf.h"

#include <stdio.h>

void sl_verrf(char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (!err || errlen == 0) return;
    vsnprintf(err, errlen, fmt, ap);
}

void sl_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_verrf(err, errlen, fmt, ap);
    va_end(ap);
}
