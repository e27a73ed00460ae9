/* test_hba.c - unit tests of auth_hba_file: what parses into which rule, every kind of error with its line,
 * @file includes, and which rule a connection matches (types, TLS, address families, samehost/samenet,
 * database and user lists, replication, first match wins). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/hba.h"
#include "config/ident.h"

#define DATA "data/hba/"

/* ---- helpers ---- */

static sl_hba *parse_ok(const char *text)
{
    char err[1024] = "";
    sl_hba *h = sl_hba_parse_buffer(text, strlen(text), "t.conf", NULL, err, sizeof(err));
    if (!h) fail_msg("parsing failed: %s\n--- text:\n%s", err, text);
    return h;
}

/* The single rule text parses into. */
static const sl_hba_rule *one_rule(sl_hba **h, const char *text)
{
    *h = parse_ok(text);
    assert_int_equal(sl_hba_rule_count(*h), 1);
    return sl_hba_rule_at(*h, 0);
}

static struct sockaddr_storage g_addr;

/* A sockaddr for a numeric IPv4 or IPv6 address. */
static const struct sockaddr *sa(const char *ip)
{
    memset(&g_addr, 0, sizeof(g_addr));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&g_addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&g_addr;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(40000);
    } else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(40000);
    } else {
        fail_msg("bad test address %s", ip);
    }
    return (const struct sockaddr *)&g_addr;
}

/* conn: "local", "tcp" or "tls". */
static sl_hba_client client(const char *conn, const char *ip, const char *db, const char *user, bool repl)
{
    sl_hba_client c = {.database = db, .user = user, .physical_replication = repl};
    if (strcmp(conn, "local") == 0) {
        c.unix_socket = true;
    } else {
        c.tls = strcmp(conn, "tls") == 0;
        c.addr = ip ? sa(ip) : NULL;
    }
    return c;
}

/* The line of the matching rule, 0 for none. */
static int match_line(const sl_hba *h, const sl_hba_client *c)
{
    const sl_hba_rule *r = sl_hba_match(h, c);
    return r ? r->line : 0;
}

/* ---- what parses into what ---- */

static void test_parse_types_and_methods(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        sl_hba_conntype type;
        sl_hba_method method;
    } rows[] = {
        {"local all all trust", SL_HBA_LOCAL, SL_HBA_TRUST},
        {"local all all reject", SL_HBA_LOCAL, SL_HBA_REJECT},
        {"local all all peer", SL_HBA_LOCAL, SL_HBA_PEER},
        {"local all all ident", SL_HBA_LOCAL, SL_HBA_PEER}, /* PostgreSQL: ident on local is peer */
        {"host all all 10.0.0.0/8 md5", SL_HBA_HOST, SL_HBA_MD5},
        {"host all all 10.0.0.0/8 password", SL_HBA_HOST, SL_HBA_PASSWORD},
        {"hostnossl all all ::/0 scram-sha-256", SL_HBA_HOSTNOSSL, SL_HBA_SCRAM},
        {"hostssl all all all cert", SL_HBA_HOSTSSL, SL_HBA_CERT},
        {"hostgssenc all all all trust", SL_HBA_HOSTGSSENC, SL_HBA_TRUST},
        {"hostnogssenc all all all pam", SL_HBA_HOSTNOGSSENC, SL_HBA_PAM},
        {"host all all samehost ldap ldapserver=h ldapbasedn=o=x", SL_HBA_HOST, SL_HBA_LDAP},
        {"host all all samenet trust", SL_HBA_HOST, SL_HBA_TRUST},
        {"host all all 192.168.0.0 255.255.0.0 trust", SL_HBA_HOST, SL_HBA_TRUST},
        {"host all all fe80:: ffff:ffff:: trust", SL_HBA_HOST, SL_HBA_TRUST},
        {"host all all 10.1.2.3/8 trust # host bits beyond the mask are ignored", SL_HBA_HOST, SL_HBA_TRUST},
        /* a regex with a comma is quoted (and still a regex) */
        {"host \"/^db[0-9]{2,4}$\",/^x{255}$,\"/(ab){3,}c\" all all trust", SL_HBA_HOST, SL_HBA_TRUST},
        /* repetitions of groups that cannot match "": + and counts; of those that can: * and ? */
        {"host /^([a-z]+\\.)+example\\.com$,/(a*)*x,/^(.*)?@(x|y){2}$ all all trust", SL_HBA_HOST, SL_HBA_TRUST},
        {"host \"/^[a-z]{1,63}(\\.[a-z]{1,63}){0,10}$\",/(((((((((a)+)+)+)+)+)+)+)+)+ all all trust", SL_HBA_HOST,
         SL_HBA_TRUST},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        sl_hba *h;
        const sl_hba_rule *r = one_rule(&h, rows[i].text);
        if (r->type != rows[i].type || r->method != rows[i].method)
            fail_msg("%s: got %s %s", rows[i].text, sl_hba_conntype_name(r->type), sl_hba_method_name(r->method));
        assert_string_equal(r->file, "t.conf");
        assert_int_equal(r->line, 1);
        sl_hba_unref(h);
    }
}

static void test_parse_options(void **state)
{
    (void)state;
    sl_hba *h;
    const sl_hba_rule *r = one_rule(&h, "hostssl all all all scram-sha-256 clientcert=verify-ca");
    assert_int_equal(r->clientcert, SL_HBA_CLIENTCERT_VERIFY_CA);
    assert_null(r->map);
    sl_hba_unref(h);

    r = one_rule(&h, "hostssl all all all cert map=certs clientname=CN");
    assert_int_equal(r->clientcert, SL_HBA_CLIENTCERT_VERIFY_FULL); /* implied by cert */
    assert_string_equal(r->map, "certs");
    sl_hba_unref(h);

    r = one_rule(&h, "hostssl all all all md5 clientcert=verify-full");
    assert_int_equal(r->clientcert, SL_HBA_CLIENTCERT_VERIFY_FULL);
    sl_hba_unref(h);

    r = one_rule(&h, "host all all all md5");
    assert_int_equal(r->clientcert, SL_HBA_CLIENTCERT_OFF);
    sl_hba_unref(h);

    r = one_rule(&h, "local all all peer map=\"local users\"");
    assert_string_equal(r->map, "local users");
    sl_hba_unref(h);

    r = one_rule(&h, "host all all all pam pamservice=pgsluice-app pam_use_hostname=1");
    assert_string_equal(r->pamservice, "pgsluice-app");
    assert_true(r->pam_use_hostname);
    sl_hba_unref(h);

    r = one_rule(&h, "host all all all pam");
    assert_null(r->pamservice);
    assert_false(r->pam_use_hostname);
    sl_hba_unref(h);
}

static void test_parse_ldap_options(void **state)
{
    (void)state;
    sl_hba *h;
    /* simple bind; values with commas and blanks are quoted, a line continues after a backslash */
    const sl_hba_rule *r = one_rule(&h, "host all all all ldap ldapserver=\"ldap1 ldap2\" \\\n"
                                        "   ldapprefix=\"uid=\" ldapsuffix=\",ou=people,dc=example,dc=com\"");
    assert_string_equal(r->ldap.scheme, "ldap");
    assert_string_equal(r->ldap.server, "ldap1 ldap2");
    assert_int_equal(r->ldap.port, 0);
    assert_false(r->ldap.starttls);
    assert_string_equal(r->ldap.prefix, "uid=");
    assert_string_equal(r->ldap.suffix, ",ou=people,dc=example,dc=com");
    assert_null(r->ldap.basedn);
    sl_hba_unref(h);

    r = one_rule(&h, "host all all all ldap ldapserver=h ldapport=1389 ldapbasedn=\"dc=example,dc=com\" "
                     "ldapbinddn=\"cn=admin,dc=example,dc=com\" ldapbindpasswd=\"s3 cret\" ldapsearchattribute=mail "
                     "ldaptls=1");
    assert_string_equal(r->ldap.server, "h");
    assert_int_equal(r->ldap.port, 1389);
    assert_true(r->ldap.starttls);
    assert_string_equal(r->ldap.basedn, "dc=example,dc=com");
    assert_string_equal(r->ldap.binddn, "cn=admin,dc=example,dc=com");
    assert_string_equal(r->ldap.bindpasswd, "s3 cret");
    assert_string_equal(r->ldap.searchattribute, "mail");
    assert_null(r->ldap.searchfilter);
    assert_int_equal(r->ldap.scope, SL_HBA_LDAP_SCOPE_SUBTREE);
    sl_hba_unref(h);

    r = one_rule(&h, "host all all all ldap ldapurl=\"ldaps://ldap.example.net:1636/dc=example,dc=net??one?"
                     "(&(objectClass=person)(uid=$username))\"");
    assert_string_equal(r->ldap.scheme, "ldaps");
    assert_string_equal(r->ldap.server, "ldap.example.net");
    assert_int_equal(r->ldap.port, 1636);
    assert_string_equal(r->ldap.basedn, "dc=example,dc=net");
    assert_null(r->ldap.searchattribute);
    assert_string_equal(r->ldap.searchfilter, "(&(objectClass=person)(uid=$username))");
    assert_int_equal(r->ldap.scope, SL_HBA_LDAP_SCOPE_ONE);
    sl_hba_unref(h);

    /* the URL's attribute; an option after the URL overrides what the URL said */
    r = one_rule(&h, "host all all all ldap ldapurl=\"ldap://[2001:db8::1]/ou=p,o=x?cn?sub\" ldapport=10389");
    assert_string_equal(r->ldap.server, "2001:db8::1");
    assert_int_equal(r->ldap.port, 10389);
    assert_string_equal(r->ldap.searchattribute, "cn");
    assert_int_equal(r->ldap.scope, SL_HBA_LDAP_SCOPE_SUBTREE);
    sl_hba_unref(h);

    /* the global auth_ldap_options form */
    sl_hba_ldap l;
    char err[512];
    assert_true(sl_hba_ldap_parse("ldapserver=a ldapbasedn=\"o=x\" ldapsearchfilter=\"(mail=$username)\"", &l, err,
                                  sizeof(err)));
    assert_string_equal(l.server, "a");
    assert_string_equal(l.searchfilter, "(mail=$username)");
    sl_hba_ldap_clear(&l);
    assert_false(sl_hba_ldap_parse("ldapserver=a", &l, err, sizeof(err)));
    assert_non_null(strstr(err, "requires argument \"ldapbasedn\""));
    assert_false(sl_hba_ldap_parse("ldapserver=a ldapbasedn=o=x map=m", &l, err, sizeof(err)));
    assert_non_null(strstr(err, "unrecognized LDAP option name: \"map\""));
}

static void test_parse_quoting_and_lines(void **state)
{
    (void)state;
    /* CRLF endings, a comment after a continuation, '#' inside quotes, "" inside quotes */
    const char *text = "# header\r\n"
                       "\r\n"
                       "host \"my#db\",\"say \"\"hi\"\"\" all \\\r\n"
                       "   127.0.0.1/32 trust  # the end\r\n"
                       "local all all \\\n"
                       "  reject\n"
                       "local all all trust";
    sl_hba *h = parse_ok(text);
    assert_int_equal(sl_hba_rule_count(h), 3);
    assert_int_equal(sl_hba_rule_at(h, 0)->line, 3);
    assert_int_equal(sl_hba_rule_at(h, 1)->line, 5);
    assert_int_equal(sl_hba_rule_at(h, 2)->line, 7);
    sl_hba_client c = client("tcp", "127.0.0.1", "my#db", "x", false);
    assert_int_equal(match_line(h, &c), 3);
    c = client("tcp", "127.0.0.1", "say \"hi\"", "x", false);
    assert_int_equal(match_line(h, &c), 3);
    c = client("tcp", "127.0.0.1", "my", "x", false);
    assert_int_equal(match_line(h, &c), 0);
    sl_hba_unref(h);

    /* a regex with a comma is quoted, and is still a regex (as in PostgreSQL 16) */
    h = parse_ok("host \"/^db[0-9]{2,4}$\",\"/^(ab){2,}$\" all 127.0.0.1/32 trust");
    static const struct {
        const char *db;
        bool match;
    } dbs[] = {{"db12", true}, {"db1234", true}, {"db1", false}, {"db12345", false}, {"abab", true}, {"ab", false}};
    for (size_t i = 0; i < sizeof(dbs) / sizeof(*dbs); i++) {
        c = client("tcp", "127.0.0.1", dbs[i].db, "u", false);
        if ((match_line(h, &c) == 1) != dbs[i].match) fail_msg("database %s", dbs[i].db);
    }
    sl_hba_unref(h);

    h = parse_ok(""); /* an empty file: no rule, every login refused */
    assert_int_equal(sl_hba_rule_count(h), 0);
    c = client("local", NULL, "d", "u", false);
    assert_null(sl_hba_match(h, &c));
    sl_hba_unref(h);
}

/* ---- errors: every kind, with its line ---- */

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int line;
        const char *needle;
    } rows[] = {
        {"foo all all trust", 1, "invalid connection type \"foo\""},
        {"local,host all all trust", 1, "multiple values specified for connection type"},
        {"local", 1, "end-of-line before database specification"},
        {"local all", 1, "end-of-line before role specification"},
        {"local all all", 1, "end-of-line before authentication method"},
        {"host all all", 1, "end-of-line before IP address specification"},
        {"host all all 10.0.0.0", 1, "end-of-line before netmask specification"},
        {"host all all 10.0.0.0 trust", 1, "invalid IP mask \"trust\""},
        {"host all all 10.0.0.0/33 trust", 1, "invalid CIDR mask in address \"10.0.0.0/33\""},
        {"host all all ::/129 trust", 1, "invalid CIDR mask"},
        {"host all all 10.0.0.0/x trust", 1, "invalid CIDR mask"},
        {"host all all 10.0.0.0/ trust", 1, "invalid CIDR mask"},
        {"host all all 10.0.0.0 ffff:: trust", 1, "IP address and mask do not match"},
        {"host all all 300.1.1.1/8 trust", 1, "invalid IP address \"300.1.1.1/8\""},
        {"host all all db.example.com trust", 1, "host name \"db.example.com\" in the address field is not supported"},
        {"host all all .example.com trust", 1, "host name \".example.com\""},
        {"host all all 1.2.3.4/32,5.6.7.8/32 trust", 1, "multiple values specified for host address"},
        {"host all all 10.0.0.0 255.0.0.0,255.255.0.0 trust", 1, "multiple values specified for netmask"},
        {"local samerole all trust", 1, "\"samerole\" is not supported"},
        {"local app,samegroup all trust", 1, "\"samegroup\" is not supported"},
        {"local all +admins trust", 1, "group membership \"+admins\" is not supported"},
        {"local all all krb5", 1, "invalid authentication method \"krb5\""},
        {"local all all gss", 1, "authentication method \"gss\" is not supported by pgsluice"},
        {"host all all all radius", 1, "authentication method \"radius\" is not supported by pgsluice"},
        {"host all all all ident", 1, "\"ident\" (RFC 1413 ident server) is not supported"},
        {"host all all all peer", 1, "peer authentication is only supported on local sockets"},
        {"host all all all cert", 1, "cert authentication is only supported on hostssl connections"},
        {"local all all trust,md5", 1, "multiple values specified for authentication type"},
        {"local all all md5 map=x", 1, "\"map\" is only valid for authentication methods peer and cert"},
        {"local all all peer map=", 1, "map= needs a map name"},
        {"host all all all md5 clientcert=verify-ca", 1, "clientcert can only be configured for \"hostssl\" rows"},
        {"hostssl all all all cert clientcert=verify-ca", 1, "clientcert only accepts \"verify-full\""},
        {"hostssl all all all md5 clientcert=1", 1, "invalid value for clientcert: \"1\""},
        {"hostssl all all all md5 clientname=DN", 1, "clientname=DN is not supported"},
        {"host all all all md5 clientname=CN", 1, "clientname can only be configured for \"hostssl\" rows"},
        {"local all all trust foo", 1, "authentication option not in name=value format: foo"},
        {"local all all trust foo=bar", 1, "unrecognized authentication option name: \"foo\""},
        {"local all all md5 ldapserver=x", 1, "\"ldapserver\" is only valid for authentication method ldap"},
        {"local all all md5 pamservice=x", 1, "\"pamservice\" is only valid for authentication method pam"},
        {"local all all pam pam_use_hostname=yes", 1, "invalid value for pam_use_hostname: \"yes\""},
        {"local all all pam pamservice=", 1, "pamservice= needs a service name"},
        {"local all all ldap ldapbasedn=o=x", 1, "requires argument \"ldapserver\""},
        {"local all all ldap ldapserver=h", 1, "requires argument \"ldapbasedn\", \"ldapprefix\", or \"ldapsuffix\""},
        {"local all all ldap ldapserver=h ldapprefix=uid= ldapbasedn=o=x", 1,
         "cannot mix options for simple bind and search+bind modes"},
        {"local all all ldap ldapserver=h ldapbasedn=o=x ldapsearchattribute=uid ldapsearchfilter=(uid=$username)", 1,
         "cannot use ldapsearchattribute together with ldapsearchfilter"},
        {"local all all ldap ldapserver=h ldapbasedn=o=x ldapport=0", 1, "invalid LDAP port number: \"0\""},
        {"local all all ldap ldapserver=h ldapbasedn=o=x ldapport=70000", 1, "invalid LDAP port number"},
        {"local all all ldap ldapserver=h ldapbasedn=o=x ldapscheme=http", 1, "invalid ldapscheme value: \"http\""},
        {"local all all ldap ldapserver=h ldapbasedn=o=x ldaptls=true", 1, "invalid value for ldaptls"},
        {"local all all ldap ldapserver=h ldapbasedn=o=x ldapscheme=ldaps ldaptls=1", 1,
         "ldaptls=1 cannot be combined with ldapscheme ldaps"},
        {"local all all ldap ldapurl=http://x/", 1, "could not parse LDAP URL \"http://x/\""},
        {"local all all ldap ldapurl=ldapi:///", 1, "unsupported LDAP URL scheme: ldapi"},
        {"local all all ldap \"ldapurl=ldap://h/o=x?\?\?\?!e-critical\"", 1, "critical extensions"},
        {"include other.conf", 1, "\"include\" directives are not supported"},
        {"include_if_exists other.conf", 1, "\"include_if_exists\" directives are not supported"},
        {"include_dir conf.d", 1, "\"include_dir\" directives are not supported"},
        {"local \"all all trust", 1, "unterminated quoted string"},
        {"local a,,b all trust", 1, "empty element in a comma-separated list"},
        {"local ,a all trust", 1, "empty element in a comma-separated list"},
        {"local all all, # comment", 1, "a comma-separated list ends with a comma"},
        {"local /a( all trust", 1, "invalid regular expression \"a(\""},
        {"local /\\q all trust", 1, "the escape \\q is not supported"},
        {"local /[\\d] all trust", 1, "a backslash inside [...] is not supported"},
        {"local /a*? all trust", 1, "non-greedy quantifiers (*?) are not supported"},
        {"local /a{2}? all trust", 1, "non-greedy quantifiers (}?)"},
        {"local /a\\ all trust", 1, "regular expression ends with a backslash"},
        {"local /a{256} all trust", 1, "repetition counts in a regular expression are too large"},
        {"local /((a{255}){255}){2} all trust", 1, "repetition counts in a regular expression are too large"},
        /* POSIX regcomp takes minutes over these (found by fuzz_hba) */
        {"local /^(.*)++++++++++++++++++++@x all trust", 1, "a repetition (+ or {m,n}) of something that can match an empty string"},
        {"local /((a?)+){20} all trust", 1, "a repetition (+ or {m,n}) of something that can match an empty string"},
        {"local /(a|)+ all trust", 1, "a repetition (+ or {m,n}) of something that can match an empty string"},
        {"local /(^){2} all trust", 1, "a repetition (+ or {m,n}) of something that can match an empty string"},
        {"local /((((((((((a)+)+)+)+)+)+)+)+)+)+ all trust", 1, "repetitions in a regular expression are nested too deeply"},
        {"local /((a{255})+)+ all trust", 1, "repetitions in a regular expression are nested too deeply"},
        /* stacked quantifiers: PostgreSQL refuses them; regcomp took 10 s under ASan over 95 stars */
        {"local /^(.*)****************************************$ all trust", 1, "a quantifier (*) right after another one"},
        {"local /a*+ all trust", 1, "a quantifier (+) right after another one"},
        {"local /a+? all trust", 1, "non-greedy quantifiers (+?) are not supported"},
        {"local /a{2}* all trust", 1, "a quantifier (*) right after another one"},
        {"local /a?{2} all trust", 1, "a quantifier ({) right after another one"},
        {"local /^(((((((((((((((((((((((((((((((((.*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*$ all trust", 1, "a regular expression nests more than 32 groups"},
        {"local /[[:alpha: all trust", 1, "unterminated [:"},
        {"local @users.txt all trust", 1, "@users.txt: including a file with @ is not possible here"},
        /* positions: the first physical line of a continued line; lines after continuations */
        {"local all all trust\nhost all all \\\n 1.2.3.4/32 \\\n bogus\nfoo", 2, "invalid authentication method \"bogus\""},
        {"local all all trust\nlocal all \\\nall trust\n\n# c\nbad line", 6, "invalid connection type \"bad\""},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        char err[1024] = "", prefix[32];
        sl_hba *h = sl_hba_parse_buffer(rows[i].text, strlen(rows[i].text), "t.conf", NULL, err, sizeof(err));
        if (h) fail_msg("row %zu parsed but should fail: %s", i, rows[i].text);
        snprintf(prefix, sizeof(prefix), "t.conf:%d: ", rows[i].line);
        if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, rows[i].needle))
            fail_msg("row %zu (%s):\n  got:  %s\n  want: %s...%s", i, rows[i].text, err, prefix, rows[i].needle);
    }
}

static void test_nul_byte_refused(void **state)
{
    (void)state;
    const char text[] = "local all all trust\nlocal a\0b all trust\n";
    char err[256];
    assert_null(sl_hba_parse_buffer(text, sizeof(text) - 1, "t.conf", NULL, err, sizeof(err)));
    assert_string_equal(err, "t.conf:2: the file contains a NUL byte");
    /* a buffer is read up to len only: no NUL terminator needed */
    char buf[] = {'l', 'o', 'c', 'a', 'l', ' ', 'a', 'l', 'l', ' ', 'a', 'l', 'l', ' ', 't', 'r', 'u', 's', 't', 'X'};
    sl_hba *h = sl_hba_parse_buffer(buf, sizeof(buf) - 1, "t.conf", NULL, err, sizeof(err));
    assert_non_null(h);
    assert_int_equal(sl_hba_rule_at(h, 0)->method, SL_HBA_TRUST);
    sl_hba_unref(h);
}

/* ---- files: @file includes, relative paths, errors inside them ---- */

static void test_load_file_with_includes(void **state)
{
    (void)state;
    char err[1024] = "";
    sl_hba *h = sl_hba_load(DATA "main.conf", err, sizeof(err));
    if (!h) fail_msg("%s", err);
    assert_int_equal(sl_hba_rule_count(h), 6);
    static const int lines[] = {5, 6, 7, 8, 9, 11};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(sl_hba_rule_at(h, i)->line, lines[i]);
        assert_string_equal(sl_hba_rule_at(h, i)->file, DATA "main.conf");
    }
    static const struct {
        const char *conn, *ip, *db, *user;
        int line;
    } rows[] = {
        {"local", NULL, "x", "postgres", 5},
        {"local", NULL, "bob", "bob", 6},
        {"local", NULL, "x", "bob", 0},
        /* @dbs.txt and @sub/users.txt (which names @more.txt relative to sub/) */
        {"tcp", "10.1.2.3", "app1", "carol", 7},
        {"tcp", "10.1.2.3", "app3", "dave", 7},
        {"tcp", "10.1.2.3", "with space", "Eve", 7},
        {"tcp", "10.1.2.3", "app2", "eve", 11},
        {"tcp", "10.1.2.3", "app4", "carol", 11},
        /* quoted keywords are names */
        {"tcp", "10.2.200.1", "all", "all", 8},
        {"tcp", "10.2.200.1", "app1", "all", 11},
        {"tls", "2001:db8:1::7", "my db", "bob", 9},
        {"tcp", "2001:db8:1::7", "my db", "bob", 11},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        sl_hba_client c = client(rows[i].conn, rows[i].ip, rows[i].db, rows[i].user, false);
        int got = match_line(h, &c);
        if (got != rows[i].line)
            fail_msg("row %zu (%s %s db=%s user=%s): matched line %d, want %d", i, rows[i].conn,
                     rows[i].ip ? rows[i].ip : "-", rows[i].db, rows[i].user, got, rows[i].line);
    }
    const sl_hba_rule *r = sl_hba_rule_at(h, 4);
    assert_int_equal(r->method, SL_HBA_CERT);
    assert_string_equal(r->map, "certs");
    assert_int_equal(sl_hba_rule_at(h, 5)->method, SL_HBA_REJECT);

    /* maps: every map= must exist in the ident file */
    sl_ident *id = sl_ident_load(DATA "ident.conf", err, sizeof(err));
    if (!id) fail_msg("%s", err);
    assert_true(sl_hba_check_maps(h, id, err, sizeof(err)));
    assert_false(sl_hba_check_maps(h, NULL, err, sizeof(err)));
    assert_string_equal(err, DATA "main.conf:6: map \"localusers\" is used but auth_ident_file is not set");
    sl_ident_unref(id);
    const char *partial = "localusers root postgres\n";
    id = sl_ident_parse_buffer(partial, strlen(partial), "i.conf", NULL, err, sizeof(err));
    assert_non_null(id);
    assert_false(sl_hba_check_maps(h, id, err, sizeof(err)));
    assert_string_equal(err, DATA "main.conf:9: map \"certs\" is not defined in auth_ident_file");
    sl_ident_unref(id);

    /* shared by two snapshots: the last reference frees */
    sl_hba_ref(h);
    sl_hba_unref(h);
    assert_int_equal(sl_hba_rule_count(h), 6);
    sl_hba_unref(h);
}

static void test_load_file_errors(void **state)
{
    (void)state;
    char err[1024];
    assert_null(sl_hba_load(DATA "no_such.conf", err, sizeof(err)));
    assert_string_equal(err, DATA "no_such.conf: cannot open auth_hba_file: No such file or directory");

    assert_null(sl_hba_load(DATA "missing_at.conf", err, sizeof(err)));
    if (strncmp(err, DATA "missing_at.conf:3: ", strlen(DATA "missing_at.conf:3: ")) != 0 ||
        !strstr(err, "no_such_file.txt: cannot open file named by @: No such file or directory"))
        fail_msg("%s", err);

    assert_null(sl_hba_load(DATA "bad_in_at.conf", err, sizeof(err)));
    assert_string_equal(err, DATA "bad_in_at.conf:3: in @bad_names.txt: " DATA
                             "bad_names.txt:2: unterminated quoted string");

    assert_null(sl_hba_load(DATA "loop.conf", err, sizeof(err)));
    if (strncmp(err, DATA "loop.conf:1: ", strlen(DATA "loop.conf:1: ")) != 0 ||
        !strstr(err, "maximum nesting depth exceeded"))
        fail_msg("%s", err);
}

/* ---- matching ---- */

static const char *g_rules = "local     all          postgres                           peer\n"          /* 1 */
                             "local     sameuser     all                                md5\n"           /* 2 */
                             "local     replication  repl                               trust\n"         /* 3 */
                             "hostssl   all          certuser  0.0.0.0/0                cert\n"          /* 4 */
                             "hostnossl secure       all       0.0.0.0/0                reject\n"        /* 5 */
                             "host      secure       all       0.0.0.0/0                scram-sha-256\n" /* 6 */
                             "host      app,\"all\"    alice,bob 10.0.0.0/8              md5\n"          /* 7 */
                             "host      all          alice     192.168.1.0 255.255.255.0 password\n"     /* 8 */
                             "host      /^ana_       /^(dev|ops)_  2001:db8::/32       scram-sha-256\n"  /* 9 */
                             "hostgssenc all         all       all                      trust\n"         /* 10 */
                             "host      replication  repl      127.0.0.1/32             trust\n"         /* 11 */
                             "host      all          all       ::1/128                  trust\n"         /* 12 */
                             "hostnogssenc all       carol     0.0.0.0/0                password\n";     /* 13 */

static void test_match_table(void **state)
{
    (void)state;
    sl_hba *h = parse_ok(g_rules);
    static const struct {
        const char *conn, *ip, *db, *user;
        bool repl;
        int line;
    } rows[] = {
        /* local: only local lines, first match wins */
        {"local", NULL, "postgres", "postgres", false, 1},
        {"local", NULL, "bob", "bob", false, 2},
        {"local", NULL, "app", "bob", false, 0},
        {"local", NULL, "z", "carol", false, 0},
        /* physical replication matches only the replication keyword */
        {"local", NULL, "x", "repl", true, 3},
        {"local", NULL, "x", "postgres", true, 0},
        {"tcp", "127.0.0.1", "x", "repl", true, 11},
        {"tcp", "127.0.0.2", "x", "repl", true, 0},
        {"tcp", "127.0.0.1", "replication", "repl", false, 0}, /* a database named replication is not the keyword */
        /* TLS or not */
        {"tls", "1.2.3.4", "any", "certuser", false, 4},
        {"tcp", "1.2.3.4", "any", "certuser", false, 0},
        {"tcp", "1.2.3.4", "secure", "x", false, 5},
        {"tls", "1.2.3.4", "secure", "x", false, 6},
        /* lists, quoted keyword, CIDR, netmask in its own field */
        {"tcp", "10.9.8.7", "app", "alice", false, 7},
        {"tcp", "10.9.8.7", "all", "bob", false, 7},
        {"tcp", "10.9.8.7", "other", "alice", false, 0},
        {"tcp", "10.9.8.7", "app", "carol", false, 13},
        {"tcp", "192.168.1.77", "other", "alice", false, 8},
        {"tcp", "192.168.2.1", "other", "alice", false, 0},
        /* an IPv4-mapped IPv6 client matches IPv4 rules */
        {"tcp", "::ffff:10.1.1.1", "app", "bob", false, 7},
        {"tcp", "::ffff:192.168.1.1", "x", "alice", false, 8},
        /* IPv6 and regular expressions */
        {"tcp", "2001:db8::5", "ana_x", "dev_1", false, 9},
        {"tcp", "2001:db8:ffff::5", "ana_x", "ops_2", false, 9},
        {"tcp", "2001:db8::5", "ana_x", "prod_1", false, 0},
        {"tcp", "2001:db8::5", "xana_", "dev_1", false, 0},
        {"tcp", "2001:db9::1", "ana_x", "dev_1", false, 0},
        {"tcp", "10.0.0.1", "ana_x", "dev_1", false, 0},
        {"tcp", "::1", "x", "y", false, 12},
        {"tcp", "127.0.0.1", "x", "y", false, 0},
        /* hostgssenc never matches; hostnogssenc matches any TCP connection */
        {"tcp", "5.6.7.8", "z", "carol", false, 13},
        {"tls", "5.6.7.8", "z", "carol", false, 13},
        /* a TCP client without an address matches only "all" addresses */
        {"tcp", NULL, "z", "carol", false, 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        sl_hba_client c = client(rows[i].conn, rows[i].ip, rows[i].db, rows[i].user, rows[i].repl);
        int got = match_line(h, &c);
        if (got != rows[i].line)
            fail_msg("row %zu (%s %s db=%s user=%s repl=%d): matched line %d, want %d", i, rows[i].conn,
                     rows[i].ip ? rows[i].ip : "-", rows[i].db, rows[i].user, rows[i].repl, got, rows[i].line);
    }
    sl_hba_unref(h);
}

/* Is ip inside the network of one of this host's interfaces? (the precondition of a "foreign" address) */
static bool on_a_local_net(const char *ip)
{
    struct in_addr a;
    if (inet_pton(AF_INET, ip, &a) != 1) return true;
    struct ifaddrs *ifs, *i;
    assert_int_equal(getifaddrs(&ifs), 0);
    bool found = false;
    for (i = ifs; i; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_netmask && i->ifa_addr->sa_family == AF_INET) {
            uint32_t ia = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
            uint32_t m = ((struct sockaddr_in *)i->ifa_netmask)->sin_addr.s_addr;
            if ((ia & m) == (a.s_addr & m)) found = true;
        }
    freeifaddrs(ifs);
    return found;
}

static void test_match_samehost_samenet(void **state)
{
    (void)state;
    sl_hba *h = parse_ok("host all all samehost trust\n"
                         "host all all samenet md5\n");
    /* every address of every interface is samehost */
    struct ifaddrs *ifs, *i;
    assert_int_equal(getifaddrs(&ifs), 0);
    int checked = 0;
    for (i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6)) continue;
        sl_hba_client c = {.database = "d", .user = "u", .addr = i->ifa_addr};
        if (match_line(h, &c) != 1) fail_msg("interface %s address is not samehost", i->ifa_name);
        checked++;
    }
    freeifaddrs(ifs);
    assert_true(checked >= 1);
    /* loopback: 127.0.0.1 is this host; 127.0.0.2 is on lo's 127.0.0.0/8 network only */
    sl_hba_client c = client("tcp", "127.0.0.1", "d", "u", false);
    assert_int_equal(match_line(h, &c), 1);
    c = client("tcp", "127.0.0.2", "d", "u", false);
    assert_int_equal(match_line(h, &c), 2);
    c = client("tcp", "::ffff:127.0.0.2", "d", "u", false);
    assert_int_equal(match_line(h, &c), 2);
    /* an address on none of the host's networks */
    static const char *candidates[] = {"203.0.113.77", "198.51.100.77", "100.64.77.77", "192.0.2.177"};
    const char *foreign = NULL;
    for (size_t k = 0; k < 4 && !foreign; k++)
        if (!on_a_local_net(candidates[k])) foreign = candidates[k];
    assert_non_null(foreign);
    c = client("tcp", foreign, "d", "u", false);
    assert_int_equal(match_line(h, &c), 0);
    /* local connections never match host lines */
    c = client("local", NULL, "d", "u", false);
    assert_int_equal(match_line(h, &c), 0);
    sl_hba_unref(h);
}

static void test_refusal_messages(void **state)
{
    (void)state;
    char buf[256];
    sl_hba_client c = client("tcp", "10.0.0.5", "app", "alice", false);
    assert_string_equal(sl_hba_refusal_message(&c, false, buf, sizeof(buf)),
                        "no pg_hba.conf entry for host \"10.0.0.5\", user \"alice\", database \"app\", no encryption");
    c = client("tls", "2001:db8::1", "app", "alice", false);
    assert_string_equal(sl_hba_refusal_message(&c, false, buf, sizeof(buf)),
                        "no pg_hba.conf entry for host \"2001:db8::1\", user \"alice\", database \"app\", SSL "
                        "encryption");
    c = client("local", NULL, "app", "alice", false);
    assert_string_equal(sl_hba_refusal_message(&c, false, buf, sizeof(buf)),
                        "no pg_hba.conf entry for host \"[local]\", user \"alice\", database \"app\", no encryption");
    assert_string_equal(sl_hba_refusal_message(&c, true, buf, sizeof(buf)),
                        "pg_hba.conf rejects connection for host \"[local]\", user \"alice\", database \"app\", no "
                        "encryption");
    c = client("tcp", "10.0.0.5", "x", "repl", true);
    assert_string_equal(sl_hba_refusal_message(&c, false, buf, sizeof(buf)),
                        "no pg_hba.conf entry for replication connection from host \"10.0.0.5\", user \"repl\", no "
                        "encryption");
    assert_string_equal(sl_hba_refusal_message(&c, true, buf, sizeof(buf)),
                        "pg_hba.conf rejects replication connection for host \"10.0.0.5\", user \"repl\", no "
                        "encryption");
}

/* ---- many threads matching the same rules at once (regexes, getifaddrs) ---- */

typedef struct race_arg {
    const sl_hba *h;
    int mismatches;
} race_arg;

static void *race(void *p)
{
    race_arg *a = p;
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8::5", &v6.sin6_addr);
    struct sockaddr_in lo = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &lo.sin_addr);
    for (int i = 0; i < 2000; i++) {
        sl_hba_client c = {.database = "ana_x", .user = (i & 1) ? "dev_1" : "prod_1",
                           .addr = (const struct sockaddr *)&v6};
        const sl_hba_rule *r = sl_hba_match(a->h, &c);
        if ((i & 1) ? (!r || r->line != 1) : (r && r->line == 1)) a->mismatches++;
        if (i % 100 == 0) {
            sl_hba_client l = {.database = "d", .user = "u", .addr = (const struct sockaddr *)&lo};
            r = sl_hba_match(a->h, &l);
            if (!r || r->line != 2) a->mismatches++;
        }
    }
    return NULL;
}

static void test_match_concurrently(void **state)
{
    (void)state;
    sl_hba *h = parse_ok("host /^ana_ /^(dev|ops)_ 2001:db8::/32 scram-sha-256\n"
                         "host all all samehost trust\n");
    pthread_t t[4];
    race_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (race_arg){h, 0};
        assert_int_equal(pthread_create(&t[i], NULL, race, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(args[i].mismatches, 0);
    }
    sl_hba_unref(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_types_and_methods),
        cmocka_unit_test(test_parse_options),
        cmocka_unit_test(test_parse_ldap_options),
        cmocka_unit_test(test_parse_quoting_and_lines),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_nul_byte_refused),
        cmocka_unit_test(test_load_file_with_includes),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_match_samehost_samenet),
        cmocka_unit_test(test_refusal_messages),
        cmocka_unit_test(test_match_concurrently),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
