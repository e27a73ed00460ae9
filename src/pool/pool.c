/* pool.c - the pools: finding a client's pool, handing servers to waiting clients first come first
 * served (across workers), opening new servers within pool_size / reserve / max_db_connections /
 * max_user_connections, and keeping the books. */
#include "pool/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pooler.h"
#include "util/log.h"
#include "util/time.h"

static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER; /* the pool list and limit groups */
static sl_list pools;
static int npools;
static sl_limit_group *db_groups, *user_groups;

void sl_pools_init(void) { sl_list_init(&pools); }

static sl_limit_group *group_find(sl_limit_group *head, const char *name)
{
    for (sl_limit_group *g = head; g; g = g->next)
        if (!strcmp(g->name, name)) return g;
    return NULL;
}

static sl_limit_group *group_get(sl_limit_group **head, const char *name)
{
    sl_limit_group *g = group_find(*head, name);
    if (g) return g;
    g = calloc(1, sizeof(*g));
    if (!g) return NULL;
    g->name = strdup(name);
    g->next = *head;
    *head = g;
    return g;
}

static char *dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }

static int pick(int specific, int global) { return specific >= 0 ? specific : global; }

/* (Re)read a pool's target and limits from config. Caller holds p->lock (or p is new). */
static void configure_locked(sl_pool *p, const sl_config *cfg, const sl_db_def *db)
{
    const sl_user_def *u = sl_config_find_user(cfg, p->user);
    free(p->host);
    free(p->server_db);
    free(p->server_user);
    free(p->server_password);
    free(p->connect_query);
    p->host = dup_or_null(db->host);
    p->port = db->port > 0 ? db->port : 5432;
    p->server_db = strdup(db->dbname && *db->dbname ? db->dbname : p->db_name);
    p->server_user = strdup(db->user && *db->user ? db->user : p->user);
    p->server_password = dup_or_null(db->password);
    p->connect_query = dup_or_null(db->connect_query);
    sl_params_set(&p->db_defaults, SL_PARAM_CLIENT_ENCODING, db->client_encoding);
    sl_params_set(&p->db_defaults, SL_PARAM_DATESTYLE, db->datestyle);
    sl_params_set(&p->db_defaults, SL_PARAM_TIMEZONE, db->timezone);
    sl_params_set(&p->db_defaults, SL_PARAM_APPLICATION_NAME, db->application_name);
    p->pool_size = pick(u ? u->pool_size : -1, pick(db->pool_size, cfg->default_pool_size));
    p->min_pool_size = pick(db->min_pool_size, cfg->min_pool_size);
    p->reserve_size = pick(u ? u->reserve_pool_size : -1, pick(db->reserve_pool_size, cfg->reserve_pool_size));
    p->max_db_conns = pick(db->max_db_connections, cfg->max_db_connections);
    p->max_user_conns = pick(u ? u->max_user_connections : -1, cfg->max_user_connections);
    __atomic_store_n(&p->server_lifetime, cfg->server_lifetime, __ATOMIC_RELAXED);
    p->round_robin = cfg->server_round_robin != 0;
    __atomic_store_n(&p->pool_mode, pick(u ? u->pool_mode : -1, pick(db->pool_mode, cfg->pool_mode)), __ATOMIC_RELAXED);
}

sl_pool *sl_pool_get(const sl_config *cfg, const char *dbname, const char *user, char *err, size_t errlen)
{
    const sl_db_def *db = sl_config_find_db(cfg, dbname);
    if (!db) {
        snprintf(err, errlen, "no such database: %s", dbname);
        return NULL;
    }
    pthread_mutex_lock(&pools_lock);
    sl_limit_group *dg = group_find(db_groups, dbname);
    if (dg && __atomic_load_n(&dg->disabled, __ATOMIC_RELAXED)) {
        pthread_mutex_unlock(&pools_lock);
        snprintf(err, errlen, "database \"%s\" is disabled", dbname); /* PgBouncer's words */
        return NULL;
    }
    sl_list *n;
    for (n = pools.next; n != &pools; n = n->next) {
        sl_pool *p = sl_container_of(n, sl_pool, node);
        if (!strcmp(p->db_name, dbname) && !strcmp(p->user, user)) {
            pthread_mutex_unlock(&pools_lock);
            return p;
        }
    }
    sl_pool *p = calloc(1, sizeof(*p));
    if (!p) {
        pthread_mutex_unlock(&pools_lock);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->db_name = strdup(dbname);
    p->user = strdup(user);
    pthread_mutex_init(&p->lock, NULL);
    for (int i = 0; i < SL_MAX_WORKERS; i++) sl_list_init(&p->idle[i]);
    sl_list_init(&p->waiting);
    sl_pb_init(&p->welcome);
    configure_locked(p, cfg, db);
    p->db_group = group_get(&db_groups, dbname);
    p->user_group = group_get(&user_groups, user);
    if (p->db_group) p->paused = __atomic_load_n(&p->db_group->paused, __ATOMIC_RELAXED);
    p->period_old.at = p->period_new.at = sl_now_fast();
    sl_list_insert_tail(&pools, &p->node);
    npools++;
    pthread_mutex_unlock(&pools_lock);
    return p;
}

void sl_pools_reconfigure(const sl_config *cfg)
{
    pthread_mutex_lock(&pools_lock);
    for (sl_list *n = pools.next; n != &pools; n = n->next) {
        sl_pool *p = sl_container_of(n, sl_pool, node);
        const sl_db_def *db = sl_config_find_db(cfg, p->db_name);
        pthread_mutex_lock(&p->lock);
        if (db) configure_locked(p, cfg, db);
        p->disabled = db == NULL;
        pthread_mutex_unlock(&p->lock);
        sl_pool_kick(p);
    }
    pthread_mutex_unlock(&pools_lock);
}

/* Can this pool open one more server now? (pools_lock not needed: group counters are atomics) */
static bool can_open_locked(sl_pool *p, bool reserve)
{
    int limit = p->pool_size + (reserve ? p->reserve_size : 0);
    if (p->n_servers >= limit) return false;
    if (p->max_db_conns > 0 && __atomic_load_n(&p->db_group->n_servers, __ATOMIC_RELAXED) >= p->max_db_conns)
        return false;
    if (p->max_user_conns > 0 && __atomic_load_n(&p->user_group->n_servers, __ATOMIC_RELAXED) >= p->max_user_conns)
        return false;
    return true;
}

static void count_new_server_locked(sl_pool *p)
{
    p->n_servers++;
    p->n_connecting++;
    __atomic_add_fetch(&p->db_group->n_servers, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->user_group->n_servers, 1, __ATOMIC_RELAXED);
    p->last_connect_attempt = sl_now_fast();
}

static void launch_on(sl_worker *w, void *arg)
{
    sl_server_launch(w, arg);
}

/* Open servers for waiting clients while limits allow; on the worker of each waiter. */
static void kick_locked(sl_pool *p, sl_worker **targets, int *ntargets, bool reserve)
{
    if (sl_pool_paused_locked(p)) return;
    sl_list *n = p->waiting.next;
    int skip = p->n_connecting;
    while (n != &p->waiting && *ntargets < 16) {
        sl_client *c = sl_container_of(n, sl_client, wait_node);
        n = n->next;
        if (skip > 0) {
            skip--;
            continue;
        }
        if (!can_open_locked(p, reserve)) break;
        if (p->last_login_failure && sl_now_fast() - p->last_login_failure < 1000000) break;
        count_new_server_locked(p);
        targets[(*ntargets)++] = &sl_workers[c->waiter_worker];
    }
}

static void run_launches(sl_pool *p, sl_worker **targets, int n)
{
    sl_worker *self = sl_worker_self();
    for (int i = 0; i < n; i++) {
        if (targets[i] == self) sl_server_launch(self, p);
        else sl_worker_call(targets[i], launch_on, p);
    }
}

void sl_pool_kick(sl_pool *p)
{
    sl_worker *targets[16];
    int nt = 0;
    pthread_mutex_lock(&p->lock);
    kick_locked(p, targets, &nt, false);
    pthread_mutex_unlock(&p->lock);
    run_launches(p, targets, nt);
}

/* An idle server from another worker is taken: ask its owner to send it over. */
static void request_steal(sl_server *s, sl_client *c)
{
    sl_msg m = {.type = SL_MSG_DETACH_SERVER, .server = s, .to = c->s.w->id, .slot = c->slot, .gen = c->gen};
    sl_worker_post(&sl_workers[s->idle_worker], &m);
}

static sl_server *pop_idle_locked(sl_pool *p, int worker)
{
    sl_list *n = sl_list_pop_head(&p->idle[worker]);
    if (!n) return NULL;
    p->n_idle--;
    return sl_container_of(n, sl_server, pool_node);
}

sl_acquire_result sl_pool_acquire(sl_pool *p, sl_client *c, sl_server **out, char *sqlstate, char *err, size_t errlen)
{
    int me = c->s.w->id;
    sl_worker *targets[16];
    int nt = 0;
    pthread_mutex_lock(&p->lock);
    if (p->disabled) {
        pthread_mutex_unlock(&p->lock);
        snprintf(sqlstate, 6, "57P03");
        snprintf(err, errlen, "database \"%s\" is disabled", p->db_name);
        return SL_ACQ_FAIL;
    }
    if (p->last_login_failure && sl_now_fast() - p->last_login_failure < c->cfg->server_login_retry &&
        p->n_servers == 0) {
        snprintf(sqlstate, 6, "%s", p->last_login_sqlstate[0] ? p->last_login_sqlstate : "08006");
        snprintf(err, errlen, "server login has been failing, try again later (server_login_retry): %s",
                 p->last_login_error);
        pthread_mutex_unlock(&p->lock);
        return SL_ACQ_FAIL;
    }
    sl_server *s = NULL;
    if (sl_list_empty(&p->waiting) && !sl_pool_paused_locked(p)) {
        s = pop_idle_locked(p, me);
        if (!s) {
            for (int i = 1; i < sl_nworkers && !s; i++) {
                int w = (me + i) % sl_nworkers;
                s = pop_idle_locked(p, w);
            }
            if (s) {
                /* stolen: the owner detaches it and hands it to us */
                p->assignments++;
                __atomic_store_n(&c->in_wait_queue, false, __ATOMIC_RELAXED);
                pthread_mutex_unlock(&p->lock);
                request_steal(s, c);
                return SL_ACQ_QUEUED;
            }
        }
    }
    if (s) {
        p->assignments++;
        pthread_mutex_unlock(&p->lock);
        *out = s;
        return SL_ACQ_GOT;
    }
    c->waiter_worker = me;
    c->queued_at = sl_now_fast();
    __atomic_store_n(&c->in_wait_queue, true, __ATOMIC_RELAXED);
    sl_list_insert_tail(&p->waiting, &c->wait_node);
    p->n_waiting++;
    kick_locked(p, targets, &nt, false);
    pthread_mutex_unlock(&p->lock);
    run_launches(p, targets, nt);
    return SL_ACQ_QUEUED;
}

bool sl_pool_unqueue(sl_pool *p, sl_client *c)
{
    pthread_mutex_lock(&p->lock);
    bool was = __atomic_load_n(&c->in_wait_queue, __ATOMIC_RELAXED);
    if (was) {
        sl_list_remove(&c->wait_node);
        __atomic_store_n(&c->in_wait_queue, false, __ATOMIC_RELAXED);
        p->n_waiting--;
    }
    pthread_mutex_unlock(&p->lock);
    return was;
}

static void handoff(sl_server *s, sl_client *c);

/* How long the first waiter may be passed over in favour of a waiter on the releasing server's own
 * worker. Handing a server to another worker costs a detach, a message and an attach (and wakes that
 * loop); a waiter a few places back on this worker can take it at once. The bound keeps the queue
 * fair: the head waits at most this much (plus one transaction) longer than strict FIFO. */
#define LOCAL_WAITER_PREFERENCE_US 1000
#define LOCAL_WAITER_LOOKAHEAD 8

static sl_client *pick_waiter_locked(sl_pool *p, int worker)
{
    sl_client *head = sl_container_of(p->waiting.next, sl_client, wait_node);
    if (sl_nworkers == 1 || head->waiter_worker == worker ||
        sl_now_fast() - head->queued_at >= LOCAL_WAITER_PREFERENCE_US)
        return head;
    int k = 0;
    for (sl_list *n = head->wait_node.next; n != &p->waiting && k < LOCAL_WAITER_LOOKAHEAD; n = n->next, k++) {
        sl_client *c = sl_container_of(n, sl_client, wait_node);
        if (c->waiter_worker == worker) return c;
    }
    return head;
}

void sl_pool_release(sl_server *s)
{
    sl_pool *p = s->pool;
    sl_worker *w = s->s.w;
    s->client = NULL;
    s->release_pending = false;
    pthread_mutex_lock(&p->lock);
    sl_stats_drain(&p->stats, &s->pend);
    bool too_old = sl_server_close_needed(s);
    if (!too_old && !p->disabled && !sl_list_empty(&p->waiting) && !sl_pool_paused_locked(p)) {
        sl_client *c = pick_waiter_locked(p, w->id);
        sl_list_remove(&c->wait_node);
        __atomic_store_n(&c->in_wait_queue, false, __ATOMIC_RELAXED);
        p->n_waiting--;
        p->assignments++;
        pthread_mutex_unlock(&p->lock);
        s->state = SL_SV_ACTIVE;
        handoff(s, c);
        return;
    }
    if (too_old || p->disabled) {
        pthread_mutex_unlock(&p->lock);
        s->state = SL_SV_ACTIVE;
        sl_server_close(s, "server retired");
        return;
    }
    s->state = SL_SV_IDLE;
    s->idle_since = sl_now_fast();
    s->idle_worker = w->id;
    /* most recently used first keeps the hot set small and lets old ones time out;
     * server_round_robin spreads the load over all of them instead */
    if (p->round_robin) sl_list_insert_tail(&p->idle[w->id], &s->pool_node);
    else sl_list_insert_head(&p->idle[w->id], &s->pool_node);
    p->n_idle++;
    pthread_mutex_unlock(&p->lock);
    sl_stream_set_poll(&s->s, UV_READABLE);
}

static void handoff_detached(uv_handle_t *h)
{
    sl_server *s = h->data;
    sl_msg m = {.type = SL_MSG_HANDOFF_SERVER, .server = s, .slot = s->handoff_slot, .gen = s->handoff_gen};
    sl_worker_post(&sl_workers[s->handoff_to], &m);
}

/* Give server s (attached to the calling worker) to client c (on any worker). */
static void handoff(sl_server *s, sl_client *c)
{
    sl_worker *w = s->s.w;
    if (c->s.w == w) {
        sl_client_got_server(c, s);
        return;
    }
    s->state = SL_SV_MOVING;
    s->handoff_to = c->s.w->id;
    s->handoff_slot = c->slot;
    s->handoff_gen = c->gen;
    sl_list_remove(&s->node);
    sl_stream_detach(&s->s, handoff_detached);
}

/* Owner side of a steal: detach our idle server and send it on. */
void sl_pool_detach_for(sl_server *s, int to, uint32_t slot, uint32_t gen)
{
    if (s->state == SL_SV_CLOSING) {
        /* it died meanwhile: the client must ask again */
        sl_msg m = {.type = SL_MSG_WAKE_CLIENT, .slot = slot, .gen = gen};
        sl_worker_post(&sl_workers[to], &m);
        return;
    }
    s->state = SL_SV_MOVING;
    s->handoff_to = to;
    s->handoff_slot = slot;
    s->handoff_gen = gen;
    sl_list_remove(&s->node);
    sl_stream_detach(&s->s, handoff_detached);
}

/* Arrival side of a handoff. */
void sl_pool_arrived(sl_worker *w, sl_server *s, uint32_t slot, uint32_t gen)
{
    if (!sl_server_attach(s, w)) {
        s->state = SL_SV_ACTIVE;
        sl_server_close(s, "cannot attach");
        return;
    }
    s->state = SL_SV_ACTIVE;
    sl_client *c = sl_worker_find_client(w, slot, gen);
    if (!c || (c->state != SL_CL_WAITING && c->state != SL_CL_WELCOME)) {
        sl_pool_release(s);
        return;
    }
    sl_client_got_server(c, s);
}

bool sl_pool_take_idle(sl_server *s)
{
    sl_pool *p = s->pool;
    pthread_mutex_lock(&p->lock);
    bool ok = s->state == SL_SV_IDLE && sl_list_linked(&s->pool_node);
    if (ok) {
        sl_list_remove(&s->pool_node);
        p->n_idle--;
    }
    pthread_mutex_unlock(&p->lock);
    return ok;
}

void sl_pool_forget_server(sl_server *s)
{
    sl_pool *p = s->pool;
    pthread_mutex_lock(&p->lock);
    if (sl_list_linked(&s->pool_node)) {
        sl_list_remove(&s->pool_node);
        p->n_idle--;
    }
    if (!s->logged_in) p->n_connecting--;
    p->n_servers--;
    sl_stats_drain(&p->stats, &s->pend);
    __atomic_sub_fetch(&p->db_group->n_servers, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&p->user_group->n_servers, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&p->lock);
    sl_pool_kick(p);
}

void sl_pool_login_failed(sl_pool *p, const char *sqlstate, const char *msg)
{
    pthread_mutex_lock(&p->lock);
    p->last_login_failure = sl_now_fast();
    p->stats.server_login_failures++;
    snprintf(p->last_login_error, sizeof(p->last_login_error), "%s", msg);
    snprintf(p->last_login_sqlstate, sizeof(p->last_login_sqlstate), "%s", sqlstate ? sqlstate : "08006");
    /* waiting clients learn why at once instead of waiting out query_wait_timeout */
    sl_list failed;
    sl_list_init(&failed);
    if (p->n_servers == 0) {
        while (!sl_list_empty(&p->waiting)) {
            sl_list *n = sl_list_pop_head(&p->waiting);
            sl_client *c = sl_container_of(n, sl_client, wait_node);
            __atomic_store_n(&c->in_wait_queue, false, __ATOMIC_RELAXED);
            p->n_waiting--;
            sl_msg m = {.type = SL_MSG_WAKE_CLIENT, .slot = c->slot, .gen = c->gen};
            sl_worker_post(&sl_workers[c->waiter_worker], &m);
        }
    }
    pthread_mutex_unlock(&p->lock);
}

void sl_pool_set_welcome(sl_pool *p, const sl_server *s, const sl_pktbuf *other)
{
    pthread_mutex_lock(&p->lock);
    if (!p->have_welcome && other) {
        sl_pb_reset(&p->welcome);
        sl_pb_bytes(&p->welcome, other->data, other->len);
        for (int i = 0; i < SL_NPARAMS; i++) sl_params_set_interned(&p->welcome_params, i, s->params.v[i]);
        p->have_welcome = !p->welcome.failed;
    }
    pthread_mutex_unlock(&p->lock);
}

void sl_pool_flush_stats(sl_server *s)
{
    sl_pool *p = s->pool;
    pthread_mutex_lock(&p->lock);
    sl_stats_drain(&p->stats, &s->pend);
    pthread_mutex_unlock(&p->lock);
}

/* Every 100 ms from worker 0: reserve pool, min_pool_size, retries after login failures. */
void sl_pools_tick(int64_t now)
{
    sl_config *cfg = sl_config_acquire();
    pthread_mutex_lock(&pools_lock);
    for (sl_list *n = pools.next; n != &pools; n = n->next) {
        sl_pool *p = sl_container_of(n, sl_pool, node);
        sl_worker *targets[16];
        int nt = 0;
        pthread_mutex_lock(&p->lock);
        if (!sl_list_empty(&p->waiting)) {
            sl_client *c = sl_container_of(p->waiting.next, sl_client, wait_node);
            bool reserve = p->reserve_size > 0 && now - c->queued_at > cfg->reserve_pool_timeout;
            kick_locked(p, targets, &nt, reserve);
        }
        bool fresh_fail = p->last_login_failure && now - p->last_login_failure < cfg->server_login_retry;
        while (!fresh_fail && !p->disabled && !sl_pool_paused_locked(p) && p->n_servers < p->min_pool_size &&
               can_open_locked(p, false) && nt < 16) {
            count_new_server_locked(p);
            targets[nt] = &sl_workers[nt % sl_nworkers];
            nt++;
        }
        pthread_mutex_unlock(&p->lock);
        run_launches(p, targets, nt);
    }
    pthread_mutex_unlock(&pools_lock);
    sl_config_unref(cfg);
}

void sl_pools_foreach(void (*fn)(sl_pool *p, void *arg), void *arg)
{
    pthread_mutex_lock(&pools_lock);
    for (sl_list *n = pools.next; n != &pools; n = n->next) fn(sl_container_of(n, sl_pool, node), arg);
    pthread_mutex_unlock(&pools_lock);
}

int sl_pools_count(void)
{
    pthread_mutex_lock(&pools_lock);
    int n = npools;
    pthread_mutex_unlock(&pools_lock);
    return n;
}

/* ---- admin console controls ---- */

bool sl_pool_paused_locked(const sl_pool *p)
{
    if (p->paused) return true;
    int rs = __atomic_load_n(&sl_run_state_v, __ATOMIC_RELAXED);
    return rs == SL_RUN_PAUSED || rs == SL_RUN_SUSPENDED || rs == SL_RUN_SHUTDOWN_GRACEFUL;
}

void sl_pool_totals_locked(const sl_pool *p, sl_pool_totals *t, int64_t now)
{
    const sl_pool_stats *st = &p->stats;
    memset(t, 0, sizeof(*t));
    t->at = now;
    t->assignments = p->assignments;
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
}

/* Idle server for waiter c: one on c's worker if any, else any other. */
static sl_server *pop_idle_for_locked(sl_pool *p, const sl_client *c)
{
    sl_server *s = pop_idle_locked(p, c->waiter_worker);
    for (int i = 0; i < sl_nworkers && !s; i++) s = pop_idle_locked(p, i);
    return s;
}

/* Hand idle servers to queued clients (after a pause): each owner detaches its server and sends it. */
static void serve_waiters_locked(sl_pool *p)
{
    while (!sl_pool_paused_locked(p) && !p->disabled && p->n_idle > 0 && !sl_list_empty(&p->waiting)) {
        sl_client *c = sl_container_of(p->waiting.next, sl_client, wait_node);
        sl_server *s = pop_idle_for_locked(p, c);
        if (!s) break;
        sl_list_remove(&c->wait_node);
        __atomic_store_n(&c->in_wait_queue, false, __ATOMIC_RELAXED);
        p->n_waiting--;
        p->assignments++;
        sl_msg m = {.type = SL_MSG_DETACH_SERVER, .server = s, .to = c->waiter_worker, .slot = c->slot, .gen = c->gen};
        sl_worker_post(&sl_workers[s->idle_worker], &m);
    }
}

static void pool_serve(sl_pool *p)
{
    pthread_mutex_lock(&p->lock);
    serve_waiters_locked(p);
    pthread_mutex_unlock(&p->lock);
    sl_pool_kick(p);
}

void sl_pools_resume(void)
{
    pthread_mutex_lock(&pools_lock);
    for (sl_list *n = pools.next; n != &pools; n = n->next) pool_serve(sl_container_of(n, sl_pool, node));
    pthread_mutex_unlock(&pools_lock);
}

void sl_db_set_paused(const char *db, bool paused)
{
    pthread_mutex_lock(&pools_lock);
    if (db) {
        sl_limit_group *g = group_get(&db_groups, db);
        if (g) __atomic_store_n(&g->paused, paused, __ATOMIC_RELAXED);
    } else {
        for (sl_limit_group *g = db_groups; g; g = g->next) __atomic_store_n(&g->paused, paused, __ATOMIC_RELAXED);
    }
    for (sl_list *n = pools.next; n != &pools; n = n->next) {
        sl_pool *p = sl_container_of(n, sl_pool, node);
        if (db && strcmp(p->db_name, db) != 0) continue;
        pthread_mutex_lock(&p->lock);
        p->paused = paused;
        pthread_mutex_unlock(&p->lock);
        if (!paused) pool_serve(p);
    }
    pthread_mutex_unlock(&pools_lock);
}

void sl_db_set_disabled(const char *db, bool disabled)
{
    pthread_mutex_lock(&pools_lock);
    sl_limit_group *g = group_get(&db_groups, db);
    if (g) __atomic_store_n(&g->disabled, disabled, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&pools_lock);
}

void sl_db_reconnect(const char *db)
{
    int64_t now = sl_now_fast();
    pthread_mutex_lock(&pools_lock);
    for (sl_limit_group *g = db_groups; g; g = g->next)
        if (!db || !strcmp(g->name, db)) __atomic_store_n(&g->reconnect_before, now, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&pools_lock);
}

bool sl_db_state(const char *db, bool *paused, bool *disabled, int *n_servers)
{
    pthread_mutex_lock(&pools_lock);
    sl_limit_group *g = group_find(db_groups, db);
    if (g) {
        *paused = __atomic_load_n(&g->paused, __ATOMIC_RELAXED);
        *disabled = __atomic_load_n(&g->disabled, __ATOMIC_RELAXED);
        *n_servers = __atomic_load_n(&g->n_servers, __ATOMIC_RELAXED);
    } else {
        *paused = *disabled = false;
        *n_servers = 0;
    }
    pthread_mutex_unlock(&pools_lock);
    return g != NULL;
}

int sl_dbs_paused_count(void)
{
    int n = 0;
    pthread_mutex_lock(&pools_lock);
    for (sl_limit_group *g = db_groups; g; g = g->next) n += __atomic_load_n(&g->paused, __ATOMIC_RELAXED) ? 1 : 0;
    pthread_mutex_unlock(&pools_lock);
    return n;
}

int sl_user_servers(const char *user)
{
    pthread_mutex_lock(&pools_lock);
    sl_limit_group *g = group_find(user_groups, user);
    int n = g ? __atomic_load_n(&g->n_servers, __ATOMIC_RELAXED) : 0;
    pthread_mutex_unlock(&pools_lock);
    return n;
}

bool sl_server_close_needed(const sl_server *s)
{
    if (s->close_after_release) return true;
    int64_t lifetime = __atomic_load_n(&s->pool->server_lifetime, __ATOMIC_RELAXED);
    if (lifetime > 0 && sl_now_fast() - s->connect_time > lifetime) return true;
    const sl_limit_group *g = s->pool->db_group;
    return g && s->connect_time <= __atomic_load_n(&g->reconnect_before, __ATOMIC_RELAXED);
}
