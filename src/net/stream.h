/* stream.h - one non-blocking socket on a worker loop: an input buffer borrowed from the worker's
 * free list while bytes are in flight, a queue of pooler-built output, and poll control.
 * Knows nothing of PostgreSQL. */
#ifndef SL_STREAM_H
#define SL_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "proto/pkt.h"

struct sl_worker;

typedef enum { SL_KIND_CLIENT = 1, SL_KIND_SERVER = 2, SL_KIND_CANCEL = 3 } sl_stream_kind;

typedef enum {
    SL_IO_OK = 0,     /* progress made (or nothing to do) */
    SL_IO_AGAIN,      /* would block */
    SL_IO_EOF,        /* peer closed */
    SL_IO_ERROR,      /* socket error (errno kept in err) */
} sl_io_status;

typedef struct sl_stream {
    sl_stream_kind kind;
    int fd;
    int err;                 /* last errno */
    struct sl_worker *w;     /* the loop that owns the poll handle */
    uv_poll_t poll;
    bool poll_open;          /* poll handle initialised and not yet closed */
    int want;                /* UV_READABLE / UV_WRITABLE currently requested */

    /* input: bytes [pos, end) are not yet consumed; parse <= end is the next unparsed byte;
     * [pos, parse) is the region already decided to be forwarded (or fwd_pending if skipping). */
    uint8_t *buf;
    uint32_t cap, pos, parse, end;
    uint32_t msg_left;       /* bytes of the current message still to come */
    bool msg_forward;        /* the current message is being forwarded (else skipped) */

    sl_pktbuf out;           /* pooler-built bytes queued for this socket */
    size_t out_sent;
} sl_stream;

void sl_stream_init(sl_stream *s, sl_stream_kind kind, int fd);
/* Attach to w's loop (uv_poll_init). */
bool sl_stream_attach(sl_stream *s, struct sl_worker *w, uv_poll_cb cb, void *owner);
/* Close the poll handle; cb runs on the loop once libuv is done with it. The fd stays open. */
void sl_stream_detach(sl_stream *s, uv_close_cb cb);
void sl_stream_set_poll(sl_stream *s, int events);

/* Make room for at least `need` more unparsed bytes (grows beyond the worker buffer if needed,
 * up to max). false on allocation failure or when need > max. */
bool sl_stream_make_room(sl_stream *s, uint32_t need, uint32_t max);
/* recv() as much as fits. */
sl_io_status sl_stream_read(sl_stream *s);
/* Give the input buffer back to the worker when it holds nothing. */
void sl_stream_maybe_release_buf(sl_stream *s);
void sl_stream_free_buf(sl_stream *s);
/* Keep the (standard-size) input buffer but start it over when it holds nothing: for server
 * connections, which are few and busy, so that they do not borrow and return it per response. */
void sl_stream_recycle_buf(sl_stream *s);

/* Send this stream's own out queue, then src's forward region [pos, parse), with one writev. */
sl_io_status sl_stream_flush(sl_stream *dst, sl_stream *src);
static inline bool sl_stream_out_pending(const sl_stream *s) { return s->out_sent < s->out.len; }
/* Step over the rest of the message being passed on; true when the next message's header (type
 * and length) is in the buffer. The caller then sets msg_left (or consumes the message itself). */
static inline bool sl_stream_next_header(sl_stream *in, char *type, uint32_t *len)
{
    if (in->msg_left) {
        uint32_t avail = in->end - in->parse;
        uint32_t n = avail < in->msg_left ? avail : in->msg_left;
        in->parse += n;
        in->msg_left -= n;
        if (in->msg_left) return false;
    }
    if (in->end - in->parse < 5) return false;
    *type = (char)in->buf[in->parse];
    *len = sl_get_u32(in->buf + in->parse + 1);
    return true;
}

/* An idle connection keeps no buffers: drop the out queue's memory once it is sent, and the input
 * buffer once it is consumed. */
void sl_stream_trim(sl_stream *s);
static inline uint32_t sl_stream_fwd_pending(const sl_stream *s) { return s->parse - s->pos; }

#endif
