/* connstr.c - libpq-style "key=value" strings of [databases] and [users] entries. */
#include "config/config_int.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *skip_ws(const char *s)
{
    while (isspace((unsigned char)*s)) s++;
    return s;
}

/* Read a key up to '=' or whitespace into buf. Returns the position after '=' or NULL. */
static const char *read_key(const char *p, char *buf, size_t len, char *err, size_t errlen)
{
    const char *start = p;
    while (*p && *p != '=' && !isspace((unsigned char)*p)) p++;
    size_t n = (size_t)(p - start);
    p = skip_ws(p);
    if (n == 0) return sl_cfg_err(err, errlen, "syntax error in connection string: missing parameter name"), NULL;
    if (n >= len) return sl_cfg_err(err, errlen, "parameter name too long in connection string"), NULL;
    memcpy(buf, start, n);
    buf[n] = '\0';
    if (*p != '=')
        return sl_cfg_err(err, errlen, "syntax error in connection string: expected \"=\" after \"%s\"", buf), NULL;
    return skip_ws(p + 1);
}

/* Read a value (quoted with '...' and \' \\ '' escapes, or bare up to whitespace) into out (malloc'd). */
static const char *read_value(const char *p, const char *key, char **out, char *err, size_t errlen)
{
    char *buf = malloc(strlen(p) + 1);
    size_t n = 0;
    if (!buf) return sl_cfg_err(err, errlen, "out of memory"), NULL;
    if (*p == '\'') {
        for (p++;; p++) {
            if (!*p) {
                free(buf);
                return sl_cfg_err(err, errlen, "unterminated quoted value for \"%s\"", key), NULL;
            }
            if (*p == '\\' && p[1]) p++;
            else if (*p == '\'' && p[1] == '\'') p++;
            else if (*p == '\'') break;
            buf[n++] = *p;
        }
        p++;
        if (*p && !isspace((unsigned char)*p)) {
            free(buf);
            return sl_cfg_err(err, errlen, "syntax error in connection string after the value of \"%s\"", key), NULL;
        }
    } else {
        while (*p && !isspace((unsigned char)*p)) {
            if (*p == '\\' && p[1]) p++;
            buf[n++] = *p++;
        }
        if (n == 0) {
            free(buf);
            return sl_cfg_err(err, errlen, "missing value for \"%s\" in connection string", key), NULL;
        }
    }
    buf[n] = '\0';
    *out = buf;
    return p;
}

bool sl_connstr_parse(const char *text, sl_connstr_cb cb, void *ctx, char *err, size_t errlen)
{
    const char *p = skip_ws(text ? text : "");
    while (*p) {
        char key[64];
        char *value = NULL;
        p = read_key(p, key, sizeof(key), err, errlen);
        if (!p) return false;
        p = read_value(p, key, &value, err, errlen);
        if (!p) return false;
        bool ok = cb(ctx, key, value, err, errlen);
        free(value);
        if (!ok) return false;
        p = skip_ws(p);
    }
    return true;
}

/* ---- [databases] ---- */

typedef enum { K_STR, K_INT, K_TIME, K_BOOL, K_POOL_MODE, K_LOAD_BALANCE, K_SECRET_FILE, K_TSA, K_REPLICA_LB } key_kind;
typedef struct key_spec {
    const char *name;
    key_kind kind;
    size_t offset;
} key_spec;

#define DB(f, k) {#f, k, offsetof(sl_db_def, f)}
static const key_spec db_specs[] = {
    DB(host, K_STR), {"port", K_STR, offsetof(sl_db_def, port_list)}, DB(dbname, K_STR), DB(user, K_STR), DB(password, K_STR),
    {"password_file", K_SECRET_FILE, offsetof(sl_db_def, password)},
    DB(auth_user, K_STR), DB(auth_query, K_STR), DB(auth_dbname, K_STR), DB(pool_size, K_INT), DB(min_pool_size, K_INT), DB(reserve_pool_size, K_INT),
    {"reserve_pool", K_INT, offsetof(sl_db_def, reserve_pool_size)}, DB(max_db_connections, K_INT),
    DB(max_db_client_connections, K_INT), DB(pool_mode, K_POOL_MODE), DB(load_balance_hosts, K_LOAD_BALANCE),
    DB(server_lifetime, K_TIME), DB(query_wait_timeout, K_TIME),
    DB(connect_query, K_STR), DB(client_encoding, K_STR), DB(datestyle, K_STR),
    DB(timezone, K_STR), DB(application_name, K_STR),
    DB(role_map, K_STR), DB(target_session_attrs, K_TSA), DB(read_write_split, K_BOOL), DB(replica_fallback, K_BOOL),
    DB(replica_load_balance, K_REPLICA_LB), DB(max_replica_lag, K_TIME), DB(max_replica_lag_bytes, K_INT),
    {NULL, K_STR, 0},
};

#define USR(f, k) {#f, k, offsetof(sl_user_def, f)}
static const key_spec user_specs[] = {
    USR(pool_mode, K_POOL_MODE), USR(max_user_connections, K_INT), USR(max_user_client_connections, K_INT),
    USR(pool_size, K_INT), USR(reserve_pool_size, K_INT), USR(query_timeout, K_TIME), USR(query_wait_timeout, K_TIME),
    USR(idle_transaction_timeout, K_TIME), USR(transaction_timeout, K_TIME), USR(client_idle_timeout, K_TIME),
    USR(pool_idle_timeout, K_TIME),
    {NULL, K_STR, 0},
};

typedef struct entry_ctx {
    void *obj;
    const key_spec *specs;
    const sl_key_doc *ignored;
    const char *what; /* "database" / "user" */
    sl_warn_once *warn;
} entry_ctx;

static bool store_key(void *obj, const key_spec *k, const char *value, char *err, size_t errlen)
{
    void *slot = (char *)obj + k->offset;
    switch (k->kind) {
    case K_STR: {
        char *dup = strdup(value);
        if (!dup) return sl_cfg_err(err, errlen, "out of memory"), false;
        free(*(char **)slot);
        *(char **)slot = dup;
        return true;
    }
    case K_INT:
        if (sl_parse_int_range(value, 0, INT_MAX, slot)) return true;
        return sl_cfg_err(err, errlen, "invalid number for %s: \"%s\"", k->name, value), false;
    case K_TIME:
        if (sl_parse_time_usec(value, slot)) return true;
        return sl_cfg_err(err, errlen, "invalid time for %s: \"%s\"", k->name, value), false;
    case K_BOOL: {
        bool b;
        if (!sl_parse_bool(value, &b))
            return sl_cfg_err(err, errlen, "invalid boolean for %s: \"%s\" (expected on or off)", k->name, value), false;
        *(int *)slot = b ? 1 : 0;
        return true;
    }
    case K_TSA:
        if (sl_parse_tsa(value, slot)) return true;
        return sl_cfg_err(err, errlen, "invalid target_session_attrs: \"%s\" (expected read-write, primary, read-only, "
                          "standby, prefer-standby or any)", value), false;
    case K_REPLICA_LB:
        if (!strcasecmp(value, "least-outstanding")) *(int *)slot = SL_REPLICA_LB_LEAST_OUTSTANDING;
        else if (!strcasecmp(value, "round-robin")) *(int *)slot = SL_REPLICA_LB_ROUND_ROBIN;
        else return sl_cfg_err(err, errlen, "invalid replica_load_balance: \"%s\" (expected least-outstanding or round-robin)", value), false;
        return true;
    case K_LOAD_BALANCE:
        if (!strcasecmp(value, "round-robin")) *(int *)slot = SL_LB_ROUND_ROBIN;
        else if (!strcasecmp(value, "disable")) *(int *)slot = SL_LB_DISABLE;
        else return sl_cfg_err(err, errlen, "invalid load_balance_hosts: \"%s\" (expected round-robin or disable)", value), false;
        return true;
    case K_SECRET_FILE: { /* a Docker/Kubernetes secret: the file's content, trailing newlines dropped */
        char *secret = sl_read_secret_file(value, err, errlen);
        if (!secret) return false;
        free(*(char **)slot);
        *(char **)slot = secret;
        return true;
    }
    case K_POOL_MODE:
        if (sl_parse_pool_mode(value, slot)) return true;
        return sl_cfg_err(err, errlen, "invalid pool_mode: \"%s\" (expected session, transaction or statement)",
                          value), false;
    }
    return false;
}

static bool entry_pair(void *vctx, const char *key, const char *value, char *err, size_t errlen)
{
    entry_ctx *ctx = vctx;
    for (const key_spec *k = ctx->specs; k->name; k++)
        if (strcasecmp(k->name, key) == 0) return store_key(ctx->obj, k, value, err, errlen);
    const sl_key_doc *ign = sl_key_doc_find(ctx->ignored, key);
    if (ign) {
        char tag[96];
        snprintf(tag, sizeof(tag), "%s:%s", ctx->what, ign->name);
        sl_warn_once_log(ctx->warn, tag, "%s parameter %s is not implemented by pgsluice and is ignored", ctx->what,
                         ign->name);
        return true;
    }
    sl_cfg_err(err, errlen, "unknown %s parameter \"%s\"", ctx->what, key);
    return false;
}

/* Split a comma-separated list in place; returns the number of items (empty items allowed). */
static int split_list(char *text, char **items, int max)
{
    int n = 0;
    for (char *p = text;;) {
        char *comma = strchr(p, ',');
        if (n == max) return -1;
        items[n++] = p;
        if (!comma) break;
        *comma = '\0';
        p = comma + 1;
    }
    return n;
}

#define MAX_HOSTS 32

/* role_map=primary,replica,...: one role per host, in the order of host=. */
static bool pair_roles(sl_db_def *d, char *err, size_t errlen)
{
    if (!d->role_map) return true;
    char buf[1024];
    char *roles[MAX_HOSTS];
    snprintf(buf, sizeof(buf), "%s", d->role_map);
    int n = split_list(buf, roles, MAX_HOSTS);
    if (n != d->nhosts)
        return sl_cfg_err(err, errlen, "role_map names %d role%s for %d host%s (one per host, in the order of host=)",
                          n < 0 ? MAX_HOSTS + 1 : n, n == 1 ? "" : "s", d->nhosts, d->nhosts == 1 ? "" : "s"), false;
    for (int i = 0; i < n; i++) {
        const char *r = roles[i];
        while (*r == ' ') r++;
        if (!strcasecmp(r, "primary")) d->hosts[i].role = SL_HOSTROLE_PRIMARY;
        else if (!strcasecmp(r, "replica") || !strcasecmp(r, "standby")) d->hosts[i].role = SL_HOSTROLE_REPLICA;
        else if (!strcasecmp(r, "auto") || !strcasecmp(r, "any")) d->hosts[i].role = SL_HOSTROLE_AUTO;
        else return sl_cfg_err(err, errlen, "invalid role in role_map: \"%s\" (expected primary, replica or auto)", r), false;
    }
    return true;
}

/* host=a,b,c and port=p or port=pa,pb,pc (libpq's rule): pair them up into d->hosts. */
static bool pair_hosts(sl_db_def *d, char *err, size_t errlen)
{
    char hbuf[4096] = "", pbuf[1024] = "";
    char *hosts[MAX_HOSTS], *ports[MAX_HOSTS];
    snprintf(hbuf, sizeof(hbuf), "%s", d->host ? d->host : "");
    snprintf(pbuf, sizeof(pbuf), "%s", d->port_list ? d->port_list : "5432");
    int nh = split_list(hbuf, hosts, MAX_HOSTS), np = split_list(pbuf, ports, MAX_HOSTS);
    if (nh < 0 || np < 0) return sl_cfg_err(err, errlen, "too many hosts or ports (at most %d)", MAX_HOSTS), false;
    if (np != 1 && np != nh)
        return sl_cfg_err(err, errlen, "could not match %d port numbers to %d hosts", np, nh), false;
    d->hosts = calloc((size_t)nh, sizeof(*d->hosts));
    if (!d->hosts) return sl_cfg_err(err, errlen, "out of memory"), false;
    d->nhosts = nh;
    for (int i = 0; i < nh; i++) {
        const char *pt = ports[np == 1 ? 0 : i];
        if (!sl_parse_int_range(pt, 1, 65535, &d->hosts[i].port))
            return sl_cfg_err(err, errlen, "invalid port: \"%s\"", pt), false;
        if (nh > 1 && !*hosts[i]) return sl_cfg_err(err, errlen, "empty host name in host list \"%s\"", d->host), false;
        if (*hosts[i] && !(d->hosts[i].host = strdup(hosts[i]))) return sl_cfg_err(err, errlen, "out of memory"), false;
    }
    d->port = d->hosts[0].port;
    return pair_roles(d, err, errlen);
}

bool sl_db_def_parse(sl_db_def *d, const char *name, const char *connstr, sl_warn_once *warn, char *err,
                     size_t errlen)
{
    memset(d, 0, sizeof(*d));
    d->pool_size = d->min_pool_size = d->reserve_pool_size = d->max_db_connections = d->pool_mode = -1;
    d->max_db_client_connections = -1;
    d->server_lifetime = d->query_wait_timeout = -1;
    d->target_session_attrs = d->read_write_split = d->replica_fallback = d->replica_load_balance = -1;
    d->max_replica_lag_bytes = -1;
    d->max_replica_lag = -1;
    d->name = strdup(name);
    if (!d->name) return sl_cfg_err(err, errlen, "out of memory"), false;
    entry_ctx ctx = {d, db_specs, sl_db_ignored_keys, "database", warn};
    return sl_connstr_parse(connstr, entry_pair, &ctx, err, errlen) && pair_hosts(d, err, errlen);
}

bool sl_user_def_parse(sl_user_def *u, const char *name, const char *connstr, sl_warn_once *warn, char *err,
                       size_t errlen)
{
    memset(u, 0, sizeof(*u));
    u->pool_mode = u->max_user_connections = u->pool_size = u->reserve_pool_size = -1;
    u->max_user_client_connections = -1;
    u->query_timeout = u->query_wait_timeout = u->idle_transaction_timeout = u->transaction_timeout = -1;
    u->pool_idle_timeout = -1;
    u->client_idle_timeout = -1;
    u->name = strdup(name);
    if (!u->name) return sl_cfg_err(err, errlen, "out of memory"), false;
    entry_ctx ctx = {u, user_specs, sl_user_ignored_keys, "user", warn};
    return sl_connstr_parse(connstr, entry_pair, &ctx, err, errlen);
}

/* The string members of sl_db_def, for free/copy. */
static const size_t db_str_offsets[] = {
    offsetof(sl_db_def, name),          offsetof(sl_db_def, host),          offsetof(sl_db_def, dbname),
    offsetof(sl_db_def, user),          offsetof(sl_db_def, password),      offsetof(sl_db_def, auth_user), offsetof(sl_db_def, auth_query), offsetof(sl_db_def, auth_dbname),
    offsetof(sl_db_def, connect_query), offsetof(sl_db_def, client_encoding), offsetof(sl_db_def, datestyle),
    offsetof(sl_db_def, timezone),      offsetof(sl_db_def, application_name), offsetof(sl_db_def, port_list),
    offsetof(sl_db_def, role_map),
};
#define N_DB_STR (sizeof(db_str_offsets) / sizeof(db_str_offsets[0]))

void sl_db_def_free(sl_db_def *d)
{
    if (!d) return;
    for (size_t i = 0; i < N_DB_STR; i++) {
        char **slot = (char **)((char *)d + db_str_offsets[i]);
        free(*slot);
        *slot = NULL;
    }
    for (int i = 0; i < d->nhosts; i++) free(d->hosts[i].host);
    free(d->hosts);
    d->hosts = NULL;
    d->nhosts = 0;
}

void sl_user_def_free(sl_user_def *u)
{
    if (!u) return;
    free(u->name);
    u->name = NULL;
}

bool sl_db_def_copy(sl_db_def *dst, const sl_db_def *src)
{
    bool ok = true;
    *dst = *src;
    for (size_t i = 0; i < N_DB_STR; i++) {
        char **slot = (char **)((char *)dst + db_str_offsets[i]);
        const char *from = *(char *const *)((const char *)src + db_str_offsets[i]);
        *slot = sl_cfg_strdup(from);
        if (from && !*slot) ok = false;
    }
    dst->hosts = calloc((size_t)(src->nhosts ? src->nhosts : 1), sizeof(*dst->hosts));
    if (!dst->hosts) {
        dst->nhosts = 0;
        return false;
    }
    for (int i = 0; i < src->nhosts; i++) {
        dst->hosts[i].port = src->hosts[i].port;
        dst->hosts[i].role = src->hosts[i].role;
        dst->hosts[i].host = sl_cfg_strdup(src->hosts[i].host);
        if (src->hosts[i].host && !dst->hosts[i].host) ok = false;
    }
    return ok;
}

bool sl_user_def_copy(sl_user_def *dst, const sl_user_def *src)
{
    *dst = *src;
    dst->name = sl_cfg_strdup(src->name);
    return dst->name != NULL;
}
