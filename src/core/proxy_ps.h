/* proxy_ps.h - statement-name rewriting and the expected-response queue (see proxy_ps.c). The
 * per-message decisions that usually find nothing to do are inline here, so that unnamed
 * statements and plain queries cost a few instructions on the forwarding path. */
#ifndef SL_PROXY_PS_H
#define SL_PROXY_PS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/conn.h"
#include "proto/msgtype.h"

typedef enum {
    SL_PS_FORWARD,   /* pass the message on unchanged (it may have been recorded) */
    SL_PS_CONSUMED,  /* handled: rewritten into the peer's out queue, or dropped */
    SL_PS_NEED_MORE, /* the whole message is needed; read more */
    SL_PS_MALFORMED, /* protocol violation or out of memory */
} sl_ps_result;

/* ---- the queue of responses a server owes, one entry per request that gets an answer ---- */

/* FWD: pass the answer on; SKIP: drop it (pgsluice's own Parse/Close); DUP_NAME: a client's Parse
 * of a name it already uses, parsed under the server name of that name's statement so that it
 * fails as on PostgreSQL, a 42P05 reported for the client's name; DISCARD: a Query starting with
 * DISCARD ALL / DEALLOCATE ALL, answers passed on, the client's names set aside until the server
 * confirms; DOUBT: pgsluice's own Parse for a client's Bind/Describe of a statement in doubt or
 * that no server accepted yet, answer dropped, an error reported as the client's statement not
 * existing (26000); SYNTH_*: answer the client without the server (keep these last: tested
 * with >=). */
typedef enum {
    SL_EXP_FWD, SL_EXP_SKIP, SL_EXP_DUP_NAME, SL_EXP_DISCARD, SL_EXP_DOUBT, SL_EXP_SYNTH_PARSE, SL_EXP_SYNTH_CLOSE
} sl_exp_action;

typedef struct sl_expect {
    char msg;          /* the request: P B D E C S Q F */
    uint8_t action;    /* sl_exp_action: forward the answer, skip it, or synthesize one */
    bool name_gone;    /* DOUBT and SYNTH_CLOSE: the client's own Parse of the name, queued before,
                          failed or was skipped (set then; read only for those entries) */
    sl_stmt *stmt;     /* Parse entries: the statement to forget if the Parse fails; SYNTH_CLOSE:
                          the statement to give back if the Close is skipped (referenced) */
    char *client_name; /* the client's name: FWD and SYNTH_PARSE, to forget if the Parse fails or
                          is skipped; SYNTH_CLOSE, to give back; DUP_NAME and DOUBT, for errors */
    sl_stmt_map *discarded; /* DISCARD entries: the client's names before it; they come back if the
                               command fails (e.g. DISCARD ALL inside a transaction block) */
} sl_expect;

static inline sl_expect *sl_exp_at(sl_server *s, uint32_t i) { return &s->exp[(s->exp_head + i) & (s->exp_cap - 1)]; }
/* The head entry (exp_head is kept below exp_cap). */
static inline sl_expect *sl_exp_head(sl_server *s) { return &s->exp[s->exp_head]; }

void sl_exp_push_fwd_grow(sl_server *s, char msg);

/* Record a request whose answer is simply passed on. A free slot of the ring holds no pointers and
 * no mark (the ring is allocated zeroed and every entry is cleared as it leaves: proxy_ps.c's exp_pop,
 * and sl_exp_answered below for plain entries, which hold none): only the request and action are
 * written. */
static inline void sl_exp_push_fwd(sl_server *s, char msg)
{
    if (s->exp_n == s->exp_cap) {
        sl_exp_push_fwd_grow(s, msg);
        return;
    }
    sl_expect *e = &s->exp[(s->exp_head + s->exp_n) & (s->exp_cap - 1)];
    e->msg = msg;
    e->action = SL_EXP_FWD;
    s->exp_n++;
}

/* Is resp the message that completes request req? */
static inline bool sl_exp_ends_request(char req, char resp)
{
    switch (req) {
    case SL_FE_PARSE: return resp == SL_BE_PARSE_COMPLETE;
    case SL_FE_BIND: return resp == SL_BE_BIND_COMPLETE;
    case SL_FE_DESCRIBE: return resp == SL_BE_ROW_DESCRIPTION || resp == SL_BE_NO_DATA;
    case SL_FE_EXECUTE: return resp == SL_BE_COMMAND_COMPLETE || resp == SL_BE_EMPTY_QUERY || resp == SL_BE_PORTAL_SUSPENDED;
    case SL_FE_CLOSE: return resp == SL_BE_CLOSE_COMPLETE;
    default: return resp == SL_BE_READY; /* Sync, Query, FunctionCall */
    }
}

/* ---- client -> server ---- */

sl_ps_result sl_ps_client_msg_full(sl_client *c, sl_server *s, char type, uint32_t len);

/* How a client message stands for the rewriting, decided from its first bytes (m: the message in
 * the client's buffer, avail bytes of it there): no answer of its own (Flush, COPY data and the
 * rest), a request whose answer is simply passed on (unnamed statements and portals, Execute,
 * Sync, queries that cannot be DISCARD ALL / DEALLOCATE ALL), or one sl_ps_client_msg_full looks
 * at. */
typedef enum { SL_PS_REQ_NONE, SL_PS_REQ_PLAIN, SL_PS_REQ_LOOK } sl_ps_req;
static inline sl_ps_req sl_ps_classify(char type, const uint8_t *m, uint32_t avail, uint32_t len)
{
    switch (type) {
    case SL_FE_EXECUTE: case SL_FE_SYNC: case SL_FE_FUNCTION_CALL:
        return SL_PS_REQ_PLAIN;
    case SL_FE_PARSE: /* unnamed statement */
        return len < 5 || avail < 6 || m[5] != 0 ? SL_PS_REQ_LOOK : SL_PS_REQ_PLAIN;
    case SL_FE_BIND: /* unnamed portal and unnamed statement */
        return len < 6 || avail < 7 || m[5] != 0 || m[6] != 0 ? SL_PS_REQ_LOOK : SL_PS_REQ_PLAIN;
    case SL_FE_DESCRIBE: case SL_FE_CLOSE: /* a portal, or the unnamed statement */
        return len < 6 || avail < 7 || (m[5] != SL_TARGET_STATEMENT && m[5] != SL_TARGET_PORTAL) ||
                       (m[5] == SL_TARGET_STATEMENT && m[6] != 0)
                   ? SL_PS_REQ_LOOK
                   : SL_PS_REQ_PLAIN;
    case SL_FE_QUERY: /* DISCARD ALL / DEALLOCATE ALL need a look at the text */
        return len < 65536 && (len < 5 || avail < 6 || m[5] == 'D' || m[5] == 'd' || m[5] == ' ' || m[5] == '\t' ||
                               m[5] == '\n' || m[5] == '\r')
                   ? SL_PS_REQ_LOOK
                   : SL_PS_REQ_PLAIN;
    default:
        return SL_PS_REQ_NONE;
    }
}

/* Called at each client message header while linked with s->ps_active. Messages that need no
 * rewriting are decided from their first bytes (sl_ps_classify). */
static inline sl_ps_result sl_ps_client_msg(sl_client *c, sl_server *s, char type, uint32_t len)
{
    switch (sl_ps_classify(type, c->s.buf + c->s.parse, c->s.end - c->s.parse, len)) {
    case SL_PS_REQ_NONE: return SL_PS_FORWARD;
    case SL_PS_REQ_LOOK: return sl_ps_client_msg_full(c, s, type, len);
    case SL_PS_REQ_PLAIN: break;
    }
    sl_exp_push_fwd(s, type);
    return SL_PS_FORWARD;
}

void sl_ps_emit_synth(sl_server *s, sl_client *c);

/* Answers pgsluice synthesizes that are due now (ParseComplete/CloseComplete at the queue's head):
 * after a client scan, and after a server ReadyForQuery was marked for forwarding (the answers to
 * requests sent after that Sync go after it). Only between two server messages: the answer before
 * them may still be arriving (its entry left the queue at its header), and they go after it. */
static inline bool sl_ps_synth_pending(sl_server *s)
{
    return s->exp_n && !s->s.msg_left && sl_exp_head(s)->action >= SL_EXP_SYNTH_PARSE;
}
static inline void sl_ps_synth_due(sl_server *s, sl_client *c)
{
    if (sl_ps_synth_pending(s)) sl_ps_emit_synth(s, c);
}

/* ---- server -> client ---- */

sl_ps_result sl_ps_server_msg_full(sl_server *s, sl_client *c, char type, uint32_t len);

/* A request whose answer is simply passed on (nothing of pgsluice's own to undo or report). */
static inline bool sl_exp_plain(const sl_expect *e) { return e->action == SL_EXP_FWD && !e->stmt; }
/* An answer to the plain request e at the head of the queue is passed on: the request leaves the
 * queue if the answer is its last. */
static inline void sl_exp_answered(sl_server *s, const sl_expect *e, char type)
{
    if (sl_exp_ends_request(e->msg, type)) {
        s->exp_head = (s->exp_head + 1) & (s->exp_cap - 1);
        s->exp_n--;
    }
}

/* Called at each server message header (except DataRow/CopyData) while linked with s->ps_active. */
static inline sl_ps_result sl_ps_server_msg(sl_server *s, sl_client *c, char type, uint32_t len)
{
    if (type == SL_BE_NOTICE || type == SL_BE_NOTIFICATION || type == SL_BE_PARAM_STATUS || !s->exp_n)
        return SL_PS_FORWARD; /* asynchronous */
    sl_expect *e = sl_exp_head(s);
    /* plain forwarded answers to plain requests; errors, DISCARD/DEALLOCATE tags and the rest go
     * the long way */
    if (!sl_exp_plain(e) || type == SL_BE_ERROR ||
        (type == SL_BE_COMMAND_COMPLETE && (s->s.end - s->s.parse < 6 || s->s.buf[s->s.parse + 5] == 'D')))
        return sl_ps_server_msg_full(s, c, type, len);
    sl_exp_answered(s, e, type);
    return SL_PS_FORWARD;
}

/* No answers owed (the link may end). */
static inline bool sl_ps_idle(const sl_server *s) { return s->exp_n == 0; }

void sl_ps_drain_queue(sl_server *s);
/* The link ends: forget what the queue still held. */
static inline void sl_ps_reset_link(sl_server *s)
{
    if (s->exp_n) sl_ps_drain_queue(s);
    s->ps_active = false;
    s->ps_skip_till_sync = false;
}

/* Rewriting applies to this client's links (transaction/statement mode, feature on)? */
static inline bool sl_ps_enabled_for(const sl_client *c)
{
    return c->s.w->cfg->max_prepared_statements > 0 && c->route && sl_route_pool_mode(c->route) != SL_POOL_SESSION;
}
sl_ps_result sl_ps_client_local_full(sl_client *c, char type, uint32_t len);
/* Between transactions: answer Parse of a known statement, Close, Flush and Sync without a server.
 * Anything else (the usual first message of a transaction) goes to a server. */
static inline sl_ps_result sl_ps_client_local(sl_client *c, char type, uint32_t len)
{
    if (type != SL_FE_PARSE && type != SL_FE_CLOSE && type != SL_FE_SYNC && type != SL_FE_FLUSH) return SL_PS_FORWARD;
    if (type == SL_FE_PARSE && c->s.end - c->s.parse >= 6 && c->s.buf[c->s.parse + 5] == 0) return SL_PS_FORWARD; /* unnamed */
    return sl_ps_client_local_full(c, type, len);
}
/* The server died before it read the linked client's request, which goes to another server
 * (proxy.c): the changes made to the client's names for the requests queued here are undone
 * (latest first), so that the request is rewritten for the next server as if seen for the first
 * time. The server's cache and queue are left for sl_ps_server_gone. */
void sl_ps_undo_request(sl_server *s, sl_client *c);
/* The server is closing: free its cache and queue. */
void sl_ps_server_gone(sl_server *s);

#endif
