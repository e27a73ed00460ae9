/* msgread.h - taking one whole message (type, length, body) off a stream's input, for the parts
 * that read messages one at a time: logins on both sides, pooler queries, the console. (The
 * forwarding path looks only at headers and never needs whole messages.) */
#ifndef SL_MSGREAD_H
#define SL_MSGREAD_H

#include <stdint.h>

#include "net/stream.h"

typedef enum {
    SL_TAKE_OK,          /* *m is the message; the stream has moved past it */
    SL_TAKE_MORE,        /* not whole yet (room was made for the rest) */
    SL_TAKE_BAD_LENGTH,  /* length below 4 or above max */
    SL_TAKE_NOMEM,       /* no room for the rest */
} sl_take_status;

typedef struct sl_wire_msg {
    char type;
    const uint8_t *body;  /* valid until the stream reads again */
    uint32_t len;         /* of the body */
} sl_wire_msg;

/* The next whole message in s's unconsumed input, at most max bytes long (its length word
 * included). */
sl_take_status sl_take_msg(sl_stream *s, uint32_t max, sl_wire_msg *m);

#endif
