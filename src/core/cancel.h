/* cancel.h - CancelRequest: a client's cancel key names its worker and slot; the cancel goes to the
 * server that client is linked to at that moment, on a new connection, and to no other. */
#ifndef SL_CANCEL_H
#define SL_CANCEL_H

#include <stdint.h>

#include "net/worker.h"

struct sl_server;

/* A cancel request arrived on w: run it on the worker its pid names. */
void sl_cancel_request(sl_worker *w, uint32_t pid, uint32_t key);
/* On the named worker: forward it to the linked server, if any. */
void sl_cancel_forward(sl_worker *w, uint32_t pid, uint32_t key);
/* The server is closing: its cancel connections go too. */
void sl_cancel_server_gone(struct sl_server *s);
/* Cancels older than cancel_wait_timeout are given up (from the server's tick). */
void sl_cancel_tick(struct sl_server *s, int64_t now, int64_t timeout);

#endif
