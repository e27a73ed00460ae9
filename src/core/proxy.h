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
/* The client's server goes while answers may be on their way to it (it died, or a timeout closes
 * it): the answers already marked for the client move to the client's own queue, so that they
 * arrive before pgsluice's error, and a message the server sent only part of is dropped if none of
 * it reached the client. false when some of it did: an error after it would be read as the rest of
 * that message, so the client must go without one (sl_proxy_close_cut). */
bool sl_proxy_keep_answers(sl_client *c, sl_server *s);
/* Close a client whose answer was cut in the middle of a message: no error after it, nothing more
 * sent; the log says why. */
void sl_proxy_close_cut(sl_client *c, sl_close_reason why);
/* The server died under its client: tell the client (whole: sl_proxy_keep_answers said an error
 * may follow) and let it go. */
void sl_proxy_server_lost_client(sl_client *c, bool whole);

#endif
