/* topology.c - each routed database's view of its hosts, recomputed from the health checks' records:
 * which host is the primary (the one reporting pg_is_in_recovery() false; several: the highest
 * timeline, the others are fenced), which replicas are in rotation (reachable, lag within
 * max_replica_lag(_bytes)), how far each lags; copied into the backends of the database's routes,
 * whose waiting clients are then served. Events (primary lost, primary changed) are logged and
 * reported to the checker, which runs failover_command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/health.h"
#include "pool/pool.h"
#include "pool/pool_int.h"
#include "util/log.h"
#include "util/time.h"

typedef struct topo_db {
    char *name;
    sl_db_routing rt;
    int n;
    sl_topo_host *hosts;
    int primary;                 /* index, -1: none */
    int last_primary;            /* the last host that was primary (-1: never one) */
    int nreaders;
    uint64_t primary_changes;
    bool computed;
    struct topo_db *next;
} topo_db;

static pthread_mutex_t topo_lock = PTHREAD_MUTEX_INITIALIZER;
static topo_db *topo_head;
static int topo_missing; /* atomic: some database has no primary */

static const char *const bh_names[] = {"unchecked", "up", "down", "lagging", "fenced", "check_failed"};

const char *sl_backend_health_name(int h)
{
    return h >= SL_BH_UNCHECKED && h <= SL_BH_CHECK_FAILED ? bh_names[h] : "unknown";
}

static void topo_free(topo_db *d)
{
    if (!d) return;
    free(d->name);
    free(d->hosts);
    free(d);
}

static topo_db *find_locked(topo_db *head, const char *name)
{
    for (topo_db *d = head; d; d = d->next)
        if (!strcmp(d->name, name)) return d;
    return NULL;
}

static bool same_hosts(const topo_db *a, const topo_db *b)
{
    if (a->n != b->n) return false;
    for (int i = 0; i < a->n; i++)
        if (a->hosts[i].h != b->hosts[i].h) return false;
    return true;
}

static topo_db *topo_new(const sl_config *cfg, const sl_db_def *def, const sl_db_routing *rt)
{
    topo_db *d = calloc(1, sizeof(*d));
    if (!d) return NULL;
    d->name = strdup(def->name);
    d->hosts = calloc((size_t)def->nhosts, sizeof(*d->hosts));
    if (!d->name || !d->hosts) {
        topo_free(d);
        return NULL;
    }
    (void)cfg;
    d->rt = *rt;
    d->n = def->nhosts;
    d->primary = d->last_primary = -1;
    for (int i = 0; i < def->nhosts; i++) {
        sl_topo_host *th = &d->hosts[i];
        th->h = sl_host_get(def->hosts[i].host, def->hosts[i].port > 0 ? def->hosts[i].port : 5432);
        if (!th->h) {
            topo_free(d);
            return NULL;
        }
        th->configured = def->hosts[i].role;
        th->role = th->configured == SL_HOSTROLE_PRIMARY ? SL_ROLE_PRIMARY
                   : th->configured == SL_HOSTROLE_REPLICA ? SL_ROLE_REPLICA : SL_ROLE_ANY;
        th->lag_us = th->lag_bytes = -1;
    }
    return d;
}

static void mark_in_use(topo_db *head)
{
    for (sl_host *h = sl_hosts_first(); h; h = __atomic_load_n(&h->next, __ATOMIC_ACQUIRE)) {
        bool used = false;
        for (topo_db *d = head; d && !used; d = d->next)
            for (int i = 0; i < d->n && !used; i++) used = d->hosts[i].h == h;
        pthread_mutex_lock(&h->lock);
        h->in_use = used;
        if (used) pthread_cond_broadcast(&h->wake);
        pthread_mutex_unlock(&h->lock);
    }
}

bool sl_topology_configure(const sl_config *cfg)
{
    topo_db *head = NULL, **tail = &head;
    for (size_t i = 0; i < cfg->n_dbs; i++) {
        sl_db_routing rt;
        sl_db_routing_of(cfg, &cfg->dbs[i], &rt);
        if (!rt.routed) continue;
        topo_db *d = topo_new(cfg, &cfg->dbs[i], &rt);
        if (!d) {
            while (head) {
                topo_db *n = head->next;
                topo_free(head);
                head = n;
            }
            return false;
        }
        *tail = d;
        tail = &d->next;
    }
    pthread_mutex_lock(&topo_lock);
    for (topo_db *d = head; d; d = d->next) {
        topo_db *old = find_locked(topo_head, d->name);
        if (!old) continue;
        d->primary_changes = old->primary_changes;
        if (!same_hosts(d, old)) continue;
        /* the same hosts: what was decided stays until the next refresh (configured roles aside) */
        for (int i = 0; i < d->n; i++) {
            int configured = d->hosts[i].configured;
            d->hosts[i] = old->hosts[i];
            d->hosts[i].configured = configured;
        }
        d->primary = old->primary;
        d->last_primary = old->last_primary;
        d->nreaders = old->nreaders;
        d->computed = old->computed;
    }
    topo_db *old = topo_head;
    topo_head = head;
    mark_in_use(head);
    pthread_mutex_unlock(&topo_lock);
    while (old) {
        topo_db *n = old->next;
        topo_free(old);
        old = n;
    }
    return true;
}

/* ---- computing a view ---- */

typedef struct host_copy {
    int state;
    bool role_known, in_recovery;
    int timeline;
    uint64_t lsn, receive_lsn;
    double replay_age_s;
    int64_t checked_at;
    uint32_t role_gen;
} host_copy;

static void copy_host(sl_host *h, host_copy *c)
{
    pthread_mutex_lock(&h->lock);
    c->state = h->state;
    c->role_known = h->role_known;
    c->in_recovery = h->in_recovery;
    c->timeline = h->timeline;
    c->lsn = h->lsn;
    c->receive_lsn = h->receive_lsn;
    c->replay_age_s = h->replay_age_s;
    c->checked_at = h->checked_at;
    c->role_gen = h->role_gen;
    pthread_mutex_unlock(&h->lock);
}

/* How long ago (as of the replica's check at `at`) the primary first had WAL past `replayed`. */
static int64_t lag_from_samples(sl_host *p, uint64_t replayed, int64_t at)
{
    int64_t first_beyond = -1;
    pthread_mutex_lock(&p->lock);
    for (int k = p->nsamples - 1; k >= 0; k--) {
        int i = (p->sample_head + k) % SL_LSN_SAMPLES;
        if (p->sample_lsn[i] <= replayed) break;
        first_beyond = p->sample_at[i];
    }
    pthread_mutex_unlock(&p->lock);
    if (first_beyond < 0) return 0;
    return at > first_beyond ? at - first_beyond : 0;
}

static void replica_lag(topo_db *d, int i, const host_copy *hc, int primary, const host_copy *pc)
{
    sl_topo_host *th = &d->hosts[i];
    if (primary >= 0 && pc[primary].state == SL_HOST_UP && pc[primary].role_known && hc[i].role_known) {
        const host_copy *p = &pc[primary];
        th->lag_bytes = p->lsn > hc[i].lsn ? (int64_t)(p->lsn - hc[i].lsn) : 0;
        th->lag_us = hc[i].lsn >= p->lsn ? 0 : lag_from_samples(d->hosts[primary].h, hc[i].lsn, hc[i].checked_at);
        return;
    }
    if (!hc[i].role_known) {
        th->lag_bytes = th->lag_us = -1;
        return;
    }
    /* no primary to compare with: what the replica received and has not replayed yet */
    th->lag_bytes = hc[i].receive_lsn > hc[i].lsn ? (int64_t)(hc[i].receive_lsn - hc[i].lsn) : 0;
    th->lag_us = th->lag_bytes > 0 && hc[i].replay_age_s > 0 ? (int64_t)(hc[i].replay_age_s * 1e6) : 0;
}

static bool lagging(const topo_db *d, const sl_topo_host *th)
{
    if (d->rt.max_lag_us > 0 && th->lag_us > d->rt.max_lag_us) return true;
    if (d->rt.max_lag_bytes > 0 && th->lag_bytes > d->rt.max_lag_bytes) return true;
    return false;
}

static void add_event(sl_topo_events *ev, int kind, const topo_db *d, int idx)
{
    if (!ev || ev->n >= SL_TOPO_MAX_EVENTS) return;
    sl_host *h = d->hosts[idx].h;
    ev->ev[ev->n].kind = kind;
    snprintf(ev->ev[ev->n].db, sizeof(ev->ev[ev->n].db), "%s", d->name);
    snprintf(ev->ev[ev->n].host, sizeof(ev->ev[ev->n].host), "%s", h->host ? h->host : "");
    ev->ev[ev->n].port = h->port;
    ev->n++;
}

/* A name whose clients only read (its primary matters only as a fallback). */
static bool reads_only(const topo_db *d)
{
    return d->rt.target == SL_TSA_READ_ONLY || d->rt.target == SL_TSA_STANDBY || d->rt.target == SL_TSA_PREFER_STANDBY;
}

static void log_changes(topo_db *d, const sl_topo_host *old, int old_primary, sl_topo_events *ev)
{
    char a[280], b[280];
    if (d->primary >= 0) sl_host_addr_str(d->hosts[d->primary].h, a, sizeof(a));
    if (d->primary >= 0 && d->primary != d->last_primary) {
        if (d->last_primary >= 0) {
            sl_host_addr_str(d->hosts[d->last_primary].h, b, sizeof(b));
            sl_log_msg(reads_only(d) ? SL_LOG_INFO : SL_LOG_WARNING,
                       "database %s: the primary is now %s (was %s); writes go there", d->name, a, b);
            d->primary_changes++;
            add_event(ev, SL_TOPO_PRIMARY_CHANGED, d, d->primary);
        } else {
            sl_log_info("database %s: primary is %s", d->name, a);
        }
        d->last_primary = d->primary;
    } else if (d->primary >= 0 && old_primary < 0 && old) {
        sl_log_info("database %s: primary %s is back", d->name, a);
    } else if (d->primary < 0 && old_primary >= 0) {
        sl_host_addr_str(d->hosts[old_primary].h, b, sizeof(b));
        if (reads_only(d))
            sl_log_info("database %s: no primary (%s is %s)", d->name, b,
                        sl_backend_health_name(d->hosts[old_primary].health));
        else
            sl_log_warn("database %s: no primary: %s is %s; new write transactions wait (query_wait_timeout) until "
                        "a host reports pg_is_in_recovery() false", d->name, b,
                        sl_backend_health_name(d->hosts[old_primary].health));
        add_event(ev, SL_TOPO_PRIMARY_LOST, d, old_primary);
    }
    for (int i = 0; old && i < d->n; i++) {
        const sl_topo_host *o = &old[i], *n = &d->hosts[i];
        if (o->health == n->health && o->role == n->role) continue;
        sl_host_addr_str(n->h, a, sizeof(a));
        if (n->health == SL_BH_FENCED)
            sl_log_warn("database %s: %s is writable but not the primary (an older timeline): fenced, nothing is "
                        "sent to it", d->name, a);
        else if (o->role != n->role && o->role != SL_ROLE_ANY && n->role != SL_ROLE_ANY && !n->writes)
            sl_log_warn("database %s: %s is now a %s (was a %s)", d->name, a, sl_role_name((sl_role)n->role),
                        sl_role_name((sl_role)o->role));
        else if (n->role == SL_ROLE_REPLICA && o->reads != n->reads)
            sl_log_msg(n->reads ? SL_LOG_INFO : SL_LOG_WARNING, "database %s: replica %s %s (%s)", d->name, a,
                       !n->reads ? "leaves the rotation" : o->health == SL_BH_UNCHECKED || o->role == SL_ROLE_ANY
                                                                ? "is in rotation" : "is back in rotation",
                       sl_backend_health_name(n->health));
    }
}

static int base_health(const host_copy *hc)
{
    switch (hc->state) {
    case SL_HOST_UP: return SL_BH_UP;
    case SL_HOST_DOWN: return SL_BH_DOWN;
    case SL_HOST_CHECK_FAILED: return SL_BH_CHECK_FAILED;
    default: return SL_BH_UNCHECKED;
    }
}

/* Trusted to serve its role: answering, or not checked yet / not checkable with a known role. */
static bool usable(const sl_topo_host *th) { return th->health != SL_BH_DOWN && th->role != SL_ROLE_ANY; }

static void compute_db(topo_db *d, sl_topo_events *ev)
{
    host_copy hc[64];
    sl_topo_host old[64];
    int n = d->n < 64 ? d->n : 64, old_primary = d->primary;
    memcpy(old, d->hosts, (size_t)n * sizeof(old[0]));
    for (int i = 0; i < n; i++) {
        sl_topo_host *th = &d->hosts[i];
        copy_host(th->h, &hc[i]);
        th->health = base_health(&hc[i]);
        th->role = hc[i].role_known ? (hc[i].in_recovery ? SL_ROLE_REPLICA : SL_ROLE_PRIMARY)
                   : th->configured == SL_HOSTROLE_PRIMARY ? SL_ROLE_PRIMARY
                   : th->configured == SL_HOSTROLE_REPLICA ? SL_ROLE_REPLICA : SL_ROLE_ANY;
        th->role_gen = hc[i].role_gen;
        th->writes = th->reads = false;
        th->lag_us = th->lag_bytes = -1;
    }
    /* the primary: a usable host that is one; several (split brain): the newest timeline, then the
     * one that was primary already, then the first configured */
    int best = -1;
    for (int i = 0; i < n; i++) {
        sl_topo_host *th = &d->hosts[i];
        if (!usable(th) || th->role != SL_ROLE_PRIMARY) continue;
        if (best < 0 || hc[i].timeline > hc[best].timeline ||
            (hc[i].timeline == hc[best].timeline && i == d->last_primary && best != d->last_primary))
            best = i;
    }
    d->primary = best;
    for (int i = 0; i < n; i++) {
        sl_topo_host *th = &d->hosts[i];
        if (th->role == SL_ROLE_PRIMARY && usable(th)) {
            if (i == best) th->writes = true;
            else th->health = SL_BH_FENCED;
        }
    }
    d->nreaders = 0;
    for (int i = 0; i < n; i++) {
        sl_topo_host *th = &d->hosts[i];
        if (th->role != SL_ROLE_REPLICA) continue;
        replica_lag(d, i, hc, best, hc);
        if (!usable(th)) continue;
        if (lagging(d, th)) {
            th->health = SL_BH_LAGGING;
            continue;
        }
        th->reads = true;
        d->nreaders++;
    }
    log_changes(d, d->computed ? old : NULL, old_primary, ev);
    d->computed = true;
}

bool sl_topology_primary_missing(void) { return __atomic_load_n(&topo_missing, __ATOMIC_RELAXED) != 0; }

/* ---- routes ---- */

void sl_topology_apply_route_locked(sl_route *r)
{
    if (!r->routed || !r->topo_name) return;
    pthread_mutex_lock(&topo_lock);
    topo_db *d = find_locked(topo_head, r->topo_name);
    r->primary = -1;
    r->n_readers = 0;
    for (int i = 0; i < r->nbackends; i++) {
        sl_backend *b = r->backends[i];
        const sl_topo_host *th = d && i < d->n && d->hosts[i].h == b->hostrec ? &d->hosts[i] : NULL;
        if (!th) { /* not in the current views (a reload under way): serves nothing for now */
            b->serves_write = b->serves_read = false;
            b->health = SL_BH_UNCHECKED;
            continue;
        }
        if (b->role_gen != th->role_gen) {
            /* its role changed: no connection made before serves anyone again */
            if (b->role_gen_set) {
                __atomic_add_fetch(&b->target_gen, 1, __ATOMIC_RELAXED);
                b->have_welcome = false;
            }
            b->role_gen = th->role_gen;
            b->role_gen_set = true;
        }
        __atomic_store_n(&b->role, th->role, __ATOMIC_RELAXED);
        b->health = th->health;
        b->serves_write = th->writes;
        b->serves_read = th->reads;
        b->lag_us = th->lag_us;
        b->lag_bytes = th->lag_bytes;
        if (th->writes) r->primary = i;
        if (th->reads) r->n_readers++;
    }
    pthread_mutex_unlock(&topo_lock);
}

static void refresh_route(sl_route *r, void *arg)
{
    sl_pool_actions *act = arg;
    sl_mutex_lock(&r->lock);
    if (r->routed) {
        sl_topology_apply_route_locked(r);
        sl_route_serve_routed_locked(r, act);
    }
    sl_mutex_unlock(&r->lock);
}

void sl_topology_refresh(int64_t now, sl_pool_actions *act, sl_topo_events *ev)
{
    (void)now;
    if (ev) ev->n = 0;
    pthread_mutex_lock(&topo_lock);
    bool missing = false;
    for (topo_db *d = topo_head; d; d = d->next) {
        compute_db(d, ev);
        if (d->primary < 0) missing = true;
    }
    __atomic_store_n(&topo_missing, missing ? 1 : 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&topo_lock);
    sl_pools_foreach(refresh_route, act);
}

/* ---- read-your-writes ---- */

bool sl_host_lsn_after(sl_host *p, int64_t after, uint64_t *lsn)
{
    bool known = false;
    pthread_mutex_lock(&p->lock);
    if (p->role_known && !p->in_recovery && p->checked_at > after && p->nsamples) {
        /* the first sample taken after `after`; none: the position has not moved since the newest */
        int k;
        for (k = 0; k < p->nsamples; k++)
            if (p->sample_at[(p->sample_head + k) % SL_LSN_SAMPLES] > after) break;
        if (k == p->nsamples) k = p->nsamples - 1;
        *lsn = p->sample_lsn[(p->sample_head + k) % SL_LSN_SAMPLES];
        known = true;
    }
    pthread_mutex_unlock(&p->lock);
    return known;
}

uint64_t sl_host_replayed(sl_host *h)
{
    pthread_mutex_lock(&h->lock);
    uint64_t v = h->role_known ? h->lsn : 0;
    pthread_mutex_unlock(&h->lock);
    return v;
}

/* ---- snapshot ---- */

bool sl_topology_snapshot(sl_topo_snap *s, int64_t now)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_lock(&topo_lock);
    int n = 0;
    for (topo_db *d = topo_head; d; d = d->next) n++;
    s->dbs = calloc((size_t)(n ? n : 1), sizeof(*s->dbs));
    bool ok = s->dbs != NULL;
    for (topo_db *d = topo_head; ok && d; d = d->next) {
        sl_topo_snap_db *sd = &s->dbs[s->n];
        sd->name = strdup(d->name);
        sd->hosts = calloc((size_t)(d->n ? d->n : 1), sizeof(*sd->hosts));
        if (!sd->name || !sd->hosts) {
            free(sd->name);
            free(sd->hosts);
            ok = false;
            break;
        }
        s->n++;
        sd->rt = d->rt;
        sd->primary = d->primary;
        sd->nreaders = d->nreaders;
        sd->primary_changes = d->primary_changes;
        sd->n = d->n;
        for (int i = 0; i < d->n; i++) {
            const sl_topo_host *th = &d->hosts[i];
            sl_topo_snap_host *sh = &sd->hosts[i];
            sl_host_addr_str(th->h, sh->addr, sizeof(sh->addr));
            sh->host = th->h->host ? strdup(th->h->host) : NULL;
            sh->port = th->h->port;
            sh->configured = th->configured;
            sh->role = th->role;
            sh->health = d->computed ? th->health : SL_BH_UNCHECKED;
            sh->writes = th->writes;
            sh->reads = th->reads;
            sh->lag_us = th->lag_us;
            sh->lag_bytes = th->lag_bytes;
            pthread_mutex_lock(&th->h->lock);
            sh->host_state = th->h->state;
            sh->timeline = th->h->timeline;
            sh->lsn = th->h->lsn;
            sh->checked_ago_us = th->h->finished_at ? now - th->h->finished_at : -1;
            sh->checks = th->h->checks;
            sh->failures = th->h->failures;
            snprintf(sh->error, sizeof(sh->error), "%s", th->h->error);
            pthread_mutex_unlock(&th->h->lock);
        }
    }
    pthread_mutex_unlock(&topo_lock);
    if (!ok) sl_topology_snapshot_free(s);
    return ok;
}

void sl_topology_snapshot_free(sl_topo_snap *s)
{
    for (int i = 0; i < s->n; i++) {
        for (int k = 0; k < s->dbs[i].n; k++) free(s->dbs[i].hosts[k].host);
        free(s->dbs[i].hosts);
        free(s->dbs[i].name);
    }
    free(s->dbs);
    memset(s, 0, sizeof(*s));
}
