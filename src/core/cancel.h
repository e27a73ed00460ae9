/* cancel.h - CancelRequest: a client's cancel key names its worker and slot; the cancel goes to the
 * server that client is linked to at that moment, on a new connection, and to no other. */
#ifndef SL_CANCEL_H
#define SL_CANCEL_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "net/worker.h"

struct sl_server;

/* A cancel request arrived on w: run it on the worker its pid names. */
void sl_cancel_request(sl_worker *w, uint32_t pid, uint32_t key);
/* The secret half of a client's BackendKeyData: random, or with peer_id set, the hop count, the peer
 * id and 16 random bits (so that another process sharing the port can forward the cancel here). */
uint32_t sl_cancel_key_new(const sl_config *cfg);
bool sl_cancel_key_matches(const sl_config *cfg, uint32_t mine, uint32_t given);
/* On the named worker: forward it to the linked server, if any. */
void sl_cancel_forward(sl_worker *w, uint32_t pid, uint32_t key);
/* The server is closing: its cancel connections go too. */
void sl_cancel_server_gone(struct sl_server *s);
/* Cancels older than cancel_wait_timeout are given up (from the server's tick). */
void sl_cancel_tick(struct sl_server *s, int64_t now, int64_t timeout);

#endif
