/* authfile.c - the tokenizer the hba and ident files share, and the regular expressions they allow
 * (see authfile.h for the rules). */
#include "config/authfile.h"

#include "config/config_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A reason for a failure (may be cut short; wrapped so the compiler does not insist on room for all). */
static void reasonf(char *reason, size_t rlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reasonf(char *reason, size_t rlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, rlen, fmt, ap);
    va_end(ap);
}

/* ---- growable vectors ---- */

typedef struct tokvec {
    sl_af_token *v;
    size_t n, cap;
} tokvec;

typedef struct fieldvec {
    sl_af_field *v;
    size_t n, cap;
} fieldvec;

typedef struct strbuf {
    char *s;
    size_t n, cap;
} strbuf;

static bool grow(void **base, size_t n, size_t *cap, size_t size)
{
    if (n < *cap) return true;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(*base, ncap * size);
    if (!p) return false;
    *base = p;
    *cap = ncap;
    return true;
}

static bool sb_append(strbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) return false;
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
    return true;
}

static void tokvec_free(tokvec *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->v[i].text);
    free(t->v);
    *t = (tokvec){0};
}

static void fieldvec_free(fieldvec *f)
{
    for (size_t i = 0; i < f->n; i++) {
        tokvec t = {f->v[i].tok, f->v[i].n, f->v[i].n};
        tokvec_free(&t);
    }
    free(f->v);
    *f = (fieldvec){0};
}

static bool tokvec_push(tokvec *t, const char *text, size_t len, bool quoted)
{
    if (!grow((void **)&t->v, t->n, &t->cap, sizeof(*t->v))) return false;
    char *s = malloc(len + 1);
    if (!s) return false;
    memcpy(s, text, len);
    s[len] = '\0';
    t->v[t->n++] = (sl_af_token){s, quoted};
    return true;
}

/* ---- files and paths ---- */

bool sl_af_read_file(const char *path, const char *what, char **text, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) return sl_cfg_err(err, errlen, "%s: cannot open %s: %s", path, what, strerror(errno)), false;
    strbuf b = {0};
    char chunk[8192];
    size_t got;
    bool ok = true;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (!sb_append(&b, chunk, got)) {
            ok = false;
            sl_cfg_err(err, errlen, "%s: out of memory", path);
            break;
        }
    if (ok && ferror(f)) {
        ok = false;
        sl_cfg_err(err, errlen, "%s: cannot read %s: %s", path, what, strerror(errno));
    }
    fclose(f);
    if (ok && !b.s && !sb_append(&b, "", 0)) ok = (sl_cfg_err(err, errlen, "%s: out of memory", path), false);
    if (!ok) {
        free(b.s);
        return false;
    }
    *text = b.s;
    *len = b.n;
    return true;
}

char *sl_af_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static char *join_path(const char *dir, const char *name)
{
    if (name[0] == '/') return strdup(name);
    size_t dl = strlen(dir), nl = strlen(name);
    char *p = malloc(dl + nl + 2);
    if (!p) return NULL;
    memcpy(p, dir, dl);
    size_t at = dl;
    if (dl && dir[dl - 1] != '/') p[at++] = '/';
    memcpy(p + at, name, nl + 1);
    return p;
}

bool sl_af_is_keyword(const sl_af_token *tok, const char *kw)
{
    return !tok->quoted && strcmp(tok->text, kw) == 0;
}

/* ---- tokenizing one logical line ---- */

typedef struct af_parser {
    const char *name;     /* this file, for errors */
    const char *base_dir; /* NULL: no @file here */
    int depth;
} af_parser;

static bool parse_text(const char *text, size_t len, const af_parser *ps, sl_af_line_cb cb, void *ctx, char *err,
                       size_t errlen);

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Collects every token of every line of an @file into one list. */
static bool collect_tokens(void *ctx, const sl_af_line *line, char *reason, size_t rlen)
{
    tokvec *into = ctx;
    for (size_t f = 0; f < line->n; f++)
        for (size_t t = 0; t < line->field[f].n; t++) {
            const sl_af_token *tok = &line->field[f].tok[t];
            if (!tokvec_push(into, tok->text, strlen(tok->text), tok->quoted))
                return reasonf(reason, rlen, "out of memory"), false;
        }
    return true;
}

/* Replace "@name" by the tokens of the file name (relative to this file's directory). */
static bool expand_at(const af_parser *ps, const char *name, tokvec *into, char *reason, size_t rlen)
{
    if (!ps->base_dir)
        return reasonf(reason, rlen, "@%s: including a file with @ is not possible here (no directory)", name),
               false;
    char *path = join_path(ps->base_dir, name);
    if (!path) return reasonf(reason, rlen, "out of memory"), false;
    bool ok = false;
    char *text = NULL, *dir = NULL;
    size_t len = 0;
    if (ps->depth + 1 > SL_AF_MAX_DEPTH) {
        reasonf(reason, rlen, "could not open file \"%s\": maximum nesting depth exceeded", path);
    } else if (!sl_af_read_file(path, "file named by @", &text, &len, reason, rlen)) {
        /* reason says why */
    } else if (!(dir = sl_af_dirname(path))) {
        reasonf(reason, rlen, "out of memory");
    } else {
        af_parser inner = {path, dir, ps->depth + 1};
        char inner_err[1024];
        ok = parse_text(text, len, &inner, collect_tokens, into, inner_err, sizeof(inner_err));
        if (!ok) reasonf(reason, rlen, "in @%s: %s", name, inner_err);
    }
    free(dir);
    free(text);
    free(path);
    return ok;
}

/* One token at *pp: up to an unquoted blank, comma, '#' or the end. "" inside quotes is a quote. */
static bool read_token(const char **pp, strbuf *out, bool *quoted, bool *initial_quote, char *reason, size_t rlen)
{
    const char *p = *pp;
    bool in_quote = false;
    *quoted = false;
    *initial_quote = (*p == '"');
    out->n = 0;
    if (!sb_append(out, "", 0)) return reasonf(reason, rlen, "out of memory"), false;
    while (*p) {
        char c = *p;
        if (!in_quote && (is_blank(c) || c == ',' || c == '#')) break;
        if (c == '"') {
            if (in_quote && p[1] == '"') {
                if (!sb_append(out, "\"", 1)) return reasonf(reason, rlen, "out of memory"), false;
                p += 2;
                continue;
            }
            in_quote = !in_quote;
            *quoted = true;
            p++;
            continue;
        }
        if (!sb_append(out, p, 1)) return reasonf(reason, rlen, "out of memory"), false;
        p++;
    }
    if (in_quote) return reasonf(reason, rlen, "unterminated quoted string"), false;
    *pp = p;
    return true;
}

/* One field at *pp: tokens separated by commas ("a,b" and "a, b"). */
static bool read_field(const af_parser *ps, const char **pp, tokvec *field, char *reason, size_t rlen)
{
    const char *p = *pp;
    strbuf tok = {0};
    bool ok = false;
    for (;;) {
        bool quoted, initial_quote;
        if (!read_token(&p, &tok, &quoted, &initial_quote, reason, rlen)) goto out;
        if (!initial_quote && tok.n > 1 && tok.s[0] == '@') {
            if (!expand_at(ps, tok.s + 1, field, reason, rlen)) goto out;
        } else if (!tokvec_push(field, tok.s, tok.n, quoted)) {
            reasonf(reason, rlen, "out of memory");
            goto out;
        }
        if (*p != ',') break;
        p++;
        while (is_blank(*p)) p++;
        if (*p == '\0' || *p == '#') {
            reasonf(reason, rlen, "a comma-separated list ends with a comma");
            goto out;
        }
        if (*p == ',') {
            reasonf(reason, rlen, "empty element in a comma-separated list");
            goto out;
        }
    }
    ok = true;
out:
    free(tok.s);
    *pp = p;
    return ok;
}

static bool tokenize_line(const af_parser *ps, const char *s, fieldvec *fields, char *reason, size_t rlen)
{
    const char *p = s;
    for (;;) {
        while (is_blank(*p)) p++;
        if (*p == '\0' || *p == '#') return true;
        if (*p == ',') return reasonf(reason, rlen, "empty element in a comma-separated list"), false;
        tokvec field = {0};
        if (!read_field(ps, &p, &field, reason, rlen)) {
            tokvec_free(&field);
            return false;
        }
        if (field.n == 0) { /* an @file with no names in it */
            tokvec_free(&field);
            return reasonf(reason, rlen, "a field is empty (an @file with no names?)"), false;
        }
        if (!grow((void **)&fields->v, fields->n, &fields->cap, sizeof(*fields->v))) {
            tokvec_free(&field);
            return reasonf(reason, rlen, "out of memory"), false;
        }
        fields->v[fields->n++] = (sl_af_field){field.v, field.n};
    }
}

/* ---- lines: continuation, comments, NUL bytes ---- */

static bool parse_text(const char *text, size_t len, const af_parser *ps, sl_af_line_cb cb, void *ctx, char *err,
                       size_t errlen)
{
    size_t pos = 0;
    int lineno = 0;
    strbuf logical = {0};
    char reason[768];
    bool ok = true;
    while (ok && pos < len) {
        int first = lineno + 1;
        logical.n = 0;
        if (!sb_append(&logical, "", 0)) {
            sl_cfg_err(err, errlen, "%s: out of memory", ps->name);
            ok = false;
            break;
        }
        /* Gather physical lines while they end with a backslash. */
        for (;;) {
            const char *start = text + pos;
            const char *nl = memchr(start, '\n', len - pos);
            size_t plen = nl ? (size_t)(nl - start) : len - pos;
            pos += plen + (nl ? 1 : 0);
            lineno++;
            if (memchr(start, '\0', plen)) {
                sl_cfg_err(err, errlen, "%s:%d: the file contains a NUL byte", ps->name, lineno);
                ok = false;
                break;
            }
            while (plen && (start[plen - 1] == '\r' || start[plen - 1] == '\n')) plen--;
            bool cont = plen && start[plen - 1] == '\\';
            if (!sb_append(&logical, start, cont ? plen - 1 : plen)) {
                sl_cfg_err(err, errlen, "%s: out of memory", ps->name);
                ok = false;
                break;
            }
            if (!cont || pos >= len) break;
        }
        if (!ok) break;
        fieldvec fields = {0};
        if (!tokenize_line(ps, logical.s, &fields, reason, sizeof(reason))) {
            sl_cfg_err(err, errlen, "%s:%d: %s", ps->name, first, reason);
            ok = false;
        } else if (fields.n > 0) {
            sl_af_line line = {fields.v, fields.n, ps->name, first};
            if (!cb(ctx, &line, reason, sizeof(reason))) {
                sl_cfg_err(err, errlen, "%s:%d: %s", ps->name, first, reason);
                ok = false;
            }
        }
        fieldvec_free(&fields);
    }
    free(logical.s);
    return ok;
}

bool sl_af_parse(const char *text, size_t len, const char *name, const char *base_dir, sl_af_line_cb cb,
                 void *ctx, char *err, size_t errlen)
{
    af_parser ps = {name ? name : "(buffer)", base_dir, 0};
    return parse_text(text, len, &ps, cb, ctx, err, errlen);
}

/* ---- regular expressions ---- */

/* The bracket expression starting at pat[i] == '['; returns the index just past its ']' or 0 with a reason. */
static size_t bracket_end(const char *pat, size_t i, char *reason, size_t rlen)
{
    size_t j = i + 1;
    if (pat[j] == '^') j++;
    if (pat[j] == ']') j++; /* a leading ']' is a member */
    for (;;) {
        char c = pat[j];
        if (c == '\0') return reasonf(reason, rlen, "unterminated [ in regular expression"), 0;
        if (c == '\\') {
            reasonf(reason, rlen, "a backslash inside [...] is not supported in regular expressions here "
                                   "(POSIX treats it as a literal, PostgreSQL as an escape)");
            return 0;
        }
        if (c == '[' && (pat[j + 1] == ':' || pat[j + 1] == '.' || pat[j + 1] == '=')) {
            char kind = pat[j + 1];
            const char *close = NULL;
            for (size_t k = j + 2; pat[k] && pat[k + 1]; k++)
                if (pat[k] == kind && pat[k + 1] == ']') {
                    close = pat + k;
                    break;
                }
            if (!close) return reasonf(reason, rlen, "unterminated [%c in regular expression", kind), 0;
            j = (size_t)(close - pat) + 2;
            continue;
        }
        if (c == ']') return j + 1;
        j++;
    }
}

static const char *shorthand(char c)
{
    switch (c) {
    case 'd': return "[0-9]";
    case 'D': return "[^0-9]";
    case 'w': return "[[:alnum:]_]";
    case 'W': return "[^[:alnum:]_]";
    case 's': return "[[:space:]]";
    case 'S': return "[^[:space:]]";
    default: return NULL;
    }
}

/* "{m}", "{m,}" or "{m,n}" at pat: its largest count (m for "{m,}"), or -1 when it is not one. */
static long interval_bound(const char *pat)
{
    const char *p = pat + 1;
    long m = 0, n = -1;
    if (!isdigit((unsigned char)*p)) return -1;
    while (isdigit((unsigned char)*p) && m <= 100000) m = m * 10 + (*p++ - '0');
    if (*p == ',') {
        p++;
        if (isdigit((unsigned char)*p)) {
            n = 0;
            while (isdigit((unsigned char)*p) && n <= 100000) n = n * 10 + (*p++ - '0');
        }
    }
    if (*p != '}') return -1;
    return n > m ? n : m;
}

/* "{m}", "{m,}" or "{m,n}" at pat: its counts (*max -1 for "{m,}"); false when it is not one. */
static bool interval_counts(const char *pat, long *min, long *max)
{
    const char *p = pat + 1;
    long m = 0, n;
    if (!isdigit((unsigned char)*p)) return false;
    while (isdigit((unsigned char)*p) && m <= 100000) m = m * 10 + (*p++ - '0');
    n = m;
    if (*p == ',') {
        p++;
        n = -1;
        if (isdigit((unsigned char)*p)) {
            n = 0;
            while (isdigit((unsigned char)*p) && n <= 100000) n = n * 10 + (*p++ - '0');
        }
    }
    if (*p != '}') return false;
    *min = m;
    *max = n;
    return true;
}

/* PostgreSQL's regex engine allows repetition counts up to 255; POSIX regcomp expands nested counts into
 * automata that grow with their product ("((a{255}){255}){255}" takes seconds and gigabytes), copies
 * what "+" repeats once more (nested "+" double it each time: 16 deep took a second), and takes
 * time exponential in the
 * nesting when a "+" or a count repeats something that can match the empty string ("(.*)+++++",
 * "((a?)+){20}": minutes). */
#define REGEX_MAX_COUNT 255
#define REGEX_MAX_COUNT_PRODUCT 100000
#define REGEX_MAX_COPIES 1000 /* of one item, by the repetitions around it ("(\\.[a-z]{1,63}){0,10}": 630) */
#define REGEX_MAX_NESTING 32 /* "((((.*)*)*)*)..." 64 deep: 1.9 s in regcomp, 32 deep: 0.1 s */

/* One group level of the pattern being translated (0: the whole pattern). */
typedef struct re_level {
    bool seq_nullable;  /* the items of this alternative before the last one all can match "" */
    bool any_nullable;  /* an earlier alternative can match "" */
    bool has_last;      /* the last item, which a quantifier applies to */
    bool last_nullable;
    long last_copies;   /* copies regcomp makes of the last item: times 2 per "+", times its count */
    long max_copies;    /* the most copies of an item of this level so far */
} re_level;

static void re_fold(re_level *l)
{
    if (!l->has_last) return;
    l->seq_nullable = l->seq_nullable && l->last_nullable;
    if (l->last_copies > l->max_copies) l->max_copies = l->last_copies;
}

static void re_item(re_level *l, bool nullable, long copies)
{
    re_fold(l);
    l->has_last = true;
    l->last_nullable = nullable;
    l->last_copies = copies;
}

static void re_alternative_end(re_level *l)
{
    re_fold(l);
    l->any_nullable = l->any_nullable || l->seq_nullable;
    l->seq_nullable = true;
    l->has_last = false;
}

/* A quantifier repeating the last item min to max times (max -1: no limit); factor: the copies it
 * makes (counts are bounded by their product, checked where they are read; a "+" by the copies of
 * what it repeats, counts inside included). false with the reason when regcomp would take too long
 * over it. */
static bool re_quantifier(re_level *l, long min, long max, long factor, char *reason, size_t rlen)
{
    if (!l->has_last) return true; /* nothing to repeat: regcomp says what it thinks of that */
    bool repeats = max < 0 ? min >= 1 : max >= 2;
    if (repeats && l->last_nullable)
        return reasonf(reason, rlen,
                       "a repetition (+ or {m,n}) of something that can match an empty string is not supported "
                       "in regular expressions here (use * or ? instead)"),
               false;
    bool plus = min == 1 && max < 0;
    if (factor > 1 && (l->last_copies *= factor) > REGEX_MAX_COPIES && plus)
        return reasonf(reason, rlen,
                       "repetitions in a regular expression are nested too deeply (+ counts as 2, {m,n} as its "
                       "count; at most %d multiplied together)",
                       REGEX_MAX_COPIES),
               false;
    if (min == 0) l->last_nullable = true;
    return true;
}

static bool translate_regex(const char *pat, strbuf *out, char *reason, size_t rlen)
{
    bool in_interval = false;
    long product = 1, imin = 1, imax = 1;
    re_level levels[REGEX_MAX_NESTING + 1] = {{.seq_nullable = true, .last_copies = 1, .max_copies = 1}};
    int depth = 0;
    bool after_quantifier = false; /* the last thing read was a whole quantifier */
    for (size_t i = 0; pat[i];) {
        char c = pat[i];
        re_level *l = &levels[depth];
        /* "a**", "(.*)*+", "a{2}*": PostgreSQL refuses a quantifier of a quantifier ("quantifier
         * operand invalid"); POSIX regcomp nests them, and takes time growing with the fourth power of
         * how many there are (95 stars after "(.*)": 2 s, 150: 16 s) */
        if (after_quantifier && (c == '*' || c == '+' || c == '?' || c == '{'))
            return reasonf(reason, rlen,
                           "a quantifier (%c) right after another one is not supported in regular expressions "
                           "here (PostgreSQL refuses it too)",
                           c),
                   false;
        after_quantifier = false;
        if (c == '\\') {
            char n = pat[i + 1];
            if (n == '\0') return reasonf(reason, rlen, "regular expression ends with a backslash"), false;
            const char *sh = shorthand(n);
            bool ok;
            if (sh) ok = sb_append(out, sh, strlen(sh));
            else if (n >= '1' && n <= '9') ok = sb_append(out, pat + i, 2); /* back reference */
            else if (isalnum((unsigned char)n))
                return reasonf(reason, rlen,
                                "the escape \\%c is not supported in regular expressions here (POSIX extended "
                                "syntax; \\d \\w \\s and their capitals are)",
                                n),
                       false;
            else ok = sb_append(out, pat + i, 2); /* an escaped punctuation character is that character */
            if (!ok) return reasonf(reason, rlen, "out of memory"), false;
            re_item(l, n >= '1' && n <= '9', 1); /* a back reference may match "" */
            i += 2;
            continue;
        }
        if (c == '[') {
            size_t end = bracket_end(pat, i, reason, rlen);
            if (!end) return false;
            if (!sb_append(out, pat + i, end - i)) return reasonf(reason, rlen, "out of memory"), false;
            re_item(l, false, 1);
            i = end;
            continue;
        }
        if (c == '{') {
            in_interval = true;
            long bound = interval_bound(pat + i);
            if (bound > REGEX_MAX_COUNT || (bound > 1 && (product *= bound) > REGEX_MAX_COUNT_PRODUCT))
                return reasonf(reason, rlen,
                               "repetition counts in a regular expression are too large (at most %d each, and at "
                               "most %d multiplied together)",
                               REGEX_MAX_COUNT, REGEX_MAX_COUNT_PRODUCT),
                       false;
            if (!interval_counts(pat + i, &imin, &imax)) imin = imax = 1; /* not a count: regcomp judges */
        }
        bool quantifier = c == '*' || c == '+' || c == '?' || (c == '}' && in_interval);
        if (quantifier && pat[i + 1] == '?')
            return reasonf(reason, rlen,
                            "non-greedy quantifiers (%c?) are not supported in regular expressions here", c),
                   false;
        bool ok = true;
        if (c == '*') ok = re_quantifier(l, 0, -1, 1, reason, rlen);
        else if (c == '+') ok = re_quantifier(l, 1, -1, 2, reason, rlen);
        else if (c == '?') ok = re_quantifier(l, 0, 1, 1, reason, rlen);
        else if (c == '}' && in_interval) ok = re_quantifier(l, imin, imax, imax < 0 ? imin : imax, reason, rlen);
        else if (in_interval) { /* the digits of {m,n} */
        } else if (c == '(') {
            if (depth == REGEX_MAX_NESTING)
                return reasonf(reason, rlen, "a regular expression nests more than %d groups", REGEX_MAX_NESTING),
                       false;
            levels[++depth] = (re_level){.seq_nullable = true, .last_copies = 1, .max_copies = 1};
        } else if (c == ')' && depth > 0) {
            re_alternative_end(l);
            bool nullable = l->any_nullable;
            long copies = l->max_copies;
            re_item(&levels[--depth], nullable, copies);
        } else if (c == '|') {
            re_alternative_end(l);
        } else {
            re_item(l, c == '^' || c == '$', 1); /* anchors match "" */
        }
        if (!ok) return false;
        after_quantifier = quantifier;
        if (c == '}') in_interval = false;
        if (!sb_append(out, pat + i, 1)) return reasonf(reason, rlen, "out of memory"), false;
        i++;
    }
    return true;
}

bool sl_af_regcomp(regex_t *re, const char *pattern, bool captures, size_t *nsub, char *reason, size_t rlen)
{
    strbuf out = {0};
    if (!sb_append(&out, "", 0)) return reasonf(reason, rlen, "out of memory"), false;
    if (!translate_regex(pattern, &out, reason, rlen)) {
        free(out.s);
        return false;
    }
    int rc = regcomp(re, out.s, REG_EXTENDED | (captures ? 0 : REG_NOSUB));
    free(out.s);
    if (rc != 0) {
        char msg[128];
        regerror(rc, re, msg, sizeof(msg));
        reasonf(reason, rlen, "invalid regular expression \"%s\": %s", pattern, msg);
        return false;
    }
    if (nsub) *nsub = re->re_nsub;
    return true;
}
