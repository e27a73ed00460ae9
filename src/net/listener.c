/* listener.c - listening sockets shared by all workers: each worker polls them (level-triggered) and
 * takes one connection per wake-up; out of descriptors, a worker pauses accepting for a second. */
#include "net/listener.h"

#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/sockutil.h"
#include "util/log.h"
#include "util/time.h"

static int listen_fds[SL_MAX_LISTEN];
static bool listen_is_unix[SL_MAX_LISTEN];
static int nlisten;
static int listeners_stopped; /* atomic: workers that stopped accepting for a shutdown */

/* unix_socket_group: its id (looked up before any socket is opened); false: no such group. */
static bool socket_group(const sl_config *cfg, gid_t *gid)
{
    char buf[4096];
    struct group gr, *found = NULL;
    if (getgrnam_r(cfg->unix_socket_group, &gr, buf, sizeof(buf), &found) != 0 || !found) {
        sl_log_fatal("unix_socket_group: no group named \"%s\"", cfg->unix_socket_group);
        return false;
    }
    *gid = found->gr_gid;
    return true;
}

/* unix_socket_group: the socket's group, so that its members may connect (with unix_socket_mode). */
static bool set_socket_group(const sl_config *cfg, gid_t gid)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/.s.PGSQL.%d", cfg->unix_socket_dir, cfg->listen_port);
    if (chown(path, (uid_t)-1, gid) != 0) {
        sl_log_fatal("unix_socket_group: cannot give %s to group %s: %s", path, cfg->unix_socket_group, strerror(errno));
        return false;
    }
    return true;
}

bool sl_listen_open(const sl_config *cfg)
{
    gid_t gid = 0;
    bool want_group = cfg->unix_socket_dir && *cfg->unix_socket_dir && cfg->unix_socket_group && *cfg->unix_socket_group;
    if (want_group && !socket_group(cfg, &gid)) return false;
    char addrs[256];
    snprintf(addrs, sizeof(addrs), "%s", cfg->listen_addr);
    char *save = NULL;
    for (char *a = strtok_r(addrs, ", \t", &save); a && nlisten < SL_MAX_LISTEN - 1; a = strtok_r(NULL, ", \t", &save)) {
        int fd = sl_sock_listen_tcp(a, cfg->listen_port, cfg->tcp_backlog > 0 ? cfg->tcp_backlog : 128, cfg->so_reuseport);
        if (fd < 0) {
            sl_log_fatal("cannot listen on %s:%d: %s", a, cfg->listen_port, strerror(errno));
            return false;
        }
        if (cfg->tcp_defer_accept > 0)
            setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &cfg->tcp_defer_accept, sizeof(int));
        sl_log_info("listening on %s:%d", a, cfg->listen_port);
        listen_is_unix[nlisten] = false;
        listen_fds[nlisten++] = fd;
    }
    if (cfg->unix_socket_dir && *cfg->unix_socket_dir) {
        int fd = sl_sock_listen_unix(cfg->unix_socket_dir, cfg->listen_port, cfg->unix_socket_mode, 128);
        if (fd < 0) {
            sl_log_fatal("cannot listen on unix socket in %s: %s", cfg->unix_socket_dir, strerror(errno));
            return false;
        }
        if (want_group && !set_socket_group(cfg, gid)) {
            close(fd);
            return false;
        }
        sl_log_info("listening on unix:%s/.s.PGSQL.%d", cfg->unix_socket_dir, cfg->listen_port);
        listen_is_unix[nlisten] = true;
        listen_fds[nlisten++] = fd;
    }
    return true;
}

/* Out of file descriptors: the pending connection stays in the backlog and the listening socket
 * stays readable, so polling it would spin. Stop for a second (the tick resumes) and say so once. */
#define ACCEPT_PAUSE_US 1000000

static void pause_accepting(sl_worker *w, int err)
{
    for (int i = 0; i < w->nlisten; i++) uv_poll_stop(&w->listen_polls[i]);
    w->accept_paused_until = sl_now_us() + ACCEPT_PAUSE_US;
    sl_log_error("accept: %s; not accepting new connections on worker %d for 1 s (raise the open files "
                 "limit, ulimit -n, or lower max_client_conn)", strerror(err), w->id);
}

static void on_accept(uv_poll_t *h, int status, int events)
{
    (void)events;
    sl_worker *w = h->loop->data;
    int idx = (int)(h - w->listen_polls);
    if (status < 0) return;
    /* One connection per wake-up: looping until accept4 fails with EAGAIN costs a system call per
     * wake-up, i.e. per login when clients connect one at a time (a connection per transaction).
     * The listening socket is polled level-triggered, so a backlog is taken one per loop turn,
     * alongside the other ready sockets. */
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = accept4(w->listen_fds[idx], (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) pause_accepting(w, errno);
        return;
    }
    char addr[64] = "unix";
    if (!w->listen_unix[idx]) sl_sock_addr_str(&ss, addr, sizeof(addr));
    sl_sock_tune(fd, w->cfg, !w->listen_unix[idx]);
    w->on_accept(w, fd, addr, w->listen_unix[idx]);
}

void sl_listen_tick(sl_worker *w, int64_t now)
{
    if (!w->accept_paused_until || now < w->accept_paused_until) return;
    w->accept_paused_until = 0;
    if (!w->listening) return; /* shutting down meanwhile */
    for (int i = 0; i < w->nlisten; i++) uv_poll_start(&w->listen_polls[i], UV_READABLE, on_accept);
}

void sl_listen_start(sl_worker *w, sl_accept_cb cb)
{
    if (w->listening) return;
    w->on_accept = cb;
    w->nlisten = nlisten;
    for (int i = 0; i < nlisten; i++) {
        w->listen_fds[i] = listen_fds[i];
        w->listen_unix[i] = listen_is_unix[i];
        uv_poll_init(&w->loop, &w->listen_polls[i], listen_fds[i]);
        uv_poll_start(&w->listen_polls[i], UV_READABLE, on_accept);
    }
    w->listening = true;
}

/* Shutting down: new TCP connections are refused instead of waiting in the backlog. The sockets stay
 * open (a closed descriptor's number could be reused while a loop still knows it). */
static void refuse_connections(bool keep_unix)
{
    for (int i = 0; i < nlisten; i++)
        if (!(keep_unix && listen_is_unix[i])) shutdown(listen_fds[i], SHUT_RDWR);
}

void sl_listen_stop(sl_worker *w, bool keep_unix)
{
    if (!w->listening) return;
    for (int i = 0; i < w->nlisten; i++)
        if (!(keep_unix && w->listen_unix[i])) uv_poll_stop(&w->listen_polls[i]);
    w->listening = false;
    if (__atomic_add_fetch(&listeners_stopped, 1, __ATOMIC_ACQ_REL) == sl_nworkers) refuse_connections(keep_unix);
}

int sl_listen_fds(int *fds, bool *is_unix, int max)
{
    int n = nlisten < max ? nlisten : max;
    for (int i = 0; i < n; i++) {
        fds[i] = listen_fds[i];
        is_unix[i] = listen_is_unix[i];
    }
    return n;
}

void sl_listen_adopt(const int *fds, const bool *is_unix, int n)
{
    nlisten = 0;
    for (int i = 0; i < n && nlisten < SL_MAX_LISTEN; i++) {
        listen_fds[nlisten] = fds[i];
        listen_is_unix[nlisten++] = is_unix[i];
    }
}

void sl_listen_freeze(sl_worker *w, bool freeze)
{
    if (!w->listening) return;
    for (int i = 0; i < w->nlisten; i++) {
        if (freeze) uv_poll_stop(&w->listen_polls[i]);
        else if (!w->accept_paused_until) uv_poll_start(&w->listen_polls[i], UV_READABLE, on_accept);
    }
}
