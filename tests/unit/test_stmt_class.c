/* test_stmt_class.c - the statement classifier of transaction pooling, from tables: which statements
 * pin a client to its server, which end that state, and what SET / RESET change (with the value in
 * the form the server keeps it). Keywords inside strings, comments, dollar quotes and quoted
 * identifiers never count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/stmt_class.h"

#define ADV SL_PIN_BIT(SL_PINR_ADVISORY_LOCK)
#define TEMP SL_PIN_BIT(SL_PINR_TEMP_TABLE)
#define HOLD SL_PIN_BIT(SL_PINR_HOLD_CURSOR)
#define LSTN SL_PIN_BIT(SL_PINR_LISTEN)
#define PREP SL_PIN_BIT(SL_PINR_PREPARE)
#define SETP SL_PIN_BIT(SL_PINR_SET)
#define ROLE SL_PIN_BIT(SL_PINR_ROLE)
#define UNCL SL_PIN_BIT(SL_PINR_UNCLASSIFIED)

/* pins / clears of a whole query text (every statement's together) */
static const struct {
    const char *sql;
    unsigned pins, clears;
} pin_cases[] = {
    {"SELECT 1", 0, 0},
    {"", 0, 0},
    {" ;; ", 0, 0},
    {"SELECT pg_advisory_lock(1)", ADV, 0},
    {"select PG_ADVISORY_LOCK(1, 2)", ADV, 0},
    {"SELECT pg_catalog.pg_advisory_lock_shared(42)", ADV, 0},
    {"SELECT pg_try_advisory_lock ($1)", ADV, 0},
    {"SELECT pg_try_advisory_lock_shared(7) FROM t", ADV, 0},
    {"SELECT \"pg_advisory_lock\"(1)", ADV, 0},
    {"SELECT pg_advisory_xact_lock(1)", 0, 0},          /* ends with the transaction */
    {"SELECT pg_try_advisory_xact_lock(1)", 0, 0},
    {"SELECT 'pg_advisory_lock(1)'", 0, 0},              /* in a string */
    {"SELECT $$ pg_advisory_lock(1) $$", 0, 0},          /* dollar quoted */
    {"SELECT $fn$ LISTEN x; pg_advisory_lock(1) $fn$", 0, 0},
    {"SELECT 1 -- pg_advisory_lock(1)\n", 0, 0},         /* comments */
    {"SELECT /* pg_advisory_lock(1) /* nested */ */ 1", 0, 0},
    {"SELECT \"pg_advisory_lock(1)\" FROM t", 0, 0},     /* a quoted identifier */
    {"SELECT E'it\\'s pg_advisory_lock(1)'", 0, 0},      /* E'' with an escaped quote */
    {"SELECT 'it''s'; SELECT pg_advisory_lock(1)", ADV, 0},
    {"SELECT pg_advisory_lock", 0, 0},                   /* a column, not a call */
    {"SELECT pg_advisory_unlock_all()", 0, ADV},
    {"SELECT pg_advisory_unlock(1)", 0, 0},              /* maybe not the last: still pinned */
    {"CREATE TEMP TABLE t (a int)", TEMP, 0},
    {"create temporary table t as select 1", TEMP, 0},
    {"CREATE GLOBAL TEMPORARY TABLE t (a int)", TEMP, 0},
    {"CREATE OR REPLACE TEMP VIEW v AS SELECT 1", TEMP, 0},
    {"CREATE TEMP SEQUENCE s", TEMP, 0},
    {"CREATE TEMP TABLE t (a int) ON COMMIT DROP", 0, 0},
    {"CREATE TABLE pg_temp.t (a int)", TEMP, 0},
    {"SELECT * INTO TEMP t FROM x", TEMP, 0},
    {"CREATE TABLE temp (a int)", 0, 0},
    {"CREATE TABLE t (temp int)", 0, 0},
    {"DISCARD TEMP", 0, TEMP},
    {"DISCARD ALL", 0, SL_PIN_ALL},
    {"DISCARD PLANS", 0, 0},
    {"DECLARE c CURSOR WITH HOLD FOR SELECT 1", HOLD, 0},
    {"declare c no scroll cursor with hold for select 'with hold'", HOLD, 0},
    {"DECLARE c CURSOR FOR SELECT 1", 0, 0},
    {"DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1", 0, 0},
    {"DECLARE c CURSOR FOR SELECT 1 AS \"with\", 2 AS hold", 0, 0},
    {"CLOSE ALL", 0, HOLD},
    {"CLOSE c", 0, 0},
    {"LISTEN chan", LSTN, 0},
    {"UNLISTEN *", 0, LSTN},
    {"UNLISTEN chan", 0, 0},
    {"PREPARE q AS SELECT 1", PREP, 0},
    {"PREPARE q (int) AS SELECT $1", PREP, 0},
    {"PREPARE TRANSACTION 'x'", 0, 0},
    {"DEALLOCATE ALL", 0, PREP},
    {"DEALLOCATE PREPARE ALL", 0, PREP},
    {"DEALLOCATE q", 0, 0},
    {"SET work_mem = '64MB'", 0, 0},                     /* pinned by the caller when not tracked */
    {"SET ROLE admin", ROLE, 0},
    {"SET SESSION AUTHORIZATION bob", ROLE, 0},
    {"SET LOCAL ROLE admin", 0, 0},
    {"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", SETP, 0},
    {"SET x FROM CURRENT", SETP, 0},
    {"SELECT set_config('search_path', 'a', false)", SETP, 0},
    {"RESET ALL", 0, SETP},
    /* several statements: each counts */
    {"BEGIN; SELECT pg_advisory_lock(1); LISTEN a; COMMIT", ADV | LSTN, 0},
    {"LISTEN a; UNLISTEN *", LSTN, LSTN},
    /* not lexable: pinned */
    {"SELECT 'unterminated", UNCL, 0},
    {"SELECT 1 /* unterminated", UNCL, 0},
    {"SELECT $x$ unterminated", UNCL, 0},
};

static void test_pins(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(pin_cases) / sizeof(pin_cases[0]); i++) {
        sl_stmt_iter it;
        sl_stmt_info info;
        unsigned pins = 0, clears = 0;
        sl_stmt_iter_init(&it, pin_cases[i].sql, strlen(pin_cases[i].sql));
        while (sl_stmt_next(&it, &info)) pins |= info.pins, clears |= info.clears;
        if (pins != pin_cases[i].pins || clears != pin_cases[i].clears)
            fail_msg("%s: pins %#x clears %#x, want %#x %#x", pin_cases[i].sql, pins, clears, pin_cases[i].pins,
                     pin_cases[i].clears);
    }
}

/* SET / RESET: kind, parameter, value */
static const struct {
    const char *sql;
    sl_stmt_kind kind;
    const char *name, *value; /* value NULL: DEFAULT / not understood (see ok) */
    bool ok;
} set_cases[] = {
    {"SET search_path = a", SL_SK_SET, "search_path", "a", true},
    {"set SEARCH_PATH to Foo, public", SL_SK_SET, "search_path", "foo, public", true},
    {"SET search_path TO \"My Schema\", public", SL_SK_SET, "search_path", "\"My Schema\", public", true},
    {"SET search_path = 'a,b'", SL_SK_SET, "search_path", "\"a,b\"", true}, /* one schema named a,b */
    {"SET search_path = 'Sch', \"x\"\"y\"", SL_SK_SET, "search_path", "\"Sch\", \"x\"\"y\"", true},
    {"SET SESSION search_path = s1", SL_SK_SET, "search_path", "s1", true},
    {"  /* c */ SET search_path TO DEFAULT", SL_SK_SET, "search_path", NULL, true},
    {"SET SCHEMA 'app'", SL_SK_SET, "search_path", "app", true},
    {"SET TIME ZONE 'Europe/Paris'", SL_SK_SET, "timezone", "Europe/Paris", true},
    {"SET TIME ZONE LOCAL", SL_SK_SET, "timezone", NULL, true},
    {"SET TIME ZONE -5", SL_SK_SET, "timezone", "-5", true},
    {"SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE", SL_SK_SET, "timezone", NULL, false},
    {"SET TimeZone = 'UTC'", SL_SK_SET, "timezone", "UTC", true},
    {"SET application_name = E'it\\'s'", SL_SK_SET, "application_name", "it's", true},
    {"SET application_name = 'a;b'", SL_SK_SET, "application_name", "a;b", true},
    {"SET NAMES 'UTF8'", SL_SK_SET, "client_encoding", "UTF8", true},
    {"SET default_transaction_read_only = on", SL_SK_SET, "default_transaction_read_only", "on", true},
    {"SET myapp.tenant = 42", SL_SK_SET, "myapp.tenant", "42", true},
    {"SET statement_timeout = $1", SL_SK_SET, "statement_timeout", NULL, false},
    {"SET LOCAL search_path = a", SL_SK_SET_LOCAL, "", NULL, false},
    {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", SL_SK_SET_LOCAL, "", NULL, false},
    {"SET CONSTRAINTS ALL DEFERRED", SL_SK_SET_LOCAL, "", NULL, false},
    {"RESET search_path", SL_SK_RESET, "search_path", NULL, false},
    {"reset TIME ZONE", SL_SK_RESET, "timezone", NULL, false},
    {"RESET ALL", SL_SK_RESET_ALL, "", NULL, false},
    {"DISCARD ALL", SL_SK_DISCARD_ALL, "", NULL, false},
    {"ROLLBACK TO SAVEPOINT a", SL_SK_ROLLBACK_TO, "", NULL, false},
    {"ROLLBACK", SL_SK_OTHER, "", NULL, false},
    {"LISTEN \"Chan\"", SL_SK_LISTEN, "Chan", NULL, false},
    {"UNLISTEN Chan", SL_SK_UNLISTEN, "chan", NULL, false},
    {"DECLARE \"Cur\" CURSOR WITH HOLD FOR SELECT 1", SL_SK_DECLARE, "Cur", NULL, false},
    {"CLOSE cur", SL_SK_CLOSE, "cur", NULL, false},
    {"CLOSE ALL", SL_SK_CLOSE, "", NULL, false},
    {"PREPARE Q1 (int) AS SELECT $1", SL_SK_PREPARE, "q1", NULL, false},
    {"DEALLOCATE PREPARE q1", SL_SK_DEALLOCATE, "q1", NULL, false},
    {"DEALLOCATE q1", SL_SK_DEALLOCATE, "q1", NULL, false},
    {"DEALLOCATE ALL", SL_SK_DEALLOCATE, "", NULL, false},
    {"SELECT 'SET search_path = a'", SL_SK_OTHER, "", NULL, false},
};

static void test_set_reset(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(set_cases) / sizeof(set_cases[0]); i++) {
        sl_stmt_info info;
        sl_stmt_classify_one(set_cases[i].sql, strlen(set_cases[i].sql), &info);
        const char *sql = set_cases[i].sql;
        if (info.kind != set_cases[i].kind) fail_msg("%s: kind %d want %d", sql, info.kind, set_cases[i].kind);
        if (strcmp(info.name, set_cases[i].name)) fail_msg("%s: name \"%s\" want \"%s\"", sql, info.name, set_cases[i].name);
        if (info.kind != SL_SK_SET) continue;
        if (info.value_ok != set_cases[i].ok) fail_msg("%s: value_ok %d", sql, info.value_ok);
        if (!info.value_ok) continue;
        if (set_cases[i].value == NULL) {
            if (!info.is_default) fail_msg("%s: not DEFAULT", sql);
        } else if (info.is_default || strcmp(info.value, set_cases[i].value)) {
            fail_msg("%s: value \"%s\" want \"%s\"", sql, info.value, set_cases[i].value);
        }
    }
}

static void test_multi_statement(void **state)
{
    (void)state;
    const char *sql = "SET search_path = a; SELECT ';'; -- x;\n RESET TimeZone ; SET LOCAL x = 1;";
    sl_stmt_iter it;
    sl_stmt_info info;
    sl_stmt_iter_init(&it, sql, strlen(sql) + 1); /* the NUL of a Query message ends the text */
    assert_true(sl_stmt_next(&it, &info));
    assert_int_equal(info.kind, SL_SK_SET);
    assert_string_equal(info.value, "a");
    assert_true(sl_stmt_next(&it, &info));
    assert_int_equal(info.kind, SL_SK_OTHER);
    assert_true(sl_stmt_next(&it, &info));
    assert_int_equal(info.kind, SL_SK_RESET);
    assert_string_equal(info.name, "timezone");
    assert_true(sl_stmt_next(&it, &info));
    assert_int_equal(info.kind, SL_SK_SET_LOCAL);
    assert_false(sl_stmt_next(&it, &info));
}

/* The one-pass shortcut (sl_stmt_plain_count) against the full classifier: whenever it says "plain",
 * sl_stmt_next must find exactly that many statements, each of them classified as nothing, with the
 * same highest $n. */
static void check_shortcut(const char *text, size_t n)
{
    int maxp = -7, scan_maxp = -7;
    int count = sl_stmt_plain_count(text, n, &maxp);
    int scanned = sl_stmt_plain_scan(text, n, &scan_maxp); /* the per-thread table gives the pass's answer */
    if (count != scanned || (count >= 0 && maxp != scan_maxp))
        fail_msg("remembered answer %d ($%d), the pass's %d ($%d): %.*s", count, maxp, scanned, scan_maxp, (int)n,
                 text);
    if (count < 0) return;
    sl_stmt_iter it;
    sl_stmt_info info;
    int stmts = 0, full_maxp = 0;
    sl_stmt_iter_init(&it, text, n);
    while (sl_stmt_next(&it, &info)) {
        stmts++;
        if (info.kind != SL_SK_OTHER || info.pins || info.clears || it.broken)
            fail_msg("shortcut said plain, full classifier disagrees (kind %d pins %#x clears %#x): %.*s", info.kind,
                     info.pins, info.clears, (int)n, text);
        if (info.max_param > full_maxp) full_maxp = info.max_param;
    }
    if (stmts != count) fail_msg("shortcut counted %d statements, full %d: %.*s", count, stmts, (int)n, text);
    if (maxp != full_maxp) fail_msg("shortcut max $n %d, full %d: %.*s", maxp, full_maxp, (int)n, text);
}

/* Texts the shortcut must take (the hot path of pgbench and ordinary applications)... */
static const struct {
    const char *sql;
    int count, maxp;
} plain_cases[] = {
    {"SELECT abalance FROM pgbench_accounts WHERE aid = $1", 1, 1},
    {"SELECT abalance FROM pgbench_accounts WHERE aid = 12345;", 1, 0},
    {"UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;", 1, 2},
    {"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);", 1, 4},
    {"BEGIN;", 1, 0},
    {"END;", 1, 0},
    {"begin; select 1; commit", 3, 0},
    {"", 0, 0},
    {" ;; ", 0, 0},
    {"SELECT 'it''s set_config(1)' AS x", 1, 0},        /* a string: never read */
    {"SELECT 1 -- SET x = 1; pg_advisory_lock(1)\n", 1, 0},
    {"SELECT /* LISTEN x; /* nested */ */ 1", 1, 0},
    {"WITH a AS (SELECT 1) SELECT * FROM a", 1, 0},
    {"DELETE FROM t WHERE id = $10 AND x = 1e-5", 1, 10},
    {"SELECT \"Col\" FROM \"Table\" WHERE a = $1", 1, 1},
    {"SELECT 'a;b'; SELECT $2", 2, 2},
    {"ROLLBACKS", 1, 0},                                   /* not the keyword ROLLBACK */
    {"SELECT x FROM template1", 1, 0},                     /* not temp: but counted as one below */
};

/* ...and texts it must leave to the full classifier (they act on the session, or it cannot be sure). */
static const char *const not_plain_cases[] = {
    "select pg_advisory_lock(1)",
    "SELECT PG_TRY_ADVISORY_LOCK($1)",
    "SELECT \"pg_advisory_lock\"(1)",
    "SELECT pg_catalog.pg_advisory_lock_shared(1)",
    "SELECT set_config('search_path', 'a', false)",
    "SELECT Set_Config('a.b', 'c', true)",
    "WITH x AS (SELECT pg_advisory_lock(1)) SELECT * FROM x",
    "SELECT * INTO TEMP t FROM x",
    "CREATE TABLE pg_temp.t (a int)",
    "SELECT 1; SET search_path = a",
    "SELECT 1;SET search_path = a",
    "SELECT 1; /* c */ set x = 1",
    "  /* c */ SET search_path TO a",
    "-- c\nRESET ALL",
    "select 1;\n\tlisten x",
    "Discard All",
    "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    "CLOSE ALL",
    "PREPARE q AS SELECT 1",
    "DEALLOCATE ALL",
    "CREATE TEMP TABLE t (a int)",
    "ROLLBACK TO SAVEPOINT a",
    "abort",
    "UNLISTEN *",
    "SELECT $$ SET x $$",                                    /* a dollar quote */
    "SELECT $a$ x $a$",
    "SELECT E'it\\'s'",                                   /* backslash escapes */
    "SELECT E'\\'' ; SET x = 1; --'",                     /* one string when read with its escapes */
    "SELECT U&'\\0041'",
    "SELECT 'unterminated",
    "SELECT \"unterminated",
    "SELECT 1 /* unterminated",
    "SELECT 1 /* /* */",
};

static void test_shortcut(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(plain_cases) / sizeof(plain_cases[0]); i++) {
        const char *sql = plain_cases[i].sql;
        int maxp = -1;
        int n = sl_stmt_plain_count(sql, strlen(sql), &maxp);
        if (i == sizeof(plain_cases) / sizeof(plain_cases[0]) - 1) {
            check_shortcut(sql, strlen(sql)); /* template1 may go either way; it must be right */
            continue;
        }
        if (n != plain_cases[i].count || maxp != plain_cases[i].maxp)
            fail_msg("%s: shortcut %d statements, $%d; want %d, $%d", sql, n, maxp, plain_cases[i].count,
                     plain_cases[i].maxp);
        check_shortcut(sql, strlen(sql));
    }
    for (size_t i = 0; i < sizeof(not_plain_cases) / sizeof(not_plain_cases[0]); i++) {
        int maxp;
        if (sl_stmt_plain_count(not_plain_cases[i], strlen(not_plain_cases[i]), &maxp) >= 0)
            fail_msg("%s: taken as plain by the shortcut", not_plain_cases[i]);
    }
    /* every text of the other tables: the shortcut agrees with the full classifier */
    for (size_t i = 0; i < sizeof(pin_cases) / sizeof(pin_cases[0]); i++)
        check_shortcut(pin_cases[i].sql, strlen(pin_cases[i].sql));
    for (size_t i = 0; i < sizeof(set_cases) / sizeof(set_cases[0]); i++)
        check_shortcut(set_cases[i].sql, strlen(set_cases[i].sql));
    /* a Query's text ends at its NUL, with the shortcut too */
    static const char q[] = "SELECT 1\0SET x = 1";
    int maxp;
    assert_int_equal(sl_stmt_plain_count(q, sizeof(q), &maxp), 1);
    check_shortcut(q, sizeof(q));
    /* sl_stmt_classify_one takes the shortcut and gives the same answer */
    sl_stmt_info info;
    const char *sql = "SELECT abalance FROM pgbench_accounts WHERE aid = $3";
    sl_stmt_classify_one(sql, strlen(sql), &info);
    assert_int_equal(info.kind, SL_SK_OTHER);
    assert_int_equal(info.pins, 0);
    assert_int_equal(info.max_param, 3);
    assert_string_equal(info.name, "");
}

/* The LISTEN fan-out serves only LISTEN ch / UNLISTEN ch / UNLISTEN * of exactly two tokens, the
 * channel as the server folds it (a name it cannot read, e.g. longer than 63 bytes, is ""). */
/* The advisory lock functions whose effect the server is asked about afterwards (recheck): the
 * session-level lock and unlock calls, not the transaction-level ones, nor unlock_all (clears). */
static void test_advisory_recheck(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        unsigned recheck;
    } cases[] = {
        {"SELECT pg_advisory_unlock(1)", ADV},
        {"select PG_ADVISORY_UNLOCK_SHARED($1)", ADV},
        {"SELECT pg_catalog.pg_advisory_unlock(7)", ADV},
        {"SELECT pg_try_advisory_lock(1)", ADV},
        {"SELECT pg_advisory_lock(1)", ADV},
        {"SELECT pg_advisory_unlock_all()", 0},
        {"SELECT pg_advisory_xact_lock(1)", 0},
        {"SELECT 'pg_advisory_unlock(1)'", 0},
        {"SELECT pg_advisory_unlock", 0}, /* a column, not a call */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sl_stmt_info info;
        sl_stmt_classify_one(cases[i].sql, strlen(cases[i].sql), &info);
        if (info.recheck != cases[i].recheck)
            fail_msg("%s: recheck %#x, want %#x", cases[i].sql, info.recheck, cases[i].recheck);
    }
    sl_stmt_info info;
    sl_stmt_classify_one("SELECT pg_advisory_unlock(1)", 28, &info);
    assert_int_equal(info.pins, 0); /* an unlock alone pins nothing */
}

static void test_listen_tokens(void **state)
{
    (void)state;
    static const struct { const char *sql; int kind, ntokens; const char *name; } cases[] = {
        {"LISTEN chan", SL_SK_LISTEN, 2, "chan"},
        {" listen /* c */ Chan ;", SL_SK_LISTEN, 2, "chan"},
        {"LISTEN \"My \"\"Chan\"\"\"", SL_SK_LISTEN, 2, "My \"Chan\""},
        {"UNLISTEN *", SL_SK_UNLISTEN, 2, "*"},
        {"LISTEN chan extra", SL_SK_LISTEN, 3, "chan"},
        {"LISTEN", SL_SK_LISTEN, 1, ""},
        {"LISTEN 'chan'", SL_SK_LISTEN, 2, ""},
        {"LISTEN a234567890123456789012345678901234567890123456789012345678901234", SL_SK_LISTEN, 2, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sl_stmt_info info;
        sl_stmt_classify_one(cases[i].sql, strlen(cases[i].sql), &info);
        if ((int)info.kind != cases[i].kind || info.ntokens != cases[i].ntokens || strcmp(info.name, cases[i].name))
            fail_msg("%s: kind %d ntokens %d name \"%s\"", cases[i].sql, info.kind, info.ntokens, info.name);
    }
}

static void test_params_counted(void **state)
{
    (void)state;
    sl_stmt_info info;
    const char *sql = "SELECT pg_advisory_lock($1), $12, '$3'";
    sl_stmt_classify_one(sql, strlen(sql), &info);
    assert_int_equal(info.max_param, 12);
}

static void test_reason_text(void **state)
{
    (void)state;
    char buf[128];
    sl_pin_reasons_text(ADV | LSTN, buf, sizeof(buf));
    assert_string_equal(buf, "advisory_lock,listen");
    sl_pin_reasons_text(0, buf, sizeof(buf));
    assert_string_equal(buf, "");
}

/* Arbitrary bytes (and SQL-ish fragments glued at random) never read outside the text and always
 * end; run under ASan by `make asan`. */
static void test_random_input_is_safe(void **state)
{
    (void)state;
    static const char *const bits[] = {"SET ", "search_path", " = ", "'", "\"", "$$", "$a$", "--", "/*", "*/",
                                       ";", "E'\\", "(", "pg_advisory_lock", " TO ", ",", "RESET ", "ALL",
                                       "LISTEN ", "U&'", "$1", "-", "1e+", "DECLARE c CURSOR WITH HOLD FOR"};
    unsigned seed = 12345;
    char buf[200];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0;
        while (n < sizeof(buf) - 40) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 16) & 0x7fff;
            if (r % 3 == 0) {
                buf[n++] = (char)(r >> 2);
            } else {
                const char *b = bits[r % (sizeof(bits) / sizeof(bits[0]))];
                size_t l = strlen(b);
                memcpy(buf + n, b, l);
                n += l;
            }
            if (r % 17 == 0) break;
        }
        /* an exact-size copy so that ASan sees a read past the end */
        char *text = test_malloc(n ? n : 1);
        memcpy(text, buf, n);
        sl_stmt_iter it;
        sl_stmt_info info;
        sl_stmt_iter_init(&it, text, n);
        int guard = 0;
        while (sl_stmt_next(&it, &info) && guard < 1000) guard++;
        assert_true(guard < 1000);
        sl_stmt_classify_one(text, n, &info);
        check_shortcut(text, n);
        test_free(text);
    }
}

/* Fragments glued at random, mostly harmless ones, so that the shortcut says "plain" often: each
 * time it must agree with the full classifier (statement count, highest $n, nothing classified). */
static void test_shortcut_random(void **state)
{
    (void)state;
    static const char *const bits[] = {"SELECT ", "a", " ", "$1", "$12", "'x'", "'y''z'", "\"Q\"", "\"\"\"\"", "1e-",
                                       "1e", ".5", "-", "--c\n", "/* c */", "/*", "*/", ";", "e", "x'1'", "b'", "E",
                                       "'", "\"", "\n", "$", "1", "(", ")", "tem", "p", "pg", "_", "set", "config",
                                       "se", "t", "\t", "u", "&", "=", "WITH ", "BEGIN", "\x80", "\xa0", "a$1", "0x"};
    unsigned seed = 4242;
    char buf[120];
    int plain = 0;
    for (int iter = 0; iter < 50000; iter++) {
        size_t n = 0;
        while (n < sizeof(buf) - 16) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 16) & 0x7fff;
            const char *b = bits[r % (sizeof(bits) / sizeof(bits[0]))];
            size_t l = strlen(b);
            memcpy(buf + n, b, l);
            n += l;
            if (r % 13 == 0) break;
        }
        char *text = test_malloc(n ? n : 1);
        memcpy(text, buf, n);
        int maxp;
        if (sl_stmt_plain_count(text, n, &maxp) >= 0) plain++;
        check_shortcut(text, n);
        test_free(text);
    }
    assert_true(plain > 1000); /* the comparison above was not vacuous */
}

/* The per-thread table of plain texts: the same statement with other numbers in it is answered
 * from it; anything else that differs is not. */
static void test_shape_cache(void **state)
{
    (void)state;
    uint64_t h0, m0, h1, m1;
    static const char *const same[] = {
        "SELECT abalance FROM pgbench_accounts WHERE aid = 4711;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 100000000;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 0;",
    };
    int maxp;
    sl_stmt_shape_stats(&h0, &m0);
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        assert_int_equal(sl_stmt_plain_count(same[i], strlen(same[i]), &maxp), 1);
        assert_int_equal(maxp, 0);
    }
    sl_stmt_shape_stats(&h1, &m1);
    assert_int_equal(m1 - m0, 1); /* the first one is scanned and remembered */
    assert_int_equal(h1 - h0, 3);
    /* same first 16 bytes (same slot), different in something other than a number: scanned again,
     * and the answer is the text's own */
    static const struct {
        const char *sql;
        int count;
    } other[] = {
        {"SELECT abalance FROM pgbench_accounts WHERE aid = 4711; SET x = 1", -1},
        {"SELECT abalance FROM pgbench_accounts WHERE aid = 4711; SELECT 2", 2},
        {"SELECT abalance FROM pgbench_accounts WHERE aid = 47;11", 2},
        {"SELECT abalance FROM pgbench_accounts WHERE aid = 47 11;", 1},
        {"SELECT abalance FROM pgbench_accounts WHERE aid = x4711;", 1},
        {"SELECT abalance FROM pgbench_accounts WHERE aid = '4711;", -1},
        {"SELECT abalance FROM pgbench_accounts WHERE aid = $1;", 1},
        {"SELECT abalance FROM pgbench_accounts WHERE aid = 4711", 1},
        {"SELECT abalance FROM pgbench_accounts WHERE aid = 4711;;", 1},
        {"SELECT abalance FROM pgbench_accounts WHERE aid = 4711 -- ;\n; LISTEN x", -1},
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        /* remember the pgbench text again, then ask about the other one */
        sl_stmt_plain_count(same[0], strlen(same[0]), &maxp);
        sl_stmt_shape_stats(&h0, &m0);
        int n = sl_stmt_plain_count(other[i].sql, strlen(other[i].sql), &maxp);
        sl_stmt_shape_stats(&h1, &m1);
        if (n != other[i].count) fail_msg("%s: %d statements, want %d", other[i].sql, n, other[i].count);
        if (h1 != h0) fail_msg("%s: answered from the remembered text", other[i].sql);
        check_shortcut(other[i].sql, strlen(other[i].sql));
    }
    /* a minus sign before a number may come and go after a blank, '(', ',' or '=' (pgbench's
     * "+ -2837") */
    const char *up1 = "UPDATE pgbench_accounts SET abalance = abalance + 2837 WHERE aid = 5;";
    const char *up2 = "UPDATE pgbench_accounts SET abalance = abalance + -12 WHERE aid = 77;";
    const char *ins1 = "INSERT INTO pgbench_history (tid, bid) VALUES (-3, 4);";
    const char *ins2 = "INSERT INTO pgbench_history (tid, bid) VALUES (3, -4);";
    assert_int_equal(sl_stmt_plain_count(up1, strlen(up1), &maxp), 1);
    assert_int_equal(sl_stmt_plain_count(ins1, strlen(ins1), &maxp), 1);
    sl_stmt_shape_stats(&h0, &m0);
    assert_int_equal(sl_stmt_plain_count(up2, strlen(up2), &maxp), 1);
    assert_int_equal(sl_stmt_plain_count(up1, strlen(up1), &maxp), 1);
    assert_int_equal(sl_stmt_plain_count(ins2, strlen(ins2), &maxp), 1);
    sl_stmt_shape_stats(&h1, &m1);
    assert_int_equal(h1 - h0, 3);
    /* ... but not where the scan would see it: after a word ("set-5" starts with SET, "set5" does
     * not) or after another '-' (a comment) */
    static const struct {
        const char *seen, *asked;
        int count;
    } signs[] = {
        {"set5 = 1;", "set-5 = 1;", -1},
        {"SELECT 1 --5 ; SET x", "SELECT 1 -5 ; SET x", -1},
        {"SELECT 1 -5 ; SELECT 2", "SELECT 1 --5 ; SELECT 2", 1},
        {"SELECT a FROM b WHERE 1e5 = 1", "SELECT a FROM b WHERE 1e-5 = 1", 1},
    };
    for (size_t i = 0; i < sizeof(signs) / sizeof(signs[0]); i++) {
        assert_true(sl_stmt_plain_count(signs[i].seen, strlen(signs[i].seen), &maxp) >= 0);
        sl_stmt_shape_stats(&h0, &m0);
        int n = sl_stmt_plain_count(signs[i].asked, strlen(signs[i].asked), &maxp);
        sl_stmt_shape_stats(&h1, &m1);
        if (n != signs[i].count) fail_msg("%s: %d statements, want %d", signs[i].asked, n, signs[i].count);
        if (h1 != h0) fail_msg("%s: answered from %s", signs[i].asked, signs[i].seen);
        check_shortcut(signs[i].asked, strlen(signs[i].asked));
    }
    /* a text with a $n is not remembered: its highest $n is its own */
    const char *p1 = "SELECT abalance FROM pgbench_accounts WHERE aid = $1 AND 1 = 1";
    const char *p9 = "SELECT abalance FROM pgbench_accounts WHERE aid = $9 AND 1 = 1";
    assert_int_equal(sl_stmt_plain_count(p1, strlen(p1), &maxp), 1);
    assert_int_equal(maxp, 1);
    assert_int_equal(sl_stmt_plain_count(p9, strlen(p9), &maxp), 1);
    assert_int_equal(maxp, 9);
    /* a Query's text ends at its NUL: what follows is not part of the shape */
    static const char q1[] = "SELECT abalance FROM t WHERE a = 5\0SET x = 1";
    static const char q2[] = "SELECT abalance FROM t WHERE a = 6\0LISTEN yy";
    assert_int_equal(sl_stmt_plain_count(q1, sizeof(q1), &maxp), 1);
    assert_int_equal(sl_stmt_plain_count(q2, sizeof(q2), &maxp), 1);
}

/* Texts and the same texts with their numbers changed, at random: every answer, from the table or
 * not, is the pass's (check_shortcut), and the pass's agrees with the full classifier. */
static void test_shape_cache_random(void **state)
{
    (void)state;
    /* mostly fragments that leave a text plain, so that it is remembered; now and then one that
     * does not (a $n, an unterminated quote or comment, a word the scan stops at) */
    static const char *const bits[] = {"SELECT ", "a", " ", "1", "42", "007", "'x'", "'7''8'", "\"Q1\"", "1e-",
                                       "1e", ".5", "-", "--c\n", "/* 3 */", ";", "e", "x'1'", "\n", "(", ")",
                                       "tem", "p", "pg", "_", "t", "u", "=", "BEGIN", "\x80", "a1", "0x", "1_000",
                                       "12.5", "+", "9", "a9b", "-3", " -", "(-", ",", "=-", "e-"};
    static const char *const risky[] = {"$1", "$", "'", "\"", "/*", "*/", "&", "set", "config", "temp", "pg_",
                                        "E'", "U&"};
    unsigned seed = 777;
    char buf[200], var[320];
    uint64_t h0, m0, h1, m1;
    sl_stmt_shape_stats(&h0, &m0);
    for (int iter = 0; iter < 30000; iter++) {
        size_t n = 0;
        while (n < 120) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 16) & 0x7fff;
            const char *b = r % 16 ? bits[(r >> 4) % (sizeof(bits) / sizeof(bits[0]))]
                                   : risky[(r >> 4) % (sizeof(risky) / sizeof(risky[0]))];
            size_t l = strlen(b);
            memcpy(buf + n, b, l);
            n += l;
            if (r % 11 == 0 && n >= 8) break;
        }
        check_shortcut(buf, n);
        for (int v = 0; v < 4; v++) {
            /* the same text with every run of digits replaced by 1 to 6 others, a minus sign before
             * one added or dropped now and then, or (v == 3) with one byte changed */
            size_t k = 0;
            for (size_t i = 0; i < n && k < sizeof(var) - 8;) {
                seed = seed * 1103515245u + 12345u;
                unsigned r = (seed >> 16) & 0x7fff;
                if (v < 3 && buf[i] == '-' && i + 1 < n && buf[i + 1] >= '0' && buf[i + 1] <= '9' && r % 2) {
                    i++; /* a minus sign dropped */
                } else if (v < 3 && buf[i] >= '0' && buf[i] <= '9') {
                    if (r % 5 == 0) var[k++] = '-'; /* a minus sign added */
                    while (i < n && buf[i] >= '0' && buf[i] <= '9') i++;
                    for (unsigned d = 0; d <= r % 6; d++) var[k++] = (char)('0' + (r >> (d + 3)) % 10);
                } else {
                    var[k++] = buf[i++];
                }
            }
            if (v == 3 && k) {
                seed = seed * 1103515245u + 12345u;
                var[(seed >> 16) % k] = "0; a$'-\"9e"[(seed >> 8) % 10];
            }
            char *text = test_malloc(k);
            memcpy(text, var, k);
            check_shortcut(text, k);
            test_free(text);
        }
    }
    sl_stmt_shape_stats(&h1, &m1);
    assert_true(h1 - h0 > 10000); /* the table answered often: the comparison was not vacuous */
    assert_true(m1 - m0 > 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pins),
        cmocka_unit_test(test_set_reset),
        cmocka_unit_test(test_multi_statement),
        cmocka_unit_test(test_shortcut),
        cmocka_unit_test(test_advisory_recheck),
        cmocka_unit_test(test_listen_tokens),
        cmocka_unit_test(test_params_counted),
        cmocka_unit_test(test_reason_text),
        cmocka_unit_test(test_random_input_is_safe),
        cmocka_unit_test(test_shortcut_random),
        cmocka_unit_test(test_shape_cache),
        cmocka_unit_test(test_shape_cache_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
