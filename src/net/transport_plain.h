/* transport_plain.h - the plain-socket transport's read and write, inline: the stream calls them
 * directly when a stream is plain (the common case, on the path of every message) and through the
 * transport table otherwise. */
#ifndef SL_TRANSPORT_PLAIN_H
#define SL_TRANSPORT_PLAIN_H

#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "net/stream.h"

/* recv() and sendmsg() are pthread cancellation points: in a multi-threaded process glibc brackets
 * each call with enable/disable of asynchronous cancellation (~30 instructions a call, four calls
 * per proxied transaction). pgsluice never cancels threads, so the hot path enters the kernel
 * directly; the semantics (errno, return value) are those of recv/sendmsg. */
static inline sl_tr_result sl_plain_read(sl_stream *s, void *buf, size_t len, size_t *n)
{
    for (;;) {
        ssize_t r = syscall(SYS_recvfrom, s->fd, buf, len, 0, NULL, NULL);
        if (r > 0) {
            *n = (size_t)r;
            return SL_TR_OK;
        }
        if (r == 0) return SL_TR_EOF;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return SL_TR_WANT_READ;
        s->err = errno;
        return SL_TR_ERROR;
    }
}

static inline sl_tr_result sl_plain_writev(sl_stream *s, const struct iovec *iov, int iovcnt, size_t *n)
{
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    for (;;) {
        ssize_t r = syscall(SYS_sendmsg, s->fd, &mh, MSG_NOSIGNAL);
        if (r >= 0) {
            *n = (size_t)r;
            return SL_TR_OK;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return SL_TR_WANT_WRITE;
        s->err = errno;
        return SL_TR_ERROR;
    }
}

#endif
