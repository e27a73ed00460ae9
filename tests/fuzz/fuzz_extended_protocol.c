/* fuzz_extended_protocol.c - transaction pooling's forwarding path: prepared statements
 * (core/proxy_ps.c, prepare.c) and session-state tracking (core/session_state.c/.h: SET / RESET
 * followed, pins, the queue of expected answers), as proxy.c runs them. A client's
 * Parse/Bind/Describe/Execute/Close/Sync/Flush and simple queries go through proxy.c's own scan
 * loops and release decision (core/scan.h: sl_scan_client and sl_scan_server with their one-pass
 * fast paths, sl_scan_can_release, with a hook that watches each client message) on a fake client and
 * two fake servers, with the answers of model PostgreSQL servers (pg_model.h) flowing back. Around
 * them, this file's copies (keep them in step): client.c's idle-client path (sl_client_idle_input;
 * its LISTEN fan-out and read_write_split branches do nothing here: listen_fanout is off, no
 * read_write_split), proxy.c's flushing, sl_proxy_link / sl_proxy_start (sess_active, and
 * sl_sess_link_end at the link's start), sl_proxy_unlink_release (sl_sess_link_end, then
 * server_setup.c's DISCARD ALL when a pinned client left state: the model reset, the server's
 * statement cache cleared, the settings it does not report forgotten), after_release, and
 * between a pinned client's transactions server_setup.c's advisory-lock question with
 * sl_proxy_resume. server_setup.c's SET of the client's tracked settings on a server that differs
 * is done on the model directly (server_check_query is not modelled). No sockets: "sending"
 * appends to a byte string.
 *
 * The input: a first byte (bit 0: max_prepared_statements 100, else 2; bit 1: session-state
 * tracking on, as production has it in transaction mode: links get sess_active and the client the
 * c->sess session_state.c makes; bits 2-3: pin_session_state off (1), error (2), else on), then a
 * list of operations (see the switch in LLVMFuzzerTestOneInput): the client sends a message (built
 * from a few statement names and texts: with the tracking, also SET / RESET of search_path (followed)
 * and application_name (reported), of work_mem (not followed: pins), RESET ALL, SAVEPOINT / ROLLBACK
 * TO, CREATE TEMP TABLE, DISCARD TEMP, SQL PREPARE / EXECUTE / DEALLOCATE, advisory locks, LISTEN /
 * UNLISTEN, a SET then an error in one query; BEGIN / COMMIT / ROLLBACK also through Parse), bytes
 * reach pgsluice (all or some), a server answers (all or some of what it owes), the next server to
 * link is chosen, an idle server is replaced by a fresh one (empty statement cache, default
 * settings), or raw bytes arrive from the client or a server. Inputs without bit 1 (the first
 * layout) keep their meaning: the tracking off and the first texts only.
 *
 * Checks:
 *  - differential: the answers the client gets through pgsluice are, message for message, what
 *    a model server spoken to directly answers to the same bytes (errors compared by SQLSTATE;
 *    ParameterStatus among themselves, as a client accepts them anywhere). So a statement is prepared before use on whichever server the client lands on, pgsluice's
 *    own Parse/Close answers never reach the client, synthesized answers come in order, and
 *    errors skip to Sync as PostgreSQL does; with the tracking, the client's temporary table, SQL
 *    prepared statement and settings (SHOW search_path, ParameterStatus) are where it looks for them
 *    whichever server it gets. Under pin_session_state = error the direct model refuses (0A000)
 *    what pgsluice refuses (the texts that pin, in a Query or a Parse). Raw bytes (any op 6/7) turn
 *    this check off, since pgsluice may refuse what a server would have answered;
 *  - with the tracking, after every operation: a pinned client has its server (never linked to
 *    another); pin_session_state = off pins nothing; once everything the client sent was answered,
 *    the queue of expected answers is empty (c->sess->qn 0), pgsluice's transaction status is the
 *    server's, and the client's search_path and application_name as pgsluice keeps them are what
 *    PostgreSQL spoken to directly committed and reported (unless pinned for a setting it does not
 *    follow); sl_sess_link_end leaves nothing expected; a server let go holds none of the client's
 *    state (temporary table, SQL prepared statement, advisory lock, LISTEN, untracked setting);
 *  - no sanitizer report, no leak, and once the client and servers are gone no statement left in
 *    the registry, no interned string (settings, names) and no change in the count of pinned
 *    clients.
 * Known divergences, not checked (see tests/fuzz/README.md):
 *  - a Parse of a name whose earlier Parse has not been answered yet (pipelined): pgsluice decides
 *    "name in use" (42P05) when it sees the second Parse; PostgreSQL decides when it runs it,
 *    after the first failed or not;
 *  - the unnamed statement used (Bind, Describe) on a later link than the one that parsed it, or
 *    in a later batch (the link may have changed, or its Parse been skipped): it lives on the
 *    server that parsed it, as with PgBouncer;
 *  - messages pipelined behind a DISCARD ALL / DEALLOCATE ALL query before its ReadyForQuery:
 *    pgsluice forgets the client's names when it sees the query and gives them back if it fails,
 *    so what was sent in between used the names as if it had worked (libpq and the drivers wait
 *    for ReadyForQuery after a simple query);
 *  - a name the client closed, used (or parsed, or closed) again by a batch pipelined behind the
 *    Close, when PostgreSQL skipped the Close (an earlier message of its batch failed): pgsluice
 *    already forgot the name when it sent the later batch, PostgreSQL still has the statement;
 *  - a Parse of a name in use, pipelined behind requests not answered yet, in a failed transaction:
 *    pgsluice cannot know whether those end the transaction (an Execute of ROLLBACK), so it prepares
 *    the old statement first where the server may lack it, and that Parse's 25P02 comes before the
 *    text's own error (a syntax error: 42601 on PostgreSQL);
 *  - a name whose Parse PostgreSQL skipped (an earlier message of its batch failed) used by a
 *    batch pipelined behind it: the server may have the statement under another name of the
 *    client, so the later Bind/Describe works (or fails otherwise) where PostgreSQL answers 26000.
 *    The comparison stops there (the direct model notes the case);
 *  - in a failed transaction, a Bind with the wrong parameter count (08P01) or a Describe of a
 *    statement or portal without rows (answered): PostgreSQL checks those before refusing the failed
 *    transaction, but where the server lacks the statement, pgsluice's own Parse of it is refused
 *    first (25P02). The direct model notes the case;
 *  - pin_session_state = off, once the client sent a text whose state pgsluice follows only by
 *    pinning: that state may stay behind on a server the client leaves (what off means).
 * Open findings (tests/fuzz/findings-open/, recognised here and not checked unless
 * FZ_OPEN_FINDINGS=1): none now. Fixed, inputs in regressions/: an error the statement rewriting
 * answers in the server's place (42P05 of a name in use, 26000 of a statement in doubt), unseen by the
 * session-state tracking; a named portal of a statement that pins, executed after a DISCARD run since
 * its Bind (its pins were not taken again at its Execute). */
#include "fuzz_common.h"

#include <strings.h>

#include "core/prepare.h"
#include "core/proxy_ps.h"
#include "core/scan.h"
#include "core/session_state.h"
#include "pg_model.h"
#include "pool/pool.h"
#include "proto/msgtype.h"
#include "util/intern.h"
#include "util/log.h"

#define NSERVERS 2
#define STREAM_MAX (64u * 1024 * 1024)

typedef struct world {
    sl_worker w;                /* its cfg: max_prepared_statements 2 or 100, pin_session_state */
    sl_route route;             /* transaction mode */
    sl_backend backend;         /* of the route: the servers' */
    sl_client c;
    sl_server s[NSERVERS];
    pg_model model[NSERVERS], direct;
    bytes srv_out[NSERVERS]; /* a model server's answers not yet delivered to pgsluice */
    bytes direct_rx;         /* what the direct model answered */
    bytes client_rx;         /* what the client got through pgsluice */
    int linked;              /* server linked to the client, or -1 */
    int next_server;         /* the one the next link takes */
    bool client_closed;      /* pgsluice closed the client (protocol violation) */
    bool server_closed;      /* pgsluice closed the linked server */
    bool compare;            /* no raw bytes were sent: the differential check applies */
    bool known_divergence;   /* ... nor one of the known divergences (top of the file) */
    const char *divergence;  /* the first one met (the trace says it) */
    int links;               /* links made so far */
    int unnamed_link;        /* the link that last parsed the unnamed statement (0: none) */
    int batches;             /* Syncs, Queries and FunctionCalls pgsluice has seen from the client */
    int unnamed_batch;       /* the batch of the last Parse of the unnamed statement */
    bytes sent;              /* every byte the client sent, and how far its messages were looked at */
    size_t sent_scanned;
    bytes pending;           /* client bytes built but not yet sent */
    bool sess_on;            /* session-state tracking on (as in production): links have sess_active */
    sl_pin_mode pin_mode;    /* pin_session_state */
} world;

static world *W;

static void known(const char *why)
{
    if (!W->known_divergence) W->divergence = why;
    W->known_divergence = true;
}
static sl_config *g_cfg[2][3]; /* max_prepared_statements 2 / 100, pin_session_state on / off / error */

/* ---- byte plumbing ---- */

static void stream_append(sl_stream *s, const void *p, size_t n)
{
    if (!n) return;
    if (!sl_stream_make_room(s, (uint32_t)n, STREAM_MAX)) abort();
    memcpy(s->buf + s->end, p, n);
    s->end += (uint32_t)n;
}

/* sl_stream_flush(dst, src) without a socket: dst's out queue, then src's forward region. */
static void flush_to(bytes *sink, sl_stream *dst, sl_stream *src)
{
    FZ_CHECK(!dst->out.failed, "out queue failed");
    if (dst->out.len > dst->out_sent) bytes_add(sink, dst->out.data + dst->out_sent, dst->out.len - dst->out_sent);
    sl_pb_reset(&dst->out);
    dst->out_sent = 0;
    if (src && src->parse > src->pos) {
        bytes_add(sink, src->buf + src->pos, src->parse - src->pos);
        src->pos = src->parse;
    }
}

static void server_feed_model(int i, const bytes *got, size_t from)
{
    if (got->n > from) model_feed(&W->model[i], got->p + from, got->n - from);
}

/* The linked server receives: its out queue, then the client's forward region. */
static void flush_to_server(int i)
{
    bytes got = {0};
    flush_to(&got, &W->s[i].s, &W->c.s);
    server_feed_model(i, &got, 0);
    bytes_free(&got);
}

/* ---- proxy.c's scan loops (core/scan.h) on the fake connections, client.c's idle path ---- */

static void client_idle_input(void);
static void client_forward(void);

/* sl_sess_link_end forgets what the link still expected. */
static void check_link_end(const sl_client *c)
{
    const sl_session *ss = c->sess;
    if (!ss) return;
    FZ_CHECK(ss->qn == 0 && ss->txn == 0 && ss->clear_pending == 0 && !ss->unnamed_portal.value && !ss->nportals,
             "the session state kept %u answers expected, %u settings, clears %x, %u named portals after the link "
             "ended", ss->qn, ss->txn, ss->clear_pending, ss->nportals);
}

/* server_setup.c's SL_SETUP_PARAMS, as sl_proxy_link runs it when link_needs_setup finds the
 * client's tracked settings different from the server's: set_config / RESET on the model (answered
 * to pgsluice), then the values the server has now. (server_check_query is not modelled.) */
static void setup_params(int i)
{
    sl_client *c = &W->c;
    sl_server *s = &W->s[i];
    for (int id = 0; id < SL_NPARAMS && sl_param_names[id]; id++) {
        const char *want = c->params.v[id];
        bool reported = (s->reported >> id) & 1u;
        if (want == s->params.v[id] || (!want && reported)) continue;
        FZ_CHECK(id == SL_PARAM_SEARCH_PATH || id == SL_PARAM_APPLICATION_NAME, "setting %s changed",
                 sl_param_names[id]);
        bool app = id == SL_PARAM_APPLICATION_NAME;
        /* a reported setting that changes is reported (ParameterStatus, read by the setup) */
        bool changed = app && strcmp(W->model[i].reported_app, want ? want : "") != 0;
        FZ_LOG("  setup on server %d: %s = %s", i, sl_param_names[id], want ? want : "(default)");
        model_pooler_set(&W->model[i], app, want);
        if (!reported) sl_params_copy_one(&s->params, &c->params, id); /* as sent */
        else if (changed) sl_params_set(&s->params, id, want);
    }
}

/* sl_proxy_start: the link begins forwarding. */
static void proxy_start(int i)
{
    sl_server *s = &W->s[i];
    sl_client *c = &W->c;
    s->state = SL_SV_ACTIVE;
    s->ps_active = sl_ps_enabled_for(c);
    /* in production sess_active = c->route && !replication && pool_mode != session: always in the
     * transaction mode of this target; the input may turn it off (the target's first layout) */
    s->sess_active = W->sess_on && c->route && !c->route->replication &&
                     sl_route_pool_mode(c->route) != SL_POOL_SESSION;
    if (c->sess) {
        sl_sess_link_end(c); /* nothing is expected from a server just linked */
        check_link_end(c);
    }
}

/* sl_proxy_link, then sl_proxy_start. */
static void link_server(int i)
{
    sl_server *s = &W->s[i];
    sl_client *c = &W->c;
    FZ_LOG("link server %d", i);
    FZ_CHECK(!sl_sess_pinned(c), "a pinned client was linked to another server");
    W->linked = i;
    W->links++;
    c->server = s;
    s->client = c;
    c->state = SL_CL_ACTIVE;
    s->outstanding = 0;
    s->in_batch = false;
    s->release_pending = false;
    setup_params(i);
    proxy_start(i);
}

/* Can the model's session still hold something of the client's (pgsluice lets go of the server
 * only when it cannot)? NULL: nothing. */
static const char *model_client_state(const pg_model *m)
{
    if (m->cur.temp_table) return "a temporary table";
    if (m->prepared_q) return "an SQL prepared statement";
    if (m->advisory_locks) return "an advisory lock";
    if (m->cur.listening) return "LISTEN";
    if (m->cur.untracked_set) return "a setting pgsluice does not track";
    return NULL;
}

/* sl_proxy_unlink_release: the server goes back to the pool (after server_setup.c's DISCARD ALL
 * when a pinned client left state on it). */
static void unlink_release(void)
{
    int i = W->linked;
    sl_server *s = &W->s[i];
    sl_client *c = &W->c;
    FZ_LOG("release server %d", i);
    if (s->sess_active) {
        sl_sess_link_end(c);
        check_link_end(c);
    }
    FZ_CHECK(!sl_sess_pinned(c), "a pinned client let go of its server");
    if (W->sess_on && W->pin_mode != SL_PIN_MODE_OFF && W->compare && !W->model[i].broken) {
        const char *left = model_client_state(&W->model[i]);
        FZ_CHECK(!left, "the client let go of server %d, which holds its session state (%s)", i, left);
    }
    c->server = NULL;
    s->client = NULL;
    c->state = SL_CL_IDLE;
    s->state = SL_SV_IDLE;
    s->release_pending = false;
    sl_ps_reset_link(s);
    s->sess_active = false;
    W->linked = -1;
    if (s->session_dirty) { /* SL_SETUP_RESET: DISCARD ALL (server_setup.c, sl_server_setup_input) */
        FZ_LOG("  reset server %d (DISCARD ALL)", i);
        bool app_changed = W->model[i].reported_app[0] != '\0';
        model_pooler_discard_all(&W->model[i]);
        sl_stmt_cache_clear(&s->ps_cache);
        for (int id = 0; id < SL_NPARAMS; id++) /* forget_unreported */
            if (!((s->reported >> id) & 1u)) sl_params_copy_one(&s->params, &(sl_params){{0}}, id);
        if (app_changed) sl_params_set(&s->params, SL_PARAM_APPLICATION_NAME, "");
        s->session_dirty = false;
    }
}

/* proxy.c's after_release: the client's bytes left over are read as an idle client's. */
static void after_release(void)
{
    if (W->c.s.end > W->c.s.parse) client_idle_input();
    else sl_stream_trim(&W->c.s);
}

/* sl_proxy_resume, after a pooler query between the linked client's transactions. */
static void proxy_resume(void)
{
    int i = W->linked;
    sl_client *c = &W->c;
    if (sl_scan_can_release(&W->s[i], c)) { /* nothing pins it any more */
        unlink_release();
        after_release();
        return;
    }
    proxy_start(i);
    if (c->s.end > c->s.parse || c->s.msg_left) client_forward();
}

/* server_setup.c's SL_SETUP_ADVISORY: does the pinned client still hold an advisory lock? */
static void advisory_check(void)
{
    int i = W->linked;
    bool held = model_pooler_advisory_held(&W->model[i]);
    FZ_LOG("  advisory check on server %d: %s", i, held ? "held" : "none");
    sl_sess_advisory_checked(&W->c, held);
    proxy_resume();
}

/* The unnamed-statement divergence (top of the file), from the message at the scan position. */
static void note_unnamed(const sl_stream *in, char type, uint32_t len)
{
    const uint8_t *m = in->buf + in->parse;
    size_t avail = in->end - in->parse < len + 1 ? in->end - in->parse : len + 1;
    if (type == 'P' && avail >= 6 && m[5] == 0) {
        W->unnamed_link = W->links;
        W->unnamed_batch = W->batches;
    }
    const uint8_t *stmt = NULL;
    if (type == 'D' && avail >= 7 && m[5] == 'S') stmt = m + 6;
    if (type == 'B' && avail >= 6) {
        const uint8_t *nul = memchr(m + 5, 0, avail - 5);
        if (nul && (size_t)(nul + 1 - m) < avail) stmt = nul + 1;
    }
    /* on another link, or in a later batch (that Parse may have been skipped, or a simple query
     * on another server may have dropped it on PostgreSQL) */
    if (stmt && *stmt == 0 && (W->unnamed_link != W->links || W->unnamed_batch != W->batches))
        known("the unnamed statement of another link or batch");
}

/* What the harness watches in each client message (core/scan.h's hook). */
static void scan_hook(sl_client *c, char type, uint32_t len, bool decided)
{
    if (!decided) note_unnamed(&c->s, type, len);
    else if (type == SL_FE_QUERY || type == SL_FE_FUNCTION_CALL || type == SL_FE_SYNC) W->batches++;
}

/* proxy.c's scan_client: false when pgsluice closes the client (an error, or Terminate). */
static bool scan_client(sl_server *s)
{
    char type;
    uint32_t len;
    return sl_scan_client(&W->c, s, &type, &len, scan_hook) == SL_SCAN_MORE;
}

static void client_forward(void)
{
    sl_server *s = &W->s[W->linked];
    sl_stream *in = &W->c.s;
    if (!scan_client(s)) {
        W->client_closed = true;
        return;
    }
    if (s->ps_active) {
        sl_ps_synth_due(s, &W->c);
        flush_to(&W->client_rx, &W->c.s, &s->s);
    }
    flush_to_server(W->linked);
    if (in->end - in->parse >= 5 && in->buf[in->parse] == SL_FE_TERMINATE && !in->msg_left) {
        W->client_closed = true;
        return;
    }
    if (in->pos == in->end) sl_stream_maybe_release_buf(in);
}

/* proxy.c's scan_server: false when pgsluice closes the server. */
static bool scan_server(sl_server *s) { return sl_scan_server(s, &W->c) == SL_SCAN_MORE; }

static void server_forward(void)
{
    sl_server *s = &W->s[W->linked];
    sl_client *c = &W->c;
    if (!scan_server(s)) {
        W->server_closed = true;
        return;
    }
    flush_to(&W->client_rx, &c->s, &s->s);
    if (s->s.pos == s->s.end) {
        sl_stream_recycle_buf(&s->s);
        if (s->release_pending && sl_scan_can_release(s, c)) {
            unlink_release();
            after_release();
            return;
        }
        /* pinned for advisory locks, and it called a lock function: between transactions, the
         * server is asked whether any is still held (the client's out queue was flushed above) */
        if (c->sess && sl_sess_advisory_check_due(c) && sl_scan_between_transactions(s, c)) advisory_check();
    }
}

/* sl_client_idle_input: answer locally what can be, else take a server. */
static void client_idle_input(void)
{
    sl_client *c = &W->c;
    sl_stream *s = &c->s;
    while (c->state == SL_CL_IDLE && s->end - s->parse >= 5) {
        char type = (char)s->buf[s->parse];
        uint32_t len = sl_get_u32(s->buf + s->parse + 1);
        if (len < 4 || (int64_t)len > (int64_t)c->s.w->cfg->max_packet_size || type == SL_FE_TERMINATE) {
            W->client_closed = true;
            return;
        }
        sl_ps_result r = sl_ps_client_local(c, type, len);
        if (r == SL_PS_NEED_MORE) break;
        if (r == SL_PS_MALFORMED) {
            W->client_closed = true;
            return;
        }
        if (r == SL_PS_CONSUMED) continue;
        flush_to(&W->client_rx, s, NULL);
        link_server(W->next_server);
        client_forward();
        return;
    }
    flush_to(&W->client_rx, s, NULL);
}

/* Is a Parse of this client name waiting for its answer on the linked server? */
static bool parse_pending(const char *name)
{
    if (W->linked < 0) return false;
    sl_server *s = &W->s[W->linked];
    for (uint32_t i = 0; i < s->exp_n; i++) {
        const sl_expect *e = sl_exp_at(s, i);
        if (e->msg == 'P' && e->client_name && !strcmp(e->client_name, name)) return true;
    }
    return false;
}

/* The known divergence (see the top of the file): a Parse of a name that is in pgsluice's queue
 * or earlier in the same bytes. */
static void note_known_divergence(const void *p, size_t n)
{
    if (W->linked >= 0) { /* pipelined behind a DISCARD ALL not answered yet */
        sl_server *s = &W->s[W->linked];
        for (uint32_t i = 0; i < s->exp_n; i++)
            if (sl_exp_at(s, i)->action == SL_EXP_DISCARD) known("pipelined behind DISCARD ALL");
    }
    bytes_add(&W->sent, p, n);
    char seen[16][8];
    int nseen = 0;
    bool after_discard = false;
    bool earlier = false; /* a message before this one in these bytes (queued before it) */
    bool earlier_may_begin = false; /* ... a Query or Execute, which may begin a block (BEGIN) */
    while (W->sent.n - W->sent_scanned >= 5) {
        const uint8_t *m = W->sent.p + W->sent_scanned;
        uint32_t len = sl_get_u32(m + 1);
        if (len < 4 || W->sent.n - W->sent_scanned < (size_t)len + 1) break;
        if (after_discard) known("pipelined behind DISCARD ALL");
        if (m[0] == 'Q' && len > 5) {
            const char *q = (const char *)m + 5;
            while (*q == ' ' || *q == '\t' || *q == '\n') q++;
            after_discard = !strncasecmp(q, "DISCARD ALL", 11) || !strncasecmp(q, "DEALLOCATE ALL", 14);
        }
        if (m[0] == 'P' && len > 5 && m[5] && memchr(m + 5, 0, len - 4)) {
            const char *name = (const char *)m + 5;
            bool dup = parse_pending(name);
            if (W->linked >= 0 && sl_stmt_map_get(&W->c.ps_map, name)) {
                /* a name in use, parsed again behind queued requests in a failed transaction: failed
                 * as pgsluice knows it, as the direct model knows it (every byte before these), or
                 * possibly by a message earlier in these bytes (in a block, or one may begin it) */
                const sl_server *ls = &W->s[W->linked];
                bool failed = ls->xact == SL_XACT_FAILED || W->direct.xact != 'I' || earlier_may_begin;
                if (failed && (ls->exp_n || earlier)) dup = true;
            }
            for (int i = 0; i < nseen; i++) dup |= !strcmp(seen[i], name);
            if (dup) known("a Parse of a name in use, pipelined");
            if (nseen < 16 && strlen(name) < 8) strcpy(seen[nseen++], name);
        }
        W->sent_scanned += (size_t)len + 1;
        earlier = true;
        earlier_may_begin |= m[0] == 'Q' || m[0] == 'E';
    }
}

/* Bytes from the client reach pgsluice. */
static void client_input(const void *p, size_t n)
{
    if (W->client_closed || W->server_closed || !n) return;
    note_known_divergence(p, n);
    if (W->compare) model_feed(&W->direct, p, n);
    stream_append(&W->c.s, p, n);
    if (W->linked < 0) client_idle_input();
    else client_forward();
}


/* Bytes from the linked server reach pgsluice. */
static void server_input(const void *p, size_t n)
{
    if (W->linked < 0 || W->client_closed || W->server_closed || !n) return;
    stream_append(&W->s[W->linked].s, p, n);
    server_forward();
    /* what the release let through may have reached a server */
}

/* The linked server's model answers up to n bytes of what it owes (0: all). */
static void server_answers(size_t n)
{
    if (W->linked < 0) return;
    bytes *o = &W->srv_out[W->linked];
    if (!n || n > o->n) n = o->n;
    if (!n) return;
    uint8_t *copy = malloc(n);
    if (!copy) abort();
    memcpy(copy, o->p, n);
    bytes_drop_front(o, n);
    server_input(copy, n);
    free(copy);
}

/* ---- the client's messages ---- */

static const char *const stmt_names[] = {"", "s1", "s2", "s3"};

/* What pgsluice's session-state tracking makes of a text: refused under pin_session_state = error
 * (as a Query, an unnamed Parse, a named Parse: it pins), or session state that pgsluice follows
 * only by pinning (lost under pin_session_state = off when the client changes servers, a known
 * divergence then). */
enum { T_REFUSED_Q = 1, T_REFUSED_PU = 2, T_REFUSED_PN = 4, T_LOSSY = 8 };
typedef struct text_info {
    const char *text;
    unsigned flags;
} text_info;

/* The first 6 (Parse) and 10 (Query) are all a run without session-state tracking uses (the
 * inputs of the first layout keep their meaning); the rest come with the tracking. */
#define PARSE_TEXTS_PLAIN 6
#define QUERY_TEXTS_PLAIN 10
static const text_info parse_texts[] = {
    {"SELECT 1", 0}, {"SELECT 2", 0}, {"SELECT $1::int", 0}, {"SELECT 1/0", 0},
    {"SET x.y = 1", T_REFUSED_PU | T_REFUSED_PN | T_LOSSY}, {"SELEC 1", 0},
    /* a tracked setting: a named statement's is not followed (pinned instead) */
    {"SET search_path = a", T_REFUSED_PN | T_LOSSY}, {"SET work_mem = '8MB'", T_REFUSED_PU | T_REFUSED_PN | T_LOSSY},
    {"CREATE TEMP TABLE t (a int)", T_REFUSED_PU | T_REFUSED_PN | T_LOSSY},
    {"PREPARE q AS SELECT 1", T_REFUSED_PU | T_REFUSED_PN | T_LOSSY},
    {"SELECT pg_advisory_lock(1)", T_REFUSED_PU | T_REFUSED_PN | T_LOSSY}, {"SHOW search_path", 0}, {"BEGIN", 0},
    {"COMMIT", 0}, {"ROLLBACK", 0}, {"RESET ALL", T_REFUSED_PN | T_LOSSY}, {"DISCARD TEMP", 0},
    {"SELECT pg_advisory_unlock_all()", 0}, {"SET application_name = 'x'", 0},
};
static const text_info query_texts[] = {
    {"SELECT 1", 0}, {"BEGIN", 0}, {"COMMIT", 0}, {"ROLLBACK", 0}, {"SELECT 1/0", 0}, {"DISCARD ALL", 0},
    {"discard all", 0}, {"DEALLOCATE ALL", 0}, {"SELEC 1", 0}, {" DISCARD ALL;", 0},
    {"SET search_path = a", 0}, {"SET search_path TO \"B\", public", 0}, {"RESET search_path", 0},
    {"SHOW search_path", 0}, {"SET application_name = 'x'", 0}, {"SET work_mem = '8MB'", T_REFUSED_Q | T_LOSSY},
    {"RESET ALL", 0}, {"CREATE TEMP TABLE t (a int)", T_REFUSED_Q | T_LOSSY}, {"SELECT * FROM t", 0},
    {"DISCARD TEMP", 0}, {"PREPARE q AS SELECT 1", T_REFUSED_Q | T_LOSSY}, {"EXECUTE q", 0},
    {"DEALLOCATE q", 0}, {"SELECT pg_advisory_lock(1)", T_REFUSED_Q | T_LOSSY},
    {"SELECT pg_advisory_unlock_all()", 0}, {"LISTEN ch", T_REFUSED_Q | T_LOSSY}, {"UNLISTEN *", 0},
    /* the SET is undone by the error after it (one implicit transaction) */
    {"SET search_path TO \"B\", public; SELECT 1/0", 0}, {"SAVEPOINT sp", 0},
    /* which settings survive is not known: pinned */
    {"ROLLBACK TO sp", T_LOSSY},
};
#define NTEXTS(a) (sizeof(a) / sizeof((a)[0]))

static unsigned text_flags(const text_info *t, size_t n, const char *text)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(t[i].text, text)) return t[i].flags;
    return 0;
}

/* pin_session_state = error: does pgsluice refuse this Query or Parse (the direct model's view)? */
static bool refused_by_pgsluice(const char *text, char msg, bool named)
{
    if (msg == 'Q') return text_flags(query_texts, NTEXTS(query_texts), text) & T_REFUSED_Q;
    return text_flags(parse_texts, NTEXTS(parse_texts), text) & (named ? T_REFUSED_PN : T_REFUSED_PU);
}

/* A text sent under pin_session_state = off whose state pgsluice may lose: not compared. */
static void note_lossy(unsigned flags)
{
    if (W->sess_on && W->pin_mode == SL_PIN_MODE_OFF && (flags & T_LOSSY)) known("pin_session_state = off");
}

static void client_message(fz_in *in, bytes *pending)
{
    uint8_t k = fz_u8(in), a = fz_u8(in), b = fz_u8(in);
    const char *name = stmt_names[a % 4];
    size_t nparse = W->sess_on ? NTEXTS(parse_texts) : PARSE_TEXTS_PLAIN;
    size_t nquery = W->sess_on ? NTEXTS(query_texts) : QUERY_TEXTS_PLAIN;
    sl_pktbuf pb;
    sl_pb_init(&pb);
    switch (k % 8) {
    case 0: { /* Parse, with or without the parameter's type */
        const char *text = parse_texts[b % nparse].text;
        note_lossy(parse_texts[b % nparse].flags);
        sl_pb_begin(&pb, 'P');
        sl_pb_str(&pb, name);
        sl_pb_str(&pb, text);
        bool typed = (b / nparse) & 1 && !strcmp(text, "SELECT $1::int");
        sl_pb_u16(&pb, typed);
        if (typed) sl_pb_u32(&pb, 23);
        sl_pb_end(&pb);
        break;
    }
    case 1: { /* Bind portal (unnamed or "p1") to statement name, with 0 or 1 parameter */
        sl_pb_begin(&pb, 'B');
        sl_pb_str(&pb, b & 1 ? "p1" : "");
        sl_pb_str(&pb, name);
        sl_pb_u16(&pb, 0);
        int np = (b >> 1) & 1;
        sl_pb_u16(&pb, (uint16_t)np);
        if (np) {
            sl_pb_u32(&pb, 1);
            sl_pb_u8(&pb, '7');
        }
        sl_pb_u16(&pb, (b >> 2) & 1);
        if ((b >> 2) & 1) sl_pb_u16(&pb, 0);
        sl_pb_end(&pb);
        break;
    }
    case 2: /* Describe a statement or a portal */
        sl_pb_begin(&pb, 'D');
        sl_pb_u8(&pb, b & 1 ? 'P' : 'S');
        sl_pb_str(&pb, b & 1 ? (a & 1 ? "p1" : "") : name);
        sl_pb_end(&pb);
        break;
    case 3: /* Execute */
        sl_pb_begin(&pb, 'E');
        sl_pb_str(&pb, b & 1 ? "p1" : "");
        sl_pb_u32(&pb, 0);
        sl_pb_end(&pb);
        break;
    case 4: /* Close a statement or a portal */
        sl_pb_begin(&pb, 'C');
        sl_pb_u8(&pb, b & 1 ? 'P' : 'S');
        sl_pb_str(&pb, b & 1 ? (a & 1 ? "p1" : "") : name);
        sl_pb_end(&pb);
        break;
    case 5: sl_pb_begin(&pb, 'S'); sl_pb_end(&pb); break;
    case 6: sl_pb_begin(&pb, 'H'); sl_pb_end(&pb); break;
    default:
        note_lossy(query_texts[b % nquery].flags);
        sl_pb_query(&pb, query_texts[b % nquery].text);
        break;
    }
    if (fz_verbose()) { /* the trace: the message as the client built it */
        char shown[64];
        size_t o = 0;
        for (uint32_t i = 5; i < pb.len && o + 2 < sizeof(shown); i++)
            shown[o++] = pb.data[i] >= 32 && pb.data[i] < 127 ? (char)pb.data[i] : '.';
        shown[o] = '\0';
        FZ_LOG("  build %c %s", pb.data[0], shown);
    }
    bytes_add(pending, pb.data, pb.len);
    sl_pb_free(&pb);
}

/* ---- comparing the two answer streams ---- */

static void describe_stream(const bytes *b, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i + 5 <= b->n && o + 8 < outlen;) {
        uint32_t len = sl_get_u32(b->p + i + 1);
        const char *code = b->p[i] == 'E' ? sl_error_field(b->p + i + 5, len - 4, 'C') : NULL;
        o += (size_t)snprintf(out + o, outlen - o, "%c%s%s ", b->p[i], code ? ":" : "", code ? code : "");
        i += (size_t)len + 1;
    }
    out[o] = '\0';
}

/* PostgreSQL holds answers until Flush, Sync or an error, and pgsluice answers some requests
 * itself at once; sending early is allowed (a server may flush whenever its buffer fills). So the
 * client must have got at least what the direct model flushed, and nothing beyond what it holds. */
/* ParameterStatus messages apart from the rest: a client accepts them anywhere, and pgsluice's own
 * answers (a CloseComplete of a statement the server never had) may come after one PostgreSQL sends
 * just before its ReadyForQuery. They are compared among themselves. */
static void split_param_status(const bytes *in, bytes *rest, bytes *ps)
{
    size_t i = 0;
    while (in->n - i >= 5) {
        uint32_t len = sl_get_u32(in->p + i + 1);
        if (len < 4 || in->n - i < (size_t)len + 1) break;
        bytes_add(in->p[i] == 'S' ? ps : rest, in->p + i, (size_t)len + 1);
        i += (size_t)len + 1;
    }
    if (in->n > i) bytes_add(rest, in->p + i, in->n - i);
}

static void compare_answers(void)
{
    bytes all = {0}; /* the direct model's answers: flushed, then held (ParameterStatus apart) */
    bytes client = {0}, flushed_ps = {0}, all_ps = {0}, client_ps = {0};
    split_param_status(&W->direct_rx, &all, &flushed_ps);
    size_t flushed = all.n;
    split_param_status(&W->direct.held, &all, &all_ps);
    bytes held_ps = all_ps;
    all_ps = (bytes){0};
    bytes_add(&all_ps, flushed_ps.p, flushed_ps.n);
    bytes_add(&all_ps, held_ps.p, held_ps.n);
    bytes_free(&held_ps);
    split_param_status(&W->client_rx, &client, &client_ps);
    FZ_CHECK(client_ps.n >= flushed_ps.n && client_ps.n <= all_ps.n &&
                 (!client_ps.n || !memcmp(client_ps.p, all_ps.p, client_ps.n)),
             "ParameterStatus through pgsluice differs (%zu bytes, %zu direct)", client_ps.n, all_ps.n);
    bytes_free(&flushed_ps);
    bytes_free(&all_ps);
    bytes_free(&client_ps);
    const bytes *a = &client, *d = &all;
    size_t i = 0, j = 0;
    int n = 0;
    char sa[4096], sd[4096];
    describe_stream(a, sa, sizeof(sa));
    describe_stream(d, sd, sizeof(sd));
    while (i < a->n && j < d->n) {
        FZ_CHECK(a->n - i >= 5 && d->n - j >= 5, "partial message");
        char ta = (char)a->p[i], td = (char)d->p[j];
        uint32_t la = sl_get_u32(a->p + i + 1), ld = sl_get_u32(d->p + j + 1);
        FZ_CHECK(la >= 4 && a->n - i >= (size_t)la + 1, "client got a cut message");
        if (td == 'E' && W->direct.missing_skipped) {
            const char *cd = sl_error_field(d->p + j + 5, ld - 4, 'C');
            const char *ca = ta == 'E' ? sl_error_field(a->p + i + 5, la - 4, 'C') : NULL;
            if (cd && !strcmp(cd, "26000") && !(ca && !strcmp(ca, cd))) { /* the lenient known divergence (top of the file) */
                FZ_LOG("stopped at a known lenient divergence (answer %d)", n);
                bytes_free(&all);
                bytes_free(&client);
                return;
            }
        }
        FZ_CHECK(ta == td, "answer %d: '%c' through pgsluice, '%c' direct\n  pgsluice: %s\n  direct:   %s", n, ta, td, sa,
                 sd);
        if (ta == 'E') {
            const char *ca = sl_error_field(a->p + i + 5, la - 4, 'C'), *cd = sl_error_field(d->p + j + 5, ld - 4, 'C');
            FZ_CHECK(ca && cd && !strcmp(ca, cd), "answer %d: error %s through pgsluice, %s direct\n  pgsluice: %s\n"
                     "  direct:   %s", n, ca ? ca : "?", cd ? cd : "?", sa, sd);
        } else {
            FZ_CHECK(la == ld && !memcmp(a->p + i + 5, d->p + j + 5, la - 4),
                     "answer %d ('%c') differs in content\n  pgsluice: %s\n  direct:   %s", n, ta, sa, sd);
        }
        i += (size_t)la + 1;
        j += (size_t)ld + 1;
        n++;
    }
    if (i == a->n && j < flushed && W->direct.missing_skipped) {
        /* the skipped-Parse divergence, with pgsluice's own answers still held by the server */
        FZ_LOG("stopped at a known divergence (answer %d, not sent yet)", n);
        bytes_free(&all);
        bytes_free(&client);
        return;
    }
    FZ_CHECK(i == a->n, "extra answers through pgsluice\n  pgsluice: %s\n  direct (flushed, then held): %s", sa, sd);
    FZ_CHECK(j >= flushed, "missing answers through pgsluice (%zu of %zu bytes flushed)\n  pgsluice: %s\n"
             "  direct (flushed, then held): %s", i, flushed, sa, sd);
    bytes_free(&all);
    bytes_free(&client);
}

/* ---- setup and teardown ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    sl_log_setup(NULL, 0, NULL, NULL, 0, 1);
    char err[256];
    static const char *const pin_modes[] = {"on", "off", "error"};
    for (int i = 0; i < 2; i++)
        for (int p = 0; p < 3; p++) {
            sl_config *cfg = g_cfg[i][p] = sl_config_new_default();
            /* listen_fanout off: a LISTEN goes to the server (client.c's fanout branch, which answers
             * it through a listener connection, does nothing then, nor does read_write_split's) */
            if (!cfg ||
                !sl_setting_set(cfg, sl_setting_find("max_prepared_statements"), i ? "100" : "2", err, sizeof(err)) ||
                !sl_setting_set(cfg, sl_setting_find("pin_session_state"), pin_modes[p], err, sizeof(err)) ||
                !sl_setting_set(cfg, sl_setting_find("listen_fanout"), "0", err, sizeof(err)))
                abort();
        }
    return 0;
}

/* The server's parameters after login: PostgreSQL 15 reports every tracked one but search_path
 * (application_name "", the others not modelled). */
static void server_params_init(sl_server *s)
{
    s->reported = 0;
    for (int id = 0; id < SL_NPARAMS_FIXED; id++)
        if (id != SL_PARAM_SEARCH_PATH) s->reported |= 1u << id;
    sl_params_set(&s->params, SL_PARAM_APPLICATION_NAME, "");
}

/* The first byte: bit 0 max_prepared_statements 100 (else 2); bit 1 session-state tracking on; bits
 * 2-3 pin_session_state (1 off, 2 error, else on). */
static void world_init(world *w, uint8_t mode)
{
    memset(w, 0, sizeof(*w));
    w->sess_on = mode & 2;
    int pin = (mode >> 2) & 3;
    w->pin_mode = pin == 1 ? SL_PIN_MODE_OFF : pin == 2 ? SL_PIN_MODE_ERROR : SL_PIN_MODE_ON;
    sl_config *cfg = g_cfg[mode & 1][pin == 1 ? 1 : pin == 2 ? 2 : 0];
    w->w.buf_size = 4096;
    w->w.cfg = cfg;
    sl_mutex_init(&w->route.lock);
    w->route.pool_mode = SL_POOL_TRANSACTION;
    w->backend.route = &w->route;
    sl_stream_init(&w->c.s, -1);
    w->c.s.w = &w->w;
    w->c.route = &w->route;
    w->c.state = SL_CL_IDLE;
    for (int i = 0; i < NSERVERS; i++) {
        sl_stream_init(&w->s[i].s, -1);
        w->s[i].s.w = &w->w;
        w->s[i].state = SL_SV_IDLE;
        w->s[i].xact = 'I';
        w->s[i].pc.backend = &w->backend;
        sl_stmt_cache_init(&w->s[i].ps_cache);
        server_params_init(&w->s[i]);
        model_init(&w->model[i], &w->srv_out[i]);
    }
    model_init(&w->direct, &w->direct_rx);
    if (w->sess_on && w->pin_mode == SL_PIN_MODE_ERROR) w->direct.refuses = refused_by_pgsluice;
    w->linked = -1;
    w->compare = true;
}

static void server_reset(int i)
{
    sl_server *s = &W->s[i];
    sl_ps_server_gone(s);
    sl_stream_free_buf(&s->s);
    sl_pb_free(&s->s.out);
    model_free(&W->model[i]);
    bytes_free(&W->srv_out[i]);
    sl_stream_init(&s->s, -1);
    s->s.w = &W->w;
    s->xact = 'I';
    s->outstanding = 0;
    s->in_batch = false;
    s->session_dirty = false;
    sl_params_clear(&s->params);
    server_params_init(s);
    model_init(&W->model[i], &W->srv_out[i]);
}

static void world_free(void)
{
    for (int i = 0; i < NSERVERS; i++) {
        sl_ps_server_gone(&W->s[i]);
        sl_stream_free_buf(&W->s[i].s);
        sl_pb_free(&W->s[i].s.out);
        model_free(&W->model[i]);
        bytes_free(&W->srv_out[i]);
        sl_params_clear(&W->s[i].params);
    }
    sl_sess_free(&W->c);
    sl_params_clear(&W->c.params);
    sl_stmt_map_clear(&W->c.ps_map);
    sl_stream_free_buf(&W->c.s);
    sl_pb_free(&W->c.s.out);
    model_free(&W->direct);
    bytes_free(&W->direct_rx);
    bytes_free(&W->client_rx);
    bytes_free(&W->sent);
    bytes_free(&W->pending);
    for (uint32_t i = 0; i < W->w.buf_free_n; i++) free(W->w.buf_free[i]);
    free(W->w.buf_free);
}

/* Everything the client sent was decided, and the linked server (if any) answered all of it. */
static bool quiescent(void)
{
    const sl_client *c = &W->c;
    if (c->s.parse != c->s.end || c->s.msg_left) return false;
    if (W->linked < 0) return true;
    int i = W->linked;
    const sl_server *s = &W->s[i];
    return s->outstanding == 0 && !s->in_batch && !W->srv_out[i].n && !W->model[i].in.n && !W->model[i].held.n &&
           s->s.parse == s->s.end && !s->s.msg_left;
}

static bool same_setting(const char *pgsluice, const char *model) { return !strcmp(pgsluice ? pgsluice : "", model); }

/* After each operation: the session-state tracking agrees with the servers. */
static void check_invariants(void)
{
    if (W->client_closed || W->server_closed) return;
    const sl_client *c = &W->c;
    const sl_session *ss = c->sess;
    /* a client pinned to its server keeps it */
    FZ_CHECK(!sl_sess_pinned(c) || W->linked >= 0, "a pinned client has no server");
    if (!W->sess_on) FZ_CHECK(!ss, "session state without the tracking");
    if (!ss || ss->desync) return;
    /* pin_session_state = off pins nothing */
    if (W->pin_mode == SL_PIN_MODE_OFF) FZ_CHECK(!ss->pins, "pinned (%x) under pin_session_state = off", ss->pins);
    if (!W->compare || !quiescent()) return; /* raw bytes may answer what was never asked */
    /* every answer it expected came (Query, Sync: their ReadyForQuery ended their entries) */
    FZ_CHECK(ss->qn == 0, "the session state still expects %u answers when the server answered everything", ss->qn);
    if (W->linked >= 0)
        FZ_CHECK(W->s[W->linked].xact == W->model[W->linked].xact, "transaction status '%c', the server's '%c'",
                 W->s[W->linked].xact, W->model[W->linked].xact);
    /* the settings pgsluice gives the client on any server are those it committed (as PostgreSQL
     * spoken to directly has them), unless it pinned the client for a setting it does not follow */
    if (W->known_divergence || W->direct.broken || (ss->pins & SL_PIN_BIT(SL_PINR_SET))) return;
    FZ_CHECK(same_setting(c->params.v[SL_PARAM_SEARCH_PATH], W->direct.committed.search_path),
             "search_path: pgsluice has '%s', PostgreSQL '%s'", c->params.v[SL_PARAM_SEARCH_PATH] ? c->params.v[SL_PARAM_SEARCH_PATH] : "",
             W->direct.committed.search_path);
    FZ_CHECK(same_setting(c->params.v[SL_PARAM_APPLICATION_NAME], W->direct.reported_app),
             "application_name: pgsluice has '%s', PostgreSQL reported '%s'",
             c->params.v[SL_PARAM_APPLICATION_NAME] ? c->params.v[SL_PARAM_APPLICATION_NAME] : "",
             W->direct.reported_app);
}

/* The trace (FZ_VERBOSE): after an operation, what the client got so far and what the linked
 * server owes according to pgsluice's queue (request:action). */
static void trace_state(void)
{
    if (!fz_verbose()) return;
    char got[4096], q[512];
    describe_stream(&W->client_rx, got, sizeof(got));
    size_t o = 0;
    q[0] = '\0';
    if (W->linked >= 0) {
        sl_server *s = &W->s[W->linked];
        for (uint32_t i = 0; i < s->exp_n && o + 16 < sizeof(q); i++) {
            const sl_expect *e = sl_exp_at(s, i);
            o += (size_t)snprintf(q + o, sizeof(q) - o, "%c:%d%s%s ", e->msg, e->action, e->client_name ? "/" : "",
                                  e->client_name ? e->client_name : "");
        }
    }
    FZ_LOG("    client got: %s\n    queue: %s%s", got, q, W->linked >= 0 && W->s[W->linked].ps_skip_till_sync ? " (skip till Sync)" : "");
    if (W->c.sess)
        FZ_LOG("    session: pins %x, %u answers expected, %u settings in the transaction%s", W->c.sess->pins,
               W->c.sess->qn, W->c.sess->txn, W->c.sess->desync ? " (desync)" : "");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    world *w = calloc(1, sizeof(*w));
    if (!w) abort();
    W = w;
    size_t registry_before = sl_stmt_registry_count();
    unsigned long interned_before = sl_intern_count();
    int64_t pinned_before = sl_pinned_clients;
    world_init(w, fz_u8(&in));
    bytes *pending = &w->pending;
    FZ_LOG("max_prepared_statements %d, session-state tracking %s, pin_session_state %s",
           w->w.cfg->max_prepared_statements, w->sess_on ? "on" : "off",
           w->pin_mode == SL_PIN_MODE_OFF ? "off" : w->pin_mode == SL_PIN_MODE_ERROR ? "error" : "on");
    int ops = 0;
    while (in.n && ops++ < 400 && !w->client_closed && !w->server_closed) {
        uint8_t op = fz_u8(&in);
        if (op % 8 >= 2) trace_state();
        switch (op % 8) {
        case 0: case 1: client_message(&in, pending); break;
        case 2: { /* send all (or the first n bytes) of what the client built */
            size_t n = fz_u8(&in);
            if (!n || n > pending->n) n = pending->n;
            if (!n) break;
            uint8_t *copy = malloc(n);
            if (!copy) abort();
            memcpy(copy, pending->p, n);
            bytes_drop_front(pending, n);
            FZ_LOG("send %zu bytes (%zu left)", n, pending->n);
            client_input(copy, n);
            free(copy);
            break;
        }
        case 3: {
            uint8_t n = fz_u8(&in);
            FZ_LOG("server %d answers %u bytes (0: all; it owes %zu)", w->linked, n,
                   w->linked >= 0 ? w->srv_out[w->linked].n : 0);
            server_answers(n);
            break;
        }
        case 4: w->next_server = fz_u8(&in) % NSERVERS; FZ_LOG("next link: server %d", w->next_server); break;
        case 5: { /* an idle server goes away and a fresh one takes its place */
            int i = fz_u8(&in) % NSERVERS;
            if (i != w->linked) server_reset(i);
            FZ_LOG("server %d replaced%s", i, i == w->linked ? " (no: linked)" : "");
            break;
        }
        case 6: { /* raw client bytes */
            size_t n;
            const uint8_t *p = fz_chunk(&in, &n);
            w->compare = false;
            bytes_add(pending, p, n);
            break;
        }
        default: { /* raw server bytes */
            size_t n;
            const uint8_t *p = fz_chunk(&in, &n);
            if (w->linked < 0) break;
            w->compare = false;
            server_input(p, n);
            break;
        }
        }
        check_invariants();
    }
    /* the end: the client's bytes arrive, servers answer everything they owe */
    if (pending->n && !w->client_closed) {
        uint8_t *copy = malloc(pending->n);
        if (!copy) abort();
        memcpy(copy, pending->p, pending->n);
        size_t n = pending->n;
        pending->n = 0;
        client_input(copy, n);
        free(copy);
    }
    for (int k = 0; k < 50 && w->linked >= 0 && w->srv_out[w->linked].n && !w->client_closed && !w->server_closed; k++)
        server_answers(0);
    check_invariants();
    bool broken = w->direct.broken || w->model[0].broken || w->model[1].broken;
    if (w->direct.used_skipped_close) known("a name used behind its skipped Close");
    if (w->direct.unnamed_across_batches) known("the unnamed statement of an earlier batch");
    if (w->direct.passed_failed_xact) known("a check before 25P02 in a failed transaction");
    bool checked = w->compare && !w->known_divergence && !w->client_closed && !w->server_closed && !broken;
    if (checked) compare_answers();
    bool divergence = !checked && w->compare && w->known_divergence;
    FZ_LOG("%d ops, %zu answer bytes, %s%s", ops, w->client_rx.n,
           checked                ? "compared"
           : !w->compare          ? "raw bytes: not compared"
           : divergence           ? "not compared: a known divergence, "
                                  : "not compared (closed)",
           divergence ? w->divergence : "");
    world_free();
    FZ_CHECK(sl_stmt_registry_count() == registry_before, "%zu statements left in the registry",
             sl_stmt_registry_count() - registry_before);
    FZ_CHECK(sl_intern_count() == interned_before, "%ld interned strings left (settings, names)",
             (long)(sl_intern_count() - interned_before));
    FZ_CHECK(sl_pinned_clients == pinned_before, "the count of pinned clients moved by %lld",
             (long long)(sl_pinned_clients - pinned_before));
    free(w);
    W = NULL;
    return 0;
}
