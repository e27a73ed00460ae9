/* stmt_class.c - reading what a statement leaves on the session (see stmt_class.h): a lexer that
 * knows PostgreSQL's comments, strings, quoted identifiers and dollar quotes, the leading keywords
 * of SET / RESET / DISCARD / LISTEN / DECLARE / CREATE / PREPARE / ..., and function calls such as
 * pg_advisory_lock( anywhere outside literals and comments; and the hot path's one-pass shortcut,
 * with its per-thread table of plain texts seen before. */
#include "proto/stmt_class.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PIN_NAME(id, name) name,
const char *const sl_pin_reason_names[SL_PIN_NREASONS] = {SL_PIN_REASONS(PIN_NAME)};
#undef PIN_NAME

void sl_pin_reasons_text(unsigned bits, char *buf, size_t len)
{
    size_t used = 0;
    if (len) buf[0] = '\0';
    for (int r = 0; r < SL_PIN_NREASONS; r++) {
        if (!(bits & SL_PIN_BIT(r))) continue;
        int n = snprintf(buf + used, len > used ? len - used : 0, "%s%s", used ? "," : "", sl_pin_reason_names[r]);
        if (n < 0 || (size_t)n >= len - used) break;
        used += (size_t)n;
    }
}

/* ---- lexer ---- */

typedef enum { T_END, T_WORD, T_QIDENT, T_STRING, T_ESTRING, T_DOLLAR, T_PARAM, T_NUMBER, T_SEMI, T_COMMA,
               T_LPAREN, T_OP, T_BAD } tkind;

typedef struct tok {
    tkind k;
    const char *s; /* the token's text (for quoted ones, with the quotes) */
    size_t n;
} tok;

static bool word_start(char c) { return isalpha((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80; }
static bool word_char(char c) { return word_start(c) || isdigit((unsigned char)c) || c == '$'; }

/* A block comment starting at p (on its slash-star), nested as PostgreSQL nests them: what follows
 * it, or NULL if it never ends. */
static const char *skip_block_comment(const char *p, const char *end)
{
    int depth = 0;
    while (p < end) {
        if (end - p >= 2 && p[0] == '/' && p[1] == '*') depth++, p += 2;
        else if (end - p >= 2 && p[0] == '*' && p[1] == '/') {
            p += 2;
            if (--depth == 0) return p;
        } else p++;
    }
    return NULL;
}

static bool skip_space(const char **pp, const char *end)
{
    const char *p = *pp;
    for (;;) {
        while (p < end && isspace((unsigned char)*p)) p++;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
            while (p < end && *p != '\n') p++;
            continue;
        }
        if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
            p = skip_block_comment(p, end);
            if (!p) {
                *pp = end; /* unterminated: all of it was comment */
                return false;
            }
            continue;
        }
        *pp = p;
        return true;
    }
}

/* A run quoted by q starting at *pp (on the quote); doubled quotes stay inside; backslash escapes
 * when esc. false if unterminated. */
static bool skip_quoted(const char **pp, const char *end, char q, bool esc)
{
    const char *p = *pp + 1;
    while (p < end) {
        char c = *p++;
        if (esc && c == '\\' && p < end) p++;
        else if (c == q) {
            if (p < end && *p == q) p++;
            else {
                *pp = p;
                return true;
            }
        }
    }
    return false;
}

static tok next_tok(const char **pp, const char *end)
{
    if (!skip_space(pp, end)) return (tok){T_BAD, *pp, 0};
    const char *p = *pp, *start = p;
    if (p >= end) return (tok){T_END, p, 0};
    char c = *p;
    if (c == ';' || c == ',' || c == '(') {
        *pp = p + 1;
        return (tok){c == ';' ? T_SEMI : c == ',' ? T_COMMA : T_LPAREN, start, 1};
    }
    /* E'..', and the prefixed forms B'..' X'..' N'..' U&'..' U&".." */
    if ((c == 'e' || c == 'E') && end - p >= 2 && p[1] == '\'') {
        p++;
        if (!skip_quoted(&p, end, '\'', true)) return (tok){T_BAD, start, 0};
        *pp = p;
        return (tok){T_ESTRING, start, (size_t)(p - start)};
    }
    if ((c == 'u' || c == 'U') && end - p >= 3 && p[1] == '&' && (p[2] == '\'' || p[2] == '"')) {
        p += 2;
        char q = *p;
        if (!skip_quoted(&p, end, q, false)) return (tok){T_BAD, start, 0};
        *pp = p;
        return (tok){T_OP, start, (size_t)(p - start)}; /* understood as "something": never a tracked value */
    }
    if (strchr("bBxXnN", c) && end - p >= 2 && p[1] == '\'') {
        p++;
        if (!skip_quoted(&p, end, '\'', false)) return (tok){T_BAD, start, 0};
        *pp = p;
        return (tok){c == 'n' || c == 'N' ? T_STRING : T_OP, start, (size_t)(p - start)};
    }
    if (word_start(c)) {
        while (p < end && word_char(*p)) p++;
        *pp = p;
        return (tok){T_WORD, start, (size_t)(p - start)};
    }
    if (c == '\'' || c == '"') {
        if (!skip_quoted(&p, end, c, false)) return (tok){T_BAD, start, 0};
        *pp = p;
        return (tok){c == '"' ? T_QIDENT : T_STRING, start, (size_t)(p - start)};
    }
    if (c == '$') {
        const char *q = p + 1;
        if (q < end && isdigit((unsigned char)*q)) {
            while (q < end && isdigit((unsigned char)*q)) q++;
            *pp = q;
            return (tok){T_PARAM, start, (size_t)(q - start)};
        }
        while (q < end && *q != '$' && word_char(*q)) q++;
        if (q < end && *q == '$') {
            size_t taglen = (size_t)(q - p) + 1;
            for (const char *s = q + 1; s + taglen <= end; s++)
                if (*s == '$' && !memcmp(s, p, taglen)) {
                    *pp = s + taglen;
                    return (tok){T_DOLLAR, start, (size_t)(*pp - start)};
                }
            return (tok){T_BAD, start, 0};
        }
        *pp = p + 1;
        return (tok){T_OP, start, 1};
    }
    if (isdigit((unsigned char)c) || (c == '.' && end - p >= 2 && isdigit((unsigned char)p[1]))) {
        while (p < end && (isalnum((unsigned char)*p) || *p == '.' || *p == '_' ||
                           ((*p == '+' || *p == '-') && (p[-1] == 'e' || p[-1] == 'E'))))
            p++;
        *pp = p;
        return (tok){T_NUMBER, start, (size_t)(p - start)};
    }
    /* operators: a run of operator characters is one token (so "=" alone is recognisable) */
    while (p < end && strchr("+-*/<>=~!@#%^&|`?:.)[]", *p)) {
        if (end - p >= 2 && ((p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*'))) break;
        p++;
    }
    if (p == start) p++;
    *pp = p;
    return (tok){T_OP, start, (size_t)(p - start)};
}

static bool is(const tok *t, const char *w)
{
    return t->k == T_WORD && strlen(w) == t->n && !strncasecmp(t->s, w, t->n);
}

static bool is_op(const tok *t, const char *op) { return t->k == T_OP && strlen(op) == t->n && !memcmp(t->s, op, t->n); }

/* A function's name as called: an unquoted word (case-insensitive) or a quoted identifier. */
static bool names_function(const tok *t, const char *fn)
{
    if (t->k == T_WORD) return is(t, fn);
    return t->k == T_QIDENT && t->n == strlen(fn) + 2 && !memcmp(t->s + 1, fn, strlen(fn));
}

/* ---- values ---- */

typedef struct sbuf {
    char *b;
    size_t n, cap;
    bool overflow;
} sbuf;

static void sb_putc(sbuf *sb, char c)
{
    if (sb->n + 1 >= sb->cap) {
        sb->overflow = true;
        return;
    }
    sb->b[sb->n++] = c;
    sb->b[sb->n] = '\0';
}

/* The content of a quoted token (identifier or string) with its doubled quotes undone; E'' escapes
 * only in their simple forms (\\ \' and the letters b f n r t): anything else is not understood. */
static bool unquote(const tok *t, sbuf *out)
{
    const char *p = t->s, *end = t->s + t->n;
    bool esc = t->k == T_ESTRING;
    if (esc) p++;
    if (t->k == T_STRING && (*p == 'n' || *p == 'N')) p++;
    char q = *p++;
    end--; /* the closing quote */
    while (p < end) {
        char c = *p++;
        if (c == q) p++; /* doubled */
        else if (esc && c == '\\') {
            char e = *p++;
            switch (e) {
            case '\\': case '\'': case '"': c = e; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            default: return false;
            }
        }
        if (c == '\0') return false;
        sb_putc(out, c);
    }
    return true;
}

/* Parameters whose list elements the server keeps as quoted identifiers (GUC_LIST_QUOTE). */
static bool list_quoted(const char *name)
{
    static const char *const names[] = {"search_path", "temp_tablespaces", "session_preload_libraries",
                                        "shared_preload_libraries", "local_preload_libraries", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], name)) return true;
    return false;
}

/* quote_identifier's rule: plain lower-case identifiers stay bare, anything else is double-quoted
 * (a reserved word left bare is still read back as the same schema name by set_config). */
static void put_ident(sbuf *out, const char *s, size_t n)
{
    bool bare = n > 0 && (islower((unsigned char)s[0]) || s[0] == '_');
    for (size_t i = 0; bare && i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_') bare = false;
    if (!bare) sb_putc(out, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') sb_putc(out, '"');
        sb_putc(out, s[i]);
    }
    if (!bare) sb_putc(out, '"');
}

/* One element of a SET value, in the form the server stores it. */
static bool put_element(const tok *t, const tok *sign, bool quote_list, sbuf *out)
{
    char tmp[SL_STMT_VALUE_MAX];
    sbuf e = {tmp, 0, sizeof(tmp), false};
    tmp[0] = '\0';
    switch (t->k) {
    case T_WORD: /* folded to lower case, as the server does */
        for (size_t i = 0; i < t->n; i++) sb_putc(&e, (char)tolower((unsigned char)t->s[i]));
        break;
    case T_QIDENT: case T_STRING: case T_ESTRING:
        if (!unquote(t, &e)) return false;
        break;
    case T_NUMBER:
        if (sign) sb_putc(&e, sign->s[0]);
        for (size_t i = 0; i < t->n; i++) sb_putc(&e, t->s[i]);
        break;
    default: return false;
    }
    if (e.overflow) return false;
    if (quote_list && t->k != T_NUMBER) put_ident(out, tmp, e.n);
    else
        for (size_t i = 0; i < e.n; i++) sb_putc(out, tmp[i]);
    return true;
}

/* The value tokens of SET name TO ... (toks[i..n)) into info->value; false if not understood. */
static bool take_value(const tok *toks, int i, int n, sl_stmt_info *info)
{
    if (i >= n) return false;
    if (i + 1 == n && is(&toks[i], "default")) {
        info->is_default = true;
        return true;
    }
    bool quote_list = list_quoted(info->name);
    sbuf out = {info->value, 0, sizeof(info->value), false};
    info->value[0] = '\0';
    int elems = 0;
    while (i < n) {
        const tok *sign = NULL;
        if (is_op(&toks[i], "-") || is_op(&toks[i], "+")) sign = &toks[i++];
        if (i >= n || (sign && toks[i].k != T_NUMBER)) return false;
        if (elems++) {
            sb_putc(&out, ',');
            sb_putc(&out, ' ');
        }
        if (!put_element(&toks[i], sign, quote_list, &out)) return false;
        i++;
        if (i < n) {
            if (toks[i].k != T_COMMA) return false;
            i++;
            if (i >= n) return false;
        }
    }
    return !out.overflow;
}

static void copy_name(sl_stmt_info *info, const tok *t)
{
    sbuf out = {info->name, 0, sizeof(info->name), false};
    info->name[0] = '\0';
    if (t->k == T_WORD) {
        for (size_t i = 0; i < t->n; i++) sb_putc(&out, (char)tolower((unsigned char)t->s[i]));
    } else if (t->k == T_QIDENT) {
        if (!unquote(t, &out)) info->name[0] = '\0';
    }
    if (out.overflow) info->name[0] = '\0';
}

/* ---- statements ---- */

#define MAXTOK 96

typedef struct stmt {
    tok t[MAXTOK];
    int n;          /* tokens kept */
    bool more;      /* the statement has more tokens than kept */
} stmt;

/* SET ...: toks[0] is SET. */
static void classify_set(const stmt *st, sl_stmt_info *info)
{
    const tok *t = st->t;
    int n = st->n, i = 1;
    bool local = false;
    if (i < n && is(&t[i], "local")) local = true, i++;
    else if (i < n && is(&t[i], "session")) {
        if (i + 1 < n && (is(&t[i + 1], "authorization") || is(&t[i + 1], "characteristics"))) {
            info->kind = SL_SK_SET;
            info->pins |= is(&t[i + 1], "authorization") ? SL_PIN_BIT(SL_PINR_ROLE) : SL_PIN_BIT(SL_PINR_SET);
            return;
        }
        i++;
    }
    if (i < n && (is(&t[i], "transaction") || is(&t[i], "constraints"))) {
        info->kind = SL_SK_SET_LOCAL;
        return;
    }
    if (local) {
        info->kind = SL_SK_SET_LOCAL;
        return;
    }
    info->kind = SL_SK_SET;
    if (i < n && (is(&t[i], "role") || is(&t[i], "authorization"))) {
        info->pins |= SL_PIN_BIT(SL_PINR_ROLE);
        return;
    }
    int vstart;
    if (i + 1 < n && is(&t[i], "time") && is(&t[i + 1], "zone")) {
        snprintf(info->name, sizeof(info->name), "timezone");
        vstart = i + 2;
        if (vstart + 1 == n && is(&t[vstart], "local")) {
            info->is_default = true;
            info->value_ok = true;
            return;
        }
    } else if (i < n && is(&t[i], "names")) {
        snprintf(info->name, sizeof(info->name), "client_encoding");
        vstart = i + 1;
    } else if (i < n && is(&t[i], "schema")) {
        snprintf(info->name, sizeof(info->name), "search_path");
        vstart = i + 1;
        if (vstart + 1 != n || (t[vstart].k != T_STRING && t[vstart].k != T_ESTRING)) {
            info->pins |= SL_PIN_BIT(SL_PINR_SET); /* not a form pgsluice knows */
            return;
        }
    } else if (i < n && (t[i].k == T_WORD || t[i].k == T_QIDENT)) {
        /* name, or class.name for a custom parameter */
        copy_name(info, &t[i]);
        vstart = i + 1;
        if (vstart + 1 < n && is_op(&t[vstart], ".") && (t[vstart + 1].k == T_WORD || t[vstart + 1].k == T_QIDENT)) {
            sl_stmt_info part;
            copy_name(&part, &t[vstart + 1]);
            size_t l = strlen(info->name), pl = strlen(part.name);
            if (l + 1 + pl < sizeof(info->name)) {
                info->name[l] = '.';
                memcpy(info->name + l + 1, part.name, pl + 1);
            } else info->name[0] = '\0';
            vstart += 2;
        }
        if (vstart < n && (is_op(&t[vstart], "=") || is(&t[vstart], "to"))) vstart++;
        else info->name[0] = '\0'; /* SET x FROM CURRENT and other forms */
    } else {
        vstart = n;
    }
    if (!info->name[0]) {
        info->pins |= SL_PIN_BIT(SL_PINR_SET);
        return;
    }
    info->value_ok = !st->more && take_value(t, vstart, n, info);
}

static void classify_reset(const stmt *st, sl_stmt_info *info)
{
    const tok *t = st->t;
    int n = st->n;
    info->kind = SL_SK_RESET;
    if (n == 2 && is(&t[1], "all")) {
        info->kind = SL_SK_RESET_ALL;
        info->clears |= SL_PIN_BIT(SL_PINR_SET);
    } else if (n == 3 && is(&t[1], "time") && is(&t[2], "zone")) {
        snprintf(info->name, sizeof(info->name), "timezone");
    } else if (n >= 2 && (is(&t[1], "role") || is(&t[1], "session"))) {
        /* the role and session authorization: still pinned until DISCARD ALL */
        info->kind = SL_SK_OTHER;
    } else if (n == 2 && (t[1].k == T_WORD || t[1].k == T_QIDENT)) {
        copy_name(info, &t[1]);
    } else if (n == 4 && is_op(&t[2], ".")) {
        sl_stmt_info a, b;
        copy_name(&a, &t[1]);
        copy_name(&b, &t[3]);
        size_t la = strlen(a.name), lb = strlen(b.name);
        if (la && lb && la + lb + 2 <= sizeof(info->name)) {
            memcpy(info->name, a.name, la);
            info->name[la] = '.';
            memcpy(info->name + la + 1, b.name, lb + 1);
        }
    }
    if (info->kind == SL_SK_RESET && !info->name[0]) info->pins |= SL_PIN_BIT(SL_PINR_SET);
}

/* CREATE ... TEMP / TEMPORARY: a temporary table, view or sequence (unless ON COMMIT DROP). */
static bool creates_temp(const stmt *st)
{
    const tok *t = st->t;
    for (int i = 1; i < st->n && i < 6; i++) {
        if (is(&t[i], "temp") || is(&t[i], "temporary")) return true;
        if (!is(&t[i], "or") && !is(&t[i], "replace") && !is(&t[i], "global") && !is(&t[i], "local") &&
            !is(&t[i], "unlogged"))
            return false;
    }
    return false;
}

static void classify_stmt(const stmt *st, sl_stmt_info *info, bool on_commit_drop)
{
    const tok *t = st->t;
    int n = st->n;
    if (n == 0) return;
    const tok *first = &t[0];
    if (is(first, "set")) classify_set(st, info);
    else if (is(first, "reset")) classify_reset(st, info);
    else if (is(first, "discard") && n >= 2) {
        if (is(&t[1], "all")) {
            info->kind = SL_SK_DISCARD_ALL;
            info->clears |= SL_PIN_ALL;
        } else if (is(&t[1], "temp") || is(&t[1], "temporary")) {
            info->clears |= SL_PIN_BIT(SL_PINR_TEMP_TABLE);
        }
    } else if (is(first, "listen")) {
        info->kind = SL_SK_LISTEN;
        info->pins |= SL_PIN_BIT(SL_PINR_LISTEN);
        if (n >= 2) copy_name(info, &t[1]);
    } else if (is(first, "unlisten")) {
        info->kind = SL_SK_UNLISTEN;
        if (n >= 2 && is_op(&t[1], "*")) {
            snprintf(info->name, sizeof(info->name), "*");
            info->clears |= SL_PIN_BIT(SL_PINR_LISTEN);
        } else if (n >= 2) {
            copy_name(info, &t[1]);
        }
    } else if (is(first, "declare")) {
        info->kind = SL_SK_DECLARE;
        if (n >= 2) copy_name(info, &t[1]);
        for (int i = 1; i + 1 < n && !is(&t[i], "for"); i++)
            if (is(&t[i], "with") && is(&t[i + 1], "hold")) info->pins |= SL_PIN_BIT(SL_PINR_HOLD_CURSOR);
        if (st->more) info->pins |= SL_PIN_BIT(SL_PINR_HOLD_CURSOR);
    } else if (is(first, "close") && n == 2) {
        info->kind = SL_SK_CLOSE;
        if (is(&t[1], "all")) info->clears |= SL_PIN_BIT(SL_PINR_HOLD_CURSOR);
        else copy_name(info, &t[1]);
    } else if (is(first, "prepare")) {
        if (!(n >= 2 && is(&t[1], "transaction"))) {
            info->kind = SL_SK_PREPARE;
            info->pins |= SL_PIN_BIT(SL_PINR_PREPARE);
            if (n >= 2) copy_name(info, &t[1]);
        }
    } else if (is(first, "deallocate")) {
        int i = 1;
        if (i < n && is(&t[i], "prepare")) i++;
        info->kind = SL_SK_DEALLOCATE;
        if (i < n && is(&t[i], "all")) info->clears |= SL_PIN_BIT(SL_PINR_PREPARE);
        else if (i + 1 == n) copy_name(info, &t[i]);
    } else if (is(first, "create")) {
        if (creates_temp(st) && !on_commit_drop) info->pins |= SL_PIN_BIT(SL_PINR_TEMP_TABLE);
    } else if (is(first, "rollback") || is(first, "abort")) {
        for (int i = 1; i < n && i < 4; i++)
            if (is(&t[i], "to")) info->kind = SL_SK_ROLLBACK_TO;
    }
}

/* Scan one statement from *pp: keep its first tokens, and look for function calls and words that
 * matter wherever they are. */
static bool scan_stmt(const char **pp, const char *end, stmt *st, sl_stmt_info *info, bool *on_commit_drop,
                      bool *broken)
{
    st->n = 0;
    st->more = false;
    tok prev = {T_END, NULL, 0}, prev2 = prev;
    bool any = false;
    for (;;) {
        tok t = next_tok(pp, end);
        if (t.k == T_BAD) {
            *broken = true;
            *pp = end;
            return any;
        }
        if (t.k == T_END) return any;
        if (t.k == T_SEMI) {
            if (any) return true;
            continue; /* empty statement */
        }
        any = true;
        if (st->n < MAXTOK) st->t[st->n++] = t;
        else st->more = true;
        if (t.k == T_PARAM) {
            int v = 0;
            for (size_t i = 1; i < t.n && v < 100000; i++) v = v * 10 + (t.s[i] - '0');
            if (v > info->max_param) info->max_param = v;
        }
        if (t.k == T_LPAREN && (prev.k == T_WORD || prev.k == T_QIDENT)) {
            if (names_function(&prev, "pg_advisory_lock") || names_function(&prev, "pg_advisory_lock_shared") ||
                names_function(&prev, "pg_try_advisory_lock") ||
                names_function(&prev, "pg_try_advisory_lock_shared")) {
                info->pins |= SL_PIN_BIT(SL_PINR_ADVISORY_LOCK);
                info->recheck |= SL_PIN_BIT(SL_PINR_ADVISORY_LOCK); /* a pg_try_* may take nothing */
            } else if (names_function(&prev, "pg_advisory_unlock_all")) {
                info->clears |= SL_PIN_BIT(SL_PINR_ADVISORY_LOCK);
            } else if (names_function(&prev, "pg_advisory_unlock") ||
                       names_function(&prev, "pg_advisory_unlock_shared")) {
                info->recheck |= SL_PIN_BIT(SL_PINR_ADVISORY_LOCK);
            }
            else if (names_function(&prev, "set_config"))
                info->pins |= SL_PIN_BIT(SL_PINR_SET); /* session or local: not told apart, pinned */
        }
        /* SELECT ... INTO TEMP t, CREATE TABLE pg_temp.t */
        if ((is(&t, "temp") || is(&t, "temporary")) && is(&prev, "into")) info->pins |= SL_PIN_BIT(SL_PINR_TEMP_TABLE);
        if (is(&t, "pg_temp") || (t.k == T_QIDENT && t.n == 9 && !memcmp(t.s, "\"pg_temp\"", 9)))
            info->pins |= SL_PIN_BIT(SL_PINR_TEMP_TABLE);
        if (is(&t, "drop") && is(&prev, "commit") && is(&prev2, "on")) *on_commit_drop = true;
        prev2 = prev;
        prev = t;
    }
}

void sl_stmt_iter_init(sl_stmt_iter *it, const char *sql, size_t len)
{
    it->p = sql;
    it->end = sql + len;
    it->broken = false;
    /* a Query's text ends at its NUL */
    const char *nul = memchr(sql, '\0', len);
    if (nul) it->end = nul;
}

bool sl_stmt_next(sl_stmt_iter *it, sl_stmt_info *out)
{
    static __thread stmt st; /* ~2 KB of tokens: kept off the stack of the event loop */
    memset(out, 0, offsetof(sl_stmt_info, name));
    out->name[0] = out->value[0] = '\0';
    out->is_default = out->value_ok = false;
    out->max_param = 0;
    if (it->p >= it->end) return false;
    bool on_commit_drop = false;
    bool any = scan_stmt(&it->p, it->end, &st, out, &on_commit_drop, &it->broken);
    if (it->broken) {
        /* not lexable (an unterminated quote or comment): the server will refuse it, but when in
         * doubt, pin */
        out->pins |= SL_PIN_BIT(SL_PINR_UNCLASSIFIED);
        return true;
    }
    if (!any) return false;
    out->ntokens = st.more ? st.n + 1 : st.n;
    classify_stmt(&st, out, on_commit_drop);
    return true;
}

void sl_stmt_classify_one(const char *sql, size_t len, sl_stmt_info *out)
{
    int maxp, n = sl_stmt_plain_count(sql, len, &maxp);
    if (n == 0 || n == 1) { /* most statements: nothing to read further */
        memset(out, 0, offsetof(sl_stmt_info, name));
        out->name[0] = out->value[0] = '\0';
        out->is_default = out->value_ok = false;
        out->max_param = maxp;
        return;
    }
    sl_stmt_iter it;
    sl_stmt_iter_init(&it, sql, len);
    if (!sl_stmt_next(&it, out)) return;
    /* a Parse holds one statement; anything after it (the server refuses that) is looked at too */
    sl_stmt_info more;
    while (sl_stmt_next(&it, &more)) out->pins |= more.pins;
}

/* ---- the shortcut: texts that cannot do anything to the session ---- */

/* Byte classes of the one-pass check, the lexer's own in the C locale (pgsluice never calls
 * setlocale): isspace, word_start, isdigit, and the bytes that start quotes, parameters, comments,
 * numbers and statements. */
enum { B_OTHER, B_SPACE, B_WORD, B_DIGIT, B_SQUOTE, B_DQUOTE, B_DOLLAR, B_DASH, B_SLASH, B_SEMI, B_DOT };

static const unsigned char byte_class[256] = {
    [' '] = B_SPACE, ['\t'] = B_SPACE, ['\n'] = B_SPACE, ['\v'] = B_SPACE, ['\f'] = B_SPACE, ['\r'] = B_SPACE,
    ['A' ... 'Z'] = B_WORD, ['a' ... 'z'] = B_WORD, ['_'] = B_WORD, [0x80 ... 0xff] = B_WORD,
    ['0' ... '9'] = B_DIGIT, ['\''] = B_SQUOTE, ['"'] = B_DQUOTE, ['$'] = B_DOLLAR, ['-'] = B_DASH,
    ['/'] = B_SLASH, [';'] = B_SEMI, ['.'] = B_DOT,
};

/* Word bytes (word_char), and the first letters of the words the shortcut must look at: a
 * statement's acting keyword (F_ACT), pg_ / temp / set_config (F_TRIG), the E'' and U&'' prefixes. */
enum { F_WORD = 1, F_ACT = 2, F_TRIG = 4, F_PREFIX = 8 };
#define FW(lo, hi, extra) [lo ... hi] = F_WORD | (extra), [(lo) - 'a' + 'A' ... (hi) - 'a' + 'A'] = F_WORD | (extra)
static const unsigned char word_flags[256] = {
    ['_'] = F_WORD, [0x80 ... 0xff] = F_WORD, ['0' ... '9'] = F_WORD, ['$'] = F_WORD,
    FW('a', 'a', F_ACT), FW('b', 'b', 0), FW('c', 'd', F_ACT), FW('e', 'e', F_PREFIX), FW('f', 'k', 0),
    FW('l', 'l', F_ACT), FW('m', 'o', 0), FW('p', 'p', F_ACT | F_TRIG), FW('q', 'q', 0), FW('r', 'r', F_ACT),
    FW('s', 's', F_ACT | F_TRIG), FW('t', 't', F_TRIG), FW('u', 'u', F_ACT | F_PREFIX), FW('v', 'z', 0),
};
#undef FW

/* w[0..n) is lower (all letters, n bytes), ignoring ASCII case. */
static inline bool ci_letters(const char *w, const char *lower, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((char)(w[i] | 0x20) != lower[i]) return false;
    return true;
}

/* Does the word (or quoted identifier's content) w[0..n) start like a name the scanner looks for
 * (pg_advisory_lock and friends, pg_temp, set_config, temp / temporary)? Case-insensitive. */
static bool trigger_prefix(const char *w, size_t n)
{
    char c = (char)(w[0] | 0x20);
    if (c == 'p') return n >= 3 && (w[1] | 0x20) == 'g' && w[2] == '_';
    if (c == 't') return n >= 4 && ci_letters(w, "temp", 4);
    if (c == 's') return n >= 10 && ci_letters(w, "set", 3) && w[3] == '_' && ci_letters(w + 4, "config", 6);
    return false;
}

/* Is the word w[0..n) one of the first keywords classify_stmt acts on? */
static bool acting_keyword(const char *w, size_t n)
{
    switch (w[0] | 0x20) {
    case 'a': return n == 5 && ci_letters(w, "abort", 5);
    case 'c': return (n == 5 && ci_letters(w, "close", 5)) || (n == 6 && ci_letters(w, "create", 6));
    case 'd':
        return (n == 7 && ci_letters(w, "discard", 7)) || (n == 7 && ci_letters(w, "declare", 7)) ||
               (n == 10 && ci_letters(w, "deallocate", 10));
    case 'l': return n == 6 && ci_letters(w, "listen", 6);
    case 'p': return n == 7 && ci_letters(w, "prepare", 7);
    case 'r': return (n == 5 && ci_letters(w, "reset", 5)) || (n == 8 && ci_letters(w, "rollback", 8));
    case 's': return n == 3 && ci_letters(w, "set", 3);
    case 'u': return n == 8 && ci_letters(w, "unlisten", 8);
    default: return false;
    }
}

/* A word w[0..n) that ends at p: can the full classifier make anything of it? */
static bool word_matters(const char *w, size_t n, const char *p, const char *end, bool first)
{
    unsigned f = word_flags[(unsigned char)w[0]];
    if ((f & F_PREFIX) && n == 1 && p < end) {
        if ((w[0] | 0x20) == 'e' && *p == '\'') return true; /* E'' with backslash escapes */
        if ((w[0] | 0x20) == 'u' && *p == '&') return true;   /* U&'' / U&"" */
    }
    if ((f & F_ACT) && first && acting_keyword(w, n)) return true;
    return (f & F_TRIG) && trigger_prefix(w, n);
}

/* A quoted run from p (on the quote q) without backslash escapes: the byte after it, or NULL. */
static const char *past_quoted(const char *p, const char *end, char q)
{
    for (p++;;) {
        const char *z = memchr(p, q, (size_t)(end - p));
        if (!z) return NULL;
        p = z + 1;
        if (p < end && *p == q) p++; /* doubled: still inside */
        else return p;
    }
}

/* A number from p, as next_tok reads it (1e-5, 0x1F, 1_000, .5). */
static const char *past_number(const char *p, const char *end)
{
    for (p++; p < end && (isalnum((unsigned char)*p) || *p == '.' || *p == '_' ||
                          ((*p == '+' || *p == '-') && (p[-1] == 'e' || p[-1] == 'E')));
         p++)
        ;
    return p;
}

/* The one pass itself, on a text already cut at its NUL. */
static int plain_scan(const char *sql, const char *end, int *max_param)
{
    const char *p = sql;
    int count = 0, maxp = 0;
    bool any = false; /* the statement so far has a token */
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        switch (byte_class[c]) {
        case B_SPACE: p++; continue;
        case B_SEMI:
            count += any;
            any = false;
            p++;
            continue;
        case B_WORD: {
            const char *w = p++;
            while (p < end && (word_flags[(unsigned char)*p] & F_WORD)) p++;
            if ((word_flags[c] & (F_ACT | F_TRIG | F_PREFIX)) && word_matters(w, (size_t)(p - w), p, end, !any))
                return -1;
            break;
        }
        case B_DQUOTE: {
            const char *q = past_quoted(p, end, '"');
            if (!q) return -1;
            if (q - p > 2 && trigger_prefix(p + 1, (size_t)(q - p - 2))) return -1;
            p = q;
            break;
        }
        case B_SQUOTE: /* also the B'' X'' N'' forms: their prefix was a word of its own */
            if (!(p = past_quoted(p, end, '\''))) return -1;
            break;
        case B_DOLLAR: {
            if (end - p < 2 || byte_class[(unsigned char)p[1]] != B_DIGIT) return -1; /* a dollar quote, maybe */
            int v = 0;
            for (p++; p < end && byte_class[(unsigned char)*p] == B_DIGIT; p++)
                if (v < 100000) v = v * 10 + (*p - '0');
            if (v > maxp) maxp = v;
            break;
        }
        case B_DASH:
            if (end - p >= 2 && p[1] == '-') { /* a comment to the end of the line */
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                p = nl ? nl : end;
                continue;
            }
            p++;
            break;
        case B_SLASH:
            if (end - p >= 2 && p[1] == '*') {
                p = skip_block_comment(p, end);
                if (!p) return -1;
                continue;
            }
            p++;
            break;
        case B_DOT: /* a number such as .5, else an operator */
            p = end - p >= 2 && byte_class[(unsigned char)p[1]] == B_DIGIT ? past_number(p, end) : p + 1;
            break;
        case B_DIGIT: p = past_number(p, end); break;
        default: p++; break;
        }
        any = true;
    }
    count += any;
    *max_param = maxp;
    return count;
}

/* ---- the shape cache: the same text with other numbers in it ----
 *
 * Applications on the simple protocol send the same few statements with other literal numbers in
 * them (pgbench's "... WHERE aid = 4711;"). Two texts that differ only in their runs of digits
 * (each maximal run of digits in one stands where a maximal run of digits stands in the other)
 * get the same answer from plain_scan: a digit is never a word start, a quote, a comment or a
 * separator, so every byte the scan decides on is the same, and it reads digits only to skip them
 * (a number, a word with digits in it, a literal) or to read a $n. Texts with a '$' are therefore
 * never remembered: their highest $n would differ. A minus sign before a number may come and go too
 * (pgbench's "+ -2837"), where the byte before it is a blank, '(', ',' or '=': there the scan steps
 * over a '-' as an operator that touches nothing.
 *
 * Each thread keeps SHAPE_SLOTS plain texts (at most SHAPE_MAX bytes), in a table indexed by the
 * bytes before the first digit (at most 16), which such texts share: comparing a text with the
 * one remembered costs a word-at-a-time comparison, where the scan costs about ten instructions
 * a byte. The table is per thread (an event loop's worker), so nothing is shared or locked; a slot
 * is overwritten by the next plain text with the same index. Little-endian machines only (the
 * word-at-a-time code reads the first byte in the low bits). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SHAPE_SLOTS 32
#define SHAPE_MAX 250

typedef struct shape {
    uint16_t len; /* 0: empty */
    int16_t count;
    char text[SHAPE_MAX];
} shape;

static __thread shape shapes[SHAPE_SLOTS];
static __thread uint64_t shape_hits, shape_misses;

static inline uint64_t load8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline bool is_digit(char c) { return (unsigned char)(c - '0') < 10; }

/* The high bit of each byte of x that is an ASCII digit ((b | 0x80) - c cannot borrow). */
static inline uint64_t digit_bytes(uint64_t x)
{
    const uint64_t hi = 0x8080808080808080ull, one = 0x0101010101010101ull;
    uint64_t y = x | hi;
    return ((y - 0x30 * one) & ~(y - 0x3a * one) & ~x & hi);
}

/* x without its first digit and what follows it (as zeros); *cut: there was one. */
static inline uint64_t before_digit(uint64_t x, bool *cut)
{
    uint64_t d = digit_bytes(x);
    if (!d) return x;
    *cut = true;
    unsigned k = (unsigned)__builtin_ctzll(d) >> 3;
    return x & ((1ull << (8 * k)) - 1);
}

/* The slot of a text of n (8 <= n) bytes, from its bytes before the first digit, at most 16. */
static inline shape *shape_slot(const char *t, size_t n)
{
    bool cut = false;
    uint64_t a = before_digit(load8(t), &cut), b = 0;
    if (!cut && n > 8) b = before_digit(n >= 16 ? load8(t + 8) : load8(t + n - 8) >> (8 * (16 - n)), &cut);
    uint64_t h = (a * 0x9E3779B97F4A7C15ull ^ b) * 0xC2B2AE3D27D4EB4Full;
    return &shapes[h >> (64 - 5)];
}

/* Can a '-' after c (the same byte in both texts) come and go without the scan noticing? Not
 * after a word or number byte (it would end the word, or be a number's exponent sign), nor after
 * another '-' (a comment): after a blank, '(', ',' or '=' it is a byte the scan steps over. */
static inline bool sign_may_go_before(char c)
{
    return c == ' ' || c == '(' || c == ',' || c == '=' || c == '\n' || c == '\t' || c == '\r';
}

/* Do m[0..mlen) and t[0..tlen) differ only in their numbers (runs of digits, with or without a
 * minus sign)? */
static bool same_shape(const char *m, size_t mlen, const char *t, size_t tlen)
{
    size_t i = 0, j = 0, si = 0; /* si: where the bytes compared since the last run began */
    for (;;) {
        while (i + 8 <= mlen && j + 8 <= tlen) {
            uint64_t x = load8(m + i) ^ load8(t + j);
            if (x) {
                unsigned k = (unsigned)__builtin_ctzll(x) >> 3; /* the first byte that differs */
                i += k;
                j += k;
                goto differ;
            }
            i += 8;
            j += 8;
        }
        while (i < mlen && j < tlen && m[i] == t[j]) i++, j++;
        if (i == mlen && j == tlen) return true;
    differ:
        /* m[i] and t[j] differ (or one text ended): allowed inside a run of digits both have (the
         * bytes before it are the same in both, so it starts at the same place), and where one has
         * a minus sign before a run of digits and the other has the run alone */
        if (!(i > si && is_digit(m[i - 1]))) {
            if (i < mlen && j < tlen && i > 0 && sign_may_go_before(m[i - 1])) {
                if (m[i] == '-' && i + 1 < mlen && is_digit(m[i + 1])) i++;
                else if (t[j] == '-' && j + 1 < tlen && is_digit(t[j + 1])) j++;
            }
            if (!(i < mlen && j < tlen && is_digit(m[i]) && is_digit(t[j]))) return false;
        }
        while (i < mlen && is_digit(m[i])) i++;
        while (j < tlen && is_digit(t[j])) j++;
        si = i;
    }
}

int sl_stmt_plain_count(const char *sql, size_t len, int *max_param)
{
    const char *nul = memchr(sql, '\0', len); /* as sl_stmt_iter_init */
    size_t n = nul ? (size_t)(nul - sql) : len;
    if (n < 8 || n > SHAPE_MAX) return plain_scan(sql, sql + n, max_param);
    shape *sh = shape_slot(sql, n);
    if (sh->len && same_shape(sh->text, sh->len, sql, n)) {
        shape_hits++;
        *max_param = 0;
        return sh->count;
    }
    shape_misses++;
    int count = plain_scan(sql, sql + n, max_param);
    if (count >= 0 && !memchr(sql, '$', n)) {
        memcpy(sh->text, sql, n);
        sh->len = (uint16_t)n;
        sh->count = (int16_t)count;
    }
    return count;
}

void sl_stmt_shape_stats(uint64_t *hits, uint64_t *misses)
{
    *hits = shape_hits;
    *misses = shape_misses;
}
#else
int sl_stmt_plain_count(const char *sql, size_t len, int *max_param)
{
    return sl_stmt_plain_scan(sql, len, max_param);
}

void sl_stmt_shape_stats(uint64_t *hits, uint64_t *misses) { *hits = *misses = 0; }
#endif

int sl_stmt_plain_scan(const char *sql, size_t len, int *max_param)
{
    const char *nul = memchr(sql, '\0', len); /* as sl_stmt_iter_init */
    return plain_scan(sql, nul ? nul : sql + len, max_param);
}
