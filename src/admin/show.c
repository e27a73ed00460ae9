/* show.c - SHOW commands answered from the shared pools and the running config (no worker round):
 * HELP, POOLS, DATABASES, USERS, CONFIG, STATE, VERSION, DNS_HOSTS, DNS_ZONES. Columns, order and
 * types follow PgBouncer 1.25; pgsluice's own columns come last. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "core/client.h"
#include "core/dispatch.h"
#include "core/lifecycle.h"
#include "core/server.h"
#include "pool/health.h"
#include "pool/pool.h"
#include "pool/snapshot.h"
#include "util/time.h"

static const char help_text[] =
    "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n"
    "\tSHOW PEERS|PEER_POOLS\n"
    "\tSHOW SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE\n"
    "\tSHOW DNS_HOSTS|DNS_ZONES\n"
    "\tSHOW BACKENDS\n"
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
    "\tWAIT_CLOSE [<db>]\n"
    "\tUPGRADE [<seconds>]\n"
    "\tTAKEOVER [<seconds>]";

adm_status adm_show_help(adm_session *s, adm_result *r)
{
    (void)s;
    adm_notice(r, "Console usage", help_text);
    return ADM_DONE;
}

/* ---- pools ---- */

/* Every route plus the console's own ("pgbouncer"/"pgbouncer"), sorted by database and user: the
 * same snapshot /pools reports. */
static bool take_pools(sl_pools_snap *ps, int64_t check_delay)
{
    if (!sl_pools_snapshot(ps, check_delay)) return false;
    sl_route_snap *n = realloc(ps->v, (size_t)(ps->n + 1) * sizeof(*n));
    if (!n) {
        sl_pools_snapshot_free(ps);
        return false;
    }
    ps->v = n;
    sl_route_snap *adm = &ps->v[ps->n];
    memset(adm, 0, sizeof(*adm));
    adm->db = strdup("pgbouncer");
    adm->user = strdup("pgbouncer");
    if (!adm->db || !adm->user) {
        free(adm->db);
        free(adm->user);
        sl_pools_snapshot_free(ps);
        return false;
    }
    adm->n_clients = adm->cl_active = __atomic_load_n(&adm_nsessions, __ATOMIC_RELAXED);
    adm->pool_mode = SL_POOL_STATEMENT;
    adm->pool_size = 2;
    ps->n++;
    /* keep the order: "pgbouncer" sorts among the databases */
    for (int i = ps->n - 1; i > 0; i--) {
        int c = strcmp(ps->v[i - 1].db, ps->v[i].db);
        if (c < 0 || (c == 0 && strcmp(ps->v[i - 1].user, ps->v[i].user) <= 0)) break;
        sl_route_snap t = ps->v[i];
        ps->v[i] = ps->v[i - 1];
        ps->v[i - 1] = t;
    }
    return true;
}

void adm_cols_pools(adm_result *r)
{
    adm_cols(r, "ssiiiiiiiiiiiiissii", "database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req",
             "cl_waiting_cancel_req", "sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used",
             "sv_tested", "sv_login", "maxwait", "maxwait_us", "pool_mode", "load_balance_hosts", "pool_size",
             "reserve_pool_size");
}

adm_status adm_show_pools(adm_session *s, adm_result *r)
{
    sl_pools_snap ps;
    if (!take_pools(&ps, s->c->s.w->cfg->server_check_delay)) {
        adm_error(r, "53200", "out of memory");
        return ADM_DONE;
    }
    adm_cols_pools(r);
    for (int i = 0; i < ps.n; i++) {
        const sl_route_snap *p = &ps.v[i];
        adm_row(r, "ssiiiiiiiiiiiiissii", p->db, p->user, p->cl_active, p->cl_waiting, 0, 0, p->sv_active, 0, 0,
                p->sv_idle, p->sv_used, p->sv_tested, p->sv_login, (int)(p->maxwait_us / 1000000),
                (int)(p->maxwait_us % 1000000), sl_pool_mode_name(p->pool_mode), NULL, p->pool_size,
                p->reserve_size);
    }
    sl_pools_snapshot_free(&ps);
    return ADM_DONE;
}

/* ---- databases and users ---- */

static int clients_of(const sl_pools_snap *rs, const char *db, const char *user)
{
    int n = 0;
    for (int i = 0; i < rs->n; i++)
        if ((!db || !strcmp(rs->v[i].db, db)) && (!user || !strcmp(rs->v[i].user, user))) n += rs->v[i].n_clients;
    return n;
}

/* PgBouncer's columns, then pgsluice's routing ones: target_session_attrs, read_write_split, the
 * current primary (host:port) and the replicas in rotation (NULL for a database without roles). */
#define DB_TYPES "ssissiiiissiiiiiisisi"
void adm_cols_databases(adm_result *r)
{
    adm_cols(r, DB_TYPES, "name", "host", "port", "database", "force_user", "pool_size", "min_pool_size",
             "reserve_pool_size", "server_lifetime", "pool_mode", "load_balance_hosts", "max_connections",
             "current_connections", "max_client_connections", "current_client_connections", "paused", "disabled",
             "target_session_attrs", "read_write_split", "primary", "replicas");
}

static void database_row(adm_result *r, const sl_config *cfg, const char *name, const sl_db_def *d, const sl_pools_snap *rs,
                         const sl_topo_snap *topo)
{
    adm_db_routing_info ri;
    bool routed = adm_db_routing(topo, d->name, &ri);
    bool paused, disabled;
    int nserv;
    sl_db_state(name, &paused, &disabled, &nserv);
    const char *host = d->host && *d->host ? d->host : NULL;
    const char *dbname = d->dbname && *d->dbname ? d->dbname : name;
    const char *user = d->user && *d->user ? d->user : NULL;
    int64_t lifetime = d->server_lifetime >= 0 ? d->server_lifetime : cfg->server_lifetime;
    const char *lb = d->nhosts > 1 ? (d->load_balance_hosts == SL_LB_DISABLE ? "disable" : "round-robin") : NULL;
    int maxc = d->max_db_client_connections >= 0 ? d->max_db_client_connections : cfg->max_db_client_connections;
    adm_row(r, DB_TYPES, name, host, d->port > 0 ? d->port : 5432, dbname, user,
            d->pool_size >= 0 ? d->pool_size : cfg->default_pool_size,
            d->min_pool_size >= 0 ? d->min_pool_size : cfg->min_pool_size,
            d->reserve_pool_size >= 0 ? d->reserve_pool_size : cfg->reserve_pool_size, (int)(lifetime / 1000000),
            d->pool_mode >= 0 ? sl_pool_mode_name(d->pool_mode) : NULL, lb,
            d->max_db_connections >= 0 ? d->max_db_connections : cfg->max_db_connections, nserv, maxc,
            clients_of(rs, name, NULL), paused ? 1 : 0, disabled ? 1 : 0, routed ? ri.target : NULL,
            routed ? (int)ri.read_write_split : 0, routed && ri.primary[0] ? ri.primary : NULL, routed ? ri.replicas : 0);
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
    const sl_config *cfg = s->c->s.w->cfg;
    sl_pools_snap rs;
    if (!take_pools(&rs, cfg->server_check_delay)) {
        adm_error(r, "53200", "out of memory");
        return ADM_DONE;
    }
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
    sl_topo_snap topo;
    if (!sl_topology_snapshot(&topo, sl_now_us())) memset(&topo, 0, sizeof(topo));
    adm_cols_databases(r);
    adm_row(r, DB_TYPES, "pgbouncer", NULL, cfg->listen_port, "pgbouncer", "pgbouncer", 2, 0, 0,
            (int)(cfg->server_lifetime / 1000000), "statement", NULL, 0, 0, 0, clients_of(&rs, "pgbouncer", NULL), 0,
            0, NULL, 0, NULL, 0);
    for (size_t i = 0; i < n; i++) {
        const sl_db_def *d = sl_config_find_db(cfg, names[i]);
        if (d) database_row(r, cfg, names[i], d, &rs, &topo);
    }
    sl_topology_snapshot_free(&topo);
    free(names);
    sl_pools_snapshot_free(&rs);
    return ADM_DONE;
}

void adm_cols_users(adm_result *r)
{
    adm_cols(r, "ssssiiii", "name", "pool_size", "reserve_pool_size", "pool_mode", "max_user_connections",
             "current_connections", "max_user_client_connections", "current_client_connections");
}

static void user_row(adm_result *r, const sl_config *cfg, const char *name, const sl_pools_snap *rs)
{
    const sl_user_def *u = sl_config_find_user(cfg, name);
    char ps[16] = "", rps[16] = "";
    if (u && u->pool_size >= 0) snprintf(ps, sizeof(ps), "%d", u->pool_size);
    if (u && u->reserve_pool_size >= 0) snprintf(rps, sizeof(rps), "%d", u->reserve_pool_size);
    int maxs = u && u->max_user_connections >= 0 ? u->max_user_connections : cfg->max_user_connections;
    int maxc = u && u->max_user_client_connections >= 0 ? u->max_user_client_connections
                                                        : cfg->max_user_client_connections;
    adm_row(r, "ssssiiii", name, ps, rps, u && u->pool_mode >= 0 ? sl_pool_mode_name(u->pool_mode) : NULL, maxs,
            sl_user_servers(name), maxc, clients_of(rs, NULL, name));
}

adm_status adm_show_users(adm_session *s, adm_result *r)
{
    const sl_config *cfg = s->c->s.w->cfg;
    sl_pools_snap rs;
    if (!take_pools(&rs, cfg->server_check_delay)) {
        adm_error(r, "53200", "out of memory");
        return ADM_DONE;
    }
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
    sl_pools_snapshot_free(&rs);
    return ADM_DONE;
}

/* ---- config, state, version, dns ---- */

void adm_cols_config(adm_result *r) { adm_cols(r, "ssss", "key", "value", "default", "changeable"); }

adm_status adm_show_config(adm_session *s, adm_result *r)
{
    const sl_config *cfg = s->c->s.w->cfg;
    adm_cols_config(r);
    for (size_t i = 0; i < sl_settings_count; i++) {
        const sl_setting *st = &sl_settings[i];
        char val[1024];
        sl_setting_format(cfg, st, val, sizeof(val));
        if ((st->flags & SL_SETTING_SECRET) && val[0]) snprintf(val, sizeof(val), "********");
        adm_row(r, "ssss", st->name, val, st->default_value, sl_setting_reloadable(st) ? "yes" : "no");
    }
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

/* [peers]: the processes a cancel request may be forwarded to. */
adm_status adm_show_peers(adm_session *s, adm_result *r)
{
    const sl_config *cfg = s->c->s.w->cfg;
    adm_cols_peers(r);
    for (size_t i = 0; i < cfg->n_peers; i++) {
        const sl_peer_def *p = &cfg->peers[i];
        adm_row(r, "isii", p->id, p->host, p->port, p->pool_size < 0 ? 0 : p->pool_size);
    }
    return ADM_DONE;
}

/* A forwarded cancel is one connection, sent and closed at once (it waits in no pool): a row per
 * peer, with nothing in flight to count. */
adm_status adm_show_peer_pools(adm_session *s, adm_result *r)
{
    const sl_config *cfg = s->c->s.w->cfg;
    adm_cols_peer_pools(r);
    for (size_t i = 0; i < cfg->n_peers; i++) adm_row(r, "iiiii", cfg->peers[i].id, 0, 0, 0, 0);
    return ADM_DONE;
}
void adm_cols_dns_zones(adm_result *r) { adm_cols(r, "sqi", "zonename", "serial", "count"); }

static void dns_row(const char *host, int64_t valid_s, const char *addr, void *arg)
{
    adm_row(arg, "sqs", host, (int64_t)valid_s, addr);
}

/* The host names the backends looked up, while their answer is still used (dns_max_ttl). */
adm_status adm_show_dns_hosts(adm_session *s, adm_result *r)
{
    adm_cols_dns_hosts(r);
    sl_pools_foreach_dns(s->c->s.w->cfg->dns_max_ttl, dns_row, r);
    return ADM_DONE;
}

adm_status adm_show_dns_zones(adm_session *s, adm_result *r)
{
    (void)s;
    adm_cols_dns_zones(r);
    return ADM_DONE;
}
