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
/* Takeover (core/takeover_*.c): the listening sockets (up to max), to hand them to a new process. */
int sl_listen_fds(int *fds, bool *is_unix, int max);
/* Use listening sockets handed over by the previous process instead of opening them. */
void sl_listen_adopt(const int *fds, const bool *is_unix, int n);
/* Stop (freeze) or restart polling the listening sockets on w, without refusing connections: they
 * wait in the backlog for whichever process polls next. */
void sl_listen_freeze(sl_worker *w, bool freeze);
/* Called every tick: resume accepting after a pause for lack of descriptors. */
void sl_listen_tick(sl_worker *w, int64_t now);

#endif
