/* route.c - the decisions of one route: which idle server a client gets (its own worker's first,
 * else one stolen from another worker), who waits and in which order, when to open a new server
 * (pool_size, reserve, max_db_connections, max_user_connections), where a released server goes,
 * and what a failed server login means for the clients waiting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/pool.h"
#include "pool/pool_int.h"
#include "util/time.h"

/* After a failed login, new servers for waiting clients are tried again after this long (clients
 * arriving meanwhile fail at once for server_login_retry, as PgBouncer does). */
#define WAITER_LOGIN_RETRY_US 1000000

/* ---- actions ---- */

void sl_pool_actions_free_lists(sl_pool_actions *a)
{
    free(a->wake);
    free(a->hand);
    a->wake = NULL;
    a->hand = NULL;
    a->wake_cap = a->hand_cap = 0;
}

void sl_pool_add_wake(sl_pool_actions *a, int worker, uint32_t slot, uint32_t gen)
{
    if (a->nwake == a->wake_cap) {
        int cap = a->wake_cap ? a->wake_cap * 2 : 8;
        sl_wakeup *n = realloc(a->wake, (size_t)cap * sizeof(*n));
        if (!n) return; /* that client finds out at its query_wait_timeout */
        a->wake = n;
        a->wake_cap = cap;
    }
    a->wake[a->nwake++] = (sl_wakeup){.worker = worker, .slot = slot, .gen = gen};
}

bool sl_pool_add_handover(sl_pool_actions *a, sl_pool_conn *c, int to, uint32_t slot, uint32_t gen)
{
    if (a->nhand == a->hand_cap) {
        int cap = a->hand_cap ? a->hand_cap * 2 : 8;
        sl_handover *n = realloc(a->hand, (size_t)cap * sizeof(*n));
        if (!n) return false;
        a->hand = n;
        a->hand_cap = cap;
    }
    a->hand[a->nhand++] = (sl_handover){.conn = c, .to_worker = to, .slot = slot, .gen = gen};
    c->promised = true; /* under its route's lock, as every caller holds it */
    return true;
}

/* ---- limits and backends ---- */

bool sl_route_held_locked(const sl_route *r)
{
    return r->paused || __atomic_load_n(&sl_pool_hold, __ATOMIC_RELAXED);
}

bool sl_route_can_open_locked(sl_route *r, bool reserve)
{
    int limit = r->pool_size + (reserve ? r->reserve_size : 0);
    if (r->n_servers >= limit) return false;
    if (r->max_db_conns > 0 && __atomic_load_n(&r->db_group->n_servers, __ATOMIC_RELAXED) >= r->max_db_conns)
        return false;
    if (r->max_user_conns > 0 && __atomic_load_n(&r->user_group->n_servers, __ATOMIC_RELAXED) >= r->max_user_conns)
        return false;
    return true;
}

bool sl_route_add_launch_locked(sl_backend *b, int worker, sl_pool_actions *act)
{
    if (act->nlaunch == SL_POOL_MAX_LAUNCH) return false;
    sl_route *r = b->route;
    b->n_servers++;
    b->n_connecting++;
    r->n_servers++;
    r->unused_since = 0;
    __atomic_add_fetch(&r->db_group->n_servers, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&r->user_group->n_servers, 1, __ATOMIC_RELAXED);
    b->last_connect_attempt = sl_now_fast();
    act->launch[act->nlaunch++] = (sl_launch){.backend = b, .worker = worker};
    return true;
}

void sl_route_launch_for(sl_pool_actions *act, const sl_pool_waiter *w)
{
    act->launch[act->nlaunch - 1].slot = w->slot;
    act->launch[act->nlaunch - 1].gen = w->gen;
}

static bool login_failing(const sl_backend *b, int64_t now, int64_t holdoff)
{
    return b->last_login_failure && now - b->last_login_failure < holdoff;
}

sl_backend *sl_route_pick_backend_locked(sl_route *r, sl_intent intent, int64_t now, int64_t holdoff,
                                         sl_backend **failing)
{
    if (r->routed) {
        if (failing) *failing = NULL;
        return sl_route_pick_routed_locked(r, intent, now, holdoff);
    }
    int n = r->nbackends;
    if (failing) *failing = n ? r->backends[0] : NULL;
    if (n == 0) return NULL;
    /* round-robin: start after the host used last; disable: stay on the current host. Either way a
     * host whose logins are failing is skipped for the next one (PgBouncer would keep trying it). */
    int start = r->next_backend % n;
    for (int k = 0; k < n; k++) {
        int i = (start + k) % n;
        if (login_failing(r->backends[i], now, holdoff)) continue;
        r->next_backend = r->load_balance == SL_LB_ROUND_ROBIN ? i + 1 : i;
        return r->backends[i];
    }
    return NULL;
}

/* Open servers for waiting clients (those beyond the servers already connecting) while the limits
 * allow, each on the worker of the client it is for. */
static void kick_locked(sl_route *r, sl_pool_actions *act, bool reserve)
{
    if (r->routed) {
        sl_route_kick_routed_locked(r, act, reserve);
        return;
    }
    if (sl_route_held_locked(r) || r->disabled) return;
    int64_t now = sl_now_fast();
    int skip = 0;
    for (int i = 0; i < r->nbackends; i++) skip += r->backends[i]->n_connecting;
    for (sl_list *n = r->waiting.next; n != &r->waiting; n = n->next) {
        sl_pool_waiter *w = sl_container_of(n, sl_pool_waiter, node);
        if (skip > 0) {
            skip--;
            continue;
        }
        if (!sl_route_can_open_locked(r, reserve)) break;
        sl_backend *b = sl_route_pick_backend_locked(r, w->intent, now, WAITER_LOGIN_RETRY_US, NULL);
        if (!b || !sl_route_add_launch_locked(b, w->worker, act)) break;
        if (r->replication) sl_route_launch_for(act, w);
    }
}

void sl_route_kick(sl_route *r, sl_pool_actions *act)
{
    sl_mutex_lock(&r->lock);
    kick_locked(r, act, false);
    sl_mutex_unlock(&r->lock);
}

/* ---- acquire ---- */

static sl_pool_conn *pop_idle_locked(sl_backend *b, int worker)
{
    sl_list *n = sl_list_pop_head(&b->idle[worker]);
    if (!n) return NULL;
    b->n_idle--;
    return sl_container_of(n, sl_pool_conn, idle_node);
}

/* An idle server for a client of worker `me`: its own worker's first, then any other's. */
static inline sl_pool_conn *find_idle_locked(sl_route *r, int me, bool *stolen)
{
    for (int i = 0; i < r->nbackends; i++) {
        sl_backend *b = r->backends[i];
        if (!b->n_idle) continue;
        sl_pool_conn *c = pop_idle_locked(b, me);
        if (c) {
            *stolen = false;
            return c;
        }
        for (int k = 1; k < sl_pool_nworkers; k++) {
            c = pop_idle_locked(b, (me + k) % sl_pool_nworkers);
            if (c) {
                *stolen = true;
                return c;
            }
        }
    }
    return NULL;
}

static sl_acquire_kind fail(sl_acquire *out, const char *sqlstate, const char *fmt, const char *arg)
{
    out->kind = SL_ACQ_FAIL;
    snprintf(out->sqlstate, sizeof(out->sqlstate), "%s", sqlstate);
    snprintf(out->err, sizeof(out->err), fmt, arg);
    return SL_ACQ_FAIL;
}

sl_acquire_kind sl_route_acquire(sl_route *r, sl_pool_waiter *w, const sl_config *cfg, sl_acquire *out,
                                 sl_pool_actions *act)
{
    sl_mutex_lock(&r->lock);
    if (r->disabled) {
        sl_mutex_unlock(&r->lock);
        return fail(out, "57P03", "database \"%s\" is disabled", r->db_name);
    }
    if (r->routed) {
        sl_acquire_kind k = sl_route_acquire_routed_locked(r, w, cfg, out, act);
        sl_mutex_unlock(&r->lock);
        return k;
    }
    if (sl_list_empty(&r->waiting) && !sl_route_held_locked(r)) {
        bool stolen = false;
        sl_pool_conn *c = find_idle_locked(r, w->worker, &stolen);
        if (c) {
            r->assignments++;
            if (stolen) c->promised = true;
            sl_mutex_unlock(&r->lock);
            out->conn = c;
            out->kind = stolen ? SL_ACQ_STEAL : SL_ACQ_GOT;
            return out->kind;
        }
    }
    int64_t now = sl_now_fast();
    out->conn = NULL;
    sl_backend *failing = NULL;
    bool none_usable = false;
    if (r->n_servers == 0 && !r->routed) {
        /* only a look: the launch below picks (and moves round-robin on) for real */
        int rotation = r->next_backend;
        none_usable = !sl_route_pick_backend_locked(r, w->intent, now, cfg->server_login_retry, &failing);
        r->next_backend = rotation;
    }
    if (none_usable && failing && (w->login || !failing->last_login_transient)) {
        /* every host's logins fail and nothing is open: say so now rather than after a wait */
        sl_acquire_kind k = fail(out, failing->last_login_sqlstate[0] ? failing->last_login_sqlstate : "08006",
                                 "server login has been failing, try again later (server_login_retry): %s",
                                 failing->last_login_error);
        sl_mutex_unlock(&r->lock);
        return k;
    }
    w->queued_at = now;
    __atomic_store_n(&w->queued, true, __ATOMIC_RELAXED);
    sl_list_insert_tail(&r->waiting, &w->node);
    r->n_waiting++;
    kick_locked(r, act, false);
    sl_mutex_unlock(&r->lock);
    out->kind = SL_ACQ_QUEUED;
    return SL_ACQ_QUEUED;
}

bool sl_route_unqueue(sl_route *r, sl_pool_waiter *w)
{
    sl_mutex_lock(&r->lock);
    bool was = __atomic_load_n(&w->queued, __ATOMIC_RELAXED);
    if (was) {
        sl_list_remove(&w->node);
        __atomic_store_n(&w->queued, false, __ATOMIC_RELAXED);
        r->n_waiting--;
    }
    sl_mutex_unlock(&r->lock);
    return was;
}

/* ---- release ---- */

/* How long the first waiter may be passed over in favour of a waiter on the releasing server's own
 * worker. Handing a server to another worker costs a detach, a message and an attach (and wakes that
 * loop); a waiter a few places back on this worker can take it at once. The bound keeps the queue
 * fair: the head waits at most this much (plus one transaction) longer than strict FIFO. */
#define LOCAL_WAITER_PREFERENCE_US 1000
#define LOCAL_WAITER_LOOKAHEAD 8

static sl_pool_waiter *pick_waiter_locked(sl_route *r, int worker, int64_t now)
{
    sl_pool_waiter *head = sl_container_of(r->waiting.next, sl_pool_waiter, node);
    if (sl_pool_nworkers == 1 || head->worker == worker || now - head->queued_at >= LOCAL_WAITER_PREFERENCE_US)
        return head;
    int k = 0;
    for (sl_list *n = head->node.next; n != &r->waiting && k < LOCAL_WAITER_LOOKAHEAD; n = n->next, k++) {
        sl_pool_waiter *w = sl_container_of(n, sl_pool_waiter, node);
        if (w->worker == worker) return w;
    }
    return head;
}

void sl_route_take_waiter_locked(sl_route *r, sl_pool_waiter *w)
{
    sl_list_remove(&w->node);
    __atomic_store_n(&w->queued, false, __ATOMIC_RELAXED);
    r->n_waiting--;
    r->assignments++;
}

bool sl_route_claim_waiter(sl_route *r, sl_pool_waiter *w)
{
    sl_mutex_lock(&r->lock);
    bool queued = __atomic_load_n(&w->queued, __ATOMIC_RELAXED);
    if (queued) sl_route_take_waiter_locked(r, w);
    sl_mutex_unlock(&r->lock);
    return queued;
}

void sl_route_release(sl_pool_conn *c, sl_pool_stats *pend, sl_release *out)
{
    sl_backend *b = c->backend;
    sl_route *r = b->route;
    int64_t now = sl_now_fast();
    sl_mutex_lock(&r->lock);
    if (pend) sl_stats_drain(&r->stats, pend);
    if (r->routed) {
        sl_route_release_routed_locked(c, now, out);
    } else if (sl_route_conn_retire_due(c, now) || r->disabled || r->replication) {
        out->kind = SL_REL_CLOSE;
    } else if (!sl_list_empty(&r->waiting) && !sl_route_held_locked(r)) {
        sl_pool_waiter *w = pick_waiter_locked(r, c->worker, now);
        sl_route_take_waiter_locked(r, w);
        out->kind = SL_REL_HANDOFF;
        out->worker = w->worker;
        out->slot = w->slot;
        out->gen = w->gen;
    } else {
        out->kind = SL_REL_IDLE;
        c->idle_since = now;
        /* most recently used first keeps the hot set small and lets old ones time out;
         * server_round_robin spreads the load over all of them instead */
        if (r->round_robin) sl_list_insert_tail(&b->idle[c->worker], &c->idle_node);
        else sl_list_insert_head(&b->idle[c->worker], &c->idle_node);
        b->n_idle++;
    }
    sl_mutex_unlock(&r->lock);
}

sl_idle_take sl_route_take_idle(sl_pool_conn *c)
{
    sl_backend *b = c->backend;
    sl_route *r = b->route;
    sl_mutex_lock(&r->lock);
    sl_idle_take t = SL_IDLE_NOT_PARKED;
    if (sl_list_linked(&c->idle_node)) {
        sl_list_remove(&c->idle_node);
        b->n_idle--;
        t = SL_IDLE_TAKEN;
    } else if (c->promised) {
        t = SL_IDLE_PROMISED;
    }
    sl_mutex_unlock(&r->lock);
    return t;
}

void sl_route_promise_kept(sl_pool_conn *c)
{
    sl_route *r = c->backend->route;
    sl_mutex_lock(&r->lock);
    c->promised = false;
    sl_mutex_unlock(&r->lock);
}

/* ---- servers coming and going ---- */

static void forget_locked(sl_pool_conn *c, sl_pool_stats *pend)
{
    sl_backend *b = c->backend;
    sl_route *r = b->route;
    if (c->gone) return;
    c->gone = true;
    if (sl_list_linked(&c->idle_node)) {
        sl_list_remove(&c->idle_node);
        b->n_idle--;
    }
    if (!c->logged_in) b->n_connecting--;
    if (c->testing) b->n_tested--;
    c->testing = false;
    b->n_servers--;
    r->n_servers--;
    if (pend) sl_stats_drain(&r->stats, pend);
    __atomic_sub_fetch(&r->db_group->n_servers, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&r->user_group->n_servers, 1, __ATOMIC_RELAXED);
    if (r->n_servers == 0 && __atomic_load_n(&r->refs, __ATOMIC_RELAXED) == 0) r->unused_since = sl_now_fast();
}

void sl_route_forget(sl_pool_conn *c, sl_pool_stats *pend, sl_pool_actions *act)
{
    sl_route *r = c->backend->route;
    sl_mutex_lock(&r->lock);
    forget_locked(c, pend);
    if (act) kick_locked(r, act, false);
    sl_mutex_unlock(&r->lock);
}

void sl_route_adopt_conn(sl_pool_conn *c, int worker, bool idle)
{
    sl_backend *b = c->backend;
    sl_route *r = b->route;
    int64_t now = sl_now_fast();
    sl_mutex_lock(&r->lock);
    b->n_servers++;
    r->n_servers++;
    r->unused_since = 0;
    __atomic_add_fetch(&r->db_group->n_servers, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&r->user_group->n_servers, 1, __ATOMIC_RELAXED);
    c->worker = worker;
    c->logged_in = true;
    c->target_gen = __atomic_load_n(&b->target_gen, __ATOMIC_RELAXED);
    if (idle) {
        c->idle_since = now;
        sl_list_insert_tail(&b->idle[worker], &c->idle_node);
        b->n_idle++;
    }
    sl_mutex_unlock(&r->lock);
}

void sl_route_launch_failed(sl_backend *b, sl_pool_actions *act)
{
    sl_pool_conn c = {.backend = b, .logged_in = false};
    sl_list_init(&c.idle_node);
    sl_route_forget(&c, NULL, act);
}

sl_backend *sl_route_listen_backend(sl_route *r)
{
    sl_backend *b = NULL;
    sl_mutex_lock(&r->lock);
    if (r->routed) b = r->primary >= 0 && r->primary < r->nbackends ? r->backends[r->primary] : NULL;
    else if (r->nbackends == 1) b = r->backends[0];
    if (b) {
        b->n_listeners++; /* a retired backend is freed only once this is back to 0 */
        __atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
        r->unused_since = 0;
    }
    sl_mutex_unlock(&r->lock);
    return b;
}

bool sl_route_listen_backend_current(sl_backend *b)
{
    sl_route *r = b->route;
    sl_mutex_lock(&r->lock);
    bool cur = !b->retired && (r->routed ? r->primary >= 0 && r->primary < r->nbackends && r->backends[r->primary] == b
                                         : r->nbackends == 1 && r->backends[0] == b);
    sl_mutex_unlock(&r->lock);
    return cur;
}

void sl_route_listen_backend_put(sl_backend *b)
{
    sl_route *r = b->route;
    sl_mutex_lock(&r->lock);
    b->n_listeners--;
    sl_mutex_unlock(&r->lock);
    sl_route_put(r);
}

void sl_route_logged_in(sl_pool_conn *c)
{
    sl_backend *b = c->backend;
    sl_route *r = b->route;
    sl_mutex_lock(&r->lock);
    if (!c->logged_in) b->n_connecting--;
    c->logged_in = true;
    r->stats.server_connects++;
    b->last_login_failure = 0;
    /* a server that says it is not what its host was taken for (in_hot_standby) serves nobody, and
     * its host is checked again at once */
    bool misfit = r->routed && !sl_route_conn_role_fits_locked(c);
    if (misfit) {
        __atomic_store_n(&c->retire, true, __ATOMIC_RELAXED);
        sl_host_request_check(b->hostrec); /* host lock: a leaf */
    }
    sl_mutex_unlock(&r->lock);
}

/* A failure that says the server is not up right now rather than that logging in cannot work:
 * cannot_connect_now (starting up, shutting down, in recovery), too many connections, admin shutdown,
 * and connection failures (refused, reset, closed during login). */
static bool transient_failure(const char *sqlstate)
{
    return !sqlstate || !strcmp(sqlstate, "57P03") || !strcmp(sqlstate, "53300") || !strcmp(sqlstate, "57P01") ||
           !strncmp(sqlstate, "08", 2);
}

void sl_route_login_failed(sl_backend *b, sl_pool_conn *c, sl_pool_stats *pend, const char *sqlstate,
                           const char *msg, sl_pool_actions *act)
{
    sl_route *r = b->route;
    sl_mutex_lock(&r->lock);
    if (c) forget_locked(c, pend);
    b->last_login_failure = sl_now_fast();
    r->stats.server_login_failures++;
    snprintf(b->last_login_error, sizeof(b->last_login_error), "%s", msg);
    snprintf(b->last_login_sqlstate, sizeof(b->last_login_sqlstate), "%s", sqlstate ? sqlstate : "08006");
    b->last_login_transient = transient_failure(sqlstate);
    /* with roles, a host that cannot be reached may be a failover under way: everyone keeps waiting
     * (query_wait_timeout) and the host is checked at once */
    bool wait_failover = r->routed && b->last_login_transient;
    if (wait_failover) sl_host_request_check(b->hostrec);
    /* no server left to wait for: the waiting clients ask again and learn why at once, instead of
     * waiting out query_wait_timeout; except that while the server is briefly gone (a restart),
     * clients already logged in keep waiting for it (as with PgBouncer), retried every second */
    if (r->n_servers == 0 && !wait_failover) {
        for (sl_list *n = r->waiting.next, *next; n != &r->waiting; n = next) {
            next = n->next;
            sl_pool_waiter *w = sl_container_of(n, sl_pool_waiter, node);
            if (b->last_login_transient && !w->login) continue;
            sl_list_remove(&w->node);
            __atomic_store_n(&w->queued, false, __ATOMIC_RELAXED);
            r->n_waiting--;
            sl_pool_add_wake(act, w->worker, w->slot, w->gen);
        }
    }
    kick_locked(r, act, false); /* another host of the database may serve them */
    sl_mutex_unlock(&r->lock);
}

bool sl_route_conn_surplus(sl_pool_conn *c, sl_pool_stats *pend)
{
    sl_route *r = c->backend->route;
    sl_mutex_lock(&r->lock);
    bool idle = !c->gone && sl_list_linked(&c->idle_node);
    bool surplus = idle && r->n_servers > r->pool_size && r->n_servers > r->min_pool_size && sl_list_empty(&r->waiting);
    if (!surplus && idle && r->evict_wanted > 0) { /* another pool of the group needs the room */
        r->evict_wanted--;
        surplus = true;
    }
    if (surplus) forget_locked(c, pend); /* counted off under the same lock: nobody closes one too many */
    sl_mutex_unlock(&r->lock);
    return surplus;
}

void sl_route_conn_testing(sl_pool_conn *c, bool testing)
{
    if (c->testing == testing) return;
    sl_backend *b = c->backend;
    sl_mutex_lock(&b->route->lock);
    c->testing = testing;
    b->n_tested += testing ? 1 : -1;
    sl_mutex_unlock(&b->route->lock);
}

void sl_route_flush_stats(sl_pool_conn *c, sl_pool_stats *pend)
{
    sl_route *r = c->backend->route;
    sl_mutex_lock(&r->lock);
    sl_stats_drain(&r->stats, pend);
    sl_mutex_unlock(&r->lock);
}

void sl_route_add_stats(sl_route *r, sl_pool_stats *st)
{
    sl_mutex_lock(&r->lock);
    sl_stats_drain(&r->stats, st);
    sl_mutex_unlock(&r->lock);
}

/* One more client in a group, unless that passes limit (-1: none). */
static bool group_admit(sl_limit_group *g, int limit)
{
    int n = __atomic_add_fetch(&g->n_clients, 1, __ATOMIC_RELAXED);
    if (limit < 0 || n <= limit) return true;
    __atomic_sub_fetch(&g->n_clients, 1, __ATOMIC_RELAXED);
    return false;
}

bool sl_route_client_login(sl_route *r, const char **which)
{
    sl_mutex_lock(&r->lock);
    int dbmax = r->max_db_client_conns, usermax = r->max_user_client_conns;
    sl_mutex_unlock(&r->lock);
    if (!group_admit(r->db_group, dbmax)) {
        *which = "max_db_client_connections";
        return false;
    }
    if (!group_admit(r->user_group, usermax)) {
        __atomic_sub_fetch(&r->db_group->n_clients, 1, __ATOMIC_RELAXED);
        *which = "max_user_client_connections";
        return false;
    }
    sl_mutex_lock(&r->lock);
    r->n_clients++;
    r->stats.client_logins++;
    sl_mutex_unlock(&r->lock);
    return true;
}

void sl_route_client_logout(sl_route *r)
{
    __atomic_sub_fetch(&r->db_group->n_clients, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&r->user_group->n_clients, 1, __ATOMIC_RELAXED);
    sl_mutex_lock(&r->lock);
    r->n_clients--;
    sl_mutex_unlock(&r->lock);
}


void sl_pool_totals_of(sl_pool_totals *t, const sl_pool_stats *st, uint64_t assignments, int64_t now)
{
    memset(t, 0, sizeof(*t));
    t->at = now;
    t->assignments = assignments;
    t->xact_count = st->xact_count;
    t->query_count = st->query_count;
    t->bytes_in = st->bytes_in;
    t->bytes_out = st->bytes_out;
    t->xact_time_us = st->xact_time_us;
    t->query_time_us = st->query_time_us;
    t->wait_time_us = st->wait_time_us;
    t->server_parses = st->prepares;
    t->client_parses = st->client_parses;
    t->binds = st->binds;
    t->client_logins = st->client_logins;
}

void sl_route_totals_locked(const sl_route *r, sl_pool_totals *t, int64_t now)
{
    sl_pool_totals_of(t, &r->stats, r->assignments, now);
}

/* Idle server for waiter w: one on w's worker if any, else any other. */
static sl_pool_conn *idle_for_locked(sl_route *r, const sl_pool_waiter *w)
{
    bool stolen;
    return find_idle_locked(r, w->worker, &stolen);
}

void sl_route_serve(sl_route *r, sl_pool_actions *act)
{
    sl_mutex_lock(&r->lock);
    if (r->routed) {
        sl_route_serve_routed_locked(r, act);
        sl_mutex_unlock(&r->lock);
        return;
    }
    while (!sl_route_held_locked(r) && !r->disabled && !sl_list_empty(&r->waiting)) {
        sl_pool_waiter *w = sl_container_of(r->waiting.next, sl_pool_waiter, node);
        sl_pool_conn *c = idle_for_locked(r, w);
        if (!c) break;
        if (!sl_pool_add_handover(act, c, w->worker, w->slot, w->gen)) {
            /* out of memory: put it back, the waiter gets it on a later release */
            sl_list_insert_head(&c->backend->idle[c->worker], &c->idle_node);
            c->backend->n_idle++;
            break;
        }
        sl_route_take_waiter_locked(r, w);
    }
    kick_locked(r, act, false);
    sl_mutex_unlock(&r->lock);
}

/* ---- what servers log in as ---- */

static void copy_str(char *dst, size_t len, const char *src) { snprintf(dst, len, "%s", src ? src : ""); }

void sl_route_login_target(sl_backend *b, char *user, size_t ulen, char *db, size_t dlen, char **password,
                           char **connect_query)
{
    sl_route *r = b->route;
    sl_mutex_lock(&r->lock);
    copy_str(user, ulen, r->server_user);
    copy_str(db, dlen, r->server_db);
    if (password) *password = r->server_password ? strdup(r->server_password) : NULL;
    if (connect_query) *connect_query = r->connect_query && *r->connect_query ? strdup(r->connect_query) : NULL;
    sl_mutex_unlock(&r->lock);
}

void sl_route_set_scram_keys(sl_route *r, const uint8_t client_key[32], const uint8_t server_key[32])
{
    sl_mutex_lock(&r->lock);
    memcpy(r->scram_client_key, client_key, 32);
    memcpy(r->scram_server_key, server_key, 32);
    r->have_scram_keys = true;
    sl_mutex_unlock(&r->lock);
}

void sl_route_set_auth_secret(sl_route *r, const char *secret)
{
    char *copy = secret ? strdup(secret) : NULL;
    sl_mutex_lock(&r->lock);
    char *old = r->auth_secret;
    r->auth_secret = copy;
    r->auth_secret_at = sl_now_fast();
    sl_mutex_unlock(&r->lock);
    if (old) {
        explicit_bzero(old, strlen(old));
        free(old);
    }
}

char *sl_route_auth_secret(sl_route *r, int64_t max_age)
{
    sl_mutex_lock(&r->lock);
    char *copy = r->auth_secret && (max_age <= 0 || sl_now_fast() - r->auth_secret_at < max_age)
                     ? strdup(r->auth_secret)
                     : NULL;
    sl_mutex_unlock(&r->lock);
    return copy;
}

bool sl_route_scram_keys(sl_route *r, uint8_t client_key[32], uint8_t server_key[32])
{
    sl_mutex_lock(&r->lock);
    bool have = r->have_scram_keys;
    memcpy(client_key, r->scram_client_key, 32);
    memcpy(server_key, r->scram_server_key, 32);
    sl_mutex_unlock(&r->lock);
    return have;
}

/* Whose login parameters a new client sees: the first backend's; with roles, a backend that serves
 * the route's clients (a replica for a read-only name, so in_hot_standby says on), else any. */
static sl_backend *welcome_backend_locked(sl_route *r)
{
    if (!r->routed) return r->nbackends && r->backends[0]->have_welcome ? r->backends[0] : NULL;
    bool reads = r->target == SL_TSA_READ_ONLY || r->target == SL_TSA_STANDBY || r->target == SL_TSA_PREFER_STANDBY;
    sl_backend *any = NULL;
    for (int i = 0; i < r->nbackends; i++) {
        sl_backend *b = r->backends[i];
        if (!b->have_welcome) continue;
        if (reads ? b->serves_read : b->serves_write) return b;
        if (!any) any = b;
    }
    return any;
}

bool sl_route_welcome(sl_route *r, sl_pktbuf *out, sl_params *p)
{
    sl_mutex_lock(&r->lock);
    sl_backend *b = welcome_backend_locked(r);
    bool have = b != NULL;
    if (have) {
        sl_pb_bytes(out, b->welcome.data, b->welcome.len);
        for (int i = 0; i < SL_NPARAMS; i++) {
            if (p->v[i]) continue;
            const char *d = r->db_defaults.v[i] ? r->db_defaults.v[i] : b->welcome_params.v[i];
            if (d) sl_params_set_interned(p, i, d);
        }
    }
    sl_mutex_unlock(&r->lock);
    return have;
}

bool sl_route_has_welcome(sl_route *r)
{
    sl_mutex_lock(&r->lock);
    bool have = welcome_backend_locked(r) != NULL;
    sl_mutex_unlock(&r->lock);
    return have;
}

void sl_route_retarget_locked(sl_route *r)
{
    for (int i = 0; i < r->nbackends; i++) {
        sl_backend *b = r->backends[i];
        __atomic_add_fetch(&b->target_gen, 1, __ATOMIC_RELAXED);
        b->have_welcome = false;
        b->dns_at = 0;
    }
    r->have_scram_keys = false;
}
