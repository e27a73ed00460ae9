/* snapshot.c - copies every route's counters in one pass over the registry. */
#include "pool/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/pool.h"
#include "pool/pool_int.h"
#include "util/time.h"

typedef struct ctx {
    sl_pools_snap *s;
    int cap;
    int64_t check_delay;
    bool failed;
} ctx_t;

static void count_backend_locked(const sl_backend *b, sl_route_snap *rs, int64_t now, int64_t delay)
{
    int used = 0;
    for (int w = 0; w < sl_pool_nworkers; w++)
        for (sl_list *n = b->idle[w].next; n != &b->idle[w]; n = n->next)
            if (now - sl_container_of(n, sl_pool_conn, idle_node)->idle_since >= delay) used++;
    rs->sv_used += used;
    rs->sv_idle += b->n_idle - used;
    rs->sv_login += b->n_connecting;
    rs->sv_tested += b->n_tested;
    rs->sv_active += b->n_servers - b->n_idle - b->n_connecting - b->n_tested;
    if (b->last_login_failure) {
        int64_t age = now - b->last_login_failure;
        if (rs->login_failure_age_us < 0 || age < rs->login_failure_age_us) {
            rs->login_failure_age_us = age;
            snprintf(rs->login_error, sizeof(rs->login_error), "%s", b->last_login_error);
        }
    }
}

static void copy_locked(const sl_route *r, sl_route_snap *rs, int64_t now, int64_t delay)
{
    rs->replication = r->replication;
    rs->pool_mode = sl_route_pool_mode(r);
    rs->n_clients = r->n_clients;
    rs->cl_waiting = r->n_waiting;
    rs->cl_active = r->n_clients - r->n_waiting;
    if (rs->cl_active < 0) rs->cl_active = 0;
    rs->login_failure_age_us = -1;
    for (int i = 0; i < r->nbackends; i++) count_backend_locked(r->backends[i], rs, now, delay);
    for (sl_list *n = r->retired_backends.next; n != &r->retired_backends; n = n->next)
        count_backend_locked(sl_container_of(n, sl_backend, retired_node), rs, now, delay);
    rs->pool_size = r->pool_size;
    rs->reserve_size = r->reserve_size;
    rs->min_pool_size = r->min_pool_size;
    rs->max_db_conns = r->max_db_conns;
    rs->nbackends = r->nbackends;
    rs->paused = r->paused;
    rs->disabled = r->disabled;
    if (!sl_list_empty(&r->waiting)) {
        int64_t q = sl_container_of(r->waiting.next, sl_pool_waiter, node)->queued_at;
        rs->maxwait_us = now > q ? now - q : 0;
    }
    rs->stats = r->stats;
}

static void take(sl_route *r, void *arg)
{
    ctx_t *c = arg;
    sl_pools_snap *s = c->s;
    if (c->failed) return;
    if (s->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        sl_route_snap *n = realloc(s->v, (size_t)cap * sizeof(*n));
        if (!n) {
            c->failed = true;
            return;
        }
        s->v = n;
        c->cap = cap;
    }
    sl_route_snap *rs = &s->v[s->n];
    memset(rs, 0, sizeof(*rs));
    rs->db = strdup(r->db_name); /* names never change */
    rs->user = strdup(r->user);
    if (!rs->db || !rs->user) {
        free(rs->db);
        free(rs->user);
        c->failed = true;
        return;
    }
    sl_mutex_lock(&r->lock);
    copy_locked(r, rs, s->now, c->check_delay);
    sl_mutex_unlock(&r->lock);
    s->n++;
}

static int cmp(const void *a, const void *b)
{
    const sl_route_snap *x = a, *y = b;
    int c = strcmp(x->db, y->db);
    if (!c) c = strcmp(x->user, y->user);
    return c ? c : x->replication - y->replication;
}

/* Adds a replication route's counts to the entry of its database and user (sorted just before). */
static void merge_into(sl_route_snap *into, sl_route_snap *from)
{
    into->n_clients += from->n_clients;
    into->cl_active += from->cl_active;
    into->cl_waiting += from->cl_waiting;
    into->sv_active += from->sv_active;
    into->sv_idle += from->sv_idle;
    into->sv_used += from->sv_used;
    into->sv_tested += from->sv_tested;
    into->sv_login += from->sv_login;
    if (from->maxwait_us > into->maxwait_us) into->maxwait_us = from->maxwait_us;
    sl_stats_drain(&into->stats, &from->stats);
    free(from->db);
    free(from->user);
}

static void merge_replication(sl_pools_snap *s)
{
    int out = 0;
    for (int i = 0; i < s->n; i++) {
        sl_route_snap *prev = out ? &s->v[out - 1] : NULL;
        if (prev && s->v[i].replication && !strcmp(prev->db, s->v[i].db) && !strcmp(prev->user, s->v[i].user)) {
            merge_into(prev, &s->v[i]);
            continue;
        }
        if (s->v[i].replication) { /* only replication connections for the pair: no pool to size */
            s->v[i].pool_size = s->v[i].reserve_size = 0;
        }
        s->v[out++] = s->v[i];
    }
    s->n = out;
}

bool sl_pools_snapshot(sl_pools_snap *s, int64_t check_delay_us)
{
    memset(s, 0, sizeof(*s));
    s->now = sl_now_us();
    ctx_t c = {.s = s, .check_delay = check_delay_us};
    sl_pools_foreach(take, &c);
    if (c.failed) {
        sl_pools_snapshot_free(s);
        return false;
    }
    if (s->n > 1) qsort(s->v, (size_t)s->n, sizeof(*s->v), cmp);
    merge_replication(s);
    return true;
}

void sl_pools_snapshot_free(sl_pools_snap *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->v[i].db);
        free(s->v[i].user);
    }
    free(s->v);
    memset(s, 0, sizeof(*s));
}
