/* ldap.h - password check against an LDAP directory, PostgreSQL's two ways (the ldap method).
 *
 * Simple bind: bind as prefix + user + suffix with the password. Search+bind: bind as binddn (or
 * anonymously), search basedn for exactly one entry matching the filter, then bind as that entry's DN
 * with the password on a new connection. The user name is escaped in the filter (RFC 4515) and in the
 * DN (RFC 4514), so a name like "*" or "a,b" cannot change what is searched or bound. An empty password
 * is refused before anything is sent: an LDAP simple bind with a DN and no password is an
 * "unauthenticated bind" that many servers answer with success.
 *
 * sl_ldap_check BLOCKS (network round trips, bounded by timeout_ms each): call it from libuv's thread pool
 * (uv_queue_work), never on a worker's loop. Thread-safe: each call uses its own LDAP connections;
 * libldap's global state is initialised once (pthread_once). TLS (ldaps, StartTLS) uses libldap's
 * defaults: /etc/ldap/ldap.conf and the LDAPTLS_* environment variables (TLS_CACERT, TLS_REQCERT; the
 * server certificate is verified by default), like PostgreSQL.
 */
#ifndef SL_AUTH_LDAP_H
#define SL_AUTH_LDAP_H

#include <stdbool.h>
#include <stddef.h>

/* The options of one ldap rule (see config/hba.h sl_hba_ldap: core copies the pointers across). */
typedef struct sl_ldap_options {
    const char *scheme;          /* "ldap" (default when NULL) or "ldaps" */
    const char *server;          /* blank-separated host names or addresses, tried in order by libldap */
    int port;                    /* 0: 389 for ldap, 636 for ldaps */
    bool starttls;               /* StartTLS before any bind (ldaptls=1) */
    const char *prefix, *suffix; /* either set: simple bind mode */
    const char *basedn;          /* search+bind mode */
    const char *binddn, *bindpasswd;
    const char *searchattribute; /* default "uid" */
    const char *searchfilter;    /* "$username" is replaced by the escaped user name */
    int scope;                   /* 0 base, 1 one level, 2 subtree */
    int timeout_ms;              /* per connection attempt and per operation; 0: 10000 */
} sl_ldap_options;

/* true: user authenticated with password. false: err has the reason for the log (never the password). */
bool sl_ldap_check(const sl_ldap_options *opts, const char *user, const char *password, char *err, size_t errlen);

/* Escapes, exposed for tests. Return false when out does not fit the result. */
bool sl_ldap_escape_filter(const char *in, char *out, size_t outlen); /* RFC 4515: * ( ) \ NUL as \hh */
bool sl_ldap_escape_dn(const char *in, char *out, size_t outlen);     /* RFC 4514 attribute value */

#endif
