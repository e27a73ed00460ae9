/* listen_fanout.h - LISTEN/NOTIFY in transaction pooling without a server per listener
 * (listen_fanout.c): a LISTEN / UNLISTEN sent alone between transactions is answered by pgsluice,
 * one listener connection per database LISTENs on the union of the clients' channels, and each
 * NotificationResponse it receives goes to the subscribed clients on their own workers, written
 * between their transactions. */
#ifndef SL_LISTEN_FANOUT_H
#define SL_LISTEN_FANOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/conn.h"
#include "net/worker.h"

typedef enum {
    SL_FANOUT_NO,        /* not for the fan-out: handled as any other query */
    SL_FANOUT_NEED_MORE, /* the whole message is needed first */
    SL_FANOUT_DONE,      /* answered (and consumed) */
    SL_FANOUT_WAIT,      /* consumed; the answer comes once the listener has run it: stop reading */
} sl_fanout_result;

/* A Query from a client between transactions (state IDLE, not linked): is it LISTEN ch, UNLISTEN ch
 * or UNLISTEN * alone, served by the fan-out? */
sl_fanout_result sl_fanout_client_query(sl_client *c, uint32_t len);
/* The client is going: all its channels are given up. */
void sl_fanout_client_gone(sl_client *c);
/* It has channels served by the fan-out (takeover closes such clients). */
bool sl_fanout_client_subscribed(const sl_client *c);
/* Its LISTEN waits for the listener: nothing else it sent is looked at meanwhile. */
bool sl_fanout_client_waiting(const sl_client *c);
/* A channel (NULL: all) given up by a statement that went to its server (UNLISTEN or DISCARD ALL
 * committed there, session_state.c), or moved there (a LISTEN on its pinned server). */
void sl_fanout_client_unlisten(sl_client *c, const char *chan);
/* What it sent next goes to a server: an unnamed statement parsed by the fan-out is gone there. */
void sl_fanout_client_forwarding(sl_client *c);
/* It may be at a message boundary now: write the notifications waiting for it if so. */
void sl_fanout_client_flush(sl_client *c);

/* Worker messages (dispatch.c) and the tick of every worker. */
void sl_fanout_message(sl_worker *w, sl_msg *m);
void sl_fanout_tick(sl_worker *w, int64_t now);

/* The listener connection (server.c): created (before it connects), logged in, readable or
 * writable once logged in, closed (for any reason). */
void sl_fanout_server_created(sl_server *s);
void sl_fanout_server_ready(sl_server *s);
void sl_fanout_server_event(sl_server *s, int events);
void sl_fanout_server_closed(sl_server *s);

/* /metrics: channels listened on and listener connections now, clients subscribed, notifications
 * delivered and clients dropped for a full queue since start. */
typedef struct sl_fanout_stats {
    int64_t channels, listeners, subscriptions;
    uint64_t delivered, dropped_clients, reconnects;
} sl_fanout_stats;
void sl_fanout_get_stats(sl_fanout_stats *out);

#endif
