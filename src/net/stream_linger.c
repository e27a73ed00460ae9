/* stream_linger.c - a lingering close: a connection closed with last words for its peer (a FATAL
 * error) first sends them, then half-closes (TLS: close_notify first) and reads and drops what the
 * peer still sends until it closes too, or for a bounded time and number of bytes. A socket closed
 * with unread input is reset by the kernel, and a peer that is reset may lose the bytes it was sent
 * last (the error it needs to see), getting "connection reset" instead. */
#include <stdlib.h>

#include "net/stream.h"
#include "net/worker.h"

typedef struct sl_stream_linger {
    uv_timer_t timer;        /* the deadline */
    sl_stream *s;
    sl_stream_done_cb done;  /* the owner's, once the stream is closed */
    uint32_t budget;         /* bytes still to drop before giving up */
    bool draining;           /* the output is sent and ended: only reading is left */
} sl_stream_linger;

static void linger_freed(uv_handle_t *h) { free(h->data); }

/* The end of the lingering: close for good (the descriptor goes once libuv lets go of it). */
static void finish(sl_stream *s)
{
    sl_stream_linger *l = s->linger;
    sl_stream_done_cb done = l->done;
    s->linger = NULL;
    uv_timer_stop(&l->timer);
    uv_close((uv_handle_t *)&l->timer, linger_freed);
    sl_stream_close(s, done);
}

static void on_deadline(uv_timer_t *t)
{
    sl_stream_linger *l = t->data;
    finish(l->s);
}

static void end_output(sl_stream *s)
{
    if (s->tr->end_output)
        s->tr->end_output(s);
    else
        s->tr->shutdown(s); /* a transport that cannot half-close: a reset is possible after all */
}

/* Send what is left, then end the output; then drop what comes. Runs at the start and at each poll
 * event until the stream is closed. */
static void step(sl_stream *s)
{
    sl_stream_linger *l = s->linger;
    if (!l->draining) {
        sl_io_status st = sl_stream_flush(s, NULL);
        if (st == SL_IO_AGAIN) {
            sl_stream_set_poll(s, UV_WRITABLE);
            return;
        }
        if (st != SL_IO_OK) {
            finish(s);
            return;
        }
        end_output(s);
        l->draining = true;
    }
    uint8_t sink[4096];
    for (;;) {
        size_t n = 0;
        sl_tr_result r = s->tr->read(s, sink, sizeof(sink), &n);
        if (r == SL_TR_OK) {
            if (n >= l->budget) break;
            l->budget -= (uint32_t)n;
            continue;
        }
        if (r == SL_TR_WANT_READ || r == SL_TR_WANT_WRITE) {
            sl_stream_set_poll(s, r == SL_TR_WANT_READ ? UV_READABLE : UV_WRITABLE);
            return;
        }
        break; /* the peer closed too (or the connection failed): nothing to wait for */
    }
    finish(s);
}

static void on_event(sl_stream *s, int events)
{
    (void)events;
    if (s->linger) step(s);
}

void sl_stream_close_lingering(sl_stream *s, sl_stream_done_cb done)
{
    sl_stream_linger *l = NULL;
    if (s->poll_open && s->fd >= 0 && !s->frozen && !s->handed) l = calloc(1, sizeof(*l));
    if (!l) {
        /* nothing to linger on (never attached, or taken over), or no memory: the last words go
         * out best-effort */
        if (s->fd >= 0 && !s->frozen && !s->handed) {
            (void)sl_stream_flush(s, NULL);
            s->tr->shutdown(s);
        }
        sl_stream_close(s, done);
        return;
    }
    l->s = s;
    l->done = done;
    l->budget = SL_STREAM_LINGER_BYTES;
    uv_timer_init(&s->w->loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, on_deadline, SL_STREAM_LINGER_MS, 0);
    s->linger = l;
    s->on_event = on_event;
    s->keeping = false;
    sl_stream_free_buf(s); /* what it sent and no one read: dropped with what still comes */
    step(s);
}
