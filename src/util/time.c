/* time.c - the per-thread cached clock (see time.h). */
#include "util/time.h"

__thread int64_t sl_tl_now;
