/* worker.h - a worker thread: one libuv loop, its listening sockets, its clients, a mailbox that
 * other threads post to, a free list of I/O buffers and its own counters (summed when read). */
#ifndef SL_WORKER_H
#define SL_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "util/list.h"

#define SL_MAX_WORKERS 64
#define SL_MAX_LISTEN 8

struct sl_client;
struct sl_server;

typedef enum {
    SL_MSG_HANDOFF_SERVER,   /* a server detached elsewhere, to attach here for client (slot, gen) */
    SL_MSG_DETACH_SERVER,    /* detach this idle server of ours and hand it to worker `to` */
    SL_MSG_CANCEL,           /* forward a cancel for our client (pid, key) */
    SL_MSG_WAKE_CLIENT,      /* re-examine client (slot, gen): e.g. a pool slot freed up */
    SL_MSG_CONFIG,           /* new config or state (pause/resume/shutdown): re-examine everything */
    SL_MSG_CALL,             /* run fn(w, arg) on this worker */
} sl_msg_type;

struct sl_worker;
typedef void (*sl_worker_fn)(struct sl_worker *w, void *arg);

typedef struct sl_msg {
    struct sl_msg *next;
    sl_msg_type type;
    struct sl_server *server;
    uint32_t slot, gen;
    uint32_t pid, key;
    int to;
    sl_worker_fn fn;
    void *arg;
} sl_msg;

/* Per-worker counters: written only by the owning thread, read (relaxed) by stats readers. */
typedef struct sl_worker_stats {
    uint64_t clients_accepted;
    uint64_t events;
    uint64_t cpu_us;        /* this thread's user+system CPU time, refreshed every tick */
} sl_worker_stats;

typedef struct sl_worker {
    int id;
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t tick;
    bool stopping;

    pthread_mutex_t mbox_lock;
    sl_msg *mbox_head, *mbox_tail;

    int nlisten;                 /* listening sockets shared by all workers, each polled here */
    int listen_fds[SL_MAX_LISTEN];
    bool listen_unix[SL_MAX_LISTEN];
    uv_poll_t listen_polls[SL_MAX_LISTEN];
    bool listening;
    int64_t accept_paused_until; /* out of descriptors: listening polls stopped until then (0 = not) */

    /* buffers of cfg pkt_buf bytes, reused */
    void **buf_free;
    uint32_t buf_free_n, buf_free_cap;
    uint32_t buf_size;

    /* clients by slot, so other threads can name one with (slot, gen) */
    struct sl_client **slots;
    uint32_t nslots;
    uint32_t *free_slots;
    uint32_t nfree_slots;

    sl_list clients;    /* every client of this worker */
    sl_list servers;    /* every server attached to this worker */
    int nclients;

    sl_worker_stats stats;
} sl_worker;

/* Owner-only counter update that other threads may read with __atomic_load_n (no lock prefix). */
#define SL_OWNER_ADD(field, n) __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)

extern sl_worker *sl_workers;
extern int sl_nworkers;

bool sl_workers_start(int n);
sl_worker *sl_worker_self(void);

/* Post a message (copied) to worker w; safe from any thread. */
void sl_worker_post(sl_worker *w, const sl_msg *m);
void sl_worker_call(sl_worker *w, sl_worker_fn fn, void *arg);
void sl_worker_broadcast(sl_msg_type type);

void *sl_worker_buf_get(sl_worker *w);
void sl_worker_buf_put(sl_worker *w, void *buf);

uint32_t sl_worker_add_client(sl_worker *w, struct sl_client *c);
void sl_worker_remove_client(sl_worker *w, struct sl_client *c);
struct sl_client *sl_worker_find_client(sl_worker *w, uint32_t slot, uint32_t gen);

#endif
