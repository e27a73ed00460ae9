/* pgoptions.c - reading the startup packet's "options" parameter as PostgreSQL does (see pgoptions.h). */
#include "proto/pgoptions.h"

#include <stdio.h>
#include <string.h>

/* One blank-separated argument, backslash escapes resolved, into buf. false: longer than len - 1. */
static bool next_arg(const char **pos, char *buf, size_t len, bool *found)
{
    const char *p = *pos;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v') p++;
    *found = *p != '\0';
    size_t n = 0;
    bool ok = true;
    while (*p && !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')) {
        if (*p == '\\' && p[1]) p++;
        if (n + 1 < len) buf[n++] = *p;
        else ok = false;
        p++;
    }
    buf[n] = '\0';
    *pos = p;
    return ok;
}

static sl_pgopt_status fail(char *err, size_t err_len, const char *fmt, const char *what)
{
    snprintf(err, err_len, fmt, what);
    return SL_PGOPT_ERROR;
}

sl_pgopt_status sl_pgoptions_next(const char **pos, char *name, size_t name_len, char *value, size_t value_len,
                                  char *err, size_t err_len)
{
    char arg[1024];
    bool found;
    if (!next_arg(pos, arg, sizeof(arg), &found)) return fail(err, err_len, "%s", "parameter too long");
    if (!found) return SL_PGOPT_DONE;
    const char *setting;
    if (!strcmp(arg, "-c")) {
        if (!next_arg(pos, arg, sizeof(arg), &found)) return fail(err, err_len, "%s", "parameter too long");
        if (!found) return fail(err, err_len, "%s", "-c needs name=value");
        setting = arg;
    } else if (!strncmp(arg, "-c", 2)) {
        setting = arg + 2;
    } else if (!strncmp(arg, "--", 2) && arg[2]) {
        setting = arg + 2;
    } else {
        return fail(err, err_len, "only -c name=value and --name=value are supported, not \"%s\"", arg);
    }
    const char *eq = strchr(setting, '=');
    if (!eq || eq == setting) return fail(err, err_len, "\"%s\" is not name=value", setting);
    size_t nlen = (size_t)(eq - setting), vlen = strlen(eq + 1);
    if (nlen + 1 > name_len || vlen + 1 > value_len) return fail(err, err_len, "%s", "parameter too long");
    /* PostgreSQL's ParseLongOption: dashes in the name become underscores, for -c as for -- */
    for (size_t i = 0; i < nlen; i++) name[i] = setting[i] == '-' ? '_' : setting[i];
    name[nlen] = '\0';
    memcpy(value, eq + 1, vlen + 1);
    return SL_PGOPT_SETTING;
}
