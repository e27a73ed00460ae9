/* params.h - the session parameters pgsluice tracks per client, per server and per backend: their
 * names (X-macro) and interned values, so that comparing a client's settings with a server's is a
 * handful of pointer compares. */
#ifndef SL_PARAMS_H
#define SL_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

/* Session parameters a client may set at startup and that pgsluice keeps per client: when a client
 * is linked to a server whose value differs, pgsluice sets it there first. Those the server reports
 * (ParameterStatus) are followed from its reports; the others (search_path before PostgreSQL 18)
 * from the client's SET / RESET statements in transaction pooling (core/session_state.c).
 * X-macro: C name, wire name. */
#define SL_TRACKED_PARAMS(X)                                   \
    X(CLIENT_ENCODING, "client_encoding")                      \
    X(DATESTYLE, "DateStyle")                                  \
    X(TIMEZONE, "TimeZone")                                    \
    X(INTERVALSTYLE, "IntervalStyle")                          \
    X(STANDARD_CONFORMING_STRINGS, "standard_conforming_strings") \
    X(APPLICATION_NAME, "application_name")                    \
    X(SEARCH_PATH, "search_path")                              \
    X(DEFAULT_TRANSACTION_READ_ONLY, "default_transaction_read_only")
#define SL_PARAM_ENUM(id, name) SL_PARAM_##id,
typedef enum { SL_TRACKED_PARAMS(SL_PARAM_ENUM) SL_NPARAMS_FIXED } sl_param_id;
#undef SL_PARAM_ENUM
/* track_extra_parameters adds up to this many names after the fixed ones (slots left NULL). */
#define SL_PARAM_EXTRA_MAX 8
#define SL_NPARAMS (SL_NPARAMS_FIXED + SL_PARAM_EXTRA_MAX)
/* Wire names; NULL for an extra slot not in use. Written only by sl_params_track_extra, at start-up
 * before any other thread runs; read-only afterwards. */
extern const char *sl_param_names[SL_NPARAMS];
int sl_param_lookup(const char *name); /* case-insensitive; -1 if not tracked */
/* Track the parameters of a comma/blank separated list too (track_extra_parameters); the fixed ones
 * may be named again. false + err: more than SL_PARAM_EXTRA_MAX others, or a name that is not a
 * plain identifier. Call once, at start-up. */
bool sl_params_track_extra(const char *list, char *err, size_t errlen);

/* Parameter values, interned (util/intern.h): equal values are the same pointer, and thousands of
 * clients with the same settings share one copy. NULL = unset. */
typedef struct sl_params {
    const char *v[SL_NPARAMS];
} sl_params;
void sl_params_set(sl_params *p, int id, const char *value);
/* Set from a value that is already interned (another sl_params' v[]): no lookup. */
void sl_params_set_interned(sl_params *p, int id, const char *interned);
void sl_params_clear(sl_params *p);
/* Copy one value (NULL allowed) from another sl_params. */
void sl_params_copy_one(sl_params *dst, const sl_params *src, int id);

#endif
