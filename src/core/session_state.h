/* session_state.h - transaction pooling without surprises (session_state.c): settings a client
 * changes with SET / RESET that the server does not report are remembered once they commit, and a
 * client whose statements leave state on its server (advisory locks, temporary tables, cursors WITH
 * HOLD, LISTEN, SQL PREPARE, untracked settings) is pinned to it until that state is gone. Called
 * from the forwarding path (proxy.c) for the few messages that matter. */
#ifndef SL_SESSION_STATE_H
#define SL_SESSION_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/conn.h"
#include "proto/msgtype.h"
#include "proto/stmt_class.h"

/* pin_session_state */
typedef enum { SL_PIN_MODE_OFF = 0, SL_PIN_MODE_ON, SL_PIN_MODE_ERROR } sl_pin_mode;

/* What one statement (or a run of statements) will do once the server confirms it. */
enum { SL_SE_NONE = 0, SL_SE_END = 1 /* the other kinds: session_state.c */ };
typedef struct sl_sess_entry {
    uint8_t kind;        /* SL_SE_NONE: a run of n plain statements, SL_SE_END: a Query / Sync's end */
    int8_t param;        /* SL_PARAM_* of a SET / RESET */
    uint16_t pins, clears;
    uint32_t n;          /* statements in a run of plain ones */
    const char *value;   /* the value set (interned; NULL: back to the default) */
} sl_sess_entry;

typedef struct sl_session {
    uint16_t pins;           /* SL_PIN_BIT()s: why the client keeps its server */
    uint16_t clear_pending;  /* state ended by statements whose transaction has not committed yet */
    bool desync;             /* a request could not be followed: pinned until the client leaves */
    bool tx_failed;          /* an error failed the transaction that tx / clear_pending belong to */
    bool advisory_check;     /* it called an advisory lock function while (or by) being pinned for
                                one: once its transaction has ended, the server is asked whether
                                it still holds any (server_setup.c) */
    sl_sess_entry *q;        /* answers expected (CommandComplete..., ReadyForQuery), in order */
    uint32_t qhead, qn, qcap;
    sl_sess_entry *tx;       /* settings changed in the open transaction, kept if it commits */
    uint32_t txn, txcap;
    sl_sess_entry unnamed_stmt, unnamed_portal; /* extended protocol: what they would do */
    /* A Parse of the unnamed statement that acts on the session, or replaces one that does, is
     * skipped by the server when an earlier message of its batch fails: the statement before it
     * stays. Until that batch's ReadyForQuery (unnamed_ends: end marks queued before the Parse,
     * still to come), unnamed_prev is what the unnamed statement may still be; a Bind of it from a
     * later batch meanwhile, and the statement itself once an error came in that batch
     * (unnamed_watch 2), count as either (unnamed_either in session_state.c). */
    sl_sess_entry unnamed_prev;
    uint32_t unnamed_ends;
    uint8_t unnamed_watch;   /* 0: nothing in doubt; 1: its batch not answered yet; 2: it failed */
    bool err_open;           /* an error came and the client's Sync that ends its skipping has not */
    /* named portals bound to a statement that pins: their Execute takes the pins (and names) again,
     * so that a DISCARD / RESET ALL / DEALLOCATE run between the Bind and the Execute does not end
     * them. ends: Query / Sync / FunctionCall end marks queued before the Bind, so that the records
     * go at the ReadyForQuery 'I' that ends the portal's transaction */
    struct sl_sess_portal {
        const char *name; /* interned */
        uint32_t ends;
        sl_sess_entry e;
    } *portals;
    uint32_t nportals, portalscap;
    /* with max_prepared_statements = 0 (no proxy_ps.c names to look the text up in at a Bind), the
     * named statements that pin, as portal records (ends unused): their Bind pins again, and a named
     * portal of one is recorded as above */
    struct sl_sess_portal *stmts;
    uint32_t nstmts, stmtscap;
    /* what a cursor_with_hold / listen / prepare pin is made of: the cursors, channels and statement
     * names, so that CLOSE / UNLISTEN / DEALLOCATE of the last one ends the pin (NULL name: one pgsluice
     * could not read, ended only by the ALL form) */
    struct sl_sess_name {
        uint8_t reason;
        const char *name; /* interned */
    } *names;
    uint32_t nnames, namescap;
    /* the text of the last Parse that did nothing to the session (up to SL_SESS_MEMO_MAX bytes): a
     * client that parses the same statement again (an unnamed one each transaction, say) is
     * answered by a memcmp instead of another look at the text */
    char *memo;
    uint32_t memo_len, memo_cap;
} sl_session;

typedef enum {
    SL_SESS_FORWARD,   /* go on with the message */
    SL_SESS_NEED_MORE, /* the whole message is needed first */
    SL_SESS_REPLACED,  /* the message was replaced (a refusal): read its header again */
    SL_SESS_FAILED,    /* out of memory */
} sl_sess_result;

/* A client message (Query, Parse, Bind, Execute, Sync, FunctionCall) on a link in transaction or
 * statement pooling, before it is forwarded. */
sl_sess_result sl_sess_client_msg_full(sl_client *c, sl_server *s, char type, uint32_t len);
/* A server message (CommandComplete, EmptyQueryResponse, PortalSuspended, ErrorResponse,
 * ReadyForQuery), whole, before it is forwarded. */
void sl_sess_server_msg_full(sl_client *c, sl_server *s, char type, const uint8_t *body, uint32_t blen);

/* An entry that changes nothing: a run of statements that only want their answers counted. */
static inline bool sl_sess_entry_plain(const sl_sess_entry *e)
{
    return e->kind == SL_SE_NONE && !e->pins && !e->clears;
}

/* The hot path inline (the forwarding loop of proxy.c, through core/scan.h): a Parse of the unnamed
 * statement with the client's last plain text, a Bind of the unnamed portal to a plain unnamed
 * statement, a Sync and an Execute of a portal that does nothing to the session need a queue entry
 * at most; everything else goes to sl_sess_client_msg_full. The tests and steps are apart so that
 * scan.h's decision of the usual messages (sl_scan_client_usual) uses the very same. m: the
 * message in the client's buffer, avail bytes of it there. */

/* A Parse of the unnamed statement, whole, with the text the client's last plain Parse had. */
static inline bool sl_sess_parse_memo(const sl_session *ss, const uint8_t *m, uint32_t avail, uint32_t len)
{
    const char *sql = (const char *)m + 6;
    uint32_t tl = ss->memo_len;
    return ss->memo && sl_sess_entry_plain(&ss->unnamed_stmt) && !ss->unnamed_watch && !ss->err_open && avail >= len + 1 && len >= 4 + 1 + tl + 1 + 2 && !m[5] &&
           !sql[tl] &&
           len - (4 + 1 + tl + 1 + 2) >= 4u * (((unsigned)(uint8_t)sql[tl + 1] << 8) | (uint8_t)sql[tl + 2]) &&
           !memcmp(sql, ss->memo, tl);
}
static inline void sl_sess_parse_memo_seen(sl_session *ss)
{
    ss->unnamed_stmt = (sl_sess_entry){.kind = SL_SE_NONE, .param = -1};
}
/* A Bind of the unnamed portal to the unnamed statement, neither holding a value. */
static inline bool sl_sess_bind_plain(const sl_session *ss, const uint8_t *m, uint32_t avail, uint32_t len)
{
    return len >= 6 && avail >= 7 && !m[5] && !m[6] && !ss->unnamed_portal.value && !ss->unnamed_stmt.value &&
           !ss->unnamed_watch;
}
static inline void sl_sess_bind_plain_seen(sl_session *ss) { ss->unnamed_portal = ss->unnamed_stmt; }
/* An Execute, whole, of the unnamed portal, plain, or of a named one while no named portal pins; with
 * room in the queue. */
static inline bool sl_sess_execute_plain(const sl_session *ss, const uint8_t *m, uint32_t avail, uint32_t len)
{
    return ss->qn < ss->qcap && len >= 5 && avail >= len + 1 &&
           (m[5] != 0 ? !ss->nportals : sl_sess_entry_plain(&ss->unnamed_portal));
}
static inline void sl_sess_execute_plain_seen(sl_session *ss)
{
    sl_sess_entry *last = ss->qn ? &ss->q[(ss->qhead + ss->qn - 1) & (ss->qcap - 1)] : NULL;
    if (last && sl_sess_entry_plain(last)) last->n++;
    else {
        ss->q[(ss->qhead + ss->qn) & (ss->qcap - 1)] = (sl_sess_entry){.kind = SL_SE_NONE, .param = -1, .n = 1};
        ss->qn++;
    }
}
/* A Sync, with room in the queue: its ReadyForQuery ends the request. */
static inline bool sl_sess_sync_room(const sl_session *ss) { return ss->qn < ss->qcap; }
static inline void sl_sess_sync_seen(sl_session *ss)
{
    ss->q[(ss->qhead + ss->qn) & (ss->qcap - 1)] = (sl_sess_entry){.kind = SL_SE_END};
    ss->qn++;
    ss->err_open = false;
}

static inline sl_sess_result sl_sess_client_msg(sl_client *c, sl_server *s, char type, uint32_t len)
{
    sl_session *ss = c->sess;
    /* Query, Parse, Bind, Execute, Sync, FunctionCall: one bit each of 'A'..'Z' */
    const uint32_t followed = 1u << (SL_FE_QUERY - 'A') | 1u << (SL_FE_PARSE - 'A') |
                              1u << (SL_FE_BIND - 'A') | 1u << (SL_FE_EXECUTE - 'A') | 1u << (SL_FE_SYNC - 'A') |
                              1u << (SL_FE_FUNCTION_CALL - 'A');
    unsigned bit = (unsigned)(unsigned char)type - 'A';
    if (bit >= 26 || !((followed >> bit) & 1u)) return SL_SESS_FORWARD;
    if (!ss || ss->desync) return sl_sess_client_msg_full(c, s, type, len);
    const uint8_t *m = c->s.buf + c->s.parse;
    uint32_t avail = c->s.end - c->s.parse;
    if (type == SL_FE_PARSE) {
        if (sl_sess_parse_memo(ss, m, avail, len)) {
            sl_sess_parse_memo_seen(ss);
            return SL_SESS_FORWARD;
        }
    } else if (type == SL_FE_BIND) {
        if (sl_sess_bind_plain(ss, m, avail, len)) {
            sl_sess_bind_plain_seen(ss);
            return SL_SESS_FORWARD;
        }
    } else if (type == SL_FE_SYNC) {
        if (sl_sess_sync_room(ss)) {
            sl_sess_sync_seen(ss);
            return SL_SESS_FORWARD;
        }
    } else if (type == SL_FE_EXECUTE && sl_sess_execute_plain(ss, m, avail, len)) {
        sl_sess_execute_plain_seen(ss);
        return SL_SESS_FORWARD;
    }
    return sl_sess_client_msg_full(c, s, type, len);
}

/* The same for the answers: a CommandComplete of a plain statement and a ReadyForQuery that ends
 * a request, with no setting or pin waiting for the transaction's end (nor, for the ReadyForQuery, a
 * named portal that pins), only move the queue on. */
static inline void sl_sess_server_msg(sl_client *c, sl_server *s, char type, const uint8_t *body, uint32_t blen)
{
    sl_session *ss = c->sess;
    if (ss && !ss->desync && ss->qn && !ss->txn && !ss->clear_pending) {
        sl_sess_entry *h = &ss->q[ss->qhead];
        if ((type == SL_BE_COMMAND_COMPLETE && sl_sess_entry_plain(h)) ||
            (type == SL_BE_READY && h->kind == SL_SE_END && !ss->nportals && !ss->unnamed_watch)) {
            if (h->kind == SL_SE_NONE && h->n > 1) h->n--;
            else {
                ss->qhead = (ss->qhead + 1) & (ss->qcap - 1);
                ss->qn--;
            }
            return;
        }
    }
    sl_sess_server_msg_full(c, s, type, body, blen);
}

static inline bool sl_sess_pinned(const sl_client *c) { return c->sess && c->sess->pins; }
/* Pinned for advisory locks, and it called a lock function since the server was last asked. */
static inline bool sl_sess_advisory_check_due(const sl_client *c)
{
    return c->sess && c->sess->advisory_check && (c->sess->pins & SL_PIN_BIT(SL_PINR_ADVISORY_LOCK)) &&
           !c->sess->desync;
}
/* The server answered: held false ends the advisory-lock pin (the client's other pins stay). */
void sl_sess_advisory_checked(sl_client *c, bool held);
/* The link ends: what was still expected is forgotten. */
void sl_sess_link_end_full(sl_client *c);
static inline void sl_sess_link_end(sl_client *c)
{
    sl_session *ss = c->sess;
    if (!ss) return;
    if (ss->qn || ss->txn || ss->clear_pending || ss->unnamed_portal.value || ss->nportals || ss->unnamed_watch ||
        ss->err_open)
        sl_sess_link_end_full(c);
    else ss->unnamed_portal = (sl_sess_entry){.kind = SL_SE_NONE};
}
/* The client is freed. */
void sl_sess_free(sl_client *c);

/* Process-wide counts for /metrics: clients pinned now, and pins by reason since start. */
extern int64_t sl_pinned_clients;
extern uint64_t sl_pins_total[SL_PIN_NREASONS];

#endif
