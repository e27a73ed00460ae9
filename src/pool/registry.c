/* registry.c - every route, found by (database, user): created when a client of a new pair is
 * admitted, refreshed on reload, freed once unused for autodb_idle_timeout (its counters stay with
 * its database); the per-database and per-user limit groups; and the admin console's controls
 * (PAUSE, DISABLE, RECONNECT) that act on every route of a database. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/pool.h"
#include "pool/pool_int.h"
#include "util/log.h"
#include "util/time.h"

int sl_pool_nworkers = 1;
int sl_pool_hold;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER; /* the route list and limit groups */
static sl_list routes;
static int nroutes;
static sl_limit_group *db_groups, *user_groups;

void sl_pools_init(int nworkers)
{
    sl_list_init(&routes);
    sl_pool_nworkers = nworkers > 0 ? nworkers : 1;
}

void sl_pools_set_hold(bool hold) { __atomic_store_n(&sl_pool_hold, hold ? 1 : 0, __ATOMIC_RELAXED); }

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
    if (!g || !(g->name = strdup(name))) {
        free(g);
        return NULL;
    }
    g->next = *head;
    *head = g;
    return g;
}

/* ---- configuring a route ---- */

static char *dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }
static int pick(int specific, int global) { return specific >= 0 ? specific : global; }
static bool same_str(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

static bool same_hosts(const sl_route *r, const sl_db_def *db)
{
    if (r->nbackends != db->nhosts) return false;
    for (int i = 0; i < db->nhosts; i++)
        if (!same_str(r->backends[i]->host, db->hosts[i].host) || r->backends[i]->port != db->hosts[i].port)
            return false;
    return true;
}

static void retire_backend_locked(sl_route *r, sl_backend *b)
{
    b->retired = true;
    sl_list_insert_tail(&r->retired_backends, &b->retired_node);
}

/* The database's host list changed: new backends; the old ones retire (their servers close). */
static bool set_backends_locked(sl_route *r, const sl_db_def *db)
{
    sl_backend **nb = calloc((size_t)db->nhosts, sizeof(*nb));
    if (!nb) return false;
    for (int i = 0; i < db->nhosts; i++) {
        nb[i] = sl_backend_new(r, i, &db->hosts[i]);
        if (!nb[i]) {
            while (i--) sl_backend_free(nb[i]);
            free(nb);
            return false;
        }
    }
    for (int i = 0; i < r->nbackends; i++) retire_backend_locked(r, r->backends[i]);
    free(r->backends);
    r->backends = nb;
    r->nbackends = db->nhosts;
    return true;
}

static int64_t pick_time(int64_t user, int64_t db, int64_t global)
{
    return user >= 0 ? user : db >= 0 ? db : global;
}

static void set_timeouts(sl_client_timeouts *t, const sl_config *cfg, const sl_db_def *db, const sl_user_def *u)
{
#define SET(field, dbv) __atomic_store_n(&t->field, pick_time(u ? u->field : -1, dbv, cfg->field), __ATOMIC_RELAXED)
    SET(query_timeout, -1);
    SET(query_wait_timeout, db->query_wait_timeout);
    SET(idle_transaction_timeout, -1);
    SET(transaction_timeout, -1);
    SET(client_idle_timeout, -1);
#undef SET
}

/* Roles: the routing settings of its database, each backend's health record and role_map role,
 * and the topology's current view of them. */
static bool configure_routing_locked(sl_route *r, const sl_config *cfg, const sl_db_def *db)
{
    sl_db_routing rt;
    sl_db_routing_of(cfg, db, &rt);
    r->routed = rt.routed;
    r->target = rt.target;
    __atomic_store_n(&r->rw_split, rt.read_write_split ? 1 : 0, __ATOMIC_RELAXED);
    r->fallback = rt.replica_fallback;
    r->ryw = rt.read_your_writes;
    r->replica_lb = rt.replica_lb;
    if (!r->topo_name || strcmp(r->topo_name, db->name)) {
        char *name = strdup(db->name);
        if (!name) return false;
        free(r->topo_name);
        r->topo_name = name;
    }
    for (int i = 0; i < r->nbackends && i < db->nhosts; i++) {
        sl_backend *b = r->backends[i];
        b->configured_role = db->hosts[i].role;
        if (!rt.routed) {
            b->hostrec = NULL;
            __atomic_store_n(&b->role, SL_ROLE_ANY, __ATOMIC_RELAXED);
            b->serves_write = b->serves_read = false;
            continue;
        }
        b->hostrec = sl_host_get(db->hosts[i].host, db->hosts[i].port > 0 ? db->hosts[i].port : 5432);
        if (!b->hostrec) return false;
    }
    if (!rt.routed) r->primary = -1;
    sl_topology_apply_route_locked(r);
    return true;
}

/* (Re)read a route's target and limits from a snapshot. Caller holds r->lock (or r is new). */
static bool configure_locked(sl_route *r, const sl_config *cfg, const sl_db_def *db)
{
    const sl_user_def *u = sl_config_find_user(cfg, r->user);
    const char *server_db = db->dbname && *db->dbname ? db->dbname : r->db_name;
    const char *server_user = db->user && *db->user ? db->user : r->user;
    const char *password = db->password && *db->password ? db->password : NULL;
    if (!same_hosts(r, db) && !set_backends_locked(r, db)) return false;
    if (r->server_db && (strcmp(r->server_db, server_db) || strcmp(r->server_user, server_user) ||
                         !same_str(r->server_password, password)))
        sl_route_retarget_locked(r); /* connections logged in to the old target must not be reused */
    free(r->server_db);
    free(r->server_user);
    free(r->server_password);
    free(r->connect_query);
    r->server_db = strdup(server_db);
    r->server_user = strdup(server_user);
    r->server_password = dup_or_null(password);
    r->connect_query = dup_or_null(db->connect_query);
    sl_params_set(&r->db_defaults, SL_PARAM_CLIENT_ENCODING, db->client_encoding);
    sl_params_set(&r->db_defaults, SL_PARAM_DATESTYLE, db->datestyle);
    sl_params_set(&r->db_defaults, SL_PARAM_TIMEZONE, db->timezone);
    sl_params_set(&r->db_defaults, SL_PARAM_APPLICATION_NAME, db->application_name);
    r->pool_size = pick(u ? u->pool_size : -1, pick(db->pool_size, cfg->default_pool_size));
    r->min_pool_size = pick(db->min_pool_size, cfg->min_pool_size);
    r->reserve_size = pick(u ? u->reserve_pool_size : -1, pick(db->reserve_pool_size, cfg->reserve_pool_size));
    r->max_db_conns = pick(db->max_db_connections, cfg->max_db_connections);
    r->max_user_conns = pick(u ? u->max_user_connections : -1, cfg->max_user_connections);
    __atomic_store_n(&r->server_lifetime, db->server_lifetime >= 0 ? db->server_lifetime : cfg->server_lifetime,
                     __ATOMIC_RELAXED);
    r->round_robin = cfg->server_round_robin != 0;
    r->load_balance = db->load_balance_hosts;
    r->max_db_client_conns = db->max_db_client_connections >= 0 ? db->max_db_client_connections
                             : cfg->max_db_client_connections > 0 ? cfg->max_db_client_connections : -1;
    r->max_user_client_conns = u && u->max_user_client_connections >= 0 ? u->max_user_client_connections
                               : cfg->max_user_client_connections > 0 ? cfg->max_user_client_connections : -1;
    set_timeouts(&r->timeouts, cfg, db, u);
    int64_t pool_idle = u && u->pool_idle_timeout >= 0 ? u->pool_idle_timeout : cfg->pool_idle_timeout;
    r->free_after = pool_idle > 0 ? pool_idle : cfg->autodb_idle_timeout;
    __atomic_store_n(&r->pool_mode, pick(u ? u->pool_mode : -1, pick(db->pool_mode, cfg->pool_mode)),
                     __ATOMIC_RELAXED);
    if (!configure_routing_locked(r, cfg, db)) return false;
    if (r->replication) {
        /* one server per client, opened with its parameters and closed when it leaves: no pool to
         * size, no reserve, nothing kept open, no query of the pooler's own on a walsender; the
         * database's and user's connection limits still count it */
        r->pool_size = 1 << 24;
        r->min_pool_size = r->reserve_size = 0;
        __atomic_store_n(&r->pool_mode, SL_POOL_SESSION, __ATOMIC_RELAXED);
        __atomic_store_n(&r->rw_split, 0, __ATOMIC_RELAXED);
        free(r->connect_query);
        r->connect_query = NULL;
    }
    return r->server_db && r->server_user;
}

static void route_free(sl_route *r)
{
    for (int i = 0; i < r->nbackends; i++) sl_backend_free(r->backends[i]);
    while (!sl_list_empty(&r->retired_backends))
        sl_backend_free(sl_container_of(sl_list_pop_head(&r->retired_backends), sl_backend, retired_node));
    free(r->backends);
    free(r->server_db);
    free(r->server_user);
    free(r->server_password);
    free(r->connect_query);
    free(r->topo_name);
    if (r->auth_secret) explicit_bzero(r->auth_secret, strlen(r->auth_secret));
    free(r->auth_secret);
    sl_params_clear(&r->db_defaults);
    free(r->db_name);
    free(r->user);
    free(r);
}

static sl_route *route_new(const sl_config *cfg, const sl_db_def *db, const char *dbname, const char *user,
                           int replication)
{
    sl_route *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->replication = replication;
    sl_mutex_init(&r->lock);
    sl_list_init(&r->waiting);
    sl_list_init(&r->retired_backends);
    r->primary = -1;
    r->db_name = strdup(dbname);
    r->user = strdup(user);
    r->db_group = group_get(&db_groups, dbname);
    r->user_group = group_get(&user_groups, user);
    if (!r->db_name || !r->user || !r->db_group || !r->user_group || !configure_locked(r, cfg, db)) {
        route_free(r);
        return NULL;
    }
    r->paused = __atomic_load_n(&r->db_group->paused, __ATOMIC_RELAXED);
    r->period_old.at = r->period_new.at = sl_now_fast();
    return r;
}

sl_route *sl_route_get(const sl_config *cfg, const char *dbname, const char *user, int replication,
                       char *sqlstate, char *err, size_t errlen)
{
    const sl_db_def *db = sl_config_find_db(cfg, dbname);
    if (!db) {
        snprintf(sqlstate, 6, "3D000");
        snprintf(err, errlen, "no such database: %s", dbname);
        return NULL;
    }
    pthread_mutex_lock(&registry_lock);
    sl_limit_group *dg = group_find(db_groups, dbname);
    if (dg && __atomic_load_n(&dg->disabled, __ATOMIC_RELAXED)) {
        pthread_mutex_unlock(&registry_lock);
        snprintf(sqlstate, 6, "57P03");
        snprintf(err, errlen, "database \"%s\" is disabled", dbname); /* PgBouncer's words */
        return NULL;
    }
    sl_route *r = NULL;
    for (sl_list *n = routes.next; n != &routes; n = n->next) {
        sl_route *x = sl_container_of(n, sl_route, node);
        if (x->replication == replication && !strcmp(x->db_name, dbname) && !strcmp(x->user, user)) {
            r = x;
            break;
        }
    }
    if (!r && (r = route_new(cfg, db, dbname, user, replication))) {
        sl_list_insert_tail(&routes, &r->node);
        nroutes++;
    }
    if (r) {
        __atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
        sl_mutex_lock(&r->lock);
        r->unused_since = 0;
        sl_mutex_unlock(&r->lock);
    }
    pthread_mutex_unlock(&registry_lock);
    if (!r) {
        snprintf(sqlstate, 6, "53200");
        snprintf(err, errlen, "out of memory");
    }
    return r;
}

const char *sl_replication_name(int replication)
{
    return replication == SL_REPL_PHYSICAL ? "physical" : replication == SL_REPL_LOGICAL ? "logical" : "none";
}

char *sl_pools_cached_secret(const char *dbname, const char *user, int64_t max_age)
{
    if (max_age <= 0) return NULL;
    char *secret = NULL;
    pthread_mutex_lock(&registry_lock);
    for (sl_list *n = routes.next; n != &routes; n = n->next) {
        sl_route *r = sl_container_of(n, sl_route, node);
        if (!strcmp(r->db_name, dbname) && !strcmp(r->user, user)) {
            secret = sl_route_auth_secret(r, max_age);
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return secret;
}

void sl_route_put(sl_route *r)
{
    if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_RELAXED) > 0) return;
    sl_mutex_lock(&r->lock);
    if (r->n_servers == 0 && __atomic_load_n(&r->refs, __ATOMIC_RELAXED) == 0) r->unused_since = sl_now_fast();
    sl_mutex_unlock(&r->lock);
}

void sl_pools_reconfigure(const sl_config *cfg, sl_pool_actions *act)
{
    /* the topology's views first: routes copy them as they are refreshed */
    if (!sl_topology_configure(cfg)) sl_log_error("out of memory applying the new configuration's database roles");
    pthread_mutex_lock(&registry_lock);
    for (sl_list *n = routes.next; n != &routes; n = n->next) {
        sl_route *r = sl_container_of(n, sl_route, node);
        const sl_db_def *db = sl_config_find_db(cfg, r->db_name);
        sl_mutex_lock(&r->lock);
        if (db && !configure_locked(r, cfg, db))
            sl_log_error("out of memory applying the new configuration to pool %s/%s", r->db_name, r->user);
        r->disabled = db == NULL;
        sl_mutex_unlock(&r->lock);
        sl_route_kick(r, act);
    }
    pthread_mutex_unlock(&registry_lock);
}

/* ---- periodic work ---- */

/* A retired backend with no server left is freed. */
static void free_retired_locked(sl_route *r)
{
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &r->retired_backends)
    {
        sl_backend *b = sl_container_of(n, sl_backend, retired_node);
        if (b->n_servers > 0 || b->n_listeners > 0) continue;
        sl_list_remove(&b->retired_node);
        sl_backend_free(b);
    }
}

static bool unused_locked(const sl_route *r, int64_t now)
{
    return r->unused_since && now - r->unused_since >= r->free_after && r->n_servers == 0 && r->n_waiting == 0 &&
           __atomic_load_n(&r->refs, __ATOMIC_RELAXED) == 0;
}

static void free_route(sl_route *r)
{
    /* registry lock held: nobody else can find it; no client or server refers to it */
    r->stats.rare = true; /* a route's totals: every field counts */
    sl_stats_drain(&r->db_group->retired, &r->stats);
    r->db_group->retired_assignments += r->assignments;
    r->db_group->have_retired = true;
    sl_list_remove(&r->node);
    nroutes--;
    route_free(r);
}

/* Ask other pools sharing a database or user limit with r to give up idle servers (registry lock
 * held; each route's lock taken alone). */
static void evict_for(sl_route *r, sl_limit_group *dbg, sl_limit_group *ug, int need)
{
    for (sl_list *n = routes.next; n != &routes && need > 0; n = n->next) {
        sl_route *o = sl_container_of(n, sl_route, node);
        if (o == r || (o->db_group != dbg && o->user_group != ug)) continue;
        sl_mutex_lock(&o->lock);
        int idle = 0;
        for (int i = 0; i < o->nbackends; i++) idle += o->backends[i]->n_idle;
        int give = idle - o->evict_wanted < need ? idle - o->evict_wanted : need;
        if (give > 0 && sl_list_empty(&o->waiting)) {
            o->evict_wanted += give;
            need -= give;
        }
        sl_mutex_unlock(&o->lock);
    }
}

static void tick_route(sl_route *r, const sl_config *cfg, int64_t now, sl_pool_actions *act)
{
    sl_mutex_lock(&r->lock);
    free_retired_locked(r);
    if (!sl_list_empty(&r->waiting)) {
        sl_pool_waiter *w = sl_container_of(r->waiting.next, sl_pool_waiter, node);
        bool reserve = r->reserve_size > 0 && now - w->queued_at > cfg->reserve_pool_timeout;
        if (reserve && !sl_route_held_locked(r) && !r->disabled && sl_route_can_open_locked(r, true)) {
            sl_backend *b = sl_route_pick_backend_locked(r, w->intent, now, 1000000, NULL);
            if (b) sl_route_add_launch_locked(b, w->worker, act);
        }
    }
    int k = 0;
    while (!r->disabled && !sl_route_held_locked(r) && r->n_servers < r->min_pool_size &&
           sl_route_can_open_locked(r, false)) {
        sl_backend *b = sl_route_pick_backend_locked(r, SL_INTENT_WRITE, now, cfg->server_login_retry, NULL);
        if (!b || !sl_route_add_launch_locked(b, k++ % sl_pool_nworkers, act)) break;
    }
    /* clients waiting with no server open or opening (the server was gone, e.g. restarting), or with
     * room again in their pool: try again (a failed host is retried once a second for them) */
    bool waiting = !sl_list_empty(&r->waiting);
    bool stranded = waiting && (r->n_servers == 0 || sl_route_can_open_locked(r, false));
    /* waiting while their own pool has room but max_db_connections / max_user_connections is reached:
     * as PgBouncer, idle servers of other pools of the same database or user are closed to make room */
    int need = waiting && r->n_servers < r->pool_size && !sl_route_can_open_locked(r, false) ? r->n_waiting : 0;
    sl_limit_group *dbg = r->db_group, *ug = r->user_group;
    sl_mutex_unlock(&r->lock);
    if (need > 0) evict_for(r, dbg, ug, need);
    if (stranded) sl_route_kick(r, act);
}

void sl_pools_tick(const sl_config *cfg, int64_t now, sl_pool_actions *act)
{
    pthread_mutex_lock(&registry_lock);
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &routes)
    {
        sl_route *r = sl_container_of(n, sl_route, node);
        tick_route(r, cfg, now, act);
        sl_mutex_lock(&r->lock);
        bool unused = unused_locked(r, now);
        sl_mutex_unlock(&r->lock);
        if (unused) free_route(r);
    }
    pthread_mutex_unlock(&registry_lock);
}

void sl_pools_foreach(void (*fn)(sl_route *r, void *arg), void *arg)
{
    pthread_mutex_lock(&registry_lock);
    for (sl_list *n = routes.next; n != &routes; n = n->next) fn(sl_container_of(n, sl_route, node), arg);
    pthread_mutex_unlock(&registry_lock);
}

int sl_pools_count(void)
{
    pthread_mutex_lock(&registry_lock);
    int n = nroutes;
    pthread_mutex_unlock(&registry_lock);
    return n;
}

int sl_pools_busy_servers(void)
{
    int n = 0;
    pthread_mutex_lock(&registry_lock);
    for (sl_list *l = routes.next; l != &routes; l = l->next) {
        sl_route *r = sl_container_of(l, sl_route, node);
        sl_mutex_lock(&r->lock);
        for (int i = 0; i < r->nbackends; i++) {
            const sl_backend *b = r->backends[i];
            n += b->n_servers - b->n_idle - b->n_connecting;
        }
        for (sl_list *k = r->retired_backends.next; k != &r->retired_backends; k = k->next) {
            const sl_backend *b = sl_container_of(k, sl_backend, retired_node);
            n += b->n_servers - b->n_idle - b->n_connecting;
        }
        sl_mutex_unlock(&r->lock);
    }
    pthread_mutex_unlock(&registry_lock);
    return n;
}

/* ---- admin console controls ---- */

void sl_pools_resume(sl_pool_actions *act)
{
    pthread_mutex_lock(&registry_lock);
    for (sl_list *n = routes.next; n != &routes; n = n->next) sl_route_serve(sl_container_of(n, sl_route, node), act);
    pthread_mutex_unlock(&registry_lock);
}

void sl_db_set_paused(const char *db, bool paused, sl_pool_actions *act)
{
    pthread_mutex_lock(&registry_lock);
    if (db) {
        sl_limit_group *g = group_get(&db_groups, db);
        if (g) __atomic_store_n(&g->paused, paused, __ATOMIC_RELAXED);
    } else {
        for (sl_limit_group *g = db_groups; g; g = g->next) __atomic_store_n(&g->paused, paused, __ATOMIC_RELAXED);
    }
    for (sl_list *n = routes.next; n != &routes; n = n->next) {
        sl_route *r = sl_container_of(n, sl_route, node);
        if (db && strcmp(r->db_name, db) != 0) continue;
        sl_mutex_lock(&r->lock);
        r->paused = paused;
        sl_mutex_unlock(&r->lock);
        if (!paused) sl_route_serve(r, act);
    }
    pthread_mutex_unlock(&registry_lock);
}

void sl_db_set_disabled(const char *db, bool disabled)
{
    pthread_mutex_lock(&registry_lock);
    sl_limit_group *g = group_get(&db_groups, db);
    if (g) __atomic_store_n(&g->disabled, disabled, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&registry_lock);
}

void sl_db_reconnect(const char *db)
{
    int64_t now = sl_now_fast();
    pthread_mutex_lock(&registry_lock);
    for (sl_limit_group *g = db_groups; g; g = g->next)
        if (!db || !strcmp(g->name, db)) __atomic_store_n(&g->reconnect_before, now, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&registry_lock);
}

bool sl_db_state(const char *db, bool *paused, bool *disabled, int *n_servers)
{
    pthread_mutex_lock(&registry_lock);
    sl_limit_group *g = group_find(db_groups, db);
    if (g) {
        *paused = __atomic_load_n(&g->paused, __ATOMIC_RELAXED);
        *disabled = __atomic_load_n(&g->disabled, __ATOMIC_RELAXED);
        *n_servers = __atomic_load_n(&g->n_servers, __ATOMIC_RELAXED);
    } else {
        *paused = *disabled = false;
        *n_servers = 0;
    }
    pthread_mutex_unlock(&registry_lock);
    return g != NULL;
}

int sl_dbs_paused_count(void)
{
    int n = 0;
    pthread_mutex_lock(&registry_lock);
    for (sl_limit_group *g = db_groups; g; g = g->next) n += __atomic_load_n(&g->paused, __ATOMIC_RELAXED) ? 1 : 0;
    pthread_mutex_unlock(&registry_lock);
    return n;
}

int sl_user_servers(const char *user)
{
    pthread_mutex_lock(&registry_lock);
    sl_limit_group *g = group_find(user_groups, user);
    int n = g ? __atomic_load_n(&g->n_servers, __ATOMIC_RELAXED) : 0;
    pthread_mutex_unlock(&registry_lock);
    return n;
}

bool sl_db_retired_stats(const char *db, sl_pool_stats *out)
{
    pthread_mutex_lock(&registry_lock);
    sl_limit_group *g = group_find(db_groups, db);
    if (g) *out = g->retired;
    pthread_mutex_unlock(&registry_lock);
    return g != NULL;
}

void sl_pools_foreach_retired(void (*fn)(const char *db, const sl_pool_totals *t, void *arg), void *arg)
{
    int64_t now = sl_now_us();
    pthread_mutex_lock(&registry_lock);
    for (sl_limit_group *g = db_groups; g; g = g->next) {
        if (!g->have_retired) continue;
        sl_pool_totals t;
        sl_pool_totals_of(&t, &g->retired, g->retired_assignments, now);
        fn(g->name, &t, arg);
    }
    pthread_mutex_unlock(&registry_lock);
}

static void addr_str(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
    }
    snprintf(out, len, "%s:%d", host, port);
}

typedef struct dns_seen {
    const char *host[64];
    int n;
} dns_seen;

static bool dns_seen_add(dns_seen *d, const char *host)
{
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->host[i], host)) return false;
    if (d->n < 64) d->host[d->n++] = host;
    return true;
}

void sl_pools_foreach_dns(int64_t ttl, void (*fn)(const char *host, int64_t valid_s, const char *addr, void *arg),
                          void *arg)
{
    int64_t now = sl_now_us();
    dns_seen seen = {.n = 0};
    pthread_mutex_lock(&registry_lock);
    for (sl_list *n = routes.next; n != &routes; n = n->next) {
        sl_route *r = sl_container_of(n, sl_route, node);
        sl_mutex_lock(&r->lock);
        for (int i = 0; i < r->nbackends; i++) {
            const sl_backend *b = r->backends[i];
            if (!b->dns_at || now - b->dns_at >= ttl || !b->host || !dns_seen_add(&seen, b->host)) continue;
            char addr[INET6_ADDRSTRLEN + 8] = "?";
            addr_str(&b->dns_addr, addr, sizeof(addr));
            fn(b->host, (ttl - (now - b->dns_at)) / 1000000, addr, arg);
        }
        sl_mutex_unlock(&r->lock);
    }
    pthread_mutex_unlock(&registry_lock);
}
