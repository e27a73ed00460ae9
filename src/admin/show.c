/* show.c - SHOW commands answered from the shared pools and the running config (no worker round):
 * HELP, POOLS, DATABASES, USERS, CONFIG, STATE, VERSION, DNS_HOSTS, DNS_ZONES. Columns, order and
 * types follow PgBouncer 1.25; pgsluice's own columns come last. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "core/pooler.h"
#include "pool/pool.h"
#include "util/time.h"

static const char help_text[] =
    "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n"
    "\tSHOW PEERS|PEER_POOLS\n"
    "\tSHOW SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE\n"
    "\tSHOW DNS_HOSTS|DNS_ZONES\n"
    "\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n"
    "\tSET key = arg\n"
    "\tRELOAD\n"
    "\tPAUSE [<db>]\n"
    "\tRESUME [<db>]\n"
    "\tDISABLE <db>\n"
    "\tENABLE <db>\n"
    "\tRECONNECT [<db>]\n"
    "\tKILL [<db>]\n"
    "\tKILL_CLIENT <client_id>\n"
    "\tSUSPEND\n"
    "\tSHUTDOWN\n"
    "\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS\n"
    "\tWAIT_CLOSE [<db>]";

adm_status adm_show_help(adm_session *s, adm_result *r)
{
    (void)s;
    adm_notice(r, "Console usage", help_text);
    return ADM_DONE;
}

/* ---- pools ---- */

typedef struct pool_row {
    sl_pool *p; /* NULL: the console's own */
    const char *db, *user;
    int cl_active, cl_waiting, sv_active, sv_idle, sv_used, sv_tested, sv_login, n_clients;
    int64_t maxwait_us;
    int mode, pool_size, reserve_size;
} pool_row;

typedef struct pool_rows {
    pool_row *v;
    int n, cap;
} pool_rows;

static pool_row *add_row(pool_rows *rs)
{
    if (rs->n == rs->cap) {
        int cap = rs->cap ? rs->cap * 2 : 16;
        pool_row *n = realloc(rs->v, (size_t)cap * sizeof(*n));
        if (!n) return NULL;
        rs->v = n;
        rs->cap = cap;
    }
    pool_row *row = &rs->v[rs->n++];
    memset(row, 0, sizeof(*row));
    return row;
}

static pool_row *find_row(pool_rows *rs, const sl_pool *p)
{
    for (int i = 0; i < rs->n; i++)
        if (rs->v[i].p == p) return &rs->v[i];
    return add_row(rs);
}

static void collect_pool(sl_pool *p, void *arg)
{
    pool_row *row = add_row(arg);
    if (!row) return;
    row->p = p;
    row->db = p->db_name; /* names never change and pools are never freed */
    row->user = p->user;
    pthread_mutex_lock(&p->lock);
    row->n_clients = p->n_clients;
    row->mode = __atomic_load_n(&p->pool_mode, __ATOMIC_RELAXED);
    row->pool_size = p->pool_size;
    row->reserve_size = p->reserve_size;
    pthread_mutex_unlock(&p->lock);
}

static int cmp_rows(const void *a, const void *b)
{
    const pool_row *x = a, *y = b;
    int c = strcmp(x->db, y->db);
    return c ? c : strcmp(x->user, y->user);
}

/* Every pool plus the console's own ("pgbouncer"/"pgbouncer"), sorted by database and user. */
static void take_pools(pool_rows *rs)
{
    memset(rs, 0, sizeof(*rs));
    sl_pools_foreach(collect_pool, rs);
    pool_row *adm = add_row(rs);
    if (adm) {
        adm->db = adm->user = "pgbouncer";
        adm->n_clients = __atomic_load_n(&adm_nsessions, __ATOMIC_RELAXED);
        adm->mode = SL_POOL_STATEMENT;
        adm->pool_size = 2;
    }
}

/* Connection counts per pool, from each worker's own clients and servers. */
typedef struct pools_ctx {
    adm_ref ref;
    int64_t now, check_delay;
    pool_rows *per; /* one per worker */
} pools_ctx;

static void count_client(pool_rows *rs, const sl_client *c, int64_t now)
{
    if (c->state == SL_CL_LOGIN || c->state == SL_CL_AUTH || c->state == SL_CL_CLOSING) return;
    pool_row *row = find_row(rs, c->admin ? NULL : c->pool);
    if (!row) return;
    row->p = c->admin ? NULL : c->pool;
    if (c->state == SL_CL_WAITING || c->state == SL_CL_WELCOME) {
        int64_t since = c->wait_start ? c->wait_start : c->request_time;
        row->cl_waiting++;
        if (since && now - since > row->maxwait_us) row->maxwait_us = now - since;
    } else {
        row->cl_active++;
    }
}

static void count_server(pool_rows *rs, const sl_server *s, const pools_ctx *ctx)
{
    pool_row *row = find_row(rs, s->pool);
    if (!row) return;
    row->p = s->pool;
    switch (s->state) {
    case SL_SV_CONNECTING:
    case SL_SV_LOGIN: row->sv_login++; break;
    case SL_SV_SETUP: row->sv_tested++; break;
    case SL_SV_IDLE:
        if (ctx->now - s->idle_since >= ctx->check_delay) row->sv_used++;
        else row->sv_idle++;
        break;
    case SL_SV_CLOSING:
    case SL_SV_MOVING: break;
    default: row->sv_active++; break;
    }
}

static void pools_each(sl_worker *w, void *arg)
{
    pools_ctx *ctx = arg;
    pool_rows *rs = &ctx->per[w->id];
    sl_list *n;
    for (n = w->clients.next; n != &w->clients; n = n->next)
        if (sl_container_of(n, sl_client, node)->pool || sl_container_of(n, sl_client, node)->admin)
            count_client(rs, sl_container_of(n, sl_client, node), ctx->now);
    for (n = w->servers.next; n != &w->servers; n = n->next) count_server(rs, sl_container_of(n, sl_server, node), ctx);
}

static void add_counts(pool_row *to, const pool_row *from)
{
    to->cl_active += from->cl_active;
    to->cl_waiting += from->cl_waiting;
    to->sv_active += from->sv_active;
    to->sv_idle += from->sv_idle;
    to->sv_used += from->sv_used;
    to->sv_tested += from->sv_tested;
    to->sv_login += from->sv_login;
    if (from->maxwait_us > to->maxwait_us) to->maxwait_us = from->maxwait_us;
}

void adm_cols_pools(adm_result *r)
{
    adm_cols(r, "ssiiiiiiiiiiiiissii", "database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req",
             "cl_waiting_cancel_req", "sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used",
             "sv_tested", "sv_login", "maxwait", "maxwait_us", "pool_mode", "load_balance_hosts", "pool_size",
             "reserve_pool_size");
}

static void pools_rows(adm_result *r, pools_ctx *ctx)
{
    pool_rows rs;
    take_pools(&rs);
    for (int w = 0; w < sl_nworkers; w++)
        for (int i = 0; i < ctx->per[w].n; i++)
            for (int k = 0; k < rs.n; k++)
                if (rs.v[k].p == ctx->per[w].v[i].p) add_counts(&rs.v[k], &ctx->per[w].v[i]);
    if (rs.n) qsort(rs.v, (size_t)rs.n, sizeof(pool_row), cmp_rows);
    adm_cols_pools(r);
    for (int i = 0; i < rs.n; i++) {
        pool_row *p = &rs.v[i];
        adm_row(r, "ssiiiiiiiiiiiiissii", p->db, p->user, p->cl_active, p->cl_waiting, 0, 0, p->sv_active, 0, 0,
                p->sv_idle, p->sv_used, p->sv_tested, p->sv_login, (int)(p->maxwait_us / 1000000),
                (int)(p->maxwait_us % 1000000), sl_pool_mode_name(p->mode), NULL, p->pool_size, p->reserve_size);
    }
    free(rs.v);
}

static void pools_done(sl_worker *w, void *arg)
{
    pools_ctx *ctx = arg;
    adm_session *s = adm_ref_session(w, &ctx->ref);
    if (s) pools_rows(&s->res, ctx);
    for (int i = 0; i < sl_nworkers; i++) free(ctx->per[i].v);
    free(ctx->per);
    free(ctx);
    if (s) adm_async_done(s);
}

adm_status adm_show_pools(adm_session *s, adm_result *r)
{
    pools_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx && (ctx->per = calloc((size_t)sl_nworkers, sizeof(pool_rows)))) {
        sl_config *cfg = sl_config_acquire();
        ctx->check_delay = cfg->server_check_delay;
        sl_config_unref(cfg);
        ctx->ref = adm_ref_of(s);
        ctx->now = sl_now_us();
        if (sl_pooler_collect(s->c->s.w, pools_each, pools_done, ctx)) return ADM_ASYNC;
    }
    if (ctx) free(ctx->per);
    free(ctx);
    adm_error(r, "53200", "out of memory");
    return ADM_DONE;
}

/* ---- databases and users ---- */

static int clients_of(const pool_rows *rs, const char *db, const char *user)
{
    int n = 0;
    for (int i = 0; i < rs->n; i++)
        if ((!db || !strcmp(rs->v[i].db, db)) && (!user || !strcmp(rs->v[i].user, user))) n += rs->v[i].n_clients;
    return n;
}

void adm_cols_databases(adm_result *r)
{
    adm_cols(r, "ssissiiiissiiiiii", "name", "host", "port", "database", "force_user", "pool_size", "min_pool_size",
             "reserve_pool_size", "server_lifetime", "pool_mode", "load_balance_hosts", "max_connections",
             "current_connections", "max_client_connections", "current_client_connections", "paused", "disabled");
}

static void database_row(adm_result *r, const sl_config *cfg, const char *name, const sl_db_def *d, const pool_rows *rs)
{
    bool paused, disabled;
    int nserv;
    sl_db_state(name, &paused, &disabled, &nserv);
    const char *host = d->host && *d->host ? d->host : NULL;
    const char *dbname = d->dbname && *d->dbname ? d->dbname : name;
    const char *user = d->user && *d->user ? d->user : NULL;
    adm_row(r, "ssissiiiissiiiiii", name, host, d->port > 0 ? d->port : 5432, dbname, user,
            d->pool_size >= 0 ? d->pool_size : cfg->default_pool_size,
            d->min_pool_size >= 0 ? d->min_pool_size : cfg->min_pool_size,
            d->reserve_pool_size >= 0 ? d->reserve_pool_size : cfg->reserve_pool_size,
            (int)(cfg->server_lifetime / 1000000), d->pool_mode >= 0 ? sl_pool_mode_name(d->pool_mode) : NULL, NULL,
            d->max_db_connections >= 0 ? d->max_db_connections : cfg->max_db_connections, nserv, 0,
            clients_of(rs, name, NULL), paused ? 1 : 0, disabled ? 1 : 0);
}

static bool in_config(const sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_dbs; i++)
        if (!strcmp(cfg->dbs[i].name, name)) return true;
    return false;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

adm_status adm_show_databases(adm_session *s, adm_result *r)
{
    (void)s;
    sl_config *cfg = sl_config_acquire();
    pool_rows rs;
    take_pools(&rs);
    const char **names = calloc(cfg->n_dbs + (size_t)rs.n + 1, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; names && i < cfg->n_dbs; i++)
        if (strcmp(cfg->dbs[i].name, "*") != 0) names[n++] = cfg->dbs[i].name;
    for (int i = 0; names && i < rs.n; i++) {
        const char *db = rs.v[i].db;
        if (!strcmp(db, "pgbouncer") || in_config(cfg, db)) continue;
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++) dup = !strcmp(names[k], db);
        if (!dup) names[n++] = db; /* made through the "*" entry */
    }
    if (names) qsort(names, n, sizeof(char *), cmp_str);
    adm_cols_databases(r);
    adm_row(r, "ssissiiiissiiiiii", "pgbouncer", NULL, cfg->listen_port, "pgbouncer", "pgbouncer", 2, 0, 0,
            (int)(cfg->server_lifetime / 1000000), "statement", NULL, 0, 0, 0, clients_of(&rs, "pgbouncer", NULL), 0,
            0);
    for (size_t i = 0; i < n; i++) {
        const sl_db_def *d = sl_config_find_db(cfg, names[i]);
        if (d) database_row(r, cfg, names[i], d, &rs);
    }
    free(names);
    free(rs.v);
    sl_config_unref(cfg);
    return ADM_DONE;
}

void adm_cols_users(adm_result *r)
{
    adm_cols(r, "ssssiiii", "name", "pool_size", "reserve_pool_size", "pool_mode", "max_user_connections",
             "current_connections", "max_user_client_connections", "current_client_connections");
}

static void user_row(adm_result *r, const sl_config *cfg, const char *name, const pool_rows *rs)
{
    const sl_user_def *u = sl_config_find_user(cfg, name);
    char ps[16] = "", rps[16] = "";
    if (u && u->pool_size >= 0) snprintf(ps, sizeof(ps), "%d", u->pool_size);
    if (u && u->reserve_pool_size >= 0) snprintf(rps, sizeof(rps), "%d", u->reserve_pool_size);
    int maxc = u && u->max_user_connections >= 0 ? u->max_user_connections : cfg->max_user_connections;
    adm_row(r, "ssssiiii", name, ps, rps, u && u->pool_mode >= 0 ? sl_pool_mode_name(u->pool_mode) : NULL, maxc,
            sl_user_servers(name), 0, clients_of(rs, NULL, name));
}

adm_status adm_show_users(adm_session *s, adm_result *r)
{
    (void)s;
    sl_config *cfg = sl_config_acquire();
    pool_rows rs;
    take_pools(&rs);
    size_t cap = cfg->n_userlist + cfg->n_users + (size_t)rs.n + 1, n = 0;
    const char **names = calloc(cap, sizeof(char *));
    for (size_t i = 0; names && i < cfg->n_userlist; i++) names[n++] = cfg->userlist[i].name;
    for (size_t i = 0; names && i < cfg->n_users; i++) names[n++] = cfg->users[i].name;
    for (int i = 0; names && i < rs.n; i++)
        if (strcmp(rs.v[i].db, "pgbouncer") != 0) names[n++] = rs.v[i].user;
    if (names) qsort(names, n, sizeof(char *), cmp_str);
    adm_cols_users(r);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0) user_row(r, cfg, names[i], &rs);
    free(names);
    free(rs.v);
    sl_config_unref(cfg);
    return ADM_DONE;
}

/* ---- config, state, version, dns ---- */

void adm_cols_config(adm_result *r) { adm_cols(r, "ssss", "key", "value", "default", "changeable"); }

adm_status adm_show_config(adm_session *s, adm_result *r)
{
    (void)s;
    sl_config *cfg = sl_config_acquire();
    adm_cols_config(r);
    for (size_t i = 0; i < sl_settings_count; i++) {
        const sl_setting *st = &sl_settings[i];
        char val[1024];
        sl_setting_format(cfg, st, val, sizeof(val));
        adm_row(r, "ssss", st->name, val, st->default_value, st->reloadable ? "yes" : "no");
    }
    sl_config_unref(cfg);
    return ADM_DONE;
}

void adm_cols_state(adm_result *r) { adm_cols(r, "ss", "key", "value"); }

adm_status adm_show_state(adm_session *s, adm_result *r)
{
    (void)s;
    int rs = __atomic_load_n(&sl_run_state_v, __ATOMIC_RELAXED);
    adm_cols_state(r);
    adm_row(r, "ss", "active", rs == SL_RUN_NORMAL ? "yes" : "no");
    adm_row(r, "ss", "paused", rs == SL_RUN_PAUSED ? "yes" : "no");
    adm_row(r, "ss", "suspended", rs == SL_RUN_SUSPENDED ? "yes" : "no");
    return ADM_DONE;
}

void adm_cols_version(adm_result *r) { adm_cols(r, "s", "version"); }

adm_status adm_show_version(adm_session *s, adm_result *r)
{
    (void)s;
    adm_cols_version(r);
    adm_row(r, "s", "pgsluice " SL_VERSION);
    return ADM_DONE;
}

void adm_cols_dns_hosts(adm_result *r) { adm_cols(r, "sqs", "hostname", "ttl", "addrs"); }
void adm_cols_peers(adm_result *r) { adm_cols(r, "isii", "peer_id", "host", "port", "pool_size"); }
void adm_cols_peer_pools(adm_result *r)
{
    adm_cols(r, "iiiii", "peer_id", "cl_active_cancel_req", "cl_waiting_cancel_req", "sv_active_cancel", "sv_login");
}

/* pgsluice has no [peers] (cancel requests always reach the right process): no rows. */
adm_status adm_show_peers(adm_session *s, adm_result *r)
{
    (void)s;
    adm_cols_peers(r);
    return ADM_DONE;
}

adm_status adm_show_peer_pools(adm_session *s, adm_result *r)
{
    (void)s;
    adm_cols_peer_pools(r);
    return ADM_DONE;
}
void adm_cols_dns_zones(adm_result *r) { adm_cols(r, "sqi", "zonename", "serial", "count"); }

/* pgsluice resolves host names when it connects and keeps no DNS cache: no rows. */
adm_status adm_show_dns_hosts(adm_session *s, adm_result *r)
{
    (void)s;
    adm_cols_dns_hosts(r);
    return ADM_DONE;
}

adm_status adm_show_dns_zones(adm_session *s, adm_result *r)
{
    (void)s;
    adm_cols_dns_zones(r);
    return ADM_DONE;
}
