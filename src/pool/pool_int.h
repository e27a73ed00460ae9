/* pool_int.h - what the files of the pool layer share among themselves (not for other layers). */
#ifndef SL_POOL_INT_H
#define SL_POOL_INT_H

#include "pool/pool.h"

extern int sl_pool_nworkers;
extern int sl_pool_hold;      /* atomic: every route holds new transactions */

/* Can this route open one more server now (reserve: include reserve_pool_size)? */
bool sl_route_can_open_locked(sl_route *r, bool reserve);
/* Count a new server of b (connecting) and record a launch on worker; false when act is full. */
bool sl_route_add_launch_locked(sl_backend *b, int worker, sl_pool_actions *act);
/* The backend a new server for this intent should go to: the first one, in the configured order,
 * whose logins are not failing (NULL: all are failing; *failing then names the first). */
sl_backend *sl_route_pick_backend_locked(sl_route *r, sl_intent intent, int64_t now, int64_t retry_us,
                                         sl_backend **failing);
void sl_pool_add_wake(sl_pool_actions *a, int worker, uint32_t slot, uint32_t gen);
bool sl_pool_add_handover(sl_pool_actions *a, sl_pool_conn *c, int to, uint32_t slot, uint32_t gen);
/* Every server of every backend of r closes when next released (its target changed). */
void sl_route_retarget_locked(sl_route *r);

#endif
