/* stream.h - one non-blocking socket on a worker loop: the transport it reads and writes through,
 * an input buffer borrowed from the worker's free list while bytes are in flight, a queue of
 * pooler-built output, poll control and the event callback of its owner. Knows nothing of
 * PostgreSQL. */
#ifndef SL_STREAM_H
#define SL_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "net/transport.h"
#include "proto/pkt.h"

struct sl_worker;
struct sl_stream;

/* The owner's handler for poll events (UV_READABLE / UV_WRITABLE bits). */
typedef void (*sl_stream_cb)(struct sl_stream *s, int events);
/* Called on the loop once libuv has let go of the stream's poll handle. */
typedef void (*sl_stream_done_cb)(struct sl_stream *s);

typedef enum {
    SL_IO_OK = 0,     /* progress made (or nothing to do) */
    SL_IO_AGAIN,      /* would block */
    SL_IO_EOF,        /* peer closed */
    SL_IO_ERROR,      /* socket error (errno kept in err) */
} sl_io_status;

typedef struct sl_stream {
    int fd;
    int err;                 /* last errno */
    const sl_transport *tr;  /* plain unless a TLS handshake replaced it */
    void *tr_state;          /* the transport's own state (e.g. an SSL object) */
    int tr_extra;            /* poll events the transport needs on top of the owner's, or
                              * SL_TR_POLL_HOOK: it computes them itself (TLS) */
    int want;                /* UV_READABLE / UV_WRITABLE currently requested */
    struct sl_worker *w;     /* the loop that owns the poll handle */
    uv_poll_t poll;
    sl_stream_cb on_event;
    sl_stream_done_cb on_done;
    bool poll_open;          /* poll handle initialised and not yet closed */
    bool close_fd;           /* on_done: the descriptor is closed first (sl_stream_close) */
    bool frozen;             /* takeover (core/takeover_*.c): polling stopped while a new process takes
                              * the socket over; nothing may read, write or close it meanwhile */
    bool handed;             /* takeover: its descriptor and state went to the new process */
    bool bulk;               /* the last read filled the buffer: more is waiting (a large result,
                              * COPY), so reads go through a SL_STREAM_BULK_BUF buffer */
    bool keeping;            /* input: bytes from keep on stay in the buffer even once sent
                              * (sl_stream_keep: what was sent may have to be sent again) */

    /* input: bytes [pos, end) are not yet consumed; parse <= end is the next unparsed byte;
     * [pos, parse) is the region already decided to be forwarded. */
    uint8_t *buf;
    uint32_t cap, pos, parse, end;
    uint32_t msg_left;       /* bytes of the current message still to come */
    uint32_t msg_len;        /* its whole length (type byte included), while msg_left */
    uint32_t keep;           /* keeping: bytes from here on stay in the buffer even once sent */

    sl_pktbuf out;           /* pooler-built bytes queued for this socket */
    size_t out_sent;
    struct sl_stream_linger *linger; /* a lingering close in progress (stream_linger.c), or NULL */
} sl_stream;

void sl_stream_init(sl_stream *s, int fd);
/* Attach to w's loop (uv_poll_init); events go to cb. false if libuv refuses the descriptor. */
bool sl_stream_attach(sl_stream *s, struct sl_worker *w, sl_stream_cb cb);
/* Let go of the loop but keep the descriptor (a server handed to another worker, a connect retried
 * on another address); done runs on the loop once libuv is done with the handle. */
void sl_stream_detach(sl_stream *s, sl_stream_done_cb done);
/* Close for good: buffers and transport state freed, the descriptor closed only after libuv has
 * removed it from the loop (so its number cannot be reused under a live handle); then done. A
 * stream that was never attached is finished at once. */
void sl_stream_close(sl_stream *s, sl_stream_done_cb done);
/* Close after last words the peer must read (an error): send what is queued, tell the peer the end
 * (TLS close_notify, then a half close), then read and drop whatever it still sends until it closes
 * too, SL_STREAM_LINGER_MS pass or SL_STREAM_LINGER_BYTES came; then as sl_stream_close. (Closing a
 * socket with unread input makes the kernel reset the connection, and a peer that is reset may lose
 * what it was sent last.) The owner must not touch the stream afterwards: it hears of it only
 * through done. */
#define SL_STREAM_LINGER_MS 2000
#define SL_STREAM_LINGER_BYTES (256u * 1024)
void sl_stream_close_lingering(sl_stream *s, sl_stream_done_cb done);
/* Ask the loop for these events (UV_READABLE / UV_WRITABLE); inline, since the answer is mostly
 * "already asked" (a change, or a transport that computes its own events, goes out of line). */
void sl_stream_set_poll_change(sl_stream *s, int events);
static inline void sl_stream_set_poll(sl_stream *s, int events)
{
    events |= s->tr_extra;
    if (__builtin_expect(!(events & SL_TR_POLL_HOOK), 1) && (!s->poll_open || s->want == events)) return;
    sl_stream_set_poll_change(s, events);
}
/* Takeover: stop polling without forgetting what was asked (frozen set), and start again. */
void sl_stream_freeze(sl_stream *s);
void sl_stream_thaw(sl_stream *s);

/* Make room for at least `need` more unparsed bytes (grows beyond the worker buffer if needed,
 * up to max). false on allocation failure or when need > max. */
bool sl_stream_make_room(sl_stream *s, uint32_t need, uint32_t max);
/* Input buffer size while a stream is in bulk mode (see `bulk`): 16 times fewer reads and writes
 * per MB than 4 KB ones. Given back once the stream has drained its socket and the buffer is empty. */
#define SL_STREAM_BULK_BUF (64u * 1024)

/* Read as much as fits (a stream in bulk mode first moves to a SL_STREAM_BULK_BUF buffer). */
sl_io_status sl_stream_read(sl_stream *s);
/* Give the input buffer back to the worker when it holds nothing. */
void sl_stream_maybe_release_buf(sl_stream *s);
void sl_stream_free_buf(sl_stream *s);
/* Keep the (standard-size) input buffer but start it over when it holds nothing: for server
 * connections, which are few and busy, so that they do not borrow and return it per response. */
void sl_stream_recycle_buf(sl_stream *s);

/* Keep the bytes from pos on in the buffer, even once sent, until sl_stream_unkeep (no compaction
 * past them, no release of the buffer): what they were sent to may fail before it read them, and
 * then they go elsewhere. A full buffer drops the mark rather than stop reading (sl_stream_read). */
static inline void sl_stream_keep(sl_stream *s)
{
    s->keep = s->pos;
    s->keeping = s->buf != NULL;
}
static inline void sl_stream_unkeep(sl_stream *s) { s->keeping = false; }
/* Back to the kept mark: the bytes from there on are unsent and unparsed again (false: none kept). */
bool sl_stream_rewind_to_keep(sl_stream *s);

/* Send this stream's own out queue, then src's forward region [pos, parse), with one writev. */
sl_io_status sl_stream_flush(sl_stream *dst, sl_stream *src);
static inline bool sl_stream_out_pending(const sl_stream *s) { return s->out_sent < s->out.len; }
/* Tell the peer we are done (orderly shutdown through the transport). */
void sl_stream_shutdown(sl_stream *s);
/* An idle connection that is still open and silent: nothing to read, no end of file. For a
 * connection parked in a pool, anything else (an error message, EOF) means it is gone. */
bool sl_stream_idle_and_open(const sl_stream *s);
/* The result of a non-blocking connect once the socket turned writable: 0 or an errno. */
int sl_stream_connect_result(const sl_stream *s);
/* The client asked for an encrypted session (SSLRequest or GSSENCRequest) that this stream will
 * not provide: answer 'N' so it may go on in plaintext (or hang up, if it requires encryption). */
void sl_stream_refuse_encryption(sl_stream *s);

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

/* The message at parse, n bytes with its type byte, is passed on: stepped over at once when it is
 * all in the buffer (the usual case), else its bytes are as they come (msg_left, msg_len). */
static inline void sl_stream_pass(sl_stream *in, uint32_t n)
{
    if (in->end - in->parse >= n) in->parse += n;
    else in->msg_left = in->msg_len = n;
}

/* An idle connection keeps no buffers: drop the out queue's memory once it is sent, and the input
 * buffer once it is consumed. */
void sl_stream_trim(sl_stream *s);
static inline uint32_t sl_stream_fwd_pending(const sl_stream *s) { return s->parse - s->pos; }

#endif
