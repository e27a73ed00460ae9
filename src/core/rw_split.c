/* rw_split.c - read_write_split on the client's side. Before a client in a database with roles asks
 * for a server, the first message of its transaction is read: a declared read-only transaction
 * (BEGIN READ ONLY, START TRANSACTION READ ONLY, SET TRANSACTION READ ONLY first, or a session with
 * default_transaction_read_only on, when that parameter is tracked) asks for a replica, anything else
 * for the primary. A bare BEGIN (transaction pooling) is answered by pgsluice itself and kept: the
 * next statement decides (SET TRANSACTION READ ONLY: a replica), and the BEGIN is replayed on the
 * server the client gets before that statement (server_setup.c); a COMMIT or ROLLBACK right after
 * it is answered too, without a server. */
#include "core/rw_split.h"

#include <stdlib.h>
#include <string.h>

#include "proto/msgtype.h"
#include "proto/txn_intent.h"

/* Declarations longer than this are not waited for (the primary serves them). */
#define CLASSIFY_MAX (64u * 1024)

static int g_dtro_id = -2; /* atomic: tracked parameter id of default_transaction_read_only, -1: untracked */

/* A session whose transactions are read-only by default (default_transaction_read_only=on from its
 * startup packet or options, or SET later; only when track_extra_parameters names it). */
static bool session_read_only(const sl_client *c)
{
    int id = __atomic_load_n(&g_dtro_id, __ATOMIC_RELAXED);
    if (id == -2) {
        id = sl_param_lookup("default_transaction_read_only");
        __atomic_store_n(&g_dtro_id, id, __ATOMIC_RELAXED);
    }
    const char *v = id >= 0 ? c->params.v[id] : NULL;
    return v && (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "1"));
}

/* The query text of a whole Query or (unnamed or named) Parse at s->parse. */
static bool query_text(const sl_stream *s, char type, uint32_t len, const char **text, size_t *n)
{
    const char *body = (const char *)s->buf + s->parse + 5;
    size_t blen = len - 4;
    if (type == SL_FE_PARSE) {
        const char *name_end = memchr(body, '\0', blen);
        if (!name_end) return false;
        blen -= (size_t)(name_end + 1 - body);
        body = name_end + 1;
    }
    const char *end = memchr(body, '\0', blen);
    if (!end) return false;
    *text = body;
    *n = (size_t)(end - body);
    return true;
}

static void consume(sl_stream *s, uint32_t n)
{
    s->parse += n;
    s->pos = s->parse;
}

/* pgsluice answers: CommandComplete tag, ReadyForQuery status. */
static void answer(sl_client *c, const char *tag, char status)
{
    sl_pb_command_complete(&c->s.out, tag);
    sl_pb_ready(&c->s.out, status);
}

sl_rws_result sl_rw_split_message(sl_client *c, char type, uint32_t len)
{
    sl_stream *s = &c->s;
    bool session_ro = session_read_only(c);
    c->wt.intent = session_ro ? SL_INTENT_READ : SL_INTENT_WRITE;
    sl_txn_kind kind = SL_TXN_OTHER;
    if ((type == SL_FE_QUERY || type == SL_FE_PARSE) && len <= CLASSIFY_MAX) {
        if (s->end - s->parse < len + 1) {
            if (!sl_stream_make_room(s, len + 1 - (s->end - s->parse), CLASSIFY_MAX * 2)) return SL_RWS_FORWARD;
            return SL_RWS_NEED_MORE;
        }
        const char *text;
        size_t n;
        if (query_text(s, type, len, &text, &n)) kind = sl_txn_classify(text, n);
    }
    if (c->deferred_begin) {
        if (type == SL_FE_QUERY && (kind == SL_TXN_COMMIT || kind == SL_TXN_ROLLBACK)) {
            /* an empty transaction ends: nothing to ask a server for */
            consume(s, len + 1);
            free(c->deferred_begin);
            c->deferred_begin = NULL;
            answer(c, kind == SL_TXN_COMMIT ? "COMMIT" : "ROLLBACK", SL_XACT_IDLE);
            return SL_RWS_CONSUMED;
        }
        c->wt.intent = kind == SL_TXN_READ_ONLY ? SL_INTENT_READ : SL_INTENT_WRITE;
        return SL_RWS_FORWARD_NOW;
    }
    switch (kind) {
    case SL_TXN_READ_ONLY: c->wt.intent = SL_INTENT_READ; break;
    case SL_TXN_READ_WRITE: c->wt.intent = SL_INTENT_WRITE; break;
    case SL_TXN_BARE_BEGIN:
        if (type != SL_FE_QUERY || session_ro || sl_route_pool_mode(c->route) != SL_POOL_TRANSACTION) break;
        {
            const char *text;
            size_t n;
            if (!query_text(s, type, len, &text, &n) || !(c->deferred_begin = strndup(text, n))) {
                c->wt.intent = SL_INTENT_WRITE;
                break;
            }
        }
        consume(s, len + 1);
        answer(c, "BEGIN", SL_XACT_BLOCK);
        return SL_RWS_CONSUMED;
    default: break;
    }
    return SL_RWS_FORWARD;
}
