/* proxy.c - the hot path: forwarding between a linked client and server. Bytes are read into the
 * sender's buffer and sent from there with one writev; only message headers are looked at (and the
 * few small messages that decide transaction boundaries). A server goes back to its pool at a
 * ReadyForQuery that ends the client's last request, once everything before it reached the client. */
#include "core/proxy.h"

#include <stdint.h>
#include <string.h>

#include "core/client.h"
#include "core/proxy_ps.h"
#include "core/server.h"
#include "core/session_state.h"
#include "proto/msgtype.h"
#include "util/log.h"
#include "util/time.h"

#define SMALL_MSG_MAX (64u * 1024)

void sl_proxy_update_poll(sl_client *c, sl_server *s)
{
    int cev = 0, sev = 0;
    bool setup = s->state == SL_SV_SETUP;
    if (!setup && sl_stream_fwd_pending(&c->s) == 0 && !sl_stream_out_pending(&s->s)) cev |= UV_READABLE;
    if (sl_stream_out_pending(&c->s) || sl_stream_fwd_pending(&s->s)) cev |= UV_WRITABLE;
    if (setup || (sl_stream_fwd_pending(&s->s) == 0 && !sl_stream_out_pending(&c->s))) sev |= UV_READABLE;
    if (sl_stream_out_pending(&s->s) || (!setup && sl_stream_fwd_pending(&c->s))) sev |= UV_WRITABLE;
    sl_stream_set_poll(&c->s, cev);
    sl_stream_set_poll(&s->s, sev);
}

/* An idle server may have been terminated while it sat in the pool (its FATAL message and EOF are
 * not seen yet). One non-blocking peek before reuse catches it; skipped for servers reused within
 * 100 ms so the hot path stays one syscall lighter. */
static bool server_looks_alive(sl_server *s, int64_t now)
{
    return now - s->pc.idle_since < 100000 || sl_stream_idle_and_open(&s->s);
}

/* The usual answer is no: the server was used a moment ago and has the client's settings
 * (parameter values are interned, so equal values are equal pointers). */
static bool link_needs_setup(const sl_client *c, const sl_server *s)
{
    const sl_config *cfg = c->s.w->cfg;
    if (c->replication) return false; /* opened with its parameters; a walsender takes no SET */
    if (cfg->server_check_delay >= 0 && cfg->server_check_query && cfg->server_check_query[0] &&
        sl_now_fast() - s->last_used >= cfg->server_check_delay)
        return true;
    for (int i = 0; i < SL_NPARAMS; i++)
        if (c->params.v[i] != s->params.v[i] && (c->params.v[i] || !((s->reported >> i) & 1u))) return true;
    return c->deferred_begin != NULL; /* read_write_split: its BEGIN is replayed first */
}

void sl_proxy_link(sl_client *c, sl_server *s)
{
    sl_close_reason unfit = SL_CLOSE_NONE;
    int64_t now = sl_now_fast();
    if (sl_route_conn_retire_due(&s->pc, now)) unfit = SL_CLOSE_SERVER_RETIRED;
    else if (!server_looks_alive(s, now)) unfit = SL_CLOSE_SERVER_DEAD_IN_POOL;
    if (unfit != SL_CLOSE_NONE) {
        sl_server_close(s, unfit);
        sl_client_wake(c);
        return;
    }
    c->server = s;
    s->client = c;
    sl_client_set_state(c, SL_CL_ACTIVE);
    s->outstanding = 0;
    s->in_batch = false;
    s->release_pending = false;
    s->link_time = now;
    s->setup = link_needs_setup(c, s) ? SL_SETUP_CHECK : SL_SETUP_NONE;
    if (s->setup != SL_SETUP_NONE && sl_server_begin_setup(s)) {
        if (s->state == SL_SV_SETUP) sl_stream_set_poll(&c->s, 0);
        return;
    }
    sl_server_set_state(s, SL_SV_ACTIVE);
    sl_proxy_start(c, s);
}

void sl_proxy_start(sl_client *c, sl_server *s)
{
    sl_server_set_state(s, SL_SV_ACTIVE);
    s->ps_active = sl_ps_enabled_for(c);
    s->sess_active = c->route && !c->route->replication && sl_route_pool_mode(c->route) != SL_POOL_SESSION;
    if (c->sess) sl_sess_link_end(c); /* nothing is expected from a server just linked */
    sl_proxy_update_poll(c, s);
    if (c->s.end > c->s.parse || c->s.msg_left) sl_proxy_client_input_buffered(c);
}

void sl_proxy_unlink_release(sl_server *s)
{
    sl_client *c = s->client;
    int64_t now = sl_now_fast();
    if (c) {
        if (s->sess_active) sl_sess_link_end(c);
        c->server = NULL;
        s->client = NULL;
        if (c->state == SL_CL_ACTIVE) sl_client_set_state(c, SL_CL_IDLE);
        c->last_activity = now;
    }
    s->last_used = now;
    s->release_pending = false;
    sl_ps_reset_link(s);
    s->sess_active = false;
    if (sl_server_route(s)->replication) { /* never reused: it goes with its client */
        sl_server_close(s, SL_CLOSE_REPLICATION_CLIENT_GONE);
        return;
    }
    /* a client pinned here left state behind (temporary tables, locks, ...): reset before reuse */
    if (sl_route_pool_mode(sl_server_route(s)) == SL_POOL_SESSION || s->s.w->cfg->server_reset_query_always ||
        s->session_dirty) {
        s->setup = SL_SETUP_RESET;
        if (sl_server_begin_setup(s)) return;
    }
    sl_server_release(s);
}

static void after_release(sl_client *c)
{
    if (c->state != SL_CL_IDLE) return;
    sl_stream_set_poll(&c->s, UV_READABLE);
    if (c->s.end > c->s.parse) sl_client_idle_input(c);
    else sl_stream_trim(&c->s);
}

void sl_proxy_server_lost_client(sl_client *c)
{
    c->server = NULL;
    sl_client_set_state(c, SL_CL_IDLE);
    sl_client_error(c, true, "08006", "server connection crashed or was terminated");
}

static bool can_release(const sl_server *s, const sl_client *c)
{
    return sl_route_pool_mode(sl_server_route(s)) != SL_POOL_SESSION && s->outstanding == 0 && !s->in_batch && s->xact == SL_XACT_IDLE &&
           c->s.msg_left == 0 && sl_ps_idle(s) && !sl_sess_pinned(c);
}

/* Parse as much of the client's buffer as possible, marking messages to forward. */
static bool scan_client(sl_client *c, sl_server *s)
{
    sl_stream *in = &c->s;
    int64_t max_packet = c->s.w->cfg->max_packet_size;
    char type;
    uint32_t len;
    for (;;) {
        if (!sl_stream_next_header(in, &type, &len)) return true;
        if (len < 4 || (int64_t)len > max_packet) {
            sl_client_error(c, true, "08P01", "invalid message length %u (type '%c')", len, type);
            return false;
        }
        if (type == SL_FE_QUERY && c->s.w->cfg->disable_pqexec) { /* simple protocol refused (PgBouncer's words) */
            sl_client_error(c, true, "08P01", "PQexec disallowed");
            return false;
        }
        sl_ps_result psr = SL_PS_FORWARD;
        if (s->ps_skip_till_sync && type != SL_FE_SYNC && type != SL_FE_TERMINATE) {
            /* the server discards it (it failed a request before this one): pass it on untouched
             * and expect nothing back */
            s->pend.bytes_in += (uint64_t)len + 1;
            in->msg_left = len + 1;
            continue;
        }
        if (type == SL_FE_SYNC) s->ps_skip_till_sync = false;
        if (s->sess_active && type != SL_FE_TERMINATE) {
            sl_sess_result sr = sl_sess_client_msg(c, s, type, len);
            if (sr == SL_SESS_NEED_MORE) return true;
            if (sr == SL_SESS_REPLACED) continue; /* a refusal took its place: read it */
            if (sr == SL_SESS_FAILED) {
                sl_client_error(c, true, "53200", "out of memory");
                return false;
            }
        }
        if (s->ps_active && type != SL_FE_TERMINATE) {
            psr = sl_ps_client_msg(c, s, type, len);
            if (psr == SL_PS_NEED_MORE) return true;
            if (psr == SL_PS_MALFORMED) {
                sl_client_error(c, true, "08P01", "malformed or oversized message (type '%c')", type);
                return false;
            }
        }
        s->pend.bytes_in += (uint64_t)len + 1;
        switch (type) {
        case SL_FE_QUERY:
        case SL_FE_FUNCTION_CALL:
        case SL_FE_SYNC:
            if (type == SL_FE_SYNC) s->in_batch = false;
            s->outstanding++;
            if (!c->query_start) c->query_start = sl_now_fast();
            if (!c->xact_start) c->xact_start = c->query_start;
            break;
        case SL_FE_PARSE: case SL_FE_BIND: case SL_FE_DESCRIBE: case SL_FE_EXECUTE: case SL_FE_CLOSE: case SL_FE_FLUSH:
            s->in_batch = true;
            break;
        case SL_FE_TERMINATE:
            /* the client says goodbye: do not pass it on, the server stays ours */
            if (sl_stream_fwd_pending(in)) {
                in->msg_left = 0;
                return true; /* flush first; X is seen again afterwards */
            }
            sl_client_close(c, SL_CLOSE_CLIENT_TERMINATE);
            return false;
        default:
            break;
        }
        if (psr != SL_PS_CONSUMED) in->msg_left = len + 1;
    }
}

static void client_forward(sl_client *c)
{
    sl_server *s = c->server;
    if (!scan_client(c, s)) return;
    sl_stream *in = &c->s;
    if (s->ps_active) {
        sl_ps_synth_due(s, c);
        if (sl_stream_out_pending(&c->s) && sl_stream_flush(&c->s, &s->s) == SL_IO_ERROR) {
            sl_client_close(c, SL_CLOSE_CLIENT_WRITE_ERROR);
            return;
        }
    }
    sl_io_status st = sl_stream_flush(&s->s, in);
    if (st == SL_IO_ERROR) {
        sl_server_close(s, SL_CLOSE_SERVER_WRITE_ERROR);
        return;
    }
    if (st == SL_IO_OK) {
        if (in->end - in->parse >= 5 && in->buf[in->parse] == SL_FE_TERMINATE && !in->msg_left) {
            sl_client_close(c, SL_CLOSE_CLIENT_TERMINATE);
            return;
        }
        if (in->pos == in->end) sl_stream_maybe_release_buf(in);
    }
    sl_proxy_update_poll(c, s);
}

void sl_proxy_client_input_buffered(sl_client *c) { client_forward(c); }

void sl_proxy_client_input(sl_client *c)
{
    sl_server *s = c->server;
    if (!s || s->state != SL_SV_ACTIVE || sl_stream_fwd_pending(&c->s) || sl_stream_out_pending(&s->s)) {
        sl_stream_set_poll(&c->s, 0);
        return;
    }
    sl_io_status st = sl_stream_read(&c->s);
    if (st == SL_IO_EOF || st == SL_IO_ERROR) {
        sl_client_close(c, st == SL_IO_EOF ? SL_CLOSE_CLIENT_EOF : SL_CLOSE_CLIENT_READ_ERROR);
        return;
    }
    c->last_activity = sl_now_fast();
    client_forward(c);
}

/* A ReadyForQuery or ParameterStatus from the server, whole in the buffer. */
static bool server_small_msg(sl_server *s, sl_client *c, char type, const uint8_t *body, uint32_t blen)
{
    if (type == SL_BE_READY) {
        char status = blen ? (char)body[0] : SL_XACT_IDLE;
        int64_t now = sl_now_fast();
        if (s->outstanding > 0) s->outstanding--;
        if (c->query_start) {
            s->pend.query_count++;
            s->pend.query_time_us += (uint64_t)(now - c->query_start);
            sl_hist_add(&s->pend.h_query, now - c->query_start);
            c->query_start = s->outstanding > 0 ? now : 0;
        }
        if (status == SL_XACT_IDLE && c->xact_start) {
            s->pend.xact_count++;
            s->pend.xact_time_us += (uint64_t)(now - c->xact_start);
            sl_hist_add(&s->pend.h_xact, now - c->xact_start);
            c->xact_start = 0;
        }
        s->xact = status;
        if (sl_route_pool_mode(sl_server_route(s)) == SL_POOL_STATEMENT && status != SL_XACT_IDLE) return false;
        if (can_release(s, c)) s->release_pending = true;
    } else if (type == SL_BE_ERROR) {
        SL_STATS_RARE_INC(&s->pend, errors[sl_error_class_index(sl_error_field(body, blen, SL_ERRF_CODE))]);
    } else if (type == SL_BE_PARAM_STATUS) {
        sl_rd r;
        sl_rd_init(&r, body, blen);
        const char *name = sl_rd_str(&r), *val = sl_rd_str(&r);
        int id = name && val ? sl_param_lookup(name) : -1;
        if (id >= 0) {
            sl_params_set(&s->params, id, val);
            sl_params_set(&c->params, id, val);
        }
    }
    return true;
}

/* Statement mode: the server opened a transaction. Refuse it and roll it back. */
static void refuse_transaction(sl_server *s, sl_client *c)
{
    sl_stream *in = &s->s;
    in->pos = in->parse = in->end; /* nothing more of this reaches the client */
    if (c->sess) sl_sess_link_end(c);
    c->server = NULL;
    s->client = NULL;
    sl_client_set_state(c, SL_CL_IDLE);
    s->setup = SL_SETUP_ROLLBACK;
    if (!sl_server_begin_setup(s)) sl_server_close(s, SL_CLOSE_ROLLBACK_FAILED);
    sl_client_error(c, true, "25001", "transaction blocks not allowed in statement pooling mode");
}

static bool scan_server(sl_server *s, sl_client *c)
{
    sl_stream *in = &s->s;
    char type;
    uint32_t len;
    for (;;) {
        if (!sl_stream_next_header(in, &type, &len)) {
            /* answers pgsluice gives itself (after a Flush, say) may be due now that the answers
             * before them are marked for the client */
            if (s->ps_active && !in->msg_left) sl_ps_synth_due(s, c);
            return true;
        }
        /* the length is an Int32: above INT32_MAX, len + 1 below would wrap to 0 */
        if (len < 4 || len > INT32_MAX) {
            sl_server_close(s, SL_CLOSE_SERVER_BAD_MESSAGE);
            return false;
        }
        /* ReadyForQuery, ParameterStatus and errors are looked at whole: all of one is waited for
         * before anything is decided about it (the queue of answers below too: deciding twice on
         * a message that arrives in pieces would take two entries off it) */
        bool sess_msg = s->sess_active && c->sess &&
                        (type == SL_BE_COMMAND_COMPLETE || type == SL_BE_EMPTY_QUERY || type == SL_BE_PORTAL_SUSPENDED ||
                         type == SL_BE_ERROR || type == SL_BE_READY);
        bool small = type == SL_BE_READY || type == SL_BE_PARAM_STATUS || (type == SL_BE_ERROR && len <= SMALL_MSG_MAX) ||
                     (sess_msg && len <= SMALL_MSG_MAX);
        if (small) {
            if (len > SMALL_MSG_MAX) {
                sl_server_close(s, SL_CLOSE_SERVER_OVERSIZED);
                return false;
            }
            if (in->end - in->parse < len + 1) {
                if (!sl_stream_make_room(in, len + 1 - (in->end - in->parse), SMALL_MSG_MAX * 2)) {
                    sl_server_close(s, SL_CLOSE_OUT_OF_MEMORY);
                    return false;
                }
                return true;
            }
        }
        /* DataRow and CopyData never end a request and are always forwarded: skip the queue; but
         * answers pgsluice gives itself that are due (after the answer just passed) go first */
        bool row = type == SL_BE_DATA_ROW || type == SL_BE_COPY_DATA;
        if (s->ps_active && row) sl_ps_synth_due(s, c);
        if (s->ps_active && !row) {
            sl_ps_result r = sl_ps_server_msg(s, c, type, len);
            if (r == SL_PS_NEED_MORE) return true;
            if (r == SL_PS_CONSUMED) continue;
        }
        s->pend.bytes_out += (uint64_t)len + 1;
        if (sess_msg && small) sl_sess_server_msg(c, s, type, in->buf + in->parse + 5, len - 4);
        if (small) {
            if (!server_small_msg(s, c, type, in->buf + in->parse + 5, len - 4)) {
                refuse_transaction(s, c);
                return false;
            }
            if (type == SL_BE_READY && s->ps_active) {
                in->parse += len + 1; /* whole in the buffer: mark it, then what follows it */
                sl_ps_synth_due(s, c);
                continue;
            }
        }
        in->msg_left = len + 1;
    }
}

static void server_forward(sl_server *s)
{
    sl_client *c = s->client;
    sl_stream *in = &s->s;
    if (!scan_server(s, c)) return;
    sl_io_status st = sl_stream_flush(&c->s, in);
    if (st == SL_IO_ERROR) {
        sl_client_close(c, SL_CLOSE_CLIENT_WRITE_ERROR);
        return;
    }
    if (st == SL_IO_OK && in->pos == in->end) {
        sl_stream_recycle_buf(in);
        if (s->release_pending && can_release(s, c)) {
            sl_proxy_unlink_release(s);
            after_release(c);
            return;
        }
    }
    sl_proxy_update_poll(c, s);
}

void sl_proxy_server_input(sl_server *s)
{
    sl_client *c = s->client;
    if (sl_stream_fwd_pending(&s->s) || sl_stream_out_pending(&c->s)) {
        sl_proxy_update_poll(c, s);
        return;
    }
    sl_io_status st = sl_stream_read(&s->s);
    if (st == SL_IO_EOF || st == SL_IO_ERROR) {
        /* pass on whatever the server said last (e.g. FATAL terminating connection) */
        sl_stream_flush(&c->s, &s->s);
        sl_server_close(s, st == SL_IO_EOF ? SL_CLOSE_SERVER_EOF : SL_CLOSE_SERVER_READ_ERROR);
        return;
    }
    server_forward(s);
}

void sl_proxy_client_writable(sl_client *c)
{
    sl_server *s = c->server;
    sl_io_status st = sl_stream_flush(&c->s, s ? &s->s : NULL);
    if (st == SL_IO_ERROR) {
        sl_client_close(c, SL_CLOSE_CLIENT_WRITE_ERROR);
        return;
    }
    if (!s) return;
    if (st == SL_IO_OK && sl_stream_fwd_pending(&s->s) == 0) {
        server_forward(s); /* continue with what is buffered (and release if due) */
        return;
    }
    sl_proxy_update_poll(c, s);
}

void sl_proxy_server_writable(sl_server *s)
{
    sl_client *c = s->client;
    sl_io_status st = sl_stream_flush(&s->s, &c->s);
    if (st == SL_IO_ERROR) {
        sl_server_close(s, SL_CLOSE_SERVER_WRITE_ERROR);
        return;
    }
    if (st == SL_IO_OK) {
        client_forward(c);
        return;
    }
    sl_proxy_update_poll(c, s);
}
