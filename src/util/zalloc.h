/* zalloc.h - sl_zalloc: a zeroed allocation for objects made once per connection or login.
 *
 * glibc's calloc skips the per-thread cache (tcache) and takes the arena's slow path every time;
 * malloc of a small size is served from that cache. For the objects every login makes and frees
 * (the client, its login state, its session tracker) malloc + memset costs a fraction of calloc.
 * The empty asm hides where the pointer came from: gcc would otherwise fold the pair back into
 * calloc. */
#ifndef SL_UTIL_ZALLOC_H
#define SL_UTIL_ZALLOC_H

#include <stdlib.h>
#include <string.h>

static inline void *sl_zalloc(size_t size)
{
    void *p = malloc(size);
    __asm__("" : "+r"(p));
    if (p) memset(p, 0, size);
    return p;
}

#endif
