/* proxy_ps.h - statement-name rewriting and the expected-response queue (see proxy_ps.c). */
#ifndef SL_PROXY_PS_H
#define SL_PROXY_PS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/conn.h"

typedef enum {
    SL_PS_FORWARD,   /* pass the message on unchanged (it may have been recorded) */
    SL_PS_CONSUMED,  /* handled: rewritten into the peer's out queue, or dropped */
    SL_PS_NEED_MORE, /* the whole message is needed; read more */
    SL_PS_MALFORMED, /* protocol violation or out of memory */
} sl_ps_result;

/* Called at each client message header while linked with s->ps_active. */
sl_ps_result sl_ps_client_msg(sl_client *c, sl_server *s, char type, uint32_t len);
/* After a client scan: answers pgsluice synthesizes that are due now (e.g. ParseComplete + Flush). */
void sl_ps_after_client_scan(sl_server *s, sl_client *c);
/* Called at each server message header while linked with s->ps_active. */
sl_ps_result sl_ps_server_msg(sl_server *s, sl_client *c, char type, uint32_t len);
bool sl_ps_idle(const sl_server *s);
/* Rewriting applies to this client's links (transaction/statement mode, feature on)? */
struct sl_pool;
bool sl_ps_enabled_for(const sl_client *c, const struct sl_pool *p);
/* Between transactions: answer Parse of a known statement, Close, Flush and Sync without a server. */
sl_ps_result sl_ps_client_local(sl_client *c, char type, uint32_t len);
void sl_ps_reset_link(sl_server *s);
/* The server is closing: free its cache and queue. */
void sl_ps_server_gone(sl_server *s);

#endif
