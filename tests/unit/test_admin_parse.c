/* test_admin_parse.c - the admin console's statement splitter and command parser, from a table:
 * verbs and arguments as psql and drivers send them (case, quotes, comments, semicolons), SET in
 * its spellings, and what is a syntax error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "admin/admin_int.h"

typedef struct parse_case {
    const char *in;
    bool ok;
    adm_cmd_kind kind;
    const char *verb, *arg, *value;
} parse_case;

static const parse_case cases[] = {
    {"SHOW POOLS", true, ADM_CMD_WORDS, "show", "POOLS", ""},
    {"show pools;", true, ADM_CMD_WORDS, "show", "pools;", ""}, /* the splitter removes ';' first */
    {"  Show   Stats  ", true, ADM_CMD_WORDS, "show", "Stats", ""},
    {"RELOAD", true, ADM_CMD_WORDS, "reload", "", ""},
    {"PAUSE sav3", true, ADM_CMD_WORDS, "pause", "sav3", ""},
    {"PAUSE \"My Db\"", true, ADM_CMD_WORDS, "pause", "My Db", ""},
    {"KILL_CLIENT 42", true, ADM_CMD_WORDS, "kill_client", "42", ""},
    {"SHOW /* why not */ CLIENTS -- trailing", true, ADM_CMD_WORDS, "show", "CLIENTS", ""},
    {"SET default_pool_size = 30", true, ADM_CMD_SET, "set", "default_pool_size", "30"},
    {"set default_pool_size to 30", true, ADM_CMD_SET, "set", "default_pool_size", "30"},
    {"SET server_reset_query = 'DISCARD ALL'", true, ADM_CMD_SET, "set", "server_reset_query", "DISCARD ALL"},
    {"SET application_name = 'it''s'", true, ADM_CMD_SET, "set", "application_name", "it's"},
    {"SET query_timeout=5", true, ADM_CMD_SET, "set", "query_timeout", "5"},
    {"SET", false, 0, NULL, NULL, NULL},
    {"SET x", false, 0, NULL, NULL, NULL},
    {"SET x = ", false, 0, NULL, NULL, NULL},
    {"SET x = 1 2", false, 0, NULL, NULL, NULL},
    {"SHOW POOLS NOW", false, 0, NULL, NULL, NULL},
    {"'quoted verb'", false, 0, NULL, NULL, NULL},
    {"sh-ow", false, 0, NULL, NULL, NULL},
    {"PAUSE 'unterminated", false, 0, NULL, NULL, NULL},
    {"", false, 0, NULL, NULL, NULL},
};

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const parse_case *t = &cases[i];
        adm_cmd cmd;
        char err[256] = "";
        bool ok = adm_parse(t->in, strlen(t->in), &cmd, err, sizeof(err));
        if (ok != t->ok) fail_msg("\"%s\": expected %s, got %s (%s)", t->in, t->ok ? "ok" : "an error", ok ? "ok" : "an error", err);
        if (!ok) {
            assert_non_null(strstr(err, "invalid command"));
            continue;
        }
        assert_int_equal(cmd.kind, t->kind);
        assert_string_equal(cmd.verb, t->verb);
        assert_string_equal(cmd.arg, t->arg);
        if (t->kind == ADM_CMD_SET) assert_string_equal(cmd.value, t->value);
    }
}

/* Statements of one query string, as psql -c sends them. */
static void test_statements_split_outside_quotes_and_comments(void **state)
{
    (void)state;
    const char *q = "SHOW POOLS; SET x = 'a;b' ; /* ; */ RELOAD;;  -- ;\n";
    size_t off = 0, start, len;
    const char *want[] = {"SHOW POOLS", "SET x = 'a;b' ", "RELOAD"}; /* leading blanks and comments skipped */
    int n = 0;
    while (adm_next_statement(q, &off, &start, &len)) {
        assert_true(n < 3);
        char buf[64];
        memcpy(buf, q + start, len);
        buf[len] = 0;
        assert_string_equal(buf, want[n]);
        n++;
    }
    assert_int_equal(n, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_statements_split_outside_quotes_and_comments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
