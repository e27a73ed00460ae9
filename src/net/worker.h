/* worker.h - a worker thread: one libuv loop, a mailbox that other threads post to, a table that
 * names its connections by (slot, generation) for messages from other threads, free lists of I/O
 * buffers and of the small objects every login makes, the config snapshot it currently runs with,
 * and its own counters (summed when read).
 * The layer above supplies what a worker does (sl_worker_ops); net calls nothing above itself. */
#ifndef SL_WORKER_H
#define SL_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "util/list.h"

#define SL_MAX_WORKERS 64
#define SL_MAX_LISTEN 8

/* Kinds of objects a worker keeps a free list of: the upper layer's per-connection objects that every
 * login makes and frees (a client, its login state, its session tracker and that tracker's first
 * queue), each always of one size. */
typedef enum { SL_OBJ_CLIENT, SL_OBJ_LOGIN, SL_OBJ_SESSION, SL_OBJ_SESSION_QUEUE, SL_OBJ_KINDS } sl_obj_kind;
/* Objects kept per kind and worker: enough for a burst of logins, a few hundred KB at most. None
 * under AddressSanitizer, so that a use after free is still caught. */
#if defined(__SANITIZE_ADDRESS__)
#define SL_OBJ_FREE_MAX 0u
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SL_OBJ_FREE_MAX 0u
#endif
#endif
#ifndef SL_OBJ_FREE_MAX
#define SL_OBJ_FREE_MAX 128u
#endif

struct sl_worker;
struct sl_config;
typedef void (*sl_worker_fn)(struct sl_worker *w, void *arg);

/* A message between workers. `type` is the upper layer's own (sl_worker_ops.message interprets
 * it), except SL_WORKER_CALL, which the worker runs itself: fn(w, arg). */
#define SL_WORKER_CALL (-1)
typedef struct sl_msg {
    struct sl_msg *next;
    int type;
    void *obj;
    uint32_t slot, gen;
    uint32_t a, b;
    int to;
    sl_worker_fn fn;
    void *arg;
} sl_msg;

typedef struct sl_worker_ops {
    void (*started)(struct sl_worker *w);           /* on the worker's thread, before its loop runs */
    void (*message)(struct sl_worker *w, sl_msg *m); /* a posted message (not SL_WORKER_CALL) */
    void (*tick)(struct sl_worker *w);              /* every 100 ms */
} sl_worker_ops;

/* Per-worker counters: written only by the owning thread, read (relaxed) by stats readers. */
typedef struct sl_worker_stats {
    uint64_t clients_accepted;
    uint64_t events;
    uint64_t cpu_us;        /* this thread's user+system CPU time, refreshed every tick */
} sl_worker_stats;

typedef struct sl_slot {
    void *obj;
    uint32_t gen;
} sl_slot;

typedef struct sl_worker {
    int id;
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t tick;
    uv_prepare_t clock_before_poll; /* mark the cached clock stale (util/time.h) */
    uv_check_t clock_after_poll;
    const sl_worker_ops *ops;
    struct sl_config *cfg;       /* the snapshot this worker runs with (sl_worker_set_config) */

    pthread_mutex_t mbox_lock;
    sl_msg *mbox_head, *mbox_tail;

    /* listening sockets shared by all workers, each polled here (net/listener.c) */
    int nlisten;
    int listen_fds[SL_MAX_LISTEN];
    bool listen_unix[SL_MAX_LISTEN];
    uv_poll_t listen_polls[SL_MAX_LISTEN];
    bool listening;
    int64_t accept_paused_until; /* out of descriptors: listening polls stopped until then (0 = not) */
    void (*on_accept)(struct sl_worker *w, int fd, const char *addr, bool is_unix);

    /* buffers of buf_size bytes, reused */
    void **buf_free;
    uint32_t buf_free_n, buf_free_cap;
    uint32_t buf_size;

    /* freed objects kept for reuse, one list per kind (sl_obj_kind), linked through their first bytes */
    void *obj_free[SL_OBJ_KINDS];
    uint32_t obj_free_n[SL_OBJ_KINDS];

    /* connections by slot, so other threads can name one with (slot, gen) */
    sl_slot *slots;
    uint32_t nslots;
    uint32_t *free_slots;
    uint32_t nfree_slots;

    sl_list clients;    /* the upper layer's client connections on this worker */
    sl_list servers;    /* the upper layer's server connections attached to this worker */
    int nclients;       /* read by other threads (relaxed) */

    sl_worker_stats stats;
} sl_worker;

/* Owner-only counter update that other threads may read with __atomic_load_n (no lock prefix). */
#define SL_OWNER_ADD(field, n) __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)

extern sl_worker *sl_workers;
extern int sl_nworkers;

/* Start n workers running ops, each with its own reference to cfg and buffers of buf_size bytes. */
bool sl_workers_start(int n, uint32_t buf_size, const sl_worker_ops *ops, struct sl_config *cfg);
sl_worker *sl_worker_self(void);

/* Post a message (copied) to worker w; safe from any thread. */
void sl_worker_post(sl_worker *w, const sl_msg *m);
void sl_worker_call(sl_worker *w, sl_worker_fn fn, void *arg);
/* Run each(w, arg) on every worker, each on its own thread in any order; once all have run, run
 * done(home, arg) on worker `home`. Never blocks. false (nothing runs) when out of memory. */
bool sl_workers_round(sl_worker *home, sl_worker_fn each, sl_worker_fn done, void *arg);

/* The worker's config snapshot: takes over the caller's reference, drops the old one. Only on the
 * worker's own thread. */
void sl_worker_set_config(sl_worker *w, struct sl_config *cfg);

void *sl_worker_buf_get_slow(sl_worker *w);
void sl_worker_buf_put_slow(sl_worker *w, void *buf);
/* A buffer of buf_size bytes from the worker's cache (NULL: no memory), and back. Inline: a
 * client's buffer is taken and given back once a transaction. */
static inline void *sl_worker_buf_get(sl_worker *w)
{
    if (__builtin_expect(w->buf_free_n != 0, 1)) return w->buf_free[--w->buf_free_n];
    return sl_worker_buf_get_slow(w);
}
static inline void sl_worker_buf_put(sl_worker *w, void *buf)
{
    if (__builtin_expect(w->buf_free_n < w->buf_free_cap, 1)) w->buf_free[w->buf_free_n++] = buf;
    else sl_worker_buf_put_slow(w, buf);
}

/* A zeroed object of `size` bytes of this kind (NULL: no memory), from the worker's free list when it
 * has one; and back (NULL ignored), from the worker's own thread only. Every object of a kind must
 * have that kind's one size. With w NULL (an object no worker owns yet) they are malloc and free.
 * malloc + memset rather than calloc, which in glibc skips the per-thread cache; the empty asm keeps
 * gcc from folding the pair into calloc. */
static inline void *sl_worker_obj_get(sl_worker *w, sl_obj_kind k, size_t size)
{
    void *p = w ? w->obj_free[k] : NULL;
    if (p) {
        w->obj_free[k] = *(void **)p;
        w->obj_free_n[k]--;
    } else {
        p = malloc(size);
        __asm__("" : "+r"(p));
        if (!p) return NULL;
    }
    memset(p, 0, size);
    return p;
}
static inline void sl_worker_obj_put(sl_worker *w, sl_obj_kind k, void *p)
{
    if (!p) return;
#if SL_OBJ_FREE_MAX > 0
    if (w && w->obj_free_n[k] < SL_OBJ_FREE_MAX) {
        *(void **)p = w->obj_free[k];
        w->obj_free[k] = p;
        w->obj_free_n[k]++;
        return;
    }
#else
    (void)w, (void)k;
#endif
    free(p);
}

/* Name obj by a slot of this worker (UINT32_MAX when out of slots); gen tells reuses apart. */
uint32_t sl_worker_add_slot(sl_worker *w, void *obj, uint32_t gen);
void sl_worker_remove_slot(sl_worker *w, uint32_t slot, const void *obj);
void *sl_worker_find_slot(sl_worker *w, uint32_t slot, uint32_t gen);
/* Takeover (core/takeover_*.c): put obj in this very slot (a connection handed over keeps its slot, so
 * its cancel key still names it); before any sl_worker_add_slot on this worker. false if taken or
 * out of range. sl_worker_claim_slots_done rebuilds the free list once all are claimed. */
bool sl_worker_claim_slot(sl_worker *w, uint32_t slot, void *obj, uint32_t gen);
void sl_worker_claim_slots_done(sl_worker *w);
/* Whatever holds the slot now, whatever its generation (NULL if free). */
void *sl_worker_slot_obj(sl_worker *w, uint32_t slot);

#endif
