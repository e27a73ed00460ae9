/* mutex.c - the contended half of sl_mutex (mutex.h): a short spin, then sleeping on a futex. */
#include "util/mutex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Critical sections under these locks are a few hundred instructions: a holder on another CPU is
 * usually done within this many polls, which is cheaper than a futex sleep and wake. */
#define SPIN_POLLS 100

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void sl_mutex_lock_slow(sl_mutex *m)
{
    for (int i = 0; i < SPIN_POLLS; i++) {
        cpu_relax();
        int free_ = 0;
        if (__atomic_load_n(&m->v, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&m->v, &free_, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
    }
    /* mark it "someone may sleep" and sleep while it stays taken; whoever gets it this way keeps
     * the mark (2), so its unlock wakes the next sleeper */
    while (__atomic_exchange_n(&m->v, 2, __ATOMIC_ACQUIRE) != 0)
        syscall(SYS_futex, &m->v, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
}

void sl_mutex_wake(sl_mutex *m) { syscall(SYS_futex, &m->v, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0); }
