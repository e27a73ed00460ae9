/* time.c - the per-thread cached clock (see time.h). */
#include "util/time.h"

__thread int64_t sl_tl_now;

int64_t sl_now_fill(void)
{
    int64_t t = sl_now_us();
    if (sl_tl_now == SL_NOW_STALE) sl_tl_now = t; /* a caching thread: kept for the rest of the turn */
    return t;
}
