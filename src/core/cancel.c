/* cancel.c - CancelRequest: a client's cancel key names its worker and slot; the cancel goes to the
 * server that client is linked to at that moment, on a new connection, and to no other. */
#include "core/cancel.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/random.h"

#include "core/console.h"
#include "core/dispatch.h"
#include "core/server.h"
#include "net/sockutil.h"
#include "proto/pkt.h"
#include "util/log.h"
#include "util/time.h"

/* A connection to the server's postmaster carrying one CancelRequest. It lives until the postmaster
 * closes it (by then the backend has been signalled), and its server is held out of the pool
 * meanwhile (PgBouncer does the same, bounded by cancel_wait_timeout). */
typedef struct sl_cancel_conn {
    sl_stream s;        /* first */
    sl_server *target;  /* NULL once the server is gone */
    sl_list node;       /* on target->cancels */
    int64_t started;
} sl_cancel_conn;

static void cancel_free(sl_stream *st) { free(st); }

/* ---- [peers]: a cancel key that names another process ---- */

static void peer_sent(sl_stream *st, int events)
{
    if (!(events & (UV_WRITABLE | UV_READABLE | UV_DISCONNECT))) return;
    sl_io_status rc = sl_stream_connect_result(st) == 0 ? sl_stream_flush(st, NULL) : SL_IO_ERROR;
    if (rc == SL_IO_AGAIN) return;
    if (rc != SL_IO_OK) sl_log_warn("could not forward a cancel request to a peer");
    sl_stream_close(st, cancel_free);
}

static int peer_connect(const sl_peer_def *p)
{
    if (p->host[0] == '/') {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.%d", p->host, p->port);
        return sl_sock_connect((struct sockaddr *)&sa, sizeof(sa));
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *res = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", p->port);
    if (getaddrinfo(p->host, port, &hints, &res) != 0 || !res) return -1; /* no name lookups on a worker */
    int fd = sl_sock_connect(res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return fd;
}

/* With peer_id set, a cancel key carries (hops << 30 | peer id << 16 | 16 random bits). true: the key
 * names another process, and the cancel went there (one hop less) or was dropped. */
static bool to_peer(sl_worker *w, uint32_t pid, uint32_t key)
{
    const sl_config *cfg = w->cfg;
    if (cfg->peer_id <= 0) return false;
    int id = (int)((key >> 16) & SL_PEER_ID_MAX), hops = (int)(key >> 30);
    if (id == 0 || id == cfg->peer_id) return false;
    const sl_peer_def *p = sl_config_find_peer(cfg, id);
    if (!p || hops == 0) {
        sl_log_warn("cancel request for peer %d dropped: %s", id, p ? "forwarded too many times" : "no such peer in [peers]");
        return true;
    }
    int fd = peer_connect(p);
    sl_stream *st = fd >= 0 ? calloc(1, sizeof(*st)) : NULL;
    if (!st) {
        if (fd >= 0) close(fd);
        sl_log_warn("could not forward a cancel request to peer %d (%s)", id, p->host);
        return true;
    }
    sl_stream_init(st, fd);
    sl_pb_u32(&st->out, 16);
    sl_pb_u32(&st->out, SL_CANCEL_CODE);
    sl_pb_u32(&st->out, pid);
    sl_pb_u32(&st->out, (key & ~(3u << 30)) | ((uint32_t)(hops - 1) << 30));
    if (st->out.failed || !sl_stream_attach(st, w, peer_sent)) {
        st->w = w;
        sl_stream_close(st, cancel_free);
        return true;
    }
    sl_stream_set_poll(st, UV_WRITABLE);
    return true;
}

uint32_t sl_cancel_key_new(const sl_config *cfg)
{
    uint32_t key;
    sl_random_bytes(&key, sizeof(key));
    if (cfg->peer_id <= 0) return key;
    return (2u << 30) | ((uint32_t)cfg->peer_id << 16) | (key & 0xffffu); /* two hops at most */
}

bool sl_cancel_key_matches(const sl_config *cfg, uint32_t mine, uint32_t given)
{
    uint32_t mask = cfg->peer_id > 0 ? ~(3u << 30) : ~0u; /* the hop count changes on the way */
    return (mine & mask) == (given & mask);
}

void sl_cancel_request(sl_worker *w, uint32_t pid, uint32_t key)
{
    if (to_peer(w, pid, key)) return;
    uint32_t wid = pid >> 24;
    if (wid >= (uint32_t)sl_nworkers) return;
    if (&sl_workers[wid] == w) {
        sl_cancel_forward(w, pid, key);
        return;
    }
    sl_msg m = {.type = SL_MSG_CANCEL, .a = pid, .b = key};
    sl_worker_post(&sl_workers[wid], &m);
}

/* The cancel is over (delivered, failed or given up): let go of the server. */
static void cancel_done(sl_cancel_conn *cc)
{
    sl_server *s = cc->target;
    cc->target = NULL;
    sl_list_remove(&cc->node);
    sl_stream_close(&cc->s, cancel_free);
    if (s && sl_list_empty(&s->cancels) && s->release_after_cancel && s->state != SL_SV_CLOSING) {
        s->release_after_cancel = false;
        sl_server_release(s);
    }
}

/* Connected: send the 16 bytes, then wait for the postmaster to hang up. */
static void cancel_on_event(sl_stream *st, int events)
{
    sl_cancel_conn *cc = (sl_cancel_conn *)st;
    if (sl_stream_out_pending(st)) {
        if (!(events & UV_WRITABLE)) return;
        sl_io_status rc = sl_stream_connect_result(st) == 0 ? sl_stream_flush(st, NULL) : SL_IO_ERROR;
        if (rc == SL_IO_AGAIN) return;
        if (rc != SL_IO_OK) {
            sl_log_warn("could not send a cancel request to the server");
            cancel_done(cc);
            return;
        }
        sl_stream_set_poll(st, UV_READABLE);
        return;
    }
    if (events & UV_READABLE) cancel_done(cc); /* EOF (or an error): the postmaster is done with it */
}

void sl_cancel_server_gone(sl_server *s)
{
    while (!sl_list_empty(&s->cancels)) {
        sl_cancel_conn *cc = sl_container_of(s->cancels.next, sl_cancel_conn, node);
        cc->target = NULL;
        sl_list_remove(&cc->node);
        sl_stream_close(&cc->s, cancel_free);
    }
}

void sl_cancel_tick(sl_server *s, int64_t now, int64_t timeout)
{
    sl_list *n, *t;
    sl_list_for_each_safe(n, t, &s->cancels)
    {
        sl_cancel_conn *cc = sl_container_of(n, sl_cancel_conn, node);
        if (timeout > 0 && now - cc->started > timeout) {
            sl_log_warn("S-0x%llx: cancel request not answered within cancel_wait_timeout; giving up",
                        (unsigned long long)s->id);
            cancel_done(cc);
        }
    }
}

void sl_cancel_forward(sl_worker *w, uint32_t pid, uint32_t key)
{
    uint32_t slot = pid & 0xffffff;
    sl_client *c = sl_worker_slot_obj(w, slot);
    if (!c || !sl_cancel_key_matches(w->cfg, c->cancel_key, key) || c->state == SL_CL_LOGIN || c->state == SL_CL_AUTH) return;
    if (c->admin) {
        sl_console_cancel(c); /* ^C on a console command that waits (PAUSE, WAIT_CLOSE, SUSPEND) */
        return;
    }
    sl_server *s = c->server;
    if (!s || !s->be_pid || s->state == SL_SV_CLOSING) return;
    /* the very address this server connection is connected to: no name lookup on the worker */
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = sl_sock_peer_addr(s->s.fd, &ss, &len) ? sl_sock_connect((struct sockaddr *)&ss, len) : -1;
    if (fd < 0) return;
    sl_cancel_conn *cc = calloc(1, sizeof(*cc));
    if (!cc) {
        sl_stream tmp;
        sl_stream_init(&tmp, fd);
        sl_stream_close(&tmp, NULL);
        return;
    }
    sl_stream_init(&cc->s, fd);
    cc->started = sl_now_fast();
    sl_pktbuf *out = &cc->s.out;
    sl_pb_u32(out, 16);
    sl_pb_u32(out, SL_CANCEL_CODE);
    sl_pb_u32(out, s->be_pid);
    sl_pb_u32(out, s->be_key);
    if (out->failed || !sl_stream_attach(&cc->s, w, cancel_on_event)) {
        cc->s.w = w;
        sl_stream_close(&cc->s, cancel_free);
        return;
    }
    cc->target = s;
    sl_list_insert_tail(&s->cancels, &cc->node);
    sl_stream_set_poll(&cc->s, UV_WRITABLE);
}
