/* userlist.c - reader for PgBouncer's auth_file format: "user" "password" per line, "" escapes a quote. */
#include "config/config_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ulist {
    sl_userlist_entry *v;
    size_t n, cap;
} ulist;

/* Read one "quoted" field starting at *p (which must point at '"'); "" inside stands for ". */
static char *read_quoted(const char **p, const char *what, char *reason, size_t rlen)
{
    const char *s = *p;
    if (*s != '"') return snprintf(reason, rlen, "expected a double-quoted %s", what), NULL;
    char *out = malloc(strlen(s) + 1);
    if (!out) return snprintf(reason, rlen, "out of memory"), NULL;
    size_t n = 0;
    for (s++;; s++) {
        if (*s == '\0' || *s == '\n' || *s == '\r') {
            free(out);
            snprintf(reason, rlen, "unterminated quoted %s", what);
            return NULL;
        }
        if (*s == '"' && s[1] == '"') s++;
        else if (*s == '"') break;
        out[n++] = *s;
    }
    out[n] = '\0';
    *p = s + 1;
    return out;
}

static bool push(ulist *l, char *name, char *password)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        sl_userlist_entry *v = realloc(l->v, cap * sizeof(*v));
        if (!v) return false;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].name = name;
    l->v[l->n].password = password;
    l->n++;
    return true;
}

/* Parse one line; blank and ';'/'#' comment lines are skipped. Text after the password is ignored. */
static bool parse_line(ulist *l, const char *line, char *reason, size_t rlen)
{
    const char *p = line;
    while (isspace((unsigned char)*p)) p++;
    if (!*p || *p == ';' || *p == '#') return true;
    char *name = read_quoted(&p, "user name", reason, rlen);
    if (!name) return false;
    if (!*name) {
        free(name);
        return snprintf(reason, rlen, "empty user name"), false;
    }
    while (*p == ' ' || *p == '\t') p++;
    char *password = read_quoted(&p, "password", reason, rlen);
    if (!password) {
        free(name);
        return false;
    }
    if (!push(l, name, password)) {
        free(name);
        free(password);
        return snprintf(reason, rlen, "out of memory"), false;
    }
    return true;
}

typedef struct ranked {
    sl_userlist_entry e;
    size_t line_order;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    int c = strcmp(x->e.name, y->e.name);
    if (c) return c;
    return x->line_order < y->line_order ? -1 : x->line_order > y->line_order;
}

/* Sort by name; of repeated names keep the last one (the later line wins). */
static bool sort_dedupe(ulist *l)
{
    if (l->n < 2) return true;
    ranked *r = malloc(l->n * sizeof(*r));
    if (!r) return false;
    for (size_t i = 0; i < l->n; i++) r[i] = (ranked){l->v[i], i};
    qsort(r, l->n, sizeof(*r), cmp_ranked);
    size_t out = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (i + 1 < l->n && strcmp(r[i].e.name, r[i + 1].e.name) == 0) {
            free(r[i].e.name);
            free(r[i].e.password);
            continue;
        }
        l->v[out++] = r[i].e;
    }
    free(r);
    l->n = out;
    return true;
}

bool sl_userlist_load(const char *path, sl_userlist_entry **out, size_t *n, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) return sl_cfg_err(err, errlen, "%s: cannot open auth_file: %s", path, strerror(errno)), false;
    ulist l = {0};
    char *line = NULL, reason[256];
    size_t cap = 0;
    int lineno = 0;
    bool ok = true;
    while (ok && getline(&line, &cap, f) >= 0) {
        lineno++;
        ok = parse_line(&l, line, reason, sizeof(reason));
        if (!ok) sl_cfg_err(err, errlen, "%s:%d: %s", path, lineno, reason);
    }
    if (ok && ferror(f)) ok = (sl_cfg_err(err, errlen, "%s: read error", path), false);
    free(line);
    fclose(f);
    if (!ok) {
        sl_userlist_free(l.v, l.n);
        return false;
    }
    if (!sort_dedupe(&l)) {
        sl_userlist_free(l.v, l.n);
        return sl_cfg_err(err, errlen, "%s: out of memory", path), false;
    }
    *out = l.v;
    *n = l.n;
    return true;
}

void sl_userlist_free(sl_userlist_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        free(e[i].name);
        free(e[i].password);
    }
    free(e);
}

char *sl_read_secret_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        sl_cfg_err(err, errlen, "cannot read secret file \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    bool too_long = !feof(f);
    fclose(f);
    if (too_long) {
        sl_cfg_err(err, errlen, "secret file \"%s\" is longer than %zu bytes", path, sizeof(buf) - 1);
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
    buf[n] = '\0';
    char *s = strdup(buf);
    explicit_bzero(buf, sizeof(buf));
    if (!s) sl_cfg_err(err, errlen, "out of memory");
    return s;
}
