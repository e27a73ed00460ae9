/* listen_extended.c - LISTEN / UNLISTEN sent through the extended protocol, served by the fan-out.
 *
 * Drivers that prepare every statement send LISTEN as Parse / Bind / Execute / Sync: asyncpg's
 * add_listener prepares it (Parse, Describe statement, Flush; named with its statement cache, else
 * the unnamed statement), then runs it (Bind, Execute, Sync); libpq's PQsendQueryParams,
 * PQsendPrepare, PQsendDescribePrepared and PQsendQueryPrepared (psycopg with binary=True,
 * prepare=True or in a pipeline) do the same with the unnamed or a named statement. A run may start
 * with a Parse, a Bind, or a Describe of a statement prepared here.
 *
 * A client between transactions whose messages up to a Sync (or up to a Flush, when they only
 * prepare and describe: asyncpg's Parse, Describe, Flush) are only such a run about one
 * statement that is LISTEN ch, UNLISTEN ch or UNLISTEN * is answered here, with what PostgreSQL
 * would send (ParseComplete; ParameterDescription and NoData for Describe of the statement, NoData
 * for Describe of the portal; BindComplete; CommandComplete; ReadyForQuery), and its LISTEN goes to
 * the fan-out (listen_fanout.c): the CommandComplete "LISTEN" and ReadyForQuery are written once the
 * listener has run it. A named statement is kept in the client's prepared-statement names
 * (proxy_ps.c) like any other, so a later Bind of it in another run finds it (outside a transaction:
 * here again; inside one: on the server, where session_state.c pins the client as for any LISTEN, or
 * refuses it under pin_session_state = error).
 *
 * Anything else goes the usual way (and a LISTEN there pins the client's server): another statement
 * in the run, parameters, a named portal, Close, a second Parse, Bind or Execute, a message after the
 * Execute other than Flush, a run longer than RUN_MAX, and a run whose Sync has not arrived when a
 * Flush was sent (the client may be waiting for answers before it sends the rest). */
#include "core/listen_extended.h"

#include <string.h>

#include "core/client.h"
#include "core/listen_fanout_int.h"
#include "core/prepare.h"
#include "core/proxy_ps.h"
#include "proto/msgtype.h"
#include "proto/pkt.h"

#define RUN_MAX 16384u

/* What one run from the client's read position to its Sync is about. */
typedef struct ext_run {
    bool known;          /* the statement below is set */
    bool from_parse;     /* defined by the run's Parse (else: an earlier named Parse, in ps_map) */
    const char *name;    /* the statement's client name ("": unnamed), in the input buffer */
    const uint8_t *body; /* its Parse body after the name */
    uint32_t body_len;
    sl_stmt_info info;   /* what its text is */
    bool parsed, bound, executed;
    uint32_t total;      /* bytes of the run, its Sync included (RUN_OK) */
    uint32_t need;       /* more bytes wanted first (RUN_MORE) */
} ext_run;

typedef enum { RUN_NO, RUN_MORE, RUN_OK } run_scan;

/* A Parse body after the name (text, NUL, parameter count, types): a LISTEN / UNLISTEN alone,
 * without parameter types? */
static bool listen_body(const uint8_t *body, uint32_t len, sl_stmt_info *info)
{
    sl_rd r;
    sl_rd_init(&r, body, len);
    const char *text = sl_rd_str(&r);
    uint16_t ntypes = sl_rd_u16(&r);
    if (!text || r.failed || ntypes != 0 || sl_rd_left(&r) != 0) return false;
    return sl_fanout_listen_text(text, strlen(text), info);
}

/* The run refers to statement name: the one it is about already, or a named one the client
 * prepared earlier whose text is a LISTEN / UNLISTEN. */
static bool stmt_ref(const sl_client *c, ext_run *run, const char *name)
{
    if (run->known) return !strcmp(run->name, name);
    const uint8_t *body = NULL;
    uint32_t blen = 0;
    if (!name[0]) { /* the unnamed one: only if parsed here, nothing having gone to a server since */
        body = sl_fanout_unnamed_get(c, &blen);
    } else if (sl_ps_enabled_for(c)) {
        const sl_stmt *st = sl_stmt_map_get(&c->ps_map, name);
        if (st) {
            body = st->body;
            blen = st->body_len;
        }
    }
    if (!body || !listen_body(body, blen, &run->info)) return false;
    run->known = true;
    run->name = name;
    run->body = body;
    run->body_len = blen;
    return true;
}

static run_scan scan(const sl_client *c, ext_run *run)
{
    const sl_stream *in = &c->s;
    uint32_t off = in->parse;
    bool flush = false;
    for (;;) {
        uint32_t have = in->end - off;
        if (have < 5) {
            run->need = 5 - have;
            break;
        }
        const uint8_t *m = in->buf + off;
        char type = (char)m[0];
        uint32_t len = sl_get_u32(m + 1);
        if (len < 4 || (uint64_t)(off - in->parse) + len + 1 > RUN_MAX) return RUN_NO;
        if (have < len + 1) {
            run->need = len + 1 - have;
            break;
        }
        if (run->executed && type != SL_FE_FLUSH && type != SL_FE_SYNC) return RUN_NO;
        sl_rd r;
        sl_rd_init(&r, m + 5, len - 4);
        switch (type) {
        case SL_FE_PARSE: {
            if (run->parsed || run->known) return RUN_NO;
            const char *name = sl_rd_str(&r);
            if (!name || r.failed) return RUN_NO;
            /* a name in use: PostgreSQL's error comes from the usual path */
            if (name[0] && (!sl_ps_enabled_for(c) || sl_stmt_map_get(&c->ps_map, name))) return RUN_NO;
            if (!listen_body(r.p, (uint32_t)sl_rd_left(&r), &run->info)) return RUN_NO;
            run->known = run->from_parse = run->parsed = true;
            run->name = name;
            run->body = r.p;
            run->body_len = (uint32_t)sl_rd_left(&r);
            break;
        }
        case SL_FE_BIND: {
            const char *portal = sl_rd_str(&r), *stmt = sl_rd_str(&r);
            if (run->bound || !portal || !stmt || portal[0] || !stmt_ref(c, run, stmt)) return RUN_NO;
            uint16_t nfmt = sl_rd_u16(&r);
            (void)sl_rd_bytes(&r, 2u * nfmt);
            uint16_t nparams = sl_rd_u16(&r);
            uint16_t nres = sl_rd_u16(&r);
            (void)sl_rd_bytes(&r, 2u * nres);
            /* no parameters (one format code at most, as PostgreSQL checks); one result format at
             * most (the statement has no columns) */
            if (r.failed || nfmt > 1 || nparams != 0 || nres > 1 || sl_rd_left(&r) != 0) return RUN_NO;
            run->bound = true;
            break;
        }
        case SL_FE_DESCRIBE: {
            uint8_t what = sl_rd_u8(&r);
            const char *name = sl_rd_str(&r);
            if (!name || r.failed || sl_rd_left(&r) != 0) return RUN_NO;
            if (what == SL_TARGET_STATEMENT) {
                if (!stmt_ref(c, run, name)) return RUN_NO;
            } else if (what != SL_TARGET_PORTAL || name[0] || !run->bound) {
                return RUN_NO;
            }
            break;
        }
        case SL_FE_EXECUTE: {
            const char *portal = sl_rd_str(&r);
            (void)sl_rd_u32(&r);
            if (!portal || r.failed || portal[0] || !run->bound) return RUN_NO;
            run->executed = true;
            break;
        }
        case SL_FE_FLUSH:
            /* asyncpg prepares with Parse, Describe, Flush and waits for the answers: the messages up
             * to a Flush that neither bind nor run anything are answered on their own */
            if (run->known && !run->bound) {
                run->total = off + len + 1 - in->parse;
                return RUN_OK;
            }
            flush = true;
            break;
        case SL_FE_SYNC:
            if (!run->known) return RUN_NO;
            run->total = off + len + 1 - in->parse;
            return RUN_OK;
        default: return RUN_NO;
        }
        off += len + 1;
    }
    /* the Sync has not come: wait for it, unless the client asked for answers so far (it may wait) */
    if (flush || (uint64_t)(in->end - in->parse) + run->need > RUN_MAX) return RUN_NO;
    return RUN_MORE;
}

/* The first message's first bytes: could it start such a run? (most transactions: no, at once) */
static bool may_start_run(const sl_client *c, char type, uint32_t len)
{
    const sl_stream *in = &c->s;
    const char *m = (const char *)in->buf + in->parse + 5;
    uint32_t avail = in->end - in->parse - 5, body = len - 4;
    if (avail > body) avail = body;
    if (type == SL_FE_PARSE) {
        const char *z = memchr(m, 0, avail);
        if (!z) return true; /* not read yet: the scan decides */
        if (z != m && !sl_ps_enabled_for(c)) return false;
        for (const char *p = z + 1; p < m + avail; p++) {
            if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') continue;
            return *p == 'l' || *p == 'L' || *p == 'u' || *p == 'U';
        }
        return true;
    }
    /* Bind of the unnamed portal (Describe of a statement) to a statement parsed here, or to a
     * named statement the client prepared, whose text starts so */
    if (avail < 2 || (type == SL_FE_BIND && m[0]) || (type == SL_FE_DESCRIBE && m[0] != SL_TARGET_STATEMENT))
        return false;
    const uint8_t *sb = NULL;
    uint32_t slen = 0;
    if (!m[1]) {
        sb = sl_fanout_unnamed_get(c, &slen);
    } else {
        if (!sl_ps_enabled_for(c)) return false;
        const char *z = memchr(m + 1, 0, avail - 1);
        if (!z) return true;
        const sl_stmt *st = sl_stmt_map_get(&c->ps_map, m + 1);
        if (st) {
            sb = st->body;
            slen = st->body_len;
        }
    }
    if (!sb) return false;
    for (uint32_t i = 0; i < slen; i++) {
        uint8_t b = sb[i];
        if (b == ' ' || b == '\t' || b == '\n' || b == '\r') continue;
        return b == 'l' || b == 'L' || b == 'u' || b == 'U';
    }
    return false;
}

sl_fanout_result sl_fanout_client_extended_full(sl_client *c, char type, uint32_t len)
{
    if ((type != SL_FE_PARSE && type != SL_FE_BIND && type != SL_FE_DESCRIBE) || len < 4 || len > RUN_MAX ||
        !sl_fanout_serves(c) ||
        !may_start_run(c, type, len))
        return SL_FANOUT_NO;
    sl_stream *in = &c->s;
    ext_run run = {0};
    run_scan rs = scan(c, &run);
    if (rs == RUN_NO) return SL_FANOUT_NO;
    if (rs == RUN_MORE) return sl_stream_make_room(in, run.need, RUN_MAX + 8) ? SL_FANOUT_NEED_MORE : SL_FANOUT_NO;

    const sl_stmt_info *info = &run.info;
    bool named_parse = run.from_parse && run.name[0];
    if (named_parse) { /* kept among the client's prepared statements */
        sl_stmt *st = sl_stmt_intern(run.body, run.body_len);
        if (!st) return SL_FANOUT_NO;
        if (!sl_stmt_map_put(&c->ps_map, run.name, st)) {
            sl_stmt_unref(st);
            return SL_FANOUT_NO;
        }
    }
    if (run.from_parse && !run.name[0] && !sl_fanout_unnamed_set(c, run.body, run.body_len)) return SL_FANOUT_NO;
    bool waits = false;
    if (run.executed && info->kind == SL_SK_LISTEN && !sl_fanout_has(c, info->name)) {
        if (!sl_fanout_start_listen(c, info->name)) {
            if (named_parse) sl_stmt_map_del(&c->ps_map, run.name);
            return SL_FANOUT_NO;
        }
        waits = true;
    }
    /* the answers, in the run's order */
    sl_pktbuf *out = &c->s.out;
    const char *tag = info->kind == SL_SK_LISTEN ? "LISTEN" : "UNLISTEN";
    for (uint32_t off = in->parse, end = in->parse + run.total; off < end;) {
        const uint8_t *m = in->buf + off;
        char t = (char)m[0];
        uint32_t mlen = sl_get_u32(m + 1);
        off += mlen + 1;
        if (t == SL_FE_PARSE) {
            sl_pb_begin(out, SL_BE_PARSE_COMPLETE);
            sl_pb_end(out);
        } else if (t == SL_FE_BIND) {
            sl_pb_begin(out, SL_BE_BIND_COMPLETE);
            sl_pb_end(out);
        } else if (t == SL_FE_DESCRIBE) {
            if (m[5] == SL_TARGET_STATEMENT) { /* no parameters, and no rows */
                sl_pb_begin(out, SL_BE_PARAM_DESCRIPTION);
                sl_pb_u16(out, 0);
                sl_pb_end(out);
            }
            sl_pb_begin(out, SL_BE_NO_DATA);
            sl_pb_end(out);
        } else if (t == SL_FE_EXECUTE) {
            if (waits) break; /* CommandComplete and ReadyForQuery come with the listener's answer */
            if (info->kind == SL_SK_UNLISTEN)
                sl_fanout_client_unlisten(c, !strcmp(info->name, "*") ? NULL : info->name);
            sl_pb_command_complete(out, tag);
        } else if (t == SL_FE_SYNC) {
            sl_pb_ready(out, SL_XACT_IDLE);
        }
    }
    in->parse += run.total;
    in->pos = in->parse;
    return waits ? SL_FANOUT_WAIT : SL_FANOUT_DONE;
}
