/* test_intern.c - the shared string table behind session parameters and user/database names. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/intern.h"

static void test_equal_strings_are_one_copy(void **state)
{
    (void)state;
    unsigned long before = sl_intern_count();
    char buf[16];
    snprintf(buf, sizeof(buf), "%s", "UTC");
    const char *a = sl_intern("UTC");
    const char *b = sl_intern(buf);
    const char *c = sl_intern("Europe/Berlin");
    assert_non_null(a);
    assert_ptr_equal(a, b);                       /* equal values compare by pointer */
    assert_ptr_not_equal(a, buf);                 /* a copy, not the caller's buffer */
    assert_ptr_not_equal(a, c);
    assert_string_equal(a, "UTC");
    assert_int_equal(sl_intern_count(), before + 2);
    sl_intern_release(a);
    assert_int_equal(sl_intern_count(), before + 2); /* b still holds it */
    sl_intern_release(b);
    sl_intern_release(c);
    assert_int_equal(sl_intern_count(), before);
}

static void test_ref_keeps_it_alive_and_null_is_ignored(void **state)
{
    (void)state;
    unsigned long before = sl_intern_count();
    assert_null(sl_intern(NULL));
    assert_null(sl_intern_ref(NULL));
    sl_intern_release(NULL);
    const char *a = sl_intern("ISO, MDY");
    const char *r = sl_intern_ref(a);
    assert_ptr_equal(a, r);
    sl_intern_release(a);
    assert_string_equal(r, "ISO, MDY");
    assert_int_equal(sl_intern_count(), before + 1);
    sl_intern_release(r);
    assert_int_equal(sl_intern_count(), before);
}

static void test_many_strings_survive_table_growth(void **state)
{
    (void)state;
    enum { N = 5000 };
    static const char *held[N];
    unsigned long before = sl_intern_count();
    char buf[32];
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof(buf), "app-%d", i);
        held[i] = sl_intern(buf);
        assert_non_null(held[i]);
    }
    assert_int_equal(sl_intern_count(), before + N);
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof(buf), "app-%d", i);
        const char *again = sl_intern(buf);
        assert_ptr_equal(again, held[i]);
        sl_intern_release(again);
    }
    for (int i = 0; i < N; i += 2) sl_intern_release(held[i]); /* drop half, in a scattered order */
    assert_int_equal(sl_intern_count(), before + N / 2);
    for (int i = 1; i < N; i += 2) {
        snprintf(buf, sizeof(buf), "app-%d", i);
        assert_string_equal(held[i], buf);
        sl_intern_release(held[i]);
    }
    assert_int_equal(sl_intern_count(), before);
}

/* Threads take and drop references to the same few values, so counts keep reaching zero while
 * other threads look the value up: every lookup must get a live copy, and nothing may be left. */
static void *churn(void *arg)
{
    static const char *const vals[] = {"UTC", "UTF8", "ISO, MDY", "on"};
    uintptr_t seed = (uintptr_t)arg;
    for (int i = 0; i < 20000; i++) {
        const char *v = vals[(seed + (uintptr_t)i) % 4];
        const char *a = sl_intern(v);
        if (!a || strcmp(a, v) != 0) return (void *)1;
        const char *b = sl_intern_ref(a);
        sl_intern_release(a);
        if (strcmp(b, v) != 0) return (void *)1;
        sl_intern_release(b);
    }
    return NULL;
}

static void test_concurrent_lookups_and_releases(void **state)
{
    (void)state;
    unsigned long before = sl_intern_count();
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++) assert_int_equal(pthread_create(&t[i], NULL, churn, (void *)i), 0);
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        pthread_join(t[i], &r);
        assert_null(r);
    }
    assert_int_equal(sl_intern_count(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_strings_are_one_copy),
        cmocka_unit_test(test_ref_keeps_it_alive_and_null_is_ignored),
        cmocka_unit_test(test_many_strings_survive_table_growth),
        cmocka_unit_test(test_concurrent_lookups_and_releases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
