/* params.c - tracked session parameters: names and interned values. */
#include "proto/params.h"

#include <string.h>
#include <strings.h>

#include "util/intern.h"

#define SL_PARAM_NAME(id, name) name,
const char *const sl_param_names[SL_NPARAMS] = {SL_TRACKED_PARAMS(SL_PARAM_NAME)};
#undef SL_PARAM_NAME

int sl_param_lookup(const char *name)
{
    for (int i = 0; i < SL_NPARAMS; i++)
        if (strcasecmp(sl_param_names[i], name) == 0) return i;
    return -1;
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
