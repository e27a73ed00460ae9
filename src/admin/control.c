/* control.c - the admin console's process controls: PAUSE, RESUME, DISABLE, ENABLE, RECONNECT, KILL,
 * KILL_CLIENT, SUSPEND, SHUTDOWN, RELOAD, WAIT_CLOSE. Work on connections happens in worker rounds;
 * commands that wait (PAUSE, WAIT_CLOSE, SUSPEND) re-check on each tick and answer when done. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/admin_int.h"
#include "core/client.h"
#include "core/dispatch.h"
#include "core/lifecycle.h"
#include "core/server.h"
#include "core/takeover.h"
#include "pool/pool.h"
#include "util/log.h"
#include "util/time.h"

typedef enum { R_PAUSE, R_WAIT_CLOSE, R_SUSPEND, R_SUSPEND_DROP, R_KILL, R_KILL_CLIENT, R_RECONNECT } round_kind;

typedef struct ctl_ctx {
    adm_ref ref;
    round_kind kind;
    char db[256];       /* "" = every database */
    uint64_t client_id; /* KILL_CLIENT */
    unsigned seq;       /* the session's wait_seq when started */
    int count;          /* atomic: servers still to close / buffers not flushed / clients killed */
} ctl_ctx;

static int run_state(void) { return (int)sl_run_state_get(); }

static bool db_matches(const ctl_ctx *ctx, const sl_route *r) { return !ctx->db[0] || !strcmp(r->db_name, ctx->db); }

/* ---- work done on every worker ---- */

/* PAUSE: close the servers that are not serving a transaction (idle ones, logins in progress). */
static void pause_worker(sl_worker *w, ctl_ctx *ctx)
{
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (!db_matches(ctx, sl_server_route(s))) continue;
        if (s->state == SL_SV_IDLE || s->state == SL_SV_CONNECTING || s->state == SL_SV_LOGIN)
            sl_server_close(s, SL_CLOSE_ADMIN_PAUSE);
    }
}

/* WAIT_CLOSE / RECONNECT: close idle servers marked close-needed; count the ones still busy. */
static void close_needed_worker(sl_worker *w, ctl_ctx *ctx)
{
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (!db_matches(ctx, sl_server_route(s)) || !sl_route_conn_retire_due(&s->pc, sl_now_us())) continue;
        if (s->state == SL_SV_IDLE) {
            sl_server_close(s, SL_CLOSE_ADMIN_RECONNECT);
        } else {
            __atomic_add_fetch(&ctx->count, 1, __ATOMIC_RELAXED);
        }
    }
}

/* SUSPEND: count connections with bytes not yet passed on (consoles excepted); once suspend_timeout
 * has passed (R_SUSPEND_DROP), drop them instead, as PgBouncer does. */
static void suspend_worker(sl_worker *w, ctl_ctx *ctx)
{
    sl_list *n, *t;
    bool drop = ctx->kind == R_SUSPEND_DROP;
    int busy = 0;
    sl_list_for_each_safe(n, t, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (c->admin || !(sl_stream_out_pending(&c->s) || sl_stream_fwd_pending(&c->s))) continue;
        if (drop) sl_client_close(c, SL_CLOSE_SUSPEND_TIMEOUT);
        else busy++;
    }
    sl_list_for_each_safe(n, t, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (!(sl_stream_out_pending(&s->s) || sl_stream_fwd_pending(&s->s))) continue;
        if (drop) sl_server_close(s, SL_CLOSE_SUSPEND_TIMEOUT);
        else busy++;
    }
    __atomic_add_fetch(&ctx->count, busy, __ATOMIC_RELAXED);
}

/* KILL: drop the database's clients and servers at once. */
static void kill_worker(sl_worker *w, ctl_ctx *ctx)
{
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (c->admin || !c->route || !db_matches(ctx, c->route)) continue;
        sl_client_error(c, true, "57P01", "closed by the admin console (KILL)");
    }
    sl_list_for_each_safe(n, t, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (!db_matches(ctx, sl_server_route(s))) continue;
        sl_server_close(s, SL_CLOSE_ADMIN_KILL);
    }
}

static void kill_client_worker(sl_worker *w, ctl_ctx *ctx)
{
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (c->id != ctx->client_id) continue;
        __atomic_add_fetch(&ctx->count, 1, __ATOMIC_RELAXED);
        sl_client_error(c, true, "57P01", "closed by the admin console (KILL_CLIENT)");
    }
}

static void ctl_each(sl_worker *w, void *arg)
{
    ctl_ctx *ctx = arg;
    switch (ctx->kind) {
    case R_PAUSE: pause_worker(w, ctx); break;
    case R_WAIT_CLOSE:
    case R_RECONNECT: close_needed_worker(w, ctx); break;
    case R_SUSPEND:
    case R_SUSPEND_DROP: suspend_worker(w, ctx); break;
    case R_KILL: kill_worker(w, ctx); break;
    case R_KILL_CLIENT: kill_client_worker(w, ctx); break;
    }
}

/* ---- back on the console's worker ---- */

typedef struct server_sum {
    const char *db;
    int n;
} server_sum;

static void sum_servers(sl_route *r, void *arg)
{
    server_sum *ss = arg;
    if (ss->db[0] && strcmp(r->db_name, ss->db) != 0) return;
    sl_mutex_lock(&r->lock);
    ss->n += r->n_servers;
    sl_mutex_unlock(&r->lock);
}

/* PAUSE/RESUME of one database (NULL: all) and serving what waited, through the pools. */
static void set_db_paused(const char *db, bool paused)
{
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_db_set_paused(db, paused, &act);
    sl_carry_out(&act);
}

static void resume_pools(void)
{
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_pools_resume(&act);
    sl_carry_out(&act);
}

/* Is the PAUSE still wanted? (a RESUME from another console cancels it) */
static bool pause_holds(const char *db)
{
    if (!db[0]) return run_state() == SL_RUN_PAUSED;
    bool paused, disabled;
    int n;
    sl_db_state(db, &paused, &disabled, &n);
    return paused;
}

/* A waiting command's round came back: answer it, or wait for the next tick. */
static void wait_checked(adm_session *s, ctl_ctx *ctx)
{
    if (ctx->seq != s->wait_seq) return; /* a round of a cancelled wait */
    s->wait_round = false;
    if (s->wait == ADM_WAIT_NONE) return;
    bool done = false;
    if (ctx->kind == R_PAUSE) {
        if (!pause_holds(s->wait_db)) {
            adm_error(&s->res, "57014", "PAUSE was cancelled by RESUME");
            done = true;
        } else {
            server_sum ss = {s->wait_db, 0};
            sl_pools_foreach(sum_servers, &ss);
            done = ss.n == 0;
        }
    } else if (ctx->kind == R_SUSPEND || ctx->kind == R_SUSPEND_DROP) {
        if (run_state() != SL_RUN_SUSPENDED) {
            adm_error(&s->res, "57014", "SUSPEND was cancelled by RESUME");
            done = true;
        } else {
            done = ctx->count == 0;
        }
    } else {
        done = ctx->count == 0;
    }
    if (!done) return;
    s->wait = ADM_WAIT_NONE;
    adm_async_done(s);
}

static void ctl_done(sl_worker *w, void *arg)
{
    ctl_ctx *ctx = arg;
    adm_session *s = adm_ref_session(w, &ctx->ref);
    if (s) {
        switch (ctx->kind) {
        case R_PAUSE:
        case R_WAIT_CLOSE:
        case R_SUSPEND:
        case R_SUSPEND_DROP: wait_checked(s, ctx); break;
        case R_KILL_CLIENT:
            if (!ctx->count) adm_error(&s->res, "42704", "client not found");
            adm_async_done(s);
            break;
        default: adm_async_done(s); break;
        }
    }
    free(ctx);
}

static bool start_round(adm_session *s, round_kind kind, const char *db, uint64_t client_id)
{
    ctl_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) return false;
    ctx->ref = adm_ref_of(s);
    ctx->kind = kind;
    snprintf(ctx->db, sizeof(ctx->db), "%s", db ? db : "");
    ctx->client_id = client_id;
    ctx->seq = s->wait_seq;
    if (sl_workers_round(s->c->s.w, ctl_each, ctl_done, ctx)) return true;
    free(ctx);
    return false;
}

static adm_status round_or_error(adm_session *s, adm_result *r, round_kind kind, const char *db, uint64_t id)
{
    if (start_round(s, kind, db, id)) return ADM_ASYNC;
    adm_error(r, "53200", "out of memory");
    return ADM_DONE;
}

static adm_status begin_wait(adm_session *s, adm_result *r, adm_wait wait, const char *db)
{
    static const round_kind kinds[] = {R_PAUSE, R_PAUSE, R_WAIT_CLOSE, R_SUSPEND};
    s->wait = wait;
    s->wait_seq++;
    s->wait_since = sl_now_fast();
    snprintf(s->wait_db, sizeof(s->wait_db), "%s", db);
    s->wait_round = start_round(s, kinds[wait], db, 0);
    (void)r;
    return ADM_ASYNC;
}

void adm_wait_tick(adm_session *s)
{
    static const round_kind kinds[] = {R_PAUSE, R_PAUSE, R_WAIT_CLOSE, R_SUSPEND};
    if (s->wait_round || s->wait == ADM_WAIT_NONE) return;
    round_kind k = kinds[s->wait];
    int64_t limit = s->c->s.w->cfg->suspend_timeout;
    if (k == R_SUSPEND && limit > 0 && sl_now_fast() - s->wait_since >= limit) {
        sl_log_warn("SUSPEND: buffers not flushed after suspend_timeout: dropping those connections");
        k = R_SUSPEND_DROP;
    }
    s->wait_round = start_round(s, k, s->wait_db, 0);
}

void adm_cancel(adm_session *s)
{
    if (s->wait == ADM_WAIT_NONE) return;
    int rs = run_state();
    sl_log_info("console cancel request: calling off the waiting command");
    if (s->wait == ADM_WAIT_PAUSE && s->wait_db[0]) {
        set_db_paused(s->wait_db, false);
    } else if ((s->wait == ADM_WAIT_PAUSE && rs == SL_RUN_PAUSED) ||
               (s->wait == ADM_WAIT_SUSPEND && rs == SL_RUN_SUSPENDED)) {
        sl_set_run_state(SL_RUN_NORMAL);
        resume_pools();
    }
    s->wait = ADM_WAIT_NONE;
    s->wait_seq++;
    s->wait_round = false;
    adm_error(&s->res, "57014", "canceling statement due to user request");
    adm_async_done(s);
}

void adm_session_left(adm_session *s)
{
    if (s->suspended && run_state() == SL_RUN_SUSPENDED) {
        sl_log_info("the console that issued SUSPEND disconnected: resuming");
        sl_set_run_state(SL_RUN_NORMAL);
        resume_pools();
    }
}

/* ---- the commands ---- */

/* A database named in a command: must exist and not be the console itself. */
static bool check_db(adm_result *r, const char *verb, const char *db)
{
    if (sl_admin_is_db(db)) {
        adm_error(r, "55000", "cannot %s admin db: %s", verb, db);
        return false;
    }
    bool ok = sl_config_find_db(sl_worker_self()->cfg, db) != NULL; /* the console's worker */
    if (!ok) adm_error(r, "3D000", "no such database: %s", db);
    return ok;
}

static adm_status ctl_pause(adm_session *s, const char *arg, adm_result *r)
{
    if (run_state() != SL_RUN_NORMAL) {
        adm_error(r, "55000", "already suspended/paused");
        return ADM_DONE;
    }
    if (*arg && !check_db(r, "pause", arg)) return ADM_DONE;
    sl_log_info(*arg ? "PAUSE '%s' command issued" : "PAUSE command issued%s", arg);
    if (*arg) set_db_paused(arg, true);
    else sl_set_run_state(SL_RUN_PAUSED);
    adm_tag(r, "PAUSE");
    return begin_wait(s, r, ADM_WAIT_PAUSE, arg);
}

static adm_status ctl_resume(adm_session *s, const char *arg, adm_result *r)
{
    (void)s;
    int rs = run_state();
    if (*arg) {
        bool paused, disabled;
        int n;
        if (!check_db(r, "resume", arg)) return ADM_DONE;
        sl_db_state(arg, &paused, &disabled, &n);
        if (!paused) {
            adm_error(r, "55000", "database %s is not paused", arg);
            return ADM_DONE;
        }
        sl_log_info("RESUME '%s' command issued", arg);
        set_db_paused(arg, false);
    } else {
        if (rs >= SL_RUN_SHUTDOWN_GRACEFUL) {
            adm_error(r, "55000", "pooler is shutting down");
            return ADM_DONE;
        }
        int ndb = sl_dbs_paused_count();
        if (rs == SL_RUN_NORMAL && ndb == 0) {
            adm_error(r, "55000", "pooler is not paused/suspended");
            return ADM_DONE;
        }
        sl_log_info("RESUME command issued");
        if (rs != SL_RUN_NORMAL) sl_set_run_state(SL_RUN_NORMAL);
        if (ndb) set_db_paused(NULL, false);
        resume_pools();
    }
    adm_tag(r, "RESUME");
    return ADM_DONE;
}

static adm_status ctl_disable(adm_session *s, const char *arg, adm_result *r)
{
    (void)s;
    if (!*arg) adm_error(r, "42601", "a database is required");
    else if (check_db(r, "disable", arg)) {
        sl_log_info("DISABLE '%s' command issued", arg);
        sl_db_set_disabled(arg, true);
        adm_tag(r, "DISABLE");
    }
    return ADM_DONE;
}

static adm_status ctl_enable(adm_session *s, const char *arg, adm_result *r)
{
    (void)s;
    if (!*arg) adm_error(r, "42601", "a database is required");
    else if (check_db(r, "enable", arg)) {
        sl_log_info("ENABLE '%s' command issued", arg);
        sl_db_set_disabled(arg, false);
        adm_tag(r, "ENABLE");
    }
    return ADM_DONE;
}

static adm_status ctl_reconnect(adm_session *s, const char *arg, adm_result *r)
{
    if (*arg && !check_db(r, "reconnect", arg)) return ADM_DONE;
    sl_log_info(*arg ? "RECONNECT '%s' command issued" : "RECONNECT command issued%s", arg);
    sl_db_reconnect(*arg ? arg : NULL);
    adm_tag(r, "RECONNECT");
    return round_or_error(s, r, R_RECONNECT, arg, 0);
}

static adm_status ctl_kill(adm_session *s, const char *arg, adm_result *r)
{
    if (run_state() != SL_RUN_NORMAL) {
        adm_error(r, "55000", "already suspended/paused");
        return ADM_DONE;
    }
    if (*arg && !check_db(r, "kill", arg)) return ADM_DONE;
    sl_log_info(*arg ? "KILL '%s' command issued" : "KILL command issued%s", arg);
    set_db_paused(*arg ? arg : NULL, true);
    adm_tag(r, "KILL");
    return round_or_error(s, r, R_KILL, arg, 0);
}

static adm_status ctl_kill_client(adm_session *s, const char *arg, adm_result *r)
{
    char *end = NULL;
    unsigned long long id = strtoull(arg, &end, 10);
    if (!*arg || !end || *end || arg[0] == '-') {
        adm_error(r, "22023", "invalid client id supplied: %s", arg);
        return ADM_DONE;
    }
    sl_log_info("KILL_CLIENT %llu command issued", id);
    adm_tag(r, "KILL_CLIENT");
    return round_or_error(s, r, R_KILL_CLIENT, NULL, id);
}

static adm_status ctl_suspend(adm_session *s, const char *arg, adm_result *r)
{
    (void)arg;
    if (run_state() != SL_RUN_NORMAL) {
        adm_error(r, "55000", "already suspended/paused");
        return ADM_DONE;
    }
    if (sl_dbs_paused_count() > 0) {
        adm_error(r, "55000", "cannot suspend with paused databases");
        return ADM_DONE;
    }
    sl_log_info("SUSPEND command issued");
    sl_set_run_state(SL_RUN_SUSPENDED);
    s->suspended = true;
    adm_tag(r, "SUSPEND");
    return begin_wait(s, r, ADM_WAIT_SUSPEND, "");
}

static adm_status ctl_shutdown(adm_session *s, const char *arg, adm_result *r)
{
    (void)s;
    if (!*arg) {
        sl_log_info("SHUTDOWN command issued");
        kill(getpid(), SIGQUIT); /* the main loop's immediate shutdown; the console gets no answer */
        return ADM_ASYNC;
    }
    if (!strcasecmp(arg, "wait_for_servers")) {
        sl_log_info("SHUTDOWN WAIT_FOR_SERVERS command issued");
        sl_set_run_state(SL_RUN_SHUTDOWN_GRACEFUL);
    } else if (!strcasecmp(arg, "wait_for_clients")) {
        sl_log_info("SHUTDOWN WAIT_FOR_CLIENTS command issued");
        sl_set_run_state(SL_RUN_SHUTDOWN_WAIT_CLIENTS);
    } else {
        adm_error(r, "42601", "invalid command 'SHUTDOWN %s', use SHOW HELP;", arg);
        return ADM_DONE;
    }
    adm_tag(r, "SHUTDOWN");
    return ADM_DONE;
}

static adm_status ctl_reload(adm_session *s, const char *arg, adm_result *r)
{
    (void)s;
    (void)arg;
    char err[512];
    sl_log_info("RELOAD command issued");
    if (sl_reload(err, sizeof(err))) adm_tag(r, "RELOAD");
    else adm_error(r, "F0000", "RELOAD failed, keeping the running configuration: %s", err);
    return ADM_DONE;
}

static adm_status ctl_wait_close(adm_session *s, const char *arg, adm_result *r)
{
    if (*arg && !check_db(r, "wait for", arg)) return ADM_DONE;
    sl_log_info(*arg ? "WAIT_CLOSE '%s' command issued" : "WAIT_CLOSE command issued%s", arg);
    adm_tag(r, "WAIT_CLOSE");
    return begin_wait(s, r, ADM_WAIT_CLOSE, arg);
}

/* TAKEOVER [seconds]: what `pgsluice --takeover` sends (core/takeover_*.c); the answer is the hand-over
 * itself, or an error once it failed and this process serves again. */
static adm_status ctl_takeover(adm_session *s, const char *arg, adm_result *r)
{
    char *end = NULL;
    long secs = *arg ? strtol(arg, &end, 10) : 60;
    if (*arg && (*end || secs <= 0 || secs > 86400)) {
        adm_error(r, "22023", "TAKEOVER: the wait must be a number of seconds (1 to 86400), not \"%s\"", arg);
        return ADM_DONE;
    }
    char err[256];
    if (!sl_takeover_donor_begin(s->c, (int)secs, err, sizeof(err))) {
        adm_error(r, "55000", "%s", err);
        return ADM_DONE;
    }
    return ADM_ASYNC;
}

/* UPGRADE [seconds]: start a new pgsluice from the binary's path, which takes over from this one
 * (the systemd-friendly upgrade: it runs inside this service). Answered once it is started. */
static adm_status ctl_upgrade(adm_session *s, const char *arg, adm_result *r)
{
    (void)s;
    char *end = NULL;
    long secs = *arg ? strtol(arg, &end, 10) : 60;
    if (*arg && (*end || secs <= 0 || secs > 86400)) {
        adm_error(r, "22023", "UPGRADE: the wait must be a number of seconds (1 to 86400), not \"%s\"", arg);
        return ADM_DONE;
    }
    if (sl_run_state_get() != SL_RUN_NORMAL) {
        adm_error(r, "55000", "UPGRADE needs the pooler running (not %s)", sl_run_state_label(sl_run_state_get()));
        return ADM_DONE;
    }
    char err[256];
    if (!sl_takeover_spawn((int)secs, err, sizeof(err))) {
        adm_error(r, "58000", "UPGRADE: %s", err);
        return ADM_DONE;
    }
    sl_log_info("UPGRADE command issued");
    adm_tag(r, "UPGRADE");
    return ADM_DONE;
}

enum { ARG_NONE, ARG_OPT, ARG_REQ };

static const struct {
    const char *name;
    int arg;
    adm_status (*fn)(adm_session *s, const char *arg, adm_result *r);
} controls[] = {
    {"pause", ARG_OPT, ctl_pause},         {"resume", ARG_OPT, ctl_resume},
    {"disable", ARG_OPT, ctl_disable},     {"enable", ARG_OPT, ctl_enable},
    {"reconnect", ARG_OPT, ctl_reconnect}, {"kill", ARG_OPT, ctl_kill},
    {"kill_client", ARG_REQ, ctl_kill_client}, {"suspend", ARG_NONE, ctl_suspend},
    {"shutdown", ARG_OPT, ctl_shutdown},   {"reload", ARG_NONE, ctl_reload},
    {"wait_close", ARG_OPT, ctl_wait_close}, {"takeover", ARG_OPT, ctl_takeover},
    {"upgrade", ARG_OPT, ctl_upgrade},
};

static int find_control(const char *verb)
{
    for (size_t i = 0; i < sizeof(controls) / sizeof(controls[0]); i++)
        if (!strcmp(controls[i].name, verb)) return (int)i;
    return -1;
}

bool adm_control_known(const char *verb) { return find_control(verb) >= 0; }

adm_status adm_control(adm_session *s, const adm_cmd *cmd, adm_result *r, bool *found)
{
    int i = find_control(cmd->verb);
    *found = i >= 0 && cmd->kind == ADM_CMD_WORDS;
    if (!*found) return ADM_DONE;
    if ((controls[i].arg == ARG_NONE && cmd->arg[0]) || (controls[i].arg == ARG_REQ && !cmd->arg[0])) {
        adm_error(r, "42601", "invalid command '%s', use SHOW HELP;", cmd->text);
        return ADM_DONE;
    }
    if (!s->is_admin) {
        adm_error(r, "42501", "admin access needed: %s is for admin_users (user \"%s\" is a stats user)",
                  controls[i].name, s->c->user);
        return ADM_DONE;
    }
    return controls[i].fn(s, cmd->arg, r);
}
