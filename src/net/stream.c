/* stream.c - non-blocking socket I/O through a transport, with borrowed buffers, writev-batched
 * flushing and the poll callback that hands events to the stream's owner. */
#include "net/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/transport_plain.h"
#include "net/worker.h"
#include "util/time.h"

void sl_stream_init(sl_stream *s, int fd)
{
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->tr = &sl_transport_plain;
    sl_pb_init(&s->out);
}

/* Every poll event of every socket passes here. */
static void on_poll(uv_poll_t *h, int status, int events)
{
    sl_stream *s = h->data;
    if (status < 0) {
        /* let the owner find the error; libuv has stopped the handle (POLLERR), so whatever the owner
         * asks for next starts it again (an owner still waiting for the end of file after reading
         * what came before the error would otherwise never hear of it) */
        events = UV_READABLE | UV_WRITABLE;
        s->want = 0;
    }
    SL_OWNER_ADD(s->w->stats.events, 1);
    /* a transport may hold bytes the socket will not signal again (decrypted TLS records): it
     * translates the events and keeps calling the owner while they last */
    if (s->tr->dispatch)
        s->tr->dispatch(s, events);
    else
        s->on_event(s, events);
}

bool sl_stream_attach(sl_stream *s, sl_worker *w, sl_stream_cb cb)
{
    s->w = w;
    if (uv_poll_init(&w->loop, &s->poll, s->fd) != 0) return false;
    s->poll.data = s;
    s->on_event = cb;
    s->poll_open = true;
    s->want = 0;
    return true;
}

static void release_resources(sl_stream *s)
{
    if (s->tr->release) s->tr->release(s);
    s->tr = &sl_transport_plain;
    s->tr_state = NULL;
    s->tr_extra = 0;
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    sl_stream_free_buf(s);
    sl_pb_free(&s->out);
}

static void on_closed(uv_handle_t *h)
{
    sl_stream *s = h->data;
    if (s->close_fd) release_resources(s);
    if (s->on_done) s->on_done(s);
}

void sl_stream_detach(sl_stream *s, sl_stream_done_cb done)
{
    if (!s->poll_open) return;
    /* no uv_poll_stop first: uv_close stops the poll itself, and each stop is an epoll_ctl(DEL) */
    s->want = 0;
    s->poll_open = false;
    s->close_fd = false;
    s->on_done = done;
    uv_close((uv_handle_t *)&s->poll, on_closed);
}

void sl_stream_close(sl_stream *s, sl_stream_done_cb done)
{
    if (!s->poll_open) {
        release_resources(s);
        if (done) done(s);
        return;
    }
    /* Nothing reads or writes through a closing stream: its buffers go back now, not in libuv's
     * closing phase, which comes only after every event of the loop's turn. 10,000 clients that
     * leave at once would otherwise each hold the buffer their Terminate was read into until then,
     * and glibc keeps the 40 MB that adds up to. (The transport's state stays until the end: a
     * TLS transport's dispatch may still be on the stack, and it looks at its state after the
     * owner's callback returns.) */
    sl_stream_free_buf(s);
    sl_pb_free(&s->out);
    sl_stream_detach(s, done);
    s->close_fd = true;
}

static inline void apply_poll(sl_stream *s, int events)
{
    if (!s->poll_open || s->want == events) return;
    s->want = events;
    if (events)
        uv_poll_start(&s->poll, events, on_poll);
    else
        uv_poll_stop(&s->poll);
}

/* A transport that computes its own poll events (TLS); out of line so that the plain path pays
 * one bit test and no call frame. */
__attribute__((noinline, cold)) static void set_poll_hooked(sl_stream *s, int events)
{
    apply_poll(s, s->tr->poll_events(s, events & ~SL_TR_POLL_HOOK));
}

void sl_stream_set_poll_change(sl_stream *s, int events)
{
    if (__builtin_expect(events & SL_TR_POLL_HOOK, 0)) {
        set_poll_hooked(s, events);
        return;
    }
    apply_poll(s, events);
}

void sl_stream_freeze(sl_stream *s)
{
    s->frozen = true;
    if (s->poll_open && s->want) uv_poll_stop(&s->poll);
}

void sl_stream_thaw(sl_stream *s)
{
    s->frozen = false;
    s->handed = false;
    if (s->poll_open && s->want) uv_poll_start(&s->poll, s->want, on_poll);
}

static void compact(sl_stream *s)
{
    uint32_t from = s->keeping && s->keep < s->pos ? s->keep : s->pos;
    if (from == 0) return;
    uint32_t n = s->end - from;
    if (n) memmove(s->buf, s->buf + from, n);
    s->parse -= from;
    s->pos -= from;
    if (s->keeping) s->keep -= from;
    s->end = n;
}

bool sl_stream_rewind_to_keep(sl_stream *s)
{
    if (!s->keeping || !s->buf) return false;
    s->pos = s->parse = s->keep;
    s->msg_left = 0;
    s->keeping = false;
    return true;
}

bool sl_stream_make_room(sl_stream *s, uint32_t need, uint32_t max)
{
    if (!s->buf) {
        uint32_t bs = s->w->buf_size;
        if (need <= bs) {
            s->buf = sl_worker_buf_get(s->w);
            if (!s->buf) return false;
            s->cap = bs;
            s->pos = s->parse = s->end = 0;
            return true;
        }
    }
    if (s->buf && s->cap - s->end >= need) return true;
    if (s->buf) compact(s);
    if (s->buf && s->cap - s->end >= need) return true;
    uint64_t want = (uint64_t)s->end + need;
    if (want > max) return false;
    uint32_t ncap = s->cap ? s->cap : s->w->buf_size;
    while (ncap < want) ncap = ncap > (1u << 30) ? (uint32_t)want : ncap * 2;
    uint8_t *nb = malloc(ncap);
    if (!nb) return false;
    if (s->buf) {
        memcpy(nb, s->buf, s->end);
        sl_stream_free_buf(s);
    }
    s->buf = nb;
    s->cap = ncap;
    return true;
}

static inline void free_buf(sl_stream *s)
{
    if (!s->buf) return;
    if (s->w && s->cap == s->w->buf_size)
        sl_worker_buf_put(s->w, s->buf);
    else
        free(s->buf);
    s->buf = NULL;
    s->cap = 0;
    s->keeping = false;
}

void sl_stream_free_buf(sl_stream *s) { free_buf(s); }

void sl_stream_recycle_buf(sl_stream *s)
{
    if (s->buf && s->pos == s->end && !s->keeping) {
        /* grown for a big message, or for bulk reads that are over: give it back */
        if (s->cap != s->w->buf_size && !(s->bulk && s->cap == SL_STREAM_BULK_BUF)) free_buf(s);
        s->pos = s->parse = s->end = 0;
    }
}

static inline void maybe_release_buf(sl_stream *s)
{
    if (s->buf && s->pos == s->end && !s->keeping) {
        if (!s->bulk) free_buf(s); /* in bulk mode the next read comes at once */
        s->pos = s->parse = s->end = 0;
    }
}

void sl_stream_maybe_release_buf(sl_stream *s) { maybe_release_buf(s); }

/* Move the unconsumed bytes to a SL_STREAM_BULK_BUF buffer; false (and nothing changed) when there
 * is no memory for it: the stream goes on with the buffer it has. */
static bool grow_for_bulk(sl_stream *s)
{
    uint8_t *nb = malloc(SL_STREAM_BULK_BUF);
    if (!nb) return false;
    uint32_t n = 0;
    if (s->buf) {
        n = s->end - s->pos;
        if (n) memcpy(nb, s->buf + s->pos, n);
        s->parse -= s->pos;
        free_buf(s);
    } else {
        s->parse = 0;
    }
    s->buf = nb;
    s->cap = SL_STREAM_BULK_BUF;
    s->pos = 0;
    s->end = n;
    return true;
}

static sl_io_status io_status(sl_tr_result r)
{
    switch (r) {
    case SL_TR_OK: return SL_IO_OK;
    case SL_TR_WANT_READ:
    case SL_TR_WANT_WRITE: return SL_IO_AGAIN;
    case SL_TR_EOF: return SL_IO_EOF;
    case SL_TR_ERROR: break;
    }
    return SL_IO_ERROR;
}

sl_io_status sl_stream_read(sl_stream *s)
{
    /* (not while keeping: the bytes kept before pos would not move with the rest) */
    if (__builtin_expect(s->bulk, 0) && s->cap < SL_STREAM_BULK_BUF && !s->keeping) grow_for_bulk(s);
    if (!s->buf) { /* the usual start of a client's request: a buffer from the worker's cache */
        s->buf = sl_worker_buf_get(s->w);
        if (!s->buf) return SL_IO_ERROR;
        s->cap = s->w->buf_size;
        s->pos = s->parse = s->end = 0;
    }
    if (s->end == s->cap) compact(s);
    if (s->end == s->cap && s->keeping) { /* what is kept fills it: give up keeping, not reading */
        s->keeping = false;
        compact(s);
    }
    if (s->end == s->cap) return SL_IO_AGAIN; /* full: the parser must consume or grow first */
    size_t n = 0, room = s->cap - s->end;
    sl_tr_result r = s->tr == &sl_transport_plain ? sl_plain_read(s, s->buf + s->end, room, &n)
                                                   : s->tr->read(s, s->buf + s->end, room, &n);
    /* a read that fills all the room there was leaves more in the socket, as a large result or
     * COPY does; one that does not drained it */
    s->bulk = r == SL_TR_OK && n == room;
    if (r == SL_TR_OK) s->end += (uint32_t)n;
    return io_status(r);
}

/* The out queue went out whole: start it over (its memory given back if it grew). */
static inline void out_all_sent(sl_stream *dst)
{
    if (dst->out.len) {
        if (dst->out.cap > 4096) sl_pb_free(&dst->out);
        else sl_pb_reset(&dst->out);
        dst->out_sent = 0;
    }
}

sl_io_status sl_stream_flush(sl_stream *dst, sl_stream *src)
{
    /* the usual case: nothing of pgsluice's own queued, the peer's bytes go out in one send() */
    if (dst->out_sent == dst->out.len && src && src->parse > src->pos && dst->tr == &sl_transport_plain) {
        size_t len = src->parse - src->pos, sent = 0;
        sl_tr_result r = sl_plain_write(dst, src->buf + src->pos, len, &sent);
        if (r != SL_TR_OK) return io_status(r);
        src->pos += (uint32_t)sent;
        if (sent == len) {
            out_all_sent(dst);
            return SL_IO_OK;
        }
    }
    for (;;) {
        struct iovec iov[2];
        int n = 0;
        if (dst->out_sent < dst->out.len) {
            iov[n].iov_base = dst->out.data + dst->out_sent;
            iov[n].iov_len = dst->out.len - dst->out_sent;
            n++;
        }
        if (src && src->parse > src->pos) {
            iov[n].iov_base = src->buf + src->pos;
            iov[n].iov_len = src->parse - src->pos;
            n++;
        }
        if (n == 0) {
            out_all_sent(dst);
            return SL_IO_OK;
        }
        size_t left = 0, total = iov[0].iov_len + (n > 1 ? iov[1].iov_len : 0);
        sl_tr_result r = dst->tr == &sl_transport_plain ? sl_plain_writev(dst, iov, n, &left)
                                                         : dst->tr->writev(dst, iov, n, &left);
        if (r != SL_TR_OK) return io_status(r);
        if (left == total) { /* all of it went (the usual case): done without another look */
            if (src && src->parse > src->pos) src->pos = src->parse;
            out_all_sent(dst);
            return SL_IO_OK;
        }
        size_t o = dst->out.len - dst->out_sent;
        if (o) {
            size_t k = left < o ? left : o;
            dst->out_sent += k;
            left -= k;
        }
        if (left) src->pos += (uint32_t)left;
    }
}

void sl_stream_shutdown(sl_stream *s)
{
    if (s->fd >= 0) s->tr->shutdown(s);
}

bool sl_stream_idle_and_open(const sl_stream *s)
{
    if (s->tr->pending && s->tr->pending(s) > 0) return false;
    char b;
    ssize_t n = recv(s->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

int sl_stream_connect_result(const sl_stream *s)
{
    int err = 0;
    socklen_t l = sizeof(err);
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0) err = errno;
    return err;
}

void sl_stream_refuse_encryption(sl_stream *s)
{
    sl_pb_u8(&s->out, 'N');
}

void sl_stream_trim(sl_stream *s)
{
    s->bulk = false;
    if (!sl_stream_out_pending(s) && s->out.data) {
        sl_pb_free(&s->out);
        s->out_sent = 0;
    }
    maybe_release_buf(s);
}
