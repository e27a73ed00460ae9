/* metrics.c - GET /metrics: Prometheus text format 0.0.4 (per pool gauges, per database counters
 * and latency histograms, per worker counters). Metric list: docs/MONITORING.md. */
#include <stddef.h>
#include <stdio.h>

#include "core/session_state.h"
#include "core/client.h"
#include "core/dispatch.h"
#include "core/listen_fanout.h"
#include "core/lifecycle.h"
#include "core/server.h"
#include "http/routes.h"
#include "http/snapshot.h"

/* Per-database counters of sl_pool_stats, one family each. */
static const struct {
    const char *name, *help;
    size_t offset;
} db_counters[] = {
    {"pgsluice_transactions_total", "Transactions completed (in session mode: per server release).",
     offsetof(sl_pool_stats, xact_count)},
    {"pgsluice_queries_total", "Queries completed.", offsetof(sl_pool_stats, query_count)},
    {"pgsluice_received_bytes_total", "Bytes received from clients.", offsetof(sl_pool_stats, bytes_in)},
    {"pgsluice_sent_bytes_total", "Bytes sent to clients.", offsetof(sl_pool_stats, bytes_out)},
    {"pgsluice_client_logins_total", "Client logins.", offsetof(sl_pool_stats, client_logins)},
    {"pgsluice_server_connects_total", "Server connections opened and logged in (connection churn).",
     offsetof(sl_pool_stats, server_connects)},
    {"pgsluice_server_login_failures_total", "Server connections that failed to connect or log in.",
     offsetof(sl_pool_stats, server_login_failures)},
    {"pgsluice_client_parses_total", "Named Parse messages from clients (transaction-mode prepared statements).",
     offsetof(sl_pool_stats, client_parses)},
    {"pgsluice_binds_total", "Bind messages of named statements from clients.", offsetof(sl_pool_stats, binds)},
    {"pgsluice_server_prepares_total", "Statements pgsluice prepared on a server (Parse sent).",
     offsetof(sl_pool_stats, prepares)},
    {"pgsluice_prepare_cache_hits_total", "Parse/Bind/Describe served by a statement the server already had.",
     offsetof(sl_pool_stats, prepare_hits)},
    {"pgsluice_prepare_evictions_total", "Statements closed on a server to respect max_prepared_statements.",
     offsetof(sl_pool_stats, prepare_evictions)},
};

static const struct {
    const char *name, *help;
    size_t offset;
} db_hists[] = {
    {"pgsluice_transaction_duration_seconds", "Transaction duration, from the first query to its end.",
     offsetof(sl_pool_stats, h_xact)},
    {"pgsluice_query_duration_seconds", "Query duration.", offsetof(sl_pool_stats, h_query)},
    {"pgsluice_client_wait_seconds", "Time clients waited for a server.", offsetof(sl_pool_stats, h_wait)},
};

static void family(sl_tb *b, const char *name, const char *type, const char *help)
{
    sl_tb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void label(sl_tb *b, const char *first, const char *name, const char *value)
{
    sl_tb_printf(b, "%s%s=\"", first, name);
    sl_tb_prom_label(b, value);
    sl_tb_put(b, "\"");
}

static void pool_labels(sl_tb *b, const char *metric, const sl_route_snap *p)
{
    sl_tb_put(b, metric);
    label(b, "{", "database", p->db);
    label(b, ",", "user", p->user);
}

static void sample(sl_tb *b, double v)
{
    sl_tb_put(b, " ");
    sl_tb_num(b, v);
    sl_tb_put(b, "\n");
}

static void process_metrics(sl_tb *b, const sl_snapshot *s)
{
    family(b, "pgsluice_info", "gauge", "Always 1; the version in a label.");
    sl_tb_printf(b, "pgsluice_info{version=\"%s\"} 1\n", SL_VERSION);
    family(b, "pgsluice_paused", "gauge", "1 while pgsluice is paused (PAUSE, SIGUSR1).");
    sl_tb_printf(b, "pgsluice_paused %d\n", s->run_state == SL_RUN_PAUSED);
    family(b, "pgsluice_shutting_down", "gauge", "1 while pgsluice is shutting down.");
    sl_tb_printf(b, "pgsluice_shutting_down %d\n", s->run_state >= SL_RUN_SHUTDOWN_GRACEFUL);
    family(b, "pgsluice_clients", "gauge", "Client connections, all workers.");
    sl_tb_printf(b, "pgsluice_clients %d\n", s->total_clients);
    family(b, "pgsluice_pools", "gauge", "Pools (one per database and user).");
    sl_tb_printf(b, "pgsluice_pools %d\n", s->npools);
    family(b, "pgsluice_pinned_clients", "gauge",
           "Clients kept on their server in transaction pooling because of session state (pin_session_state).");
    sl_tb_printf(b, "pgsluice_pinned_clients %lld\n", (long long)__atomic_load_n(&sl_pinned_clients, __ATOMIC_RELAXED));
    family(b, "pgsluice_pins_total", "counter",
           "Times a client was pinned to its server, by reason (a client pinned for two reasons counts twice).");
    for (int r = 0; r < SL_PIN_NREASONS; r++)
        sl_tb_printf(b, "pgsluice_pins_total{reason=\"%s\"} %llu\n", sl_pin_reason_names[r],
                     (unsigned long long)__atomic_load_n(&sl_pins_total[r], __ATOMIC_RELAXED));
    sl_fanout_stats fo;
    sl_fanout_get_stats(&fo);
    family(b, "pgsluice_listen_channels", "gauge",
           "LISTEN fan-out: channels the listener connections listen on (all databases).");
    sl_tb_printf(b, "pgsluice_listen_channels %lld\n", (long long)fo.channels);
    family(b, "pgsluice_listen_connections", "gauge", "LISTEN fan-out: listener connections open (one per database).");
    sl_tb_printf(b, "pgsluice_listen_connections %lld\n", (long long)fo.listeners);
    family(b, "pgsluice_listen_subscriptions", "gauge", "LISTEN fan-out: (client, channel) subscriptions.");
    sl_tb_printf(b, "pgsluice_listen_subscriptions %lld\n", (long long)fo.subscriptions);
    family(b, "pgsluice_listen_notifications_total", "counter", "LISTEN fan-out: notifications written to clients.");
    sl_tb_printf(b, "pgsluice_listen_notifications_total %llu\n", (unsigned long long)fo.delivered);
    family(b, "pgsluice_listen_reconnects_total", "counter",
           "LISTEN fan-out: listener connections lost and opened again (notifications sent in between are lost).");
    sl_tb_printf(b, "pgsluice_listen_reconnects_total %llu\n", (unsigned long long)fo.reconnects);
    family(b, "pgsluice_listen_dropped_clients_total", "counter",
           "LISTEN fan-out: clients disconnected with more than listen_queue_max notifications waiting.");
    sl_tb_printf(b, "pgsluice_listen_dropped_clients_total %llu\n", (unsigned long long)fo.dropped_clients);
}

static void pool_state_family(sl_tb *b, const sl_snapshot *s, const char *name, const char *help, bool servers)
{
    static const char *const cl_states[] = {"active", "waiting"};
    static const char *const sv_states[] = {"active", "idle", "used", "login"};
    family(b, name, "gauge", help);
    for (int i = 0; i < s->npools; i++) {
        const sl_route_snap *p = &s->pools[i];
        int cl[] = {p->cl_active, p->cl_waiting}, sv[] = {p->sv_active, p->sv_idle, p->sv_used, p->sv_login};
        int n = servers ? 4 : 2;
        for (int k = 0; k < n; k++) {
            pool_labels(b, name, p);
            sl_tb_printf(b, ",state=\"%s\"} %d\n", servers ? sv_states[k] : cl_states[k], servers ? sv[k] : cl[k]);
        }
    }
}

typedef double (*pool_value_fn)(const sl_route_snap *p);
static double v_maxwait(const sl_route_snap *p) { return (double)p->maxwait_us / 1e6; }
static double v_size(const sl_route_snap *p) { return p->pool_size; }
static double v_reserve(const sl_route_snap *p) { return p->reserve_size; }
static double v_util(const sl_route_snap *p) { return p->pool_size > 0 ? (double)p->sv_active / p->pool_size : 0; }

static void pool_gauge(sl_tb *b, const sl_snapshot *s, const char *name, const char *help, pool_value_fn fn)
{
    family(b, name, "gauge", help);
    for (int i = 0; i < s->npools; i++) {
        pool_labels(b, name, &s->pools[i]);
        sl_tb_put(b, "}");
        sample(b, fn(&s->pools[i]));
    }
}

static void pool_metrics(sl_tb *b, const sl_snapshot *s)
{
    pool_state_family(b, s, "pgsluice_pool_clients", "Logged-in clients by state (active: not waiting).", false);
    pool_state_family(b, s, "pgsluice_pool_servers",
                      "Server connections by state (used: idle longer than server_check_delay; login: connecting).", true);
    pool_gauge(b, s, "pgsluice_pool_maxwait_seconds", "How long the oldest waiting client has waited.", v_maxwait);
    pool_gauge(b, s, "pgsluice_pool_size", "Configured pool size.", v_size);
    pool_gauge(b, s, "pgsluice_pool_reserve_size", "Configured reserve pool size.", v_reserve);
    pool_gauge(b, s, "pgsluice_pool_utilization_ratio", "Active servers divided by the pool size.", v_util);
}

static uint64_t counter_at(const sl_pool_stats *st, size_t offset)
{
    return *(const uint64_t *)((const char *)st + offset);
}

static void db_counter_metrics(sl_tb *b, const sl_snapshot *s)
{
    family(b, "pgsluice_database_backend_up", "gauge",
           "1 if the database's backend accepts connections and no server login failed within server_login_retry "
           "(with roles: its primary is up; for a read-only name, a replica in rotation or the fallback).");
    for (int i = 0; i < s->ndbs; i++) {
        label(b, "pgsluice_database_backend_up{", "database", s->dbs[i].name);
        sl_tb_printf(b, "} %d\n", s->dbs[i].reachable);
    }
    for (size_t k = 0; k < sizeof(db_counters) / sizeof(db_counters[0]); k++) {
        family(b, db_counters[k].name, "counter", db_counters[k].help);
        for (int i = 0; i < s->ndbs; i++) {
            sl_tb_put(b, db_counters[k].name);
            label(b, "{", "database", s->dbs[i].name);
            sl_tb_printf(b, "} %llu\n", (unsigned long long)counter_at(&s->dbs[i].stats, db_counters[k].offset));
        }
    }
    family(b, "pgsluice_errors_total", "counter", "Errors sent to clients, by SQLSTATE class (two characters, or other).");
    for (int i = 0; i < s->ndbs; i++)
        for (int c = 0; c < SL_NERRCLASS; c++) {
            label(b, "pgsluice_errors_total{", "database", s->dbs[i].name);
            sl_tb_printf(b, ",class=\"%s\"} %llu\n", sl_error_class_names[c], (unsigned long long)s->dbs[i].stats.errors[c]);
        }
}

/* Databases with roles: each host's health, role and lag as the health checks see them. The lag
 * family is the one the shipped PgsluiceReplicaLag alert watches. */
static void host_labels(sl_tb *b, const char *metric, const sl_topo_snap_db *d, const char *hname,
                        const sl_topo_snap_host *h)
{
    sl_tb_put(b, metric);
    label(b, "{", "database", d->name);
    label(b, ",", hname, h->addr);
}

static void routing_metrics(sl_tb *b, const sl_snapshot *s)
{
    const sl_topo_snap *t = &s->topo;
    family(b, "pgsluice_backend_up", "gauge",
           "1 if the last health check of the host answered (databases with roles); role: what it is now.");
    for (int i = 0; i < t->n; i++)
        for (int k = 0; k < t->dbs[i].n; k++) {
            const sl_topo_snap_host *h = &t->dbs[i].hosts[k];
            host_labels(b, "pgsluice_backend_up", &t->dbs[i], "host", h);
            label(b, ",", "role", h->role == SL_ROLE_ANY ? "unknown" : sl_role_name((sl_role)h->role));
            sl_tb_printf(b, "} %d\n", h->host_state == SL_HOST_UP);
        }
    family(b, "pgsluice_backend_in_rotation", "gauge",
           "1 if the host serves clients now: the primary (writes) or a replica in rotation (reads).");
    for (int i = 0; i < t->n; i++)
        for (int k = 0; k < t->dbs[i].n; k++) {
            const sl_topo_snap_host *h = &t->dbs[i].hosts[k];
            host_labels(b, "pgsluice_backend_in_rotation", &t->dbs[i], "host", h);
            label(b, ",", "role", h->role == SL_ROLE_ANY ? "unknown" : sl_role_name((sl_role)h->role));
            sl_tb_printf(b, "} %d\n", h->writes || h->reads);
        }
    family(b, "pgsluice_replica_lag_seconds", "gauge",
           "How long ago the primary first had WAL the replica has not replayed (0: caught up).");
    for (int i = 0; i < t->n; i++)
        for (int k = 0; k < t->dbs[i].n; k++) {
            const sl_topo_snap_host *h = &t->dbs[i].hosts[k];
            if (h->role != SL_ROLE_REPLICA || h->lag_us < 0) continue;
            host_labels(b, "pgsluice_replica_lag_seconds", &t->dbs[i], "replica", h);
            sl_tb_put(b, "}");
            sample(b, (double)h->lag_us / 1e6);
        }
    family(b, "pgsluice_replica_lag_bytes", "gauge", "WAL bytes the primary has and the replica has not replayed.");
    for (int i = 0; i < t->n; i++)
        for (int k = 0; k < t->dbs[i].n; k++) {
            const sl_topo_snap_host *h = &t->dbs[i].hosts[k];
            if (h->role != SL_ROLE_REPLICA || h->lag_bytes < 0) continue;
            host_labels(b, "pgsluice_replica_lag_bytes", &t->dbs[i], "replica", h);
            sl_tb_printf(b, "} %lld\n", (long long)h->lag_bytes);
        }
    family(b, "pgsluice_database_has_primary", "gauge", "1 while a database with roles has a primary to write to.");
    for (int i = 0; i < t->n; i++) {
        label(b, "pgsluice_database_has_primary{", "database", t->dbs[i].name);
        sl_tb_printf(b, "} %d\n", t->dbs[i].primary >= 0);
    }
    family(b, "pgsluice_primary_changes_total", "counter",
           "Times a database's writes moved to another host (a promoted replica).");
    for (int i = 0; i < t->n; i++) {
        label(b, "pgsluice_primary_changes_total{", "database", t->dbs[i].name);
        sl_tb_printf(b, "} %llu\n", (unsigned long long)t->dbs[i].primary_changes);
    }
}

static void histogram(sl_tb *b, const char *name, const char *db, const sl_hist *h)
{
    uint64_t cum = 0;
    for (int i = 0; i < SL_HIST_BUCKETS; i++) {
        cum += h->count[i];
        sl_tb_put(b, name);
        label(b, "_bucket{", "database", db);
        if (i < SL_HIST_NBOUNDS) sl_tb_printf(b, ",le=\"%.9g\"} %llu\n", (double)sl_hist_bounds_us[i] / 1e6, (unsigned long long)cum);
        else sl_tb_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    sl_tb_put(b, name);
    label(b, "_sum{", "database", db);
    sl_tb_put(b, "}");
    sample(b, (double)h->sum_us / 1e6);
    sl_tb_put(b, name);
    label(b, "_count{", "database", db);
    sl_tb_printf(b, "} %llu\n", (unsigned long long)cum);
}

static void db_histogram_metrics(sl_tb *b, const sl_snapshot *s)
{
    for (size_t k = 0; k < sizeof(db_hists) / sizeof(db_hists[0]); k++) {
        family(b, db_hists[k].name, "histogram", db_hists[k].help);
        for (int i = 0; i < s->ndbs; i++)
            histogram(b, db_hists[k].name, s->dbs[i].name,
                      (const sl_hist *)((const char *)&s->dbs[i].stats + db_hists[k].offset));
    }
}

static void worker_metrics(sl_tb *b, const sl_snapshot *s)
{
    family(b, "pgsluice_worker_clients", "gauge", "Client connections owned by the worker thread.");
    for (int i = 0; i < s->nworkers; i++) sl_tb_printf(b, "pgsluice_worker_clients{worker=\"%d\"} %d\n", i, s->workers[i].clients);
    family(b, "pgsluice_worker_clients_accepted_total", "counter", "Client connections accepted by the worker thread.");
    for (int i = 0; i < s->nworkers; i++)
        sl_tb_printf(b, "pgsluice_worker_clients_accepted_total{worker=\"%d\"} %llu\n", i, (unsigned long long)s->workers[i].accepted);
    family(b, "pgsluice_worker_events_total", "counter", "Socket events handled by the worker thread.");
    for (int i = 0; i < s->nworkers; i++)
        sl_tb_printf(b, "pgsluice_worker_events_total{worker=\"%d\"} %llu\n", i, (unsigned long long)s->workers[i].events);
    family(b, "pgsluice_worker_cpu_seconds_total", "counter", "User and system CPU time of the worker thread.");
    for (int i = 0; i < s->nworkers; i++) {
        sl_tb_printf(b, "pgsluice_worker_cpu_seconds_total{worker=\"%d\"}", i);
        sample(b, (double)s->workers[i].cpu_us / 1e6);
    }
}

int sl_page_metrics(sl_http_req *r, sl_tb *out)
{
    r->content_type = SL_CT_PROM;
    sl_snapshot *s = sl_snapshot_take(true);
    if (!s) return (sl_tb_put(out, "# out of memory\n"), 500);
    int status = sl_render_metrics(s, out);
    sl_snapshot_free(s);
    return status;
}

int sl_render_metrics(const sl_snapshot *s, sl_tb *out)
{
    process_metrics(out, s);
    pool_metrics(out, s);
    db_counter_metrics(out, s);
    db_histogram_metrics(out, s);
    routing_metrics(out, s);
    worker_metrics(out, s);
    return 200;
}
