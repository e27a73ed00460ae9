/* cancel.c - CancelRequest: a client's cancel key names its worker and slot; the cancel is sent to
 * the server that client is linked to at that moment, on a new connection, and to no other. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin/admin.h"
#include "core/pooler.h"
#include "net/sockutil.h"
#include "pool/pool.h"
#include "util/log.h"

typedef struct sl_cancel_conn {
    sl_stream s; /* first */
    uint8_t pkt[16];
} sl_cancel_conn;

void sl_client_cancel_request(sl_worker *w, uint32_t pid, uint32_t key)
{
    uint32_t wid = pid >> 24;
    if (wid >= (uint32_t)sl_nworkers) return;
    if (&sl_workers[wid] == w) {
        sl_cancel_forward(w, pid, key);
        return;
    }
    sl_msg m = {.type = SL_MSG_CANCEL, .pid = pid, .key = key};
    sl_worker_post(&sl_workers[wid], &m);
}

/* The fd is closed only after libuv has removed it from the loop (no epoll_ctl on a reused fd). */
static void cancel_free(uv_handle_t *h)
{
    sl_cancel_conn *cc = h->data;
    close(cc->s.fd);
    free(cc);
}

static void cancel_done(sl_cancel_conn *cc) { sl_stream_detach(&cc->s, cancel_free); }

void sl_cancel_on_event(sl_stream *st, int events)
{
    sl_cancel_conn *cc = (sl_cancel_conn *)st;
    if (!(events & UV_WRITABLE)) {
        cancel_done(cc);
        return;
    }
    ssize_t r = send(st->fd, cc->pkt, sizeof(cc->pkt), MSG_NOSIGNAL);
    if (r != (ssize_t)sizeof(cc->pkt)) sl_log_warn("could not send a cancel request to the server");
    cancel_done(cc);
}

void sl_cancel_forward(sl_worker *w, uint32_t pid, uint32_t key)
{
    uint32_t slot = pid & 0xffffff;
    sl_client *c = slot < w->nslots ? w->slots[slot] : NULL;
    if (!c || c->cancel_key != key || c->state == SL_CL_LOGIN || c->state == SL_CL_AUTH) return;
    if (c->admin) {
        sl_admin_cancel(c); /* ^C on a console command that waits (PAUSE, WAIT_CLOSE, SUSPEND) */
        return;
    }
    sl_server *s = c->server;
    if (!s || !s->be_pid || s->state == SL_SV_CLOSING) return;
    sl_cancel_conn *cc = calloc(1, sizeof(*cc));
    if (!cc) return;
    /* the very address this server connection is connected to: no name lookup on the worker */
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = getpeername(s->s.fd, (struct sockaddr *)&ss, &len) == 0 ? sl_sock_connect((struct sockaddr *)&ss, len) : -1;
    if (fd < 0) {
        free(cc);
        return;
    }
    sl_stream_init(&cc->s, SL_KIND_CANCEL, fd);
    sl_put_u32(cc->pkt, 16);
    sl_put_u32(cc->pkt + 4, SL_CANCEL_CODE);
    sl_put_u32(cc->pkt + 8, s->be_pid);
    sl_put_u32(cc->pkt + 12, s->be_key);
    if (!sl_stream_attach(&cc->s, w, NULL, cc)) {
        close(fd);
        free(cc);
        return;
    }
    sl_stream_set_poll(&cc->s, UV_WRITABLE);
}
