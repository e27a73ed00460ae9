/* ldap.c - sl_ldap_check: PostgreSQL's LDAP authentication (simple bind, search+bind) with libldap's
 * synchronous calls, for libuv's thread pool. */
#include "auth/ldap.h"

#include <ldap.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "util/errbuf.h"

#define DEFAULT_TIMEOUT_MS 10000


/* ---- escaping ---- */

static bool put(char *out, size_t outlen, size_t *n, const char *s, size_t len)
{
    if (*n + len + 1 > outlen) return false;
    memcpy(out + *n, s, len);
    *n += len;
    out[*n] = '\0';
    return true;
}

static bool put_hex(char *out, size_t outlen, size_t *n, unsigned char c)
{
    char hex[4];
    snprintf(hex, sizeof(hex), "\\%02x", c);
    return put(out, outlen, n, hex, 3);
}

bool sl_ldap_escape_filter(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    if (!outlen) return false;
    out[0] = '\0';
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool ok = (*p == '*' || *p == '(' || *p == ')' || *p == '\\') ? put_hex(out, outlen, &n, *p)
                                                                      : put(out, outlen, &n, (const char *)p, 1);
        if (!ok) return false;
    }
    return true;
}

bool sl_ldap_escape_dn(const char *in, char *out, size_t outlen)
{
    size_t n = 0, len = strlen(in);
    if (!outlen) return false;
    out[0] = '\0';
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        bool ok;
        if (strchr("\"+,;<>\\=", c) || (c == '#' && i == 0) || (c == ' ' && (i == 0 || i == len - 1))) {
            char esc[2] = {'\\', c};
            ok = put(out, outlen, &n, esc, 2);
        } else {
            ok = put(out, outlen, &n, &c, 1);
        }
        if (!ok) return false;
    }
    return true;
}

/* ---- connections ---- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

/* libldap reads ldap.conf and the LDAP* environment on first use; do that once, not racing. */
static void global_init(void)
{
    int version = 0;
    ldap_get_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &version);
}

typedef struct ldap_ctx {
    const sl_ldap_options *o;
    const char *scheme;
    int port;
    struct timeval timeout;
    char *err;
    size_t errlen;
} ldap_ctx;

/* What the server said beyond the result code, if anything. */
static void server_error(LDAP *ld, int rc, char *buf, size_t len)
{
    char *diag = NULL;
    ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
    snprintf(buf, len, "%s%s%s", ldap_err2string(rc), diag && *diag ? ": " : "", diag && *diag ? diag : "");
    ldap_memfree(diag);
}

/* "scheme://host:port scheme://host2:port" for ldap_initialize. */
static char *server_uris(const ldap_ctx *c)
{
    size_t cap = strlen(c->o->server) * 2 + 64, n = 0;
    char *uris = malloc(cap);
    if (!uris) return NULL;
    uris[0] = '\0';
    const char *p = c->o->server;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        size_t hl = strcspn(p, " \t");
        if (!hl) break;
        bool v6 = memchr(p, ':', hl) != NULL && p[0] != '['; /* an IPv6 literal needs brackets in a URI */
        size_t need = n + hl + strlen(c->scheme) + 24;
        if (need > cap) {
            cap = need * 2;
            char *nu = realloc(uris, cap);
            if (!nu) return free(uris), NULL;
            uris = nu;
        }
        n += (size_t)snprintf(uris + n, cap - n, "%s%s://%s%.*s%s:%d", n ? " " : "", c->scheme, v6 ? "[" : "",
                              (int)hl, p, v6 ? "]" : "", c->port);
        p += hl;
    }
    if (!n) return free(uris), NULL;
    return uris;
}

static LDAP *connect_ldap(const ldap_ctx *c)
{
    char *uris = server_uris(c);
    if (!uris) return sl_errf(c->err, c->errlen, "no LDAP server to connect to (ldapserver \"%s\")", c->o->server), NULL;
    LDAP *ld = NULL;
    int rc = ldap_initialize(&ld, uris);
    if (rc != LDAP_SUCCESS) {
        sl_errf(c->err, c->errlen, "could not initialize LDAP for \"%s\": %s", uris, ldap_err2string(rc));
        free(uris);
        return NULL;
    }
    int version = LDAP_VERSION3;
    if ((rc = ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version)) != LDAP_OPT_SUCCESS ||
        (rc = ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &c->timeout)) != LDAP_OPT_SUCCESS ||
        (rc = ldap_set_option(ld, LDAP_OPT_TIMEOUT, &c->timeout)) != LDAP_OPT_SUCCESS ||
        (rc = ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF)) != LDAP_OPT_SUCCESS) {
        sl_errf(c->err, c->errlen, "could not set LDAP options for \"%s\"", uris);
        ldap_unbind_ext_s(ld, NULL, NULL);
        free(uris);
        return NULL;
    }
    if (c->o->starttls && (rc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS) {
        char why[256];
        server_error(ld, rc, why, sizeof(why));
        sl_errf(c->err, c->errlen, "could not start LDAP TLS session with \"%s\": %s", uris, why);
        ldap_unbind_ext_s(ld, NULL, NULL);
        free(uris);
        return NULL;
    }
    free(uris);
    return ld;
}

static int simple_bind(LDAP *ld, const char *dn, const char *password)
{
    struct berval cred = {password ? strlen(password) : 0, (char *)(password ? password : "")};
    return ldap_sasl_bind_s(ld, dn ? dn : "", LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
}

/* ---- search+bind ---- */

/* The search filter for user: ldapsearchfilter with every $username replaced, or (attribute=user). */
static char *search_filter(const sl_ldap_options *o, const char *escaped_user)
{
    const char *tmpl = o->searchfilter;
    char simple[256];
    if (!tmpl) {
        snprintf(simple, sizeof(simple), "(%s=$username)", o->searchattribute ? o->searchattribute : "uid");
        tmpl = simple;
    }
    size_t ulen = strlen(escaped_user), n = 0, cap = strlen(tmpl) + 1;
    for (const char *p = strstr(tmpl, "$username"); p; p = strstr(p + 9, "$username")) cap += ulen;
    char *f = malloc(cap);
    if (!f) return NULL;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "$username", 9) == 0) {
            memcpy(f + n, escaped_user, ulen);
            n += ulen;
            p += 9;
        } else {
            f[n++] = *p++;
        }
    }
    f[n] = '\0';
    return f;
}

static int ldap_scope(int scope)
{
    return scope == 0 ? LDAP_SCOPE_BASE : scope == 1 ? LDAP_SCOPE_ONELEVEL : LDAP_SCOPE_SUBTREE;
}

/* Find the one entry for user; its DN (ldap_memfree) or NULL with err set. */
static char *find_user_dn(const ldap_ctx *c, const char *user)
{
    const sl_ldap_options *o = c->o;
    char escaped[1024], why[512];
    if (!sl_ldap_escape_filter(user, escaped, sizeof(escaped)))
        return sl_errf(c->err, c->errlen, "user name too long for LDAP authentication"), NULL;
    LDAP *ld = connect_ldap(c);
    if (!ld) return NULL;
    char *dn = NULL, *filter = NULL;
    LDAPMessage *res = NULL;
    int rc = simple_bind(ld, o->binddn, o->bindpasswd);
    if (rc != LDAP_SUCCESS) {
        server_error(ld, rc, why, sizeof(why));
        sl_errf(c->err, c->errlen, "could not perform initial LDAP bind for ldapbinddn \"%s\" on server \"%s\": %s",
             o->binddn ? o->binddn : "", o->server, why);
        goto out;
    }
    if (!(filter = search_filter(o, escaped))) {
        sl_errf(c->err, c->errlen, "out of memory");
        goto out;
    }
    char *attrs[] = {LDAP_NO_ATTRS, NULL};
    struct timeval tv = c->timeout;
    rc = ldap_search_ext_s(ld, o->basedn, ldap_scope(o->scope), filter, attrs, 0, NULL, NULL, &tv, 2, &res);
    int count = res ? ldap_count_entries(ld, res) : 0;
    if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
        server_error(ld, rc, why, sizeof(why));
        sl_errf(c->err, c->errlen, "could not search LDAP for filter \"%s\" on server \"%s\": %s", filter, o->server,
             why);
        goto out;
    }
    if (count == 0) {
        sl_errf(c->err, c->errlen, "LDAP user \"%s\" does not exist (search for filter \"%s\" on server \"%s\" "
             "returned no entries)", user, filter, o->server);
        goto out;
    }
    if (count > 1 || rc == LDAP_SIZELIMIT_EXCEEDED) {
        sl_errf(c->err, c->errlen, "LDAP user \"%s\" is not unique (search for filter \"%s\" on server \"%s\" "
             "returned more than one entry)", user, filter, o->server);
        goto out;
    }
    LDAPMessage *entry = ldap_first_entry(ld, res);
    dn = entry ? ldap_get_dn(ld, entry) : NULL;
    if (!dn) {
        int e = LDAP_OTHER;
        ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &e);
        sl_errf(c->err, c->errlen, "could not get dn for the first entry matching \"%s\" on server \"%s\": %s", filter,
             o->server, ldap_err2string(e));
    } else if (!*dn) {
        sl_errf(c->err, c->errlen, "LDAP search for \"%s\" on server \"%s\" returned an empty DN", filter, o->server);
        ldap_memfree(dn);
        dn = NULL;
    }
out:
    if (res) ldap_msgfree(res);
    free(filter);
    ldap_unbind_ext_s(ld, NULL, NULL);
    return dn;
}

/* ---- the check ---- */

bool sl_ldap_check(const sl_ldap_options *o, const char *user, const char *password, char *err, size_t errlen)
{
    if (!o || !o->server || !*o->server) return sl_errf(err, errlen, "no LDAP server configured"), false;
    if (!user || !*user) return sl_errf(err, errlen, "empty user name"), false;
    if (!password || !*password) return sl_errf(err, errlen, "empty password returned by client"), false;
    bool simple_mode = o->prefix || o->suffix;
    if (!simple_mode && !o->basedn) return sl_errf(err, errlen, "LDAP: neither ldapbasedn nor ldapprefix/ldapsuffix set"), false;
    pthread_once(&global_once, global_init);

    int ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    ldap_ctx c = {.o = o,
                  .scheme = o->scheme && *o->scheme ? o->scheme : "ldap",
                  .timeout = {ms / 1000, (ms % 1000) * 1000},
                  .err = err,
                  .errlen = errlen};
    c.port = o->port > 0 ? o->port : strcmp(c.scheme, "ldaps") == 0 ? LDAPS_PORT : LDAP_PORT;

    char *dn = NULL;
    bool dn_from_ldap = false;
    if (simple_mode) {
        char escaped[1024];
        if (!sl_ldap_escape_dn(user, escaped, sizeof(escaped)))
            return sl_errf(err, errlen, "user name too long for LDAP authentication"), false;
        const char *pre = o->prefix ? o->prefix : "", *suf = o->suffix ? o->suffix : "";
        size_t len = strlen(pre) + strlen(escaped) + strlen(suf) + 1;
        if (!(dn = malloc(len))) return sl_errf(err, errlen, "out of memory"), false;
        snprintf(dn, len, "%s%s%s", pre, escaped, suf);
    } else {
        if (!(dn = find_user_dn(&c, user))) return false;
        dn_from_ldap = true;
    }

    bool ok = false;
    LDAP *ld = connect_ldap(&c);
    if (ld) {
        int rc = simple_bind(ld, dn, password);
        if (rc == LDAP_SUCCESS) {
            ok = true;
        } else {
            char why[512];
            server_error(ld, rc, why, sizeof(why));
            sl_errf(err, errlen, "LDAP login failed for user \"%s\" on server \"%s\": %s", dn, o->server, why);
        }
        ldap_unbind_ext_s(ld, NULL, NULL);
    }
    if (dn_from_ldap) ldap_memfree(dn);
    else free(dn);
    return ok;
}
