/* cancel.c - CancelRequest: a client's cancel key names its worker and slot; the cancel goes to the
 * server that client is linked to at that moment, on a new connection, and to no other. */
#include "core/cancel.h"

#include <stdlib.h>
#include <string.h>

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

void sl_cancel_request(sl_worker *w, uint32_t pid, uint32_t key)
{
    uint32_t wid = pid >> 24;
    if (wid >= (uint32_t)sl_nworkers) return;
    if (&sl_workers[wid] == w) {
        sl_cancel_forward(w, pid, key);
        return;
    }
    sl_msg m = {.type = SL_MSG_CANCEL, .a = pid, .b = key};
    sl_worker_post(&sl_workers[wid], &m);
}

static void cancel_free(sl_stream *st) { free(st); }

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
    if (!c || c->cancel_key != key || c->state == SL_CL_LOGIN || c->state == SL_CL_AUTH) return;
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
