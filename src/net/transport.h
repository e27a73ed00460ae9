/* transport.h - what a stream reads and writes through: a small table of operations (plain TCP/unix
 * sockets, TLS in transport_tls.c) so that nothing above the stream calls recv/send itself and pooling code
 * never branches on the kind of connection. */
#ifndef SL_TRANSPORT_H
#define SL_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

struct sl_stream;

typedef enum {
    SL_TR_OK = 0,      /* *n bytes moved (n > 0) */
    SL_TR_WANT_READ,   /* would block until the socket is readable */
    SL_TR_WANT_WRITE,  /* would block until the socket is writable */
    SL_TR_EOF,         /* the peer closed its end */
    SL_TR_ERROR,       /* failed; errno-style code in stream->err */
} sl_tr_result;

typedef struct sl_transport {
    const char *name;
    /* Read up to len bytes into buf. */
    sl_tr_result (*read)(struct sl_stream *s, void *buf, size_t len, size_t *n);
    /* Write from iov (one system call's worth, possibly short). */
    sl_tr_result (*writev)(struct sl_stream *s, const struct iovec *iov, int iovcnt, size_t *n);
    /* Bytes the transport already holds for the reader (decrypted records): the socket will not
     * become readable for them, so the loop keeps reading while this is non-zero. NULL: never any. */
    size_t (*pending)(const struct sl_stream *s);
    /* Drive a handshake; SL_TR_OK once the connection is ready for data. NULL: nothing to do. */
    sl_tr_result (*handshake)(struct sl_stream *s);
    /* Tell the peer no more data comes (and stop reading). */
    void (*shutdown)(struct sl_stream *s);
    /* Tell the peer no more data comes but go on reading what it still sends (a half close; TLS
     * sends close_notify first): a lingering close (stream_linger.c). */
    void (*end_output)(struct sl_stream *s);
    /* Free the transport's own state (the descriptor is the stream's). NULL: nothing to free. */
    void (*release)(struct sl_stream *s);
    /* Hand a poll event to the owner (stream->on_event). NULL: the owner gets the events as they
     * are. A transport that holds decrypted bytes the socket will not announce, or that waits for
     * the other direction (a TLS read that must write first), translates the events here and keeps
     * calling the owner while such bytes last. */
    void (*dispatch)(struct sl_stream *s, int events);
    /* With SL_TR_POLL_HOOK in stream->tr_extra: the events to ask the loop for, given the owner's
     * (sl_stream_set_poll). Lets the transport remember what the owner wants and add what it needs
     * itself. */
    int (*poll_events)(struct sl_stream *s, int owner_events);
} sl_transport;

/* A bit of stream->tr_extra (above libuv's UV_* poll bits): sl_stream_set_poll asks
 * tr->poll_events instead of or-ing tr_extra into the owner's events. */
#define SL_TR_POLL_HOOK 0x1000

/* Plain sockets: recv and sendmsg, zero-copy from the stream's buffers. */
extern const sl_transport sl_transport_plain;
/* TLS over the socket (OpenSSL); installed by the sl_stream_start_tls_* functions of net/tls.h. */
extern const sl_transport sl_transport_tls;

#endif
