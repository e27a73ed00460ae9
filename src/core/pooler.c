/* pooler.c - process-wide glue: listening sockets, event dispatch to clients and servers, the
 * messages workers send each other, and the periodic tick (timeouts, pool maintenance). */
#include "core/pooler.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin/admin.h"
#include "net/sockutil.h"
#include "pool/pool.h"
#include "util/log.h"
#include "util/sdnotify.h"
#include "util/time.h"

int sl_run_state_v;
uint64_t sl_conn_counter;
int sl_total_clients;

static const char *g_config_path;
static int g_verbose, g_quiet;

void sl_pooler_set_startup_options(const char *config_path, int verbose, int quiet)
{
    g_config_path = config_path;
    g_verbose = verbose;
    g_quiet = quiet;
}

void sl_pooler_set_run_state(sl_run_state st)
{
    __atomic_store_n(&sl_run_state_v, (int)st, __ATOMIC_RELAXED);
    sl_worker_broadcast(SL_MSG_CONFIG);
}

static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER; /* one config change at a time */

/* Re-read the config file; a broken file is refused and the running config stays. */
bool sl_pooler_reload(char *errbuf, size_t errlen)
{
    char err[512];
    pthread_mutex_lock(&reload_lock);
    sl_sd_reloading();
    sl_config *cfg = sl_config_load(g_config_path, err, sizeof(err));
    if (!cfg) {
        sl_sd_reloaded("RELOAD failed, running the previous configuration");
        pthread_mutex_unlock(&reload_lock);
        sl_log_error("RELOAD failed, keeping the running configuration: %s", err);
        if (errbuf) snprintf(errbuf, errlen, "%s", err);
        return false;
    }
    sl_log_setup(cfg->logfile, cfg->syslog, cfg->syslog_ident, cfg->syslog_facility, cfg->verbose + g_verbose, g_quiet);
    sl_pooler_apply_config(cfg);
    sl_sd_reloaded("configuration reloaded");
    pthread_mutex_unlock(&reload_lock);
    sl_log_info("configuration reloaded from %s", g_config_path);
    return true;
}

/* SET name = value on the admin console: a copy of the running config with one setting changed. */
bool sl_pooler_set_setting(const char *name, const char *value, char *err, size_t errlen)
{
    const sl_setting *st = sl_setting_find(name);
    if (!st) {
        snprintf(err, errlen, "unknown setting: %s", name);
        return false;
    }
    if (!st->reloadable) {
        snprintf(err, errlen, "%s cannot be changed while running (restart needed)", st->name);
        return false;
    }
    pthread_mutex_lock(&reload_lock);
    sl_config *cur = sl_config_acquire();
    sl_config *cfg = sl_config_clone(cur);
    sl_config_unref(cur);
    bool ok = cfg && sl_setting_set(cfg, st, value, err, errlen);
    if (!cfg) snprintf(err, errlen, "out of memory");
    if (ok) {
        if (!strcmp(st->name, "verbose") || !strncmp(st->name, "log", 3) || !strncmp(st->name, "syslog", 6))
            sl_log_setup(cfg->logfile, cfg->syslog, cfg->syslog_ident, cfg->syslog_facility, cfg->verbose + g_verbose,
                         g_quiet);
        sl_pooler_apply_config(cfg);
    } else if (cfg) {
        sl_config_unref(cfg);
    }
    pthread_mutex_unlock(&reload_lock);
    if (ok) sl_log_info("SET %s = %s", st->name, value);
    return ok;
}

/* Make cfg the running config (takes over the caller's reference) and tell pools and workers. */
void sl_pooler_apply_config(sl_config *cfg)
{
    sl_config_set_current(cfg);
    sl_config *cur = sl_config_acquire();
    sl_pools_reconfigure(cur);
    sl_config_unref(cur);
    sl_worker_broadcast(SL_MSG_CONFIG);
}

static int listen_fds[SL_MAX_LISTEN];
static bool listen_is_unix[SL_MAX_LISTEN];
static int nlisten;
static int g_buf_size = 4096;

int sl_pooler_buf_size(void) { return g_buf_size; }
void sl_pooler_set_buf_size(int n) { g_buf_size = n < 1024 ? 1024 : n; }

void sl_cancel_forward(sl_worker *w, uint32_t pid, uint32_t key);

void sl_poll_dispatch(uv_poll_t *h, int status, int events)
{
    sl_stream *st = h->data;
    sl_now_refresh();
    if (status < 0) events = UV_READABLE | UV_WRITABLE;
    sl_worker *w = st->w;
    SL_OWNER_ADD(w->stats.events, 1);
    if (st->kind == SL_KIND_CLIENT) sl_client_on_event((sl_client *)st, events);
    else if (st->kind == SL_KIND_SERVER) sl_server_on_event((sl_server *)st, events);
    else sl_cancel_on_event(st, events);
}

/* ---- listening ---- */

bool sl_pooler_listen(const sl_config *cfg)
{
    char addrs[256];
    snprintf(addrs, sizeof(addrs), "%s", cfg->listen_addr);
    char *save = NULL;
    for (char *a = strtok_r(addrs, ", \t", &save); a && nlisten < SL_MAX_LISTEN - 1; a = strtok_r(NULL, ", \t", &save)) {
        int fd = sl_sock_listen_tcp(a, cfg->listen_port, cfg->tcp_backlog > 0 ? cfg->tcp_backlog : 128, cfg->so_reuseport);
        if (fd < 0) {
            sl_log_fatal("cannot listen on %s:%d: %s", a, cfg->listen_port, strerror(errno));
            return false;
        }
        if (cfg->tcp_defer_accept > 0)
            setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &cfg->tcp_defer_accept, sizeof(int));
        sl_log_info("listening on %s:%d", a, cfg->listen_port);
        listen_is_unix[nlisten] = false;
        listen_fds[nlisten++] = fd;
    }
    if (cfg->unix_socket_dir && *cfg->unix_socket_dir) {
        int fd = sl_sock_listen_unix(cfg->unix_socket_dir, cfg->listen_port, cfg->unix_socket_mode, 128);
        if (fd < 0) {
            sl_log_fatal("cannot listen on unix socket in %s: %s", cfg->unix_socket_dir, strerror(errno));
            return false;
        }
        sl_log_info("listening on unix:%s/.s.PGSQL.%d", cfg->unix_socket_dir, cfg->listen_port);
        listen_is_unix[nlisten] = true;
        listen_fds[nlisten++] = fd;
    }
    return true;
}

/* Out of file descriptors: the pending connection stays in the backlog and the listening socket
 * stays readable, so polling it would spin. Stop for a second (the tick resumes) and say so once. */
#define ACCEPT_PAUSE_US 1000000

static void pause_accepting(sl_worker *w, int err)
{
    for (int i = 0; i < w->nlisten; i++) uv_poll_stop(&w->listen_polls[i]);
    w->accept_paused_until = sl_now_us() + ACCEPT_PAUSE_US;
    sl_log_error("accept: %s; not accepting new connections on worker %d for 1 s (raise the open files "
                 "limit, ulimit -n, or lower max_client_conn)", strerror(err), w->id);
}

static void on_accept(uv_poll_t *h, int status, int events);

static void resume_accepting(sl_worker *w, int64_t now)
{
    if (!w->accept_paused_until || now < w->accept_paused_until) return;
    w->accept_paused_until = 0;
    if (!w->listening) return; /* shutting down meanwhile */
    for (int i = 0; i < w->nlisten; i++) uv_poll_start(&w->listen_polls[i], UV_READABLE, on_accept);
}

static void on_accept(uv_poll_t *h, int status, int events)
{
    (void)events;
    sl_worker *w = h->loop->data;
    int idx = (int)(h - w->listen_polls);
    sl_now_refresh();
    if (status < 0) return;
    /* One connection per wake-up: looping until accept4 fails with EAGAIN costs a system call per
     * wake-up, i.e. per login when clients connect one at a time (a connection per transaction).
     * The listening socket is polled level-triggered, so a backlog is taken one per loop turn,
     * alongside the other ready sockets. */
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = accept4(w->listen_fds[idx], (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) pause_accepting(w, errno);
        return;
    }
    char addr[64] = "unix";
    if (!w->listen_unix[idx]) sl_sock_addr_str(&ss, addr, sizeof(addr));
    sl_config *cfg = sl_config_acquire();
    sl_sock_tune(fd, cfg, !w->listen_unix[idx]);
    sl_client_accept(w, fd, addr, w->listen_unix[idx], cfg);
}

static void start_listening(sl_worker *w)
{
    if (w->listening) return;
    w->nlisten = nlisten;
    for (int i = 0; i < nlisten; i++) {
        w->listen_fds[i] = listen_fds[i];
        w->listen_unix[i] = listen_is_unix[i];
        uv_poll_init(&w->loop, &w->listen_polls[i], listen_fds[i]);
        uv_poll_start(&w->listen_polls[i], UV_READABLE, on_accept);
    }
    w->listening = true;
}

/* Shutting down: new TCP connections are refused instead of waiting in the backlog. The sockets stay
 * open (a closed descriptor's number could be reused while a loop still knows it). */
static void refuse_connections(void)
{
    for (int i = 0; i < nlisten; i++) shutdown(listen_fds[i], SHUT_RDWR);
}

void sl_pooler_worker_started(sl_worker *w) { start_listening(w); }

/* ---- messages ---- */

static void wake_waiting(sl_worker *w)
{
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (c->state == SL_CL_WAITING && !__atomic_load_n(&c->in_wait_queue, __ATOMIC_RELAXED)) sl_client_wake(c);
    }
}

static int listeners_stopped; /* atomic: workers that stopped accepting for a shutdown */

static void state_changed(sl_worker *w)
{
    int rs = __atomic_load_n(&sl_run_state_v, __ATOMIC_RELAXED);
    if (rs >= SL_RUN_SHUTDOWN_GRACEFUL) {
        if (w->listening) {
            for (int i = 0; i < w->nlisten; i++) uv_poll_stop(&w->listen_polls[i]);
            w->listening = false;
            if (__atomic_add_fetch(&listeners_stopped, 1, __ATOMIC_ACQ_REL) == sl_nworkers) refuse_connections();
        }
    }
    if (rs == SL_RUN_NORMAL) wake_waiting(w);
    if (rs == SL_RUN_SHUTDOWN_NOW) uv_stop(&w->loop);
}

void sl_pooler_handle_msg(sl_worker *w, sl_msg *m)
{
    switch (m->type) {
    case SL_MSG_HANDOFF_SERVER: sl_pool_arrived(w, m->server, m->slot, m->gen); break;
    case SL_MSG_DETACH_SERVER: sl_pool_detach_for(m->server, m->to, m->slot, m->gen); break;
    case SL_MSG_CANCEL: sl_cancel_forward(w, m->pid, m->key); break;
    case SL_MSG_WAKE_CLIENT: {
        sl_client *c = sl_worker_find_client(w, m->slot, m->gen);
        if (c) sl_client_wake(c);
        break;
    }
    case SL_MSG_CONFIG: state_changed(w); break;
    case SL_MSG_CALL: m->fn(w, m->arg); break;
    }
}

/* ---- collecting from every worker ---- */

typedef struct collect_round {
    sl_worker_fn each, done;
    void *arg;
    sl_worker *home;
    int left; /* atomic: workers still to run `each` */
} collect_round;

static void collect_finish(sl_worker *w, void *arg)
{
    collect_round *r = arg;
    r->done(w, r->arg);
    free(r);
}

static void collect_step(sl_worker *w, void *arg)
{
    collect_round *r = arg;
    r->each(w, r->arg);
    if (__atomic_sub_fetch(&r->left, 1, __ATOMIC_ACQ_REL) == 0) sl_worker_call(r->home, collect_finish, r);
}

bool sl_pooler_collect(sl_worker *home, sl_worker_fn each, sl_worker_fn done, void *arg)
{
    collect_round *r = calloc(1, sizeof(*r));
    if (!r) return false;
    r->each = each;
    r->done = done;
    r->arg = arg;
    r->home = home;
    r->left = sl_nworkers;
    for (int i = 0; i < sl_nworkers; i++) sl_worker_call(&sl_workers[i], collect_step, r);
    return true;
}

/* ---- tick ---- */

void sl_pooler_tick(sl_worker *w)
{
    int64_t now = sl_now_us();
    resume_accepting(w, now);
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) == 0) {
        uint64_t us = (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
                      (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
        __atomic_store_n(&w->stats.cpu_us, us, __ATOMIC_RELAXED);
    }
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &w->clients) sl_client_tick(sl_container_of(n, sl_client, node), now);
    sl_list_for_each_safe(n, t, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (s->state == SL_SV_ACTIVE && s->pend.query_count) sl_pool_flush_stats(s);
        sl_server_tick(s, now);
    }
    if (w->id == 0) sl_pools_tick(now);
    sl_admin_tick(w, now);
}
