/* txn_intent.c - classifying a query's transaction declaration for read_write_split: a small lexer
 * (words, ';', ',', comments, quoted strings and identifiers, dollar quotes, E'' strings) and the
 * grammar of BEGIN / START TRANSACTION / SET TRANSACTION modes and COMMIT / ROLLBACK. Whatever it
 * does not recognise is SL_TXN_OTHER (the primary): never a guess. */
#include "proto/txn_intent.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

typedef enum { TK_END, TK_WORD, TK_SEMI, TK_COMMA, TK_OTHER } tk_kind;

typedef struct tok {
    tk_kind kind;
    const char *s;
    size_t n;
} tok;

typedef struct lexer {
    const char *p, *end;
} lexer;

static bool word_start(char c) { return isalpha((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80; }
static bool word_char(char c) { return word_start(c) || isdigit((unsigned char)c) || c == '$'; }

/* Skip whitespace and comments; false if a comment is not closed. */
static bool skip_space(lexer *L)
{
    for (;;) {
        while (L->p < L->end && isspace((unsigned char)*L->p)) L->p++;
        if (L->end - L->p >= 2 && L->p[0] == '-' && L->p[1] == '-') {
            while (L->p < L->end && *L->p != '\n') L->p++;
            continue;
        }
        if (L->end - L->p >= 2 && L->p[0] == '/' && L->p[1] == '*') {
            int depth = 0;
            while (L->p < L->end) {
                if (L->end - L->p >= 2 && L->p[0] == '/' && L->p[1] == '*') depth++, L->p += 2;
                else if (L->end - L->p >= 2 && L->p[0] == '*' && L->p[1] == '/') {
                    L->p += 2;
                    if (--depth == 0) break;
                } else L->p++;
            }
            if (depth) return false;
            continue;
        }
        return true;
    }
}

/* A quoted run ending in q ('' or "" doubles it; backslash escapes when esc). false: unterminated. */
static bool skip_quoted(lexer *L, char q, bool esc)
{
    L->p++;
    while (L->p < L->end) {
        char c = *L->p++;
        if (esc && c == '\\' && L->p < L->end) L->p++;
        else if (c == q) {
            if (L->p < L->end && *L->p == q) L->p++;
            else return true;
        }
    }
    return false;
}

/* $tag$ ... $tag$ starting at L->p ('$'); false if it is not a dollar quote or is unterminated
 * (L->p is then unchanged when it is not one). */
static int skip_dollar(lexer *L)
{
    const char *q = L->p + 1;
    if (q < L->end && isdigit((unsigned char)*q)) return 0; /* $1: a parameter */
    while (q < L->end && *q != '$' && word_char(*q)) q++;
    if (q >= L->end || *q != '$') return 0; /* not a dollar quote ($1 parameter etc.) */
    size_t taglen = (size_t)(q - L->p) + 1;
    const char *tag = L->p;
    for (const char *s = q + 1; s + taglen <= L->end; s++)
        if (*s == '$' && !memcmp(s, tag, taglen)) {
            L->p = s + taglen;
            return 1;
        }
    return -1;
}

/* The next token; TK_OTHER with s NULL when the text cannot be lexed (unterminated). */
static tok next(lexer *L)
{
    tok t = {TK_END, NULL, 0};
    if (!skip_space(L)) return (tok){TK_OTHER, NULL, 0};
    if (L->p >= L->end) return t;
    const char *start = L->p;
    char c = *L->p;
    if (c == ';' || c == ',') {
        L->p++;
        return (tok){c == ';' ? TK_SEMI : TK_COMMA, start, 1};
    }
    if ((c == 'e' || c == 'E') && L->end - L->p >= 2 && L->p[1] == '\'') {
        L->p++;
        return skip_quoted(L, '\'', true) ? (tok){TK_OTHER, start, (size_t)(L->p - start)} : (tok){TK_OTHER, NULL, 0};
    }
    if (word_start(c)) {
        while (L->p < L->end && word_char(*L->p)) L->p++;
        return (tok){TK_WORD, start, (size_t)(L->p - start)};
    }
    if (c == '\'' || c == '"')
        return skip_quoted(L, c, false) ? (tok){TK_OTHER, start, (size_t)(L->p - start)} : (tok){TK_OTHER, NULL, 0};
    if (c == '$') {
        int d = skip_dollar(L);
        if (d < 0) return (tok){TK_OTHER, NULL, 0};
        if (d == 0) L->p++;
        return (tok){TK_OTHER, start, (size_t)(L->p - start)};
    }
    L->p++;
    return (tok){TK_OTHER, start, 1};
}

static bool is(const tok *t, const char *word)
{
    return t->kind == TK_WORD && strlen(word) == t->n && !strncasecmp(t->s, word, t->n);
}

#define MAXTOK 24

/* One statement's first tokens (up to MAXTOK; the rest skipped). n < 0: the text could not be
 * lexed. *last: no statement follows. */
typedef struct stmt {
    tok t[MAXTOK];
    int n;
    bool last;
    bool bad;
} stmt;

static void read_stmt(lexer *L, stmt *st)
{
    st->n = 0;
    st->bad = false;
    for (;;) {
        tok t = next(L);
        if (t.kind == TK_OTHER && !t.s) {
            st->bad = true;
            st->last = true;
            return;
        }
        if (t.kind == TK_END) {
            st->last = true;
            return;
        }
        if (t.kind == TK_SEMI) {
            /* only empty statements (;;) and space may follow: then this is the last one */
            lexer peek = *L;
            tok u;
            do u = next(&peek);
            while (u.kind == TK_SEMI);
            st->last = u.kind == TK_END;
            return;
        }
        if (st->n < MAXTOK) st->t[st->n++] = t;
        else st->bad = true; /* longer than any declaration pgsluice reads */
    }
}

typedef struct modes {
    bool ro, rw, ok;
} modes;

/* Transaction modes from t[i] on: ISOLATION LEVEL ..., READ ONLY/WRITE, [NOT] DEFERRABLE, commas. */
static modes read_modes(const stmt *st, int i)
{
    modes m = {false, false, true};
    while (i < st->n) {
        const tok *t = &st->t[i];
        if (t->kind == TK_COMMA) {
            i++;
        } else if (is(t, "read") && i + 1 < st->n && is(&st->t[i + 1], "only")) {
            m.ro = true, i += 2;
        } else if (is(t, "read") && i + 1 < st->n && is(&st->t[i + 1], "write")) {
            m.rw = true, i += 2;
        } else if (is(t, "deferrable")) {
            i++;
        } else if (is(t, "not") && i + 1 < st->n && is(&st->t[i + 1], "deferrable")) {
            i += 2;
        } else if (is(t, "isolation") && i + 2 < st->n && is(&st->t[i + 1], "level")) {
            const tok *a = &st->t[i + 2], *b = i + 3 < st->n ? &st->t[i + 3] : NULL;
            if (is(a, "serializable")) i += 3;
            else if (is(a, "repeatable") && b && is(b, "read")) i += 4;
            else if (is(a, "read") && b && (is(b, "committed") || is(b, "uncommitted"))) i += 4;
            else return (modes){false, false, false};
        } else {
            return (modes){false, false, false};
        }
    }
    if (m.ro && m.rw) m.ok = false;
    return m;
}

/* BEGIN [WORK|TRANSACTION] / START TRANSACTION: where its modes start, or -1. */
static int begin_modes_at(const stmt *st)
{
    if (st->n >= 1 && is(&st->t[0], "begin"))
        return st->n >= 2 && (is(&st->t[1], "work") || is(&st->t[1], "transaction")) ? 2 : 1;
    if (st->n >= 2 && is(&st->t[0], "start") && is(&st->t[1], "transaction")) return 2;
    return -1;
}

static bool is_set_transaction(const stmt *st)
{
    return st->n >= 3 && is(&st->t[0], "set") && is(&st->t[1], "transaction") && !is(&st->t[2], "snapshot");
}

/* COMMIT/END/ROLLBACK/ABORT [WORK|TRANSACTION] and nothing else (no AND CHAIN, TO SAVEPOINT, PREPARED). */
static sl_txn_kind end_kind(const stmt *st)
{
    if (st->n < 1 || st->n > 2) return SL_TXN_OTHER;
    if (st->n == 2 && !is(&st->t[1], "work") && !is(&st->t[1], "transaction")) return SL_TXN_OTHER;
    if (is(&st->t[0], "commit") || is(&st->t[0], "end")) return SL_TXN_COMMIT;
    if (is(&st->t[0], "rollback") || is(&st->t[0], "abort")) return SL_TXN_ROLLBACK;
    return SL_TXN_OTHER;
}

/* A statement that may end the transaction (or start another). */
static bool ends_transaction(const stmt *st)
{
    if (st->n < 1) return false;
    const tok *w = &st->t[0];
    return is(w, "commit") || is(w, "end") || is(w, "rollback") || is(w, "abort") || is(w, "begin") ||
           is(w, "start") || (is(w, "prepare") && st->n >= 2 && is(&st->t[1], "transaction"));
}

/* The statements after a read-only declaration stay in that transaction: none ends it, except a
 * plain COMMIT/ROLLBACK as the very last. */
static bool rest_stays_inside(lexer *L, bool last)
{
    stmt st;
    while (!last) {
        read_stmt(L, &st);
        if (st.bad) return false;
        last = st.last;
        if (st.n == 0) continue;
        if (ends_transaction(&st) && !(last && end_kind(&st) != SL_TXN_OTHER)) return false;
    }
    return true;
}

sl_txn_kind sl_txn_classify(const char *sql, size_t len)
{
    lexer L = {sql, sql + len};
    stmt first;
    do read_stmt(&L, &first);
    while (first.n == 0 && !first.last && !first.bad);
    if (first.bad || first.n == 0) return SL_TXN_OTHER;
    int at = begin_modes_at(&first);
    if (at >= 0) {
        modes m = read_modes(&first, at);
        if (!m.ok) return SL_TXN_OTHER;
        if (m.rw) return SL_TXN_READ_WRITE;
        if (first.last) return m.ro ? SL_TXN_READ_ONLY : SL_TXN_BARE_BEGIN;
        if (m.ro) return rest_stays_inside(&L, false) ? SL_TXN_READ_ONLY : SL_TXN_OTHER;
        /* BEGIN; SET TRANSACTION READ ONLY; ... */
        stmt second;
        do read_stmt(&L, &second);
        while (second.n == 0 && !second.last && !second.bad);
        if (second.bad || !is_set_transaction(&second)) return SL_TXN_OTHER;
        m = read_modes(&second, 2);
        return m.ok && m.ro && rest_stays_inside(&L, second.last) ? SL_TXN_READ_ONLY : SL_TXN_OTHER;
    }
    if (is_set_transaction(&first)) {
        modes m = read_modes(&first, 2);
        if (!m.ok || !m.ro) return SL_TXN_OTHER;
        return rest_stays_inside(&L, first.last) ? SL_TXN_READ_ONLY : SL_TXN_OTHER;
    }
    return first.last ? end_kind(&first) : SL_TXN_OTHER;
}
