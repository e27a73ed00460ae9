/* test_prepare.c - the prepared-statement registry, client name maps and server LRU caches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/prepare.h"

static sl_stmt *intern_text(const char *q)
{
    uint8_t body[256];
    size_t n = strlen(q) + 1;
    memcpy(body, q, n);
    body[n] = 0; /* no parameter types */
    body[n + 1] = 0;
    return sl_stmt_intern(body, (uint32_t)(n + 2));
}

static void test_same_text_is_one_statement_with_its_own_name(void **state)
{
    (void)state;
    size_t before = sl_stmt_registry_count();
    sl_stmt *a = intern_text("SELECT 1");
    sl_stmt *b = intern_text("SELECT 1");
    sl_stmt *c = intern_text("SELECT 2");
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_string_not_equal(a->name, c->name);
    assert_int_equal(strncmp(a->name, "SL_", 3), 0);
    assert_int_equal(sl_stmt_registry_count(), before + 2);
    sl_stmt_unref(a);
    sl_stmt_unref(b);
    sl_stmt_unref(c);
    assert_int_equal(sl_stmt_registry_count(), before);
}

static void test_client_map_put_get_replace_delete(void **state)
{
    (void)state;
    sl_stmt_map m = {0};
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        char q[32];
        snprintf(q, sizeof(q), "SELECT %d", i);
        assert_true(sl_stmt_map_put(&m, name, intern_text(q)));
    }
    assert_int_equal(m.n, 100);
    sl_stmt *s42 = sl_stmt_map_get(&m, "s42");
    assert_non_null(s42);
    assert_string_equal((const char *)s42->body, "SELECT 42");
    assert_true(sl_stmt_map_put(&m, "s42", intern_text("SELECT 'other'")));
    assert_string_equal((const char *)sl_stmt_map_get(&m, "s42")->body, "SELECT 'other'");
    assert_true(sl_stmt_map_del(&m, "s42"));
    assert_null(sl_stmt_map_get(&m, "s42"));
    assert_false(sl_stmt_map_del(&m, "s42"));
    assert_non_null(sl_stmt_map_get(&m, "s99"));
    sl_stmt_map_clear(&m);
    assert_int_equal(m.n, 0);
    assert_null(sl_stmt_map_get(&m, "s1"));
}

static void test_map_restore_gives_back_names_not_used_again(void **state)
{
    (void)state;
    size_t before = sl_stmt_registry_count();
    sl_stmt_map now = {0}, old = {0};
    assert_true(sl_stmt_map_put(&old, "a", intern_text("SELECT 'a'")));
    assert_true(sl_stmt_map_put(&old, "b", intern_text("SELECT 'old b'")));
    assert_true(sl_stmt_map_put(&old, "gone", intern_text("SELECT 'gone'")));
    assert_true(sl_stmt_map_del(&old, "gone"));
    assert_true(sl_stmt_map_put(&now, "b", intern_text("SELECT 'new b'")));
    sl_stmt_map_restore(&now, &old);
    assert_int_equal(now.n, 2);
    assert_string_equal((const char *)sl_stmt_map_get(&now, "a")->body, "SELECT 'a'");
    assert_string_equal((const char *)sl_stmt_map_get(&now, "b")->body, "SELECT 'new b'");
    assert_null(sl_stmt_map_get(&now, "gone"));
    assert_int_equal(old.n, 0);
    assert_null(old.e);
    sl_stmt_map_clear(&now);
    assert_int_equal(sl_stmt_registry_count(), before);
}

static void test_server_cache_evicts_least_recently_used(void **state)
{
    (void)state;
    sl_stmt_cache c;
    sl_stmt_cache_init(&c);
    sl_stmt *a = intern_text("A"), *b = intern_text("B"), *d = intern_text("D");
    assert_true(sl_stmt_cache_add(&c, a));
    assert_true(sl_stmt_cache_add(&c, b));
    assert_true(sl_stmt_cache_add(&c, d));
    assert_ptr_equal(sl_stmt_cache_lru(&c), a);
    assert_true(sl_stmt_cache_touch(&c, a)); /* a is now the most recently used */
    assert_ptr_equal(sl_stmt_cache_lru(&c), b);
    sl_stmt_cache_remove(&c, b);
    assert_false(sl_stmt_cache_touch(&c, b));
    assert_ptr_equal(sl_stmt_cache_lru(&c), d);
    assert_int_equal(c.n, 2);
    sl_stmt_cache_clear(&c);
    assert_int_equal(c.n, 0);
    assert_null(sl_stmt_cache_lru(&c));
    sl_stmt_unref(a);
    sl_stmt_unref(b);
    sl_stmt_unref(d);
}

static void test_cache_holds_many_statements(void **state)
{
    (void)state;
    sl_stmt_cache c;
    sl_stmt_cache_init(&c);
    sl_stmt *s[500];
    char q[32];
    for (int i = 0; i < 500; i++) {
        snprintf(q, sizeof(q), "SELECT %d", i);
        s[i] = intern_text(q);
        assert_true(sl_stmt_cache_add(&c, s[i]));
    }
    for (int i = 0; i < 500; i++) assert_true(sl_stmt_cache_touch(&c, s[i]));
    assert_ptr_equal(sl_stmt_cache_lru(&c), s[0]);
    sl_stmt_cache_clear(&c);
    for (int i = 0; i < 500; i++) sl_stmt_unref(s[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_text_is_one_statement_with_its_own_name),
        cmocka_unit_test(test_client_map_put_get_replace_delete),
        cmocka_unit_test(test_map_restore_gives_back_names_not_used_again),
        cmocka_unit_test(test_server_cache_evicts_least_recently_used),
        cmocka_unit_test(test_cache_holds_many_statements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
