/* hba.h - auth_hba_file: host-based authentication rules in pg_hba.conf syntax, loaded into an immutable,
 * reference-counted list, and the first rule that matches a connection.
 *
 * Loading fails closed: any line pgsluice cannot honour exactly is a load error "file:line: reason"
 * (start-up and RELOAD must then fail and keep the old rules). What is accepted:
 *   connection types  local, host, hostssl, hostnossl, hostgssenc (never matches: pgsluice has no GSS
 *                     encryption), hostnogssenc (every TCP connection)
 *   database field    names, "quoted names", comma lists, @file, all, sameuser, replication (matches only
 *                     physical replication connections, which match nothing else), /regex
 *   user field        names, "quoted names", comma lists, @file, all, /regex
 *   address field     a.b.c.d/len, IPv6/len, an address and a netmask in two fields, all, samehost,
 *                     samenet (the host's interfaces, enumerated at each match as PostgreSQL does)
 *   methods           trust reject md5 password scram-sha-256 cert peer pam ldap ("ident" on a local line
 *                     means peer, as in PostgreSQL)
 *   options           map= (peer, cert), clientcert=verify-ca|verify-full and clientname=CN (hostssl),
 *                     pamservice= pam_use_hostname=0|1 (pam), ldapserver ldapport ldapscheme ldaptls
 *                     ldapprefix ldapsuffix ldapbasedn ldapbinddn ldapbindpasswd ldapsearchattribute
 *                     ldapsearchfilter ldapurl (ldap)
 * Refused with a reason: samerole/samegroup and +group (pgsluice cannot see the server's role
 * memberships), host names and .domain suffixes in the address field (PgBouncer does not resolve them
 * either), include/include_if_exists/include_dir lines (PgBouncer does not read them), the methods
 * ident over TCP, gss, sspi, radius, bsd, clientname=DN, and any unknown method or option.
 *
 * Thread safety: a loaded sl_hba is never modified; sl_hba_match may run on any number of threads at
 * once. The rules (and every string they point to) live as long as the sl_hba.
 */
#ifndef SL_CONFIG_HBA_H
#define SL_CONFIG_HBA_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;
typedef struct sl_ident sl_ident;

typedef enum {
    SL_HBA_LOCAL = 0,
    SL_HBA_HOST,
    SL_HBA_HOSTSSL,
    SL_HBA_HOSTNOSSL,
    SL_HBA_HOSTGSSENC,
    SL_HBA_HOSTNOGSSENC,
} sl_hba_conntype;

typedef enum {
    SL_HBA_TRUST = 0,
    SL_HBA_REJECT,
    SL_HBA_MD5,      /* PostgreSQL (and PgBouncer): SCRAM instead when the stored secret is a SCRAM one */
    SL_HBA_PASSWORD, /* clear-text password */
    SL_HBA_SCRAM,    /* scram-sha-256 */
    SL_HBA_CERT,     /* hostssl only; the certificate's CN must map to the user (map= or equal) */
    SL_HBA_PEER,     /* local only; the socket peer's OS user must map to the user (map= or equal) */
    SL_HBA_PAM,
    SL_HBA_LDAP,
} sl_hba_method;

typedef enum {
    SL_HBA_CLIENTCERT_OFF = 0,    /* no client certificate required */
    SL_HBA_CLIENTCERT_VERIFY_CA,  /* a certificate signed by the client CA is required */
    SL_HBA_CLIENTCERT_VERIFY_FULL /* ... and its CN must be the user name (or map to it); implied by cert */
} sl_hba_clientcert;

/* LDAP search scope (the values LDAP itself uses). */
enum { SL_HBA_LDAP_SCOPE_BASE = 0, SL_HBA_LDAP_SCOPE_ONE = 1, SL_HBA_LDAP_SCOPE_SUBTREE = 2 };

/* The options of an ldap rule, resolved (ldapurl taken apart) and checked at load. NULL = not set.
 * Simple bind mode when prefix or suffix is set, search+bind mode otherwise (basedn is then set). */
typedef struct sl_hba_ldap {
    char *scheme;          /* "ldap" or "ldaps"; never NULL */
    char *server;          /* one or more host names or addresses, blank-separated; never NULL */
    int port;              /* 0: the scheme's default (389, 636) */
    bool starttls;         /* ldaptls=1 */
    char *prefix, *suffix; /* simple bind: the DN is prefix + user (DN-escaped) + suffix */
    char *basedn, *binddn, *bindpasswd;
    char *searchattribute; /* search+bind without searchfilter: "uid" when NULL */
    char *searchfilter;    /* "$username" replaced by the filter-escaped user */
    int scope;             /* SL_HBA_LDAP_SCOPE_*; subtree unless ldapurl says otherwise */
} sl_hba_ldap;

/* One rule, as the caller sees it. */
typedef struct sl_hba_rule {
    const char *file;   /* the file it was read from and its line (for logs) */
    int line;
    sl_hba_conntype type;
    sl_hba_method method;
    const char *map;    /* map= (peer, cert) or NULL */
    sl_hba_clientcert clientcert;
    const char *pamservice; /* pamservice= or NULL: the default service */
    bool pam_use_hostname;  /* pam_use_hostname=1: PAM_RHOST is the client's host name, not its address */
    sl_hba_ldap ldap;       /* method == SL_HBA_LDAP */
} sl_hba_rule;

typedef struct sl_hba sl_hba;

/* Load path (relative @file names are relative to its directory). NULL with "file:line: reason" in err. */
sl_hba *sl_hba_load(const char *path, char *err, size_t errlen);
/* Parse text[0..len) as an hba file: name is used in errors, base_dir resolves @file names (NULL refuses
 * @file: the fuzzing entry point). Never reads past len; NUL bytes are an error. Reference count 1. */
sl_hba *sl_hba_parse_buffer(const char *text, size_t len, const char *name, const char *base_dir, char *err,
                            size_t errlen);
void sl_hba_ref(sl_hba *hba);
void sl_hba_unref(sl_hba *hba); /* frees on the last reference; NULL is fine */

size_t sl_hba_rule_count(const sl_hba *hba);
const sl_hba_rule *sl_hba_rule_at(const sl_hba *hba, size_t i);

/* A connection asking to log in. */
typedef struct sl_hba_client {
    bool unix_socket;             /* true: matches local lines only */
    bool tls;                     /* TCP: the connection is TLS-encrypted */
    const struct sockaddr *addr;  /* TCP: the peer (AF_INET or AF_INET6; an IPv4-mapped IPv6 address also
                                   * matches IPv4 rules). NULL matches only address "all". */
    const char *database;
    const char *user;
    bool physical_replication;    /* startup parameter replication=true/on/yes/1 (not "database") */
} sl_hba_client;

/* The first rule matching c, or NULL: no rule, so the login is refused. A reject rule is returned like
 * any other (method SL_HBA_REJECT): the caller refuses the login and words it differently. */
const sl_hba_rule *sl_hba_match(const sl_hba *hba, const sl_hba_client *c);

/* PostgreSQL's message for a refused login (send it with SQLSTATE 28000, invalid_authorization_
 * specification): matched_reject false: 'no pg_hba.conf entry for host "...", user "...", database "...",
 * SSL encryption|no encryption'; true: 'pg_hba.conf rejects connection for host ...'. Local connections
 * show host "[local]"; physical replication connections say "replication connection". Returns buf. */
const char *sl_hba_refusal_message(const sl_hba_client *c, bool matched_reject, char *buf, size_t len);

/* Every map= named by a rule must be defined in ident (which may be NULL: no auth_ident_file). false with
 * "file:line: map "x" ..." otherwise. Config load should call it and fail closed. */
bool sl_hba_check_maps(const sl_hba *hba, const sl_ident *ident, char *err, size_t errlen);

/* Parse an LDAP option string in hba syntax ("ldapserver=... ldapbasedn=..."), e.g. for a global
 * auth_ldap_options setting, with the checks of an ldap rule. On success fill *out (free with
 * sl_hba_ldap_clear). */
bool sl_hba_ldap_parse(const char *options, sl_hba_ldap *out, char *err, size_t errlen);
void sl_hba_ldap_clear(sl_hba_ldap *l);

const char *sl_hba_method_name(sl_hba_method m);     /* the keyword: "scram-sha-256", ... */
const char *sl_hba_conntype_name(sl_hba_conntype t); /* "hostssl", ... */

#endif
