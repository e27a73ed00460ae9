/* http.h - pgsluice's built-in monitoring endpoint (libmicrohttpd in its own threads):
 * /, /health, /live, /ready, /metrics, /pools, /stats. See docs/MONITORING.md. */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include <stdbool.h>

#include "config/config.h"

/* Start serving on http_listen_addr:http_port (no-op when http_port = 0). false if it cannot listen
 * (logged as a warning: the pooler goes on without it). */
bool sl_http_start(const sl_config *cfg);
void sl_http_stop(void);

#endif
