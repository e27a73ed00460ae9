/* test_txn_intent.c - read_write_split's reading of transaction declarations, from a table: what is
 * declared read-only goes to a replica, anything not understood to the primary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/txn_intent.h"

#define RO SL_TXN_READ_ONLY
#define RW SL_TXN_READ_WRITE
#define BARE SL_TXN_BARE_BEGIN
#define OTHER SL_TXN_OTHER
#define COMMIT SL_TXN_COMMIT
#define ROLLBACK SL_TXN_ROLLBACK

static const struct {
    const char *sql;
    sl_txn_kind want;
} cases[] = {
    /* declared read-only */
    {"BEGIN READ ONLY", RO},
    {"begin read only;", RO},
    {"  BEGIN TRANSACTION READ ONLY ; ", RO},
    {"BEGIN WORK READ ONLY", RO},
    {"START TRANSACTION READ ONLY", RO},
    {"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY, DEFERRABLE", RO},
    {"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE", RO},
    {"BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;", RO}, /* asyncpg's readonly=True */
    {"/* app: report */ BEGIN -- comment\n READ ONLY", RO},
    {"BEGIN READ ONLY; SELECT count(*) FROM t; SELECT 'a;b'", RO},
    {"BEGIN READ ONLY; SELECT 1; COMMIT", RO},
    {"BEGIN READ ONLY; SELECT 1; COMMIT;;", RO},
    {"BEGIN; SET TRANSACTION READ ONLY", RO},
    {"BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE READ ONLY; SELECT 1", RO},
    {"SET TRANSACTION READ ONLY", RO},
    {"SET TRANSACTION READ ONLY; SELECT 1; SELECT 2", RO},
    {"BEGIN READ ONLY; SELECT $$;COMMIT;$$", RO},
    {"BEGIN READ ONLY; SELECT $tag$ ; COMMIT; INSERT $tag$", RO},
    {"BEGIN READ ONLY; SELECT E'\\'; COMMIT; INSERT'", RO},
    {"BEGIN READ ONLY; SELECT \"COMMIT\"", RO},
    /* declared read-write, or nothing declared */
    {"BEGIN READ WRITE", RW},
    {"START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE", RW},
    {"BEGIN", BARE},
    {"begin;", BARE},
    {"START TRANSACTION", BARE},
    {"BEGIN ISOLATION LEVEL SERIALIZABLE", BARE},
    {"COMMIT", COMMIT},
    {"end transaction", COMMIT},
    {"ROLLBACK", ROLLBACK},
    {"abort;", ROLLBACK},
    {"SELECT 1", OTHER},
    {"", OTHER},
    {"   ;  ", OTHER},
    {"INSERT INTO t VALUES (1)", OTHER},
    {"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", OTHER},
    /* a transaction end before the last statement: what follows may write */
    {"BEGIN READ ONLY; SELECT 1; COMMIT; INSERT INTO t VALUES (1)", OTHER},
    {"BEGIN READ ONLY; COMMIT; BEGIN; DELETE FROM t", OTHER},
    {"BEGIN READ ONLY; ROLLBACK; DELETE FROM t", OTHER},
    {"BEGIN READ ONLY; PREPARE TRANSACTION 'x'; SELECT 1", OTHER},
    {"SET TRANSACTION READ ONLY; COMMIT; INSERT INTO t VALUES (1)", OTHER},
    {"BEGIN READ ONLY; SELECT 1; COMMIT AND CHAIN", OTHER},
    /* not understood: the primary */
    {"BEGIN READ ONLY READ WRITE", OTHER},
    {"BEGIN READ", OTHER},
    {"BEGIN ISOLATION LEVEL CHAOS READ ONLY", OTHER},
    {"BEGIN; SELECT 1", OTHER},
    {"BEGIN; SET TRANSACTION READ WRITE", OTHER},
    {"SET TRANSACTION SNAPSHOT '0001'", OTHER},
    {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", OTHER},
    {"BEGIN READ ONLY; SELECT 'unterminated", OTHER},
    {"BEGIN READ ONLY /* unterminated", OTHER},
    {"COMMIT; SELECT 1", OTHER},
    {"ROLLBACK TO SAVEPOINT a", OTHER},
    {"COMMIT PREPARED 'x'", OTHER},
    {"SELECT $1", OTHER},
    {"BEGINREADONLY", OTHER},
};

static void test_classify_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sl_txn_kind got = sl_txn_classify(cases[i].sql, strlen(cases[i].sql));
        if (got != cases[i].want) fail_msg("\"%s\": got %d, want %d", cases[i].sql, got, cases[i].want);
    }
}

/* The length given is what counts (a message body is not NUL-terminated where the query ends). */
static void test_length_bounds_the_text(void **state)
{
    (void)state;
    const char *sql = "BEGIN READ ONLYxxxx";
    assert_int_equal(sl_txn_classify(sql, 15), RO);
    assert_int_equal(sl_txn_classify(sql, 10), OTHER); /* "BEGIN READ" */
    assert_int_equal(sl_txn_classify(sql, 5), BARE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_length_bounds_the_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
