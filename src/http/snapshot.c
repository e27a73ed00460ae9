/* snapshot.c - the HTTP endpoint's view: the pools' snapshot, per-database sums (including the
 * totals of freed pools) and reachability, and worker counters (relaxed atomics). */
#include "http/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/lifecycle.h"
#include "http/probe.h"
#include "pool/pool.h"
#include "util/time.h"

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

static const sl_topo_snap_db *topo_of(const sl_snapshot *s, const char *entry);

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
    d->host = def->nhosts && def->hosts[0].host && *def->hosts[0].host ? strdup(def->hosts[0].host) : NULL;
    d->port = def->port > 0 ? def->port : 5432;
    if (!d->name) return false;
    d->topo = topo_of(s, def->name);
    if (d->topo)
        d->reads_only = d->topo->rt.target == SL_TSA_READ_ONLY || d->topo->rt.target == SL_TSA_STANDBY ||
                        d->topo->rt.target == SL_TSA_PREFER_STANDBY;
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
    for (int i = 0; i < s->ndbs; i++) { /* pools freed after autodb_idle_timeout left their counters */
        sl_pool_stats retired;
        if (!sl_db_retired_stats(s->dbs[i].name, &retired)) continue;
        retired.rare = true;
        sl_stats_drain(&s->dbs[i].stats, &retired);
    }
    return true;
}

static const sl_topo_snap_db *topo_of(const sl_snapshot *s, const char *entry)
{
    for (int i = 0; i < s->topo.n; i++)
        if (!strcmp(s->topo.dbs[i].name, entry)) return &s->topo.dbs[i];
    return NULL;
}

/* With roles: what the health checks say (a write name needs its primary; a read-only name a
 * replica in rotation, or the primary as its fallback); hosts that are down, lagging or fenced
 * degrade it. */
static void judge_routed(sl_db_snap *d, const sl_topo_snap_db *t)
{
    const sl_topo_snap_host *bad = NULL;
    for (int i = 0; i < t->n && !bad; i++) {
        int h = t->hosts[i].health;
        if (h == SL_BH_DOWN || h == SL_BH_LAGGING || h == SL_BH_FENCED || h == SL_BH_CHECK_FAILED) bad = &t->hosts[i];
    }
    if (bad)
        snprintf(d->degraded, sizeof(d->degraded), "database %.64s: %s %.80s is %s%s%.100s", d->name,
                 sl_role_name((sl_role)bad->role), bad->addr, sl_backend_health_name(bad->health),
                 bad->error[0] ? ": " : "", bad->error);
    bool fallback = t->rt.target == SL_TSA_PREFER_STANDBY || (t->rt.target != SL_TSA_STANDBY && t->rt.replica_fallback);
    if (d->reads_only) {
        d->reachable = t->nreaders > 0 || (fallback && t->primary >= 0);
        if (!d->reachable)
            snprintf(d->error, sizeof(d->error), "no replica in rotation%s", fallback ? " and no primary" : "");
        else if (t->nreaders == 0 && !d->degraded[0])
            snprintf(d->degraded, sizeof(d->degraded), "database %.64s: no replica in rotation, reads go to the primary",
                     d->name);
        return;
    }
    if (t->rt.target == SL_TSA_ANY) {
        d->reachable = false;
        for (int i = 0; i < t->n; i++) d->reachable |= t->hosts[i].health == SL_BH_UP;
        if (!d->reachable) snprintf(d->error, sizeof(d->error), "no host answers the health checks");
        return;
    }
    d->reachable = t->primary >= 0;
    if (d->reachable) return;
    const sl_topo_snap_host *was = NULL;
    for (int i = 0; i < t->n && !was; i++)
        if (t->hosts[i].health == SL_BH_DOWN) was = &t->hosts[i];
    snprintf(d->error, sizeof(d->error), "no primary%s%.80s%s%.150s", was ? ": " : "", was ? was->addr : "",
             was ? " is down: " : "", was ? was->error : "");
}

/* Reachable: a connect works (several hosts: to one of them) and no pool of it failed a server
 * login within server_login_retry. */
static void judge_db(sl_snapshot *s, const sl_config *cfg, sl_db_snap *d)
{
    if (d->topo) {
        judge_routed(d, d->topo);
        return;
    }
    const sl_db_def *def = sl_config_find_db(cfg, d->name);
    d->reachable = false;
    for (int i = 0; def && i < def->nhosts && !d->reachable; i++)
        d->reachable = sl_probe_backend(def->hosts[i].host, def->hosts[i].port > 0 ? def->hosts[i].port : 5432,
                                        d->error, sizeof(d->error));
    if (!def) d->reachable = sl_probe_backend(d->host, d->port, d->error, sizeof(d->error));
    if (!d->reachable) return;
    for (int i = 0; i < s->npools; i++) {
        sl_route_snap *ps = &s->pools[i];
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
    s->run_state = sl_run_state_get();
    s->server_login_retry_us = cfg->server_login_retry;
    take_workers(s);
    bool ok = sl_topology_snapshot(&s->topo, s->now_us);
    ok = ok && sl_pools_snapshot(&s->routes, cfg->server_check_delay);
    s->pools = s->routes.v;
    s->npools = s->routes.n;
    ok = ok && take_dbs(s, cfg);
    if (!ok) {
        sl_config_unref(cfg);
        sl_snapshot_free(s);
        return NULL;
    }
    for (int i = 0; probe_backends && i < s->ndbs; i++) judge_db(s, cfg, &s->dbs[i]);
    sl_config_unref(cfg);
    return s;
}

void sl_snapshot_free(sl_snapshot *s)
{
    if (!s) return;
    sl_pools_snapshot_free(&s->routes);
    sl_topology_snapshot_free(&s->topo);
    for (int i = 0; i < s->ndbs; i++) {
        free(s->dbs[i].name);
        free(s->dbs[i].host);
    }
    free(s->dbs);
    free(s);
}
