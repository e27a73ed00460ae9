/* ini_edit.c - rewrite values in a pgbouncer.ini-style text, keeping comments and layout (see ini_edit.h).
 * The syntax matches the config reader (src/config/ini.c): "[section]", "key = value", whole-line comments
 * starting with ; or #, and a trailing comment that starts with ; or # after whitespace, outside quotes. */
#include "tools/ini_edit.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t len)
{
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = (b->n + len + 1) * 2 + 256;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static char *dup_n(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    if (o) {
        memcpy(o, s, n);
        o[n] = '\0';
    }
    return o;
}

/* One line of the input: [start, start + len) without the line ending; eol is "\n", "\r\n" or "". */
typedef struct line {
    const char *start;
    size_t len;
    const char *eol;
} line;

static bool is_global_section(const char *name, size_t len)
{
    return (len == 9 && strncasecmp(name, "pgbouncer", 9) == 0) || (len == 8 && strncasecmp(name, "pgsluice", 8) == 0);
}

/* Section name of a "[name]" line, or false when the line is not a section header. */
static bool section_of(const line *l, const char **name, size_t *nlen)
{
    const char *s = l->start, *e = l->start + l->len;
    while (s < e && isspace((unsigned char)*s)) s++;
    if (s == e || *s != '[') return false;
    const char *close = memchr(s, ']', (size_t)(e - s));
    if (!close) return false;
    s++;
    while (s < close && isspace((unsigned char)*s)) s++;
    const char *ne = close;
    while (ne > s && isspace((unsigned char)ne[-1])) ne--;
    *name = s;
    *nlen = (size_t)(ne - s);
    return true;
}

/* For a "key = value  # comment" line: the key and the value's span [vstart, vend). */
typedef struct kv {
    const char *key;
    size_t klen;
    const char *vstart, *vend;
} kv;

static bool parse_kv(const line *l, kv *out)
{
    const char *s = l->start, *e = l->start + l->len;
    while (s < e && isspace((unsigned char)*s)) s++;
    if (s == e || *s == ';' || *s == '#' || *s == '%' || *s == '[') return false;
    const char *eq = memchr(s, '=', (size_t)(e - s));
    if (!eq) return false;
    const char *ke = eq;
    while (ke > s && isspace((unsigned char)ke[-1])) ke--;
    out->key = s;
    out->klen = (size_t)(ke - s);
    const char *v = eq + 1;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    const char *end = e;
    char quote = 0;
    for (const char *p = v; p < e; p++) {
        if (quote) {
            if (*p == '\\' && p + 1 < e) p++;
            else if (*p == quote) quote = 0;
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
        } else if ((*p == '#' || *p == ';') && (p == v || isspace((unsigned char)p[-1]))) {
            end = p;
            break;
        }
    }
    while (end > v && isspace((unsigned char)end[-1])) end--;
    out->vstart = v;
    out->vend = end;
    return true;
}

static line *split_lines(const char *text, size_t *n)
{
    size_t cap = 64, cnt = 0;
    line *ls = malloc(cap * sizeof(*ls));
    if (!ls) return NULL;
    const char *p = text;
    while (*p) {
        if (cnt == cap) {
            cap *= 2;
            line *nl = realloc(ls, cap * sizeof(*ls));
            if (!nl) {
                free(ls);
                return NULL;
            }
            ls = nl;
        }
        const char *nlp = strchr(p, '\n');
        line *l = &ls[cnt++];
        l->start = p;
        if (!nlp) {
            l->len = strlen(p);
            l->eol = "";
            p += l->len;
        } else if (nlp > p && nlp[-1] == '\r') {
            l->len = (size_t)(nlp - 1 - p);
            l->eol = "\r\n";
            p = nlp + 1;
        } else {
            l->len = (size_t)(nlp - p);
            l->eol = "\n";
            p = nlp + 1;
        }
    }
    *n = cnt;
    return ls;
}

/* Append line l with its value replaced by value; keeps a trailing comment at its column when possible. */
static void emit_changed(sbuf *b, const line *l, const kv *k, const char *value)
{
    const char *e = l->start + l->len;
    sb_add(b, l->start, (size_t)(k->vstart - l->start));
    sb_str(b, value);
    const char *rest = k->vend;
    const char *ws_end = rest;
    while (ws_end < e && (*ws_end == ' ' || *ws_end == '\t')) ws_end++;
    if (ws_end < e) { /* a trailing comment follows */
        long ws = (long)(ws_end - rest) + (long)(k->vend - k->vstart) - (long)strlen(value);
        if (memchr(rest, '\t', (size_t)(ws_end - rest))) ws = (long)(ws_end - rest); /* tabs: keep as they were */
        if (ws < 1) ws = 1;
        if (memchr(rest, '\t', (size_t)(ws_end - rest))) sb_add(b, rest, (size_t)(ws_end - rest));
        else
            for (long i = 0; i < ws; i++) sb_add(b, " ", 1);
        sb_add(b, ws_end, (size_t)(e - ws_end));
    }
}

char *sl_ini_edit(const char *text, sl_ini_change *ch, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        ch[i].line = 0;
        ch[i].old_line = ch[i].new_line = NULL;
        if (strpbrk(ch[i].value, "\r\n") || !*ch[i].key) {
            snprintf(err, errlen, "bad value for %s", ch[i].key);
            return NULL;
        }
    }
    size_t nl = 0;
    line *ls = split_lines(text, &nl);
    if (!ls && *text) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *eol = (nl > 0 && !strcmp(ls[0].eol, "\r\n")) ? "\r\n" : "\n";
    bool *found = calloc(n ? n : 1, sizeof(bool));
    /* Where missing keys go: after the last non-blank line of the last global section. */
    long insert_after = -1;
    bool in_global = false, any_global = false;
    sbuf out = {0};
    sb_add(&out, "", 0);
    for (size_t i = 0; i < nl; i++) {
        const line *l = &ls[i];
        const char *sname;
        size_t slen;
        if (section_of(l, &sname, &slen)) {
            in_global = is_global_section(sname, slen);
            if (in_global) {
                any_global = true;
                insert_after = (long)i;
            }
            continue;
        }
        if (!in_global) continue;
        const char *s = l->start;
        while (s < l->start + l->len && isspace((unsigned char)*s)) s++;
        if (s < l->start + l->len) insert_after = (long)i;
    }
    for (size_t i = 0; i < nl; i++) {
        const line *l = &ls[i];
        const char *sname;
        size_t slen;
        kv k;
        sl_ini_change *hit = NULL;
        if (section_of(l, &sname, &slen)) {
            in_global = is_global_section(sname, slen);
        } else if (in_global && parse_kv(l, &k)) {
            for (size_t c = 0; c < n; c++)
                if (strlen(ch[c].key) == k.klen && strncasecmp(ch[c].key, k.key, k.klen) == 0) hit = &ch[c];
        }
        size_t line_start = out.n;
        if (hit) {
            emit_changed(&out, l, &k, hit->value);
            found[hit - ch] = true;
            hit->line = (int)i + 1;
            free(hit->old_line);
            free(hit->new_line);
            hit->old_line = dup_n(l->start, l->len);
            hit->new_line = out.oom ? NULL : dup_n(out.p + line_start, out.n - line_start);
        } else {
            sb_add(&out, l->start, l->len);
        }
        bool last = i + 1 == nl;
        sb_str(&out, (last && !*l->eol && (long)i == insert_after) ? eol : l->eol);
        if ((long)i == insert_after || (!any_global && last)) {
            if (!any_global) {
                if (nl > 0 && !*l->eol) sb_str(&out, eol);
                if (nl > 0) sb_str(&out, eol);
                sb_str(&out, "[pgbouncer]");
                sb_str(&out, eol);
            }
            for (size_t c = 0; c < n; c++) {
                if (found[c]) continue;
                size_t st = out.n;
                sb_str(&out, ch[c].key);
                sb_str(&out, " = ");
                sb_str(&out, ch[c].value);
                if (!out.oom) ch[c].new_line = dup_n(out.p + st, out.n - st);
                sb_str(&out, "   ; added by pgsluice tune");
                sb_str(&out, eol);
                found[c] = true;
            }
        }
    }
    if (nl == 0) {
        sb_str(&out, "[pgbouncer]\n");
        for (size_t c = 0; c < n; c++) {
            size_t st = out.n;
            sb_str(&out, ch[c].key);
            sb_str(&out, " = ");
            sb_str(&out, ch[c].value);
            if (!out.oom) ch[c].new_line = dup_n(out.p + st, out.n - st);
            sb_str(&out, "   ; added by pgsluice tune\n");
        }
    }
    free(found);
    free(ls);
    if (out.oom) {
        free(out.p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return out.p;
}

void sl_ini_changes_free(sl_ini_change *ch, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ch[i].old_line);
        free(ch[i].new_line);
        ch[i].old_line = ch[i].new_line = NULL;
    }
}
