/* sockutil.c - socket set-up helpers (no event loop here). */
#include "net/sockutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int sl_sock_connect(const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (sa->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int sl_sock_listen_tcp(const char *addr, int port, int backlog, bool reuseport)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST}, *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    const char *a = addr && *addr && strcmp(addr, "*") != 0 ? addr : NULL;
    if (getaddrinfo(a, portstr, &hints, &res) != 0 || !res) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        freeaddrinfo(res);
        errno = e;
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

int sl_sock_listen_unix(const char *dir, int port, int mode, int backlog)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.%d", dir, port);
    unlink(sa.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    chmod(sa.sun_path, (mode_t)mode);
    return fd;
}

void sl_sock_tune(int fd, const sl_config *cfg, bool is_tcp)
{
    if (!is_tcp) return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cfg->tcp_keepalive) {
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        if (cfg->tcp_keepidle > 0) setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &cfg->tcp_keepidle, sizeof(int));
        if (cfg->tcp_keepintvl > 0) setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &cfg->tcp_keepintvl, sizeof(int));
        if (cfg->tcp_keepcnt > 0) setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cfg->tcp_keepcnt, sizeof(int));
    }
    if (cfg->tcp_user_timeout > 0)
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &cfg->tcp_user_timeout, sizeof(int));
    if (cfg->tcp_socket_buffer > 0) {
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cfg->tcp_socket_buffer, sizeof(int));
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &cfg->tcp_socket_buffer, sizeof(int));
    }
}

/* Decimal digits of v (< 100000) at p; returns the end. */
static char *put_dec(char *p, unsigned v)
{
    char tmp[8];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

void sl_sock_addr_str(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET && len >= sizeof("255.255.255.255:65535")) {
        /* every accepted TCP client passes here: by hand, not inet_ntop + snprintf */
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        const uint8_t *b = (const uint8_t *)&a->sin_addr;
        char *p = out;
        for (int i = 0; i < 4; i++) {
            p = put_dec(p, b[i]);
            *p++ = i < 3 ? '.' : ':';
        }
        p = put_dec(p, ntohs(a->sin_port));
        *p = '\0';
        return;
    }
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
    } else {
        snprintf(out, len, "unix");
        return;
    }
    snprintf(out, len, "%s:%d", host, port);
}

bool sl_sock_peer_addr(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
    *len = sizeof(*ss);
    return fd >= 0 && getpeername(fd, (struct sockaddr *)ss, len) == 0;
}
