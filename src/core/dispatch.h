/* dispatch.h - what a worker does (the sl_worker_ops the connection layer gives src/net): its start,
 * the messages workers send each other, the periodic tick; and carrying out what the pools decided
 * (launch servers, wake or hand servers to clients on other workers). */
#ifndef SL_DISPATCH_H
#define SL_DISPATCH_H

#include "net/worker.h"
#include "pool/pool.h"

/* Message types between workers (sl_msg.type). */
typedef enum {
    SL_MSG_HANDOFF_SERVER,   /* obj: a server detached elsewhere, to attach here for client (slot, gen) */
    SL_MSG_DETACH_SERVER,    /* obj: our idle server, promised to client (slot, gen) of worker `to` */
    SL_MSG_CANCEL,           /* a cancel for our client: a = pid, b = key */
    SL_MSG_WAKE_CLIENT,      /* re-examine client (slot, gen): a pool slot freed up, or it failed */
    SL_MSG_LAUNCH,           /* obj: open a server connection to this backend (already counted) */
    SL_MSG_STATE,            /* the run state or the config changed: re-examine everything */
    SL_MSG_FANOUT_KICK,      /* LISTEN fan-out: a database this worker owns has work (listen_fanout.c) */
    SL_MSG_FANOUT_DONE,      /* LISTEN fan-out: client (slot, gen)'s LISTEN ran (a: 1 ok; obj: error text) */
    SL_MSG_FANOUT_NOTIFY,    /* LISTEN fan-out: obj = a NotificationResponse of a bytes for client (slot, gen) */
} sl_core_msg;

extern const sl_worker_ops sl_core_worker_ops;

/* Carry out the pools' decisions (from any thread; launches and wakes on other workers are posted)
 * and free what they held. */
void sl_carry_out_all(sl_pool_actions *act);
static inline void sl_carry_out(sl_pool_actions *act)
{
    if (act->nlaunch || act->nwake || act->nhand || act->wake || act->hand) sl_carry_out_all(act);
}
/* Tell every worker that the run state or the config changed. */
void sl_broadcast_state(void);

#endif
