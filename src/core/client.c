/* client.c - a client connection from accept to close: startup packet, admission, the wait for a
 * server, timeouts, errors. Password exchange lives in client_auth.c, forwarding in proxy.c. */
#include "core/client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/random.h"
#include "core/auth_query.h"
#include "core/cancel.h"
#include "core/client_auth.h"
#include "core/console.h"
#include "core/dispatch.h"
#include "core/lifecycle.h"
#include "core/listen_extended.h"
#include "core/listen_fanout.h"
#include "core/proxy.h"
#include "core/proxy_ps.h"
#include "core/rw_split.h"
#include "core/server.h"
#include "core/session_state.h"
#include "net/tls.h"
#include "proto/msgtype.h"
#include "proto/pgoptions.h"
#include "util/intern.h"
#include "util/log.h"
#include "util/time.h"

#define CL_LOG(c, lvl, fmt, ...) \
    sl_log_msg(lvl, "C-0x%llx: %s/%s@%s " fmt, (unsigned long long)(c)->id, (c)->dbname ? (c)->dbname : "?", \
               (c)->user ? (c)->user : "?", (c)->addr, ##__VA_ARGS__)

static void client_on_event(sl_stream *st, int events);

static void login_free(sl_worker *w, sl_client_login *l)
{
    if (!l) return;
    free(l->scram);
    sl_config_unref(l->cfg);
    if (l->secret) {
        explicit_bzero(l->secret, strlen(l->secret));
        free(l->secret);
    }
    sl_worker_obj_put(w, SL_OBJ_LOGIN, l);
}

static void client_free(sl_stream *st)
{
    sl_client *c = (sl_client *)st;
    if (c->counted) __atomic_sub_fetch(&sl_total_clients, 1, __ATOMIC_RELAXED); /* after a lingering close */
    sl_params_clear(&c->params);
    sl_sess_free(c);
    sl_stmt_map_clear(&c->ps_map);
    free(c->deferred_begin);
    sl_intern_release(c->user);
    sl_intern_release(c->dbname);
    /* to the free lists of the worker this runs on: the client's owner (none for a client a
     * takeover could not hand to a worker) */
    sl_worker *w = sl_worker_self();
    login_free(w, c->login);
    sl_worker_obj_put(w, SL_OBJ_CLIENT, c);
}

void sl_client_accept(sl_worker *w, int fd, const char *addr, bool is_unix)
{
    sl_client *c = sl_worker_obj_get(w, SL_OBJ_CLIENT, sizeof(*c));
    sl_client_login *login = c ? sl_worker_obj_get(w, SL_OBJ_LOGIN, sizeof(*login)) : NULL;
    if (!login) {
        sl_worker_obj_put(w, SL_OBJ_CLIENT, c);
        sl_stream tmp;
        sl_stream_init(&tmp, fd);
        sl_stream_close(&tmp, NULL);
        return;
    }
    sl_stream_init(&c->s, fd);
    c->login = login;
    c->id = __atomic_add_fetch(&sl_conn_counter, 1, __ATOMIC_RELAXED);
    c->gen = (uint32_t)c->id;
    const char *a = is_unix ? "unix" : addr;
    size_t alen = strnlen(a, sizeof(c->addr) - 1);
    memcpy(c->addr, a, alen);
    c->addr[alen] = '\0';
    c->is_unix = is_unix;
    c->slot = sl_worker_add_slot(w, c, c->gen);
    if (c->slot == UINT32_MAX || !sl_stream_attach(&c->s, w, client_on_event)) {
        if (c->slot != UINT32_MAX) sl_worker_remove_slot(w, c->slot, c);
        c->s.w = w;
        sl_stream_close(&c->s, client_free);
        return;
    }
    c->cancel_key = sl_cancel_key_new(w->cfg);
    __atomic_add_fetch(&sl_total_clients, 1, __ATOMIC_RELAXED); /* max_client_conn counts it from now */
    c->counted = true;
    c->state = SL_CL_LOGIN;
    c->wt.worker = w->id;
    c->wt.slot = c->slot;
    c->wt.gen = c->gen;
    c->connect_time = c->last_activity = sl_now_fast();
    sl_list_init(&c->wt.node);
    sl_list_insert_tail(&w->clients, &c->node);
    SL_OWNER_ADD(w->nclients, 1);
    SL_OWNER_ADD(w->stats.clients_accepted, 1);
    sl_stream_set_poll(&c->s, UV_READABLE);
    /* the startup packet is normally there already (TCP_DEFER_ACCEPT, or a client that sends it
     * right after connecting): read it now instead of one loop turn later */
    client_on_event(&c->s, UV_READABLE);
}

bool sl_client_adopt(sl_worker *w, sl_client *c, const char *fatal_sqlstate, const char *fatal_msg)
{
    sl_client_state st = c->state;
    c->s.w = w;
    c->state = SL_CL_IDLE;
    __atomic_add_fetch(&sl_total_clients, 1, __ATOMIC_RELAXED);
    c->counted = true;
    c->wt.worker = w->id;
    c->wt.slot = c->slot;
    c->wt.gen = c->gen;
    sl_list_init(&c->wt.node);
    sl_list_insert_tail(&w->clients, &c->node);
    SL_OWNER_ADD(w->nclients, 1);
    if (!sl_stream_attach(&c->s, w, client_on_event)) {
        if (c->server) {
            sl_server *s = c->server;
            c->server = NULL;
            s->client = NULL;
            sl_server_close(s, SL_CLOSE_ATTACH_FAILED);
        }
        sl_client_close(c, SL_CLOSE_ATTACH_FAILED);
        return false;
    }
    if (fatal_sqlstate) {
        sl_client_error(c, true, fatal_sqlstate, "%s", fatal_msg);
        return false;
    }
    if (st == SL_CL_ACTIVE && c->server) {
        c->state = SL_CL_ACTIVE;
        sl_proxy_start(c, c->server);
        if (c->state == SL_CL_ACTIVE && !c->s.want) sl_stream_set_poll(&c->s, UV_READABLE);
        return true;
    }
    if (st == SL_CL_WELCOME) {
        c->state = SL_CL_WELCOME;
        c->request_time = c->wait_start = sl_now_fast();
        sl_client_wake(c);
        return true;
    }
    sl_stream_set_poll(&c->s, UV_READABLE);
    /* a request it sent while the previous process was handing it over (what came later is still on
     * the socket: the poll reports it) */
    if (c->s.end > c->s.parse) sl_client_idle_input(c);
    return true;
}

static void client_flush_out(sl_client *c)
{
    sl_io_status st = sl_stream_flush(&c->s, NULL);
    if (st == SL_IO_AGAIN) sl_stream_set_poll(&c->s, UV_WRITABLE);
}

/* Let go of the linked server: back to the pool if it is between transactions, else closed (a
 * server left mid-transaction or mid-query cannot be reused safely). */
static void drop_server(sl_client *c)
{
    sl_server *s = c->server;
    c->server = NULL;
    s->client = NULL;
    if (s->xact != SL_XACT_IDLE || s->outstanding > 0 || s->in_batch || sl_stream_fwd_pending(&c->s) ||
        s->state != SL_SV_ACTIVE)
        sl_server_close(s, SL_CLOSE_CLIENT_MID_TRANSACTION);
    else
        sl_proxy_unlink_release(s);
}

void sl_client_close_detail(sl_client *c, sl_close_reason why, const char *detail)
{
    if (c->state == SL_CL_CLOSING) return;
    sl_worker *w = c->s.w;
    if (c->admin) sl_console_closed(c);
    if (c->route && (c->state == SL_CL_WAITING || c->state == SL_CL_WELCOME || c->state == SL_CL_AUTH))
        sl_route_unqueue(c->route, &c->wt);
    if (c->server) drop_server(c);
    if (c->fanout) sl_fanout_client_gone(c); /* its channels, before its route goes */
    if (c->logged_in) sl_route_client_logout(c->route);
    if (c->route) sl_route_put(c->route);
    c->route = NULL;
    /* a client told why it is closed gets the time to read it (a lingering close, bounded); it still
     * holds its descriptor meanwhile, so it counts towards max_client_conn until it is gone */
    bool linger = !c->peer_closed && (why == SL_CLOSE_ERROR_SENT || sl_stream_out_pending(&c->s));
    if (c->counted && !linger) {
        __atomic_sub_fetch(&sl_total_clients, 1, __ATOMIC_RELAXED);
        c->counted = false;
    }
    if (why != SL_CLOSE_NONE && w->cfg->log_disconnections && c->user)
        CL_LOG(c, SL_LOG_INFO, "closing because: %s (age=%llds)", detail ? detail : sl_close_reason_text(why),
               (long long)((sl_now_fast() - c->connect_time) / 1000000)); /* PgBouncer's wording (pgbadger) */
    sl_client_set_state(c, SL_CL_CLOSING);
    SL_OWNER_ADD(w->nclients, -1);
    sl_worker_remove_slot(w, c->slot, c);
    if (linger) {
        /* last words (an error): sent, then the input is drained until the client closes too, or
         * for at most SL_STREAM_LINGER_MS (net/stream_linger.c) */
        sl_stream_close_lingering(&c->s, client_free);
        return;
    }
    /* the peer sees the end now; the descriptor is closed once libuv lets go of it (a peer that hung
     * up or said Terminate is not waiting for that) */
    if (!c->peer_closed) sl_stream_shutdown(&c->s);
    sl_stream_close(&c->s, client_free);
}

void sl_client_close(sl_client *c, sl_close_reason why) { sl_client_close_detail(c, why, NULL); }

void sl_client_error(sl_client *c, bool fatal, const char *sqlstate, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sl_pb_error(&c->s.out, fatal, sqlstate, "%s", msg);
    if (c->s.w->cfg->log_pooler_errors) CL_LOG(c, SL_LOG_WARNING, "pooler error: %s (%s)", msg, sqlstate);
    if (fatal) {
        sl_client_close_detail(c, SL_CLOSE_ERROR_SENT, msg);
        return;
    }
    sl_pb_ready(&c->s.out, c->server ? c->server->xact : SL_XACT_IDLE);
    client_flush_out(c);
}

/* ---- startup ---- */

/* The "options" startup parameter (PGOPTIONS): -c settings of tracked parameters are taken as if they
 * were startup parameters, those in ignore_startup_parameters are dropped, anything else refuses the
 * login (as PgBouncer: pgsluice cannot keep other settings per client across servers). */
static bool take_options(sl_client *c, const sl_config *cfg, const char *options)
{
    const char *pos = options;
    char name[128], value[512], err[256];
    for (;;) {
        sl_pgopt_status st = sl_pgoptions_next(&pos, name, sizeof(name), value, sizeof(value), err, sizeof(err));
        if (st == SL_PGOPT_DONE) return true;
        if (st == SL_PGOPT_ERROR) {
            sl_client_error(c, true, "08P01", "unsupported options startup parameter: %s", err);
            return false;
        }
        int id = sl_param_lookup(name);
        if (id >= 0) {
            sl_params_set(&c->params, id, value);
        } else if (!sl_list_contains(cfg->ignore_startup_parameters, name)) {
            sl_client_error(c, true, "08P01",
                            "unsupported options startup parameter: parameter cannot be changed: %s", name);
            return false;
        }
    }
}

/* replication=true|on|yes|1 (physical: pg_basebackup, pg_receivewal, a standby) or database (logical:
 * subscribers, pg_recvlogical), as PostgreSQL reads it; false|off|no|0 is an ordinary connection. */
static bool take_replication(sl_client *c, const char *v)
{
    static const char *const yes[] = {"true", "on", "yes", "1"}, *const no[] = {"false", "off", "no", "0"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (!strcasecmp(v, yes[i])) {
            c->replication = SL_REPL_PHYSICAL;
            return true;
        }
        if (!strcasecmp(v, no[i])) {
            c->replication = SL_REPL_NONE;
            return true;
        }
    }
    if (!strcasecmp(v, "database")) {
        c->replication = SL_REPL_LOGICAL;
        return true;
    }
    sl_client_error(c, true, "22023", "invalid value for parameter \"replication\": \"%s\"", v);
    return false;
}

/* A client asking for a newer minor protocol version (3.2, libpq 18) or for protocol options (_pq_.*)
 * is told what pgsluice speaks, as PostgreSQL does: NegotiateProtocolVersion with 3.0 and the options
 * it does not know (all of them), before anything else. */
static void negotiate_version(sl_client *c, const sl_startup *st)
{
    int unknown = 0;
    for (int i = 0; i < st->nparams; i++)
        if (!strncmp(st->names[i], "_pq_.", 5)) unknown++;
    if ((st->code & 0xffff) == 0 && unknown == 0) return;
    sl_pktbuf *out = &c->s.out;
    sl_pb_begin(out, SL_BE_NEGOTIATE_VERSION);
    sl_pb_u32(out, SL_PROTO_V3);
    sl_pb_u32(out, (uint32_t)unknown);
    for (int i = 0; i < st->nparams; i++)
        if (!strncmp(st->names[i], "_pq_.", 5)) sl_pb_str(out, st->names[i]);
    sl_pb_end(out);
}

static bool admit(sl_client *c, const sl_startup *st)
{
    const sl_config *cfg = c->s.w->cfg;
    const char *user = sl_startup_get(st, "user");
    const char *db = sl_startup_get(st, "database");
    if (!user || !*user) {
        sl_client_error(c, true, "08P01", "no PostgreSQL user name specified in startup packet");
        return false;
    }
    c->user = sl_intern(user);
    c->dbname = sl_intern(db && *db ? db : user);
    if (!c->user || !c->dbname) {
        sl_client_error(c, true, "53200", "out of memory");
        return false;
    }
    negotiate_version(c, st);
    for (int i = 0; i < st->nparams; i++) {
        /* allowed: user, database, the tracked parameters and ignore_startup_parameters */
        const char *name = st->names[i];
        if (!strcmp(name, "user") || !strcmp(name, "database") || !strncmp(name, "_pq_.", 5)) continue;
        if (!strcmp(name, "replication")) {
            if (!take_replication(c, st->values[i])) return false;
            continue;
        }
        int id = sl_param_lookup(name);
        if (id >= 0) {
            sl_params_set(&c->params, id, st->values[i]);
        } else if (!strcmp(name, "options") && !sl_list_contains(cfg->ignore_startup_parameters, name)) {
            if (!take_options(c, cfg, st->values[i])) return false;
        } else if (!sl_list_contains(cfg->ignore_startup_parameters, name)) {
            sl_client_error(c, true, "08P01", "unsupported startup parameter: %s", name);
            return false;
        }
    }
    if (cfg->application_name_add_host) {
        char buf[256];
        const char *an = c->params.v[SL_PARAM_APPLICATION_NAME];
        snprintf(buf, sizeof(buf), "%s - %s", an ? an : "", c->addr);
        sl_params_set(&c->params, SL_PARAM_APPLICATION_NAME, buf);
    }
    /* every connection counts, logged in or not (a flood of logins that never finish is bounded by
     * it too); the console stays reachable when the pooler is full, as with PgBouncer */
    if (__atomic_load_n(&sl_total_clients, __ATOMIC_RELAXED) > cfg->max_client_conn && !sl_console_is_db(c->dbname)) {
        sl_client_error(c, true, "53300", "no more connections allowed (max_client_conn)");
        return false;
    }
    sl_run_state rs = sl_run_state_get();
    bool console_while_waiting = rs == SL_RUN_SHUTDOWN_WAIT_CLIENTS && sl_console_is_db(c->dbname);
    if (rs >= SL_RUN_SHUTDOWN_GRACEFUL && !console_while_waiting) {
        sl_client_error(c, true, "57P03", "pgsluice is shutting down");
        return false;
    }
    if (sl_tls_client_must_use_tls((sl_tls_mode)cfg->client_tls_sslmode, c->is_unix) && !sl_stream_is_tls(&c->s)) {
        sl_client_error(c, true, "28000", "SSL required");
        return false;
    }
    if (cfg->log_connections)
        CL_LOG(c, SL_LOG_INFO, "login attempt: db=%s user=%s tls=%s replication=%s", c->dbname, c->user,
               sl_stream_is_tls(&c->s) ? "yes" : "no",
               c->replication == SL_REPL_PHYSICAL ? "yes" : c->replication == SL_REPL_LOGICAL ? "database" : "no");
    c->admin = sl_console_is_db(c->dbname);
    if (c->admin && c->replication) {
        sl_client_error(c, true, "08P01", "the admin console does not take replication connections");
        return false;
    }
    sl_client_set_state(c, SL_CL_AUTH);
    sl_client_auth_start(c);
    return true;
}

/* The TLS handshake with a client ended or needs the socket again: false when it is not over. */
static bool client_handshake(sl_client *c)
{
    sl_io_status st = sl_stream_handshake(&c->s);
    if (st == SL_IO_AGAIN) return false;
    if (st != SL_IO_OK) {
        CL_LOG(c, SL_LOG_WARNING, "TLS handshake with client failed: %s",
               *sl_stream_tls_error(&c->s) ? sl_stream_tls_error(&c->s) : "connection closed");
        c->peer_closed = true;
        sl_client_close(c, SL_CLOSE_CLIENT_READ_ERROR);
        return false;
    }
    sl_stream_set_poll(&c->s, UV_READABLE);
    return true;
}

/* Switch the connection to TLS: after an SSLRequest (answered 'S' here) or a direct ClientHello.
 * false: the client was closed or the handshake goes on in the background. */
static bool client_start_tls(sl_client *c, bool direct)
{
    char err[256];
    sl_tls_ctx *ctx = sl_tls_acquire(SL_TLS_ACCEPT);
    bool ok = direct ? sl_stream_start_tls_server(&c->s, ctx, true, err, sizeof(err))
                     : sl_stream_accept_encryption(&c->s, ctx, err, sizeof(err));
    sl_tls_ctx_unref(ctx);
    if (!ok) {
        CL_LOG(c, SL_LOG_WARNING, "could not start TLS: %s", err);
        sl_client_close(c, SL_CLOSE_CLIENT_READ_ERROR);
        return false;
    }
    return client_handshake(c);
}

/* A handshake that ended at once: what the client sent behind it is read now (no event may come
 * for bytes OpenSSL already took off the socket). */
static bool client_read_after_handshake(sl_client *c)
{
    sl_io_status st = sl_stream_read(&c->s);
    if (st == SL_IO_EOF || st == SL_IO_ERROR) {
        c->peer_closed = st == SL_IO_EOF;
        sl_client_close(c, st == SL_IO_EOF ? SL_CLOSE_CLIENT_EOF : SL_CLOSE_CLIENT_READ_ERROR);
        return false;
    }
    return true;
}

/* May this client switch to TLS now (TLS configured, TCP, not already TLS)? */
static bool client_tls_possible(const sl_client *c)
{
    return !sl_stream_is_tls(&c->s) &&
           sl_tls_client_may_use_tls((sl_tls_mode)c->s.w->cfg->client_tls_sslmode, c->is_unix);
}

/* The first packet: startup, SSL/GSS negotiation or a cancel request. */
static void handle_login(sl_client *c)
{
    sl_stream *s = &c->s;
    while (c->state == SL_CL_LOGIN) {
        uint32_t have = s->end - s->pos;
        if (have >= 1 && !sl_stream_is_tls(s) && sl_tls_is_direct_hello(s->buf + s->pos, have)) {
            /* PostgreSQL 17's sslnegotiation=direct: TLS from the first byte, ALPN "postgresql" */
            if (!client_tls_possible(c)) {
                CL_LOG(c, SL_LOG_WARNING, "direct TLS connection refused: %s",
                       c->is_unix ? "not over a Unix socket" : "TLS is not enabled (client_tls_sslmode)");
                sl_client_close(c, SL_CLOSE_CLIENT_READ_ERROR);
                return;
            }
            if (!client_start_tls(c, true) || !client_read_after_handshake(c)) return;
            continue;
        }
        if (have < 4) return;
        uint32_t len = sl_get_u32(s->buf + s->pos);
        if (len < 8 || len > SL_STARTUP_MAX) {
            sl_client_error(c, true, "08P01", "invalid length of startup packet (%u bytes)", len);
            return;
        }
        if (have < len) {
            if (!sl_stream_make_room(s, len - have, SL_STARTUP_MAX)) sl_client_close(c, SL_CLOSE_OUT_OF_MEMORY);
            return;
        }
        sl_startup st;
        sl_startup_status rc = sl_startup_parse(s->buf + s->pos, len, &st);
        if (rc != SL_STARTUP_OK) {
            sl_client_error(c, true, "08P01", "%s", sl_startup_status_str(rc));
            return;
        }
        s->pos += len;
        s->parse = s->pos;
        if (st.code == SL_SSL_CODE && client_tls_possible(c)) {
            if (!client_start_tls(c, false) || !client_read_after_handshake(c)) return;
            continue; /* the startup packet comes over TLS */
        }
        if (st.code == SL_SSL_CODE || st.code == SL_GSSENC_CODE) {
            sl_stream_refuse_encryption(s);
            client_flush_out(c);
            continue;
        }
        if (st.code == SL_CANCEL_CODE) {
            sl_cancel_request(s->w, st.cancel_pid, st.cancel_key);
            sl_client_close(c, SL_CLOSE_NONE);
            return;
        }
        if (!admit(c, &st)) return;
    }
}

/* Send AuthenticationOk's companions: ParameterStatus, BackendKeyData, ReadyForQuery. */
static void send_welcome(sl_client *c)
{
    sl_pktbuf *out = &c->s.out;
    sl_route_welcome(c->route, out, &c->params);
    sl_pb_param_statuses(out, sl_param_names, c->params.v, SL_NPARAMS);
    uint32_t pid = ((uint32_t)c->s.w->id << 24) | c->slot;
    sl_pb_backend_key(out, pid, c->cancel_key);
    sl_pb_ready(out, SL_XACT_IDLE);
    sl_client_set_state(c, SL_CL_IDLE);
    c->last_activity = sl_now_fast();
    if (c->s.w->cfg->log_connections) CL_LOG(c, SL_LOG_INFO, "login ok");
    client_flush_out(c);
    sl_stream_trim(&c->s);
}

/* The route of an authenticated client: its database and user, or the database's forced user when
 * auth_type = any (the client's user name means nothing then). */
static bool find_route(sl_client *c)
{
    const sl_config *cfg = c->s.w->cfg;
    const char *user = c->user;
    if (cfg->auth_type == SL_AUTH_ANY) {
        const sl_db_def *db = sl_config_find_db(cfg, c->dbname);
        if (db && (!db->user || !*db->user)) {
            sl_client_error(c, true, "28000", "auth_type any needs a forced user (user=) for database \"%s\"",
                            c->dbname);
            return false;
        }
        if (db) user = db->user;
    }
    char sqlstate[6], err[256];
    c->route = sl_route_get(cfg, c->dbname, user, c->replication, sqlstate, err, sizeof(err));
    if (!c->route) sl_client_error(c, true, sqlstate, "%s", err);
    return c->route != NULL;
}

void sl_client_auth_done(sl_client *c, const uint8_t *scram_client_key, const uint8_t *scram_server_key)
{
    /* the exchange is over: its state goes (the rule that decided it, the SCRAM state), all but a
     * secret auth_query found, which the route keeps for the next logins and its servers */
    char *secret = c->login ? c->login->secret : NULL;
    if (c->login) c->login->secret = NULL;
    login_free(sl_worker_self(), c->login);
    c->login = NULL;
    sl_pb_auth(&c->s.out, 0, NULL, 0);
    if (!c->admin && find_route(c)) {
        if (scram_client_key) sl_route_set_scram_keys(c->route, scram_client_key, scram_server_key);
        if (secret) sl_route_set_auth_secret(c->route, secret);
    }
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
    if (c->admin) {
        sl_console_login(c);
        return;
    }
    if (!c->route) return;
    const char *limit = NULL;
    if (!sl_route_client_login(c->route, &limit)) {
        sl_client_error(c, true, "53300", "no more connections allowed (%s)", limit);
        return;
    }
    c->logged_in = true;
    if (sl_route_has_welcome(c->route)) {
        send_welcome(c);
        return;
    }
    /* learn the server's parameters from a real server first (query_wait_timeout counts from now) */
    c->request_time = c->wait_start = sl_now_fast();
    sl_client_set_state(c, SL_CL_WELCOME);
    client_flush_out(c);
    sl_client_wake(c);
}

void sl_client_wake(sl_client *c)
{
    bool lookup = c->state == SL_CL_AUTH && c->login && c->login->method == SL_AUTH_STEP_LOOKUP && c->route;
    if (c->state != SL_CL_WELCOME && c->state != SL_CL_WAITING && !lookup) return;
    if (__atomic_load_n(&c->wt.queued, __ATOMIC_RELAXED)) return;
    c->wt.login = c->state != SL_CL_WAITING; /* still logging in: told at once when server logins fail */
    sl_acquire a;
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    switch (sl_route_acquire(c->route, &c->wt, c->s.w->cfg, &a, &act)) {
    case SL_ACQ_GOT: sl_client_got_server(c, sl_container_of(a.conn, sl_server, pc)); break;
    case SL_ACQ_STEAL: {
        /* the owner detaches it and hands it to us */
        sl_msg m = {.type = SL_MSG_DETACH_SERVER, .obj = sl_container_of(a.conn, sl_server, pc), .to = c->s.w->id,
                    .slot = c->slot, .gen = c->gen};
        sl_worker_post(&sl_workers[a.conn->worker], &m);
        break;
    }
    case SL_ACQ_QUEUED: break;
    case SL_ACQ_FAIL: sl_client_error(c, true, a.sqlstate, "%s", a.err); break;
    }
    sl_carry_out(&act);
}

void sl_client_got_server(sl_client *c, sl_server *s)
{
    int64_t now = sl_now_fast();
    if (c->wait_start) {
        int64_t waited = now - c->wait_start;
        c->wait_us_total += (uint64_t)waited;
        s->pend.wait_time_us += (uint64_t)waited;
        sl_hist_add(&s->pend.h_wait, waited);
        c->wait_start = 0;
    }
    if (c->state == SL_CL_AUTH) { /* the server is for looking up its secret */
        if (c->login && c->login->method == SL_AUTH_STEP_LOOKUP && c->route) sl_auth_query_run(c, s);
        else sl_server_release(s);
        return;
    }
    if (c->state == SL_CL_WELCOME && c->replication) {
        /* its own server, opened with its parameters: kept for its whole life (session) */
        send_welcome(c);
        if (c->state == SL_CL_IDLE) sl_proxy_link(c, s);
        else sl_server_close(s, SL_CLOSE_REPLICATION_CLIENT_GONE);
        return;
    }
    if (c->state == SL_CL_WELCOME) {
        sl_server_release(s);
        send_welcome(c);
        /* it may have sent its first query already */
        if (c->state == SL_CL_IDLE && c->s.end > c->s.parse) client_on_event(&c->s, UV_READABLE);
        return;
    }
    if (c->state != SL_CL_WAITING) {
        sl_server_release(s);
        return;
    }
    sl_proxy_link(c, s);
}

void sl_client_idle_input(sl_client *c)
{
    sl_stream *s = &c->s;
    bool local = sl_ps_enabled_for(c);
    int64_t max_packet = c->s.w->cfg->max_packet_size;
    if (__builtin_expect(c->fanout != NULL, 0) && sl_fanout_client_waiting(c)) {
        sl_stream_set_poll(s, 0); /* its LISTEN is answered first; the rest stays buffered */
        return;
    }
    while (c->state == SL_CL_IDLE && s->end - s->parse >= 5) {
        char type = (char)s->buf[s->parse];
        uint32_t len = sl_get_u32(s->buf + s->parse + 1);
        if (len < 4 || (int64_t)len > max_packet) {
            sl_client_error(c, true, "08P01", "invalid message length %u (type '%c')", len, type);
            return;
        }
        if (type == SL_FE_TERMINATE) {
            c->peer_closed = true;
            sl_client_close(c, SL_CLOSE_CLIENT_TERMINATE);
            return;
        }
        if (type == SL_FE_QUERY && c->s.w->cfg->disable_pqexec) { /* PgBouncer's words */
            sl_client_error(c, true, "08P01", "PQexec disallowed");
            return;
        }
        /* read_write_split: the transaction's declared access mode picks primary or replica */
        bool now = false;
        if (__builtin_expect(c->deferred_begin != NULL || sl_route_rw_split(c->route), 0)) {
            sl_rws_result rw = sl_rw_split_message(c, type, len);
            if (rw == SL_RWS_NEED_MORE) break;
            if (rw == SL_RWS_CONSUMED) continue;
            now = rw == SL_RWS_FORWARD_NOW;
        }
        if ((type == SL_FE_QUERY || type == SL_FE_PARSE || type == SL_FE_BIND || type == SL_FE_DESCRIBE) && !now) {
            /* LISTEN / UNLISTEN served without a server */
            sl_fanout_result fr =
                type == SL_FE_QUERY ? sl_fanout_client_query(c, len) : sl_fanout_client_extended(c, type, len);
            if (fr == SL_FANOUT_NEED_MORE) break;
            if (fr == SL_FANOUT_DONE) continue;
            if (fr == SL_FANOUT_WAIT) {
                if (sl_stream_out_pending(s)) client_flush_out(c);
                return;
            }
        }
        sl_ps_result r = local && !now ? sl_ps_client_local(c, type, len) : SL_PS_FORWARD;
        if (r == SL_PS_NEED_MORE) break;
        if (r == SL_PS_MALFORMED) {
            sl_client_error(c, true, "08P01", "malformed message (type '%c')", type);
            return;
        }
        if (r == SL_PS_CONSUMED) continue;
        if (__builtin_expect(c->fanout != NULL, 0)) sl_fanout_client_forwarding(c);
        sl_client_set_state(c, SL_CL_WAITING);
        c->request_time = c->wait_start = sl_now_fast();
        c->wait_notified = false;
        if (sl_stream_out_pending(s)) (void)sl_stream_flush(s, NULL);
        sl_client_wake(c);
        /* only a client left waiting stops reading: a linked one keeps its poll as it is, so the
         * common case (an idle server at hand) costs no epoll_ctl */
        if (c->state == SL_CL_WAITING) sl_stream_set_poll(s, 0);
        return;
    }
    if (sl_stream_out_pending(s)) client_flush_out(c);
}

static void client_on_event(sl_stream *s, int events)
{
    sl_client *c = (sl_client *)s;
    if (c->state == SL_CL_LOGIN && sl_stream_tls_handshaking(s)) {
        if (!client_handshake(c)) return;
        events = UV_READABLE; /* the startup packet may sit in OpenSSL's buffer already */
    }
    if (events & UV_WRITABLE) {
        if (c->state == SL_CL_ACTIVE) {
            sl_proxy_client_writable(c);
            return;
        }
        sl_io_status st = sl_stream_flush(s, NULL);
        if (st == SL_IO_ERROR) {
            sl_client_close(c, SL_CLOSE_CLIENT_WRITE_ERROR);
            return;
        }
        if (st == SL_IO_AGAIN) return;
        if (c->state == SL_CL_WAITING || c->state == SL_CL_WELCOME) sl_stream_set_poll(s, 0);
        else sl_stream_set_poll(s, UV_READABLE);
        if (c->state == SL_CL_IDLE) sl_stream_trim(s);
    }
    if (!(events & UV_READABLE) || c->state == SL_CL_CLOSING) return;
    if (c->state == SL_CL_ACTIVE) {
        sl_proxy_client_input(c);
        return;
    }
    sl_io_status st = sl_stream_read(s);
    if (st == SL_IO_EOF) {
        c->peer_closed = true;
        sl_client_close(c, SL_CLOSE_CLIENT_EOF);
        return;
    }
    if (st == SL_IO_ERROR) {
        sl_client_close(c, SL_CLOSE_CLIENT_READ_ERROR);
        return;
    }
    c->last_activity = sl_now_fast();
    switch (c->state) {
    case SL_CL_LOGIN: handle_login(c); break;
    case SL_CL_AUTH: sl_client_auth_input(c); break;
    case SL_CL_IDLE:
        if (c->admin) sl_console_input(c);
        else sl_client_idle_input(c);
        break;
    case SL_CL_WELCOME:
    case SL_CL_WAITING:
        sl_stream_set_poll(s, 0); /* keep it buffered until a server comes */
        break;
    default: break;
    }
    if (c->state == SL_CL_IDLE) sl_stream_trim(s);
    else if (c->state != SL_CL_CLOSING) sl_stream_maybe_release_buf(s);
}

/* The client's server is closed under it (a timeout, server_fast_close): the answers already on
 * their way to the client go first, then the error; an answer cut in the middle of a message
 * closes the client without one (proxy.h). */
static void close_server_then_error(sl_client *c, sl_server *s, sl_close_reason why, const char *sqlstate,
                                    const char *msg)
{
    bool whole = sl_proxy_keep_answers(c, s);
    c->server = NULL;
    s->client = NULL;
    sl_server_close(s, why);
    if (whole) sl_client_error(c, true, sqlstate, "%s", msg);
    else sl_proxy_close_cut(c, why);
}

/* Timeouts for this client, checked every tick by its worker: its route's (resolved from [users],
 * [databases] and the current global settings, refreshed by every RELOAD and SET), so a change
 * reaches clients connected before it. */
void sl_client_tick(sl_client *c, int64_t now)
{
    const sl_config *cfg = c->s.w->cfg;
    switch (c->state) {
    case SL_CL_LOGIN:
    case SL_CL_AUTH:
    {
        int64_t fail_at = c->login ? c->login->fail_at : 0;
        if (fail_at && now >= fail_at) { /* a refusal held back by auth_failure_delay */
            sl_client_error(c, true, c->login->fail_sqlstate, "%s", c->login->fail_msg);
            break;
        }
        if (fail_at) break;
    }
        if (cfg->client_login_timeout > 0 && now - c->connect_time > cfg->client_login_timeout)
            sl_client_error(c, true, "08P01", "client_login_timeout (server down or wrong password?)");
        break;
    case SL_CL_WELCOME:
    case SL_CL_WAITING: {
        int64_t t = SL_ROUTE_TIMEOUT(c->route, query_wait_timeout);
        if (t > 0 && now - c->request_time > t && sl_route_unqueue(c->route, &c->wt)) {
            sl_client_error(c, true, "08P01", "query_wait_timeout");
            break;
        }
        if (c->state == SL_CL_WAITING && cfg->query_wait_notify > 0 && !c->wait_notified &&
            now - c->request_time > cfg->query_wait_notify) {
            char msg[300];
            snprintf(msg, sizeof(msg), "No server connection available in pool \"%s/%s\", waiting",
                     c->route->db_name, c->route->user);
            sl_pb_notice_detail(&c->s.out, msg, NULL);
            c->wait_notified = true;
            client_flush_out(c);
        }
        break;
    }
    case SL_CL_IDLE: {
        int64_t t = c->route ? SL_ROUTE_TIMEOUT(c->route, client_idle_timeout) : cfg->client_idle_timeout;
        if (t > 0 && now - c->last_activity > t) sl_client_error(c, true, "08P01", "client_idle_timeout");
        break;
    }
    case SL_CL_ACTIVE: {
        sl_server *s = c->server;
        if (!s || s->state != SL_SV_ACTIVE) break;
        sl_route *r = c->route;
        int64_t qt = SL_ROUTE_TIMEOUT(r, query_timeout), it = SL_ROUTE_TIMEOUT(r, idle_transaction_timeout);
        int64_t xt = SL_ROUTE_TIMEOUT(r, transaction_timeout);
        sl_close_reason why = SL_CLOSE_NONE;
        if (qt > 0 && s->outstanding > 0 && c->query_start && now - c->query_start > qt)
            why = SL_CLOSE_QUERY_TIMEOUT;
        else if (it > 0 && s->outstanding == 0 && s->xact != SL_XACT_IDLE && now - c->last_activity > it)
            why = SL_CLOSE_IDLE_TRANSACTION_TIMEOUT;
        else if (xt > 0 && c->xact_start && now - c->xact_start > xt)
            why = SL_CLOSE_TRANSACTION_TIMEOUT;
        /* server_fast_close (session pooling): a server due for replacement goes between transactions,
         * and takes its client's session with it */
        bool fast_close = why == SL_CLOSE_NONE && cfg->server_fast_close && s->xact == SL_XACT_IDLE &&
                          s->outstanding == 0 && !s->in_batch && sl_route_pool_mode(r) == SL_POOL_SESSION &&
                          sl_route_conn_retire_due(&s->pc, now);
        if (fast_close) {
            close_server_then_error(c, s, SL_CLOSE_SERVER_RETIRED, "57P01",
                                    "server_fast_close: the server connection of this session was closed by a "
                                    "configuration change (RECONNECT, RELOAD)");
            break;
        }
        if (why == SL_CLOSE_NONE) break;
        /* the client is told why (as PgBouncer does), then its server goes: it is mid-query or
         * mid-transaction and cannot be reused */
        close_server_then_error(c, s, why, "08P01", sl_close_reason_text(why));
        break;
    }
    default: break;
    }
}
