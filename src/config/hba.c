/* hba.c - auth_hba_file: pg_hba.conf lines into rules, and the first rule matching a connection. */
#include "config/hba.h"

#include "config/authfile.h"
#include "config/config_int.h"
#include "config/ident.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <ldap.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- the loaded form ---- */

typedef enum { NM_NAME, NM_REGEX, NM_ALL, NM_SAMEUSER, NM_REPLICATION } name_kind;

typedef struct name_item {
    name_kind kind;
    char *name; /* NM_NAME; the pattern for NM_REGEX (for messages) */
    regex_t re; /* NM_REGEX */
} name_item;

typedef struct name_list {
    name_item *v;
    size_t n;
} name_list;

typedef enum { ADDR_NONE, ADDR_ALL, ADDR_SAMEHOST, ADDR_SAMENET, ADDR_MASK } addr_kind;

typedef struct hba_rule {
    sl_hba_rule pub;
    name_list dbs, users;
    addr_kind addr;
    int af;           /* ADDR_MASK: AF_INET or AF_INET6 */
    uint8_t net[16];  /* ADDR_MASK: the address with the mask applied */
    uint8_t mask[16];
    char *map, *pamservice; /* owned; pub points to them */
} hba_rule;

struct sl_hba {
    hba_rule *rules;
    size_t n, cap;
    char **files; /* names rules point to */
    size_t nfiles;
    int refcount;
};

static const char *const method_names[] = {"trust", "reject",        "md5",  "password", "scram-sha-256",
                                           "cert",  "peer",          "pam",  "ldap"};
static const char *const conntype_names[] = {"local",     "host",       "hostssl",
                                             "hostnossl", "hostgssenc", "hostnogssenc"};

const char *sl_hba_method_name(sl_hba_method m)
{
    return (unsigned)m < sizeof(method_names) / sizeof(*method_names) ? method_names[m] : "?";
}

const char *sl_hba_conntype_name(sl_hba_conntype t)
{
    return (unsigned)t < sizeof(conntype_names) / sizeof(*conntype_names) ? conntype_names[t] : "?";
}

/* ---- freeing ---- */

static void names_free(name_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].kind == NM_REGEX) regfree(&l->v[i].re);
        free(l->v[i].name);
    }
    free(l->v);
    *l = (name_list){0};
}

void sl_hba_ldap_clear(sl_hba_ldap *l)
{
    if (!l) return;
    free(l->scheme);
    free(l->server);
    free(l->prefix);
    free(l->suffix);
    free(l->basedn);
    free(l->binddn);
    free(l->bindpasswd);
    free(l->searchattribute);
    free(l->searchfilter);
    *l = (sl_hba_ldap){0};
}

static void rule_free(hba_rule *r)
{
    names_free(&r->dbs);
    names_free(&r->users);
    free(r->map);
    free(r->pamservice);
    sl_hba_ldap_clear(&r->pub.ldap);
}

static void hba_free(sl_hba *h)
{
    for (size_t i = 0; i < h->n; i++) rule_free(&h->rules[i]);
    free(h->rules);
    for (size_t i = 0; i < h->nfiles; i++) free(h->files[i]);
    free(h->files);
    free(h);
}

void sl_hba_ref(sl_hba *hba)
{
    if (hba) __atomic_add_fetch(&hba->refcount, 1, __ATOMIC_RELAXED);
}

void sl_hba_unref(sl_hba *hba)
{
    if (hba && __atomic_sub_fetch(&hba->refcount, 1, __ATOMIC_ACQ_REL) == 0) hba_free(hba);
}

size_t sl_hba_rule_count(const sl_hba *hba) { return hba ? hba->n : 0; }

const sl_hba_rule *sl_hba_rule_at(const sl_hba *hba, size_t i)
{
    return hba && i < hba->n ? &hba->rules[i].pub : NULL;
}

/* ---- small helpers ---- */

static bool fail(char *reason, size_t rlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(char *reason, size_t rlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, rlen, fmt, ap);
    va_end(ap);
    return false;
}

/* Replace *slot with a copy of val. */
static bool set_str(char **slot, const char *val, char *reason, size_t rlen)
{
    char *s = strdup(val);
    if (!s) return fail(reason, rlen, "out of memory");
    free(*slot);
    *slot = s;
    return true;
}

/* "0" or "1" (PostgreSQL's boolean options). */
static bool parse_01(const char *name, const char *val, bool *out, char *reason, size_t rlen)
{
    if (strcmp(val, "1") == 0) *out = true;
    else if (strcmp(val, "0") == 0) *out = false;
    else return fail(reason, rlen, "invalid value for %s: \"%s\" (use 1 or 0)", name, val);
    return true;
}

/* ---- database and user fields ---- */

static bool parse_names(const sl_af_field *f, bool is_db, name_list *out, char *reason, size_t rlen)
{
    out->v = calloc(f->n, sizeof(*out->v));
    if (!out->v) return fail(reason, rlen, "out of memory");
    for (size_t i = 0; i < f->n; i++) {
        const sl_af_token *t = &f->tok[i];
        name_item *it = &out->v[out->n];
        if (sl_af_is_keyword(t, "all")) {
            it->kind = NM_ALL;
        } else if (is_db && sl_af_is_keyword(t, "sameuser")) {
            it->kind = NM_SAMEUSER;
        } else if (is_db && (sl_af_is_keyword(t, "samerole") || sl_af_is_keyword(t, "samegroup"))) {
            return fail(reason, rlen,
                        "\"%s\" is not supported: pgsluice cannot see role memberships on the server "
                        "(PgBouncer does not support it either); list the databases instead",
                        t->text);
        } else if (is_db && sl_af_is_keyword(t, "replication")) {
            it->kind = NM_REPLICATION;
        } else if (!is_db && !t->quoted && t->text[0] == '+') {
            return fail(reason, rlen,
                        "group membership \"%s\" is not supported: pgsluice cannot see role memberships on the "
                        "server (PgBouncer does not support it either); list the users or use @file",
                        t->text);
        } else if (t->text[0] == '/') {
            it->kind = NM_REGEX;
            if (!(it->name = strdup(t->text + 1))) return fail(reason, rlen, "out of memory");
            if (!sl_af_regcomp(&it->re, it->name, false, NULL, reason, rlen)) {
                free(it->name);
                it->name = NULL;
                return false;
            }
        } else {
            it->kind = NM_NAME;
            if (!(it->name = strdup(t->text))) return fail(reason, rlen, "out of memory");
        }
        out->n++;
    }
    return true;
}

/* ---- the address field(s) ---- */

static bool looks_like_host_name(const char *s)
{
    if (s[0] == '.') return true;
    bool letter = false;
    for (const char *p = s; *p; p++) {
        if (isalpha((unsigned char)*p)) letter = true;
        else if (!isdigit((unsigned char)*p) && *p != '-' && *p != '.') return false;
    }
    return letter;
}

static bool parse_ip(const char *s, int *af, uint8_t out[16])
{
    memset(out, 0, 16);
    if (inet_pton(AF_INET, s, out) == 1) return (*af = AF_INET), true;
    if (inet_pton(AF_INET6, s, out) == 1) return (*af = AF_INET6), true;
    return false;
}

static bool cidr_mask(const char *bits_text, int af, uint8_t mask[16])
{
    int max = af == AF_INET ? 32 : 128;
    if (!*bits_text || strlen(bits_text) > 3) return false;
    int bits = 0;
    for (const char *p = bits_text; *p; p++) {
        if (!isdigit((unsigned char)*p)) return false;
        bits = bits * 10 + (*p - '0');
    }
    if (bits > max) return false;
    memset(mask, 0, 16);
    for (int i = 0; i < bits / 8; i++) mask[i] = 0xff;
    if (bits % 8) mask[bits / 8] = (uint8_t)(0xff << (8 - bits % 8));
    return true;
}

/* Reads the address (and, without a CIDR suffix, the netmask field); *next is the field after them. */
static bool parse_address(const sl_af_line *ln, size_t at, size_t *next, hba_rule *r, char *reason, size_t rlen)
{
    if (at >= ln->n) return fail(reason, rlen, "end-of-line before IP address specification");
    const sl_af_field *f = &ln->field[at];
    if (f->n > 1) return fail(reason, rlen, "multiple values specified for host address (one address range per line)");
    const sl_af_token *t = &f->tok[0];
    *next = at + 1;
    if (sl_af_is_keyword(t, "all")) return (r->addr = ADDR_ALL), true;
    if (sl_af_is_keyword(t, "samehost")) return (r->addr = ADDR_SAMEHOST), true;
    if (sl_af_is_keyword(t, "samenet")) return (r->addr = ADDR_SAMENET), true;

    char addr[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(t->text, '/');
    size_t alen = slash ? (size_t)(slash - t->text) : strlen(t->text);
    if (alen >= sizeof(addr)) alen = sizeof(addr) - 1;
    memcpy(addr, t->text, alen);
    addr[alen] = '\0';
    r->addr = ADDR_MASK;
    if (!parse_ip(addr, &r->af, r->net)) {
        if (looks_like_host_name(addr))
            return fail(reason, rlen,
                        "host name \"%s\" in the address field is not supported (PgBouncer does not resolve "
                        "them either): write an address with a CIDR mask, or all, samehost or samenet",
                        addr);
        return fail(reason, rlen, "invalid IP address \"%s\"", t->text);
    }
    if (slash) {
        if (!cidr_mask(slash + 1, r->af, r->mask))
            return fail(reason, rlen, "invalid CIDR mask in address \"%s\"", t->text);
    } else {
        if (at + 1 >= ln->n)
            return fail(reason, rlen, "end-of-line before netmask specification (write the address in CIDR "
                                      "notation, or give a separate netmask)");
        const sl_af_field *mf = &ln->field[at + 1];
        if (mf->n > 1) return fail(reason, rlen, "multiple values specified for netmask");
        int maf;
        if (!parse_ip(mf->tok[0].text, &maf, r->mask))
            return fail(reason, rlen, "invalid IP mask \"%s\"", mf->tok[0].text);
        if (maf != r->af) return fail(reason, rlen, "IP address and mask do not match");
        *next = at + 2;
    }
    for (int i = 0; i < 16; i++) r->net[i] &= r->mask[i];
    return true;
}

/* ---- method ---- */

static bool parse_method(const sl_af_line *ln, size_t at, hba_rule *r, char *reason, size_t rlen)
{
    if (at >= ln->n) return fail(reason, rlen, "end-of-line before authentication method");
    const sl_af_field *f = &ln->field[at];
    if (f->n > 1) return fail(reason, rlen, "multiple values specified for authentication type");
    const char *m = f->tok[0].text;
    for (size_t i = 0; i < sizeof(method_names) / sizeof(*method_names); i++)
        if (strcmp(m, method_names[i]) == 0) {
            r->pub.method = (sl_hba_method)i;
            goto found;
        }
    if (strcmp(m, "ident") == 0) {
        if (r->pub.type != SL_HBA_LOCAL)
            return fail(reason, rlen, "authentication method \"ident\" (RFC 1413 ident server) is not supported "
                                      "by pgsluice");
        r->pub.method = SL_HBA_PEER; /* PostgreSQL: ident on a local line means peer */
        goto found;
    }
    if (!strcmp(m, "gss") || !strcmp(m, "sspi") || !strcmp(m, "radius") || !strcmp(m, "bsd"))
        return fail(reason, rlen, "authentication method \"%s\" is not supported by pgsluice", m);
    return fail(reason, rlen, "invalid authentication method \"%s\"", m);
found:
    if (r->pub.method == SL_HBA_PEER && r->pub.type != SL_HBA_LOCAL)
        return fail(reason, rlen, "peer authentication is only supported on local sockets");
    if (r->pub.method == SL_HBA_CERT && r->pub.type != SL_HBA_HOSTSSL)
        return fail(reason, rlen, "cert authentication is only supported on hostssl connections");
    return true;
}

/* ---- LDAP options ---- */

static const char *url_error(int rc)
{
    switch (rc) {
    case LDAP_URL_ERR_MEM: return "out of memory";
    case LDAP_URL_ERR_BADSCHEME: return "not an LDAP URL";
    case LDAP_URL_ERR_BADENCLOSURE: return "bad enclosure";
    case LDAP_URL_ERR_BADURL: return "malformed URL";
    case LDAP_URL_ERR_BADHOST: return "bad host or port";
    case LDAP_URL_ERR_BADATTRS: return "bad attribute list";
    case LDAP_URL_ERR_BADSCOPE: return "bad scope";
    case LDAP_URL_ERR_BADFILTER: return "bad filter";
    case LDAP_URL_ERR_BADEXTS: return "bad extensions";
    default: return "invalid URL";
    }
}

/* ldapurl=ldap[s]://host[:port]/basedn[?[attribute][?[scope][?[filter]]]] sets what it names. */
static bool ldap_url(sl_hba_ldap *l, const char *val, char *reason, size_t rlen)
{
    LDAPURLDesc *u = NULL;
    int rc = ldap_url_parse(val, &u);
    if (rc != LDAP_URL_SUCCESS) return fail(reason, rlen, "could not parse LDAP URL \"%s\": %s", val, url_error(rc));
    bool ok = false;
    if (strcmp(u->lud_scheme, "ldap") != 0 && strcmp(u->lud_scheme, "ldaps") != 0) {
        fail(reason, rlen, "unsupported LDAP URL scheme: %s", u->lud_scheme);
    } else if (u->lud_crit_exts) {
        fail(reason, rlen, "LDAP URL \"%s\" has critical extensions, which pgsluice does not support", val);
    } else if (u->lud_host && strpbrk(u->lud_host, " \t")) {
        fail(reason, rlen, "invalid host in LDAP URL \"%s\"", val);
    } else if (!set_str(&l->scheme, u->lud_scheme, reason, rlen)) {
    } else if (u->lud_host && *u->lud_host && !set_str(&l->server, u->lud_host, reason, rlen)) {
    } else if (u->lud_dn && *u->lud_dn && !set_str(&l->basedn, u->lud_dn, reason, rlen)) {
    } else if (u->lud_attrs && u->lud_attrs[0] && !set_str(&l->searchattribute, u->lud_attrs[0], reason, rlen)) {
    } else if (u->lud_filter && *u->lud_filter && !set_str(&l->searchfilter, u->lud_filter, reason, rlen)) {
    } else {
        l->port = u->lud_port;
        switch (u->lud_scope) {
        case LDAP_SCOPE_BASE: l->scope = SL_HBA_LDAP_SCOPE_BASE; break;
        case LDAP_SCOPE_ONELEVEL: l->scope = SL_HBA_LDAP_SCOPE_ONE; break;
        default: l->scope = SL_HBA_LDAP_SCOPE_SUBTREE; break;
        }
        ok = true;
    }
    ldap_free_urldesc(u);
    return ok;
}

/* One ldap* option; *known false when name is not an LDAP option. */
static bool ldap_option(sl_hba_ldap *l, const char *name, const char *val, bool *known, char *reason, size_t rlen)
{
    static const struct {
        const char *name;
        size_t offset;
    } strs[] = {
        {"ldapserver", offsetof(sl_hba_ldap, server)},
        {"ldapprefix", offsetof(sl_hba_ldap, prefix)},
        {"ldapsuffix", offsetof(sl_hba_ldap, suffix)},
        {"ldapbasedn", offsetof(sl_hba_ldap, basedn)},
        {"ldapbinddn", offsetof(sl_hba_ldap, binddn)},
        {"ldapbindpasswd", offsetof(sl_hba_ldap, bindpasswd)},
        {"ldapsearchattribute", offsetof(sl_hba_ldap, searchattribute)},
        {"ldapsearchfilter", offsetof(sl_hba_ldap, searchfilter)},
    };
    *known = true;
    for (size_t i = 0; i < sizeof(strs) / sizeof(*strs); i++)
        if (strcmp(name, strs[i].name) == 0) return set_str((char **)((char *)l + strs[i].offset), val, reason, rlen);
    if (strcmp(name, "ldapport") == 0) {
        char *end;
        long p = strtol(val, &end, 10);
        if (!*val || *end || p < 1 || p > 65535) return fail(reason, rlen, "invalid LDAP port number: \"%s\"", val);
        l->port = (int)p;
        return true;
    }
    if (strcmp(name, "ldapscheme") == 0) {
        if (strcmp(val, "ldap") != 0 && strcmp(val, "ldaps") != 0)
            return fail(reason, rlen, "invalid ldapscheme value: \"%s\" (ldap or ldaps)", val);
        return set_str(&l->scheme, val, reason, rlen);
    }
    if (strcmp(name, "ldaptls") == 0) return parse_01(name, val, &l->starttls, reason, rlen);
    if (strcmp(name, "ldapurl") == 0) return ldap_url(l, val, reason, rlen);
    *known = false;
    return true;
}

static bool ldap_finish(sl_hba_ldap *l, char *reason, size_t rlen)
{
    if (!l->server || !*l->server)
        return fail(reason, rlen, "authentication method \"ldap\" requires argument \"ldapserver\" to be set "
                                  "(pgsluice does not look LDAP servers up in DNS SRV records)");
    if (l->prefix || l->suffix) {
        if (l->basedn || l->binddn || l->bindpasswd || l->searchattribute || l->searchfilter)
            return fail(reason, rlen, "cannot mix options for simple bind and search+bind modes");
    } else if (!l->basedn) {
        return fail(reason, rlen, "authentication method \"ldap\" requires argument \"ldapbasedn\", \"ldapprefix\", "
                                  "or \"ldapsuffix\" to be set");
    }
    if (l->searchattribute && l->searchfilter)
        return fail(reason, rlen, "cannot use ldapsearchattribute together with ldapsearchfilter");
    if (l->searchattribute && !*l->searchattribute) return fail(reason, rlen, "ldapsearchattribute is empty");
    if (!l->scheme && !set_str(&l->scheme, "ldap", reason, rlen)) return false;
    if (l->starttls && strcmp(l->scheme, "ldaps") == 0)
        return fail(reason, rlen, "ldaptls=1 cannot be combined with ldapscheme ldaps (ldaps is TLS already)");
    return true;
}

/* ---- options after the method ---- */

static bool only_for(const hba_rule *r, sl_hba_method m, const char *name, char *reason, size_t rlen)
{
    if (r->pub.method == m) return true;
    return fail(reason, rlen, "authentication option \"%s\" is only valid for authentication method %s", name,
                sl_hba_method_name(m));
}

static bool rule_option(hba_rule *r, const char *name, const char *val, char *reason, size_t rlen)
{
    if (strcmp(name, "map") == 0) {
        if (r->pub.method != SL_HBA_PEER && r->pub.method != SL_HBA_CERT)
            return fail(reason, rlen, "authentication option \"map\" is only valid for authentication methods peer "
                                      "and cert");
        if (!*val) return fail(reason, rlen, "map= needs a map name");
        return set_str(&r->map, val, reason, rlen);
    }
    if (strcmp(name, "clientcert") == 0) {
        if (r->pub.type != SL_HBA_HOSTSSL)
            return fail(reason, rlen, "clientcert can only be configured for \"hostssl\" rows");
        if (strcmp(val, "verify-full") == 0) {
            r->pub.clientcert = SL_HBA_CLIENTCERT_VERIFY_FULL;
        } else if (strcmp(val, "verify-ca") == 0) {
            if (r->pub.method == SL_HBA_CERT)
                return fail(reason, rlen, "clientcert only accepts \"verify-full\" when using \"cert\" authentication");
            r->pub.clientcert = SL_HBA_CLIENTCERT_VERIFY_CA;
        } else {
            return fail(reason, rlen, "invalid value for clientcert: \"%s\" (verify-ca or verify-full)", val);
        }
        return true;
    }
    if (strcmp(name, "clientname") == 0) {
        if (r->pub.type != SL_HBA_HOSTSSL)
            return fail(reason, rlen, "clientname can only be configured for \"hostssl\" rows");
        if (strcmp(val, "CN") == 0) return true;
        if (strcmp(val, "DN") == 0)
            return fail(reason, rlen, "clientname=DN is not supported by pgsluice (the certificate's CN is matched)");
        return fail(reason, rlen, "invalid value for clientname: \"%s\"", val);
    }
    if (strcmp(name, "pamservice") == 0) {
        if (!only_for(r, SL_HBA_PAM, name, reason, rlen)) return false;
        if (!*val) return fail(reason, rlen, "pamservice= needs a service name");
        return set_str(&r->pamservice, val, reason, rlen);
    }
    if (strcmp(name, "pam_use_hostname") == 0) {
        if (!only_for(r, SL_HBA_PAM, name, reason, rlen)) return false;
        return parse_01(name, val, &r->pub.pam_use_hostname, reason, rlen);
    }
    bool known;
    sl_hba_ldap scratch = {0};
    sl_hba_ldap *l = r->pub.method == SL_HBA_LDAP ? &r->pub.ldap : &scratch;
    bool ok = ldap_option(l, name, val, &known, reason, rlen);
    sl_hba_ldap_clear(&scratch);
    if (known && r->pub.method != SL_HBA_LDAP) return only_for(r, SL_HBA_LDAP, name, reason, rlen);
    if (known) return ok;
    return fail(reason, rlen, "unrecognized authentication option name: \"%s\"", name);
}

static bool parse_options(const sl_af_line *ln, size_t at, hba_rule *r, char *reason, size_t rlen)
{
    for (size_t f = at; f < ln->n; f++)
        for (size_t t = 0; t < ln->field[f].n; t++) {
            const char *tok = ln->field[f].tok[t].text;
            const char *eq = strchr(tok, '=');
            if (!eq) return fail(reason, rlen, "authentication option not in name=value format: %s", tok);
            char name[64];
            size_t nlen = (size_t)(eq - tok);
            if (nlen >= sizeof(name)) return fail(reason, rlen, "unrecognized authentication option name: \"%.*s\"",
                                                  (int)nlen, tok);
            memcpy(name, tok, nlen);
            name[nlen] = '\0';
            if (!rule_option(r, name, eq + 1, reason, rlen)) return false;
        }
    return true;
}

/* ---- one line ---- */

typedef struct load_ctx {
    sl_hba *hba;
} load_ctx;

/* The copy of file the rules point to (one per file). */
static const char *intern_file(sl_hba *h, const char *file)
{
    for (size_t i = 0; i < h->nfiles; i++)
        if (strcmp(h->files[i], file) == 0) return h->files[i];
    char **v = realloc(h->files, (h->nfiles + 1) * sizeof(*v));
    if (!v) return NULL;
    h->files = v;
    if (!(v[h->nfiles] = strdup(file))) return NULL;
    return v[h->nfiles++];
}

static bool parse_type(const sl_af_field *f, hba_rule *r, char *reason, size_t rlen)
{
    if (f->n > 1) return fail(reason, rlen, "multiple values specified for connection type");
    const char *s = f->tok[0].text;
    if (!strcmp(s, "include") || !strcmp(s, "include_if_exists") || !strcmp(s, "include_dir"))
        return fail(reason, rlen, "\"%s\" directives are not supported (PgBouncer does not read them either): "
                                  "put the rules in this file", s);
    for (size_t i = 0; i < sizeof(conntype_names) / sizeof(*conntype_names); i++)
        if (strcmp(s, conntype_names[i]) == 0) {
            r->pub.type = (sl_hba_conntype)i;
            return true;
        }
    return fail(reason, rlen, "invalid connection type \"%s\"", s);
}

static bool parse_rule(const sl_af_line *ln, hba_rule *r, char *reason, size_t rlen)
{
    if (!parse_type(&ln->field[0], r, reason, rlen)) return false;
    if (ln->n < 2) return fail(reason, rlen, "end-of-line before database specification");
    if (!parse_names(&ln->field[1], true, &r->dbs, reason, rlen)) return false;
    if (ln->n < 3) return fail(reason, rlen, "end-of-line before role specification");
    if (!parse_names(&ln->field[2], false, &r->users, reason, rlen)) return false;
    size_t next = 3;
    if (r->pub.type != SL_HBA_LOCAL && !parse_address(ln, 3, &next, r, reason, rlen)) return false;
    if (!parse_method(ln, next, r, reason, rlen)) return false;
    if (!parse_options(ln, next + 1, r, reason, rlen)) return false;
    if (r->pub.method == SL_HBA_LDAP && !ldap_finish(&r->pub.ldap, reason, rlen)) return false;
    if (r->pub.method == SL_HBA_CERT) r->pub.clientcert = SL_HBA_CLIENTCERT_VERIFY_FULL;
    r->pub.map = r->map;
    r->pub.pamservice = r->pamservice;
    return true;
}

static bool hba_line(void *ctx, const sl_af_line *ln, char *reason, size_t rlen)
{
    sl_hba *h = ((load_ctx *)ctx)->hba;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        hba_rule *v = realloc(h->rules, cap * sizeof(*v));
        if (!v) return fail(reason, rlen, "out of memory");
        h->rules = v;
        h->cap = cap;
    }
    hba_rule *r = &h->rules[h->n];
    memset(r, 0, sizeof(*r));
    r->pub.ldap.scope = SL_HBA_LDAP_SCOPE_SUBTREE;
    if (!parse_rule(ln, r, reason, rlen)) {
        rule_free(r);
        return false;
    }
    if (!(r->pub.file = intern_file(h, ln->file))) {
        rule_free(r);
        return fail(reason, rlen, "out of memory");
    }
    r->pub.line = ln->line;
    h->n++;
    return true;
}

sl_hba *sl_hba_parse_buffer(const char *text, size_t len, const char *name, const char *base_dir, char *err,
                            size_t errlen)
{
    sl_hba *h = calloc(1, sizeof(*h));
    if (!h) return sl_cfg_err(err, errlen, "%s: out of memory", name ? name : "hba"), NULL;
    h->refcount = 1;
    load_ctx lc = {h};
    if (err && errlen) err[0] = '\0';
    if (!sl_af_parse(text, len, name, base_dir, hba_line, &lc, err, errlen)) {
        hba_free(h);
        return NULL;
    }
    return h;
}

sl_hba *sl_hba_load(const char *path, char *err, size_t errlen)
{
    char *text;
    size_t len;
    if (!sl_af_read_file(path, "auth_hba_file", &text, &len, err, errlen)) return NULL;
    char *dir = sl_af_dirname(path);
    sl_hba *h = NULL;
    if (!dir) sl_cfg_err(err, errlen, "%s: out of memory", path);
    else h = sl_hba_parse_buffer(text, len, path, dir, err, errlen);
    free(dir);
    free(text);
    return h;
}

/* ---- auth_ldap_options ---- */

typedef struct ldap_opts_ctx {
    sl_hba_ldap *l;
} ldap_opts_ctx;

static bool ldap_opts_line(void *ctx, const sl_af_line *ln, char *reason, size_t rlen)
{
    sl_hba_ldap *l = ((ldap_opts_ctx *)ctx)->l;
    for (size_t f = 0; f < ln->n; f++)
        for (size_t t = 0; t < ln->field[f].n; t++) {
            const char *tok = ln->field[f].tok[t].text;
            const char *eq = strchr(tok, '=');
            if (!eq) return fail(reason, rlen, "LDAP option not in name=value format: %s", tok);
            char name[64];
            size_t nlen = (size_t)(eq - tok);
            if (nlen >= sizeof(name)) nlen = sizeof(name) - 1;
            memcpy(name, tok, nlen);
            name[nlen] = '\0';
            bool known;
            if (!ldap_option(l, name, eq + 1, &known, reason, rlen)) return false;
            if (!known) return fail(reason, rlen, "unrecognized LDAP option name: \"%s\"", name);
        }
    return true;
}

bool sl_hba_ldap_parse(const char *options, sl_hba_ldap *out, char *err, size_t errlen)
{
    *out = (sl_hba_ldap){0};
    out->scope = SL_HBA_LDAP_SCOPE_SUBTREE;
    ldap_opts_ctx c = {out};
    char reason[512];
    if (!sl_af_parse(options, strlen(options), "LDAP options", NULL, ldap_opts_line, &c, err, errlen)) {
        sl_hba_ldap_clear(out);
        return false;
    }
    if (!ldap_finish(out, reason, sizeof(reason))) {
        sl_cfg_err(err, errlen, "LDAP options: %s", reason);
        sl_hba_ldap_clear(out);
        return false;
    }
    return true;
}

/* ---- maps ---- */

bool sl_hba_check_maps(const sl_hba *hba, const sl_ident *ident, char *err, size_t errlen)
{
    for (size_t i = 0; hba && i < hba->n; i++) {
        const sl_hba_rule *r = &hba->rules[i].pub;
        if (!r->map) continue;
        if (!ident)
            return sl_cfg_err(err, errlen, "%s:%d: map \"%s\" is used but auth_ident_file is not set", r->file,
                              r->line, r->map),
                   false;
        if (!sl_ident_has_map(ident, r->map))
            return sl_cfg_err(err, errlen, "%s:%d: map \"%s\" is not defined in auth_ident_file", r->file, r->line,
                              r->map),
                   false;
    }
    return true;
}

/* ---- matching ---- */

/* The client's address as bytes: an IPv4-mapped IPv6 address also yields its IPv4 form (*v4). */
typedef struct client_addr {
    bool v4, v6;
    uint8_t a4[4], a6[16];
} client_addr;

static client_addr client_bytes(const struct sockaddr *sa)
{
    client_addr c = {0};
    if (!sa) return c;
    if (sa->sa_family == AF_INET) {
        c.v4 = true;
        memcpy(c.a4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        c.v6 = true;
        memcpy(c.a6, a, 16);
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            c.v4 = true;
            memcpy(c.a4, a->s6_addr + 12, 4);
        }
    }
    return c;
}

static bool masked_equal(const uint8_t *a, const uint8_t *net, const uint8_t *mask, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((a[i] & mask[i]) != (net[i] & mask[i])) return false;
    return true;
}

static bool in_net(const client_addr *c, int af, const uint8_t *net, const uint8_t *mask)
{
    if (af == AF_INET) return c->v4 && masked_equal(c->a4, net, mask, 4);
    if (af == AF_INET6) return c->v6 && masked_equal(c->a6, net, mask, 16);
    return false;
}

/* samehost: one of this host's addresses; samenet: in the network of one of its interfaces. */
static bool same_host_or_net(const client_addr *c, bool net)
{
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0) return false;
    bool found = false;
    for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr) continue;
        int af = i->ifa_addr->sa_family;
        if (af != AF_INET && af != AF_INET6) continue;
        uint8_t addr[16] = {0}, mask[16];
        size_t n = af == AF_INET ? 4 : 16;
        memcpy(addr, af == AF_INET ? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
                                   : (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
               n);
        memset(mask, 0xff, sizeof(mask));
        if (net) {
            if (!i->ifa_netmask || i->ifa_netmask->sa_family != af) continue;
            memcpy(mask, af == AF_INET ? (const void *)&((struct sockaddr_in *)i->ifa_netmask)->sin_addr
                                       : (const void *)&((struct sockaddr_in6 *)i->ifa_netmask)->sin6_addr,
                   n);
        }
        found = in_net(c, af, addr, mask);
    }
    freeifaddrs(ifs);
    return found;
}

static bool address_matches(const hba_rule *r, const sl_hba_client *c)
{
    if (r->addr == ADDR_ALL) return true;
    client_addr ca = client_bytes(c->addr);
    if (!ca.v4 && !ca.v6) return false;
    switch (r->addr) {
    case ADDR_MASK: return in_net(&ca, r->af, r->net, r->mask);
    case ADDR_SAMEHOST: return same_host_or_net(&ca, false);
    case ADDR_SAMENET: return same_host_or_net(&ca, true);
    default: return false;
    }
}

static bool type_matches(sl_hba_conntype t, const sl_hba_client *c)
{
    if (c->unix_socket) return t == SL_HBA_LOCAL;
    switch (t) {
    case SL_HBA_HOST:
    case SL_HBA_HOSTNOGSSENC: return true;
    case SL_HBA_HOSTSSL: return c->tls;
    case SL_HBA_HOSTNOSSL: return !c->tls;
    default: return false; /* local; hostgssenc (no GSS encryption in pgsluice) */
    }
}

static bool db_matches(const name_list *l, const sl_hba_client *c)
{
    for (size_t i = 0; i < l->n; i++) {
        const name_item *it = &l->v[i];
        if (c->physical_replication) {
            if (it->kind == NM_REPLICATION) return true;
            continue; /* physical replication matches only the replication keyword */
        }
        switch (it->kind) {
        case NM_ALL: return true;
        case NM_SAMEUSER:
            if (strcmp(c->database, c->user) == 0) return true;
            break;
        case NM_REGEX:
            if (regexec(&it->re, c->database, 0, NULL, 0) == 0) return true;
            break;
        case NM_NAME:
            if (strcmp(it->name, c->database) == 0) return true;
            break;
        case NM_REPLICATION: break;
        }
    }
    return false;
}

static bool user_matches(const name_list *l, const char *user)
{
    for (size_t i = 0; i < l->n; i++) {
        const name_item *it = &l->v[i];
        if (it->kind == NM_ALL) return true;
        if (it->kind == NM_REGEX && regexec(&it->re, user, 0, NULL, 0) == 0) return true;
        if (it->kind == NM_NAME && strcmp(it->name, user) == 0) return true;
    }
    return false;
}

const sl_hba_rule *sl_hba_match(const sl_hba *hba, const sl_hba_client *c)
{
    if (!hba || !c || !c->database || !c->user) return NULL;
    for (size_t i = 0; i < hba->n; i++) {
        const hba_rule *r = &hba->rules[i];
        if (!type_matches(r->pub.type, c)) continue;
        if (!c->unix_socket && !address_matches(r, c)) continue;
        if (!db_matches(&r->dbs, c)) continue;
        if (!user_matches(&r->users, c->user)) continue;
        return &r->pub;
    }
    return NULL;
}

const char *sl_hba_refusal_message(const sl_hba_client *c, bool matched_reject, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "[local]";
    if (!c->unix_socket) {
        const void *src = NULL;
        if (c->addr && c->addr->sa_family == AF_INET) src = &((const struct sockaddr_in *)c->addr)->sin_addr;
        if (c->addr && c->addr->sa_family == AF_INET6) src = &((const struct sockaddr_in6 *)c->addr)->sin6_addr;
        if (!src || !inet_ntop(c->addr->sa_family, src, host, sizeof(host))) snprintf(host, sizeof(host), "?");
    }
    const char *enc = c->tls ? "SSL encryption" : "no encryption";
    const char *user = c->user ? c->user : "";
    if (c->physical_replication)
        snprintf(buf, len,
                 matched_reject ? "pg_hba.conf rejects replication connection for host \"%s\", user \"%s\", %s"
                                : "no pg_hba.conf entry for replication connection from host \"%s\", user \"%s\", %s",
                 host, user, enc);
    else
        snprintf(buf, len,
                 matched_reject ? "pg_hba.conf rejects connection for host \"%s\", user \"%s\", database \"%s\", %s"
                                : "no pg_hba.conf entry for host \"%s\", user \"%s\", database \"%s\", %s",
                 host, user, c->database ? c->database : "", enc);
    return buf;
}
