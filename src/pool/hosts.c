/* hosts.c - one record per checked host (host:port): what its last health check found, the WAL
 * positions it had as a primary, and the condition variable its checker thread waits on. Records
 * live as long as the process, so a route's backend may point to one without counting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool/health.h"
#include "util/time.h"

static pthread_mutex_t hosts_lock = PTHREAD_MUTEX_INITIALIZER;
static sl_host *hosts_head, *hosts_tail;

static const char *const host_state_names[] = {"unchecked", "up", "down", "check_failed"};

const char *sl_host_state_name(int s)
{
    return s >= SL_HOST_UNCHECKED && s <= SL_HOST_CHECK_FAILED ? host_state_names[s] : "unknown";
}

static bool same_host(const sl_host *h, const char *host, int port)
{
    if (h->port != port) return false;
    if (!h->host || !host) return !h->host && !host;
    return !strcmp(h->host, host);
}

sl_host *sl_host_get(const char *host, int port)
{
    if (host && !*host) host = NULL;
    pthread_mutex_lock(&hosts_lock);
    sl_host *h = hosts_head;
    while (h && !same_host(h, host, port)) h = h->next;
    if (!h && (h = calloc(1, sizeof(*h)))) {
        h->port = port;
        if (host && !(h->host = strdup(host))) {
            free(h);
            h = NULL;
        } else {
            pthread_mutex_init(&h->lock, NULL);
            pthread_condattr_t ca;
            pthread_condattr_init(&ca);
            pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
            pthread_cond_init(&h->wake, &ca);
            pthread_condattr_destroy(&ca);
            /* published last: readers walk the list without the lock */
            if (hosts_tail) __atomic_store_n(&hosts_tail->next, h, __ATOMIC_RELEASE);
            else __atomic_store_n(&hosts_head, h, __ATOMIC_RELEASE);
            hosts_tail = h;
        }
    }
    pthread_mutex_unlock(&hosts_lock);
    return h;
}

sl_host *sl_hosts_first(void) { return __atomic_load_n(&hosts_head, __ATOMIC_ACQUIRE); }

void sl_host_addr_str(const sl_host *h, char *out, size_t len)
{
    if (!h->host || h->host[0] == '/') snprintf(out, len, "unix:%d", h->port);
    else if (strchr(h->host, ':')) snprintf(out, len, "[%s]:%d", h->host, h->port);
    else snprintf(out, len, "%s:%d", h->host, h->port);
}

/* A primary's WAL position at the start of a check; samples only when it moved (an idle primary
 * keeps one), so the ring spans the time the positions took to change. */
static bool add_sample_locked(sl_host *h, int64_t at, uint64_t lsn)
{
    if (h->nsamples) {
        int last = (h->sample_head + h->nsamples - 1) % SL_LSN_SAMPLES;
        if (h->sample_lsn[last] == lsn) {
            /* the position has not moved: the newest sample's time says "still there at" */
            return false;
        }
        if (lsn < h->sample_lsn[last]) h->nsamples = 0, h->sample_head = 0; /* a new timeline or host */
    }
    int at_i;
    if (h->nsamples < SL_LSN_SAMPLES) {
        at_i = (h->sample_head + h->nsamples) % SL_LSN_SAMPLES;
        h->nsamples++;
    } else {
        at_i = h->sample_head;
        h->sample_head = (h->sample_head + 1) % SL_LSN_SAMPLES;
    }
    h->sample_at[at_i] = at;
    h->sample_lsn[at_i] = lsn;
    return true;
}

bool sl_host_store(sl_host *h, const sl_check_result *res)
{
    pthread_mutex_lock(&h->lock);
    bool changed = h->state != res->state;
    if (changed) h->state_since = res->finished;
    h->state = res->state;
    h->checked_at = res->started;
    h->finished_at = res->finished;
    h->checks++;
    snprintf(h->error, sizeof(h->error), "%s", res->state == SL_HOST_UP ? "" : res->error);
    if (res->state != SL_HOST_UP) {
        h->failures++;
        pthread_mutex_unlock(&h->lock);
        return changed;
    }
    if (!h->role_known || h->in_recovery != res->in_recovery) {
        h->role_gen++;
        changed = true;
        if (h->role_known && res->in_recovery) h->nsamples = 0; /* no longer a primary */
    }
    if (h->timeline != res->timeline) changed = true;
    h->role_known = true;
    h->in_recovery = res->in_recovery;
    h->timeline = res->timeline;
    if (h->lsn != res->lsn) changed = true; /* lag and read-your-writes follow positions */
    h->lsn = res->lsn;
    h->receive_lsn = res->receive_lsn;
    h->replay_age_s = res->replay_age_s;
    h->replay_paused = res->replay_paused;
    if (!res->in_recovery) add_sample_locked(h, res->started, res->lsn);
    pthread_mutex_unlock(&h->lock);
    return changed;
}

void sl_host_request_check(sl_host *h)
{
    if (!h) return;
    pthread_mutex_lock(&h->lock);
    h->check_now = true;
    pthread_cond_broadcast(&h->wake);
    pthread_mutex_unlock(&h->lock);
}

void sl_host_wake_all(void)
{
    for (sl_host *h = sl_hosts_first(); h; h = __atomic_load_n(&h->next, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&h->lock);
        pthread_cond_broadcast(&h->wake);
        pthread_mutex_unlock(&h->lock);
    }
}

void sl_host_wait(sl_host *h, int64_t deadline, const bool *stop)
{
    pthread_mutex_lock(&h->lock);
    while (!h->check_now && !__atomic_load_n(stop, __ATOMIC_ACQUIRE)) {
        int64_t now = sl_now_us();
        if (now >= deadline) break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t wait = deadline - now;
        ts.tv_sec += (time_t)(wait / 1000000);
        ts.tv_nsec += (long)(wait % 1000000) * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->wake, &h->lock, &ts);
    }
    h->check_now = false;
    pthread_mutex_unlock(&h->lock);
}
