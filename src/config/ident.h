/* ident.h - auth_ident_file: user name maps in pg_ident.conf syntax, for the map= option of the peer and
 * cert methods in auth_hba_file.
 *
 * Each line is "MAPNAME SYSTEM-USERNAME DATABASE-USERNAME" (comments, quoting, continuation as in the hba
 * file). A SYSTEM-USERNAME starting with '/' is a regular expression (POSIX extended, see authfile.h for
 * the few constructs refused); the first "\1" in DATABASE-USERNAME is then replaced by what its first
 * parenthesized subexpression matched. DATABASE-USERNAME may be the keyword all (any user) or, as in
 * PostgreSQL 16, a '/' regular expression. Refused with a reason: +group (pgsluice cannot see the
 * server's role memberships), include directives, more or fewer than three fields, a "\1" when the
 * expression has no subexpression.
 *
 * Thread safety: a loaded sl_ident is never modified; sl_ident_allows may run on any number of threads.
 */
#ifndef SL_CONFIG_IDENT_H
#define SL_CONFIG_IDENT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sl_ident sl_ident;

/* Load path. NULL with "file:line: reason" in err. Reference count 1. */
sl_ident *sl_ident_load(const char *path, char *err, size_t errlen);
/* Parse text[0..len) (name for errors, base_dir for @file or NULL to refuse @file). */
sl_ident *sl_ident_parse_buffer(const char *text, size_t len, const char *name, const char *base_dir, char *err,
                                size_t errlen);
void sl_ident_ref(sl_ident *id);
void sl_ident_unref(sl_ident *id); /* NULL is fine */

/* Does some line define mapname? */
bool sl_ident_has_map(const sl_ident *id, const char *mapname);

/* May the authenticated system_user (the peer's OS user, the certificate's CN) log in as pg_user?
 * mapname NULL (the rule has no map=): only when the two names are equal, as PostgreSQL does.
 * mapname set: when a line of that map pairs them; false when id is NULL or has no such map. */
bool sl_ident_allows(const sl_ident *id, const char *mapname, const char *system_user, const char *pg_user);

#endif
