/* checker.c - health checks of the hosts of databases with roles. One thread per host keeps a libpq
 * connection of its own (blocking work never runs on a worker's loop) and, every
 * health_check_period (every 250 ms while a database has no primary), asks it in one query whether
 * it is in recovery and where its WAL is; the answer (or the failure: down, or reachable but the
 * check cannot log in) goes to the host's record, the topology is refreshed and what it decided is
 * carried out (waiting clients served, servers opened). A supervisor thread follows config changes,
 * and failover_command runs (in a thread of its own) when a database loses its primary. */
#include "health/checker.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/dispatch.h"
#include "pool/health.h"
#include "pool/pool.h"
#include "util/log.h"
#include "util/time.h"

#define FAST_PERIOD_US 250000         /* while a database has no primary */
#define SUPERVISOR_PERIOD_US 200000
#define FAILOVER_COMMAND_TIMEOUT_S 60

/* One query: role, WAL position (insert position on a primary: it covers commits not yet written
 * with synchronous_commit off; replay position on a replica), what a replica received, how old its
 * last replayed transaction is, whether replay is paused, and a primary's timeline. */
static const char check_sql[] =
    "SELECT pg_is_in_recovery(), "
    "(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END "
    "- '0/0'::pg_lsn)::text, "
    "(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() END - '0/0'::pg_lsn)::text, "
    "CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END, "
    "CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END, "
    "CASE WHEN pg_is_in_recovery() THEN 0 "
    "ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END";

typedef struct checker {
    sl_host *h;
    pthread_t thread;
    bool stop;                   /* atomic */
    bool done;                   /* atomic: the thread has ended */
    PGconn *conn;
    char login_key[1024];        /* what conn logged in with (a change reconnects) */
    struct checker *next;
} checker;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static checker *g_checkers;
static pthread_t g_supervisor;
static bool g_started, g_stop;

/* ---- what to log in with ---- */

typedef struct login {
    const char *kw[16], *val[16];
    char port[16], timeout[16];
    char key[1024];
    char *pw_from_file;          /* health_check_password_file's content (free with login_free) */
} login;

static void login_free(login *lg)
{
    if (lg->pw_from_file) {
        explicit_bzero(lg->pw_from_file, strlen(lg->pw_from_file));
        free(lg->pw_from_file);
    }
    lg->pw_from_file = NULL;
    explicit_bzero(lg->key, sizeof(lg->key));
}

static const char *const sslmodes[] = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"};

/* The credentials of the first routed database that names this host. */
static bool login_for(const sl_config *cfg, const sl_host *h, login *lg)
{
    for (size_t i = 0; i < cfg->n_dbs; i++) {
        const sl_db_def *d = &cfg->dbs[i];
        sl_db_routing rt;
        sl_db_routing_of(cfg, d, &rt);
        if (!rt.routed) continue;
        bool names = false;
        for (int k = 0; k < d->nhosts && !names; k++) {
            const char *hh = d->hosts[k].host && *d->hosts[k].host ? d->hosts[k].host : NULL;
            int port = d->hosts[k].port > 0 ? d->hosts[k].port : 5432;
            names = port == h->port && ((!hh && !h->host) || (hh && h->host && !strcmp(hh, h->host)));
        }
        if (!names) continue;
        const char *user, *pw, *pwfile, *db;
        if (!sl_db_health_login(cfg, d, &user, &pw, &pwfile, &db)) continue;
        if (pwfile) { /* a secret file: read now, so a rotated secret is used by the next connection */
            char why[300];
            lg->pw_from_file = sl_read_secret_file(pwfile, why, sizeof(why));
            if (!lg->pw_from_file) sl_log_warn("health check of database %s: %s", d->name, why);
            pw = lg->pw_from_file;
        }
        int n = 0;
        snprintf(lg->port, sizeof(lg->port), "%d", h->port);
        int64_t t = (cfg->health_check_timeout + 999999) / 1000000;
        snprintf(lg->timeout, sizeof(lg->timeout), "%lld", (long long)(t < 2 ? 2 : t));
        lg->kw[n] = "host", lg->val[n++] = h->host ? h->host : "/var/run/postgresql";
        lg->kw[n] = "port", lg->val[n++] = lg->port;
        lg->kw[n] = "dbname", lg->val[n++] = db;
        lg->kw[n] = "user", lg->val[n++] = user;
        if (pw) lg->kw[n] = "password", lg->val[n++] = pw;
        lg->kw[n] = "application_name", lg->val[n++] = "pgsluice health check";
        lg->kw[n] = "connect_timeout", lg->val[n++] = lg->timeout;
        int mode = cfg->server_tls_sslmode;
        lg->kw[n] = "sslmode", lg->val[n++] = mode >= 0 && mode <= 5 ? sslmodes[mode] : "prefer";
        if (cfg->server_tls_ca_file && *cfg->server_tls_ca_file && strcmp(cfg->server_tls_ca_file, "system"))
            lg->kw[n] = "sslrootcert", lg->val[n++] = cfg->server_tls_ca_file;
        if (cfg->server_tls_cert_file && *cfg->server_tls_cert_file)
            lg->kw[n] = "sslcert", lg->val[n++] = cfg->server_tls_cert_file;
        if (cfg->server_tls_key_file && *cfg->server_tls_key_file)
            lg->kw[n] = "sslkey", lg->val[n++] = cfg->server_tls_key_file;
        lg->kw[n] = NULL, lg->val[n] = NULL;
        size_t used = 0;
        for (int k = 0; k < n && used < sizeof(lg->key); k++)
            used += (size_t)snprintf(lg->key + used, sizeof(lg->key) - used, "%s=%s;", lg->kw[k], lg->val[k]);
        return true;
    }
    return false;
}

/* ---- one check ---- */

static void first_line(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == ' ') s[--n] = '\0';
}

static void set_error(sl_check_result *res, int state, const char *what, const char *msg)
{
    res->state = state;
    snprintf(res->error, sizeof(res->error), "%s%s", what, msg ? msg : "");
    first_line(res->error);
}

static void drop_conn(checker *ch)
{
    if (ch->conn) PQfinish(ch->conn);
    ch->conn = NULL;
    ch->login_key[0] = '\0';
}

/* Wait for the socket in slices, so that stop is noticed; false at the deadline or on stop. */
static bool wait_socket(checker *ch, int fd, bool for_write, int64_t deadline)
{
    for (;;) {
        if (__atomic_load_n(&ch->stop, __ATOMIC_ACQUIRE)) return false;
        int64_t left = deadline - sl_now_us();
        if (left <= 0) return false;
        struct pollfd p = {.fd = fd, .events = for_write ? POLLOUT : POLLIN};
        int ms = (int)(left / 1000) + 1;
        int n = poll(&p, 1, ms > 100 ? 100 : ms);
        if (n > 0) return true;
        if (n < 0 && errno != EINTR) return false;
    }
}

/* A connect that failed: was the server there and refused us (credentials, database: the check
 * cannot tell the role, the pool's own logins will), or not there / not accepting connections? */
static int classify_failure(const login *lg)
{
    PGPing p = PQpingParams(lg->kw, lg->val, 0);
    return p == PQPING_OK ? SL_HOST_CHECK_FAILED : SL_HOST_DOWN;
}

static bool connect_host(checker *ch, const login *lg, int64_t deadline, sl_check_result *res)
{
    PGconn *c = PQconnectStartParams(lg->kw, lg->val, 0);
    if (!c) {
        set_error(res, SL_HOST_CHECK_FAILED, "out of memory", NULL);
        return false;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        if (!wait_socket(ch, PQsocket(c), st == PGRES_POLLING_WRITING, deadline)) {
            PQfinish(c);
            set_error(res, SL_HOST_DOWN, "no answer within health_check_timeout", NULL);
            return false;
        }
        st = PQconnectPoll(c);
    }
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        PQfinish(c);
        set_error(res, classify_failure(lg), "", msg);
        return false;
    }
    PQsetnonblocking(c, 1);
    ch->conn = c;
    snprintf(ch->login_key, sizeof(ch->login_key), "%s", lg->key);
    return true;
}

static uint64_t as_u64(const PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? 0 : strtoull(PQgetvalue(r, 0, col), NULL, 10);
}

static bool parse_answer(const PGresult *r, sl_check_result *res)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 6) return false;
    res->in_recovery = !strcmp(PQgetvalue(r, 0, 0), "t");
    res->lsn = as_u64(r, 1);
    res->receive_lsn = as_u64(r, 2);
    res->replay_age_s = PQgetisnull(r, 0, 3) ? -1 : strtod(PQgetvalue(r, 0, 3), NULL);
    res->replay_paused = !strcmp(PQgetvalue(r, 0, 4), "t");
    res->timeline = PQgetisnull(r, 0, 5) ? 0 : atoi(PQgetvalue(r, 0, 5));
    res->state = SL_HOST_UP;
    return true;
}

/* Send the query and read its answer; false (res says why) on any failure. */
static bool query_host(checker *ch, int64_t deadline, sl_check_result *res)
{
    PGconn *c = ch->conn;
    if (!PQsendQuery(c, check_sql)) {
        set_error(res, SL_HOST_DOWN, "", PQerrorMessage(c));
        return false;
    }
    while (PQflush(c) == 1)
        if (!wait_socket(ch, PQsocket(c), true, deadline)) goto timeout;
    bool ok = false, got = false;
    for (;;) {
        while (PQisBusy(c)) {
            if (!wait_socket(ch, PQsocket(c), false, deadline)) goto timeout;
            if (!PQconsumeInput(c)) {
                set_error(res, SL_HOST_DOWN, "", PQerrorMessage(c));
                return false;
            }
        }
        PGresult *r = PQgetResult(c);
        if (!r) break;
        if (!got) {
            got = true;
            ok = parse_answer(r, res);
            if (!ok)
                set_error(res, SL_HOST_CHECK_FAILED, "health check query failed: ",
                          PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r) : "unexpected answer");
        }
        PQclear(r);
    }
    return ok;
timeout:
    set_error(res, SL_HOST_DOWN, "no answer within health_check_timeout", NULL);
    return false;
}

static void run_check(checker *ch, const login *lg, int64_t timeout, sl_check_result *res)
{
    memset(res, 0, sizeof(*res));
    res->started = sl_now_us();
    int64_t deadline = res->started + timeout;
    if (ch->conn && (PQstatus(ch->conn) != CONNECTION_OK || strcmp(ch->login_key, lg->key))) drop_conn(ch);
    /* a connection that broke since the last check is made again once, within the same check */
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = !ch->conn;
        if (fresh && !connect_host(ch, lg, deadline, res)) break;
        if (query_host(ch, deadline, res)) break;
        drop_conn(ch);
        if (fresh || res->state == SL_HOST_CHECK_FAILED) break;
    }
    res->finished = sl_now_us();
}

/* ---- failover_command ---- */

typedef struct hook_job {
    char *cmd;
    char db[128], host[256], port[16];
} hook_job;

static void *hook_thread(void *arg)
{
    hook_job *j = arg;
    char e_db[200], e_host[300], e_port[40];
    snprintf(e_db, sizeof(e_db), "PGSLUICE_DATABASE=%s", j->db);
    snprintf(e_host, sizeof(e_host), "PGSLUICE_HOST=%s", j->host);
    snprintf(e_port, sizeof(e_port), "PGSLUICE_PORT=%s", j->port);
    const char *path = getenv("PATH");
    char e_path[1024];
    snprintf(e_path, sizeof(e_path), "PATH=%s", path ? path : "/usr/bin:/bin");
    char *envp[] = {e_db, e_host, e_port, "PGSLUICE_EVENT=primary_lost", e_path, NULL};
    char *argv[] = {"sh", "-c", j->cmd, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, envp);
    if (rc != 0) {
        sl_log_error("failover_command for database %s could not start: %s", j->db, strerror(rc));
    } else {
        sl_log_info("failover_command for database %s started (pid %d)", j->db, (int)pid);
        int status = 0;
        int64_t deadline = sl_now_us() + (int64_t)FAILOVER_COMMAND_TIMEOUT_S * 1000000;
        pid_t w;
        while ((w = waitpid(pid, &status, WNOHANG)) == 0 && sl_now_us() < deadline) usleep(50000);
        if (w == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            sl_log_error("failover_command for database %s killed after %d s", j->db, FAILOVER_COMMAND_TIMEOUT_S);
        } else if (w > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            sl_log_info("failover_command for database %s finished", j->db);
        } else {
            sl_log_error("failover_command for database %s failed (%s %d)", j->db,
                         w > 0 && WIFEXITED(status) ? "exit status" : "signal",
                         w > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        }
    }
    free(j->cmd);
    free(j);
    return NULL;
}

static void run_hooks(const sl_config *cfg, const sl_topo_events *ev)
{
    for (int i = 0; i < ev->n; i++) {
        if (ev->ev[i].kind != SL_TOPO_PRIMARY_LOST || !cfg->failover_command || !*cfg->failover_command) continue;
        hook_job *j = calloc(1, sizeof(*j));
        if (!j || !(j->cmd = strdup(cfg->failover_command))) {
            free(j);
            continue;
        }
        snprintf(j->db, sizeof(j->db), "%s", ev->ev[i].db);
        snprintf(j->host, sizeof(j->host), "%s", ev->ev[i].host);
        snprintf(j->port, sizeof(j->port), "%d", ev->ev[i].port);
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, hook_thread, j) != 0) {
            free(j->cmd);
            free(j);
        }
        pthread_attr_destroy(&a);
    }
}

/* ---- the threads ---- */

static void refresh_and_carry_out(const sl_config *cfg)
{
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_topo_events ev;
    sl_topology_refresh(sl_now_us(), &act, &ev);
    sl_carry_out(&act);
    run_hooks(cfg, &ev);
}

static void *checker_thread(void *arg)
{
    checker *ch = arg;
    pthread_setname_np(pthread_self(), "sl-health-check");
    char addr[300];
    sl_host_addr_str(ch->h, addr, sizeof(addr));
    int last_state = -1;
    while (!__atomic_load_n(&ch->stop, __ATOMIC_ACQUIRE)) {
        sl_config *cfg = sl_config_acquire();
        int64_t started = sl_now_us();
        login lg = {.pw_from_file = NULL};
        sl_check_result res;
        if (!login_for(cfg, ch->h, &lg)) {
            memset(&res, 0, sizeof(res));
            res.started = res.finished = started;
            set_error(&res, SL_HOST_CHECK_FAILED, "no database with roles names this host", NULL);
        } else {
            run_check(ch, &lg, cfg->health_check_timeout, &res);
        }
        login_free(&lg);
        if (__atomic_load_n(&ch->stop, __ATOMIC_ACQUIRE)) {
            sl_config_unref(cfg);
            break;
        }
        if (res.state != last_state)
            sl_log_msg(res.state == SL_HOST_UP ? SL_LOG_INFO : SL_LOG_WARNING, "health check of %s: %s%s%s", addr,
                       res.state == SL_HOST_UP ? (res.in_recovery ? "up, in recovery" : "up, primary")
                                               : sl_host_state_name(res.state),
                       res.error[0] ? ": " : "", res.error);
        last_state = res.state;
        sl_host_store(ch->h, &res);
        refresh_and_carry_out(cfg);
        int64_t period = cfg->health_check_period;
        if (sl_topology_primary_missing() && period > FAST_PERIOD_US) period = FAST_PERIOD_US;
        sl_config_unref(cfg);
        sl_host_wait(ch->h, started + period, &ch->stop);
    }
    drop_conn(ch);
    __atomic_store_n(&ch->done, true, __ATOMIC_RELEASE);
    return NULL;
}

static bool host_in_use(sl_host *h)
{
    pthread_mutex_lock(&h->lock);
    bool used = h->in_use;
    pthread_mutex_unlock(&h->lock);
    return used;
}

static void stop_checker(checker *ch)
{
    __atomic_store_n(&ch->stop, true, __ATOMIC_RELEASE);
    pthread_mutex_lock(&ch->h->lock);
    pthread_cond_broadcast(&ch->h->wake);
    pthread_mutex_unlock(&ch->h->lock);
}

/* Start checkers for hosts in use, stop (and reap) those of hosts no longer named. */
static void reconcile(void)
{
    pthread_mutex_lock(&g_lock);
    for (sl_host *h = sl_hosts_first(); h; h = __atomic_load_n(&h->next, __ATOMIC_ACQUIRE)) {
        checker *ch = g_checkers;
        while (ch && (ch->h != h || ch->stop)) ch = ch->next;
        bool used = host_in_use(h);
        if (ch && !used) stop_checker(ch);
        if (ch || !used) continue;
        ch = calloc(1, sizeof(*ch));
        if (!ch) continue;
        ch->h = h;
        if (pthread_create(&ch->thread, NULL, checker_thread, ch) != 0) {
            sl_log_error("cannot start the health checker thread");
            free(ch);
            continue;
        }
        ch->next = g_checkers;
        g_checkers = ch;
    }
    checker **pp = &g_checkers;
    while (*pp) {
        checker *ch = *pp;
        if (ch->stop && __atomic_load_n(&ch->done, __ATOMIC_ACQUIRE)) {
            pthread_join(ch->thread, NULL);
            *pp = ch->next;
            free(ch);
        } else {
            pp = &ch->next;
        }
    }
    pthread_mutex_unlock(&g_lock);
}

static void *supervisor_thread(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "sl-health");
    sl_config *seen = NULL;
    while (!__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) {
        sl_config *cfg = sl_config_acquire();
        if (cfg != seen) {
            /* a reload: sl_pools_reconfigure took the new databases' roles; the routes too */
            reconcile();
            refresh_and_carry_out(cfg);
        } else {
            reconcile(); /* reap checkers that stopped */
        }
        sl_config_unref(seen);
        seen = cfg;
        usleep(SUPERVISOR_PERIOD_US);
    }
    sl_config_unref(seen);
    return NULL;
}

void sl_health_start(const sl_config *cfg)
{
    if (g_started) return;
    if (!sl_topology_configure(cfg)) sl_log_error("out of memory taking the databases' roles");
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_topology_refresh(sl_now_us(), &act, NULL);
    sl_carry_out(&act);
    reconcile();
    if (pthread_create(&g_supervisor, NULL, supervisor_thread, NULL) != 0) {
        sl_log_error("cannot start the health check supervisor thread");
        return;
    }
    g_started = true;
}

void sl_health_stop(void)
{
    if (!g_started) return;
    __atomic_store_n(&g_stop, true, __ATOMIC_RELEASE);
    pthread_join(g_supervisor, NULL);
    pthread_mutex_lock(&g_lock);
    for (checker *ch = g_checkers; ch; ch = ch->next) stop_checker(ch);
    int64_t deadline = sl_now_us() + 300000; /* at exit: a check in a blocking ping is left behind */
    for (checker *ch = g_checkers; ch; ch = ch->next) {
        while (!__atomic_load_n(&ch->done, __ATOMIC_ACQUIRE) && sl_now_us() < deadline) usleep(10000);
        if (__atomic_load_n(&ch->done, __ATOMIC_ACQUIRE)) pthread_join(ch->thread, NULL);
    }
    pthread_mutex_unlock(&g_lock);
    g_started = false;
}
