/* handoff.c - a server changing hands: back to its route's idle list, to the client that waited
 * longest (on this worker, or detached and posted to the client's worker), or closed, as the route
 * decides; and the two ends of a move between workers. */
#include "core/client.h"
#include "core/cancel.h"
#include "core/dispatch.h"
#include "core/server.h"
#include "util/log.h"

/* The poll handle is closed: post the server to its new worker. */
static void handoff_detached(sl_stream *st)
{
    sl_server *s = (sl_server *)st;
    sl_msg m = {.type = SL_MSG_HANDOFF_SERVER, .obj = s, .slot = s->handoff_slot, .gen = s->handoff_gen};
    sl_worker_post(&sl_workers[s->handoff_to], &m);
}

static void move_to(sl_server *s, int to, uint32_t slot, uint32_t gen)
{
    sl_server_set_state(s, SL_SV_MOVING);
    s->handoff_to = to;
    s->handoff_slot = slot;
    s->handoff_gen = gen;
    sl_stream_detach(&s->s, handoff_detached);
}

void sl_server_release(sl_server *s)
{
    sl_worker *w = s->s.w;
    s->client = NULL;
    s->release_pending = false;
    if (!sl_list_empty(&s->cancels)) {
        /* a cancel for its last client's query is still on its way: nobody else gets it before the
         * postmaster has dealt with it (cancel.c releases it then) */
        s->release_after_cancel = true;
        sl_server_set_state(s, SL_SV_ACTIVE);
        return;
    }
    sl_release r;
    sl_route_release(&s->pc, &s->pend, &r);
    switch (r.kind) {
    case SL_REL_IDLE:
        sl_server_set_state(s, SL_SV_IDLE);
        sl_stream_set_poll(&s->s, UV_READABLE);
        break;
    case SL_REL_CLOSE: sl_server_close(s, SL_CLOSE_SERVER_RETIRED); break;
    case SL_REL_HANDOFF:
        if (r.worker == w->id) {
            sl_client *c = sl_worker_find_slot(w, r.slot, r.gen);
            sl_server_set_state(s, SL_SV_ACTIVE);
            if (c) sl_client_got_server(c, s);
            else sl_server_release(s); /* it left meanwhile */
        } else {
            move_to(s, r.worker, r.slot, r.gen);
        }
        break;
    }
}

void sl_server_detach_for(sl_server *s, int to, uint32_t slot, uint32_t gen)
{
    if (s->state == SL_SV_CLOSING) {
        /* it died meanwhile (closed while promised, so sl_server_close kept the object for this
         * message): the client must ask again */
        sl_msg m = {.type = SL_MSG_WAKE_CLIENT, .slot = slot, .gen = gen};
        sl_worker_post(&sl_workers[to], &m);
        s->await_detach = false;
        if (s->free_pending) sl_server_free(&s->s);
        return;
    }
    sl_route_promise_kept(&s->pc);
    move_to(s, to, slot, gen);
}

void sl_server_arrived(sl_worker *w, sl_server *s, uint32_t slot, uint32_t gen)
{
    s->s.w = w;
    if (!sl_server_attach(s, w)) {
        sl_server_close(s, SL_CLOSE_ATTACH_FAILED);
        return;
    }
    sl_server_set_state(s, SL_SV_ACTIVE);
    sl_client *c = sl_worker_find_slot(w, slot, gen);
    if (!c || (c->state != SL_CL_WAITING && c->state != SL_CL_WELCOME && c->state != SL_CL_AUTH)) {
        sl_server_release(s);
        return;
    }
    sl_client_got_server(c, s);
}
