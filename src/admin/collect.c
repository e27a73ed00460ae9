/* collect.c - SHOW commands about connections, which live on the worker threads: CLIENTS, SERVERS,
 * SOCKETS, ACTIVE_SOCKETS, LISTS and MEM. Each worker writes rows about its own clients and servers
 * in a round (sl_pooler_collect); the admin client's worker joins them and answers. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "admin/admin_int.h"
#include "core/client.h"
#include "core/dispatch.h"
#include "core/lifecycle.h"
#include "core/server.h"
#include "core/session_state.h"
#include "net/tls.h"
#include "pool/pool.h"
#include "util/time.h"

typedef enum { W_CLIENTS, W_SERVERS, W_SOCKETS, W_ACTIVE_SOCKETS, W_LISTS, W_MEM } what_t;

typedef struct worker_counts {
    int clients, login_clients, servers, free_bufs, buf_size, free_clients;
} worker_counts;

typedef struct round_ctx {
    adm_ref ref;
    what_t what;
    int64_t now, wall, check_delay;
    int listen_port;
    adm_result *parts;          /* one per worker */
    worker_counts *counts;      /* one per worker */
} round_ctx;

/* ---- columns ---- */

#define SOCKET_TYPES "ssssssisiTTiiississii"
#define SOCKET_NAMES                                                                                           \
    "type", "user", "database", "replication", "state", "addr", "port", "local_addr", "local_port",           \
        "connect_time", "request_time", "wait", "wait_us", "close_needed", "ptr", "link", "remote_pid", "tls", \
        "application_name", "prepared_statements", "id"
#define DEBUG_NAMES "recv_pos", "pkt_pos", "pkt_remain", "send_pos", "send_remain", "pkt_avail", "send_avail"

void adm_cols_sockets(adm_result *r) { adm_cols(r, SOCKET_TYPES "i", SOCKET_NAMES, "worker"); }
/* SHOW CLIENTS adds why a client keeps its server in transaction pooling (pin_session_state), e.g.
 * "advisory_lock,temp_table"; empty when it does not. */
void adm_cols_clients(adm_result *r) { adm_cols(r, SOCKET_TYPES "is", SOCKET_NAMES, "worker", "pinned"); }
/* SHOW SERVERS adds what each server is: primary or replica (its database's topology when it has
 * roles, else what the server said at login: in_hot_standby; NULL when unknown). */
void adm_cols_servers(adm_result *r) { adm_cols(r, SOCKET_TYPES "is", SOCKET_NAMES, "worker", "role"); }
void adm_cols_debug_sockets(adm_result *r)
{
    adm_cols(r, SOCKET_TYPES "iiiiiiii", SOCKET_NAMES, DEBUG_NAMES, "worker");
}
void adm_cols_lists(adm_result *r) { adm_cols(r, "si", "list", "items"); }
void adm_cols_mem(adm_result *r) { adm_cols(r, "siiii", "name", "size", "used", "free", "memtotal"); }

/* ---- one socket's row ---- */

typedef struct sock_info {
    const char *type, *user, *db, *repl, *state, *app, *role;
    char pinned[160];
    char addr[64], laddr[64], ptr[32], link[32], user_buf[128];
    int port, lport, remote_pid, close_needed, prepared;
    int64_t connect_time, request_time, wait_us;
    uint64_t id;
    const sl_stream *st;
} sock_info;

static void split_addr(const char *in, char *host, size_t hlen, int *port, int unix_port)
{
    const char *colon = strrchr(in, ':');
    if (!strncmp(in, "unix", 4) || !colon) {
        snprintf(host, hlen, "unix");
        *port = colon ? atoi(colon + 1) : unix_port;
        return;
    }
    snprintf(host, hlen, "%.*s", (int)(colon - in), in);
    *port = atoi(colon + 1);
}

static void local_addr(int fd, char *host, size_t hlen, int *port, int unix_port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    *port = 0;
    snprintf(host, hlen, "unix");
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, (socklen_t)hlen);
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, (socklen_t)hlen);
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
        *port = unix_port;
    }
}

static int peer_pid(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) return (int)cred.pid;
    return 0;
}

static void sock_row(adm_result *r, const round_ctx *ctx, const sock_info *k, int worker, bool debug)
{
    int64_t ct = adm_wall_of(k->connect_time, ctx->now, ctx->wall);
    int64_t rt = adm_wall_of(k->request_time ? k->request_time : k->connect_time, ctx->now, ctx->wall);
    int wait = (int)(k->wait_us / 1000000), wait_us = (int)(k->wait_us % 1000000);
    char tls[128];
    sl_stream_tls_describe(k->st, tls, sizeof(tls));
    if (!debug && ctx->what == W_SERVERS) {
        adm_row(r, SOCKET_TYPES "is", k->type, k->user, k->db, k->repl, k->state, k->addr, k->port, k->laddr,
                k->lport, ct, rt, wait, wait_us, k->close_needed, k->ptr, k->link, k->remote_pid, tls, k->app,
                k->prepared, (int)k->id, worker, k->role);
        return;
    }
    if (!debug && ctx->what == W_CLIENTS) {
        adm_row(r, SOCKET_TYPES "is", k->type, k->user, k->db, k->repl, k->state, k->addr, k->port, k->laddr,
                k->lport, ct, rt, wait, wait_us, k->close_needed, k->ptr, k->link, k->remote_pid, tls, k->app,
                k->prepared, (int)k->id, worker, k->pinned);
        return;
    }
    if (!debug) {
        adm_row(r, SOCKET_TYPES "i", k->type, k->user, k->db, k->repl, k->state, k->addr, k->port, k->laddr, k->lport,
                ct, rt, wait, wait_us, k->close_needed, k->ptr, k->link, k->remote_pid, tls, k->app, k->prepared,
                (int)k->id, worker);
        return;
    }
    const sl_stream *st = k->st;
    int pending = (int)(st->out.len - st->out_sent);
    adm_row(r, SOCKET_TYPES "iiiiiiii", k->type, k->user, k->db, k->repl, k->state, k->addr, k->port, k->laddr,
            k->lport, ct, rt, wait, wait_us, k->close_needed, k->ptr, k->link, k->remote_pid, tls, k->app, k->prepared,
            (int)k->id,
            (int)st->end, (int)st->parse, (int)st->msg_left, (int)st->out_sent, pending, (int)(st->end - st->parse),
            (int)(st->parse - st->pos), worker);
}

/* ---- clients ---- */

static const char *client_state(const sl_client *c, bool debug)
{
    switch (c->state) {
    case SL_CL_LOGIN:
    case SL_CL_AUTH: return debug ? "cl_login" : "login";
    case SL_CL_WELCOME:
    case SL_CL_WAITING: return debug ? "cl_waiting" : "waiting";
    case SL_CL_ACTIVE: return debug ? "cl_active" : "active";
    default: return debug ? "cl_active" : "idle";
    }
}

static void client_info(const round_ctx *ctx, const sl_client *c, sock_info *k, bool debug)
{
    memset(k, 0, sizeof(*k));
    k->type = "C";
    k->user = c->user ? c->user : "(nouser)";
    k->db = c->admin ? "pgbouncer" : c->route ? c->route->db_name : c->dbname ? c->dbname : "(nodb)";
    k->repl = sl_replication_name(c->replication);
    k->state = client_state(c, debug);
    k->app = c->params.v[SL_PARAM_APPLICATION_NAME] ? c->params.v[SL_PARAM_APPLICATION_NAME] : "";
    split_addr(c->addr, k->addr, sizeof(k->addr), &k->port, ctx->listen_port);
    local_addr(c->s.fd, k->laddr, sizeof(k->laddr), &k->lport, ctx->listen_port);
    if (!strcmp(k->addr, "unix")) k->remote_pid = peer_pid(c->s.fd);
    snprintf(k->ptr, sizeof(k->ptr), "%p", (const void *)c);
    if (c->server) snprintf(k->link, sizeof(k->link), "%p", (const void *)c->server);
    k->connect_time = c->connect_time;
    k->request_time = c->request_time;
    if (c->state == SL_CL_WAITING && c->wait_start) k->wait_us = ctx->now - c->wait_start;
    k->id = c->id;
    k->prepared = (int)c->ps_map.n;
    if (c->sess) sl_pin_reasons_text(c->sess->pins, k->pinned, sizeof(k->pinned));
    k->st = &c->s;
}

static bool stream_busy(const sl_stream *st)
{
    return st->end > st->pos || sl_stream_out_pending(st);
}

static void worker_clients(sl_worker *w, const round_ctx *ctx, adm_result *part, bool debug, bool active_only)
{
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &w->clients)
    {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (!debug && (c->state == SL_CL_LOGIN || c->state == SL_CL_AUTH)) continue;
        if (active_only && !stream_busy(&c->s)) continue;
        sock_info k;
        client_info(ctx, c, &k, debug);
        sock_row(part, ctx, &k, w->id, debug);
    }
}

/* ---- servers ---- */

static const char *server_state(const sl_server *s, const round_ctx *ctx, bool debug)
{
    switch (s->state) {
    case SL_SV_CONNECTING:
    case SL_SV_LOGIN: return debug ? "sv_login" : "new";
    case SL_SV_SETUP: return debug ? "sv_tested" : "tested";
    case SL_SV_IDLE:
        if (ctx->now - s->pc.idle_since >= ctx->check_delay) return debug ? "sv_used" : "used";
        return debug ? "sv_idle" : "idle";
    default: return s->client ? (debug ? "sv_active" : "active") : (debug ? "sv_idle" : "idle");
    }
}

static void server_info(const round_ctx *ctx, sl_server *s, sock_info *k, bool debug)
{
    memset(k, 0, sizeof(*k));
    sl_route *r = sl_server_route(s);
    char db[8];
    k->type = "S";
    sl_route_login_target(s->pc.backend, k->user_buf, sizeof(k->user_buf), db, sizeof(db), NULL, NULL);
    k->user = k->user_buf;
    k->db = r->db_name;
    k->repl = sl_replication_name(r->replication);
    k->state = server_state(s, ctx, debug);
    const char *app = s->client ? s->client->params.v[SL_PARAM_APPLICATION_NAME] : NULL;
    k->app = app ? app : "";
    split_addr(s->addr_str, k->addr, sizeof(k->addr), &k->port, 5432);
    local_addr(s->s.fd, k->laddr, sizeof(k->laddr), &k->lport, 0);
    k->remote_pid = (int)s->be_pid;
    k->close_needed = sl_route_conn_retire_due(&s->pc, ctx->now) ? 1 : 0;
    snprintf(k->ptr, sizeof(k->ptr), "%p", (const void *)s);
    if (s->client) snprintf(k->link, sizeof(k->link), "%p", (const void *)s->client);
    k->connect_time = s->pc.connect_time;
    k->request_time = s->link_time ? s->link_time : s->last_used;
    k->id = s->id;
    k->prepared = (int)s->ps_cache.n;
    k->st = &s->s;
    int role = sl_backend_role(s->pc.backend);
    if (role == SL_ROLE_ANY && s->pc.standby != SL_STANDBY_UNKNOWN)
        role = s->pc.standby == SL_STANDBY_ON ? SL_ROLE_REPLICA : SL_ROLE_PRIMARY;
    k->role = role == SL_ROLE_ANY ? NULL : sl_role_name((sl_role)role);
}

static void worker_servers(sl_worker *w, const round_ctx *ctx, adm_result *part, bool debug, bool active_only)
{
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &w->servers)
    {
        sl_server *s = sl_container_of(n, sl_server, node);
        if (active_only && !stream_busy(&s->s)) continue;
        sock_info k;
        server_info(ctx, s, &k, debug);
        sock_row(part, ctx, &k, w->id, debug);
    }
}

/* ---- counts for LISTS and MEM ---- */

static void worker_count(sl_worker *w, worker_counts *wc)
{
    sl_list *n;
    for (n = w->clients.next; n != &w->clients; n = n->next) {
        sl_client *c = sl_container_of(n, sl_client, node);
        if (c->state == SL_CL_LOGIN || c->state == SL_CL_AUTH) wc->login_clients++;
        else wc->clients++;
    }
    for (n = w->servers.next; n != &w->servers; n = n->next) wc->servers++;
    wc->free_bufs = (int)w->buf_free_n;
    wc->buf_size = (int)w->buf_size;
    wc->free_clients = (int)w->obj_free_n[SL_OBJ_CLIENT];
}

/* ---- the round ---- */

static void round_each(sl_worker *w, void *arg)
{
    round_ctx *ctx = arg;
    adm_result *part = &ctx->parts[w->id];
    adm_result_init(part);
    switch (ctx->what) {
    case W_CLIENTS: worker_clients(w, ctx, part, false, false); break;
    case W_SERVERS: worker_servers(w, ctx, part, false, false); break;
    case W_SOCKETS:
    case W_ACTIVE_SOCKETS:
        worker_clients(w, ctx, part, true, ctx->what == W_ACTIVE_SOCKETS);
        worker_servers(w, ctx, part, true, ctx->what == W_ACTIVE_SOCKETS);
        break;
    case W_LISTS:
    case W_MEM: worker_count(w, &ctx->counts[w->id]); break;
    }
}

static void lists_rows(adm_result *r, const round_ctx *ctx, const sl_config *cfg)
{
    worker_counts t = {0};
    for (int i = 0; i < sl_nworkers; i++) {
        t.clients += ctx->counts[i].clients;
        t.login_clients += ctx->counts[i].login_clients;
        t.servers += ctx->counts[i].servers;
        t.free_clients += ctx->counts[i].free_clients;
    }
    int ndbs = 0;
    for (size_t i = 0; i < cfg->n_dbs; i++) ndbs += strcmp(cfg->dbs[i].name, "*") != 0;
    int nusers = (int)cfg->n_userlist;
    adm_cols_lists(r);
    adm_row(r, "si", "databases", ndbs + 1);
    adm_row(r, "si", "users", nusers);
    adm_row(r, "si", "peers", 0);
    adm_row(r, "si", "pools", sl_pools_count() + 1);
    adm_row(r, "si", "peer_pools", 0);
    adm_row(r, "si", "free_clients", t.free_clients);
    adm_row(r, "si", "used_clients", t.clients);
    adm_row(r, "si", "login_clients", t.login_clients);
    adm_row(r, "si", "free_servers", 0);
    adm_row(r, "si", "used_servers", t.servers);
    adm_row(r, "si", "dns_names", 0);
    adm_row(r, "si", "dns_zones", 0);
    adm_row(r, "si", "dns_queries", 0);
    adm_row(r, "si", "dns_pending", 0);
}

/* Client objects and io buffers are kept for reuse per worker (net/worker.h); server and pool objects
 * are allocated one by one. */
static void mem_rows(adm_result *r, const round_ctx *ctx)
{
    worker_counts t = {0};
    for (int i = 0; i < sl_nworkers; i++) {
        t.clients += ctx->counts[i].clients + ctx->counts[i].login_clients;
        t.servers += ctx->counts[i].servers;
        t.free_bufs += ctx->counts[i].free_bufs;
        t.buf_size = ctx->counts[i].buf_size;
        t.free_clients += ctx->counts[i].free_clients;
    }
    int npools = sl_pools_count();
    adm_cols_mem(r);
    adm_row(r, "siiii", "client", (int)sizeof(sl_client), t.clients, t.free_clients,
            (t.clients + t.free_clients) * (int)sizeof(sl_client));
    adm_row(r, "siiii", "server", (int)sizeof(sl_server), t.servers, 0, t.servers * (int)sizeof(sl_server));
    adm_row(r, "siiii", "pool", (int)sizeof(sl_route), npools, 0, npools * (int)sizeof(sl_route));
    adm_row(r, "siiii", "iobuf", t.buf_size, 0, t.free_bufs, t.free_bufs * t.buf_size);
}

static void round_done(sl_worker *w, void *arg)
{
    round_ctx *ctx = arg;
    adm_session *s = adm_ref_session(w, &ctx->ref);
    if (s) {
        adm_result *r = &s->res;
        if (ctx->what == W_LISTS) lists_rows(r, ctx, w->cfg);
        else if (ctx->what == W_MEM) mem_rows(r, ctx);
        else if (ctx->what == W_SERVERS) adm_cols_servers(r);
        else if (ctx->what == W_CLIENTS) adm_cols_clients(r);
        else adm_cols_debug_sockets(r);
        for (int i = 0; i < sl_nworkers && ctx->what < W_LISTS; i++) adm_result_take_rows(r, &ctx->parts[i]);
    }
    for (int i = 0; i < sl_nworkers; i++) adm_result_free(&ctx->parts[i]);
    free(ctx->parts);
    free(ctx->counts);
    free(ctx);
    if (s) adm_async_done(s);
}

static adm_status start_round(adm_session *s, adm_result *r, what_t what)
{
    round_ctx *ctx = calloc(1, sizeof(*ctx));
    const sl_config *cfg = s->c->s.w->cfg;
    if (ctx) {
        ctx->parts = calloc((size_t)sl_nworkers, sizeof(adm_result));
        ctx->counts = calloc((size_t)sl_nworkers, sizeof(worker_counts));
        ctx->ref = adm_ref_of(s);
        ctx->what = what;
        ctx->now = sl_now_us();
        ctx->wall = sl_wall_us();
        ctx->check_delay = cfg->server_check_delay;
        ctx->listen_port = cfg->listen_port;
    }
    if (ctx && ctx->parts && ctx->counts && sl_workers_round(s->c->s.w, round_each, round_done, ctx))
        return ADM_ASYNC;
    if (ctx) {
        free(ctx->parts);
        free(ctx->counts);
        free(ctx);
    }
    adm_error(r, "53200", "out of memory");
    return ADM_DONE;
}

adm_status adm_show_clients(adm_session *s, adm_result *r) { return start_round(s, r, W_CLIENTS); }
adm_status adm_show_servers(adm_session *s, adm_result *r) { return start_round(s, r, W_SERVERS); }
adm_status adm_show_sockets(adm_session *s, adm_result *r) { return start_round(s, r, W_SOCKETS); }
adm_status adm_show_active_sockets(adm_session *s, adm_result *r) { return start_round(s, r, W_ACTIVE_SOCKETS); }
adm_status adm_show_lists(adm_session *s, adm_result *r) { return start_round(s, r, W_LISTS); }
adm_status adm_show_mem(adm_session *s, adm_result *r) { return start_round(s, r, W_MEM); }
