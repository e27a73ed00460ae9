/* transport_plain.c - the plain-socket transport's table: one recv per read, one sendmsg (writev)
 * per write, straight from and into the stream's buffers (transport_plain.h). */
#include "net/transport_plain.h"

static void plain_shutdown(sl_stream *s)
{
    if (s->fd >= 0) shutdown(s->fd, SHUT_RDWR);
}

static void plain_end_output(sl_stream *s)
{
    if (s->fd >= 0) shutdown(s->fd, SHUT_WR);
}

const sl_transport sl_transport_plain = {
    .name = "plain",
    .read = sl_plain_read,
    .writev = sl_plain_writev,
    .pending = NULL,
    .handshake = NULL,
    .shutdown = plain_shutdown,
    .end_output = plain_end_output,
    .release = NULL,
};
