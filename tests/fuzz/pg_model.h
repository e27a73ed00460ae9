/* pg_model.h - a tiny model of a PostgreSQL backend's extended query protocol, for
 * fuzz_extended_protocol.c: named and unnamed statements and portals, skip-till-Sync after an
 * error, transaction status, and a handful of query texts with fixed behaviour. It answers
 * messages as PostgreSQL does in the ways pgsluice's statement rewriting depends on; two of them
 * are compared (one behind pgsluice, one spoken to directly). Header-only, harness code. */
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

/* Query texts the model knows; anything else is a syntax error. */
typedef enum { Q_SELECT1, Q_SELECT2, Q_SELECT_PARAM, Q_FAIL, Q_NOROWS, Q_BAD } model_query;

static inline model_query model_classify(const char *q)
{
    if (!strcmp(q, "SELECT 1")) return Q_SELECT1;
    if (!strcmp(q, "SELECT 2")) return Q_SELECT2;
    if (!strcmp(q, "SELECT $1::int")) return Q_SELECT_PARAM;
    if (!strcmp(q, "SELECT 1/0")) return Q_FAIL;
    if (!strcmp(q, "SET x.y = 1")) return Q_NOROWS;
    return Q_BAD;
}

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

static inline void out_error(pg_model *m, const char *sqlstate, const char *text)
{
    sl_pktbuf pb;
    sl_pb_init(&pb);
    sl_pb_error(&pb, false, sqlstate, "%s", text);
    bytes_add(&m->held, pb.data, pb.len);
    sl_pb_free(&pb);
    if (m->xact == 'T') m->xact = 'E';
    model_flush(m);
}

/* An error in an extended-protocol message: answer it, then skip to Sync. */
static inline void ext_error(pg_model *m, const char *sqlstate, const char *text)
{
    out_error(m, sqlstate, text);
    m->skip = true;
}

static inline void out_ready(pg_model *m)
{
    out_msg(m, 'Z', &m->xact, 1);
    model_flush(m);
}

static inline void out_rowdesc(pg_model *m)
{
    static const uint8_t rd[] = {0, 1, '?', 'c', 'o', 'l', 'u', 'm', 'n', '?', 0, 0, 0, 0, 0, 0, 0,
                                 0, 0, 0, 23, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0};
    out_msg(m, 'T', rd, sizeof(rd));
}

static inline void out_row(pg_model *m, model_query q)
{
    uint8_t row[] = {0, 1, 0, 0, 0, 1, (uint8_t)(q == Q_SELECT2 ? '2' : '1')};
    out_msg(m, 'D', row, sizeof(row));
}

static inline void out_tag(pg_model *m, const char *tag)
{
    out_msg(m, 'C', tag, strlen(tag) + 1);
}

/* Run a statement (simple Query, or Execute of a portal). */
static inline void model_run(pg_model *m, model_query q, bool extended, bool describe_rows)
{
    if (q == Q_FAIL) {
        if (extended) ext_error(m, "22012", "division by zero");
        else out_error(m, "22012", "division by zero");
        return;
    }
    if (q == Q_NOROWS) {
        out_tag(m, "SET");
        return;
    }
    if (describe_rows) out_rowdesc(m);
    out_row(m, q);
    out_tag(m, "SELECT 1");
}

static inline void model_query_msg(pg_model *m, const char *text)
{
    /* keywords as PostgreSQL reads them: any case, blanks around, a trailing semicolon */
    char q[64];
    while (*text == ' ' || *text == '\t' || *text == '\n') text++;
    snprintf(q, sizeof(q), "%s", text);
    size_t n = strlen(q);
    while (n && (q[n - 1] == ' ' || q[n - 1] == ';' || q[n - 1] == '\n')) q[--n] = '\0';
    bool begin = !strcasecmp(q, "BEGIN"), commit = !strcasecmp(q, "COMMIT"), rollback = !strcasecmp(q, "ROLLBACK");
    bool discard = !strcasecmp(q, "DISCARD ALL"), deallocate = !strcasecmp(q, "DEALLOCATE ALL");
    /* a simple Query ends the unnamed statement and portal, and an implicit transaction */
    obj_del(m->stmts, &m->nstmts, "");
    obj_del(m->portals, &m->nportals, "");
    if (begin) {
        if (m->xact == 'E') out_error(m, "25P02", "current transaction is aborted");
        else m->xact = 'T', out_tag(m, "BEGIN");
    } else if (commit || rollback) {
        out_tag(m, m->xact == 'E' || rollback ? "ROLLBACK" : "COMMIT");
        m->xact = 'I';
        obj_clear(m->portals, &m->nportals);
    } else if (m->xact == 'E') {
        out_error(m, "25P02", "current transaction is aborted");
    } else if (discard || deallocate) {
        if (m->xact == 'T' && discard) {
            out_error(m, "25001", "DISCARD ALL cannot run inside a transaction block");
        } else {
            obj_clear(m->stmts, &m->nstmts);
            if (discard) obj_clear(m->portals, &m->nportals);
            out_tag(m, discard ? "DISCARD ALL" : "DEALLOCATE ALL");
        }
    } else {
        model_query k = model_classify(text);
        if (k == Q_BAD || k == Q_SELECT_PARAM) out_error(m, k == Q_BAD ? "42601" : "42P02", "cannot run that");
        else model_run(m, k, false, true);
    }
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
        if (m->xact == 'I') obj_clear(m->portals, &m->nportals); /* end of the implicit transaction */
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
        /* PostgreSQL's order: the unnamed statement is dropped, the text parsed, a failed
         * transaction refused, the statement analysed, and only then the name checked */
        if (!*name) obj_del(m->stmts, &m->nstmts, "");
        else model_note_used(m, name);
        model_query k = model_classify(q);
        if (k == Q_BAD) return ext_error(m, "42601", "syntax error");
        if (m->xact == 'E') return ext_error(m, "25P02", "current transaction is aborted");
        uint16_t need = k == Q_SELECT_PARAM ? 1 : 0;
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
         * checked, and only then a failed transaction refused (no text here ends one) */
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
        if (m->xact == 'E') return ext_error(m, "25P02", "current transaction is aborted");
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
        if (m->xact == 'E') {
            if (model_classify(o->query) != Q_NOROWS) return ext_error(m, "25P02", "current transaction is aborted");
            m->passed_failed_xact = true;
        }
        if (what == 'S') {
            uint8_t pd[6] = {0, 0, 0, 0, 0, 23};
            pd[1] = (uint8_t)o->nparams;
            out_msg(m, 't', pd, o->nparams ? 6 : 2);
        }
        if (model_classify(o->query) == Q_NOROWS) out_msg(m, 'n', NULL, 0);
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
        if (m->xact == 'E') return ext_error(m, "25P02", "current transaction is aborted");
        model_run(m, model_classify(o->query), true, false);
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

#endif
