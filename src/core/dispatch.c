/* dispatch.c - what a worker does: at start it polls the listening sockets; it handles the
 * messages other workers send it; every 100 ms it checks its clients' and servers' timeouts (and
 * worker 0 runs the pools' maintenance); and it carries out what the pools decided. */
#include "core/dispatch.h"

#include <sys/resource.h>

#include "core/auth_external.h"
#include "core/cancel.h"
#include "core/client.h"
#include "core/console.h"
#include "core/lifecycle.h"
#include "core/listen_fanout.h"
#include "core/server.h"
#include "core/takeover.h"
#include "net/listener.h"
#include "util/time.h"

void sl_carry_out_all(sl_pool_actions *act)
{
    sl_worker *self = sl_worker_self();
    for (int i = 0; i < act->nlaunch; i++) {
        sl_launch *l = &act->launch[i];
        if (self && self->id == l->worker) sl_server_launch(self, l->backend, l->slot, l->gen);
        else {
            sl_msg m = {.type = SL_MSG_LAUNCH, .obj = l->backend, .slot = l->slot, .gen = l->gen};
            sl_worker_post(&sl_workers[l->worker], &m);
        }
    }
    for (int i = 0; i < act->nwake; i++) {
        sl_msg m = {.type = SL_MSG_WAKE_CLIENT, .slot = act->wake[i].slot, .gen = act->wake[i].gen};
        sl_worker_post(&sl_workers[act->wake[i].worker], &m);
    }
    for (int i = 0; i < act->nhand; i++) {
        sl_handover *h = &act->hand[i];
        sl_msg m = {.type = SL_MSG_DETACH_SERVER, .obj = sl_container_of(h->conn, sl_server, pc), .to = h->to_worker,
                    .slot = h->slot, .gen = h->gen};
        sl_worker_post(&sl_workers[h->conn->worker], &m);
    }
    sl_pool_actions_free(act);
}

void sl_broadcast_state(void)
{
    for (int i = 0; i < sl_nworkers; i++) {
        sl_msg m = {.type = SL_MSG_STATE};
        sl_worker_post(&sl_workers[i], &m);
    }
}

/* Clients left waiting while the process was paused ask again. */
static void wake_waiting(sl_worker *w)
{
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (c->state == SL_CL_WAITING && !__atomic_load_n(&c->wt.queued, __ATOMIC_RELAXED)) sl_client_wake(c);
    }
}

/* The run state or the config changed: take the current snapshot, stop accepting when shutting
 * down, serve waiting clients when running again. */
static void state_changed(sl_worker *w)
{
    sl_worker_set_config(w, sl_config_acquire());
    sl_run_state rs = sl_run_state_get();
    /* WAIT_FOR_CLIENTS keeps the Unix socket open, as PgBouncer does: the console stays reachable */
    if (rs >= SL_RUN_SHUTDOWN_GRACEFUL) sl_listen_stop(w, rs == SL_RUN_SHUTDOWN_WAIT_CLIENTS);
    if (rs == SL_RUN_NORMAL) wake_waiting(w);
    if (rs == SL_RUN_SHUTDOWN_NOW) uv_stop(&w->loop);
}

static void on_message(sl_worker *w, sl_msg *m)
{
    switch ((sl_core_msg)m->type) {
    case SL_MSG_HANDOFF_SERVER: sl_server_arrived(w, m->obj, m->slot, m->gen); break;
    case SL_MSG_DETACH_SERVER: sl_server_detach_for(m->obj, m->to, m->slot, m->gen); break;
    case SL_MSG_CANCEL: sl_cancel_forward(w, m->a, m->b); break;
    case SL_MSG_WAKE_CLIENT: {
        sl_client *c = sl_worker_find_slot(w, m->slot, m->gen);
        /* a client frozen for a takeover is not touched (a failed wake would write to it): it is
         * woken when it thaws, or the new process serves it */
        if (c && !c->s.frozen) sl_client_wake(c);
        break;
    }
    case SL_MSG_LAUNCH: sl_server_launch(w, m->obj, m->slot, m->gen); break;
    case SL_MSG_STATE: state_changed(w); break;
    case SL_MSG_FANOUT_KICK:
    case SL_MSG_FANOUT_DONE:
    case SL_MSG_FANOUT_NOTIFY: sl_fanout_message(w, m); break;
    }
}

static void on_started(sl_worker *w)
{
    sl_takeover_adopt(w); /* connections handed over by the previous process, before anything else */
    sl_listen_start(w, sl_client_accept);
}

static void refresh_cpu(sl_worker *w)
{
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0) return;
    uint64_t us = (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
                  (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
    __atomic_store_n(&w->stats.cpu_us, us, __ATOMIC_RELAXED);
}

static void on_tick(sl_worker *w)
{
    int64_t now = sl_now_us();
    sl_listen_tick(w, now);
    refresh_cpu(w);
    sl_takeover_tick(w, now);
    if (sl_takeover_frozen(w)) { /* handing its connections over: nothing may touch them */
        sl_console_tick(w, now);
        return;
    }
    sl_auth_external_tick(w);
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &w->clients) sl_client_tick(sl_container_of(n, sl_client, node), now);
    sl_fanout_tick(w, now);
    sl_list_for_each_safe(n, t, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (s->state == SL_SV_ACTIVE && s->pend.query_count) sl_route_flush_stats(&s->pc, &s->pend);
        sl_server_tick(s, now);
    }
    if (w->id == 0) {
        sl_pool_actions act;
        sl_pool_actions_init(&act);
        sl_pools_tick(w->cfg, now, &act);
        sl_carry_out(&act);
    }
    sl_console_tick(w, now);
}

const sl_worker_ops sl_core_worker_ops = {
    .started = on_started,
    .message = on_message,
    .tick = on_tick,
};
