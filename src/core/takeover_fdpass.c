/* takeover_fdpass.c - the takeover's transport over the console's Unix socket: blocking framed
 * messages (type, length, body) with a deadline, and descriptors passed in SCM_RIGHTS batches
 * (sendmsg/recvmsg). It stays out of src/net on purpose: the stream layer never blocks, and only a
 * takeover moves descriptors between processes. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/takeover_int.h"
#include "util/time.h"

int tk_write_all(int fd, const void *d, size_t n)
{
    const uint8_t *p = d;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int tk_deadline_wait(int fd, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = (deadline - sl_now_us()) / 1000;
        if (left <= 0) return 0;
        struct pollfd p = {.fd = fd, .events = ev};
        int rc = poll(&p, 1, left > 1000 ? 1000 : (int)left);
        if (rc > 0) return 1;
        if (rc < 0 && errno != EINTR) return -1;
    }
}

static bool read_full(int fd, void *d, size_t n, int64_t deadline, char *err, size_t errlen)
{
    uint8_t *p = d;
    while (n) {
        int w = tk_deadline_wait(fd, POLLIN, deadline);
        if (w <= 0) {
            snprintf(err, errlen, "%s", w == 0 ? "timed out waiting for the running process" : strerror(errno));
            return false;
        }
        ssize_t k = recv(fd, p, n, 0);
        if (k == 0) {
            snprintf(err, errlen, "the running process closed the connection");
            return false;
        }
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            snprintf(err, errlen, "%s", strerror(errno));
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

bool tk_read_msg(int fd, char *type, uint8_t **body, uint32_t *len, int64_t deadline, char *err, size_t errlen)
{
    uint8_t h[5];
    if (!read_full(fd, h, 5, deadline, err, errlen)) return false;
    *type = (char)h[0];
    uint32_t n = ((uint32_t)h[1] << 24) | ((uint32_t)h[2] << 16) | ((uint32_t)h[3] << 8) | h[4];
    if (n < 4 || n - 4 > TK_MAX_PAYLOAD) {
        snprintf(err, errlen, "bad message length %u from the running process", n);
        return false;
    }
    *len = n - 4;
    *body = malloc(*len + 1);
    if (!*body) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    (*body)[*len] = 0;
    if (!read_full(fd, *body, *len, deadline, err, errlen)) {
        free(*body);
        *body = NULL;
        return false;
    }
    return true;
}

bool tk_send_simple(int fd, char type, const void *body, uint32_t n)
{
    uint8_t h[5] = {(uint8_t)type, (uint8_t)((n + 4) >> 24), (uint8_t)((n + 4) >> 16), (uint8_t)((n + 4) >> 8),
                    (uint8_t)(n + 4)};
    return tk_write_all(fd, h, 5) == 0 && tk_write_all(fd, body, n) == 0;
}

bool tk_send_fds(int fd, const int *fds, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i += TK_FDS_PER_MSG) {
        size_t k = n - i < TK_FDS_PER_MSG ? n - i : TK_FDS_PER_MSG;
        char byte = '#';
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        union {
            char buf[CMSG_SPACE(sizeof(int) * TK_FDS_PER_MSG)];
            struct cmsghdr align;
        } u;
        memset(&u, 0, sizeof(u));
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                            .msg_controllen = CMSG_SPACE(sizeof(int) * k)};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * k);
        memcpy(CMSG_DATA(cm), fds + i, sizeof(int) * k);
        ssize_t rc;
        do rc = sendmsg(fd, &mh, MSG_NOSIGNAL);
        while (rc < 0 && errno == EINTR);
        if (rc != 1) {
            snprintf(err, errlen, "sending the sockets: %s", rc < 0 ? strerror(errno) : "short write");
            return false;
        }
    }
    return true;
}

bool tk_recv_fds(int fd, tk_in *in, uint32_t want, int64_t deadline, char *err, size_t errlen)
{
    const char *exit_after = getenv("PGSLUICE_TAKEOVER_TEST_EXIT_AFTER_FDS"); /* tests: die halfway */
    long die_at = exit_after && *exit_after ? strtol(exit_after, NULL, 10) : -1;
    while (in->nfds < want) {
        char byte;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        union {
            char buf[CMSG_SPACE(sizeof(int) * TK_FDS_PER_MSG)];
            struct cmsghdr align;
        } u;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
        if (tk_deadline_wait(fd, POLLIN, deadline) <= 0) {
            snprintf(err, errlen, "timed out receiving the sockets");
            return false;
        }
        ssize_t rc = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (rc < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (rc <= 0 || (mh.msg_flags & MSG_CTRUNC)) {
            snprintf(err, errlen, "receiving the sockets: %s", rc < 0 ? strerror(errno) : "connection closed");
            return false;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *got = (int *)CMSG_DATA(cm);
            for (size_t i = 0; i < k; i++) {
                if (in->nfds < want) in->fds[in->nfds++] = got[i];
                else close(got[i]);
            }
        }
        if (die_at >= 0 && in->nfds >= (uint32_t)die_at) {
            fprintf(stderr, "pgsluice: PGSLUICE_TAKEOVER_TEST_EXIT_AFTER_FDS: exiting after %u descriptors\n", in->nfds);
            _exit(3);
        }
    }
    return true;
}
