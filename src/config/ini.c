/* ini.c - the config file reader: [sections], key = value, comments, %include and ${VAR}, with file:line errors. */
#include "config/config_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INI_MAX_DEPTH 16

typedef struct ini_state {
    sl_ini_cb cb;
    void *ctx;
    char *section;                 /* current section; survives %include like textual inclusion */
    char *stack[INI_MAX_DEPTH];    /* real paths of the files being read, for loop detection */
    int depth;
    char *err;
    size_t errlen;
} ini_state;

static bool read_file(ini_state *st, const char *path, const sl_ini_pos *from);

static char *skip_ws(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    return s;
}

static void rtrim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
}

static bool fail_at(ini_state *st, const sl_ini_pos *pos, const char *reason)
{
    if (pos)
        sl_cfg_err(st->err, st->errlen, "%s:%d: %s", pos->file, pos->line, reason);
    else
        sl_cfg_err(st->err, st->errlen, "%s", reason);
    return false;
}

/* Cut a trailing "# ..." or "; ..." comment: the marker must follow whitespace and lie outside quotes. */
static void strip_comment(char *s)
{
    char quote = 0;
    for (char *p = s; *p; p++) {
        if (quote) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == quote) quote = 0;
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
        } else if ((*p == '#' || *p == ';') && (p == s || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            break;
        }
    }
    rtrim(s);
}

/* Growable output buffer for expansion. */
typedef struct obuf {
    char *p;
    size_t n, cap;
} obuf;

static bool obuf_add(obuf *b, const char *s, size_t len)
{
    if (b->n + len + 1 > b->cap) {
        size_t cap = (b->n + len + 1) * 2;
        char *np = realloc(b->p, cap);
        if (!np) return false;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
    return true;
}

/* Expand one ${NAME} starting at s (pointing at '$'); advances *s past it. */
static bool expand_one(const char **s, obuf *b, char *err, size_t errlen)
{
    const char *name = *s + 2, *end = strchr(name, '}');
    if (!end) return sl_cfg_err(err, errlen, "unterminated ${ in value"), false;
    size_t len = (size_t)(end - name);
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_') len = 0;
    if (len == 0 || len > 255) {
        sl_cfg_err(err, errlen, "invalid environment variable reference \"%.*s\"", (int)(end - *s + 1), *s);
        return false;
    }
    char var[256];
    memcpy(var, name, len);
    var[len] = '\0';
    const char *val = getenv(var);
    if (!val) return sl_cfg_err(err, errlen, "environment variable %s is not set", var), false;
    *s = end + 1;
    return obuf_add(b, val, strlen(val)) || (sl_cfg_err(err, errlen, "out of memory"), false);
}

char *sl_ini_expand_env(const char *value, char *err, size_t errlen)
{
    obuf b = {0};
    const char *s = value;
    if (!obuf_add(&b, "", 0)) return sl_cfg_err(err, errlen, "out of memory"), NULL;
    while (*s) {
        const char *d = strstr(s, "${");
        size_t lit = d ? (size_t)(d - s) : strlen(s);
        if (!obuf_add(&b, s, lit)) {
            free(b.p);
            return sl_cfg_err(err, errlen, "out of memory"), NULL;
        }
        s += lit;
        if (d && !expand_one(&s, &b, err, errlen)) {
            free(b.p);
            return NULL;
        }
    }
    return b.p;
}

/* Resolve an include path relative to the directory of the including file. */
static char *include_path(const char *from_file, const char *path)
{
    if (path[0] == '/') return strdup(path);
    const char *slash = strrchr(from_file, '/');
    size_t dirlen = slash ? (size_t)(slash - from_file) + 1 : 0;
    char *out = malloc(dirlen + strlen(path) + 1);
    if (!out) return NULL;
    memcpy(out, from_file, dirlen);
    strcpy(out + dirlen, path);
    return out;
}

static bool handle_include(ini_state *st, const sl_ini_pos *pos, char *arg)
{
    char reason[512];
    strip_comment(arg);
    if (!*arg) return fail_at(st, pos, "%include needs a file name");
    char *expanded = sl_ini_expand_env(arg, reason, sizeof(reason));
    if (!expanded) return fail_at(st, pos, reason);
    char *path = include_path(pos->file, expanded);
    free(expanded);
    if (!path) return fail_at(st, pos, "out of memory");
    bool ok = read_file(st, path, pos);
    free(path);
    return ok;
}

static bool handle_directive(ini_state *st, const sl_ini_pos *pos, char *s)
{
    char *arg = s + 1;
    while (*arg && !isspace((unsigned char)*arg)) arg++;
    size_t len = (size_t)(arg - s);
    if (len == 8 && strncasecmp(s, "%include", 8) == 0) return handle_include(st, pos, skip_ws(arg));
    char reason[128];
    snprintf(reason, sizeof(reason), "unknown directive \"%.*s\"", (int)(len > 64 ? 64 : len), s);
    return fail_at(st, pos, reason);
}

static bool call_cb(ini_state *st, const sl_ini_pos *pos, const char *key, const char *value)
{
    char reason[1024];
    reason[0] = '\0';
    if (st->cb(st->ctx, pos, st->section, key, value, reason, sizeof(reason))) return true;
    return fail_at(st, pos, reason[0] ? reason : "rejected");
}

static bool handle_section(ini_state *st, const sl_ini_pos *pos, char *s)
{
    char *close = strchr(s, ']');
    if (!close) return fail_at(st, pos, "missing ] in section header");
    *close = '\0';
    char *rest = close + 1;
    strip_comment(rest);
    if (*skip_ws(rest)) return fail_at(st, pos, "unexpected text after section header");
    char *name = skip_ws(s + 1);
    rtrim(name);
    if (!*name) return fail_at(st, pos, "empty section name");
    char *dup = strdup(name);
    if (!dup) return fail_at(st, pos, "out of memory");
    free(st->section);
    st->section = dup;
    return call_cb(st, pos, NULL, NULL);
}

static bool handle_pair(ini_state *st, const sl_ini_pos *pos, char *s)
{
    char *eq = strchr(s, '=');
    if (!eq) return fail_at(st, pos, "syntax error: expected \"name = value\"");
    *eq = '\0';
    rtrim(s);
    if (!*s) return fail_at(st, pos, "missing setting name before \"=\"");
    if (!st->section) return fail_at(st, pos, "setting outside of any [section]");
    char *value = skip_ws(eq + 1);
    strip_comment(value);
    char reason[512];
    char *expanded = sl_ini_expand_env(value, reason, sizeof(reason));
    if (!expanded) return fail_at(st, pos, reason);
    bool ok = call_cb(st, pos, s, expanded);
    free(expanded);
    return ok;
}

static bool handle_line(ini_state *st, const sl_ini_pos *pos, char *line)
{
    char *s = skip_ws(line);
    rtrim(s);
    if (!*s || *s == ';' || *s == '#') return true;
    if (*s == '%') return handle_directive(st, pos, s);
    if (*s == '[') return handle_section(st, pos, s);
    return handle_pair(st, pos, s);
}

static bool read_lines(ini_state *st, FILE *f, const char *path)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    sl_ini_pos pos = {path, 0};
    bool ok = true;
    while (ok && (len = getline(&line, &cap, f)) >= 0) {
        pos.line++;
        char *s = line;
        if (pos.line == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF)
            s += 3;
        if (memchr(line, '\0', (size_t)len)) ok = fail_at(st, &pos, "NUL byte in line");
        else ok = handle_line(st, &pos, s);
    }
    if (ok && ferror(f)) ok = fail_at(st, &pos, "read error");
    free(line);
    return ok;
}

/* Refuse a file that is already being read (include loop) or nesting that is too deep. */
static bool enter_file(ini_state *st, const char *path, const sl_ini_pos *from)
{
    char reason[PATH_MAX + 64];
    char *real = realpath(path, NULL);
    if (!real) {
        snprintf(reason, sizeof(reason), "cannot open %s \"%s\": %s", from ? "include file" : "config file", path,
                 strerror(errno));
        return fail_at(st, from, reason);
    }
    for (int i = 0; i < st->depth; i++) {
        if (strcmp(st->stack[i], real) == 0) {
            snprintf(reason, sizeof(reason), "include loop: \"%s\" is already being read", path);
            free(real);
            return fail_at(st, from, reason);
        }
    }
    if (st->depth == INI_MAX_DEPTH) {
        free(real);
        return fail_at(st, from, "includes nested too deeply");
    }
    st->stack[st->depth++] = real;
    return true;
}

static bool read_file(ini_state *st, const char *path, const sl_ini_pos *from)
{
    if (!enter_file(st, path, from)) return false;
    bool ok;
    FILE *f = fopen(path, "r");
    if (!f) {
        char reason[PATH_MAX + 64];
        snprintf(reason, sizeof(reason), "cannot open %s \"%s\": %s", from ? "include file" : "config file", path,
                 strerror(errno));
        ok = fail_at(st, from, reason);
    } else {
        ok = read_lines(st, f, path);
        fclose(f);
    }
    free(st->stack[--st->depth]);
    return ok;
}

bool sl_ini_parse(const char *path, sl_ini_cb cb, void *ctx, char *err, size_t errlen)
{
    ini_state st = {.cb = cb, .ctx = ctx, .err = err, .errlen = errlen};
    if (err && errlen) err[0] = '\0';
    bool ok = read_file(&st, path, NULL);
    free(st.section);
    return ok;
}
