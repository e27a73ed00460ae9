/* stream.c - non-blocking socket I/O with borrowed buffers and writev-batched flushing. */
#include "net/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "net/worker.h"

void sl_stream_init(sl_stream *s, sl_stream_kind kind, int fd)
{
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    s->fd = fd;
    sl_pb_init(&s->out);
}

bool sl_stream_attach(sl_stream *s, sl_worker *w, uv_poll_cb cb, void *owner)
{
    s->w = w;
    if (uv_poll_init(&w->loop, &s->poll, s->fd) != 0) return false;
    s->poll.data = owner;
    s->poll_open = true;
    s->want = 0;
    (void)cb;
    return true;
}

void sl_stream_detach(sl_stream *s, uv_close_cb cb)
{
    if (!s->poll_open) return;
    /* no uv_poll_stop first: uv_close stops the poll itself, and each stop is an epoll_ctl(DEL) */
    s->want = 0;
    s->poll_open = false;
    uv_close((uv_handle_t *)&s->poll, cb);
}

extern void sl_poll_dispatch(uv_poll_t *h, int status, int events);

void sl_stream_set_poll(sl_stream *s, int events)
{
    if (!s->poll_open || s->want == events) return;
    s->want = events;
    if (events)
        uv_poll_start(&s->poll, events, sl_poll_dispatch);
    else
        uv_poll_stop(&s->poll);
}

static void compact(sl_stream *s)
{
    if (s->pos == 0) return;
    uint32_t n = s->end - s->pos;
    if (n) memmove(s->buf, s->buf + s->pos, n);
    s->parse -= s->pos;
    s->end = n;
    s->pos = 0;
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

void sl_stream_free_buf(sl_stream *s)
{
    if (!s->buf) return;
    if (s->cap == s->w->buf_size)
        sl_worker_buf_put(s->w, s->buf);
    else
        free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

void sl_stream_recycle_buf(sl_stream *s)
{
    if (s->buf && s->pos == s->end) {
        if (s->cap != s->w->buf_size) sl_stream_free_buf(s); /* grown for a big message: give it back */
        s->pos = s->parse = s->end = 0;
    }
}

void sl_stream_maybe_release_buf(sl_stream *s)
{
    if (s->buf && s->pos == s->end) {
        sl_stream_free_buf(s);
        s->pos = s->parse = s->end = 0;
    }
}

/* recv() and sendmsg() are pthread cancellation points: in a multi-threaded process glibc brackets
 * each call with enable/disable of asynchronous cancellation (~30 instructions a call, four calls
 * per proxied transaction). pgsluice never cancels threads, so the hot path enters the kernel
 * directly; the semantics (errno, return value) are those of recv/sendmsg. */
static inline ssize_t raw_recv(int fd, void *buf, size_t len)
{
    return syscall(SYS_recvfrom, fd, buf, len, 0, NULL, NULL);
}

static inline ssize_t raw_sendmsg(int fd, const struct msghdr *mh, int flags)
{
    return syscall(SYS_sendmsg, fd, mh, flags);
}

sl_io_status sl_stream_read(sl_stream *s)
{
    if (!s->buf && !sl_stream_make_room(s, 1, UINT32_MAX)) return SL_IO_ERROR;
    if (s->end == s->cap) compact(s);
    if (s->end == s->cap) return SL_IO_AGAIN; /* full: the parser must consume or grow first */
    ssize_t n;
    do {
        n = raw_recv(s->fd, s->buf + s->end, s->cap - s->end);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        s->end += (uint32_t)n;
        return SL_IO_OK;
    }
    if (n == 0) return SL_IO_EOF;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return SL_IO_AGAIN;
    s->err = errno;
    return SL_IO_ERROR;
}

sl_io_status sl_stream_flush(sl_stream *dst, sl_stream *src)
{
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
            if (dst->out.len) {
                if (dst->out.cap > 4096) sl_pb_free(&dst->out);
                else sl_pb_reset(&dst->out);
                dst->out_sent = 0;
            }
            return SL_IO_OK;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t r = raw_sendmsg(dst->fd, &mh, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return SL_IO_AGAIN;
            dst->err = errno;
            return SL_IO_ERROR;
        }
        size_t left = (size_t)r;
        size_t o = dst->out.len - dst->out_sent;
        if (o) {
            size_t k = left < o ? left : o;
            dst->out_sent += k;
            left -= k;
        }
        if (left) src->pos += (uint32_t)left;
    }
}

void sl_stream_trim(sl_stream *s)
{
    if (!sl_stream_out_pending(s) && s->out.data) {
        sl_pb_free(&s->out);
        s->out_sent = 0;
    }
    sl_stream_maybe_release_buf(s);
}
