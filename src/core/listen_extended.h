/* listen_extended.h - LISTEN / UNLISTEN sent through the extended protocol (Parse / Bind / Execute,
 * the unnamed or a named statement) between transactions, served by the LISTEN fan-out without a
 * server (listen_extended.c). */
#ifndef SL_LISTEN_EXTENDED_H
#define SL_LISTEN_EXTENDED_H

#include <stdint.h>

#include "core/conn.h"
#include "core/listen_fanout.h"

/* A Parse, Bind or Describe from a client between transactions (state IDLE, not linked): do it and the
 * messages after it up to a Sync only prepare / run a LISTEN or UNLISTEN? Then they are answered
 * here (SL_FANOUT_DONE) or once the listener has run the LISTEN (SL_FANOUT_WAIT: stop reading). */
sl_fanout_result sl_fanout_client_extended(sl_client *c, char type, uint32_t len);

#endif
