/* params.c - tracked session parameters: names and interned values. */
#include "proto/params.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/intern.h"

#define SL_PARAM_NAME(id, name) name,
const char *sl_param_names[SL_NPARAMS] = {SL_TRACKED_PARAMS(SL_PARAM_NAME)};
#undef SL_PARAM_NAME

int sl_param_lookup(const char *name)
{
    /* the first bytes equal but for ASCII case (a cheap test that never misses a match) before the
     * full comparison: most names are told apart there */
    for (int i = 0; i < SL_NPARAMS && sl_param_names[i]; i++)
        if (((sl_param_names[i][0] ^ name[0]) & ~0x20) == 0 && strcasecmp(sl_param_names[i], name) == 0) return i;
    return -1;
}

bool sl_params_track_extra(const char *list, char *err, size_t errlen)
{
    int next = SL_NPARAMS_FIXED;
    while (next < SL_NPARAMS && sl_param_names[next]) next++;
    const char *p = list ? list : "";
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t') p++;
        size_t n = 0;
        while (p[n] && p[n] != ',' && p[n] != ' ' && p[n] != '\t') n++;
        if (!n) break;
        char name[64];
        if (n >= sizeof(name)) {
            snprintf(err, errlen, "track_extra_parameters: name too long");
            return false;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        p += n;
        for (size_t i = 0; i < n; i++)
            if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '.') {
                snprintf(err, errlen, "track_extra_parameters: \"%s\" is not a parameter name", name);
                return false;
            }
        if (sl_param_lookup(name) >= 0) continue;
        if (next >= SL_NPARAMS) {
            snprintf(err, errlen, "track_extra_parameters: at most %d parameters besides the default ones",
                     SL_PARAM_EXTRA_MAX);
            return false;
        }
        char *copy = strdup(name);
        if (!copy) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
        sl_param_names[next++] = copy; /* lives as long as the process */
    }
    return true;
}

void sl_params_set(sl_params *p, int id, const char *value)
{
    if (p->v[id] && value && strcmp(p->v[id], value) == 0) return;
    const char *old = p->v[id];
    p->v[id] = sl_intern(value);
    sl_intern_release(old);
}

void sl_params_set_interned(sl_params *p, int id, const char *interned)
{
    if (p->v[id] == interned) return;
    const char *old = p->v[id];
    p->v[id] = sl_intern_ref(interned);
    sl_intern_release(old);
}

void sl_params_clear(sl_params *p)
{
    for (int i = 0; i < SL_NPARAMS; i++) {
        sl_intern_release(p->v[i]);
        p->v[i] = NULL;
    }
}

void sl_params_copy_one(sl_params *dst, const sl_params *src, int id)
{
    if (dst->v[id] == src->v[id]) return;
    const char *old = dst->v[id];
    dst->v[id] = src->v[id] ? sl_intern_ref(src->v[id]) : NULL;
    sl_intern_release(old);
}
