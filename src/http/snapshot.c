/* snapshot.c - copies pool, database and worker state for the HTTP endpoint: each pool lock is
 * held only while its counters are copied (never per packet), worker counters are relaxed atomics. */
#include "http/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/pooler.h"
#include "http/probe.h"
#include "pool/pool.h"
#include "util/time.h"

typedef struct collect_ctx {
    sl_snapshot *snap;
    int cap;
    int64_t check_delay_us;
    bool failed;
} collect_ctx;

const char *sl_run_state_label(int rs)
{
    switch (rs) {
    case SL_RUN_NORMAL: return "running";
    case SL_RUN_PAUSED: return "paused";
    case SL_RUN_SHUTDOWN_GRACEFUL:
    case SL_RUN_SHUTDOWN_WAIT_CLIENTS:
    case SL_RUN_SHUTDOWN_NOW: return "shutting_down";
    }
    return "unknown";
}

/* Idle servers idle longer than server_check_delay ("used" in SHOW POOLS). Caller holds p->lock. */
static int count_used_locked(sl_pool *p, int64_t now, int64_t delay)
{
    int used = 0;
    for (int w = 0; w < sl_nworkers; w++)
        for (sl_list *n = p->idle[w].next; n != &p->idle[w]; n = n->next)
            if (now - sl_container_of(n, sl_server, pool_node)->idle_since >= delay) used++;
    return used;
}

static void copy_pool_locked(sl_pool *p, sl_pool_snap *ps, int64_t now, int64_t check_delay)
{
    ps->pool_mode = __atomic_load_n(&p->pool_mode, __ATOMIC_RELAXED);
    ps->cl_waiting = p->n_waiting;
    ps->cl_active = p->n_clients - p->n_waiting;
    ps->sv_login = p->n_connecting;
    ps->sv_active = p->n_servers - p->n_idle - p->n_connecting;
    ps->sv_used = count_used_locked(p, now, check_delay);
    ps->sv_idle = p->n_idle - ps->sv_used;
    ps->pool_size = p->pool_size;
    ps->reserve_size = p->reserve_size;
    ps->max_db_conns = p->max_db_conns;
    ps->paused = p->paused;
    ps->disabled = p->disabled;
    ps->maxwait_us = 0;
    if (!sl_list_empty(&p->waiting)) {
        int64_t q = sl_container_of(p->waiting.next, sl_client, wait_node)->queued_at;
        ps->maxwait_us = now > q ? now - q : 0;
    }
    ps->login_failure_age_us = p->last_login_failure ? now - p->last_login_failure : -1;
    snprintf(ps->login_error, sizeof(ps->login_error), "%s", p->last_login_failure ? p->last_login_error : "");
    ps->stats = p->stats;
}

static void collect_pool(sl_pool *p, void *arg)
{
    collect_ctx *ctx = arg;
    sl_snapshot *s = ctx->snap;
    if (ctx->failed) return;
    if (s->npools == ctx->cap) {
        int cap = ctx->cap ? ctx->cap * 2 : 16;
        sl_pool_snap *n = realloc(s->pools, (size_t)cap * sizeof(*n));
        if (!n) {
            ctx->failed = true;
            return;
        }
        s->pools = n;
        ctx->cap = cap;
    }
    sl_pool_snap *ps = &s->pools[s->npools];
    memset(ps, 0, sizeof(*ps));
    ps->db = strdup(p->db_name); /* names never change after creation */
    ps->user = strdup(p->user);
    if (!ps->db || !ps->user) {
        free(ps->db);
        free(ps->user);
        ctx->failed = true;
        return;
    }
    pthread_mutex_lock(&p->lock);
    copy_pool_locked(p, ps, s->now_us, ctx->check_delay_us);
    pthread_mutex_unlock(&p->lock);
    s->npools++;
}

static void take_workers(sl_snapshot *s)
{
    s->nworkers = sl_nworkers;
    for (int i = 0; i < sl_nworkers && i < SL_MAX_WORKERS; i++) {
        sl_worker *w = &sl_workers[i];
        sl_worker_snap *ws = &s->workers[i];
        ws->clients = __atomic_load_n(&w->nclients, __ATOMIC_RELAXED);
        ws->accepted = __atomic_load_n(&w->stats.clients_accepted, __ATOMIC_RELAXED);
        ws->events = __atomic_load_n(&w->stats.events, __ATOMIC_RELAXED);
        ws->cpu_us = __atomic_load_n(&w->stats.cpu_us, __ATOMIC_RELAXED);
        s->total_clients += ws->clients;
    }
}

static sl_db_snap *find_db(sl_snapshot *s, const char *name)
{
    for (int i = 0; i < s->ndbs; i++)
        if (!strcmp(s->dbs[i].name, name)) return &s->dbs[i];
    return NULL;
}

/* Add a database (from [databases], or a pool made through the "*" entry). */
static bool add_db(sl_snapshot *s, const sl_config *cfg, const char *name)
{
    const sl_db_def *def = sl_config_find_db(cfg, name);
    if (!def || find_db(s, name)) return true;
    sl_db_snap *d = &s->dbs[s->ndbs];
    memset(d, 0, sizeof(*d));
    d->name = strdup(name);
    d->host = def->host && *def->host ? strdup(def->host) : NULL;
    d->port = def->port > 0 ? def->port : 5432;
    if (!d->name) return false;
    s->ndbs++;
    return true;
}

static bool take_dbs(sl_snapshot *s, const sl_config *cfg)
{
    s->dbs = calloc(cfg->n_dbs + (size_t)s->npools + 1, sizeof(*s->dbs));
    if (!s->dbs) return false;
    for (size_t i = 0; i < cfg->n_dbs; i++)
        if (strcmp(cfg->dbs[i].name, "*") && !add_db(s, cfg, cfg->dbs[i].name)) return false;
    for (int i = 0; i < s->npools; i++)
        if (!s->pools[i].disabled && !add_db(s, cfg, s->pools[i].db)) return false;
    for (int i = 0; i < s->npools; i++) {
        sl_db_snap *d = find_db(s, s->pools[i].db);
        if (!d) continue;
        d->npools++;
        sl_pool_stats copy = s->pools[i].stats;
        copy.rare = true; /* a pool's totals: every field counts */
        sl_stats_drain(&d->stats, &copy);
    }
    return true;
}

/* Reachable: a connect works and no pool of it failed a server login within server_login_retry. */
static void judge_db(sl_snapshot *s, sl_db_snap *d)
{
    d->reachable = sl_probe_backend(d->host, d->port, d->error, sizeof(d->error));
    if (!d->reachable) return;
    for (int i = 0; i < s->npools; i++) {
        sl_pool_snap *ps = &s->pools[i];
        if (strcmp(ps->db, d->name) || ps->disabled || ps->login_failure_age_us < 0) continue;
        if (ps->login_failure_age_us <= s->server_login_retry_us) {
            d->reachable = false;
            snprintf(d->error, sizeof(d->error), "server login failed %.1f s ago: %s",
                     (double)ps->login_failure_age_us / 1e6, ps->login_error);
            return;
        }
    }
}

sl_snapshot *sl_snapshot_take(bool probe_backends)
{
    sl_snapshot *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    sl_config *cfg = sl_config_acquire();
    s->wall_us = sl_wall_us();
    s->now_us = sl_now_us();
    s->run_state = __atomic_load_n(&sl_run_state_v, __ATOMIC_RELAXED);
    s->server_login_retry_us = cfg->server_login_retry;
    take_workers(s);
    collect_ctx ctx = {.snap = s, .check_delay_us = cfg->server_check_delay};
    sl_pools_foreach(collect_pool, &ctx);
    bool ok = !ctx.failed && take_dbs(s, cfg);
    sl_config_unref(cfg);
    if (!ok) {
        sl_snapshot_free(s);
        return NULL;
    }
    for (int i = 0; probe_backends && i < s->ndbs; i++) judge_db(s, &s->dbs[i]);
    return s;
}

void sl_snapshot_free(sl_snapshot *s)
{
    if (!s) return;
    for (int i = 0; i < s->npools; i++) {
        free(s->pools[i].db);
        free(s->pools[i].user);
    }
    for (int i = 0; i < s->ndbs; i++) {
        free(s->dbs[i].name);
        free(s->dbs[i].host);
    }
    free(s->pools);
    free(s->dbs);
    free(s);
}
