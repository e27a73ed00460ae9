/* server.h - a connection to PostgreSQL: connect and log in (server.c), the pooler's own queries
 * (server_setup.c), and changing hands: back to the pool, to a waiting client, to another worker
 * (handoff.c). */
#ifndef SL_SERVER_H
#define SL_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/conn.h"
#include "net/worker.h"

/* server.c */
/* Open a connection to backend b on worker w (already counted in its route by the launch decision). */
/* gen != 0: a replication route's server, for client (slot, gen) of this worker only. */
sl_server *sl_server_launch(sl_worker *w, sl_backend *b, uint32_t slot, uint32_t gen);
/* A database's LISTEN fan-out connection (listen_fanout.c) to backend b, owned by w: not counted in
 * its route; logged in like any server, then handed to the fan-out instead of the pool. */
struct sl_fanout_db;
void sl_server_launch_listener(sl_worker *w, sl_backend *b, struct sl_fanout_db *fanout);
void sl_server_close(sl_server *s, sl_close_reason why);
/* The stream's close callback: frees the object (unless a detach message still names it). */
void sl_server_free(sl_stream *st);
bool sl_server_attach(sl_server *s, sl_worker *w);
void sl_server_tick(sl_server *s, int64_t now);

/* server_setup.c: pooler queries. s->setup names the first step to try; false when none is
 * needed (the server goes on at once). When they finish, the server goes on to its client, or back
 * to the pool. */
bool sl_server_begin_setup(sl_server *s);
void sl_server_setup_input(sl_server *s);
/* The connection ended (or failed) while a pooler query ran: closed, and the client it was for (none
 * of whose bytes went to it yet) waits for another server instead of getting an error. */
void sl_server_setup_lost(sl_server *s, sl_close_reason why);

/* handoff.c */
/* The server (on the caller's worker, not linked) is free: to a waiting client, the idle list, or
 * closed, as its route decides. */
void sl_server_release(sl_server *s);
/* Owner side of a steal or a handover: detach our idle server and send it to worker `to`. */
void sl_server_detach_for(sl_server *s, int to, uint32_t slot, uint32_t gen);
/* Arrival side: attach here and give it to the client (slot, gen), or release it. */
void sl_server_arrived(sl_worker *w, sl_server *s, uint32_t slot, uint32_t gen);

#endif
