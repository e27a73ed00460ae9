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
 * directly; the semantics (errno, return value) are those of recv/sendmsg. On x86-64 Linux the
 * system call instruction is inline (glibc's syscall() shuffles all six argument registers and
 * returns through a call frame, ~11 instructions a call); elsewhere syscall() does it. */
#if defined(__x86_64__) && defined(__linux__)
static inline long sl_plain_syscall4(long nr, long a1, long a2, long a3, long flags)
{
    long ret;
    register long a4 __asm__("r10") = flags; /* recvfrom's and sendto's flags; addr and addrlen: NULL, 0 */
    register long a5 __asm__("r8") = 0;
    register long a6 __asm__("r9") = 0;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(a4), "r"(a5), "r"(a6)
                     : "rcx", "r11", "memory");
    if (__builtin_expect((unsigned long)ret > -4096ul, 0)) { /* -errno */
        errno = (int)-ret;
        return -1;
    }
    return ret;
}
#define SL_PLAIN_RECV(fd, buf, len) sl_plain_syscall4(SYS_recvfrom, (fd), (long)(buf), (long)(len), 0)
#define SL_PLAIN_SENDMSG(fd, mh, flags) sl_plain_syscall4(SYS_sendmsg, (fd), (long)(mh), (long)(flags), 0)
#define SL_PLAIN_SEND(fd, buf, len, flags) sl_plain_syscall4(SYS_sendto, (fd), (long)(buf), (long)(len), (flags))
#else
#define SL_PLAIN_RECV(fd, buf, len) syscall(SYS_recvfrom, (fd), (buf), (len), 0, NULL, NULL)
#define SL_PLAIN_SENDMSG(fd, mh, flags) syscall(SYS_sendmsg, (fd), (mh), (flags))
#define SL_PLAIN_SEND(fd, buf, len, flags) syscall(SYS_sendto, (fd), (buf), (len), (flags), NULL, 0)
#endif

static inline sl_tr_result sl_plain_read(sl_stream *s, void *buf, size_t len, size_t *n)
{
    for (;;) {
        ssize_t r = SL_PLAIN_RECV(s->fd, buf, len);
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

/* What a send()/sendmsg() that returned r means: SL_TR_OK (*n bytes went), SL_TR_WANT_WRITE or
 * SL_TR_ERROR (the code in s->err); -1: interrupted by a signal, call again. */
static inline int sl_plain_sent(sl_stream *s, ssize_t r, size_t *n)
{
    if (r >= 0) {
        *n = (size_t)r;
        return SL_TR_OK;
    }
    if (errno == EINTR) return -1;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return SL_TR_WANT_WRITE;
    s->err = errno;
    return SL_TR_ERROR;
}

/* One buffer: send(), without the message header writev needs (what a forwarded answer usually is). */
static inline sl_tr_result sl_plain_write(sl_stream *s, const void *buf, size_t len, size_t *n)
{
    int res;
    while ((res = sl_plain_sent(s, SL_PLAIN_SEND(s->fd, buf, len, MSG_NOSIGNAL), n)) < 0) continue;
    return (sl_tr_result)res;
}

static inline sl_tr_result sl_plain_writev(sl_stream *s, const struct iovec *iov, int iovcnt, size_t *n)
{
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    int res;
    while ((res = sl_plain_sent(s, SL_PLAIN_SENDMSG(s->fd, &mh, MSG_NOSIGNAL), n)) < 0) continue;
    return (sl_tr_result)res;
}

#endif
