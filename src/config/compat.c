/* compat.c - PgBouncer names pgsluice accepts (implemented or ignored) and the warn-once helper. */
#include "config/config_int.h"

#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* [pgbouncer] settings of PgBouncer 1.25/1.26 that pgsluice does not implement: accepted, warned, ignored. */
const sl_key_doc sl_ignored_settings[] = {
    {"conffile", "path of the configuration file (informational)"},
    {"dns_nxdomain_ttl", "negative DNS cache lifetime"},
    {"dns_zone_check_period", "DNS zone serial check period"},
    {"job_name", "service name for Windows event log / systemd"},
    {"resolv_conf", "alternative resolv.conf for the DNS resolver"},
    {"service_name", "Windows service name (alias of job_name)"},
    {NULL, NULL},
};

/* PgBouncer names that pgsluice spells differently; description = the pgsluice setting. */
const sl_key_doc sl_setting_aliases[] = {
    {"listen_backlog", "tcp_backlog"},
    {NULL, NULL},
};

const sl_key_doc sl_db_keys[] = {
    {"host", "server host name or IP; a value starting with / is a Unix socket directory"},
    {"port", "server port (default 5432)"},
    {"dbname", "database name on the server (default: the entry name)"},
    {"user", "connect to the server as this user whatever the client's user"},
    {"password", "password for user"},
    {"password_file", "file holding the password (a Docker or Kubernetes secret); trailing newlines are dropped"},
    {"auth_user", "user that runs auth_query for this database (overrides the global auth_user)"},
    {"auth_query", "the query that looks up passwords for this database (overrides the global auth_query)"},
    {"auth_dbname", "database in which auth_query runs for this database (overrides the global auth_dbname)"},
    {"pool_size", "overrides default_pool_size"},
    {"min_pool_size", "overrides min_pool_size"},
    {"reserve_pool_size", "overrides reserve_pool_size (the old name reserve_pool is accepted too)"},
    {"max_db_connections", "overrides max_db_connections"},
    {"max_db_client_connections", "the most client connections to this database (logged in); more are refused with 53300"},
    {"load_balance_hosts", "with several hosts: round-robin (default: each new server connection to the next host) or disable (the same host until connecting to it fails); a host whose logins fail is skipped while server_login_retry runs"},
    {"server_lifetime", "overrides server_lifetime for this database's server connections"},
    {"query_wait_timeout", "overrides query_wait_timeout (a [users] value wins over it)"},
    {"pool_mode", "overrides pool_mode"},
    {"connect_query", "query run on each new server connection"},
    {"client_encoding", "client_encoding sent to the server"},
    {"datestyle", "DateStyle sent to the server"},
    {"timezone", "TimeZone sent to the server"},
    {"application_name", "application_name sent to the server"},
    {"role_map", "with several hosts: what each one is expected to be, in the order of host= (primary, replica or auto), e.g. host=db1,db2 role_map=primary,replica. It is trusted until the first health check answers (and while the checks cannot log in); what the checks find (pg_is_in_recovery()) wins, so a promoted replica takes the writes"},
    {"target_session_attrs", "which servers this name's clients get, libpq's names: read-write or primary (the primary; the default of a database with roles), read-only (replicas, the primary while none is in rotation if replica_fallback is on), standby (replicas only), prefer-standby (replicas, else the primary), any (any reachable host). Any value but any makes the hosts health checked"},
    {"read_write_split", "overrides read_write_split"},
    {"replica_fallback", "overrides replica_fallback"},
    {"replica_load_balance", "overrides replica_load_balance"},
    {"max_replica_lag", "overrides max_replica_lag"},
    {"max_replica_lag_bytes", "overrides max_replica_lag_bytes"},
    {NULL, NULL},
};

const sl_key_doc sl_db_ignored_keys[] = {
    {NULL, NULL},
};

const sl_key_doc sl_user_keys[] = {
    {"pool_mode", "overrides pool_mode for this user"},
    {"max_user_connections", "overrides max_user_connections"},
    {"pool_size", "overrides the pool size for this user's pools"},
    {"reserve_pool_size", "overrides reserve_pool_size for this user's pools"},
    {"max_user_client_connections", "the most client connections of this user (logged in); more are refused with 53300"},
    {"query_timeout", "overrides query_timeout for this user's clients"},
    {"query_wait_timeout", "overrides query_wait_timeout (also a database's) for this user's clients"},
    {"idle_transaction_timeout", "overrides idle_transaction_timeout for this user's clients"},
    {"transaction_timeout", "overrides transaction_timeout for this user's clients"},
    {"client_idle_timeout", "overrides client_idle_timeout for this user's clients"},
    {"pool_idle_timeout", "overrides pool_idle_timeout for this user's pools"},
    {NULL, NULL},
};

const sl_key_doc sl_user_ignored_keys[] = {
    {NULL, NULL},
};

const sl_key_doc *sl_key_doc_find(const sl_key_doc *list, const char *name)
{
    for (; name && list->name; list++)
        if (strcasecmp(list->name, name) == 0) return list;
    return NULL;
}

const char *sl_setting_alias_target(const char *name)
{
    const sl_key_doc *d = sl_key_doc_find(sl_setting_aliases, name);
    return d ? d->description : NULL;
}

static bool seen_before(const sl_warn_once *w, const char *tag)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcasecmp(w->seen[i], tag) == 0) return true;
    return false;
}

void sl_warn_once_log(sl_warn_once *w, const char *tag, const char *fmt, ...)
{
    if (seen_before(w, tag)) return;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 8;
        char **p = realloc(w->seen, cap * sizeof(*p));
        if (!p) return;
        w->seen = p;
        w->cap = cap;
    }
    char *dup = strdup(tag);
    if (!dup) return;
    w->seen[w->n++] = dup;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (w->where[0])
        sl_log_warn("%s: %s", w->where, msg);
    else
        sl_log_warn("%s", msg);
}

void sl_warn_once_free(sl_warn_once *w)
{
    for (size_t i = 0; i < w->n; i++) free(w->seen[i]);
    free(w->seen);
    w->seen = NULL;
    w->n = w->cap = 0;
}
