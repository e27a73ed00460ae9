/* stats.c - SHOW STATS, STATS_TOTALS, STATS_AVERAGES and TOTALS. Totals are exact: a worker round
 * first moves every busy server's not-yet-counted share into its pool. Averages cover the last
 * complete stats_period: worker 0 snapshots every pool at each boundary (and logs a stats line
 * when log_stats is on). */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "core/client.h"
#include "core/dispatch.h"
#include "core/lifecycle.h"
#include "core/server.h"
#include "pool/pool.h"
#include "util/log.h"
#include "util/time.h"

/* Held while the period snapshots change and while a SHOW reads them, so every pool's snapshot and
 * the stamps agree. Order: stats_lock, then the pool list lock, then a pool lock. */
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t old_stamp, new_stamp; /* monotonic usec of the last two boundaries */

typedef enum { ST_STATS, ST_TOTALS_ONLY, ST_AVERAGES_ONLY, ST_TOTALS } stats_kind;

typedef struct db_acc {
    const char *db;
    sl_pool_totals cur, old, new_;
} db_acc;

typedef struct acc_list {
    db_acc *v;
    int n, cap;
    int64_t now;
} acc_list;

static void add_totals(sl_pool_totals *a, const sl_pool_totals *b)
{
    a->assignments += b->assignments;
    a->xact_count += b->xact_count;
    a->query_count += b->query_count;
    a->bytes_in += b->bytes_in;
    a->bytes_out += b->bytes_out;
    a->xact_time_us += b->xact_time_us;
    a->query_time_us += b->query_time_us;
    a->wait_time_us += b->wait_time_us;
    a->client_parses += b->client_parses;
    a->server_parses += b->server_parses;
    a->binds += b->binds;
    a->client_logins += b->client_logins;
}

static db_acc *acc_for(acc_list *l, const char *db)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].db, db)) return &l->v[i];
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        db_acc *n = realloc(l->v, (size_t)cap * sizeof(*n));
        if (!n) return NULL;
        l->v = n;
        l->cap = cap;
    }
    db_acc *a = &l->v[l->n++];
    memset(a, 0, sizeof(*a));
    a->db = db;
    return a;
}

static void acc_route(sl_route *p, void *arg)
{
    acc_list *l = arg;
    db_acc *a = acc_for(l, p->db_group->name); /* groups are never freed, routes may be */
    if (!a) return;
    sl_pool_totals cur;
    sl_mutex_lock(&p->lock);
    sl_route_totals_locked(p, &cur, l->now);
    add_totals(&a->old, &p->period_old);
    add_totals(&a->new_, &p->period_new);
    sl_mutex_unlock(&p->lock);
    add_totals(&a->cur, &cur);
}

/* Routes freed after autodb_idle_timeout left their totals with their database: they count in
 * every snapshot alike (so the rates between two snapshots do not move). */
static void acc_retired(const char *db, const sl_pool_totals *t, void *arg)
{
    acc_list *l = arg;
    db_acc *a = acc_for(l, db);
    if (!a) return;
    add_totals(&a->cur, t);
    add_totals(&a->old, t);
    add_totals(&a->new_, t);
}

static int cmp_acc(const void *a, const void *b) { return strcmp(((const db_acc *)a)->db, ((const db_acc *)b)->db); }

/* Per-second rates and per-event averages between two snapshots (PgBouncer's definitions). */
static void averages(sl_pool_totals *avg, const sl_pool_totals *new_, const sl_pool_totals *old, int64_t dur)
{
    memset(avg, 0, sizeof(*avg));
    if (dur <= 0) return;
    uint64_t d = (uint64_t)dur, xacts = new_->xact_count - old->xact_count;
    uint64_t queries = new_->query_count - old->query_count, assigns = new_->assignments - old->assignments;
    avg->xact_count = xacts * 1000000 / d;
    avg->query_count = queries * 1000000 / d;
    avg->assignments = assigns * 1000000 / d;
    avg->bytes_in = (new_->bytes_in - old->bytes_in) * 1000000 / d;
    avg->bytes_out = (new_->bytes_out - old->bytes_out) * 1000000 / d;
    avg->client_parses = (new_->client_parses - old->client_parses) * 1000000 / d;
    avg->server_parses = (new_->server_parses - old->server_parses) * 1000000 / d;
    avg->binds = (new_->binds - old->binds) * 1000000 / d;
    avg->client_logins = (new_->client_logins - old->client_logins) * 1000000 / d;
    if (xacts) avg->xact_time_us = (new_->xact_time_us - old->xact_time_us) / xacts;
    if (queries) avg->query_time_us = (new_->query_time_us - old->query_time_us) / queries;
    if (assigns) avg->wait_time_us = (new_->wait_time_us - old->wait_time_us) / assigns;
}

/* ---- columns ---- */

#define TOTAL_COLS                                                                                             \
    "total_server_assignment_count", "total_xact_count", "total_query_count", "total_received", "total_sent", \
        "total_xact_time", "total_query_time", "total_wait_time", "total_client_parse_count",                 \
        "total_server_parse_count", "total_bind_count", "total_client_login_count"
#define AVG_COLS                                                                                                  \
    "avg_server_assignment_count", "avg_xact_count", "avg_query_count", "avg_recv", "avg_sent", "avg_xact_time", \
        "avg_query_time", "avg_wait_time", "avg_client_parse_count", "avg_server_parse_count", "avg_bind_count", \
        "avg_client_login_count"
#define PLAIN_COLS                                                                                              \
    "server_assignment_count", "xact_count", "query_count", "bytes_received", "bytes_sent", "xact_time",       \
        "query_time", "wait_time"

void adm_cols_stats(adm_result *r) { adm_cols(r, "sNNNNNNNNNNNNNNNNNNNNNNNN", "database", TOTAL_COLS, AVG_COLS); }
void adm_cols_stats_totals(adm_result *r)
{
    adm_cols(r, "sNNNNNNNNNNNN", "database", PLAIN_COLS, "client_parse_count", "server_parse_count", "bind_count",
             "client_login_count");
}
void adm_cols_stats_averages(adm_result *r)
{
    adm_cols(r, "sNNNNNNNNNNNN", "database", PLAIN_COLS, "avg_client_parse_count", "avg_server_parse_count",
             "avg_bind_count", "avg_client_login_count");
}
void adm_cols_totals(adm_result *r) { adm_cols(r, "sN", "name", "value"); }

/* ---- rows ---- */

#define T12(t)                                                                                                      \
    (t)->assignments, (t)->xact_count, (t)->query_count, (t)->bytes_in, (t)->bytes_out, (t)->xact_time_us,          \
        (t)->query_time_us, (t)->wait_time_us, (t)->client_parses, (t)->server_parses, (t)->binds, (t)->client_logins

static void db_row(adm_result *r, stats_kind kind, const char *db, const sl_pool_totals *cur,
                   const sl_pool_totals *avg)
{
    if (kind == ST_STATS) adm_row(r, "sNNNNNNNNNNNNNNNNNNNNNNNN", db, T12(cur), T12(avg));
    else if (kind == ST_TOTALS_ONLY) adm_row(r, "sNNNNNNNNNNNN", db, T12(cur));
    else adm_row(r, "sNNNNNNNNNNNN", db, T12(avg));
}

static void totals_rows(adm_result *r, const sl_pool_totals *t, const sl_pool_totals *a)
{
    static const char *const names[] = {"server_assignment_count", "xact_count", "query_count", "client_bytes",
                                        "server_bytes", "xact_time", "query_time", "wait_time",
                                        "ps_client_parse_count", "ps_server_parse_count", "ps_bind_count",
                                        "client_login_count"};
    uint64_t tv[] = {T12(t)}, av[] = {T12(a)};
    char name[64];
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "total_%s", names[i]);
        adm_row(r, "sN", name, tv[i]);
    }
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "avg_%s", names[i]);
        adm_row(r, "sN", name, av[i]);
    }
}

static void build(adm_result *r, stats_kind kind)
{
    acc_list l = {.now = sl_now_us()};
    pthread_mutex_lock(&stats_lock);
    int64_t dur = new_stamp - old_stamp;
    sl_pools_foreach(acc_route, &l);
    sl_pools_foreach_retired(acc_retired, &l);
    pthread_mutex_unlock(&stats_lock);
    if (l.n) qsort(l.v, (size_t)l.n, sizeof(db_acc), cmp_acc);
    sl_pool_totals sum = {0}, sum_old = {0}, sum_new = {0}, avg;
    static const sl_pool_totals zero;
    /* the console's own row counts its logins (as PgBouncer's admin pool does), and so do the totals */
    sl_pool_totals console = {.client_logins = __atomic_load_n(&adm_nlogins, __ATOMIC_RELAXED)};
    sum.client_logins = sum_old.client_logins = sum_new.client_logins = console.client_logins;
    if (kind == ST_STATS) adm_cols_stats(r);
    else if (kind == ST_TOTALS_ONLY) adm_cols_stats_totals(r);
    else if (kind == ST_AVERAGES_ONLY) adm_cols_stats_averages(r);
    else adm_cols_totals(r);
    bool admin_row_done = false;
    for (int i = 0; i <= l.n; i++) {
        /* the console's own database, in its sorted place, like PgBouncer's admin pool */
        if (!admin_row_done && kind != ST_TOTALS && (i == l.n || strcmp(l.v[i].db, "pgbouncer") > 0)) {
            db_row(r, kind, "pgbouncer", &console, &zero);
            admin_row_done = true;
        }
        if (i == l.n) break;
        averages(&avg, &l.v[i].new_, &l.v[i].old, dur);
        if (kind != ST_TOTALS) db_row(r, kind, l.v[i].db, &l.v[i].cur, &avg);
        add_totals(&sum, &l.v[i].cur);
        add_totals(&sum_old, &l.v[i].old);
        add_totals(&sum_new, &l.v[i].new_);
    }
    if (kind == ST_TOTALS) {
        averages(&avg, &sum_new, &sum_old, dur);
        totals_rows(r, &sum, &avg);
    }
    free(l.v);
}

/* ---- the flush round ---- */

/* Move the counters of this worker's busy servers into their pools. */
static void flush_worker(sl_worker *w, void *arg)
{
    (void)arg;
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (s->state == SL_SV_ACTIVE || s->state == SL_SV_SETUP) sl_route_flush_stats(&s->pc, &s->pend);
    }
}

typedef struct show_ctx {
    adm_ref ref;
    stats_kind kind;
} show_ctx;

static void show_done(sl_worker *w, void *arg)
{
    show_ctx *ctx = arg;
    adm_session *s = adm_ref_session(w, &ctx->ref);
    if (s) {
        build(&s->res, ctx->kind);
        adm_async_done(s);
    }
    free(ctx);
}

static adm_status show(adm_session *s, adm_result *r, stats_kind kind)
{
    show_ctx *ctx = malloc(sizeof(*ctx));
    if (ctx) {
        ctx->ref = adm_ref_of(s);
        ctx->kind = kind;
        if (sl_workers_round(s->c->s.w, flush_worker, show_done, ctx)) return ADM_ASYNC;
        free(ctx);
    }
    build(r, kind); /* out of memory: the pools' counters as they are */
    return ADM_DONE;
}

adm_status adm_show_stats(adm_session *s, adm_result *r) { return show(s, r, ST_STATS); }
adm_status adm_show_stats_totals(adm_session *s, adm_result *r) { return show(s, r, ST_TOTALS_ONLY); }
adm_status adm_show_stats_averages(adm_session *s, adm_result *r) { return show(s, r, ST_AVERAGES_ONLY); }
adm_status adm_show_totals(adm_session *s, adm_result *r) { return show(s, r, ST_TOTALS); }

/* ---- stats_period boundaries (worker 0) ---- */

static int64_t next_due;
static bool period_round; /* worker 0 only */

static void snap_pool(sl_route *p, void *arg)
{
    int64_t now = *(const int64_t *)arg;
    sl_mutex_lock(&p->lock);
    p->period_old = p->period_new;
    sl_route_totals_locked(p, &p->period_new, now);
    sl_mutex_unlock(&p->lock);
}

static void sum_pool(sl_route *p, void *arg)
{
    sl_pool_totals *sums = arg;
    sl_mutex_lock(&p->lock);
    add_totals(&sums[0], &p->period_old);
    add_totals(&sums[1], &p->period_new);
    sl_mutex_unlock(&p->lock);
}

static void log_period(int64_t dur)
{
    sl_pool_totals sums[2] = {{0}, {0}}, avg;
    sl_pools_foreach(sum_pool, sums);
    averages(&avg, &sums[1], &sums[0], dur);
    /* PgBouncer's wording (pgbadger reads it) */
    sl_log_info("stats: %" PRIu64 " xacts/s, %" PRIu64 " queries/s, %" PRIu64 " client parses/s, %" PRIu64
                " server parses/s, %" PRIu64 " binds/s, in %" PRIu64 " B/s, out %" PRIu64 " B/s, xact %" PRIu64
                " us, query %" PRIu64 " us, wait %" PRIu64 " us",
                avg.xact_count, avg.query_count, avg.client_parses, avg.server_parses, avg.binds, avg.bytes_in,
                avg.bytes_out, avg.xact_time_us, avg.query_time_us, avg.wait_time_us);
}

static void period_done(sl_worker *w, void *arg)
{
    (void)arg;
    int64_t now = sl_now_us();
    pthread_mutex_lock(&stats_lock);
    sl_pools_foreach(snap_pool, &now);
    old_stamp = new_stamp;
    new_stamp = now;
    int64_t dur = new_stamp - old_stamp;
    pthread_mutex_unlock(&stats_lock);
    period_round = false;
    if (w->cfg->log_stats) log_period(dur);
}

void adm_stats_tick(sl_worker *w, int64_t now)
{
    int64_t period = w->cfg->stats_period > 0 ? w->cfg->stats_period : 60000000;
    if (!next_due) {
        pthread_mutex_lock(&stats_lock);
        old_stamp = new_stamp = now;
        pthread_mutex_unlock(&stats_lock);
        next_due = now + period;
        return;
    }
    if (now < next_due || period_round) return;
    next_due = now + period;
    period_round = sl_workers_round(w, flush_worker, period_done, NULL);
}
