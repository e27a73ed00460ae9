/* test_mutex.c - sl_mutex (util/mutex.h), the pool lock: mutual exclusion when threads fight over
 * it (the spin and futex paths), and what a holder wrote is seen by the next one. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/mutex.h"

#define THREADS 4
#define ROUNDS 100000

static sl_mutex lock = SL_MUTEX_INIT;
static uint64_t counter;     /* only under lock: a plain read-modify-write loses updates without it */
static int inside;           /* threads inside the critical section: never more than one */
static int overlaps;

static void *fight(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        sl_mutex_lock(&lock);
        if (__atomic_add_fetch(&inside, 1, __ATOMIC_RELAXED) != 1) __atomic_add_fetch(&overlaps, 1, __ATOMIC_RELAXED);
        uint64_t v = counter;
        if (i % 64 == 0) sched_yield(); /* a holder that gets descheduled: the others spin, then sleep */
        counter = v + 1;
        __atomic_sub_fetch(&inside, 1, __ATOMIC_RELAXED);
        sl_mutex_unlock(&lock);
    }
    return NULL;
}

static void test_threads_fighting_over_the_lock_never_overlap_and_lose_no_update(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) assert_int_equal(pthread_create(&t[i], NULL, fight, NULL), 0);
    for (int i = 0; i < THREADS; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(overlaps, 0);
    assert_int_equal(counter, (uint64_t)THREADS * ROUNDS);
    assert_int_equal(__atomic_load_n(&lock.v, __ATOMIC_RELAXED), 0); /* free again, no sleeper mark left */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_fighting_over_the_lock_never_overlap_and_lose_no_update),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
