/* scan.h - the forwarding loop's reading of message headers: which of a linked client's messages go
 * to its server and what they mean for the link (requests owed an answer, batches, statement
 * rewriting), which of the server's answers go to the client and when the link may end. proxy.c
 * forwards with these and acts on what they report (errors, closing); they are inline so that its
 * hot path stays one function, and tests/fuzz/fuzz_extended_protocol.c runs the very same loops on
 * fake connections (with a hook that watches each client message; proxy.c passes NULL, which the
 * compiler removes). */
#ifndef SL_SCAN_H
#define SL_SCAN_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/conn.h"
#include "core/proxy_ps.h"
#include "core/session_state.h"
#include "proto/msgtype.h"
#include "util/time.h"

/* ReadyForQuery, ParameterStatus and errors up to this size are looked at whole. */
#define SL_SMALL_MSG_MAX (64u * 1024)

typedef enum {
    SL_SCAN_MORE = 0,    /* all there is decided: more bytes are needed */
    /* client */
    SL_SCAN_BAD_LENGTH,  /* a length below 4 or above max_packet_size */
    SL_SCAN_PQEXEC,      /* a simple Query under disable_pqexec */
    SL_SCAN_MALFORMED,   /* the statement rewriting refused a message (or ran out of memory) */
    SL_SCAN_TERMINATE,   /* Terminate, with nothing before it left to send */
    SL_SCAN_CLIENT_NOMEM, /* the session-state tracking ran out of memory */
    /* server */
    SL_SCAN_BAD_MESSAGE, /* a length below 4 or above INT32_MAX */
    SL_SCAN_OVERSIZED,   /* a ReadyForQuery or ParameterStatus above SL_SMALL_MSG_MAX */
    SL_SCAN_NOMEM,       /* no room to hold a small message whole */
    SL_SCAN_REFUSE_TXN,  /* statement mode: the server opened a transaction */
    SL_SCAN_DIED_BETWEEN, /* a FATAL error after the client's last answer, nothing asked since: not
                             passed on (sl_scan_server_loop); what is marked before it goes first */
} sl_scan_result;

/* Watches each client message at its header: decided false before the statement rewriting looks at
 * it (it may be seen again if the rewriting needs more bytes), true once it is decided. */
typedef void (*sl_scan_client_hook)(sl_client *c, char type, uint32_t len, bool decided);

/* Transaction or statement pooling, no answer owed, no batch or transaction open. */
static inline bool sl_scan_between_transactions(const sl_server *s, const sl_client *c)
{
    return sl_route_pool_mode(sl_server_route(s)) != SL_POOL_SESSION && s->outstanding == 0 && !s->in_batch &&
           s->xact == SL_XACT_IDLE && c->s.msg_left == 0 && sl_ps_idle(s);
}

/* An ErrorResponse (body) of severity FATAL or PANIC: its server is gone. */
static inline bool sl_scan_error_fatal(const uint8_t *body, uint32_t blen)
{
    const char *sev = sl_error_field(body, blen, SL_ERRF_SEVERITY_NONLOCALIZED);
    if (!sev) sev = sl_error_field(body, blen, SL_ERRF_SEVERITY);
    return sev && (!strcmp(sev, "FATAL") || !strcmp(sev, "PANIC"));
}

/* The server may go back to the pool: between transactions, and the client not pinned to it. */
static inline bool sl_scan_can_release(const sl_server *s, const sl_client *c)
{
    return sl_scan_between_transactions(s, c) && !sl_sess_pinned(c);
}

/* A Query, FunctionCall or Sync goes to the server: a ReadyForQuery is owed, and the query (and
 * the transaction, if none is open) starts timing. */
static inline void sl_scan_ready_owed(sl_client *c, sl_server *s)
{
    s->outstanding++;
    if (!c->query_start) c->query_start = sl_now_fast();
    if (!c->xact_start) c->xact_start = c->query_start;
}

/* The usual messages of the extended protocol on a link that rewrites statement names: a Parse of
 * the unnamed statement, a Bind of the unnamed portal to it, a Describe of a portal or of the
 * unnamed statement, an Execute and a Sync, each plain for the session-state tracking where that
 * is on. Decided in one pass with the same tests and steps as sl_scan_client's general path below
 * (sl_ps_classify, the sl_sess_* tests), every test of a message before any step. m: the message,
 * avail bytes of it in the buffer (the stream's parse may lag behind m: only the hook reads it,
 * and it is brought up to m first). false: nothing was done, the general path decides. The caller
 * steps over the message. */
static inline __attribute__((always_inline)) bool sl_scan_client_usual_step(sl_client *c, sl_server *s, char type,
                                                                            uint32_t len, const uint8_t *m,
                                                                            uint32_t avail, sl_scan_client_hook hook)
{
    if (!s->ps_active || s->ps_skip_till_sync) return false;
    sl_session *ss = NULL;
    if (s->sess_active) {
        ss = c->sess;
        if (!ss || ss->desync) return false;
    }
    switch (type) {
    case SL_FE_PARSE:
        if (sl_ps_classify(type, m, avail, len) != SL_PS_REQ_PLAIN) return false;
        if (ss) {
            if (!sl_sess_parse_memo(ss, m, avail, len)) return false;
            sl_sess_parse_memo_seen(ss);
        }
        break;
    case SL_FE_BIND:
        if (sl_ps_classify(type, m, avail, len) != SL_PS_REQ_PLAIN) return false;
        if (ss) {
            if (!sl_sess_bind_plain(ss, m, avail, len)) return false;
            sl_sess_bind_plain_seen(ss);
        }
        break;
    case SL_FE_DESCRIBE: /* not followed by the session-state tracking */
        if (sl_ps_classify(type, m, avail, len) != SL_PS_REQ_PLAIN) return false;
        break;
    case SL_FE_EXECUTE: /* always plain for the rewriting */
        if (ss) {
            if (!sl_sess_execute_plain(ss, m, avail, len)) return false;
            sl_sess_execute_plain_seen(ss);
        }
        break;
    case SL_FE_SYNC: /* always plain for the rewriting */
        if (ss) {
            if (!sl_sess_sync_room(ss)) return false;
            sl_sess_sync_seen(ss);
        }
        break;
    default:
        return false;
    }
    if (hook) c->s.parse = (uint32_t)(m - c->s.buf);
    if (hook) hook(c, type, len, false);
    sl_exp_push_fwd(s, type);
    if (hook) hook(c, type, len, true);
    if (type == SL_FE_SYNC) {
        s->in_batch = false;
        sl_scan_ready_owed(c, s);
    } else {
        s->in_batch = true;
    }
    return true;
}

/* The same for a message at the stream's parse, whole or not (the general loop's). */
static inline __attribute__((always_inline)) bool sl_scan_client_usual(sl_client *c, sl_server *s, char type,
                                                                       uint32_t len, sl_scan_client_hook hook,
                                                                       uint64_t *bytes_in)
{
    sl_stream *in = &c->s;
    if (!sl_scan_client_usual_step(c, s, type, len, in->buf + in->parse, in->end - in->parse, hook)) return false;
    *bytes_in += (uint64_t)len + 1;
    sl_stream_pass(in, len + 1);
    return true;
}

/* A run of usual messages each whole in the buffer (a request's Parse, Bind, Describe, Execute and
 * Sync usually come in one read): decided with the stream's position in locals, written back once
 * (the stores of the decisions would otherwise make the compiler read it again for every message).
 * Stops at a message that is not whole, not usual or has a bad length: the general loop decides it. */
static inline __attribute__((always_inline)) void sl_scan_client_run(sl_client *c, sl_server *s, int64_t max_packet,
                                                                     sl_scan_client_hook hook, uint64_t *bytes_in)
{
    sl_stream *in = &c->s;
    if (in->msg_left) return;
    const uint8_t *buf = in->buf;
    uint32_t parse = in->parse, end = in->end;
    uint64_t bytes = 0;
    while (end - parse >= 5) {
        const uint8_t *m = buf + parse;
        uint32_t len = sl_get_u32(m + 1);
        if (len < 4 || (int64_t)len > max_packet || end - parse - 1 < len) break;
        if (!sl_scan_client_usual_step(c, s, (char)m[0], len, m, end - parse, hook)) break;
        parse += len + 1;
        bytes += (uint64_t)len + 1;
    }
    in->parse = parse;
    *bytes_in += bytes;
}

/* sl_scan_client's loop; the bytes of the messages it decides are added up in *bytes_in (a local of
 * the caller's: one addition to the server's counters per scan, not one per message). */
static inline __attribute__((always_inline)) sl_scan_result sl_scan_client_loop(sl_client *c, sl_server *s,
                                                                                char *type, uint32_t *len,
                                                                                sl_scan_client_hook hook,
                                                                                uint64_t *bytes_in)
{
    sl_stream *in = &c->s;
    int64_t max_packet = c->s.w->cfg->max_packet_size;
    for (;;) {
        sl_scan_client_run(c, s, max_packet, hook, bytes_in);
        if (!sl_stream_next_header(in, type, len)) return SL_SCAN_MORE;
        if (*len < 4 || (int64_t)*len > max_packet) return SL_SCAN_BAD_LENGTH;
        if (*type == SL_FE_QUERY && c->s.w->cfg->disable_pqexec) return SL_SCAN_PQEXEC;
        if (sl_scan_client_usual(c, s, *type, *len, hook, bytes_in)) continue;
        sl_ps_result psr = SL_PS_FORWARD;
        if (s->ps_skip_till_sync && *type != SL_FE_SYNC && *type != SL_FE_TERMINATE) {
            /* the server discards it (it failed a request before this one): pass it on untouched
             * and expect nothing back */
            *bytes_in += (uint64_t)*len + 1;
            sl_stream_pass(in, *len + 1);
            continue;
        }
        if (*type == SL_FE_SYNC) s->ps_skip_till_sync = false;
        if (s->sess_active && *type != SL_FE_TERMINATE) { /* session state in transaction mode */
            sl_sess_result sr = sl_sess_client_msg(c, s, *type, *len);
            if (sr == SL_SESS_NEED_MORE) return SL_SCAN_MORE;
            if (sr == SL_SESS_REPLACED) continue; /* a refusal took its place: read it */
            if (sr == SL_SESS_FAILED) return SL_SCAN_CLIENT_NOMEM;
        }
        if (hook) hook(c, *type, *len, false);
        if (s->ps_active && *type != SL_FE_TERMINATE) {
            psr = sl_ps_client_msg(c, s, *type, *len);
            if (psr == SL_PS_NEED_MORE) return SL_SCAN_MORE;
            if (psr == SL_PS_MALFORMED) return SL_SCAN_MALFORMED;
        }
        if (hook) hook(c, *type, *len, true);
        *bytes_in += (uint64_t)*len + 1;
        switch (*type) {
        case SL_FE_QUERY:
        case SL_FE_FUNCTION_CALL:
        case SL_FE_SYNC:
            if (*type == SL_FE_SYNC) s->in_batch = false;
            sl_scan_ready_owed(c, s);
            break;
        case SL_FE_PARSE: case SL_FE_BIND: case SL_FE_DESCRIBE: case SL_FE_EXECUTE: case SL_FE_CLOSE: case SL_FE_FLUSH:
            s->in_batch = true;
            break;
        case SL_FE_TERMINATE:
            /* the client says goodbye: do not pass it on, the server stays ours */
            if (sl_stream_fwd_pending(in)) {
                in->msg_left = 0;
                return SL_SCAN_MORE; /* flush first; X is seen again afterwards */
            }
            return SL_SCAN_TERMINATE;
        default:
            break;
        }
        if (psr != SL_PS_CONSUMED) sl_stream_pass(in, *len + 1);
    }
}

/* Parse as much of the client's buffer as possible, marking messages to forward. On a result other
 * than SL_SCAN_MORE, *type and *len name the message. */
static inline __attribute__((always_inline)) sl_scan_result sl_scan_client(sl_client *c, sl_server *s, char *type,
                                                                           uint32_t *len, sl_scan_client_hook hook)
{
    uint64_t bytes_in = 0;
    sl_scan_result r = sl_scan_client_loop(c, s, type, len, hook, &bytes_in);
    s->pend.bytes_in += bytes_in;
    return r;
}

/* A ReadyForQuery, ParameterStatus or error from the server, whole in the buffer. false: statement
 * mode, and the server opened a transaction. */
static inline bool sl_scan_server_small_msg(sl_server *s, sl_client *c, char type, const uint8_t *body, uint32_t blen)
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
        if (sl_scan_can_release(s, c)) s->release_pending = true;
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

/* Message types ('A'..'z') as bits of a mask, so that "one of these" is one test. */
#define SL_SCAN_BIT(t) (1ull << ((t) - 'A'))
static inline bool sl_scan_type_in(char type, uint64_t mask)
{
    unsigned b = (unsigned)(unsigned char)type - 'A';
    return b < 64 && ((mask >> b) & 1u);
}
/* The answers the session-state queue follows. */
#define SL_SCAN_SESS_ANSWERS                                                                                     \
    (SL_SCAN_BIT(SL_BE_COMMAND_COMPLETE) | SL_SCAN_BIT(SL_BE_EMPTY_QUERY) | SL_SCAN_BIT(SL_BE_PORTAL_SUSPENDED) | \
     SL_SCAN_BIT(SL_BE_ERROR) | SL_SCAN_BIT(SL_BE_READY))

/* The usual answers of the extended protocol (ParseComplete, BindComplete, RowDescription, NoData,
 * CloseComplete, answering a plain request), rows, and the CommandComplete of a plain statement (its
 * tag not DISCARD/DEALLOCATE for the rewriting, a plain entry at the head of the session-state queue
 * with no setting or pin waiting for the transaction's end): decided at the header, in one pass with
 * the general path's tests and steps (sl_exp_plain, sl_exp_answered, sl_sess_server_msg's queue step),
 * every test before any step. m: the message, avail bytes of it in the buffer; parse: where the
 * stream's parse should be (at m; the caller may keep it in a local: it is written back before
 * anything that reads it). false: nothing was done, the general path below decides. The caller
 * steps over the message. */
/* An answer passed on to a plain request at the head of the rewriting's queue (or with nothing
 * queued); false: the head is not plain, the general path decides. */
static inline __attribute__((always_inline)) bool sl_scan_plain_answer(sl_server *s, char type)
{
    if (s->ps_active && s->exp_n) {
        sl_expect *e = sl_exp_head(s);
        if (!sl_exp_plain(e)) return false;
        sl_exp_answered(s, e, type);
    }
    return true;
}

static inline __attribute__((always_inline)) bool sl_scan_server_usual_step(sl_server *s, sl_client *c, char type,
                                                                            uint32_t len, const uint8_t *m,
                                                                            uint32_t avail, uint32_t parse)
{
    switch (type) {
    case SL_BE_DATA_ROW: case SL_BE_COPY_DATA:
        /* never end a request, always forwarded; but answers pgsluice gives itself that are due
         * (after the answer just passed) go first */
        if (s->ps_active && sl_ps_synth_pending(s)) {
            s->s.parse = parse; /* they go after the answers marked so far */
            sl_ps_emit_synth(s, c);
        }
        break;
    /* (one case a type: sl_exp_answered's test of the request folds to one comparison) */
    case SL_BE_PARSE_COMPLETE: return sl_scan_plain_answer(s, SL_BE_PARSE_COMPLETE);
    case SL_BE_BIND_COMPLETE: return sl_scan_plain_answer(s, SL_BE_BIND_COMPLETE);
    case SL_BE_ROW_DESCRIPTION: return sl_scan_plain_answer(s, SL_BE_ROW_DESCRIPTION);
    case SL_BE_NO_DATA: return sl_scan_plain_answer(s, SL_BE_NO_DATA);
    case SL_BE_CLOSE_COMPLETE: return sl_scan_plain_answer(s, SL_BE_CLOSE_COMPLETE);
    case SL_BE_READY: {
        /* whole (the general path waits for all of it too), the end of a plain request for the
         * rewriting and of a request the session-state queue expects (with nothing waiting for the
         * transaction's end there: settings, clears, named portals that pin), outside statement mode
         * (there it may refuse a transaction): the general path's steps without its dispatching */
        if (len != 5 || avail < 6 || sl_route_pool_mode(sl_server_route(s)) == SL_POOL_STATEMENT) return false;
        sl_expect *e = NULL;
        if (s->ps_active && s->exp_n) {
            e = sl_exp_head(s);
            if (!sl_exp_plain(e)) return false;
        }
        sl_session *ss = c->sess;
        bool sess = s->sess_active && ss;
        if (sess && (ss->desync || !ss->qn || ss->txn || ss->clear_pending || ss->nportals || ss->unnamed_watch ||
                     ss->q[ss->qhead].kind != SL_SE_END))
            return false;
        if (e) sl_exp_answered(s, e, SL_BE_READY);
        if (sess) {
            ss->qhead = (ss->qhead + 1) & (ss->qcap - 1);
            ss->qn--;
        }
        (void)sl_scan_server_small_msg(s, c, type, m + 5, 1);
        /* (answers pgsluice gives itself for requests after this Sync go after its ReadyForQuery:
         * the caller gives them once it has stepped over it, sl_scan_server_ready_passed) */
        break;
    }
    case SL_BE_COMMAND_COMPLETE: {
        if (avail < 6 || len > SL_SMALL_MSG_MAX) return false;
        sl_expect *e = NULL;
        if (s->ps_active && s->exp_n) {
            e = sl_exp_head(s);
            if (!sl_exp_plain(e) || m[5] == 'D') return false;
        }
        sl_sess_entry *h = NULL;
        sl_session *ss = c->sess;
        if (s->sess_active && ss) {
            if (ss->desync || !ss->qn || ss->txn || ss->clear_pending) return false;
            h = &ss->q[ss->qhead];
            if (!sl_sess_entry_plain(h)) return false;
        }
        if (e) sl_exp_answered(s, e, SL_BE_COMMAND_COMPLETE);
        if (h) {
            if (h->n > 1) h->n--;
            else {
                ss->qhead = (ss->qhead + 1) & (ss->qcap - 1);
                ss->qn--;
            }
        }
        break;
    }
    default:
        return false;
    }
    return true;
}

/* A ReadyForQuery was stepped over (the stream's parse is past it): the answers pgsluice gives itself
 * for requests after its Sync are due now, after it. */
static inline void sl_scan_server_ready_passed(sl_server *s, sl_client *c)
{
    if (s->ps_active) sl_ps_synth_due(s, c);
}

/* The same for an answer at the stream's parse, whole or not (the general loop's). */
static inline __attribute__((always_inline)) bool sl_scan_server_usual(sl_server *s, sl_client *c, char type,
                                                                       uint32_t len, uint64_t *bytes_out)
{
    sl_stream *in = &s->s;
    if (!sl_scan_server_usual_step(s, c, type, len, in->buf + in->parse, in->end - in->parse, in->parse)) return false;
    *bytes_out += (uint64_t)len + 1;
    sl_stream_pass(in, len + 1);
    if (type == SL_BE_READY) sl_scan_server_ready_passed(s, c); /* (whole: parse is past it) */
    return true;
}

/* A run of usual answers each whole in the buffer, with the stream's position in locals (as
 * sl_scan_client_run). Stops at an answer that is not whole, not usual, or has a bad length. */
static inline __attribute__((always_inline)) void sl_scan_server_run(sl_server *s, sl_client *c, uint64_t *bytes_out)
{
    sl_stream *in = &s->s;
    if (in->msg_left) return;
    const uint8_t *buf = in->buf;
    uint32_t parse = in->parse, end = in->end;
    uint64_t bytes = 0;
    while (end - parse >= 5) {
        const uint8_t *m = buf + parse;
        uint32_t len = sl_get_u32(m + 1);
        if (len < 4 || len > INT32_MAX || end - parse - 1 < len) break;
        if (!sl_scan_server_usual_step(s, c, (char)m[0], len, m, end - parse, parse)) break;
        parse += len + 1;
        bytes += (uint64_t)len + 1;
        if (m[0] == SL_BE_READY && s->ps_active && sl_ps_synth_pending(s)) {
            in->parse = parse; /* they go after the answers marked so far, this one included */
            sl_scan_server_ready_passed(s, c);
        }
    }
    in->parse = parse;
    *bytes_out += bytes;
}

/* sl_scan_server's loop; the bytes of the answers it passes on are added up in *bytes_out (as the
 * client's in sl_scan_client_loop). */
static inline __attribute__((always_inline)) sl_scan_result sl_scan_server_loop(sl_server *s, sl_client *c,
                                                                                uint64_t *bytes_out)
{
    sl_stream *in = &s->s;
    char type;
    uint32_t len;
    for (;;) {
        sl_scan_server_run(s, c, bytes_out);
        if (!sl_stream_next_header(in, &type, &len)) {
            /* answers pgsluice gives itself (after a Flush, say) may be due now that the answers
             * before them are marked for the client */
            if (s->ps_active && !in->msg_left) sl_ps_synth_due(s, c);
            return SL_SCAN_MORE;
        }
        /* the length is an Int32: above INT32_MAX, len + 1 below would wrap to 0 */
        if (len < 4 || len > INT32_MAX) return SL_SCAN_BAD_MESSAGE;
        if (sl_scan_server_usual(s, c, type, len, bytes_out)) continue;
        /* ReadyForQuery, ParameterStatus and errors are looked at whole: all of one is waited for
         * before anything is decided about it (the queue of answers below too: deciding twice on
         * a message that arrives in pieces would take two entries off it) */
        bool sess_msg = sl_scan_type_in(type, SL_SCAN_SESS_ANSWERS) && s->sess_active && c->sess;
        bool small = sl_scan_type_in(type, SL_SCAN_BIT(SL_BE_READY) | SL_SCAN_BIT(SL_BE_PARAM_STATUS)) ||
                     ((type == SL_BE_ERROR || sess_msg) && len <= SL_SMALL_MSG_MAX);
        if (small) {
            if (len > SL_SMALL_MSG_MAX) return SL_SCAN_OVERSIZED;
            if (in->end - in->parse < len + 1) {
                if (!sl_stream_make_room(in, len + 1 - (in->end - in->parse), SL_SMALL_MSG_MAX * 2)) return SL_SCAN_NOMEM;
                return SL_SCAN_MORE;
            }
        }
        /* A FATAL right behind the ReadyForQuery that ended the client's last request, nothing asked
         * since: its backend was terminated between the client's transactions. It answers nothing
         * the client asked, and a driver would take it for the answer to its next request (which
         * goes to another server): it stays here, and the server closes behind the client
         * (proxy.c). A pinned client's session went with the server: it gets the error. */
        if (type == SL_BE_ERROR && __builtin_expect(s->release_pending, 0) && small && sl_scan_can_release(s, c) &&
            sl_scan_error_fatal(in->buf + in->parse + 5, len - 4))
            return SL_SCAN_DIED_BETWEEN;
        /* (DataRow and CopyData were decided above, with the usual answers) */
        if (s->ps_active) {
            const uint8_t *body = in->buf + in->parse + 5; /* (consuming it leaves the bytes in place) */
            sl_ps_result r = sl_ps_server_msg(s, c, type, len);
            if (r == SL_PS_NEED_MORE) return SL_SCAN_MORE;
            if (r == SL_PS_CONSUMED) {
                /* an error the rewriting answers in its own words (42P05, 26000) or drops is still
                 * the server's: the session-state tracking learns that the transaction failed and
                 * the rest of the batch was skipped */
                if (type == SL_BE_ERROR && sess_msg && small) sl_sess_server_msg(c, s, type, body, len - 4);
                continue;
            }
        }
        *bytes_out += (uint64_t)len + 1;
        if (sess_msg && small) sl_sess_server_msg(c, s, type, in->buf + in->parse + 5, len - 4);
        if (small) {
            if (!sl_scan_server_small_msg(s, c, type, in->buf + in->parse + 5, len - 4)) return SL_SCAN_REFUSE_TXN;
            if (type == SL_BE_READY && s->ps_active) {
                in->parse += len + 1; /* whole in the buffer: mark it, then what follows it */
                sl_ps_synth_due(s, c);
                continue;
            }
        }
        sl_stream_pass(in, len + 1);
    }
}

/* Parse as much of the server's buffer as possible, marking answers to forward (and the answers
 * pgsluice gives itself in between, with the statement rewriting on). */
static inline __attribute__((always_inline)) sl_scan_result sl_scan_server(sl_server *s, sl_client *c)
{
    uint64_t bytes_out = 0;
    sl_scan_result r = sl_scan_server_loop(s, c, &bytes_out);
    s->pend.bytes_out += bytes_out;
    return r;
}

#endif
