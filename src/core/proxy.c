/* proxy.c - the hot path: forwarding between a linked client and server. Bytes are read into the
 * sender's buffer and sent from there with one writev; only message headers are looked at (and the
 * few small messages that decide transaction boundaries). A server goes back to its pool at a
 * ReadyForQuery that ends the client's last request, once everything before it reached the client. */
#include "core/proxy.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/client.h"
#include "core/listen_fanout.h"
#include "core/proxy_ps.h"
#include "core/scan.h"
#include "core/server.h"
#include "core/session_state.h"
#include "proto/msgtype.h"
#include "util/log.h"
#include "util/time.h"

/* Times one request may go to another server because the one it got died without reading it. */
#define RESEND_MAX 3
/* PostgreSQL reads its socket into an 8 kB buffer (PQ_RECV_BUFFER_SIZE): a request sent in one
 * write of at most this much is read whole or not at all. */
#define PG_RECV_CHUNK 8192u

/* Inline on the forwarding paths of this file; sl_proxy_update_poll for the others. */
static inline void update_poll(sl_client *c, sl_server *s)
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

void sl_proxy_update_poll(sl_client *c, sl_server *s) { update_poll(c, s); }

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
    if (memcmp(c->params.v, s->params.v, sizeof(c->params.v)) != 0) /* mostly the same pointers: one memcmp */
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
    /* a BEGIN pgsluice answered and replays first (read_write_split) puts the client in the
     * server's transaction: from then on nothing may go elsewhere */
    s->resend_ok = !c->deferred_begin && c->resends < RESEND_MAX;
    s->resend_sent = 0;
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
    if (s->resend_ok) { /* the request starts here, whole messages only */
        if (c->s.buf && c->s.pos == c->s.parse && !c->s.msg_left) sl_stream_keep(&c->s);
        else sl_proxy_commit_link(s, c);
    }
    update_poll(c, s);
    if (c->s.end > c->s.parse || c->s.msg_left) sl_proxy_client_input_buffered(c);
}

/* ---- a server that died before it read its client's request ----
 * A PostgreSQL backend terminated while idle in the pool (pg_terminate_backend, idle_session_timeout,
 * a restart) may not have sent its FATAL, or not have closed, when a client is given it. Its client's
 * request then goes to a dead server. Linux tells the two cases apart: a socket closed with unread
 * input is reset (ECONNRESET; EPIPE on a write to it, or pending after the end of file when it had
 * closed before the request arrived), one whose input was all read is closed normally. So a reset
 * before any answer reached the client, the request having gone out in a single write of at most
 * PostgreSQL's read size, means the backend never read it: it goes to another server as if this
 * one had never been taken. A backend that read it and died running it closes normally: its client
 * gets the error, never a second run of its request. (A backend that was signalled but had not run
 * yet when the request arrived reads it, then dies before running it: that cannot be told from a
 * death while running it, and is not retried.) Costs the hot path no system call: the checks run
 * only when a write fails or the server hangs up.
 * Named prepared statements (proxy_ps.c) take part: the request may have been rewritten for the
 * dead server (Parse injected for statements it lacked, names changed in the client's map, its
 * cache and queue of expected answers filled). What went to it counts as written whatever its
 * origin; on a resend the changes to the client's names are undone (sl_ps_undo_request), the
 * server's records go with it, and the client's original bytes are rewritten afresh for the next
 * server. An answer pgsluice would give in the server's place (ParseComplete for a statement the
 * server has) is an answer reaching the client: it commits the link. */
static bool died_unread(int err) { return err == ECONNRESET || err == EPIPE; }

static bool resend_elsewhere(sl_server *s, sl_client *c)
{
    if (c->resends >= RESEND_MAX || !sl_stream_rewind_to_keep(&c->s)) return false;
    if (s->ps_active) sl_ps_undo_request(s, c);
    c->resends++;
    c->server = NULL;
    s->client = NULL;
    sl_server_close(s, SL_CLOSE_SERVER_DIED_UNREAD);
    sl_client_set_state(c, SL_CL_WAITING);
    c->wait_start = sl_now_fast();
    sl_stream_set_poll(&c->s, 0);
    sl_client_wake(c);
    return true;
}

static inline size_t out_left(const sl_stream *s) { return s->out.len - s->out_sent; }

/* After a write to a server whose link may still be undone, in which `wrote` bytes went out (the
 * client's, and pgsluice's own from the server's out queue). false: the server is gone and the
 * request went elsewhere. */
static bool track_resend(sl_server *s, sl_client *c, size_t wrote, sl_io_status st)
{
    if (st == SL_IO_ERROR) {
        /* nothing of it delivered: the server had closed before */
        if (!s->resend_sent && !wrote && died_unread(s->s.err) && resend_elsewhere(s, c)) return false;
        sl_proxy_commit_link(s, c);
        return true;
    }
    if (!wrote) return true;
    /* a second write, or more than one read's worth: the server may have read a request whole */
    if (s->resend_sent || wrote > PG_RECV_CHUNK) sl_proxy_commit_link(s, c);
    else s->resend_sent = (uint32_t)wrote;
    return true;
}

/* The first bytes of the server's answer: a FATAL error is held back until the connection ends (a
 * reset says the request was never read: it goes elsewhere and the error with the dead server).
 * Anything else commits the link. true: hold (wait for more). */
static bool hold_first_answer(sl_server *s, sl_client *c)
{
    const sl_stream *in = &s->s;
    uint32_t avail = in->end - in->parse;
    if (avail < 5) return true;
    if (in->buf[in->parse] == SL_BE_ERROR) {
        uint32_t len = sl_get_u32(in->buf + in->parse + 1);
        if (len >= 4 && len <= SL_SMALL_MSG_MAX) {
            if (avail < len + 1) return true;
            if (sl_scan_error_fatal(in->buf + in->parse + 5, len - 4)) return true;
        }
    }
    sl_proxy_commit_link(s, c);
    return false;
}

/* The client leaves its server, its last request answered. */
static void unlink_client(sl_server *s, sl_client *c, int64_t now)
{
    if (s->sess_active) sl_sess_link_end(c);
    c->server = NULL;
    s->client = NULL;
    if (c->state == SL_CL_ACTIVE) sl_client_set_state(c, SL_CL_IDLE);
    c->last_activity = now;
    sl_stream_unkeep(&c->s);
}

void sl_proxy_unlink_release(sl_server *s)
{
    sl_client *c = s->client;
    int64_t now = sl_now_fast();
    if (c) unlink_client(s, c, now);
    s->last_used = now;
    s->release_pending = false;
    s->resend_ok = false;
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

static void after_release(sl_client *c);

void sl_proxy_resume(sl_server *s)
{
    sl_client *c = s->client;
    if (!c || c->server != s || c->state != SL_CL_ACTIVE) { /* its client went meanwhile */
        if (c && c->server != s) s->client = NULL;
        sl_proxy_unlink_release(s);
        return;
    }
    if (sl_scan_can_release(s, c)) { /* nothing pins it any more: the server goes back (reset) */
        sl_proxy_unlink_release(s);
        after_release(c);
        return;
    }
    sl_proxy_start(c, s);
}

static void after_release(sl_client *c)
{
    if (c->state != SL_CL_IDLE) return;
    if (__builtin_expect(c->fanout != NULL, 0)) sl_fanout_client_flush(c); /* notifications held meanwhile */
    if (c->state != SL_CL_IDLE) return;
    sl_stream_set_poll(&c->s, UV_READABLE);
    if (c->s.end > c->s.parse) sl_client_idle_input(c);
    else sl_stream_trim(&c->s);
}

/* The server died between the client's transactions (SL_SCAN_DIED_BETWEEN: a FATAL right behind
 * the answer that ended its last request), and every answer before it reached the client: the
 * client goes on as if the server had gone back to the pool, without the error; the server closes. */
static void close_behind_client(sl_server *s, sl_client *c)
{
    unlink_client(s, c, sl_now_fast());
    sl_server_close(s, SL_CLOSE_SERVER_DIED_BETWEEN);
    after_release(c);
}

bool sl_proxy_keep_answers(sl_client *c, sl_server *s)
{
    sl_stream *in = &s->s;
    if (in->msg_left) {
        uint32_t begun = in->msg_len - in->msg_left; /* its bytes before parse */
        if (begun > in->parse - in->pos) return false; /* some already sent */
        in->parse -= begun;
        in->msg_left = 0;
    }
    if (in->parse > in->pos) {
        sl_pb_bytes(&c->s.out, in->buf + in->pos, in->parse - in->pos);
        in->pos = in->parse;
    }
    return true;
}

void sl_proxy_close_cut(sl_client *c, sl_close_reason why)
{
    sl_pb_reset(&c->s.out); /* its last words would land inside the cut message */
    c->s.out_sent = 0;
    char detail[160];
    snprintf(detail, sizeof(detail), "%s, in the middle of a message to the client (closed without an error message)",
             sl_close_reason_text(why));
    sl_client_close_detail(c, why, detail);
}

void sl_proxy_server_lost_client(sl_client *c, bool whole)
{
    sl_stream_unkeep(&c->s);
    c->resends = 0;
    c->server = NULL;
    sl_client_set_state(c, SL_CL_IDLE);
    if (!whole) {
        sl_proxy_close_cut(c, SL_CLOSE_SERVER_GONE_MID_ANSWER);
        return;
    }
    sl_client_error(c, true, "08006", "server connection crashed or was terminated");
}

/* Mark the client's messages for forwarding; a protocol violation or goodbye closes the client. */
static bool scan_client(sl_client *c, sl_server *s)
{
    char type = 0;
    uint32_t len = 0;
    switch (sl_scan_client(c, s, &type, &len, NULL)) {
    case SL_SCAN_MORE: return true;
    case SL_SCAN_BAD_LENGTH: sl_client_error(c, true, "08P01", "invalid message length %u (type '%c')", len, type); break;
    case SL_SCAN_PQEXEC: sl_client_error(c, true, "08P01", "PQexec disallowed"); break; /* PgBouncer's words */
    case SL_SCAN_MALFORMED: sl_client_error(c, true, "08P01", "malformed or oversized message (type '%c')", type); break;
    case SL_SCAN_TERMINATE: sl_client_close(c, SL_CLOSE_CLIENT_TERMINATE); break;
    case SL_SCAN_CLIENT_NOMEM: sl_client_error(c, true, "53200", "out of memory"); break;
    default: break;
    }
    return false;
}

static void client_forward(sl_client *c)
{
    sl_server *s = c->server;
    if (!scan_client(c, s)) return;
    sl_stream *in = &c->s;
    if (s->ps_active) {
        /* an answer given in the server's place reaches the client: no resend after that */
        if (__builtin_expect(s->resend_ok, 0) && sl_ps_synth_pending(s)) sl_proxy_commit_link(s, c);
        sl_ps_synth_due(s, c);
        if (sl_stream_out_pending(&c->s) && sl_stream_flush(&c->s, &s->s) == SL_IO_ERROR) {
            sl_client_close(c, SL_CLOSE_CLIENT_WRITE_ERROR);
            return;
        }
    }
    uint32_t from = in->pos;
    size_t out_from = out_left(&s->s);
    sl_io_status st = sl_stream_flush(&s->s, in);
    if (__builtin_expect(s->resend_ok, 0) &&
        !track_resend(s, c, (in->pos - from) + (out_from - out_left(&s->s)), st))
        return;
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
    update_poll(c, s);
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

/* Mark the server's answers for forwarding; a broken message closes the server. *died: the server
 * died after the client's last answer (SL_SCAN_DIED_BETWEEN), the answers marked go first. */
static bool scan_server(sl_server *s, sl_client *c, bool *died)
{
    switch (sl_scan_server(s, c)) {
    case SL_SCAN_MORE: return true;
    case SL_SCAN_DIED_BETWEEN: *died = true; return true;
    case SL_SCAN_REFUSE_TXN: refuse_transaction(s, c); break;
    case SL_SCAN_OVERSIZED: sl_server_close(s, SL_CLOSE_SERVER_OVERSIZED); break;
    case SL_SCAN_NOMEM: sl_server_close(s, SL_CLOSE_OUT_OF_MEMORY); break;
    default: sl_server_close(s, SL_CLOSE_SERVER_BAD_MESSAGE); break;
    }
    return false;
}

static void server_forward(sl_server *s)
{
    sl_client *c = s->client;
    sl_stream *in = &s->s;
    bool died = false;
    if (!scan_server(s, c, &died)) return;
    sl_io_status st = sl_stream_flush(&c->s, in);
    if (st == SL_IO_ERROR) {
        sl_client_close(c, SL_CLOSE_CLIENT_WRITE_ERROR);
        return;
    }
    if (__builtin_expect(died, 0)) {
        if (st == SL_IO_OK) close_behind_client(s, c);
        else update_poll(c, s); /* the client drains, then this again (sl_proxy_client_writable) */
        return;
    }
    if (st == SL_IO_OK && in->pos == in->end) {
        sl_stream_recycle_buf(in);
        if (s->release_pending && sl_scan_can_release(s, c)) {
            sl_proxy_unlink_release(s);
            after_release(c);
            return;
        }
        /* pinned for advisory locks, and it called a lock function: between transactions, the
         * server is asked whether any is still held (server_setup.c; sl_proxy_resume after it) */
        if (__builtin_expect(c->sess != NULL, 1) && __builtin_expect(sl_sess_advisory_check_due(c), 0) &&
            sl_scan_between_transactions(s, c) && !sl_stream_out_pending(&c->s)) {
            s->setup = SL_SETUP_ADVISORY;
            if (sl_server_begin_setup(s)) {
                if (s->state == SL_SV_SETUP) sl_stream_set_poll(&c->s, 0);
                return;
            }
            s->setup = SL_SETUP_NONE;
            sl_sess_advisory_checked(c, true);
        }
        /* a client kept on its server (pinned) gets its notifications between transactions too */
        if (__builtin_expect(c->fanout != NULL, 0)) {
            sl_fanout_client_flush(c);
            if (c->server != s) return;
        }
    }
    update_poll(c, s);
}

void sl_proxy_server_input(sl_server *s)
{
    sl_client *c = s->client;
    if (sl_stream_fwd_pending(&s->s) || sl_stream_out_pending(&c->s)) {
        update_poll(c, s);
        return;
    }
    sl_io_status st = sl_stream_read(&s->s);
    if (st == SL_IO_EOF || st == SL_IO_ERROR) {
        if (__builtin_expect(s->resend_ok, 0)) {
            /* an end of file after a reset: the server had closed before the request arrived */
            int err = st == SL_IO_ERROR ? s->s.err : sl_stream_connect_result(&s->s);
            if (died_unread(err) && resend_elsewhere(s, c)) return;
            sl_proxy_commit_link(s, c);
            bool died = false; /* (no answer ended a request yet: not after one) */
            if (!scan_server(s, c, &died)) return; /* the FATAL held back goes to the client after all */
        }
        /* pass on whatever the server said last (e.g. FATAL terminating connection) */
        sl_stream_flush(&c->s, &s->s);
        sl_server_close(s, st == SL_IO_EOF ? SL_CLOSE_SERVER_EOF : SL_CLOSE_SERVER_READ_ERROR);
        return;
    }
    if (__builtin_expect(s->resend_ok, 0) && hold_first_answer(s, c)) {
        update_poll(c, s);
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
    update_poll(c, s);
}

void sl_proxy_server_writable(sl_server *s)
{
    sl_client *c = s->client;
    uint32_t from = c->s.pos;
    size_t out_from = out_left(&s->s);
    sl_io_status st = sl_stream_flush(&s->s, &c->s);
    if (__builtin_expect(s->resend_ok, 0) &&
        !track_resend(s, c, (c->s.pos - from) + (out_from - out_left(&s->s)), st))
        return;
    if (st == SL_IO_ERROR) {
        sl_server_close(s, SL_CLOSE_SERVER_WRITE_ERROR);
        return;
    }
    if (st == SL_IO_OK) {
        client_forward(c);
        return;
    }
    update_poll(c, s);
}
