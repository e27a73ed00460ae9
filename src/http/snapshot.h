/* snapshot.h - a copy of everything the HTTP endpoint reports: the pools' snapshot (the same one
 * SHOW POOLS reads), per-database sums and reachability, and the workers' counters. */
#ifndef SL_HTTP_SNAPSHOT_H
#define SL_HTTP_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "net/worker.h"
#include "pool/snapshot.h"
#include "pool/stats.h"

typedef struct sl_db_snap {
    char *name;
    char *host;                 /* as configured; NULL = default unix socket dir */
    int port;
    int npools;
    bool reachable;             /* TCP/unix connect works and no recent server login failure */
    char error[300];            /* why not reachable */
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
    int64_t server_login_retry_us;
} sl_snapshot;

/* probe_backends: also check each database's backend (connect, cached about a second). NULL on OOM. */
sl_snapshot *sl_snapshot_take(bool probe_backends);
void sl_snapshot_free(sl_snapshot *s);

#endif
