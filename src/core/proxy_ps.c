/* proxy_ps.c - prepared statements in transaction (and statement) mode, on the forwarding path.
 * Client statement names are rewritten to pgsluice-owned names ("SL_<id>"); a statement is
 * prepared once per server and re-prepared transparently on a server that lacks it. Every
 * extended-protocol request is recorded in the server's queue of expected responses, each tagged:
 * forward the server's answer, skip it (answers to pgsluice's own Parse/Close), or synthesize one
 * (ParseComplete for a statement the server already has, CloseComplete for a client Close). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/proxy_ps.h"
#include "proto/msgtype.h"
#include "util/log.h"

#define PS_FULL_MAX (64u * 1024 * 1024)

/* Is message [parse, parse + len + 1) whole in the buffer? 1: yes; 0: not yet (room is made, read
 * more); -1: it cannot be held (longer than max, or out of memory). */
static int whole_message(sl_stream *in, uint32_t len, uint32_t max)
{
    uint32_t have = in->end - in->parse;
    if (have >= len + 1) return 1;
    if (len > max || !sl_stream_make_room(in, len + 1 - have, max + 8)) return -1;
    return 0;
}

/* ---- the queue ---- */

static bool exp_push(sl_server *s, char msg, sl_exp_action a, sl_stmt *st, const char *cname)
{
    if (s->exp_n == s->exp_cap) {
        uint32_t ncap = s->exp_cap ? s->exp_cap * 2 : 16;
        sl_expect *ne = malloc(ncap * sizeof(*ne));
        if (!ne) return false;
        for (uint32_t i = 0; i < s->exp_n; i++) ne[i] = *sl_exp_at(s, i);
        free(s->exp);
        s->exp = ne;
        s->exp_cap = ncap;
        s->exp_head = 0;
    }
    sl_expect *e = &s->exp[(s->exp_head + s->exp_n) & (s->exp_cap - 1)];
    e->msg = msg;
    e->action = (uint8_t)a;
    e->stmt = st;
    if (st) sl_stmt_ref(st);
    e->client_name = cname ? strdup(cname) : NULL;
    s->exp_n++;
    return true;
}

void sl_exp_push_fwd_grow(sl_server *s, char msg) { exp_push(s, msg, SL_EXP_FWD, NULL, NULL); }

static inline void exp_pop(sl_server *s)
{
    sl_expect *e = sl_exp_at(s, 0);
    if (e->stmt) sl_stmt_unref(e->stmt);
    if (e->client_name) free(e->client_name);
    s->exp_head = (s->exp_head + 1) & (s->exp_cap - 1);
    s->exp_n--;
}

void sl_ps_drain_queue(sl_server *s)
{
    while (s->exp_n) exp_pop(s);
}

void sl_ps_server_gone(sl_server *s)
{
    sl_ps_reset_link(s);
    free(s->exp);
    s->exp = NULL;
    s->exp_cap = 0;
    sl_stmt_cache_clear(&s->ps_cache);
}

/* ---- helpers ---- */

/* Move the bytes already marked for forwarding into dst's out queue, so that something can be
 * appended after them. */
static void materialize(sl_stream *src, sl_stream *dst)
{
    if (src->parse > src->pos) {
        sl_pb_bytes(&dst->out, src->buf + src->pos, src->parse - src->pos);
        src->pos = src->parse;
    }
}

static void consume(sl_stream *in, uint32_t n)
{
    in->parse += n;
    in->pos = in->parse;
}

static void send_parse(sl_server *s, const sl_stmt *st)
{
    sl_pktbuf *out = &s->s.out;
    sl_pb_begin(out, SL_FE_PARSE);
    sl_pb_str(out, st->name);
    sl_pb_bytes(out, st->body, st->body_len);
    sl_pb_end(out);
}

static void send_close(sl_server *s, const sl_stmt *st)
{
    sl_pktbuf *out = &s->s.out;
    sl_pb_begin(out, SL_FE_CLOSE);
    sl_pb_u8(out, SL_TARGET_STATEMENT);
    sl_pb_str(out, st->name);
    sl_pb_end(out);
}

/* Make room in the server's cache, closing the least recently used statement. */
static void make_cache_room(sl_server *s, int max)
{
    while (max > 0 && s->ps_cache.n >= (uint32_t)max) {
        sl_stmt *old = sl_stmt_cache_lru(&s->ps_cache);
        if (!old) break;
        send_close(s, old);
        exp_push(s, SL_FE_CLOSE, SL_EXP_SKIP, NULL, NULL);
        sl_stmt_cache_remove(&s->ps_cache, old);
        SL_STATS_RARE_INC(&s->pend, prepare_evictions);
    }
}

/* Ensure the server has st prepared; queues a Parse (answer skipped) if not. */
static void ensure_prepared(sl_server *s, sl_stmt *st, int max)
{
    if (sl_stmt_cache_touch(&s->ps_cache, st)) {
        SL_STATS_RARE_INC(&s->pend, prepare_hits);
        return;
    }
    make_cache_room(s, max);
    send_parse(s, st);
    exp_push(s, SL_FE_PARSE, SL_EXP_SKIP, st, NULL);
    sl_stmt_cache_add(&s->ps_cache, st);
    SL_STATS_RARE_INC(&s->pend, prepares);
}

static bool starts_with_word(const char *q, const char *word)
{
    while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') q++;
    size_t n = strlen(word);
    return strncasecmp(q, word, n) == 0 && (q[n] == 0 || q[n] == ';' || q[n] == ' ' || q[n] == '\n' || q[n] == '\t');
}

/* ---- client -> server ---- */

static sl_ps_result client_parse(sl_client *c, sl_server *s, const uint8_t *body, uint32_t blen, int max)
{
    sl_rd r;
    sl_rd_init(&r, body, blen);
    const char *name = sl_rd_str(&r);
    if (!name) return SL_PS_MALFORMED;
    if (!*name) {
        sl_exp_push_fwd(s, SL_FE_PARSE);
        return SL_PS_FORWARD;
    }
    if (sl_stmt_map_get(&c->ps_map, name)) {
        /* PostgreSQL refuses a name in use (42P05), keeps the old statement and ignores everything
         * up to the next Sync (a transaction block fails). The server is made to fail the same way
         * with a Parse whose text cannot parse (no statement is created), and its error is replaced
         * by PostgreSQL's own for the client's name. */
        materialize(&c->s, &s->s);
        sl_pktbuf *out = &s->s.out;
        sl_pb_begin(out, SL_FE_PARSE);
        sl_pb_str(out, "sl_duplicate_name");
        sl_pb_str(out, "pgsluice: this statement name is already in use");
        sl_pb_u16(out, 0);
        sl_pb_end(out);
        exp_push(s, SL_FE_PARSE, SL_EXP_DUP_NAME, NULL, name);
        return SL_PS_CONSUMED;
    }
    sl_stmt *st = sl_stmt_intern(r.p, (uint32_t)sl_rd_left(&r));
    if (!st) return SL_PS_MALFORMED;
    SL_STATS_RARE_INC(&s->pend, client_parses);
    sl_stmt_ref(st);
    if (!sl_stmt_map_put(&c->ps_map, name, st)) {
        sl_stmt_unref(st);
        sl_stmt_unref(st);
        return SL_PS_MALFORMED;
    }
    materialize(&c->s, &s->s);
    if (sl_stmt_cache_touch(&s->ps_cache, st)) {
        SL_STATS_RARE_INC(&s->pend, prepare_hits);
        exp_push(s, SL_FE_PARSE, SL_EXP_SYNTH_PARSE, NULL, NULL);
    } else {
        make_cache_room(s, max);
        send_parse(s, st);
        exp_push(s, SL_FE_PARSE, SL_EXP_FWD, st, name);
        sl_stmt_cache_add(&s->ps_cache, st);
        SL_STATS_RARE_INC(&s->pend, prepares);
    }
    sl_stmt_unref(st);
    return SL_PS_CONSUMED;
}

static sl_ps_result client_bind(sl_client *c, sl_server *s, const uint8_t *body, uint32_t blen, int max)
{
    sl_rd r;
    sl_rd_init(&r, body, blen);
    const char *portal = sl_rd_str(&r);
    const char *name = sl_rd_str(&r);
    if (!portal || !name) return SL_PS_MALFORMED;
    sl_stmt *st = *name ? sl_stmt_map_get(&c->ps_map, name) : NULL;
    if (!st) {
        sl_exp_push_fwd(s, SL_FE_BIND);
        return SL_PS_FORWARD;
    }
    SL_STATS_RARE_INC(&s->pend, binds);
    materialize(&c->s, &s->s);
    ensure_prepared(s, st, max);
    sl_pktbuf *out = &s->s.out;
    sl_pb_begin(out, SL_FE_BIND);
    sl_pb_str(out, portal);
    sl_pb_str(out, st->name);
    sl_pb_bytes(out, r.p, sl_rd_left(&r));
    sl_pb_end(out);
    sl_exp_push_fwd(s, SL_FE_BIND);
    return SL_PS_CONSUMED;
}

static sl_ps_result client_describe_close(sl_client *c, sl_server *s, char type, const uint8_t *body, uint32_t blen,
                                          int max)
{
    sl_rd r;
    sl_rd_init(&r, body, blen);
    uint8_t what = sl_rd_u8(&r);
    const char *name = sl_rd_str(&r);
    if (!name) return SL_PS_MALFORMED;
    if (what != SL_TARGET_STATEMENT || !*name) {
        sl_exp_push_fwd(s, type);
        return SL_PS_FORWARD;
    }
    if (type == SL_FE_CLOSE) {
        /* the statement may serve other clients on this server: only this client forgets it */
        sl_stmt_map_del(&c->ps_map, name);
        materialize(&c->s, &s->s);
        exp_push(s, SL_FE_CLOSE, SL_EXP_SYNTH_CLOSE, NULL, NULL);
        return SL_PS_CONSUMED;
    }
    sl_stmt *st = sl_stmt_map_get(&c->ps_map, name);
    if (!st) {
        sl_exp_push_fwd(s, SL_FE_DESCRIBE);
        return SL_PS_FORWARD;
    }
    materialize(&c->s, &s->s);
    ensure_prepared(s, st, max);
    sl_pktbuf *out = &s->s.out;
    sl_pb_begin(out, SL_FE_DESCRIBE);
    sl_pb_u8(out, SL_TARGET_STATEMENT);
    sl_pb_str(out, st->name);
    sl_pb_end(out);
    sl_exp_push_fwd(s, SL_FE_DESCRIBE);
    return SL_PS_CONSUMED;
}

sl_ps_result sl_ps_client_msg_full(sl_client *c, sl_server *s, char type, uint32_t len)
{
    sl_stream *in = &c->s;
    int whole = whole_message(in, len, PS_FULL_MAX);
    if (whole <= 0) return whole < 0 ? SL_PS_MALFORMED : SL_PS_NEED_MORE;
    const uint8_t *body = in->buf + in->parse + 5;
    uint32_t blen = len - 4;
    int max = c->s.w->cfg->max_prepared_statements;
    sl_ps_result r;
    switch (type) {
    case SL_FE_PARSE: r = client_parse(c, s, body, blen, max); break;
    case SL_FE_BIND: r = client_bind(c, s, body, blen, max); break;
    case SL_FE_DESCRIBE:
    case SL_FE_CLOSE: r = client_describe_close(c, s, type, body, blen, max); break;
    default: /* SL_FE_QUERY */
        if (blen && (starts_with_word((const char *)body, "DEALLOCATE ALL") ||
                     starts_with_word((const char *)body, "DISCARD ALL")))
            sl_stmt_map_clear(&c->ps_map);
        sl_exp_push_fwd(s, SL_FE_QUERY);
        return SL_PS_FORWARD;
    }
    if (r == SL_PS_CONSUMED) consume(in, len + 1);
    return r;
}

/* ---- server -> client ---- */

static void emit_synth_slow(sl_server *s, sl_client *c)
{
    while (s->exp_n) {
        sl_expect *e = sl_exp_at(s, 0);
        if (e->action != SL_EXP_SYNTH_PARSE && e->action != SL_EXP_SYNTH_CLOSE) break;
        materialize(&s->s, &c->s);
        sl_pb_begin(&c->s.out, e->action == SL_EXP_SYNTH_PARSE ? SL_BE_PARSE_COMPLETE : SL_BE_CLOSE_COMPLETE);
        sl_pb_end(&c->s.out);
        exp_pop(s);
    }
}

void sl_ps_emit_synth(sl_server *s, sl_client *c) { emit_synth_slow(s, c); }

/* The server failed a request: it ignores everything up to the next Sync. */
static void after_error(sl_server *s, sl_client *c)
{
    sl_expect *e = sl_exp_at(s, 0);
    if (e->msg == SL_FE_QUERY || e->msg == SL_FE_FUNCTION_CALL || e->msg == SL_FE_SYNC) return; /* ends at ReadyForQuery */
    do {
        e = sl_exp_at(s, 0);
        if (e->msg == SL_FE_PARSE && e->stmt) {
            sl_stmt_cache_remove(&s->ps_cache, e->stmt);
            if (e->client_name && sl_stmt_map_get(&c->ps_map, e->client_name) == e->stmt)
                sl_stmt_map_del(&c->ps_map, e->client_name);
        }
        exp_pop(s);
    } while (s->exp_n && sl_exp_at(s, 0)->msg != SL_FE_SYNC);
    /* no Sync recorded yet: what the client sends until its Sync is discarded by the server */
    if (!s->exp_n) s->ps_skip_till_sync = true;
}

sl_ps_result sl_ps_server_msg_full(sl_server *s, sl_client *c, char type, uint32_t len)
{
    sl_expect *e = sl_exp_at(s, 0);
    if (e->action >= SL_EXP_SYNTH_PARSE) {
        emit_synth_slow(s, c);
        if (!s->exp_n) return SL_PS_FORWARD;
        e = sl_exp_at(s, 0);
    }
    sl_stream *in = &s->s;
    if (type == SL_BE_COMMAND_COMPLETE && (in->end - in->parse < 6 || in->buf[in->parse + 5] == 'D')) {
        /* a CommandComplete that may say DISCARD ALL or DEALLOCATE ALL: the server forgot everything */
        int whole = whole_message(in, len, 65536);
        if (whole <= 0) return whole < 0 ? SL_PS_FORWARD : SL_PS_NEED_MORE;
        const char *tag = (const char *)in->buf + in->parse + 5;
        if (!strncmp(tag, "DISCARD ALL", 11) || !strncmp(tag, "DEALLOCATE ALL", 14)) sl_stmt_cache_clear(&s->ps_cache);
    }
    if (type == SL_BE_ERROR) {
        if (e->action == SL_EXP_DUP_NAME) {
            int whole = whole_message(in, len, 65536); /* the whole message, to drop it */
            if (whole == 0) return SL_PS_NEED_MORE;
            if (whole < 0) {
                after_error(s, c);
                return SL_PS_FORWARD;
            }
            materialize(in, &c->s);
            consume(in, len + 1);
            sl_pb_error(&c->s.out, false, "42P05", "prepared statement \"%s\" already exists", e->client_name);
            after_error(s, c);
            return SL_PS_CONSUMED;
        }
        after_error(s, c);
        return SL_PS_FORWARD; /* errors always reach the client, even for pgsluice's own Parse */
    }
    bool skip = e->action == SL_EXP_SKIP;
    if (type == SL_BE_PARSE_COMPLETE && e->msg == SL_FE_PARSE && e->stmt) __atomic_store_n(&e->stmt->valid, 1, __ATOMIC_RELAXED);
    if (sl_exp_ends_request(e->msg, type)) exp_pop(s);
    if (!skip) return SL_PS_FORWARD;
    materialize(in, &c->s);
    consume(in, len + 1);
    return SL_PS_CONSUMED;
}



/* ---- answered without a server ---- */


/* A client between transactions sends Parse of a statement some server already accepted, Close of
 * a statement, Flush or Sync: answer it here, so a client that prepares synchronously while every
 * server is busy (pgbench -M prepared) does not need a server for that. */
sl_ps_result sl_ps_client_local_full(sl_client *c, char type, uint32_t len)
{
    sl_stream *in = &c->s;
    if (len > 65536) return SL_PS_FORWARD;
    int whole = whole_message(in, len, 65536);
    if (whole <= 0) return whole < 0 ? SL_PS_MALFORMED : SL_PS_NEED_MORE;
    const uint8_t *body = in->buf + in->parse + 5;
    sl_rd r;
    sl_rd_init(&r, body, len - 4);
    sl_pktbuf *out = &c->s.out;
    if (type == SL_FE_PARSE) {
        const char *name = sl_rd_str(&r);
        if (!name || !*name || sl_stmt_map_get(&c->ps_map, name)) return SL_PS_FORWARD; /* in use: 42P05 */
        sl_stmt *st = sl_stmt_intern(r.p, (uint32_t)sl_rd_left(&r));
        if (!st) return SL_PS_MALFORMED;
        if (!__atomic_load_n(&st->valid, __ATOMIC_RELAXED) || !sl_stmt_map_put(&c->ps_map, name, st)) {
            sl_stmt_unref(st);
            return SL_PS_FORWARD;
        }
        sl_pb_begin(out, SL_BE_PARSE_COMPLETE);
        sl_pb_end(out);
        /* no server to collect it: count in the route directly (between transactions only) */
        sl_pool_stats counted = {.rare = true, .client_parses = 1, .prepare_hits = 1};
        sl_route_add_stats(c->route, &counted);
    } else if (type == SL_FE_CLOSE) {
        uint8_t what = sl_rd_u8(&r);
        const char *name = sl_rd_str(&r);
        if (what != SL_TARGET_STATEMENT || !name) return SL_PS_FORWARD;
        sl_stmt_map_del(&c->ps_map, name);
        sl_pb_begin(out, SL_BE_CLOSE_COMPLETE);
        sl_pb_end(out);
    } else if (type == SL_FE_SYNC) {
        sl_pb_ready(out, SL_XACT_IDLE);
    }
    consume(in, len + 1);
    return SL_PS_CONSUMED;
}
