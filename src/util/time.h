/* time.h - monotonic and wall clocks in microseconds. */
#ifndef SL_TIME_H
#define SL_TIME_H
#include <stdint.h>
#include <time.h>

static inline int64_t sl_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
static inline int64_t sl_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
/* Worker threads refresh a cached clock at the start of every event callback (sl_now_refresh);
 * code on the hot path reads it instead of calling clock_gettime several times per transaction.
 * Threads that never refresh it get the real clock. */
extern __thread int64_t sl_tl_now;
static inline void sl_now_refresh(void) { sl_tl_now = sl_now_us(); }
static inline int64_t sl_now_fast(void) { return sl_tl_now ? sl_tl_now : sl_now_us(); }
#endif
