/* listener.h - the listening sockets (TCP addresses and the Unix socket), opened once on the main
 * thread and polled by every worker; an accepted connection goes to the worker's accept callback. */
#ifndef SL_LISTENER_H
#define SL_LISTENER_H

#include <stdbool.h>

#include "config/config.h"
#include "net/worker.h"

typedef void (*sl_accept_cb)(sl_worker *w, int fd, const char *addr, bool is_unix);

/* Open listen_addr:listen_port and the Unix socket (main thread, before the workers start).
 * false (logged) when one cannot be opened. */
bool sl_listen_open(const sl_config *cfg);
/* Start polling the listening sockets on w (its own thread). */
void sl_listen_start(sl_worker *w, sl_accept_cb cb);
/* Stop accepting on w (shutdown). When the last worker stops, pending and new TCP connections are
 * refused instead of waiting in the backlog. keep_unix: the Unix socket keeps accepting (so the
 * admin console stays reachable while the process drains). */
void sl_listen_stop(sl_worker *w, bool keep_unix);
/* Called every tick: resume accepting after a pause for lack of descriptors. */
void sl_listen_tick(sl_worker *w, int64_t now);

#endif
