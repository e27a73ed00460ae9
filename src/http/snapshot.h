/* snapshot.h - a copy of everything the HTTP endpoint reports: the pools' snapshot (the same one
 * SHOW POOLS reads), per-database sums and reachability, and the workers' counters. */
#ifndef SL_HTTP_SNAPSHOT_H
#define SL_HTTP_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "net/worker.h"
#include "pool/health.h"
#include "pool/snapshot.h"
#include "pool/stats.h"

typedef struct sl_db_snap {
    char *name;
    char *host;                 /* the first host; NULL = default unix socket dir */
    int port;
    int npools;
    bool reachable;             /* it can serve its clients: a host answers (with roles: the primary, or
                                   for a read-only name a replica in rotation or the fallback) and no
                                   recent server login failure */
    char error[300];            /* why not reachable */
    const sl_topo_snap_db *topo; /* its hosts' roles and health when it has roles (else NULL) */
    bool reads_only;            /* target_session_attrs read-only, standby or prefer-standby */
    char degraded[300];         /* with roles: a host down, lagging or fenced ("" if none) */
    sl_pool_stats stats;        /* sum over the database's pools */
} sl_db_snap;

typedef struct sl_worker_snap {
    int clients;
    uint64_t accepted, events, cpu_us;
} sl_worker_snap;

typedef struct sl_snapshot {
    int64_t wall_us, now_us;
    int run_state;              /* sl_run_state */
    int total_clients;          /* client connections of all workers */
    int nworkers;
    sl_worker_snap workers[SL_MAX_WORKERS];
    sl_pools_snap routes;       /* the pools' own snapshot (also behind SHOW POOLS) */
    sl_route_snap *pools;       /* = routes.v */
    int npools;                 /* = routes.n */
    sl_db_snap *dbs;
    int ndbs;
    sl_topo_snap topo;          /* databases with roles (sl_topology_snapshot) */
    int64_t server_login_retry_us;
} sl_snapshot;

/* probe_backends: also check each database's backend (connect, cached about a second). NULL on OOM. */
sl_snapshot *sl_snapshot_take(bool probe_backends);
void sl_snapshot_free(sl_snapshot *s);

#endif
