/* fuzz_hba.c - the auth_hba_file and auth_ident_file parsers (config/hba.c, config/ident.c) through
 * their buffer entry points (no @file: base_dir NULL), and the rule matching of a fuzzed connection.
 * Input: a flags byte (bit 0: Unix socket, 1: TLS, 2: physical replication, 3: IPv6, 4: no
 * address), 16 address bytes (the first 4 for IPv4), database NUL user NUL map NUL system user NUL,
 * then the hba file's text up to the next NUL, then the ident file's text (the rest).
 * Checks: a refused file says why as "name:line: reason"; a loaded one lists its rules in file
 * order, each with a known type and method; the rule matched is one of them, and of a type that
 * fits the connection (local for a Unix socket, never hostssl without TLS nor hostnossl with it,
 * never hostgssenc); matching is the same again; sl_ident_allows without a map is name equality. */
#include "fuzz_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "config/hba.h"
#include "config/ident.h"

static char *next_cstr(fz_in *in)
{
    size_t n = 0;
    while (n < in->n && in->p[n]) n++;
    char *s = fz_strndup(in->p, n);
    size_t skip = n < in->n ? n + 1 : n;
    in->p += skip;
    in->n -= skip;
    return s;
}

static void check_error(const char *err, const char *name)
{
    size_t nl = strlen(name);
    FZ_CHECK(!strncmp(err, name, nl) && err[nl] == ':' && err[nl + 1] >= '1' && err[nl + 1] <= '9',
             "error without \"%s:line:\": %s", name, err);
    FZ_CHECK(strstr(err + nl + 1, ": ") && strlen(strstr(err + nl + 1, ": ")) > 2, "error without a reason: %s", err);
}

static void check_hba(const sl_hba *hba, const sl_hba_client *c)
{
    size_t n = sl_hba_rule_count(hba);
    int last_line = 0;
    for (size_t i = 0; i < n; i++) {
        const sl_hba_rule *r = sl_hba_rule_at(hba, i);
        FZ_CHECK(r, "rule %zu of %zu missing", i, n);
        FZ_CHECK(r->line > last_line, "rule %zu on line %d after line %d", i, r->line, last_line);
        last_line = r->line;
        FZ_CHECK(r->type >= SL_HBA_LOCAL && r->type <= SL_HBA_HOSTNOGSSENC, "rule type %d", (int)r->type);
        FZ_CHECK(r->method >= SL_HBA_TRUST && r->method <= SL_HBA_LDAP, "rule method %d", (int)r->method);
        if (r->method == SL_HBA_LDAP) FZ_CHECK(r->ldap.scheme && r->ldap.server, "ldap rule without scheme or server");
        if (r->method == SL_HBA_CERT) FZ_CHECK(r->type == SL_HBA_HOSTSSL, "cert on a %d line", (int)r->type);
        if (r->method == SL_HBA_PEER) FZ_CHECK(r->type == SL_HBA_LOCAL, "peer on a %d line", (int)r->type);
    }
    const sl_hba_rule *m = sl_hba_match(hba, c);
    FZ_LOG("hba: %zu rules, matched %s%d", n, m ? "line " : "none", m ? m->line : 0);
    FZ_CHECK(m == sl_hba_match(hba, c), "matching twice gives two answers");
    if (!m) return;
    bool found = false;
    for (size_t i = 0; i < n; i++) found |= sl_hba_rule_at(hba, i) == m;
    FZ_CHECK(found, "the matched rule is not one of the file's");
    if (c->unix_socket) FZ_CHECK(m->type == SL_HBA_LOCAL, "a Unix socket matched a %d line", (int)m->type);
    else FZ_CHECK(m->type != SL_HBA_LOCAL, "TCP matched a local line");
    FZ_CHECK(m->type != SL_HBA_HOSTGSSENC, "hostgssenc matched");
    if (!c->unix_socket && !c->tls) FZ_CHECK(m->type != SL_HBA_HOSTSSL, "hostssl matched without TLS");
    if (!c->unix_socket && c->tls) FZ_CHECK(m->type != SL_HBA_HOSTNOSSL, "hostnossl matched with TLS");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t flags = fz_u8(&in);
    size_t alen;
    const uint8_t *a = fz_bytes(&in, 16, &alen);
    uint8_t addr_bytes[16] = {0};
    memcpy(addr_bytes, a, alen);
    char *db = next_cstr(&in), *user = next_cstr(&in), *map = next_cstr(&in), *sysuser = next_cstr(&in);
    size_t hlen = 0;
    while (hlen < in.n && in.p[hlen]) hlen++;
    /* exact-size copies: a read past either text is a sanitizer finding */
    char *hba_text = malloc(hlen ? hlen : 1), *ident_text;
    if (!hba_text) abort();
    if (hlen) memcpy(hba_text, in.p, hlen);
    size_t skip = hlen < in.n ? hlen + 1 : hlen;
    in.p += skip;
    in.n -= skip;
    size_t ilen = in.n;
    ident_text = malloc(ilen ? ilen : 1);
    if (!ident_text) abort();
    if (ilen) memcpy(ident_text, in.p, ilen);

    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(5432)};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(5432)};
    memcpy(&sin.sin_addr, addr_bytes, 4);
    memcpy(&sin6.sin6_addr, addr_bytes, 16);
    sl_hba_client c = {
        .unix_socket = flags & 1,
        .tls = !(flags & 1) && (flags & 2),
        .addr = (flags & 1) || (flags & 16) ? NULL
                : (flags & 8)               ? (const struct sockaddr *)&sin6
                                            : (const struct sockaddr *)&sin,
        .database = db,
        .user = user,
        .physical_replication = flags & 4,
    };

    char err[512] = "";
    sl_hba *hba = sl_hba_parse_buffer(hba_text, hlen, "fuzz_hba.conf", NULL, err, sizeof(err));
    if (hba) {
        check_hba(hba, &c);
        sl_hba_ref(hba);
        sl_hba_unref(hba);
        sl_hba_unref(hba);
    } else {
        FZ_LOG("hba refused: %s", err);
        check_error(err, "fuzz_hba.conf");
    }
    err[0] = '\0';
    sl_ident *id = sl_ident_parse_buffer(ident_text, ilen, "fuzz_ident.conf", NULL, err, sizeof(err));
    if (id) {
        (void)sl_ident_has_map(id, map);
        bool allowed = sl_ident_allows(id, *map ? map : NULL, sysuser, user);
        if (!*map) FZ_CHECK(allowed == !strcmp(sysuser, user), "no map: allowed is not name equality");
        FZ_CHECK(allowed == sl_ident_allows(id, *map ? map : NULL, sysuser, user), "allows twice, two answers");
        FZ_LOG("ident: map \"%s\" %s, %s -> %s %s", map, sl_ident_has_map(id, map) ? "defined" : "undefined", sysuser,
               user, allowed ? "allowed" : "not allowed");
        sl_ident_unref(id);
    } else {
        FZ_LOG("ident refused: %s", err);
        check_error(err, "fuzz_ident.conf");
    }
    FZ_CHECK(!sl_ident_allows(NULL, "m", user, user), "a map without an ident file allows");
    free(hba_text);
    free(ident_text);
    free(db);
    free(user);
    free(map);
    free(sysuser);
    return 0;
}
