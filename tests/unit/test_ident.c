/* test_ident.c - unit tests of auth_ident_file: which system user may log in as which database user
 * (names, all, regular expressions with \1, quoting), and every kind of error with its line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config/ident.h"

#define DATA "data/hba/"

static sl_ident *parse_ok(const char *text)
{
    char err[1024] = "";
    sl_ident *id = sl_ident_parse_buffer(text, strlen(text), "i.conf", NULL, err, sizeof(err));
    if (!id) fail_msg("parsing failed: %s", err);
    return id;
}

typedef struct allow_row {
    const char *map, *sys, *pg;
    bool allowed;
} allow_row;

static void check_rows(const sl_ident *id, const allow_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool got = sl_ident_allows(id, rows[i].map, rows[i].sys, rows[i].pg);
        if (got != rows[i].allowed)
            fail_msg("row %zu: map %s, system user \"%s\" as \"%s\": got %s", i, rows[i].map ? rows[i].map : "(none)",
                     rows[i].sys, rows[i].pg, got ? "allowed" : "refused");
    }
}

static void test_file(void **state)
{
    (void)state;
    char err[1024] = "";
    sl_ident *id = sl_ident_load(DATA "ident.conf", err, sizeof(err));
    if (!id) fail_msg("%s", err);
    static const allow_row rows[] = {
        {"localusers", "root", "postgres", true},
        {"localusers", "root", "root", true}, /* /^(.*)$ -> \1 */
        {"localusers", "bob", "bob", true},
        {"localusers", "bob", "alice", false},
        {"certs", "alice.example.com", "alice", true},
        {"certs", "alice.example.com", "bob", false},
        {"certs", "bob", "bob", false},
        {"nomap", "root", "postgres", false},
        /* no map=: the names must be equal */
        {NULL, "x", "x", true},
        {NULL, "x", "y", false},
    };
    check_rows(id, rows, sizeof(rows) / sizeof(*rows));
    assert_true(sl_ident_has_map(id, "certs"));
    assert_false(sl_ident_has_map(id, "Certs"));
    sl_ident_unref(id);
    /* no ident file at all: a map never allows */
    assert_false(sl_ident_allows(NULL, "certs", "alice.example.com", "alice"));
    assert_true(sl_ident_allows(NULL, NULL, "alice", "alice"));
}

static void test_regex_and_keywords(void **state)
{
    (void)state;
    sl_ident *id = parse_ok("m1  /^(.*)@example\\.com$    \\1\n"
                            "m1  /^admin-[a-z]+$           all\n"
                            "m2  \"all\"                     \"all\"\n"
                            "m3  /^x                       /^app_\\d+$\n"
                            "m4  /^(a)(b)?$                pre_\\1_post\n"
                            "m5  /^(x)?y$                  \\1z\n"
                            "m6  \"/^not a regex$\"         u\n"
                            "m7  plain                     lit\\1\n");
    static const allow_row rows[] = {
        {"m1", "joe@example.com", "joe", true},
        {"m1", "joe@example.org", "joe", false},
        {"m1", "joe@exampleXcom", "joe", false}, /* the dot was escaped */
        {"m1", "joe@example.com", "jo", false},
        {"m1", "joe@example.com", "joe@example.com", false},
        {"m1", "admin-ops", "anyone", true},
        {"m1", "admin-OPS", "anyone", false},
        /* quoted all is a name on both sides */
        {"m2", "all", "all", true},
        {"m2", "all", "bob", false},
        {"m2", "bob", "all", false},
        /* a regex for the database user (PostgreSQL 16); \d means a digit */
        {"m3", "xyz", "app_12", true},
        {"m3", "xyz", "app_x", false},
        {"m3", "axyz", "app_1", false},
        {"m4", "ab", "pre_a_post", true},
        {"m4", "a", "pre_a_post", true},
        {"m4", "ab", "pre_ab_post", false},
        /* a subexpression that took no part in the match substitutes nothing: refused */
        {"m5", "y", "z", false},
        {"m5", "xy", "xz", true},
        /* a quoted regex is still a regex (PostgreSQL 16) */
        {"m6", "/^not a regex$", "u", false},
        {"m6", "not a regex", "u", true},
        /* \1 with a plain system user name is just text */
        {"m7", "plain", "lit\\1", true},
        {"m7", "plain", "lit", false},
    };
    check_rows(id, rows, sizeof(rows) / sizeof(*rows));
    sl_ident_unref(id);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int line;
        const char *needle;
    } rows[] = {
        {"m1 a", 1, "missing entry at end of line"},
        {"m1", 1, "missing entry at end of line"},
        {"m1 a b c", 1, "extra field after the database user name"},
        {"m1 a,b c", 1, "multiple values in ident field"},
        {"m1 a b,c", 1, "multiple values in ident field"},
        {"m1,m2 a b", 1, "multiple values in ident field"},
        {"m1 /^a$ \\1", 1, "regular expression \"^a$\" has no subexpressions as requested by backreference in \"\\1\""},
        {"m1 a +admins", 1, "group membership \"+admins\" is not supported"},
        {"m1 /a( b", 1, "invalid regular expression \"a(\""},
        {"m1 a /b(", 1, "invalid regular expression \"b(\""},
        {"m1 /\\m b", 1, "the escape \\m is not supported"},
        {"include other.conf", 1, "\"include\" directives are not supported"},
        {"include_dir conf.d", 1, "\"include_dir\" directives are not supported"},
        {"# c\n\nm1 a b\nm1 \"a b", 4, "unterminated quoted string"},
        {"m1 a \\\n b\nm2 x", 3, "missing entry at end of line"},
        {"m1 @names.txt b", 1, "@names.txt: including a file with @ is not possible here"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        char err[1024] = "", prefix[32];
        sl_ident *id = sl_ident_parse_buffer(rows[i].text, strlen(rows[i].text), "i.conf", NULL, err, sizeof(err));
        if (id) fail_msg("row %zu parsed but should fail: %s", i, rows[i].text);
        snprintf(prefix, sizeof(prefix), "i.conf:%d: ", rows[i].line);
        if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, rows[i].needle))
            fail_msg("row %zu (%s):\n  got:  %s\n  want: %s...%s", i, rows[i].text, err, prefix, rows[i].needle);
    }
    /* "include" with three fields is a map called include, as in PostgreSQL */
    sl_ident *id = parse_ok("include sys pg\n");
    assert_true(sl_ident_allows(id, "include", "sys", "pg"));
    sl_ident_unref(id);

    char err[256];
    assert_null(sl_ident_load(DATA "no_such_ident.conf", err, sizeof(err)));
    assert_string_equal(err, DATA "no_such_ident.conf: cannot open auth_ident_file: No such file or directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_regex_and_keywords),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
