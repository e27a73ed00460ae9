/* server_setup.c - the pooler's own queries on a server before it serves a client or goes back to
 * the pool: server_check_query on a server idle for long, SET of the client's tracked parameters
 * where the server's differ, server_reset_query, connect_query after login, and ROLLBACK of a
 * transaction statement mode refused, and between the transactions of a client pinned for advisory
 * locks that called a lock function, whether it still holds any. Their answers never reach a client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/auth_query.h"
#include "core/client.h"
#include "core/msgread.h"
#include "core/proxy.h"
#include "core/server.h"
#include "core/session_state.h"
#include "proto/msgtype.h"
#include "util/intern.h"
#include "util/log.h"
#include "util/time.h"

#define SETUP_MSG_MAX (1u << 20)

static void append_quoted(sl_pktbuf *pb, const char *v)
{
    sl_pb_bytes(pb, "E'", 2);
    for (const char *p = v; *p; p++) {
        if (*p == '\'' || *p == '\\') sl_pb_u8(pb, (uint8_t)*p);
        sl_pb_u8(pb, (uint8_t)*p);
    }
    sl_pb_u8(pb, '\'');
}

/* For every tracked parameter where the client's value differs from the server's: set_config()
 * with the value as the server keeps it (a list such as search_path included), or RESET when the
 * client has the default of a parameter the server does not report (a value a SET of another
 * client left there). */
static bool build_param_sets(sl_server *s, sl_pktbuf *q)
{
    sl_client *c = s->client;
    bool any = false;
    for (int i = 0; c && i < SL_NPARAMS && sl_param_names[i]; i++) {
        const char *want = c->params.v[i];
        if (want == s->params.v[i]) continue; /* interned: equal values are equal pointers */
        if (!want) {
            if ((s->reported >> i) & 1u) continue;
            sl_pb_bytes(q, "RESET ", 6);
            sl_pb_bytes(q, sl_param_names[i], strlen(sl_param_names[i]));
            sl_pb_bytes(q, ";", 1);
            any = true;
            continue;
        }
        sl_pb_bytes(q, "SELECT pg_catalog.set_config(", 29); /* 29 = its length */
        append_quoted(q, sl_param_names[i]);
        sl_pb_bytes(q, ", ", 2);
        append_quoted(q, want);
        sl_pb_bytes(q, ", false);", 9);
        any = true;
    }
    return any;
}

/* The server forgot every setting (DISCARD ALL, RESET ALL): those it does not report are back to
 * their defaults (the ones it reports come in ParameterStatus messages). */
static void forget_unreported(sl_server *s)
{
    for (int i = 0; i < SL_NPARAMS; i++)
        if (!((s->reported >> i) & 1u)) {
            sl_intern_release(s->params.v[i]);
            s->params.v[i] = NULL;
        }
}

static bool send_setup_query(sl_server *s, const char *sql)
{
    if (!sql || !*sql) return false;
    sl_pb_query(&s->s.out, sql);
    sl_server_set_state(s, SL_SV_SETUP);
    s->setup_failed = false;
    s->setup_error[0] = 0;
    return true;
}

/* After the client's parameters: its deferred BEGIN (read_write_split), if it has one. */
static sl_setup_step after_params(const sl_server *s)
{
    return s->client && s->client->deferred_begin ? SL_SETUP_BEGIN : SL_SETUP_NONE;
}

/* Start one step; false when the step has nothing to do (s->setup then names the next one). */
static bool start_step(sl_server *s, const sl_config *cfg)
{
    switch (s->setup) {
    case SL_SETUP_CHECK:
        if (cfg->server_check_delay >= 0 && sl_now_fast() - s->last_used >= cfg->server_check_delay &&
            send_setup_query(s, cfg->server_check_query))
            return true;
        s->setup = SL_SETUP_PARAMS;
        return false;
    case SL_SETUP_PARAMS: {
        sl_pktbuf q;
        sl_pb_init(&q);
        bool started = false;
        if (build_param_sets(s, &q)) {
            sl_pb_u8(&q, 0);
            started = !q.failed && send_setup_query(s, (const char *)q.data);
        }
        sl_pb_free(&q);
        if (!started) s->setup = after_params(s);
        return started;
    }
    case SL_SETUP_BEGIN:
        if (s->client && send_setup_query(s, s->client->deferred_begin)) return true;
        s->setup = SL_SETUP_NONE;
        return false;
    case SL_SETUP_RESET:
        /* after a pinned client, DISCARD ALL whatever server_reset_query says: its temporary tables,
         * locks and listens must not reach the next client */
        if (send_setup_query(s, s->session_dirty ? "DISCARD ALL" : cfg->server_reset_query)) return true;
        s->setup = SL_SETUP_NONE;
        return false;
    case SL_SETUP_ROLLBACK: return send_setup_query(s, "ROLLBACK");
    case SL_SETUP_CONNECT_QUERY: {
        char user[8], db[8], *cq = NULL;
        sl_route_login_target(s->pc.backend, user, sizeof(user), db, sizeof(db), NULL, &cq);
        bool started = send_setup_query(s, cq);
        free(cq);
        if (!started) s->setup = SL_SETUP_NONE;
        return started;
    }
    case SL_SETUP_ADVISORY:
        /* only session-level locks are left between transactions */
        s->advisory_held = true;
        return send_setup_query(s, "SELECT pg_catalog.pg_backend_pid() FROM pg_catalog.pg_locks WHERE locktype = "
                                   "'advisory' AND pid = pg_catalog.pg_backend_pid() AND granted LIMIT 1");
    case SL_SETUP_AUTH_QUERY: /* sent by auth_query.c itself */
    case SL_SETUP_NONE: break;
    }
    s->setup = SL_SETUP_NONE;
    return false;
}

bool sl_server_begin_setup(sl_server *s)
{
    bool started = false;
    while (!started && s->setup != SL_SETUP_NONE) started = start_step(s, s->s.w->cfg);
    if (started) {
        sl_io_status st = sl_stream_flush(&s->s, NULL);
        if (st == SL_IO_ERROR) {
            sl_server_setup_lost(s, SL_CLOSE_SERVER_WRITE_ERROR);
            return true;
        }
        sl_stream_set_poll(&s->s, st == SL_IO_AGAIN ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    }
    return started;
}

/* A pooler query failed. The client's own startup parameters being invalid is the client's
 * problem: it is told. Anything else means the server is unfit: closed, and its client waits for
 * another. */
static void setup_failed(sl_server *s, sl_setup_step step, sl_client *c)
{
    if (step == SL_SETUP_PARAMS && c) {
        char msg[300];
        snprintf(msg, sizeof(msg), "%s", s->setup_error);
        s->setup = SL_SETUP_NONE;
        s->client = NULL;
        c->server = NULL;
        sl_server_set_state(s, SL_SV_ACTIVE);
        sl_proxy_unlink_release(s);
        sl_client_error(c, true, "22023", "%s", msg);
        return;
    }
    sl_log_warn("S-0x%llx: pooler query failed: %s", (unsigned long long)s->id, s->setup_error);
    if (c) {
        c->server = NULL;
        s->client = NULL;
        sl_client_set_state(c, SL_CL_WAITING);
    }
    sl_server_close(s, SL_CLOSE_POOLER_QUERY_FAILED);
    if (c) sl_client_wake(c);
}

void sl_server_setup_lost(sl_server *s, sl_close_reason why)
{
    sl_client *c = s->client;
    if (c && c->server == s && c->state == SL_CL_ACTIVE) {
        c->server = NULL;
        s->client = NULL;
        sl_client_set_state(c, SL_CL_WAITING);
    } else {
        c = NULL;
    }
    sl_server_close(s, why);
    if (c) sl_client_wake(c);
}

/* A row of auth_query: (user name, secret); the secret may be NULL. */
static void found_row(sl_server *s, const uint8_t *body, uint32_t len)
{
    sl_rd r;
    sl_rd_init(&r, body, len);
    uint16_t ncols = sl_rd_u16(&r);
    s->found_rows++;
    for (uint16_t i = 0; i < ncols && !r.failed; i++) {
        uint32_t n = sl_rd_u32(&r);
        const uint8_t *v = n == 0xffffffffu ? NULL : sl_rd_bytes(&r, n);
        if (i != 1 || r.failed) continue;
        free(s->found_secret);
        s->found_secret = v && n < 4096 ? strndup((const char *)v, n) : NULL;
    }
}

/* A pooler query finished (ReadyForQuery). Decide what comes next. */
static void setup_finished(sl_server *s)
{
    sl_setup_step step = s->setup;
    sl_client *c = s->client;
    if (step == SL_SETUP_AUTH_QUERY) {
        sl_auth_query_finished(s);
        return;
    }
    if (step == SL_SETUP_ADVISORY) { /* an error keeps the pin (when in doubt, pin) */
        s->setup = SL_SETUP_NONE;
        sl_server_set_state(s, SL_SV_ACTIVE);
        if (c) sl_sess_advisory_checked(c, s->setup_failed || s->advisory_held);
        if (s->setup_failed)
            sl_log_warn("S-0x%llx: could not ask the server for its advisory locks: %s", (unsigned long long)s->id,
                        s->setup_error);
        sl_proxy_resume(s);
        return;
    }
    if (s->setup_failed) {
        setup_failed(s, step, c);
        return;
    }
    if (step == SL_SETUP_PARAMS && c) {
        /* adopt the server's spelling of the values (e.g. utf8 -> UTF8) */
        for (int i = 0; i < SL_NPARAMS; i++) {
            if (!((s->reported >> i) & 1u)) sl_params_copy_one(&s->params, &c->params, i); /* as sent */
            else if (c->params.v[i] && s->params.v[i]) sl_params_set_interned(&c->params, i, s->params.v[i]);
        }
    }
    if (step == SL_SETUP_RESET) s->session_dirty = false;
    if (step == SL_SETUP_BEGIN && c) { /* the client is in the server's transaction now */
        free(c->deferred_begin);
        c->deferred_begin = NULL;
    }
    s->setup = step == SL_SETUP_CHECK ? SL_SETUP_PARAMS : step == SL_SETUP_PARAMS ? after_params(s) : SL_SETUP_NONE;
    s->last_used = sl_now_us();
    if (s->setup != SL_SETUP_NONE && sl_server_begin_setup(s)) return;
    s->setup = SL_SETUP_NONE;
    sl_server_set_state(s, SL_SV_ACTIVE);
    if (c) sl_proxy_start(c, s);
    else sl_server_release(s);
}

void sl_server_setup_input(sl_server *s)
{
    sl_stream *st = &s->s;
    while (s->state == SL_SV_SETUP) {
        sl_wire_msg m;
        sl_take_status ts = sl_take_msg(st, SETUP_MSG_MAX, &m);
        if (ts == SL_TAKE_MORE) break;
        if (ts != SL_TAKE_OK) {
            sl_server_close(s, ts == SL_TAKE_NOMEM ? SL_CLOSE_OUT_OF_MEMORY : SL_CLOSE_SERVER_BAD_MESSAGE);
            return;
        }
        if (m.type == SL_BE_PARAM_STATUS) {
            sl_rd r;
            sl_rd_init(&r, m.body, m.len);
            const char *name = sl_rd_str(&r), *val = sl_rd_str(&r);
            int id = name && val ? sl_param_lookup(name) : -1;
            if (id >= 0) {
                sl_params_set(&s->params, id, val);
                s->reported |= 1u << id;
            }
        } else if (m.type == SL_BE_DATA_ROW && s->setup == SL_SETUP_AUTH_QUERY) {
            found_row(s, m.body, m.len);
        } else if (m.type == SL_BE_NOTIFICATION && s->setup == SL_SETUP_ADVISORY && s->client) {
            /* a pinned client's own LISTEN: still its notification (written when forwarding resumes) */
            sl_pb_begin(&s->client->s.out, SL_BE_NOTIFICATION);
            sl_pb_bytes(&s->client->s.out, m.body, m.len);
            sl_pb_end(&s->client->s.out);
        } else if (m.type == SL_BE_COMMAND_COMPLETE && s->setup == SL_SETUP_ADVISORY) {
            s->advisory_held = !(m.len >= 9 && !memcmp(m.body, "SELECT 0", 9)); /* no row: none held */
        } else if (m.type == SL_BE_COMMAND_COMPLETE) {
            /* DISCARD ALL / DEALLOCATE ALL (server_reset_query) drop every prepared statement */
            if (m.len && (!strncmp((const char *)m.body, "DISCARD ALL", 11) ||
                          !strncmp((const char *)m.body, "DEALLOCATE ALL", 14)))
                sl_stmt_cache_clear(&s->ps_cache);
            if (m.len && (!strcmp((const char *)m.body, "DISCARD ALL") || !strcmp((const char *)m.body, "RESET")))
                forget_unreported(s);
        } else if (m.type == SL_BE_ERROR) {
            const char *text = sl_error_field(m.body, m.len, 'M');
            snprintf(s->setup_error, sizeof(s->setup_error), "%s", text ? text : "error");
            s->setup_failed = true;
        } else if (m.type == SL_BE_READY) {
            s->xact = m.len >= 1 ? (char)m.body[0] : SL_XACT_IDLE;
            setup_finished(s);
        }
    }
    if (s->state != SL_SV_CLOSING) sl_stream_recycle_buf(st);
}
