/* listen_extended.h - LISTEN / UNLISTEN sent through the extended protocol (Parse / Bind / Execute,
 * the unnamed or a named statement) between transactions, served by the LISTEN fan-out without a
 * server (listen_extended.c). */
#ifndef SL_LISTEN_EXTENDED_H
#define SL_LISTEN_EXTENDED_H

#include <stdint.h>

#include "core/conn.h"
#include "core/listen_fanout.h"
#include "proto/msgtype.h"

/* A Parse, Bind or Describe from a client between transactions (state IDLE, not linked): do it and the
 * messages after it up to a Sync only prepare / run a LISTEN or UNLISTEN? Then they are answered
 * here (SL_FANOUT_DONE) or once the listener has run the LISTEN (SL_FANOUT_WAIT: stop reading). */
sl_fanout_result sl_fanout_client_extended_full(sl_client *c, char type, uint32_t len);
/* The first message of most transactions is a Parse of the unnamed statement whose text starts with
 * a byte no LISTEN / UNLISTEN can start with (no blank, l, L, u or U): no, inline (what
 * listen_extended.c's may_start_run would answer after finding the name's end). */
static inline sl_fanout_result sl_fanout_client_extended(sl_client *c, char type, uint32_t len)
{
    const sl_stream *in = &c->s;
    if (type == SL_FE_PARSE && len >= 6 && in->end - in->parse >= 7 && in->buf[in->parse + 5] == 0) {
        uint8_t b = in->buf[in->parse + 6];
        if (b != ' ' && b != '\t' && b != '\n' && b != '\r' && b != 'l' && b != 'L' && b != 'u' && b != 'U')
            return SL_FANOUT_NO;
    }
    return sl_fanout_client_extended_full(c, type, len);
}

#endif
