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
#include "core/proxy.h"
#include "proto/msgtype.h"
#include "util/log.h"

#define PS_FULL_MAX (64u * 1024 * 1024)

/* Is message [parse, parse + len + 1) whole in the buffer? 1: yes; 0: not yet (room is made, read
 * more); -1: it cannot be held (longer than max, or out of memory). */
static int whole_message(sl_stream *in, uint32_t len, uint32_t max)
{
    uint32_t have = in->end - in->parse;
    if (have >= (uint64_t)len + 1) return 1;
    if (len > max || !sl_stream_make_room(in, len + 1 - have, max + 8)) return -1;
    return 0;
}

/* ---- the queue ---- */

static bool exp_push(sl_server *s, char msg, sl_exp_action a, sl_stmt *st, const char *cname)
{
    if (s->exp_n == s->exp_cap) {
        uint32_t ncap = s->exp_cap ? s->exp_cap * 2 : 16;
        sl_expect *ne = calloc(ncap, sizeof(*ne)); /* free slots hold no pointers (sl_exp_push_fwd) */
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
    e->discarded = NULL;
    e->name_gone = false;
    if (msg == SL_FE_PARSE && st) s->ps_parses_queued++;
    s->exp_n++;
    return true;
}

void sl_exp_push_fwd_grow(sl_server *s, char msg) { exp_push(s, msg, SL_EXP_FWD, NULL, NULL); }

static inline void exp_pop(sl_server *s)
{
    sl_expect *e = sl_exp_at(s, 0);
    if (e->msg == SL_FE_PARSE && e->stmt) s->ps_parses_queued--;
    if (e->stmt) sl_stmt_unref(e->stmt);
    if (e->client_name) free(e->client_name);
    if (e->discarded) {
        sl_stmt_map_clear(e->discarded);
        free(e->discarded);
    }
    /* a free slot holds no pointers and no mark: sl_exp_push_fwd writes only the request and action */
    e->stmt = NULL;
    e->client_name = NULL;
    e->discarded = NULL;
    e->name_gone = false;
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

static void send_close(sl_server *s, const sl_stmt *st)
{
    sl_pktbuf *out = &s->s.out;
    sl_pb_begin(out, SL_FE_CLOSE);
    sl_pb_u8(out, SL_TARGET_STATEMENT);
    sl_pb_str(out, st->name);
    sl_pb_end(out);
}

/* Prepare st on the server: a Close of its name first (answer skipped; closing a name the server
 * lacks is no error), so the Parse works whatever the server has: pgsluice's own Close of that
 * name may have been skipped after an error earlier in a batch. The Parse's answer is skipped, or
 * forwarded to the client whose Parse this is (action FWD, cname). */
static void prepare_on_server(sl_server *s, sl_stmt *st, sl_exp_action action, const char *cname)
{
    send_close(s, st);
    exp_push(s, SL_FE_CLOSE, SL_EXP_SKIP, NULL, NULL);
    sl_pktbuf *out = &s->s.out;
    sl_pb_begin(out, SL_FE_PARSE);
    sl_pb_str(out, st->name);
    sl_pb_bytes(out, st->body, st->body_len);
    sl_pb_end(out);
    exp_push(s, SL_FE_PARSE, action, st, cname);
    sl_stmt_cache_add(&s->ps_cache, st);
    SL_STATS_RARE_INC(&s->pend, prepares);
}

/* Is a Parse of st still unanswered in an earlier batch (a Sync queued after it)? That batch may
 * fail before it, and the server then skips it: what is sent now for the client's name cname
 * cannot count on it. Except the client's own Parse of that very name: whether the name exists
 * is what that Parse decides, on PostgreSQL too, so what follows is sent as it is. */
static bool parse_in_doubt(sl_server *s, const sl_stmt *st, const char *cname)
{
    if (!s->ps_parses_queued) return false;
    bool queued = false;
    for (uint32_t i = 0; i < s->exp_n; i++) {
        const sl_expect *e = sl_exp_at(s, i);
        if (e->msg == SL_FE_PARSE && e->stmt == st)
            queued = !(e->action == SL_EXP_FWD && e->client_name && cname && !strcmp(e->client_name, cname));
        else if (queued && e->msg == SL_FE_SYNC)
            return true;
    }
    return false;
}

/* Could a request sent now run in a failed transaction? The server is in one, or an earlier
 * batch or query is still queued (whatever it does, even open a block and fail, happens first). */
static bool failed_xact_possible(sl_server *s)
{
    if (s->xact == SL_XACT_FAILED) return true;
    for (uint32_t i = 0; i < s->exp_n; i++) {
        char m = sl_exp_at(s, i)->msg;
        if (m == SL_FE_SYNC || m == SL_FE_QUERY) return true;
    }
    return false;
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

/* Ensure the server has st (the client's cname, or NULL) prepared; queues a Parse (answer skipped)
 * if not. In doubt (parse_in_doubt) it is prepared again. When that Parse, or one of a statement
 * no server has accepted yet, fails, the first Parse of it failed too (or will): the client
 * learns what PostgreSQL would say, that its statement does not exist (SL_EXP_DOUBT). */
static void ensure_prepared(sl_server *s, sl_stmt *st, int max, const char *cname)
{
    bool cached = sl_stmt_cache_touch(&s->ps_cache, st);
    if (cached && !parse_in_doubt(s, st, cname)) {
        SL_STATS_RARE_INC(&s->pend, prepare_hits);
        return;
    }
    if (!cached) make_cache_room(s, max);
    bool doubt = cname && (cached || !__atomic_load_n(&st->valid, __ATOMIC_RELAXED));
    prepare_on_server(s, st, doubt ? SL_EXP_DOUBT : SL_EXP_SKIP, doubt ? cname : NULL);
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
    sl_stmt *old = sl_stmt_map_get(&c->ps_map, name);
    if (old) {
        /* PostgreSQL refuses a name in use (42P05) once the text has passed its checks (syntax,
         * failed transaction, ...), keeps the old statement and ignores everything up to the next
         * Sync. The server is made to do exactly that: the client's text is parsed under the server
         * name of the old statement, which it has (prepared first if need be). A 42P05 is reported
         * for the client's name, an earlier error as the server says it. In a transaction known to
         * have failed (nothing queued since the ReadyForQuery that said so) the server refuses the
         * Parse before it looks at the name, whatever it holds: preparing the old statement there
         * would fail first (25P02) and hide the text's own error. */
        materialize(&c->s, &s->s);
        if (s->xact != SL_XACT_FAILED || s->exp_n) ensure_prepared(s, old, max, NULL);
        sl_pktbuf *out = &s->s.out;
        sl_pb_begin(out, SL_FE_PARSE);
        sl_pb_str(out, old->name);
        sl_pb_bytes(out, r.p, sl_rd_left(&r));
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
    bool cached = sl_stmt_cache_touch(&s->ps_cache, st);
    /* answered here when the server has the statement, unless the Parse may run in a failed
     * transaction, where PostgreSQL refuses it (25P02): then the server answers */
    if (cached && !failed_xact_possible(s) && !parse_in_doubt(s, st, name)) {
        SL_STATS_RARE_INC(&s->pend, prepare_hits);
        exp_push(s, SL_FE_PARSE, SL_EXP_SYNTH_PARSE, NULL, name); /* the name: to forget if its batch fails */
    } else {
        if (!cached) make_cache_room(s, max);
        prepare_on_server(s, st, SL_EXP_FWD, name);
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
    ensure_prepared(s, st, max, name);
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
        /* the statement may serve other clients on this server: only this client forgets it (and
         * gets it back if the batch fails before this Close, see after_error) */
        sl_stmt *st = sl_stmt_map_get(&c->ps_map, name);
        if (st) sl_stmt_ref(st);
        sl_stmt_map_del(&c->ps_map, name);
        materialize(&c->s, &s->s);
        exp_push(s, SL_FE_CLOSE, SL_EXP_SYNTH_CLOSE, st, st ? name : NULL);
        if (st) sl_stmt_unref(st);
        return SL_PS_CONSUMED;
    }
    sl_stmt *st = sl_stmt_map_get(&c->ps_map, name);
    if (!st) {
        sl_exp_push_fwd(s, SL_FE_DESCRIBE);
        return SL_PS_FORWARD;
    }
    materialize(&c->s, &s->s);
    ensure_prepared(s, st, max, name);
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
    /* what follows may change the client's names: should this server turn out dead before it read
     * the request (s->resend_ok, proxy.c), sl_ps_undo_request takes the changes back and the request
     * is rewritten afresh for the next server */
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
                     starts_with_word((const char *)body, "DISCARD ALL"))) {
            /* the names are forgotten now (what the client sends next may use them again) but kept
             * until the server confirms: the command can fail and leave them (DISCARD ALL inside a
             * transaction block, anything in a failed one) */
            sl_stmt_map *old = malloc(sizeof(*old));
            if (!old || !exp_push(s, SL_FE_QUERY, SL_EXP_DISCARD, NULL, NULL)) {
                free(old);
                return SL_PS_MALFORMED;
            }
            *old = c->ps_map;
            memset(&c->ps_map, 0, sizeof(c->ps_map));
            sl_exp_at(s, s->exp_n - 1)->discarded = old;
            /* what the client pipelines behind it must not count on the server's statements either
             * (if the command fails, they are prepared again: a Close comes before each Parse) */
            sl_stmt_cache_clear(&s->ps_cache);
            return SL_PS_FORWARD;
        }
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

/* Forget name in m if it still means st (or anything, st NULL). */
static void forget_name(sl_stmt_map *m, const char *name, const sl_stmt *st)
{
    sl_stmt *cur = sl_stmt_map_get(m, name);
    if (cur && (!st || cur == st)) sl_stmt_map_del(m, name);
}

/* Give name back in m (meaning st) unless it means something else now. */
static void give_back_name(sl_stmt_map *m, const char *name, sl_stmt *st)
{
    if (sl_stmt_map_get(m, name)) return;
    sl_stmt_ref(st);
    if (!sl_stmt_map_put(m, name, st)) sl_stmt_unref(st);
}

/* The client's names as they stood after the queue's first `from` requests (for undoing those):
 * what the first DISCARD ALL queued behind them set aside, or, with none, the client's names now. */
static sl_stmt_map *names_after(sl_server *s, sl_client *c, uint32_t from)
{
    for (uint32_t j = from; j < s->exp_n; j++)
        if (sl_exp_at(s, j)->discarded) return sl_exp_at(s, j)->discarded;
    return &c->ps_map;
}

/* The server failed a request: it ignores everything up to the next Sync. What pgsluice changed
 * in the client's names when it saw those requests is undone, latest first, as they never happen:
 * a Parse's name (forwarded or answered by pgsluice) is forgotten, a Close's name and a DISCARD
 * ALL's names are given back. Given back where the names stood right after those requests: in
 * the client's names, unless a DISCARD ALL queued in a later batch set them aside already; then in
 * what that DISCARD ALL set aside (the first such one), and nowhere else. The client's names now
 * are those after it, and a later one's set aside came after it too: a name closed by a skipped
 * Close and then discarded stays gone, and a failing DISCARD ALL gives back no name whose Parse
 * failed. */
/* The client's Parse of name (queue entry i) failed or was skipped: pgsluice's own Parses queued
 * behind it for a Bind/Describe of that name, up to the client's next Parse of it, are for a
 * statement PostgreSQL does not have, and a Close of the name there closes nothing: skipped in
 * turn, it gives nothing back. */
static void doubts_lose_name(sl_server *s, uint32_t i, const char *name)
{
    for (uint32_t j = i + 1; j < s->exp_n; j++) {
        sl_expect *e = sl_exp_at(s, j);
        if (!e->client_name || strcmp(e->client_name, name) != 0) continue;
        if (e->action == SL_EXP_DOUBT || e->action == SL_EXP_SYNTH_CLOSE) e->name_gone = true;
        else if (e->msg == SL_FE_PARSE && (e->action == SL_EXP_FWD || e->action == SL_EXP_SYNTH_PARSE)) break;
    }
}

static void undo_skipped(sl_server *s, sl_client *c, uint32_t n)
{
    sl_stmt_map *names = names_after(s, c, n);
    for (uint32_t i = n; i-- > 0;) {
        sl_expect *e = sl_exp_at(s, i);
        bool parse = (e->msg == SL_FE_PARSE && e->stmt && e->action == SL_EXP_FWD) ||
                     e->action == SL_EXP_SYNTH_PARSE;
        if (parse && e->client_name) doubts_lose_name(s, i, e->client_name);
        if (e->msg == SL_FE_PARSE && e->stmt && e->action == SL_EXP_FWD && e->client_name)
            forget_name(names, e->client_name, e->stmt);
        else if (e->action == SL_EXP_SYNTH_PARSE && e->client_name)
            forget_name(names, e->client_name, NULL);
        else if (e->action == SL_EXP_SYNTH_CLOSE && e->client_name) {
            if (!e->name_gone) give_back_name(names, e->client_name, e->stmt);
        }
        else if (e->discarded)
            sl_stmt_map_restore(names, e->discarded);
    }
}

void sl_ps_undo_request(sl_server *s, sl_client *c)
{
    /* nothing of the queue happened: the same undoing as for requests a server skips after an
     * error; the server's own records (its statements, the queue) go with it (sl_ps_server_gone) */
    undo_skipped(s, c, s->exp_n);
}

static void after_error(sl_server *s, sl_client *c)
{
    sl_expect *e = sl_exp_at(s, 0);
    if (e->msg == SL_FE_QUERY || e->msg == SL_FE_FUNCTION_CALL || e->msg == SL_FE_SYNC) return; /* ends at ReadyForQuery */
    uint32_t n = 1; /* the failed request and what the server skips after it */
    while (n < s->exp_n && sl_exp_at(s, n)->msg != SL_FE_SYNC) n++;
    undo_skipped(s, c, n);
    while (n--) {
        e = sl_exp_at(s, 0);
        if (e->msg == SL_FE_PARSE && e->stmt) sl_stmt_cache_remove(&s->ps_cache, e->stmt);
        exp_pop(s);
    }
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
        if (!strncmp(tag, "DISCARD ALL", 11) || !strncmp(tag, "DEALLOCATE ALL", 14)) {
            sl_stmt_cache_clear(&s->ps_cache);
            if (e->discarded) { /* it happened: the names set aside are gone for good */
                sl_stmt_map_clear(e->discarded);
                free(e->discarded);
                e->discarded = NULL;
            }
        }
    }
    if (type == SL_BE_ERROR) {
        if (e->action == SL_EXP_DUP_NAME) {
            int whole = whole_message(in, len, 65536); /* the whole message, to replace it */
            if (whole == 0) return SL_PS_NEED_MORE;
            const char *code = whole > 0 ? sl_error_field(in->buf + in->parse + 5, len - 4, SL_ERRF_CODE) : NULL;
            if (code && !strcmp(code, "42P05")) { /* it names the server's statement: say the client's */
                materialize(in, &c->s);
                consume(in, len + 1);
                sl_pb_error(&c->s.out, false, "42P05", "prepared statement \"%s\" already exists", e->client_name);
                after_error(s, c);
                return SL_PS_CONSUMED;
            }
            after_error(s, c);
            return SL_PS_FORWARD; /* the text failed first, as PostgreSQL reports it */
        }
        if (e->action == SL_EXP_DOUBT) {
            int whole = whole_message(in, len, 65536);
            if (whole == 0) return SL_PS_NEED_MORE;
            const char *code = whole > 0 ? sl_error_field(in->buf + in->parse + 5, len - 4, SL_ERRF_CODE) : NULL;
            /* not "in a failed transaction": the statement's own error; or "in a failed transaction",
             * but the client's own Parse of the name, queued before, failed or was skipped: PostgreSQL
             * looks the statement up before it refuses the failed transaction */
            if (code && (strcmp(code, "25P02") != 0 || e->name_gone)) {
                materialize(in, &c->s);
                consume(in, len + 1);
                sl_pb_error(&c->s.out, false, "26000", "prepared statement \"%s\" does not exist", e->client_name);
                after_error(s, c);
                return SL_PS_CONSUMED;
            }
        }
        after_error(s, c);
        return SL_PS_FORWARD; /* errors always reach the client, even for pgsluice's own Parse */
    }
    bool skip = e->action == SL_EXP_SKIP || e->action == SL_EXP_DOUBT;
    if (skip) {
        /* the answer to pgsluice's own Parse/Close is dropped, once whole in the buffer: a
         * ParseComplete/CloseComplete is, but a server may send anything here */
        int whole = whole_message(in, len, 65536);
        if (whole == 0) return SL_PS_NEED_MORE;
        if (whole < 0) skip = false; /* too long to hold: passed on like any answer */
    }
    if (type == SL_BE_PARSE_COMPLETE && e->msg == SL_FE_PARSE && e->stmt) __atomic_store_n(&e->stmt->valid, 1, __ATOMIC_RELAXED);
    if (type == SL_BE_PARSE_COMPLETE && e->action == SL_EXP_DUP_NAME) {
        /* the server lacked the old statement after all (a client deallocated it with SQL): it now
         * holds the client's text under that name, so pgsluice prepares it again when next used */
        sl_stmt *old = sl_stmt_map_get(&c->ps_map, e->client_name);
        if (old) sl_stmt_cache_remove(&s->ps_cache, old);
    }
    if (sl_exp_ends_request(e->msg, type)) {
        /* a DISCARD ALL / DEALLOCATE ALL that did not happen: the client keeps its names (unless a
         * later one, queued behind it, set them aside in turn) */
        if (e->discarded) sl_stmt_map_restore(names_after(s, c, 1), e->discarded);
        exp_pop(s);
    }
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
        /* the unnamed statement lives on the server that parsed it: the server closes it */
        if (what != SL_TARGET_STATEMENT || !name || !*name) return SL_PS_FORWARD;
        sl_stmt_map_del(&c->ps_map, name);
        sl_pb_begin(out, SL_BE_CLOSE_COMPLETE);
        sl_pb_end(out);
    } else if (type == SL_FE_SYNC) {
        sl_pb_ready(out, SL_XACT_IDLE);
    }
    consume(in, len + 1);
    return SL_PS_CONSUMED;
}
