/* config_int.h - private interfaces shared by the files of the config layer (not for other layers). */
#ifndef SL_CONFIG_INT_H
#define SL_CONFIG_INT_H

#include "config/config.h"

#include <stdarg.h>

/* ---- ini.c: the line reader (sections, key = value, comments, %include, ${VAR}) ---- */

typedef struct sl_ini_pos {
    const char *file; /* the file the line is in (as opened, after include resolution) */
    int line;         /* 1-based */
} sl_ini_pos;

/* Called once per "[section]" line (key and value NULL) and once per "key = value" line. The value
 * has its trailing comment removed, is trimmed and has ${VAR} expanded. Return false with a reason
 * (no position) in err to stop; the reader prefixes "file:line: ". */
typedef bool (*sl_ini_cb)(void *ctx, const sl_ini_pos *pos, const char *section, const char *key,
                          const char *value, char *err, size_t errlen);

bool sl_ini_parse(const char *path, sl_ini_cb cb, void *ctx, char *err, size_t errlen);

/* ${VAR} expansion of one value. Returns a malloc'd string or NULL with a reason in err. */
char *sl_ini_expand_env(const char *value, char *err, size_t errlen);

/* ---- settings.c ---- */

/* Free the string settings of c (not the struct, not dbs/users/userlist). */
void sl_config_free_settings(sl_config *c);
/* Deep-copy the string settings of src into dst (dst is a bitwise copy of src). false on OOM. */
bool sl_config_copy_settings(sl_config *dst, const sl_config *src);
/* Parse a pool_mode name; false if unknown. */
bool sl_parse_pool_mode(const char *text, int *out);
/* Parse a non-negative decimal int in [lo, hi]. */
bool sl_parse_int_range(const char *text, int64_t lo, int64_t hi, int *out);

/* ---- compat.c: names PgBouncer knows that pgsluice accepts and ignores; warn-once bookkeeping ---- */

typedef struct sl_key_doc {
    const char *name;
    const char *description;
} sl_key_doc;

extern const sl_key_doc sl_ignored_settings[];   /* [pgbouncer] settings; NULL-terminated */
extern const sl_key_doc sl_setting_aliases[];    /* alias name -> description names the target */
extern const sl_key_doc sl_db_keys[];            /* implemented [databases] parameters */
extern const sl_key_doc sl_db_ignored_keys[];
extern const sl_key_doc sl_user_keys[];          /* implemented [users] parameters */
extern const sl_key_doc sl_user_ignored_keys[];

/* Find name (case-insensitive) in a NULL-terminated sl_key_doc list. */
const sl_key_doc *sl_key_doc_find(const sl_key_doc *list, const char *name);
/* The real setting name an alias stands for, or NULL. */
const char *sl_setting_alias_target(const char *name);

typedef struct sl_warn_once {
    char **seen;
    size_t n, cap;
    char where[300]; /* "file:line" of the line being read; prefixed to warnings when not empty */
} sl_warn_once;

/* Log "fmt" as a warning (prefixed with where) unless the same tag was already warned about. */
void sl_warn_once_log(sl_warn_once *w, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sl_warn_once_free(sl_warn_once *w);


/* ---- connstr.c: [databases] and [users] values ---- */

/* Parse "key=value key='quoted value' ..." calling cb for each pair (value unquoted).
 * On a syntax error returns false with a reason in err. */
typedef bool (*sl_connstr_cb)(void *ctx, const char *key, const char *value, char *err, size_t errlen);
bool sl_connstr_parse(const char *text, sl_connstr_cb cb, void *ctx, char *err, size_t errlen);

/* Fill a [databases] entry from its connection string. On error d is left freeable. */
bool sl_db_def_parse(sl_db_def *d, const char *name, const char *connstr, sl_warn_once *warn, char *err,
                     size_t errlen);
bool sl_user_def_parse(sl_user_def *u, const char *name, const char *connstr, sl_warn_once *warn, char *err,
                       size_t errlen);
void sl_db_def_free(sl_db_def *d);
bool sl_peer_def_parse(sl_peer_def *p, const char *id, const char *connstr, char *err, size_t errlen);
void sl_peer_def_free(sl_peer_def *p);
void sl_user_def_free(sl_user_def *u);
bool sl_db_def_copy(sl_db_def *dst, const sl_db_def *src);
bool sl_user_def_copy(sl_user_def *dst, const sl_user_def *src);

/* ---- small helpers (settings.c) ---- */

/* snprintf into err if err is not NULL. */
void sl_cfg_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* strdup that maps NULL to NULL. */
char *sl_cfg_strdup(const char *s);

#endif
