/* pg_model.h - a tiny model of a PostgreSQL backend's extended query protocol, for
 * fuzz_extended_protocol.c: named and unnamed statements and portals, skip-till-Sync after an
 * error, transaction status (explicit blocks, the implicit transaction of a Query or of the
 * extended-protocol messages up to Sync, SAVEPOINT / ROLLBACK TO), and a handful of statement texts
 * with fixed behaviour, among them what session-state tracking follows: search_path and
 * application_name (reported with ParameterStatus before ReadyForQuery), an untracked setting, a
 * temporary table, an SQL prepared statement, advisory locks, LISTEN, each transactional as in
 * PostgreSQL or not (advisory locks, SQL PREPARE / DEALLOCATE). It answers messages as PostgreSQL
 * does in the ways pgsluice's statement rewriting and session-state tracking depend on; two of
 * them are compared (one behind pgsluice, one spoken to directly; the direct one can be told what
 * pgsluice refuses under pin_session_state = error, and answers the refusal's 0A000 then). The
 * queries pgsluice sends itself (server_setup.c: DISCARD ALL, the advisory-lock question,
 * set_config) run on the model without output. Header-only, harness code. */
#ifndef SL_PG_MODEL_H
#define SL_PG_MODEL_H

#include "fuzz_common.h"

#include <strings.h>

#include "proto/pkt.h"

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static inline void bytes_add(bytes *b, const void *p, size_t n)
{
    if (!n) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static inline void bytes_drop_front(bytes *b, size_t n)
{
    if (!n) return;
    memmove(b->p, b->p + n, b->n - n);
    b->n -= n;
}

static inline void bytes_free(bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* Statements the model knows (each text exactly, in any case, blanks and a ';' around it); anything
 * else is a syntax error. The first six are the statement-rewriting texts; the rest what the
 * session-state tracking (core/session_state.c) follows. */
typedef enum {
    Q_SELECT1, Q_SELECT2, Q_SELECT_PARAM, Q_FAIL, Q_NOROWS /* SET x.y = 1 */, Q_BAD,
    Q_BEGIN, Q_COMMIT, Q_ROLLBACK, Q_SAVEPOINT, Q_ROLLBACK_TO, Q_DISCARD_ALL, Q_DEALLOCATE_ALL,
    Q_SET_PATH_A, Q_SET_PATH_B, Q_RESET_PATH, Q_SHOW_PATH, Q_SET_APP, Q_SET_WORK_MEM, Q_RESET_ALL,
    Q_CREATE_TEMP, Q_SELECT_TEMP, Q_DISCARD_TEMP, Q_PREPARE, Q_EXECUTE, Q_DEALLOCATE, Q_ADVISORY_LOCK,
    Q_ADVISORY_UNLOCK_ALL, Q_LISTEN, Q_UNLISTEN_ALL,
    Q_REFUSED, /* pgsluice's refusal under pin_session_state = error (a DO block raising 0A000) */
} model_query;

/* The start of the statement pgsluice sends in place of one it refuses (session_state.c). */
#define MODEL_REFUSAL_PREFIX "DO $sl_refuse$"

static const struct {
    const char *text;
    model_query q;
} model_texts[] = {
    {"SELECT 1", Q_SELECT1}, {"SELECT 2", Q_SELECT2}, {"SELECT $1::int", Q_SELECT_PARAM}, {"SELECT 1/0", Q_FAIL},
    {"SET x.y = 1", Q_NOROWS}, {"BEGIN", Q_BEGIN}, {"COMMIT", Q_COMMIT}, {"ROLLBACK", Q_ROLLBACK},
    {"SAVEPOINT sp", Q_SAVEPOINT}, {"ROLLBACK TO sp", Q_ROLLBACK_TO}, {"DISCARD ALL", Q_DISCARD_ALL},
    {"DEALLOCATE ALL", Q_DEALLOCATE_ALL}, {"SET search_path = a", Q_SET_PATH_A},
    {"SET search_path TO \"B\", public", Q_SET_PATH_B}, {"RESET search_path", Q_RESET_PATH},
    {"SHOW search_path", Q_SHOW_PATH}, {"SET application_name = 'x'", Q_SET_APP},
    {"SET work_mem = '8MB'", Q_SET_WORK_MEM}, {"RESET ALL", Q_RESET_ALL},
    {"CREATE TEMP TABLE t (a int)", Q_CREATE_TEMP}, {"SELECT * FROM t", Q_SELECT_TEMP},
    {"DISCARD TEMP", Q_DISCARD_TEMP}, {"PREPARE q AS SELECT 1", Q_PREPARE}, {"EXECUTE q", Q_EXECUTE},
    {"DEALLOCATE q", Q_DEALLOCATE}, {"SELECT pg_advisory_lock(1)", Q_ADVISORY_LOCK},
    {"SELECT pg_advisory_unlock_all()", Q_ADVISORY_UNLOCK_ALL}, {"LISTEN ch", Q_LISTEN},
    {"UNLISTEN *", Q_UNLISTEN_ALL},
};

/* One statement: n bytes at q (blanks and ';' around it are ignored). */
static inline model_query model_classify_n(const char *q, size_t n)
{
    while (n && (*q == ' ' || *q == '\t' || *q == '\n')) q++, n--;
    if (n >= strlen(MODEL_REFUSAL_PREFIX) && !memcmp(q, MODEL_REFUSAL_PREFIX, strlen(MODEL_REFUSAL_PREFIX)))
        return Q_REFUSED;
    while (n && (q[n - 1] == ' ' || q[n - 1] == ';' || q[n - 1] == '\n')) n--;
    for (size_t i = 0; i < sizeof(model_texts) / sizeof(model_texts[0]); i++)
        if (strlen(model_texts[i].text) == n && !strncasecmp(model_texts[i].text, q, n)) return model_texts[i].q;
    return Q_BAD;
}

static inline model_query model_classify(const char *q) { return model_classify_n(q, strlen(q)); }

/* Statements that end a transaction: PostgreSQL runs them in a failed one (IsTransactionExitStmt). */
static inline bool model_exit_stmt(model_query q) { return q == Q_COMMIT || q == Q_ROLLBACK || q == Q_ROLLBACK_TO; }

/* Statements that return rows (a Describe answers RowDescription, else NoData). */
static inline bool model_returns_rows(model_query q)
{
    switch (q) {
    case Q_SELECT1: case Q_SELECT2: case Q_SELECT_PARAM: case Q_FAIL: case Q_SHOW_PATH: case Q_SELECT_TEMP:
    case Q_EXECUTE: case Q_ADVISORY_LOCK: case Q_ADVISORY_UNLOCK_ALL:
        return true;
    default:
        return false;
    }
}

/* The session state a transaction changes and a rollback undoes. */
typedef struct model_sess {
    char search_path[24];  /* as SHOW prints it; "" the default */
    char app_name[8];      /* application_name; "" the default */
    bool untracked_set;    /* work_mem or x.y changed (settings pgsluice does not follow) */
    bool temp_table;       /* t exists */
    bool listening;        /* LISTEN ch */
} model_sess;

#define MODEL_MAX_OBJ 64

typedef struct model_obj {
    char *name;
    char *query;      /* statements: the text; portals: the text of their statement */
    uint16_t nparams; /* statements: parameter types given (or needed) */
} model_obj;

typedef struct pg_model {
    model_obj stmts[MODEL_MAX_OBJ], portals[MODEL_MAX_OBJ];
    int nstmts, nportals;
    bool skip;     /* an extended-protocol message failed: ignore everything up to Sync */
    char xact;     /* 'I', 'T' (in a block), 'E' (failed block) */
    bool broken;   /* a protocol violation: PostgreSQL would close the connection */
    char skipped[8][16]; /* names whose Parse was skipped after an error (the last few) */
    int nskipped;
    bool missing_skipped; /* a Bind/Describe failed with 26000 on such a name (see the fuzz target) */
    char skipped_close[8][16]; /* names whose Close was skipped after an error (the last few) */
    int nskipped_close;
    bool used_skipped_close; /* a Parse/Bind/Describe/Close used such a name */
    int batch, unnamed_batch;  /* Syncs and Queries so far; the count when the unnamed statement was made */
    bool unnamed_across_batches; /* a Bind/Describe used an unnamed statement of an earlier batch */
    bool passed_failed_xact; /* in a failed transaction, a check before the 25P02 one decided (a
                              * Bind's parameter count, a Describe without rows): see the fuzz target */
    /* session state: committed, and as the open transaction (explicit, or the implicit one of a
     * Query or of the extended-protocol messages up to Sync) has it; SAVEPOINT sp keeps a copy */
    model_sess committed, cur, saved;
    bool has_savepoint;
    char reported_app[8];  /* application_name as last reported (ParameterStatus before ReadyForQuery) */
    int advisory_locks;    /* session-level advisory locks held (not transactional) */
    bool prepared_q;       /* SQL PREPARE q (not transactional) */
    /* the model spoken to directly under pin_session_state = error: does pgsluice refuse this Query
     * or Parse (msg 'Q' or 'P', named: a named statement)? It then runs the refusal instead */
    bool (*refuses)(const char *text, char msg, bool named);
    bytes in;      /* received, not yet processed */
    bytes held;    /* answers not flushed yet */
    bytes *out;    /* where flushed answers go */
} pg_model;

static inline void model_init(pg_model *m, bytes *out)
{
    memset(m, 0, sizeof(*m));
    m->xact = 'I';
    m->out = out;
}

static inline void obj_clear(model_obj *o, int *n)
{
    for (int i = 0; i < *n; i++) {
        free(o[i].name);
        free(o[i].query);
    }
    *n = 0;
}

static inline void model_free(pg_model *m)
{
    obj_clear(m->stmts, &m->nstmts);
    obj_clear(m->portals, &m->nportals);
    bytes_free(&m->in);
    bytes_free(&m->held);
}

/* PostgreSQL sends its buffered output at Flush, at ReadyForQuery and after an ErrorResponse
 * (elog.c flushes errors at once); until then the client sees nothing. */
static inline void model_flush(pg_model *m)
{
    bytes_add(m->out, m->held.p, m->held.n);
    m->held.n = 0;
}

static inline model_obj *obj_find(model_obj *o, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(o[i].name, name)) return &o[i];
    return NULL;
}

static inline void obj_del(model_obj *o, int *n, const char *name)
{
    model_obj *x = obj_find(o, *n, name);
    if (!x) return;
    free(x->name);
    free(x->query);
    *x = o[--*n];
}

static inline bool obj_put(model_obj *o, int *n, const char *name, const char *query, uint16_t nparams)
{
    obj_del(o, n, name);
    if (*n == MODEL_MAX_OBJ) return false;
    o[*n].name = strdup(name);
    o[*n].query = strdup(query);
    o[*n].nparams = nparams;
    if (!o[*n].name || !o[*n].query) abort();
    (*n)++;
    return true;
}

static inline void out_msg(pg_model *m, char type, const void *body, size_t n)
{
    uint8_t h[5];
    h[0] = (uint8_t)type;
    sl_put_u32(h + 1, (uint32_t)(n + 4));
    bytes_add(&m->held, h, 5);
    bytes_add(&m->held, body, n);
}

/* The transaction ends: committed, or rolled back (an error outside a block ends the implicit
 * transaction at once). */
static inline void model_commit(pg_model *m)
{
    m->committed = m->cur;
    m->has_savepoint = false;
}
static inline void model_rollback(pg_model *m)
{
    m->cur = m->committed;
    m->has_savepoint = false;
}

static inline void out_error(pg_model *m, const char *sqlstate, const char *text)
{
    sl_pktbuf pb;
    sl_pb_init(&pb);
    sl_pb_error(&pb, false, sqlstate, "%s", text);
    bytes_add(&m->held, pb.data, pb.len);
    sl_pb_free(&pb);
    if (m->xact == 'T') m->xact = 'E';
    else if (m->xact == 'I') model_rollback(m);
    model_flush(m);
}

/* An error in an extended-protocol message: answer it, then skip to Sync. */
static inline void ext_error(pg_model *m, const char *sqlstate, const char *text)
{
    out_error(m, sqlstate, text);
    m->skip = true;
}

/* ReadyForQuery, after the ParameterStatus of a reported setting that changed (PostgreSQL reports
 * them just before it, ReportChangedGUCOptions). */
static inline void out_ready(pg_model *m)
{
    if (strcmp(m->cur.app_name, m->reported_app) != 0) {
        uint8_t ps[32];
        size_t n = (size_t)snprintf((char *)ps, sizeof(ps), "application_name%c%s", 0, m->cur.app_name) + 1;
        out_msg(m, 'S', ps, n);
        memcpy(m->reported_app, m->cur.app_name, sizeof(m->reported_app));
    }
    out_msg(m, 'Z', &m->xact, 1);
    model_flush(m);
}

static inline void out_rowdesc(pg_model *m)
{
    static const uint8_t rd[] = {0, 1, '?', 'c', 'o', 'l', 'u', 'm', 'n', '?', 0, 0, 0, 0, 0, 0, 0,
                                 0, 0, 0, 23, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0};
    out_msg(m, 'T', rd, sizeof(rd));
}

static inline void out_row_text(pg_model *m, const char *v)
{
    uint8_t row[64];
    size_t n = strlen(v);
    if (n > sizeof(row) - 6) n = sizeof(row) - 6;
    row[0] = 0, row[1] = 1;
    sl_put_u32(row + 2, (uint32_t)n);
    memcpy(row + 6, v, n);
    out_msg(m, 'D', row, n + 6);
}

static inline void out_row(pg_model *m, model_query q) { out_row_text(m, q == Q_SELECT2 ? "2" : "1"); }

static inline void out_tag(pg_model *m, const char *tag)
{
    out_msg(m, 'C', tag, strlen(tag) + 1);
}

/* Run a statement (of a simple Query, or an Execute of a portal): false when it failed. multi: one
 * of several statements of a Query (their implicit transaction block). */
static inline bool model_run(pg_model *m, model_query q, bool extended, bool describe_rows, bool multi)
{
#define FAIL(code, text) \
    do {                                                  \
        if (extended) ext_error(m, code, text);           \
        else out_error(m, code, text);                    \
        return false;                                     \
    } while (0)
    /* a syntax error comes first (the whole text is parsed before anything runs), then a failed
     * transaction refuses all but the statements that end it */
    if (m->xact == 'E' && !model_exit_stmt(q) && q != Q_BAD) FAIL("25P02", "current transaction is aborted");
    if (describe_rows && (q == Q_SELECT1 || q == Q_SELECT2 || q == Q_SHOW_PATH || q == Q_ADVISORY_LOCK ||
                          q == Q_ADVISORY_UNLOCK_ALL))
        out_rowdesc(m);
    switch (q) {
    case Q_SELECT1: case Q_SELECT2: out_row(m, q); out_tag(m, "SELECT 1"); return true;
    case Q_SELECT_PARAM:
        if (!extended) FAIL("42P02", "there is no parameter $1");
        out_row(m, q);
        out_tag(m, "SELECT 1");
        return true;
    case Q_FAIL: FAIL("22012", "division by zero");
    case Q_BAD: FAIL("42601", "syntax error");
    case Q_NOROWS: case Q_SET_WORK_MEM: m->cur.untracked_set = true; out_tag(m, "SET"); return true;
    case Q_BEGIN: m->xact = 'T'; out_tag(m, "BEGIN"); return true;
    case Q_COMMIT: case Q_ROLLBACK:
        out_tag(m, m->xact == 'E' || q == Q_ROLLBACK ? "ROLLBACK" : "COMMIT");
        if (m->xact == 'E' || q == Q_ROLLBACK) model_rollback(m);
        else model_commit(m);
        m->xact = 'I';
        obj_clear(m->portals, &m->nportals);
        return true;
    case Q_SAVEPOINT:
        if (m->xact == 'I') FAIL("25P01", "SAVEPOINT can only be used in transaction blocks");
        m->saved = m->cur;
        m->has_savepoint = true;
        out_tag(m, "SAVEPOINT");
        return true;
    case Q_ROLLBACK_TO:
        if (m->xact == 'I') FAIL("25P01", "ROLLBACK TO SAVEPOINT can only be used in transaction blocks");
        if (!m->has_savepoint) FAIL("3B001", "savepoint \"sp\" does not exist");
        m->cur = m->saved;
        m->xact = 'T';
        out_tag(m, "ROLLBACK");
        return true;
    case Q_DISCARD_ALL:
        if (m->xact == 'T' || multi) FAIL("25001", "DISCARD ALL cannot run inside a transaction block");
        obj_clear(m->stmts, &m->nstmts);
        obj_clear(m->portals, &m->nportals);
        memset(&m->cur, 0, sizeof(m->cur));
        m->advisory_locks = 0;
        m->prepared_q = false;
        out_tag(m, "DISCARD ALL");
        return true;
    case Q_DEALLOCATE_ALL:
        obj_clear(m->stmts, &m->nstmts);
        m->prepared_q = false;
        out_tag(m, "DEALLOCATE ALL");
        return true;
    case Q_SET_PATH_A: case Q_SET_PATH_B:
        snprintf(m->cur.search_path, sizeof(m->cur.search_path), "%s", q == Q_SET_PATH_A ? "a" : "\"B\", public");
        out_tag(m, "SET");
        return true;
    case Q_RESET_PATH: m->cur.search_path[0] = '\0'; out_tag(m, "RESET"); return true;
    case Q_SHOW_PATH:
        out_row_text(m, m->cur.search_path[0] ? m->cur.search_path : "\"$user\", public");
        out_tag(m, "SHOW");
        return true;
    case Q_SET_APP: snprintf(m->cur.app_name, sizeof(m->cur.app_name), "x"); out_tag(m, "SET"); return true;
    case Q_RESET_ALL:
        m->cur.search_path[0] = m->cur.app_name[0] = '\0';
        m->cur.untracked_set = false;
        out_tag(m, "RESET");
        return true;
    case Q_CREATE_TEMP:
        if (m->cur.temp_table) FAIL("42P07", "relation \"t\" already exists");
        m->cur.temp_table = true;
        out_tag(m, "CREATE TABLE");
        return true;
    case Q_SELECT_TEMP:
        if (!m->cur.temp_table) FAIL("42P01", "relation \"t\" does not exist");
        if (describe_rows) out_rowdesc(m);
        out_tag(m, "SELECT 0");
        return true;
    case Q_DISCARD_TEMP: m->cur.temp_table = false; out_tag(m, "DISCARD TEMP"); return true;
    case Q_PREPARE:
        if (m->prepared_q) FAIL("42P05", "prepared statement \"q\" already exists");
        m->prepared_q = true;
        out_tag(m, "PREPARE");
        return true;
    case Q_EXECUTE:
        if (!m->prepared_q) FAIL("26000", "prepared statement \"q\" does not exist");
        if (describe_rows) out_rowdesc(m);
        out_row(m, Q_SELECT1);
        out_tag(m, "SELECT 1");
        return true;
    case Q_DEALLOCATE:
        if (!m->prepared_q) FAIL("26000", "prepared statement \"q\" does not exist");
        m->prepared_q = false;
        out_tag(m, "DEALLOCATE");
        return true;
    case Q_ADVISORY_LOCK: case Q_ADVISORY_UNLOCK_ALL:
        if (q == Q_ADVISORY_LOCK) m->advisory_locks++;
        else m->advisory_locks = 0;
        out_row_text(m, ""); /* void */
        out_tag(m, "SELECT 1");
        return true;
    case Q_LISTEN: m->cur.listening = true; out_tag(m, "LISTEN"); return true;
    case Q_UNLISTEN_ALL: m->cur.listening = false; out_tag(m, "UNLISTEN"); return true;
    case Q_REFUSED: FAIL("0A000", "pgsluice: not supported in transaction pooling (pin_session_state = error)");
    }
#undef FAIL
    return true;
}

/* The statements of a Query text, split at ';' (the texts the model knows quote none), each run in
 * turn up to the first that fails. */
static inline void model_query_msg(pg_model *m, const char *text)
{
    /* a simple Query ends the unnamed statement and portal */
    obj_del(m->stmts, &m->nstmts, "");
    obj_del(m->portals, &m->nportals, "");
    if (m->refuses && m->refuses(text, 'Q', false)) text = MODEL_REFUSAL_PREFIX " (refused)";
    size_t len = strlen(text);
    const char *stmt[8];
    size_t slen[8];
    int n = 0;
    if (model_classify_n(text, len) == Q_REFUSED) { /* its dollar quote holds ';' */
        stmt[0] = text, slen[0] = len, n = 1;
    } else {
        for (const char *p = text; p <= text + len && n < 8;) {
            const char *semi = memchr(p, ';', (size_t)(text + len - p));
            size_t l = semi ? (size_t)(semi - p) : (size_t)(text + len - p);
            size_t k = 0;
            while (k < l && (p[k] == ' ' || p[k] == '\t' || p[k] == '\n')) k++;
            if (k < l) stmt[n] = p, slen[n] = l, n++;
            if (!semi) break;
            p = semi + 1;
        }
    }
    if (!n) out_msg(m, 'I', NULL, 0); /* EmptyQueryResponse */
    bool ok = true;
    for (int i = 0; i < n && ok; i++) ok = model_run(m, model_classify_n(stmt[i], slen[i]), false, true, n > 1);
    if (ok && m->xact == 'I') model_commit(m); /* the implicit transaction */
    /* its end (commit or rollback) drops the named portals an extended-protocol batch bound before
     * the Query (PostgreSQL's PreCommit_Portals / AtCleanup_Portals): an Execute of one answers 34000 */
    if (m->xact == 'I') obj_clear(m->portals, &m->nportals);
    out_ready(m);
}

/* A statement is used: is its name one whose Close got skipped? */
static inline void model_note_used(pg_model *m, const char *name)
{
    for (int i = 0; i < (m->nskipped_close < 8 ? m->nskipped_close : 8); i++)
        if (*name && !strcmp(m->skipped_close[i], name)) m->used_skipped_close = true;
}

/* A statement is missing: was its Parse one that got skipped? */
static inline void model_note_missing(pg_model *m, const char *name)
{
    for (int i = 0; i < (m->nskipped < 8 ? m->nskipped : 8); i++)
        if (*name && !strcmp(m->skipped[i], name)) m->missing_skipped = true;
}

/* One whole message; body excludes type and length. */
static inline void model_message(pg_model *m, char type, const uint8_t *body, uint32_t blen)
{
    sl_rd r;
    sl_rd_init(&r, body, blen);
    if (type == 'S') {
        m->batch++;
        m->skip = false;
        if (m->xact == 'I') { /* end of the implicit transaction */
            obj_clear(m->portals, &m->nportals);
            model_commit(m);
        }
        out_ready(m);
        return;
    }
    if (type == 'X') {
        m->broken = true;
        return;
    }
    if (m->skip) { /* everything up to Sync, simple Query included */
        const char *name = type == 'P' ? sl_rd_str(&r) : NULL;
        if (name && *name && strlen(name) < 16) strcpy(m->skipped[m->nskipped++ % 8], name);
        if (type == 'C' && sl_rd_u8(&r) == 'S' && (name = sl_rd_str(&r)) && *name && strlen(name) < 16)
            strcpy(m->skipped_close[m->nskipped_close++ % 8], name);
        return;
    }
    switch (type) {
    case 'Q': {
        const char *q = sl_rd_str(&r);
        m->batch++;
        if (!q) m->broken = true;
        else model_query_msg(m, q);
        return;
    }
    case 'P': {
        const char *name = sl_rd_str(&r), *q = sl_rd_str(&r);
        uint16_t n = sl_rd_u16(&r);
        sl_rd_bytes(&r, (size_t)n * 4);
        if (r.failed || sl_rd_left(&r)) {
            m->broken = true;
            return;
        }
        if (m->refuses && m->refuses(q, 'P', *name != 0)) q = MODEL_REFUSAL_PREFIX " (refused)";
        /* PostgreSQL's order: the unnamed statement is dropped, the text parsed, a failed
         * transaction refused (unless the statement ends it), the statement analysed, and only then
         * the name checked */
        if (!*name) obj_del(m->stmts, &m->nstmts, "");
        else model_note_used(m, name);
        model_query k = model_classify(q);
        if (k == Q_BAD) return ext_error(m, "42601", "syntax error");
        if (m->xact == 'E' && !model_exit_stmt(k)) return ext_error(m, "25P02", "current transaction is aborted");
        uint16_t need = k == Q_SELECT_PARAM ? 1 : k == Q_REFUSED ? n : 0;
        if (n > need) return ext_error(m, "42P18", "too many parameter types");
        if (*name && obj_find(m->stmts, m->nstmts, name))
            return ext_error(m, "42P05", "prepared statement already exists");
        if (!obj_put(m->stmts, &m->nstmts, name, q, need)) return ext_error(m, "54000", "too many statements");
        if (!*name) m->unnamed_batch = m->batch;
        out_msg(m, '1', NULL, 0);
        return;
    }
    case 'B': {
        const char *portal = sl_rd_str(&r), *stmt = sl_rd_str(&r);
        uint16_t nf = sl_rd_u16(&r);
        sl_rd_bytes(&r, (size_t)nf * 2);
        uint16_t np = sl_rd_u16(&r);
        for (int i = 0; i < np && !r.failed; i++) {
            uint32_t l = sl_rd_u32(&r);
            if (l != 0xffffffffu) sl_rd_bytes(&r, l);
        }
        uint16_t nr = sl_rd_u16(&r);
        sl_rd_bytes(&r, (size_t)nr * 2);
        if (r.failed || sl_rd_left(&r)) {
            m->broken = true;
            return;
        }
        /* PostgreSQL's order (exec_bind_message): the statement looked up, the parameter count
         * checked, and only then a failed transaction refused (unless the statement ends it and
         * has no parameters) */
        model_obj *st = obj_find(m->stmts, m->nstmts, stmt);
        if (st) model_note_used(m, stmt);
        if (st && !*stmt && m->unnamed_batch != m->batch) m->unnamed_across_batches = true;
        if (!st) {
            model_note_missing(m, stmt);
            return ext_error(m, "26000", "prepared statement does not exist");
        }
        if (np != st->nparams) {
            if (m->xact == 'E') m->passed_failed_xact = true;
            return ext_error(m, "08P01", "wrong number of parameters");
        }
        if (m->xact == 'E' && !(model_exit_stmt(model_classify(st->query)) && np == 0))
            return ext_error(m, "25P02", "current transaction is aborted");
        if (*portal && obj_find(m->portals, m->nportals, portal)) return ext_error(m, "42P03", "cursor exists");
        if (!obj_put(m->portals, &m->nportals, portal, st->query, 0)) return ext_error(m, "54000", "too many");
        out_msg(m, '2', NULL, 0);
        return;
    }
    case 'D': {
        uint8_t what = sl_rd_u8(&r);
        const char *name = sl_rd_str(&r);
        if (r.failed || sl_rd_left(&r) || (what != 'S' && what != 'P')) {
            m->broken = true;
            return;
        }
        /* looked up first; a failed transaction refuses only what returns rows (the row
         * description needs the catalogs): a statement or portal without rows is described */
        model_obj *o = what == 'S' ? obj_find(m->stmts, m->nstmts, name) : obj_find(m->portals, m->nportals, name);
        if (!o && what == 'S') model_note_missing(m, name);
        if (o && what == 'S') model_note_used(m, name);
        if (o && what == 'S' && !*name && m->unnamed_batch != m->batch) m->unnamed_across_batches = true;
        if (!o) return ext_error(m, what == 'S' ? "26000" : "34000", "does not exist");
        bool rows = model_returns_rows(model_classify(o->query));
        if (m->xact == 'E') {
            if (rows) return ext_error(m, "25P02", "current transaction is aborted");
            m->passed_failed_xact = true;
        }
        if (what == 'S') {
            uint8_t pd[2 + 4 * 8] = {0};
            uint16_t np = o->nparams < 8 ? o->nparams : 8;
            pd[1] = (uint8_t)np;
            for (uint16_t i = 0; i < np; i++) pd[2 + 4 * i + 3] = 23;
            out_msg(m, 't', pd, 2 + 4u * np);
        }
        if (!rows) out_msg(m, 'n', NULL, 0);
        else out_rowdesc(m);
        return;
    }
    case 'E': {
        const char *portal = sl_rd_str(&r);
        sl_rd_u32(&r);
        if (r.failed || sl_rd_left(&r)) {
            m->broken = true;
            return;
        }
        model_obj *o = obj_find(m->portals, m->nportals, portal);
        if (!o) return ext_error(m, "34000", "portal does not exist");
        model_run(m, model_classify(o->query), true, false, false);
        return;
    }
    case 'C': {
        uint8_t what = sl_rd_u8(&r);
        const char *name = sl_rd_str(&r);
        if (r.failed || sl_rd_left(&r) || (what != 'S' && what != 'P')) {
            m->broken = true;
            return;
        }
        if (what == 'S') {
            model_note_used(m, name); /* closed again behind its own skipped Close */
            obj_del(m->stmts, &m->nstmts, name);
        } else {
            obj_del(m->portals, &m->nportals, name);
        }
        out_msg(m, '3', NULL, 0);
        return;
    }
    case 'H': model_flush(m); return;
    default: m->broken = true; return;
    }
}

/* Process every whole message received so far. */
static inline void model_feed(pg_model *m, const void *p, size_t n)
{
    bytes_add(&m->in, p, n);
    size_t off = 0;
    while (!m->broken && m->in.n - off >= 5) {
        uint32_t len = sl_get_u32(m->in.p + off + 1);
        if (len < 4) {
            m->broken = true;
            break;
        }
        if (m->in.n - off < (size_t)len + 1) break;
        model_message(m, (char)m->in.p[off], m->in.p + off + 5, len - 4);
        off += (size_t)len + 1;
    }
    bytes_drop_front(&m->in, off);
}

/* ---- pgsluice's own queries on a server (core/server_setup.c), whose answers never reach a
 * client: run on the model between transactions, without output. Each is a simple Query, which
 * ends the unnamed statement and portal. */

static inline void model_pooler_query(pg_model *m)
{
    obj_del(m->stmts, &m->nstmts, "");
    obj_del(m->portals, &m->nportals, "");
}

/* DISCARD ALL, the reset after a pinned client (SL_SETUP_RESET). */
static inline void model_pooler_discard_all(pg_model *m)
{
    model_pooler_query(m);
    size_t held = m->held.n;
    model_run(m, Q_DISCARD_ALL, false, false, false);
    m->held.n = held; /* its answer goes to pgsluice */
    model_commit(m);
    memcpy(m->reported_app, m->cur.app_name, sizeof(m->reported_app)); /* its ParameterStatus too */
}

/* Does the session hold an advisory lock (SL_SETUP_ADVISORY)? */
static inline bool model_pooler_advisory_held(pg_model *m)
{
    model_pooler_query(m);
    return m->advisory_locks > 0;
}

/* set_config(search_path / application_name, value) or RESET (SL_SETUP_PARAMS); NULL: the default. */
static inline void model_pooler_set(pg_model *m, bool app_name, const char *value)
{
    model_pooler_query(m);
    char *dst = app_name ? m->cur.app_name : m->cur.search_path;
    size_t cap = app_name ? sizeof(m->cur.app_name) : sizeof(m->cur.search_path);
    snprintf(dst, cap, "%s", value ? value : "");
    model_commit(m);
    if (app_name) memcpy(m->reported_app, m->cur.app_name, sizeof(m->reported_app));
}

#endif
