/* takeover_adopt.c - the new process's workers adopt what the takeover received: queued per worker
 * by the main thread before the workers start, each worker attaches its clients and servers on its
 * own thread (sl_takeover_adopt, before it polls anything), in the same slots so that cancel keys
 * still resolve; a connection that cannot go on here is told why (FATAL) and closed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/client.h"
#include "core/takeover.h"
#include "core/takeover_int.h"
#include "util/intern.h"

static tk_adopt *adopt_head[SL_MAX_WORKERS]; /* written before the workers start; each then its worker's */

void queue_adopt(int worker, tk_adopt *a)
{
    a->next = adopt_head[worker];
    adopt_head[worker] = a;
}

void sl_takeover_adopt(sl_worker *w)
{
    tk_adopt *list = adopt_head[w->id];
    adopt_head[w->id] = NULL;
    if (!list) return;
    /* same worker, same slot: the cancel key the client holds still names it */
    for (tk_adopt *a = list; a; a = a->next)
        if (a->c && a->old_worker == w->id) a->claimed = sl_worker_claim_slot(w, a->c->slot, a->c, a->c->gen);
    sl_worker_claim_slots_done(w);
    while (list) {
        tk_adopt *a = list;
        list = a->next;
        sl_server *s = a->s;
        if (s) {
            s->s.w = w;
            sl_list_insert_tail(&w->servers, &s->node);
            if (!sl_server_attach(s, w)) {
                if (a->c) a->c->server = NULL;
                s->client = NULL;
                sl_server_close(s, SL_CLOSE_ATTACH_FAILED);
                if (a->c && !a->reject_state[0]) {
                    snprintf(a->reject_state, sizeof(a->reject_state), "57P01");
                    snprintf(a->reject, sizeof(a->reject), "pgsluice was restarted (takeover) and this session's "
                                                           "server connection could not be carried over");
                }
            } else if (!a->c) {
                sl_stream_set_poll(&s->s, UV_READABLE);
            }
        }
        sl_client *c = a->c;
        if (c) {
            if (!a->claimed) {
                c->slot = sl_worker_add_slot(w, c, c->gen);
                if (c->slot == UINT32_MAX) {
                    snprintf(a->reject_state, sizeof(a->reject_state), "53300");
                    snprintf(a->reject, sizeof(a->reject), "out of connection slots");
                }
            }
            c->s.w = w;
            if (a->npending && !a->reject_state[0] && sl_stream_make_room(&c->s, a->npending, a->npending + w->buf_size)) {
                memcpy(c->s.buf + c->s.end, a->pending, a->npending);
                c->s.end += a->npending;
            }
            if (c->slot == UINT32_MAX) {
                /* cannot even be named on this worker: hang up */
                if (c->server) {
                    c->server->client = NULL;
                    sl_server_close(c->server, SL_CLOSE_OUT_OF_MEMORY);
                    c->server = NULL;
                }
                if (c->logged_in) sl_route_client_logout(c->route);
                if (c->route) sl_route_put(c->route);
                close(c->s.fd);
                sl_params_clear(&c->params);
                sl_stmt_map_clear(&c->ps_map);
                sl_intern_release(c->user);
                sl_intern_release(c->dbname);
                sl_stream_free_buf(&c->s);
                free(c);
            } else if (a->reject_state[0]) {
                if (c->server) {
                    c->server->client = NULL;
                    sl_server_close(c->server, SL_CLOSE_TAKEOVER);
                    c->server = NULL;
                }
                c->state = SL_CL_IDLE;
                sl_client_adopt(w, c, a->reject_state, a->reject);
            } else {
                sl_client_adopt(w, c, NULL, NULL);
            }
        }
        free(a->pending);
        free(a);
    }
}
