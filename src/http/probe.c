/* probe.c - backend reachability for /health and /ready: a non-blocking connect with a timeout,
 * closed at once (no startup packet), and a small cache so frequent scrapes do not hammer it. */
#include "http/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/time.h"

#define CACHE_SLOTS 64

typedef struct probe_entry {
    char key[300];
    int64_t at;
    bool ok;
    char err[200];
} probe_entry;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static probe_entry cache[CACHE_SLOTS];
static unsigned cache_next;

/* 0 on success, else an errno value. */
static int connect_timeout(const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    int rc = 0;
    if (connect(fd, sa, len) < 0) {
        rc = errno;
        if (rc == EINPROGRESS || rc == EAGAIN) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int n = poll(&pfd, 1, SL_PROBE_TIMEOUT_MS);
            socklen_t sl = sizeof(rc);
            if (n == 0) rc = ETIMEDOUT;
            else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &sl) < 0) rc = errno;
        }
    }
    close(fd);
    return rc;
}

static bool probe_unix(const char *dir, int port, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.%d", dir, port);
    int rc = connect_timeout((struct sockaddr *)&sa, sizeof(sa));
    if (rc) snprintf(err, errlen, "cannot connect to %s: %s", sa.sun_path, strerror(rc));
    return rc == 0;
}

static bool probe_tcp(const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0 || !res) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
        return false;
    }
    int rc = ENOENT;
    for (struct addrinfo *a = res; a && rc; a = a->ai_next) rc = connect_timeout(a->ai_addr, a->ai_addrlen);
    freeaddrinfo(res);
    if (rc) snprintf(err, errlen, "cannot connect to %s:%d: %s", host, port, strerror(rc));
    return rc == 0;
}

static probe_entry *cache_find(const char *key)
{
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].at && !strcmp(cache[i].key, key)) return &cache[i];
    return NULL;
}

bool sl_probe_backend(const char *host, int port, char *err, size_t errlen)
{
    bool is_unix = !host || !*host || host[0] == '/';
    char key[300];
    snprintf(key, sizeof(key), "%s:%d", is_unix ? (host && *host ? host : "/var/run/postgresql") : host, port);
    int64_t now = sl_now_us();
    pthread_mutex_lock(&cache_lock);
    probe_entry *e = cache_find(key);
    if (!e || now - e->at > SL_PROBE_CACHE_US) {
        if (!e) {
            e = &cache[cache_next++ % CACHE_SLOTS];
            snprintf(e->key, sizeof(e->key), "%s", key);
        }
        e->err[0] = '\0';
        e->ok = is_unix ? probe_unix(host && *host ? host : "/var/run/postgresql", port, e->err, sizeof(e->err))
                        : probe_tcp(host, port, e->err, sizeof(e->err));
        e->at = sl_now_us();
    }
    bool ok = e->ok;
    snprintf(err, errlen, "%s", e->err);
    pthread_mutex_unlock(&cache_lock);
    return ok;
}
