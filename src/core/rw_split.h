/* rw_split.h - read_write_split on the client's side: what a client's next transaction is declared
 * as (the pool sends declared read-only ones to replicas), and a bare BEGIN answered by pgsluice
 * until the next statement tells whether the transaction is read-only. */
#ifndef SL_RW_SPLIT_H
#define SL_RW_SPLIT_H

#include <stdint.h>

#include "core/conn.h"

typedef enum {
    SL_RWS_FORWARD,     /* c->wt.intent is set: ask for a server as usual */
    SL_RWS_FORWARD_NOW, /* the same, and nothing else may answer it (a deferred BEGIN is pending) */
    SL_RWS_CONSUMED,    /* answered by pgsluice (a deferred BEGIN, or COMMIT/ROLLBACK of one) */
    SL_RWS_NEED_MORE,   /* the message is not whole yet */
} sl_rws_result;

/* The client (IDLE) has a message of this type and length at s->parse; its route has
 * read_write_split on, or a deferred BEGIN is pending (c->deferred_begin). */
sl_rws_result sl_rw_split_message(sl_client *c, char type, uint32_t len);

#endif
