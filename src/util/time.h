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
/* The cached clock of worker threads: one clock_gettime per turn of the event loop rather than one
 * per socket event (a turn hands out several events at once under load). The loop marks it stale
 * before it polls and after the events it got (net/worker.c); the first reader after that reads the
 * clock, and the events of the same turn share the reading, taken when the first of them was
 * handled (PgBouncer's cached time works the same way). sl_tl_now: 0 on threads that never cache
 * (every read is the real clock), SL_NOW_STALE when out of date, else the time. sl_now_refresh
 * sets it at once (timer callbacks, which run before the loop's first mark of its turn). */
#define SL_NOW_STALE 1
extern __thread int64_t sl_tl_now;
int64_t sl_now_fill(void);
static inline void sl_now_refresh(void) { sl_tl_now = sl_now_us(); }
static inline int64_t sl_now_fast(void)
{
    int64_t t = sl_tl_now;
    return __builtin_expect(t > SL_NOW_STALE, 1) ? t : sl_now_fill();
}
/* Worker threads: the cached clock is out of date (the loop is about to wait, or handled a turn). */
static inline void sl_now_mark_stale(void) { sl_tl_now = SL_NOW_STALE; }
#endif
