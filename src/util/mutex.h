/* mutex.h - a small mutex for the locks taken on every transaction (a route's pool lock). Taking
 * and giving back a free one is one atomic instruction each, inline; glibc's pthread_mutex_lock and
 * unlock cost ~30 instructions each through the PLT and their type checks, twice per transaction.
 * A taken one is spun on briefly, then slept on with a futex (Drepper's three-state mutex:
 * 0 free, 1 taken, 2 taken and someone may sleep on it). Not recursive, no condition variables;
 * ThreadSanitizer sees the acquire/release atomics, so it checks what the lock protects. */
#ifndef SL_MUTEX_H
#define SL_MUTEX_H

#include <stdbool.h>

typedef struct sl_mutex {
    int v;
} sl_mutex;

#define SL_MUTEX_INIT {0}

void sl_mutex_lock_slow(sl_mutex *m);
void sl_mutex_wake(sl_mutex *m);

static inline void sl_mutex_init(sl_mutex *m) { __atomic_store_n(&m->v, 0, __ATOMIC_RELAXED); }

static inline void sl_mutex_lock(sl_mutex *m)
{
    int free_ = 0;
    if (__builtin_expect(__atomic_compare_exchange_n(&m->v, &free_, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED), 1))
        return;
    sl_mutex_lock_slow(m);
}

static inline void sl_mutex_unlock(sl_mutex *m)
{
    if (__builtin_expect(__atomic_exchange_n(&m->v, 0, __ATOMIC_RELEASE) == 2, 0)) sl_mutex_wake(m);
}

#endif
