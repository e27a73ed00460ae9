/* worker.c - worker threads: each runs one libuv loop; other threads reach it through its mailbox.
 * What a worker does with messages, ticks and its start is the upper layer's (sl_worker_ops). */
#include "net/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "util/log.h"
#include "util/time.h"

sl_worker *sl_workers;
int sl_nworkers;
static __thread sl_worker *t_self;

sl_worker *sl_worker_self(void) { return t_self; }

static void drain_mailbox(uv_async_t *a)
{
    sl_worker *w = a->data;
    pthread_mutex_lock(&w->mbox_lock);
    sl_msg *m = w->mbox_head;
    w->mbox_head = w->mbox_tail = NULL;
    pthread_mutex_unlock(&w->mbox_lock);
    while (m) {
        sl_msg *next = m->next;
        if (m->type == SL_WORKER_CALL) m->fn(w, m->arg);
        else w->ops->message(w, m);
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
    sl_msg m = {.type = SL_WORKER_CALL, .fn = fn, .arg = arg};
    sl_worker_post(w, &m);
}

/* ---- rounds over every worker ---- */

typedef struct round {
    sl_worker_fn each, done;
    void *arg;
    sl_worker *home;
    int left; /* atomic: workers still to run `each` */
} round_t;

static void round_finish(sl_worker *w, void *arg)
{
    round_t *r = arg;
    r->done(w, r->arg);
    free(r);
}

static void round_step(sl_worker *w, void *arg)
{
    round_t *r = arg;
    r->each(w, r->arg);
    if (__atomic_sub_fetch(&r->left, 1, __ATOMIC_ACQ_REL) == 0) sl_worker_call(r->home, round_finish, r);
}

bool sl_workers_round(sl_worker *home, sl_worker_fn each, sl_worker_fn done, void *arg)
{
    round_t *r = calloc(1, sizeof(*r));
    if (!r) return false;
    r->each = each;
    r->done = done;
    r->arg = arg;
    r->home = home;
    r->left = sl_nworkers;
    for (int i = 0; i < sl_nworkers; i++) sl_worker_call(&sl_workers[i], round_step, r);
    return true;
}

void sl_worker_set_config(sl_worker *w, sl_config *cfg)
{
    sl_config *old = w->cfg;
    w->cfg = cfg;
    if (old) sl_config_unref(old);
}

/* ---- buffers ---- */

void *sl_worker_buf_get_slow(sl_worker *w) { return malloc(w->buf_size); }

void sl_worker_buf_put_slow(sl_worker *w, void *buf)
{
    /* the cache is full: grow it, up to a bound: enough for the busy connections, not for every
     * idle one (10,000 clients logging in at once must not leave 40 MB behind) */
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
    w->buf_free[w->buf_free_n++] = buf;
}

/* ---- slots ---- */

uint32_t sl_worker_add_slot(sl_worker *w, void *obj, uint32_t gen)
{
    if (w->nfree_slots == 0) {
        uint32_t ncap = w->nslots ? w->nslots * 2 : 256;
        if (ncap > (1u << 24)) return UINT32_MAX;
        sl_slot *ns = realloc(w->slots, ncap * sizeof(*ns));
        if (ns) w->slots = ns;
        uint32_t *nf = realloc(w->free_slots, ncap * sizeof(*nf));
        if (nf) w->free_slots = nf;
        if (!ns || !nf) return UINT32_MAX;
        for (uint32_t i = ncap; i > w->nslots; i--) {
            w->slots[i - 1] = (sl_slot){0};
            w->free_slots[w->nfree_slots++] = i - 1;
        }
        w->nslots = ncap;
    }
    uint32_t slot = w->free_slots[--w->nfree_slots];
    w->slots[slot] = (sl_slot){.obj = obj, .gen = gen};
    return slot;
}

void sl_worker_remove_slot(sl_worker *w, uint32_t slot, const void *obj)
{
    if (slot < w->nslots && w->slots[slot].obj == obj) {
        w->slots[slot].obj = NULL;
        w->free_slots[w->nfree_slots++] = slot;
    }
}

bool sl_worker_claim_slot(sl_worker *w, uint32_t slot, void *obj, uint32_t gen)
{
    if (slot >= (1u << 24)) return false;
    if (slot >= w->nslots) {
        uint32_t ncap = w->nslots ? w->nslots : 256;
        while (ncap <= slot) ncap *= 2;
        sl_slot *ns = realloc(w->slots, ncap * sizeof(*ns));
        if (!ns) return false;
        w->slots = ns;
        uint32_t *nf = realloc(w->free_slots, ncap * sizeof(*nf));
        if (!nf) return false;
        w->free_slots = nf;
        for (uint32_t i = w->nslots; i < ncap; i++) w->slots[i] = (sl_slot){0};
        w->nslots = ncap;
    }
    if (w->slots[slot].obj) return false;
    w->slots[slot] = (sl_slot){.obj = obj, .gen = gen};
    return true;
}

void sl_worker_claim_slots_done(sl_worker *w)
{
    w->nfree_slots = 0;
    for (uint32_t i = w->nslots; i > 0; i--)
        if (!w->slots[i - 1].obj) w->free_slots[w->nfree_slots++] = i - 1;
}

void *sl_worker_find_slot(sl_worker *w, uint32_t slot, uint32_t gen)
{
    if (slot >= w->nslots || !w->slots[slot].obj || w->slots[slot].gen != gen) return NULL;
    return w->slots[slot].obj;
}

void *sl_worker_slot_obj(sl_worker *w, uint32_t slot) { return slot < w->nslots ? w->slots[slot].obj : NULL; }

/* ---- threads ---- */

static void tick_cb(uv_timer_t *t)
{
    sl_worker *w = t->data;
    sl_now_refresh();
    w->ops->tick(w);
}

static void clock_stale_before_poll(uv_prepare_t *h)
{
    (void)h;
    sl_now_mark_stale();
}
static void clock_stale_after_poll(uv_check_t *h)
{
    (void)h;
    sl_now_mark_stale();
}

static void *worker_main(void *arg)
{
    sl_worker *w = arg;
    t_self = w;
    char name[16]; /* shown by top -H, ps -L and /proc/PID/task/TID/comm */
    snprintf(name, sizeof(name), "sl-worker-%d", w->id);
    pthread_setname_np(pthread_self(), name);
    sl_now_refresh();
    if (w->ops->started) w->ops->started(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

bool sl_workers_start(int n, uint32_t buf_size, const sl_worker_ops *ops, sl_config *cfg)
{
    if (n < 1) n = 1;
    if (n > SL_MAX_WORKERS) n = SL_MAX_WORKERS;
    sl_workers = calloc((size_t)n, sizeof(sl_worker));
    if (!sl_workers) return false;
    sl_nworkers = n;
    for (int i = 0; i < n; i++) {
        sl_worker *w = &sl_workers[i];
        w->id = i;
        w->ops = ops;
        w->buf_size = buf_size;
        sl_config_ref(cfg);
        w->cfg = cfg;
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
        /* the cached clock lasts one turn of the loop: stale before it waits for events, and after
         * the events of the turn (the timers of the next turn, which run first, read it afresh) */
        uv_prepare_init(&w->loop, &w->clock_before_poll);
        uv_prepare_start(&w->clock_before_poll, clock_stale_before_poll);
        uv_unref((uv_handle_t *)&w->clock_before_poll);
        uv_check_init(&w->loop, &w->clock_after_poll);
        uv_check_start(&w->clock_after_poll, clock_stale_after_poll);
        uv_unref((uv_handle_t *)&w->clock_after_poll);
    }
    for (int i = 0; i < n; i++) {
        if (pthread_create(&sl_workers[i].thread, NULL, worker_main, &sl_workers[i]) != 0) {
            sl_log_fatal("cannot start worker thread %d", i);
            return false;
        }
    }
    return true;
}
