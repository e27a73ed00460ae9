/* stats.h - counters of a pool (or a server's not-yet-flushed share of them) and the latency
 * histograms behind SHOW STATS and /metrics. A server collects into its own sl_pool_stats without
 * locking; the share is added to the pool under its lock when the server is released and on ticks. */
#ifndef SL_STATS_H
#define SL_STATS_H

#include <stdbool.h>
#include <stdint.h>

/* Upper bounds in microseconds (100 us .. 30 s); one more bucket for +Inf. */
#define SL_HIST_NBOUNDS 17
#define SL_HIST_BUCKETS (SL_HIST_NBOUNDS + 1)
extern const int64_t sl_hist_bounds_us[SL_HIST_NBOUNDS];

typedef struct sl_hist {
    uint64_t count[SL_HIST_BUCKETS]; /* per bucket, not cumulative */
    uint64_t sum_us;
    uint32_t touched;                /* buckets that may be non-zero: merging visits only these */
} sl_hist;

/* SQLSTATE classes counted separately; the last slot counts every other class. */
#define SL_ERROR_CLASSES(X) \
    X("08") X("22") X("23") X("25") X("28") X("40") X("42") X("53") X("54") X("55") X("57") X("58") X("XX") X("P0")
#define SL_COUNT_ONE(c) +1
#define SL_NERRCLASS (0 SL_ERROR_CLASSES(SL_COUNT_ONE) + 1)
extern const char *const sl_error_class_names[SL_NERRCLASS]; /* last is "other" */
int sl_error_class_index(const char *sqlstate);

typedef struct sl_pool_stats {
    /* counted by every transaction */
    uint64_t xact_count, query_count;
    uint64_t bytes_in;       /* received from clients */
    uint64_t bytes_out;      /* sent to clients */
    uint64_t xact_time_us, query_time_us, wait_time_us;
    /* counted now and then: whoever adds to a field from here on sets `rare` (server shares only),
     * so that draining a share skips them when nothing changed */
    bool rare;
    uint64_t server_connects, server_login_failures, client_logins;
    uint64_t errors[SL_NERRCLASS];
    uint64_t client_parses, binds;               /* named Parse / Bind of a named statement from clients */
    uint64_t prepares, prepare_hits, prepare_evictions;
    sl_hist h_xact, h_query, h_wait;
} sl_pool_stats;

/* Count in the rare group of a server's share: also sets `rare`, which draining relies on. */
#define SL_STATS_RARE_INC(st, field) ((st)->field++, (st)->rare = true)

/* The bounds again with INT64_MAX after them, and where the search for a value's bucket starts by
 * its bit length (64 - clz(us | 1)): the first bound at or above the smallest value of that length.
 * The bounds at least double from one to the next, so a value's bucket is that one or the next:
 * one table load and one comparison instead of a walk from 100 us up (three times a transaction). */
extern const int64_t sl_hist_bounds_sentinel[SL_HIST_NBOUNDS + 1];
extern const uint8_t sl_hist_start[65];

static inline void sl_hist_add(sl_hist *h, int64_t us)
{
    if (us < 0) us = 0;
    int i = sl_hist_start[64 - __builtin_clzll((uint64_t)us | 1u)];
    i += us > sl_hist_bounds_sentinel[i];
    h->count[i]++;
    h->sum_us += (uint64_t)us;
    h->touched |= 1u << i;
}
/* dst += src, then src = 0 */
void sl_stats_drain(sl_pool_stats *dst, sl_pool_stats *src);

#endif
