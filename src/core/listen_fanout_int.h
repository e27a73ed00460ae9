/* listen_fanout_int.h - what the fan-out's hub (listen_fanout.c) offers the code that recognises
 * LISTEN / UNLISTEN in the client's messages outside a simple Query (listen_extended.c). */
#ifndef SL_LISTEN_FANOUT_INT_H
#define SL_LISTEN_FANOUT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conn.h"
#include "proto/stmt_class.h"

/* The fan-out serves this client now (listen_fanout on, transaction pooling, no BEGIN held back). */
bool sl_fanout_serves(const sl_client *c);
/* Is text (len bytes) one LISTEN ch, UNLISTEN ch or UNLISTEN * alone? info says which. */
bool sl_fanout_listen_text(const char *text, size_t len, sl_stmt_info *info);
/* The client has chan through the fan-out already. */
bool sl_fanout_has(const sl_client *c, const char *chan);
/* Subscribe to chan and wait for the listener (nothing more is read from the client until its answer,
 * CommandComplete "LISTEN" and ReadyForQuery, is written); false: the fan-out cannot take it. */
bool sl_fanout_start_listen(sl_client *c, const char *chan);

/* The client's unnamed statement, parsed here (a LISTEN / UNLISTEN; body: its Parse body after the
 * name), kept until something the client sends goes to a server (sl_fanout_client_forwarding). */
bool sl_fanout_unnamed_set(sl_client *c, const uint8_t *body, uint32_t len);
const uint8_t *sl_fanout_unnamed_get(const sl_client *c, uint32_t *len);

#endif
