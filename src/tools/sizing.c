/* sizing.c - the pool sizing rules of `pgsluice tune` (product guide, "Manual Tuning Guidelines"):
 * default_pool_size = 2 x CPU cores, max_client_conn = 10 x default_pool_size, max_db_connections =
 * 2 x default_pool_size; then capped so that every pgsluice instance, with every database at its
 * max_db_connections, still fits in what each server allows (max_connections minus the reserved slots). */
#include "tools/sizing.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Two packet buffers (client socket in and out) plus the client's own state, rounded up. */
#define CLIENT_OVERHEAD 2048
/* Client connections may use at most 1/4 of the memory: the rest is for servers, the OS and PostgreSQL
 * when it runs on the same machine. */
#define CLIENT_MEMORY_SHARE 4

static void set_reason(sl_sizing_value *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(sl_sizing_value *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
    va_end(ap);
}

static void warn(sl_sizing_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(sl_sizing_result *r, const char *fmt, ...)
{
    if (r->n_warnings >= (int)(sizeof(r->warnings) / sizeof(r->warnings[0]))) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->warnings[r->n_warnings++], SL_SIZING_REASON, fmt, ap);
    va_end(ap);
}

uint64_t sl_sizing_client_cost(int pkt_buf)
{
    return 2 * (uint64_t)(pkt_buf > 0 ? pkt_buf : 4096) + CLIENT_OVERHEAD;
}

int sl_sizing_server_budget(const sl_sizing_server *s)
{
    int b = s->max_connections - s->superuser_reserved - s->reserved;
    return b > 0 ? b : 0;
}

static int budget_text(const sl_sizing_server *s, char *out, size_t len)
{
    if (s->reserved > 0)
        return snprintf(out, len, "%d (max_connections %d - superuser_reserved_connections %d - reserved_connections %d)",
                        sl_sizing_server_budget(s), s->max_connections, s->superuser_reserved, s->reserved);
    return snprintf(out, len, "%d (max_connections %d - superuser_reserved_connections %d)", sl_sizing_server_budget(s),
                    s->max_connections, s->superuser_reserved);
}

/* The largest max_db_connections server s can take, or -1 when it sets no bound. */
static int server_cap(const sl_sizing_input *in, const sl_sizing_server *s, sl_sizing_result *r, char *err,
                      size_t errlen)
{
    char btext[160];
    budget_text(s, btext, sizeof(btext));
    if (s->n_unlimited_dbs > 0)
        warn(r, "%s: %d [databases] entr%s set max_db_connections = 0 (unlimited); tune cannot bound them", s->name,
             s->n_unlimited_dbs, s->n_unlimited_dbs == 1 ? "y" : "ies");
    if (s->has_wildcard)
        warn(r, "%s: the \"*\" entry gives every database name clients ask for its own max_db_connections; the cap "
                "counts it as one database", s->name);
    long avail = (long)sl_sizing_server_budget(s) - (long)in->instances * s->fixed_db_conns;
    if (s->n_dbs == 0) {
        if (avail < 0)
            warn(r, "%s: per-database max_db_connections settings add up to %d x %d instance(s), more than the %s "
                    "the server allows", s->name, s->fixed_db_conns, in->instances, btext);
        return -1;
    }
    long per_db = avail / ((long)in->instances * s->n_dbs);
    if (per_db < 1) {
        snprintf(err, errlen,
                 "%s allows %s connections, too few for %d database(s) x %d pgsluice instance(s)%s: raise "
                 "max_connections on the server or serve fewer databases",
                 s->name, btext, s->n_dbs, in->instances, s->fixed_db_conns ? " beside the per-database settings" : "");
        return 0;
    }
    return per_db > 1000000 ? 1000000 : (int)per_db;
}

bool sl_sizing_compute(const sl_sizing_input *in, sl_sizing_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    if (in->cpus < 1 || in->cpus > 4096 || in->memory_bytes == 0 || in->instances < 1 || in->instances > 1000 ||
        in->n_servers > SL_SIZING_MAX_SERVERS) {
        snprintf(err, errlen, "sizing inputs out of range (cpus %d, memory %llu bytes, instances %d)", in->cpus,
                 (unsigned long long)in->memory_bytes, in->instances);
        return false;
    }
    int pool = 2 * in->cpus;
    int max_db = 2 * pool;
    set_reason(&r->default_pool_size, "2 x %d CPU core%s", in->cpus, in->cpus == 1 ? "" : "s");
    set_reason(&r->max_db_connections, "2 x default_pool_size");

    const sl_sizing_server *tightest = NULL;
    int cap = -1;
    bool any_known = false;
    for (size_t i = 0; i < in->n_servers; i++) {
        const sl_sizing_server *s = &in->servers[i];
        if (!s->limits_known) {
            warn(r, "%s: server limits unknown (could not connect); its connections are not capped", s->name);
            continue;
        }
        any_known = true;
        int c = server_cap(in, s, r, err, errlen);
        if (c == 0) return false;
        if (c > 0 && (cap < 0 || c < cap)) {
            cap = c;
            tightest = s;
        }
    }
    if (!any_known && in->n_servers == 0)
        warn(r, "no [databases] entries: nothing to cap against a server's max_connections");

    if (tightest && cap < max_db) {
        char btext[160];
        budget_text(tightest, btext, sizeof(btext));
        int used = cap * tightest->n_dbs * in->instances + tightest->fixed_db_conns * in->instances;
        set_reason(&r->max_db_connections,
                   "2 x default_pool_size = %d, capped: %s allows %s; %d database(s) x %d instance(s) x %d%s = %d",
                   max_db, tightest->name, btext, tightest->n_dbs, in->instances, cap,
                   tightest->fixed_db_conns ? " + per-database settings" : "", used);
        max_db = cap;
        if (pool > max_db) {
            set_reason(&r->default_pool_size, "2 x %d CPU cores = %d, lowered to max_db_connections", in->cpus, pool);
            pool = max_db;
        }
    }
    r->default_pool_size.value = pool;
    r->max_db_connections.value = max_db;

    int clients = 10 * pool;
    set_reason(&r->max_client_conn, "10 x default_pool_size");
    uint64_t cost = sl_sizing_client_cost(in->pkt_buf);
    uint64_t mem_limit = in->memory_bytes / CLIENT_MEMORY_SHARE / cost;
    if ((uint64_t)clients > mem_limit) {
        if (mem_limit < 1) mem_limit = 1;
        set_reason(&r->max_client_conn,
                   "10 x default_pool_size = %d, capped: a client costs about %llu bytes and clients may use 1/%d of "
                   "%llu MiB",
                   clients, (unsigned long long)cost, CLIENT_MEMORY_SHARE,
                   (unsigned long long)(in->memory_bytes >> 20));
        clients = (int)mem_limit;
    }
    r->max_client_conn.value = clients;

    if (in->cur_min_pool_size > pool) {
        r->change_min_pool_size = true;
        r->min_pool_size.value = pool;
        set_reason(&r->min_pool_size, "was above default_pool_size (%d > %d)", in->cur_min_pool_size, pool);
    }
    return true;
}
