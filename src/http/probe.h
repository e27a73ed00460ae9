/* probe.h - is a backend accepting connections? A connect() with a short timeout, results cached. */
#ifndef SL_HTTP_PROBE_H
#define SL_HTTP_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#define SL_PROBE_TIMEOUT_MS 500
#define SL_PROBE_CACHE_US 1000000

/* host NULL/"" or starting with '/': unix socket (default dir /var/run/postgresql), as the
 * pooler connects. On failure err says why. Thread-safe. */
bool sl_probe_backend(const char *host, int port, char *err, size_t errlen);

#endif
