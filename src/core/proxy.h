/* proxy.h - the hot path: forwarding between a linked client and server (proxy.c). */
#ifndef SL_PROXY_H
#define SL_PROXY_H

#include "core/conn.h"

/* Link a client (WAITING) with a server it was given; pooler queries run first if needed. */
void sl_proxy_link(sl_client *c, sl_server *s);
/* The server is ready for the client's bytes: forward what is buffered and listen to both. */
void sl_proxy_start(sl_client *c, sl_server *s);
void sl_proxy_client_input(sl_client *c);
void sl_proxy_server_input(sl_server *s);
void sl_proxy_client_writable(sl_client *c);
void sl_proxy_server_writable(sl_server *s);
void sl_proxy_update_poll(sl_client *c, sl_server *s);
/* The client leaves its server (end of transaction, or client gone in a clean state). */
void sl_proxy_unlink_release(sl_server *s);
/* A pooler query between a linked client's transactions finished (server_setup.c): the server goes
 * back to the pool if nothing keeps the client on it any more, else forwarding goes on. */
void sl_proxy_resume(sl_server *s);
void sl_proxy_client_input_buffered(sl_client *c);
/* The link can no longer be undone: a server's answer (or one pgsluice gives in its place) reaches
 * the client, or the server may have read the request. Until then a server that dies with the
 * client's request unread is replaced without the client noticing (proxy.c); what pgsluice changed
 * in the client's prepared-statement names for it is undone then (sl_ps_undo_request). */
static inline void sl_proxy_commit_link(sl_server *s, sl_client *c)
{
    s->resend_ok = false;
    sl_stream_unkeep(&c->s);
    c->resends = 0;
}
/* The server died under its client: tell the client and let it go. */
void sl_proxy_server_lost_client(sl_client *c);

#endif
