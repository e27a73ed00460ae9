/* health.c - /health (also /), /live and /ready: the guide's health document and the rules that
 * decide healthy / degraded / unhealthy (documented in docs/MONITORING.md). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "core/client.h"
#include "core/dispatch.h"
#include "core/lifecycle.h"
#include "core/server.h"
#include "http/routes.h"
#include "http/snapshot.h"
#include "util/time.h"

#define DEFAULT_UTIL_DEGRADED 0.8     /* the guide: utilization should stay below 80% */
#define DEFAULT_MAXWAIT_UNHEALTHY 5.0 /* seconds a client may wait on a full pool */

typedef enum { H_OK = 0, H_DEGRADED, H_UNHEALTHY } health_level;
static const char *const level_names[] = {"healthy", "degraded", "unhealthy"};

typedef struct rules {
    double util_degraded, maxwait_unhealthy;
} rules;

typedef struct verdict {
    health_level level;
    sl_tb messages; /* JSON array items, comma separated */
} verdict;

void sl_tb_rfc3339(sl_tb *b, int64_t wall_us)
{
    time_t t = (time_t)(wall_us / 1000000);
    struct tm tm;
    char buf[32];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    sl_tb_put(b, buf);
}

static double arg_double(sl_http_req *r, const char *name, double dflt)
{
    const char *v = r->arg(r->ctx, name);
    if (!v || !*v) return dflt;
    char *end;
    double d = strtod(v, &end);
    return (*end || d < 0) ? dflt : d;
}

static void say(verdict *v, health_level lvl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(verdict *v, health_level lvl, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (lvl > v->level) v->level = lvl;
    if (v->messages.len) sl_tb_put(&v->messages, ",");
    sl_tb_json_str(&v->messages, msg);
}

static double utilization(const sl_route_snap *p)
{
    return p->pool_size > 0 ? (double)p->sv_active / p->pool_size : 0.0;
}

/* The level of one pool by the rules; messages explain anything but healthy. */
static health_level judge_pool(const sl_route_snap *p, const rules *ru, verdict *v)
{
    double util = utilization(p), wait = (double)p->maxwait_us / 1e6;
    bool full = p->sv_active >= p->pool_size && p->sv_idle + p->sv_used == 0;
    if (p->disabled) return H_OK;
    if (full && p->cl_waiting > 0 && wait > ru->maxwait_unhealthy) {
        say(v, H_UNHEALTHY, "pool %s/%s is at 100%% (%d/%d servers busy) and %d client(s) wait, the oldest %.1f s (threshold %g s)",
            p->db, p->user, p->sv_active, p->pool_size, p->cl_waiting, wait, ru->maxwait_unhealthy);
        return H_UNHEALTHY;
    }
    if (util > ru->util_degraded) {
        say(v, H_DEGRADED, "pool %s/%s utilization is %.0f%% (%d/%d servers busy), over %.0f%%", p->db, p->user,
            util * 100, p->sv_active, p->pool_size, ru->util_degraded * 100);
        return H_DEGRADED;
    }
    return H_OK;
}

static void judge_process(const sl_snapshot *s, verdict *v)
{
    if (s->run_state == SL_RUN_PAUSED) say(v, H_DEGRADED, "pgsluice is paused: clients wait until RESUME");
    else if (s->run_state != SL_RUN_NORMAL) say(v, H_UNHEALTHY, "pgsluice is shutting down");
    for (int i = 0; i < s->ndbs; i++) {
        const sl_db_snap *d = &s->dbs[i];
        /* a read-only name that cannot be served degrades this pgsluice; it can still take writes */
        if (!d->reachable)
            say(v, d->reads_only ? H_DEGRADED : H_UNHEALTHY, "database %s: backend unreachable: %s", d->name, d->error);
        if (d->degraded[0]) say(v, H_DEGRADED, "%s", d->degraded);
    }
}

static void pool_json(sl_tb *b, const sl_route_snap *p, health_level lvl)
{
    sl_tb_put(b, "{\"database\":");
    sl_tb_json_str(b, p->db);
    sl_tb_put(b, ",\"user\":");
    sl_tb_json_str(b, p->user);
    sl_tb_printf(b, ",\"pool_mode\":\"%s\",\"status\":\"%s\"", sl_pool_mode_name(p->pool_mode),
                 p->disabled ? "disabled" : level_names[lvl]);
    sl_tb_printf(b, ",\"cl_active\":%d,\"cl_waiting\":%d,\"sv_active\":%d,\"sv_idle\":%d,\"sv_used\":%d,\"sv_login\":%d",
                 p->cl_active, p->cl_waiting, p->sv_active, p->sv_idle, p->sv_used, p->sv_login);
    sl_tb_printf(b, ",\"pool_size\":%d,\"reserve_pool_size\":%d,\"utilization\":", p->pool_size, p->reserve_size);
    sl_tb_num(b, utilization(p));
    sl_tb_put(b, ",\"maxwait_seconds\":");
    sl_tb_num(b, (double)p->maxwait_us / 1e6);
    sl_tb_printf(b, ",\"paused\":%s}", p->paused ? "true" : "false");
}

/* A database with roles: its primary and every host as the health checks see it. */
static void roles_json(sl_tb *b, const sl_topo_snap_db *t)
{
    sl_tb_put(b, ",\"target_session_attrs\":");
    sl_tb_json_str(b, sl_tsa_name(t->rt.target));
    sl_tb_put(b, ",\"primary\":");
    sl_tb_json_str(b, t->primary >= 0 ? t->hosts[t->primary].addr : NULL);
    sl_tb_printf(b, ",\"replicas_in_rotation\":%d,\"hosts\":[", t->nreaders);
    for (int i = 0; i < t->n; i++) {
        const sl_topo_snap_host *h = &t->hosts[i];
        sl_tb_put(b, i ? ",{\"host\":" : "{\"host\":");
        sl_tb_json_str(b, h->addr);
        sl_tb_printf(b, ",\"role\":\"%s\",\"health\":\"%s\",\"serves\":\"%s\"", sl_role_name((sl_role)h->role),
                     sl_backend_health_name(h->health), h->writes ? "writes" : h->reads ? "reads" : "none");
        if (h->role == SL_ROLE_REPLICA && h->lag_us >= 0) {
            sl_tb_put(b, ",\"lag_seconds\":");
            sl_tb_num(b, (double)h->lag_us / 1e6);
            sl_tb_printf(b, ",\"lag_bytes\":%lld", (long long)(h->lag_bytes > 0 ? h->lag_bytes : 0));
        }
        sl_tb_put(b, ",\"error\":");
        sl_tb_json_str(b, h->error[0] ? h->error : NULL);
        sl_tb_put(b, "}");
    }
    sl_tb_put(b, "]");
}

static void backends_json(sl_tb *b, const sl_snapshot *s)
{
    sl_tb_put(b, ",\"backends\":[");
    for (int i = 0; i < s->ndbs; i++) {
        const sl_db_snap *d = &s->dbs[i];
        sl_tb_put(b, i ? ",{\"database\":" : "{\"database\":");
        sl_tb_json_str(b, d->name);
        sl_tb_put(b, ",\"host\":");
        sl_tb_json_str(b, d->host ? d->host : "/var/run/postgresql");
        sl_tb_printf(b, ",\"port\":%d,\"reachable\":%s,\"error\":", d->port, d->reachable ? "true" : "false");
        sl_tb_json_str(b, d->reachable ? NULL : d->error);
        if (d->topo) roles_json(b, d->topo);
        sl_tb_put(b, "}");
    }
    sl_tb_put(b, "]");
}

static void rules_json(sl_tb *b, const rules *ru)
{
    sl_tb_put(b, ",\"rules\":{\"unhealthy\":[\"a database's backend is unreachable (with roles: it has no primary)\","
                 "\"a pool is at 100% with a client waiting longer than maxwait_threshold_seconds\","
                 "\"pgsluice is shutting down\"],"
                 "\"degraded\":[\"a pool's utilization is over utilization_threshold\",\"pgsluice is paused\","
                 "\"a host of a database with roles is down, lagging past max_replica_lag, fenced or cannot be checked\","
                 "\"a read-only database (target_session_attrs) has no replica in rotation\"],"
                 "\"not_checked\":[\"replica lag of databases without roles (role_map, target_session_attrs): "
                 "pgsluice does not know which host is a replica\"],\"utilization_threshold\":");
    sl_tb_num(b, ru->util_degraded);
    sl_tb_put(b, ",\"maxwait_threshold_seconds\":");
    sl_tb_num(b, ru->maxwait_unhealthy);
    sl_tb_put(b, "}");
}

static int servers_total(const sl_snapshot *s)
{
    int n = 0;
    for (int i = 0; i < s->npools; i++) n += s->pools[i].sv_active + s->pools[i].sv_idle + s->pools[i].sv_used + s->pools[i].sv_login;
    return n;
}

int sl_page_health(sl_http_req *r, sl_tb *out)
{
    sl_snapshot *s = sl_snapshot_take(true);
    if (!s) return (sl_tb_put(out, "{\"error\":\"out of memory\"}\n"), 500);
    int status = sl_render_health(r, s, out);
    sl_snapshot_free(s);
    return status;
}

int sl_render_health(sl_http_req *r, const sl_snapshot *s, sl_tb *out)
{
    rules ru = {arg_double(r, "utilization", DEFAULT_UTIL_DEGRADED), arg_double(r, "maxwait", DEFAULT_MAXWAIT_UNHEALTHY)};
    verdict v = {H_OK, {0}};
    sl_tb details;
    sl_tb_init(&details);
    judge_process(s, &v);
    for (int i = 0; i < s->npools; i++) {
        if (i) sl_tb_put(&details, ",");
        pool_json(&details, &s->pools[i], judge_pool(&s->pools[i], &ru, &v));
    }
    sl_tb_printf(out, "{\"status\":\"%s\",\"timestamp\":\"", level_names[v.level]);
    sl_tb_rfc3339(out, s->wall_us);
    sl_tb_printf(out, "\",\"pools\":%d,\"clients\":%d,\"servers\":%d,\"databases\":%d,\"state\":\"%s\",\"messages\":[",
                 s->npools, s->total_clients, servers_total(s), s->ndbs, sl_run_state_label(s->run_state));
    sl_tb_put(out, v.messages.data ? v.messages.data : "");
    sl_tb_put(out, "],\"pool_details\":[");
    sl_tb_put(out, details.data ? details.data : "");
    sl_tb_put(out, "]");
    backends_json(out, s);
    rules_json(out, &ru);
    sl_tb_put(out, "}\n");
    out->failed |= v.messages.failed || details.failed;
    sl_tb_free(&v.messages);
    sl_tb_free(&details);
    return v.level == H_UNHEALTHY ? 503 : 200;
}

int sl_page_live(sl_http_req *r, sl_tb *out)
{
    (void)r;
    int rs = __atomic_load_n(&sl_run_state_v, __ATOMIC_RELAXED);
    sl_tb_printf(out, "{\"status\":\"alive\",\"state\":\"%s\",\"timestamp\":\"", sl_run_state_label(rs));
    sl_tb_rfc3339(out, sl_wall_us());
    sl_tb_put(out, "\"}\n");
    return 200;
}

/* Ready: this pgsluice can serve writes: running (not paused, not shutting down) and every
 * database but the read-only names reachable (with roles: its primary known and up). A replica that
 * is down never makes it unready. */
int sl_page_ready(sl_http_req *r, sl_tb *out)
{
    (void)r;
    sl_snapshot *s = sl_snapshot_take(true);
    if (!s) return (sl_tb_put(out, "{\"error\":\"out of memory\"}\n"), 500);
    int status = sl_render_ready(s, out);
    sl_snapshot_free(s);
    return status;
}

int sl_render_ready(const sl_snapshot *s, sl_tb *out)
{
    verdict v = {H_OK, {0}};
    if (s->run_state != SL_RUN_NORMAL) say(&v, H_UNHEALTHY, "pgsluice is %s", sl_run_state_label(s->run_state));
    for (int i = 0; i < s->ndbs; i++)
        if (!s->dbs[i].reachable && !s->dbs[i].reads_only)
            say(&v, H_UNHEALTHY, "database %s: backend unreachable: %s", s->dbs[i].name, s->dbs[i].error);
    sl_tb_printf(out, "{\"ready\":%s,\"timestamp\":\"", v.level == H_OK ? "true" : "false");
    sl_tb_rfc3339(out, s->wall_us);
    sl_tb_put(out, "\",\"reasons\":[");
    sl_tb_put(out, v.messages.data ? v.messages.data : "");
    sl_tb_put(out, "]}\n");
    out->failed |= v.messages.failed;
    sl_tb_free(&v.messages);
    return v.level == H_OK ? 200 : 503;
}
