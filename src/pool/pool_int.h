/* pool_int.h - what the files of the pool layer share among themselves (not for other layers). */
#ifndef SL_POOL_INT_H
#define SL_POOL_INT_H

#include "pool/health.h"
#include "pool/pool.h"

extern int sl_pool_nworkers;
extern int sl_pool_hold;      /* atomic: every route holds new transactions */

/* Can this route open one more server now (reserve: include reserve_pool_size)? */
bool sl_route_can_open_locked(sl_route *r, bool reserve);
/* Count a new server of b (connecting) and record a launch on worker; false when act is full. */
bool sl_route_add_launch_locked(sl_backend *b, int worker, sl_pool_actions *act);
/* The launch just added opens a replication route's server for waiter w (its parameters, its turn). */
void sl_route_launch_for(sl_pool_actions *act, const sl_pool_waiter *w);
/* The backend a new server for this intent should go to: the first one, in the configured order,
 * whose logins are not failing (NULL: all are failing; *failing then names the first). */
sl_backend *sl_route_pick_backend_locked(sl_route *r, sl_intent intent, int64_t now, int64_t retry_us,
                                         sl_backend **failing);
void sl_pool_add_wake(sl_pool_actions *a, int worker, uint32_t slot, uint32_t gen);
bool sl_pool_add_handover(sl_pool_actions *a, sl_pool_conn *c, int to, uint32_t slot, uint32_t gen);
/* Every server of every backend of r closes when next released (its target changed). */
void sl_route_retarget_locked(sl_route *r);
void sl_route_take_waiter_locked(sl_route *r, sl_pool_waiter *w);

/* ---- routes of databases with roles (route_roles.c) ---- */

sl_acquire_kind sl_route_acquire_routed_locked(sl_route *r, sl_pool_waiter *w, const sl_config *cfg,
                                               sl_acquire *out, sl_pool_actions *act);
void sl_route_release_routed_locked(sl_pool_conn *c, int64_t now, sl_release *out);
void sl_route_kick_routed_locked(sl_route *r, sl_pool_actions *act, bool reserve);
/* Hand idle servers to the waiting clients they suit, then open servers for the others. */
void sl_route_serve_routed_locked(sl_route *r, sl_pool_actions *act);
sl_backend *sl_route_pick_routed_locked(sl_route *r, sl_intent intent, int64_t now, int64_t holdoff);
/* A server logged in: does what it reported (in_hot_standby) fit its backend's role? */
bool sl_route_conn_role_fits_locked(const sl_pool_conn *c);
/* Copy the database's topology view into the route's backends (topology.c). */
void sl_topology_apply_route_locked(sl_route *r);
/* Read-your-writes: the WAL position of the first check of primary p that started after `after`
 * (false: none yet); what a replica has replayed. */
bool sl_host_lsn_after(struct sl_host *p, int64_t after, uint64_t *lsn);
uint64_t sl_host_replayed(struct sl_host *h);

#endif
