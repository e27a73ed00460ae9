/* ident.c - auth_ident_file: pg_ident.conf lines into user name maps, and the map check peer/cert use. */
#include "config/ident.h"

#include "config/authfile.h"
#include "config/config_int.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { PG_NAME, PG_ALL, PG_REGEX } pg_kind;

typedef struct ident_line {
    char *map;
    char *sys;       /* the name, or the pattern without its '/' */
    bool sys_regex;
    regex_t sys_re;
    char *pg;        /* the name (maybe with \1), or the pattern without its '/' */
    pg_kind pg_kind;
    regex_t pg_re;
    bool backref;    /* sys_regex and pg contains \1 */
} ident_line;

struct sl_ident {
    ident_line *lines;
    size_t n, cap;
    int refcount;
};

static void line_free(ident_line *l)
{
    if (l->sys_regex) regfree(&l->sys_re);
    if (l->pg_kind == PG_REGEX) regfree(&l->pg_re);
    free(l->map);
    free(l->sys);
    free(l->pg);
}

static void ident_free(sl_ident *id)
{
    for (size_t i = 0; i < id->n; i++) line_free(&id->lines[i]);
    free(id->lines);
    free(id);
}

void sl_ident_ref(sl_ident *id)
{
    if (id) __atomic_add_fetch(&id->refcount, 1, __ATOMIC_RELAXED);
}

void sl_ident_unref(sl_ident *id)
{
    if (id && __atomic_sub_fetch(&id->refcount, 1, __ATOMIC_ACQ_REL) == 0) ident_free(id);
}

/* Fill l from the three fields; on failure l holds only what line_free can release. */
static bool parse_fields(const sl_af_line *ln, ident_line *l, char *reason, size_t rlen)
{
    const sl_af_token *map = &ln->field[0].tok[0], *sys = &ln->field[1].tok[0], *pg = &ln->field[2].tok[0];
    if (!(l->map = strdup(map->text))) return snprintf(reason, rlen, "out of memory"), false;
    if (sys->text[0] == '/') {
        size_t nsub = 0;
        if (!(l->sys = strdup(sys->text + 1))) return snprintf(reason, rlen, "out of memory"), false;
        if (!sl_af_regcomp(&l->sys_re, l->sys, true, &nsub, reason, rlen)) return false;
        l->sys_regex = true;
        l->backref = strstr(pg->text, "\\1") != NULL && pg->text[0] != '/';
        if (l->backref && nsub == 0)
            return snprintf(reason, rlen,
                            "regular expression \"%s\" has no subexpressions as requested by backreference in "
                            "\"%s\"",
                            l->sys, pg->text),
                   false;
    } else if (!(l->sys = strdup(sys->text))) {
        return snprintf(reason, rlen, "out of memory"), false;
    }
    if (sl_af_is_keyword(pg, "all")) {
        l->pg_kind = PG_ALL;
    } else if (!pg->quoted && pg->text[0] == '+') {
        return snprintf(reason, rlen,
                        "group membership \"%s\" is not supported: pgsluice cannot see role memberships on the "
                        "server; list the users",
                        pg->text),
               false;
    } else if (pg->text[0] == '/') {
        if (!(l->pg = strdup(pg->text + 1))) return snprintf(reason, rlen, "out of memory"), false;
        if (!sl_af_regcomp(&l->pg_re, l->pg, false, NULL, reason, rlen)) return false;
        l->pg_kind = PG_REGEX;
    } else {
        l->pg_kind = PG_NAME;
    }
    if (!l->pg && !(l->pg = strdup(pg->text))) return snprintf(reason, rlen, "out of memory"), false;
    return true;
}

static bool ident_line_cb(void *ctx, const sl_af_line *ln, char *reason, size_t rlen)
{
    sl_ident *id = ctx;
    const sl_af_token *first = &ln->field[0].tok[0];
    if (ln->n == 2 && !first->quoted &&
        (!strcmp(first->text, "include") || !strcmp(first->text, "include_if_exists") ||
         !strcmp(first->text, "include_dir")))
        return snprintf(reason, rlen,
                        "\"%s\" directives are not supported (PgBouncer does not read them either): put the "
                        "mappings in this file",
                        first->text),
               false;
    if (ln->n < 3) return snprintf(reason, rlen, "missing entry at end of line"), false;
    if (ln->n > 3) return snprintf(reason, rlen, "extra field after the database user name"), false;
    for (size_t f = 0; f < 3; f++)
        if (ln->field[f].n > 1) return snprintf(reason, rlen, "multiple values in ident field"), false;
    if (id->n == id->cap) {
        size_t cap = id->cap ? id->cap * 2 : 16;
        ident_line *v = realloc(id->lines, cap * sizeof(*v));
        if (!v) return snprintf(reason, rlen, "out of memory"), false;
        id->lines = v;
        id->cap = cap;
    }
    ident_line *l = &id->lines[id->n];
    memset(l, 0, sizeof(*l));
    if (!parse_fields(ln, l, reason, rlen)) {
        line_free(l);
        return false;
    }
    id->n++;
    return true;
}

sl_ident *sl_ident_parse_buffer(const char *text, size_t len, const char *name, const char *base_dir, char *err,
                                size_t errlen)
{
    sl_ident *id = calloc(1, sizeof(*id));
    if (!id) return sl_cfg_err(err, errlen, "%s: out of memory", name ? name : "ident"), NULL;
    id->refcount = 1;
    if (!sl_af_parse(text, len, name, base_dir, ident_line_cb, id, err, errlen)) {
        ident_free(id);
        return NULL;
    }
    return id;
}

sl_ident *sl_ident_load(const char *path, char *err, size_t errlen)
{
    char *text;
    size_t len;
    if (!sl_af_read_file(path, "auth_ident_file", &text, &len, err, errlen)) return NULL;
    char *dir = sl_af_dirname(path);
    sl_ident *id = NULL;
    if (!dir) sl_cfg_err(err, errlen, "%s: out of memory", path);
    else id = sl_ident_parse_buffer(text, len, path, dir, err, errlen);
    free(dir);
    free(text);
    return id;
}

bool sl_ident_has_map(const sl_ident *id, const char *mapname)
{
    for (size_t i = 0; id && mapname && i < id->n; i++)
        if (strcmp(id->lines[i].map, mapname) == 0) return true;
    return false;
}

/* pg with its first \1 replaced by the capture; compared with pg_user. */
static bool backref_equals(const char *pg, const char *sys_user, const regmatch_t *cap, const char *pg_user)
{
    if (cap->rm_so < 0) return false; /* the subexpression did not take part in the match */
    const char *at = strstr(pg, "\\1");
    size_t before = (size_t)(at - pg), clen = (size_t)(cap->rm_eo - cap->rm_so), after = strlen(at + 2);
    size_t ulen = strlen(pg_user);
    if (before + clen + after != ulen) return false;
    return memcmp(pg_user, pg, before) == 0 && memcmp(pg_user + before, sys_user + cap->rm_so, clen) == 0 &&
           memcmp(pg_user + before + clen, at + 2, after) == 0;
}

static bool line_allows(const ident_line *l, const char *system_user, const char *pg_user)
{
    regmatch_t m[2];
    if (l->sys_regex) {
        if (regexec(&l->sys_re, system_user, 2, m, 0) != 0) return false;
    } else if (strcmp(l->sys, system_user) != 0) {
        return false;
    }
    switch (l->pg_kind) {
    case PG_ALL: return true;
    case PG_REGEX: return regexec(&l->pg_re, pg_user, 0, NULL, 0) == 0;
    case PG_NAME:
        if (l->backref) return backref_equals(l->pg, system_user, &m[1], pg_user);
        return strcmp(l->pg, pg_user) == 0;
    }
    return false;
}

bool sl_ident_allows(const sl_ident *id, const char *mapname, const char *system_user, const char *pg_user)
{
    if (!system_user || !pg_user) return false;
    if (!mapname) return strcmp(system_user, pg_user) == 0;
    for (size_t i = 0; id && i < id->n; i++)
        if (strcmp(id->lines[i].map, mapname) == 0 && line_allows(&id->lines[i], system_user, pg_user)) return true;
    return false;
}
