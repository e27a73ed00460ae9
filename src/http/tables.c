/* tables.c - GET /pools and GET /stats: JSON arrays with SHOW POOLS / SHOW STATS column names. */
#include "config/config.h"
#include "http/routes.h"
#include "http/snapshot.h"

static void str_field(sl_tb *b, const char *sep, const char *name, const char *value)
{
    sl_tb_printf(b, "%s\"%s\":", sep, name);
    sl_tb_json_str(b, value);
}

static void pool_row(sl_tb *b, const sl_route_snap *p)
{
    str_field(b, "{", "database", p->db);
    str_field(b, ",", "user", p->user);
    sl_tb_printf(b, ",\"cl_active\":%d,\"cl_waiting\":%d,\"sv_active\":%d,\"sv_idle\":%d,\"sv_used\":%d,\"sv_login\":%d",
                 p->cl_active, p->cl_waiting, p->sv_active, p->sv_idle, p->sv_used, p->sv_login);
    sl_tb_printf(b, ",\"maxwait\":%lld,\"maxwait_us\":%lld", (long long)(p->maxwait_us / 1000000),
                 (long long)(p->maxwait_us % 1000000));
    str_field(b, ",", "pool_mode", sl_pool_mode_name(p->pool_mode));
    sl_tb_printf(b, ",\"pool_size\":%d,\"reserve_pool_size\":%d,\"paused\":%s,\"disabled\":%s}", p->pool_size,
                 p->reserve_size, p->paused ? "true" : "false", p->disabled ? "true" : "false");
}

int sl_page_pools(sl_http_req *r, sl_tb *out)
{
    (void)r;
    sl_snapshot *s = sl_snapshot_take(false);
    if (!s) return (sl_tb_put(out, "{\"error\":\"out of memory\"}\n"), 500);
    int status = sl_render_pools(s, out);
    sl_snapshot_free(s);
    return status;
}

int sl_render_pools(const sl_snapshot *s, sl_tb *out)
{
    sl_tb_put(out, "[");
    for (int i = 0; i < s->npools; i++) {
        if (i) sl_tb_put(out, ",\n");
        pool_row(out, &s->pools[i]);
    }
    sl_tb_put(out, "]\n");
    return 200;
}

static void stats_row(sl_tb *b, const char *db, const sl_pool_stats *st)
{
    str_field(b, "{", "database", db);
    sl_tb_printf(b, ",\"total_xact_count\":%llu,\"total_query_count\":%llu,\"total_received\":%llu,\"total_sent\":%llu",
                 (unsigned long long)st->xact_count, (unsigned long long)st->query_count,
                 (unsigned long long)st->bytes_in, (unsigned long long)st->bytes_out);
    sl_tb_printf(b, ",\"total_xact_time\":%llu,\"total_query_time\":%llu,\"total_wait_time\":%llu",
                 (unsigned long long)st->xact_time_us, (unsigned long long)st->query_time_us,
                 (unsigned long long)st->wait_time_us);
    sl_tb_printf(b, ",\"total_client_logins\":%llu,\"total_server_connects\":%llu,\"total_server_login_failures\":%llu",
                 (unsigned long long)st->client_logins, (unsigned long long)st->server_connects,
                 (unsigned long long)st->server_login_failures);
    sl_tb_put(b, ",\"errors\":{");
    for (int c = 0; c < SL_NERRCLASS; c++)
        sl_tb_printf(b, "%s\"%s\":%llu", c ? "," : "", sl_error_class_names[c], (unsigned long long)st->errors[c]);
    sl_tb_put(b, "}}");
}

int sl_page_stats(sl_http_req *r, sl_tb *out)
{
    (void)r;
    sl_snapshot *s = sl_snapshot_take(false);
    if (!s) return (sl_tb_put(out, "{\"error\":\"out of memory\"}\n"), 500);
    int status = sl_render_stats(s, out);
    sl_snapshot_free(s);
    return status;
}

int sl_render_stats(const sl_snapshot *s, sl_tb *out)
{
    sl_tb_put(out, "[");
    for (int i = 0; i < s->ndbs; i++) {
        if (i) sl_tb_put(out, ",\n");
        stats_row(out, s->dbs[i].name, &s->dbs[i].stats);
    }
    sl_tb_put(out, "]\n");
    return 200;
}
