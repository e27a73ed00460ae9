/* stats.c - histogram buckets and counter arithmetic for pool statistics. */
#include "pool/stats.h"

#include <stddef.h>
#include <string.h>

#define BOUNDS_US                                                                                  \
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, \
        10000000, 30000000
const int64_t sl_hist_bounds_us[SL_HIST_NBOUNDS] = {BOUNDS_US};
const int64_t sl_hist_bounds_sentinel[SL_HIST_NBOUNDS + 1] = {BOUNDS_US, INT64_MAX};
/* by bit length 0..64 (see stats.h); tests/unit/test_pool.c checks it against a walk of the bounds */
const uint8_t sl_hist_start[65] = {0,  0,  0,  0,  0,  0,  0,  0,  1,  2,  3,  4,  4,  5,  6,  7,  8,
                                   9,  10, 11, 12, 13, 13, 14, 15, 16, 17, 17, 17, 17, 17, 17, 17, 17,
                                   17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17,
                                   17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17};

#define SL_CLASS_NAME(c) c,
const char *const sl_error_class_names[SL_NERRCLASS] = {SL_ERROR_CLASSES(SL_CLASS_NAME) "other"};

int sl_error_class_index(const char *sqlstate)
{
    if (!sqlstate || strlen(sqlstate) < 2) return SL_NERRCLASS - 1;
    for (int i = 0; i < SL_NERRCLASS - 1; i++)
        if (sqlstate[0] == sl_error_class_names[i][0] && sqlstate[1] == sl_error_class_names[i][1]) return i;
    return SL_NERRCLASS - 1;
}

/* Add src's counts to dst and zero src, visiting only the buckets src touched. */
static void hist_drain(sl_hist *dst, sl_hist *src)
{
    if (!src->touched) return;
    for (uint32_t t = src->touched; t; t &= t - 1) {
        int i = __builtin_ctz(t);
        dst->count[i] += src->count[i];
        src->count[i] = 0;
    }
    dst->sum_us += src->sum_us;
    dst->touched |= src->touched;
    src->sum_us = 0;
    src->touched = 0;
}

void sl_stats_drain(sl_pool_stats *dst, sl_pool_stats *src)
{
    dst->xact_count += src->xact_count;
    dst->query_count += src->query_count;
    dst->bytes_in += src->bytes_in;
    dst->bytes_out += src->bytes_out;
    dst->xact_time_us += src->xact_time_us;
    dst->query_time_us += src->query_time_us;
    dst->wait_time_us += src->wait_time_us;
    memset(src, 0, offsetof(sl_pool_stats, rare));
    hist_drain(&dst->h_xact, &src->h_xact);
    hist_drain(&dst->h_query, &src->h_query);
    hist_drain(&dst->h_wait, &src->h_wait);
    if (!src->rare) return;
    dst->server_connects += src->server_connects;
    dst->server_login_failures += src->server_login_failures;
    dst->client_logins += src->client_logins;
    for (int i = 0; i < SL_NERRCLASS; i++) dst->errors[i] += src->errors[i];
    dst->client_parses += src->client_parses;
    dst->binds += src->binds;
    dst->prepares += src->prepares;
    dst->prepare_hits += src->prepare_hits;
    dst->prepare_evictions += src->prepare_evictions;
    memset(&src->rare, 0, offsetof(sl_pool_stats, h_xact) - offsetof(sl_pool_stats, rare));
}
