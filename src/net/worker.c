/* worker.c - worker threads: each runs one libuv loop; other threads reach it through its mailbox. */
#include "net/worker.h"

#include <stdlib.h>
#include <string.h>

#include "core/conn.h"
#include "core/pooler.h"
#include "util/log.h"
#include "util/time.h"

sl_worker *sl_workers;
int sl_nworkers;
static __thread sl_worker *t_self;
__thread int64_t sl_tl_now;

sl_worker *sl_worker_self(void) { return t_self; }

static void drain_mailbox(uv_async_t *a)
{
    sl_worker *w = a->data;
    sl_now_refresh();
    pthread_mutex_lock(&w->mbox_lock);
    sl_msg *m = w->mbox_head;
    w->mbox_head = w->mbox_tail = NULL;
    pthread_mutex_unlock(&w->mbox_lock);
    while (m) {
        sl_msg *next = m->next;
        sl_pooler_handle_msg(w, m);
        free(m);
        m = next;
    }
}

void sl_worker_post(sl_worker *w, const sl_msg *msg)
{
    sl_msg *m = malloc(sizeof(*m));
    if (!m) {
        sl_log_error("out of memory posting a message to worker %d", w->id);
        return;
    }
    *m = *msg;
    m->next = NULL;
    pthread_mutex_lock(&w->mbox_lock);
    if (w->mbox_tail) w->mbox_tail->next = m;
    else w->mbox_head = m;
    w->mbox_tail = m;
    pthread_mutex_unlock(&w->mbox_lock);
    uv_async_send(&w->async);
}

void sl_worker_call(sl_worker *w, sl_worker_fn fn, void *arg)
{
    sl_msg m = {.type = SL_MSG_CALL, .fn = fn, .arg = arg};
    sl_worker_post(w, &m);
}

void sl_worker_broadcast(sl_msg_type type)
{
    for (int i = 0; i < sl_nworkers; i++) {
        sl_msg m = {.type = type};
        sl_worker_post(&sl_workers[i], &m);
    }
}

void *sl_worker_buf_get(sl_worker *w)
{
    if (w->buf_free_n) return w->buf_free[--w->buf_free_n];
    return malloc(w->buf_size);
}

void sl_worker_buf_put(sl_worker *w, void *buf)
{
    if (w->buf_free_n == w->buf_free_cap) {
        /* keep a bounded cache: enough for the busy connections, not for every idle one
         * (10,000 clients logging in at once must not leave 40 MB behind) */
        if (w->buf_free_cap >= 256) {
            free(buf);
            return;
        }
        uint32_t ncap = w->buf_free_cap ? w->buf_free_cap * 2 : 64;
        void **n = realloc(w->buf_free, ncap * sizeof(void *));
        if (!n) {
            free(buf);
            return;
        }
        w->buf_free = n;
        w->buf_free_cap = ncap;
    }
    w->buf_free[w->buf_free_n++] = buf;
}

uint32_t sl_worker_add_client(sl_worker *w, struct sl_client *c)
{
    if (w->nfree_slots == 0) {
        uint32_t ncap = w->nslots ? w->nslots * 2 : 256;
        if (ncap > (1u << 24)) return UINT32_MAX;
        struct sl_client **ns = realloc(w->slots, ncap * sizeof(*ns));
        uint32_t *nf = realloc(w->free_slots, ncap * sizeof(*nf));
        if (!ns || !nf) {
            if (ns) w->slots = ns;
            if (nf) w->free_slots = nf;
            return UINT32_MAX;
        }
        w->slots = ns;
        w->free_slots = nf;
        for (uint32_t i = ncap; i > w->nslots; i--) {
            w->slots[i - 1] = NULL;
            w->free_slots[w->nfree_slots++] = i - 1;
        }
        w->nslots = ncap;
    }
    uint32_t slot = w->free_slots[--w->nfree_slots];
    w->slots[slot] = c;
    return slot;
}

void sl_worker_remove_client(sl_worker *w, struct sl_client *c)
{
    uint32_t slot = c->slot;
    if (slot < w->nslots && w->slots[slot] == c) {
        w->slots[slot] = NULL;
        w->free_slots[w->nfree_slots++] = slot;
    }
}

struct sl_client *sl_worker_find_client(sl_worker *w, uint32_t slot, uint32_t gen)
{
    if (slot >= w->nslots || !w->slots[slot]) return NULL;
    struct sl_client *c = w->slots[slot];
    return c->gen == gen ? c : NULL;
}

static void tick_cb(uv_timer_t *t)
{
    sl_now_refresh();
    sl_pooler_tick(t->data);
}

static void *worker_main(void *arg)
{
    sl_worker *w = arg;
    t_self = w;
    sl_pooler_worker_started(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

bool sl_workers_start(int n)
{
    if (n < 1) n = 1;
    if (n > SL_MAX_WORKERS) n = SL_MAX_WORKERS;
    sl_workers = calloc((size_t)n, sizeof(sl_worker));
    if (!sl_workers) return false;
    sl_nworkers = n;
    for (int i = 0; i < n; i++) {
        sl_worker *w = &sl_workers[i];
        w->id = i;
        w->buf_size = (uint32_t)sl_pooler_buf_size();
        sl_list_init(&w->clients);
        sl_list_init(&w->servers);
        pthread_mutex_init(&w->mbox_lock, NULL);
        if (uv_loop_init(&w->loop) != 0) return false;
        w->loop.data = w;
        uv_async_init(&w->loop, &w->async, drain_mailbox);
        w->async.data = w;
        uv_timer_init(&w->loop, &w->tick);
        w->tick.data = w;
        uv_timer_start(&w->tick, tick_cb, 100, 100);
    }
    for (int i = 0; i < n; i++) {
        if (pthread_create(&sl_workers[i].thread, NULL, worker_main, &sl_workers[i]) != 0) {
            sl_log_fatal("cannot start worker thread %d", i);
            return false;
        }
    }
    return true;
}

