/* takeover_freeze.c - the old process's work on each worker, in rounds (sl_workers_round) on the
 * worker's own thread: is every connection between transactions; if so, freeze them all (polls
 * stopped) and write their state into the worker's part of the message; thaw them when the takeover
 * is tried again or called off; once the new process confirmed, close what was not handed over. */
#include <stdio.h>

#include "core/listen_fanout.h"
#include "core/session_state.h"
#include "core/takeover.h"
#include "core/takeover_int.h"
#include "net/listener.h"
#include "net/tls.h"
#include "proto/msgtype.h"
#include "util/time.h"

static bool w_frozen[SL_MAX_WORKERS]; /* each written and read by its own worker only */

bool sl_takeover_frozen(const sl_worker *w) { return w_frozen[w->id]; }

static bool stream_quiet(const sl_stream *s)
{
    return !sl_stream_out_pending(s) && s->msg_left == 0 && s->pos == s->parse;
}

static bool server_quiet(const sl_server *s)
{
    return s->xact == SL_XACT_IDLE && s->outstanding == 0 && !s->in_batch && !s->release_pending && s->exp_n == 0 &&
           !s->ps_skip_till_sync && s->setup == SL_SETUP_NONE && sl_list_empty(&s->cancels) &&
           !s->release_after_cancel && stream_quiet(&s->s) && s->s.end == s->s.pos;
}

/* Is this client between transactions, so that it can be frozen? */
static bool client_ready(sl_client *c, char *why, size_t len)
{
    /* a replication connection (walsender) is never between transactions while it streams: it is not
     * waited for, frozen with the rest and closed on success (it reconnects to the new process) */
    if (c->replication && c->state != SL_CL_LOGIN && c->state != SL_CL_AUTH) return true;
    switch (c->state) {
    case SL_CL_IDLE:
    case SL_CL_WAITING:
    case SL_CL_WELCOME:
        if (c->server || (c->state != SL_CL_IDLE && !__atomic_load_n(&c->wt.queued, __ATOMIC_RELAXED))) {
            snprintf(why, len, "client C-0x%llx is being given a server", (unsigned long long)c->id);
            return false;
        }
        if (!stream_quiet(&c->s) || c->deferred_begin) {
            snprintf(why, len, "client C-0x%llx is in the middle of a message", (unsigned long long)c->id);
            return false;
        }
        return true;
    case SL_CL_ACTIVE:
        if (!c->server || c->server->state != SL_SV_ACTIVE || !server_quiet(c->server) || !stream_quiet(&c->s) ||
            c->s.end != c->s.pos) {
            snprintf(why, len, "client C-0x%llx is in a transaction", (unsigned long long)c->id);
            return false;
        }
        return true;
    default:
        snprintf(why, len, "client C-0x%llx is logging in", (unsigned long long)c->id);
        return false;
    }
}

void freeze_each(sl_worker *w, void *arg)
{
    const tk_freeze_req *q = arg;
    tk_part *p = &q->parts[w->id];
    tb_free(&p->buf);
    p->nrec = 0;
    p->ok = false;
    p->busy = 0;
    p->why[0] = '\0';
    sl_listen_freeze(w, true); /* stays frozen until the takeover ends */
    char why[160];
    sl_list *n, *t_;
    sl_list_for_each_safe(n, t_, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (c->admin) continue;
        if (!client_ready(c, why, sizeof(why))) {
            if (!p->busy++) snprintf(p->why, sizeof(p->why), "%s", why);
        }
    }
    sl_list_for_each_safe(n, t_, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (s->client) continue; /* with its client */
        if (sl_server_route(s)->replication || s->fanout) continue; /* not handed over: closed on success */
        if (s->state != SL_SV_IDLE || !server_quiet(s)) {
            if (!p->busy++)
                snprintf(p->why, sizeof(p->why), "server S-0x%llx is %s", (unsigned long long)s->id,
                         sl_server_state_name(s->state));
        }
    }
    if (p->busy) return;
    /* everything here is between transactions: freeze and write it down */
    int64_t now = sl_now_us();
    w_frozen[w->id] = true;
    sl_list_for_each_safe(n, t_, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (c->admin && c != q->console) continue; /* consoles go on until the end */
        sl_stream_freeze(&c->s);
        if (c == q->console) {
            c->s.handed = true; /* the sender thread's from now on */
            continue;
        }
        /* a client pinned to its server by session state (transaction mode, pin_session_state) is not
         * handed over either: that state is not carried, and its server must not be reused as if clean */
        if (sl_stream_is_tls(&c->s) || (c->server && sl_stream_is_tls(&c->server->s)) || c->replication ||
            sl_sess_pinned(c) || sl_fanout_client_subscribed(c)) {
            if (c->server) sl_stream_freeze(&c->server->s);
            continue; /* closed if the takeover succeeds */
        }
        tb_u8(&p->buf, 'C');
        put_client(&p->buf, c, now);
        p->nrec++;
        c->s.handed = true;
        if (c->server) {
            sl_stream_freeze(&c->server->s);
            c->server->s.handed = true;
        }
    }
    sl_list_for_each_safe(n, t_, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (s->client) continue;
        sl_stream_freeze(&s->s);
        if (sl_stream_is_tls(&s->s) || sl_server_route(s)->replication || s->fanout) continue;
        tb_u8(&p->buf, 'S');
        put_server(&p->buf, s, now);
        p->nrec++;
        s->s.handed = true;
    }
    p->ok = !p->buf.oom;
}

/* Undo a freeze on w: connections polled again; listen too when the takeover is over. */
static void thaw_worker(sl_worker *w, bool listen)
{
    sl_list *n, *t_;
    sl_list_for_each_safe(n, t_, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (!c->s.frozen) continue;
        sl_stream_thaw(&c->s);
        /* a wake it missed while frozen (dispatch.c skips them) */
        if ((c->state == SL_CL_WAITING || c->state == SL_CL_WELCOME) && !c->server &&
            !__atomic_load_n(&c->wt.queued, __ATOMIC_RELAXED))
            sl_client_wake(c);
    }
    sl_list_for_each_safe(n, t_, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (s->s.frozen) sl_stream_thaw(&s->s);
    }
    w_frozen[w->id] = false;
    if (listen) sl_listen_freeze(w, false);
}

void thaw_each(sl_worker *w, void *arg)
{
    (void)arg;
    thaw_worker(w, false);
}

/* The takeover is off: everything thawed, listening again, held transactions served. */
void resume_each(sl_worker *w, void *arg)
{
    (void)arg;
    thaw_worker(w, true);
}

/* Confirmed: what stayed behind (TLS connections, consoles) is closed with a word, then exit. */
void finish_each(sl_worker *w, void *arg)
{
    (void)arg;
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (c->s.handed) continue;
        if (c->s.frozen) {
            c->s.frozen = false;
            if (c->server) c->server->s.frozen = false;
        }
        sl_client_error(c, true, "57P01",
                        "pgsluice was restarted (takeover) and this connection could not be handed over%s; "
                        "please reconnect",
                        c->admin               ? " (console sessions are not)"
                        : c->replication       ? " (replication connections are not)"
                        : sl_sess_pinned(c)    ? " (session state pinned to its server is not: advisory locks, "
                                                 "temporary tables, WITH HOLD cursors, LISTEN, SQL PREPARE)"
                        : sl_fanout_client_subscribed(c) ? " (LISTEN subscriptions are not)"
                                               : " (TLS sessions are not)");
    }
    sl_list_for_each_safe(n, t, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (s->s.handed) continue;
        s->s.frozen = false;
        sl_server_close(s, SL_CLOSE_TAKEOVER);
    }
}
