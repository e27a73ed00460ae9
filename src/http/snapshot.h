/* snapshot.h - a copy of everything the HTTP endpoint reports (pools, databases, workers), taken
 * in one pass with each pool lock held only while its fields are copied. */
#ifndef SL_HTTP_SNAPSHOT_H
#define SL_HTTP_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "net/worker.h"
#include "pool/stats.h"

typedef struct sl_pool_snap {
    char *db, *user;
    int pool_mode;
    int cl_active, cl_waiting;                   /* logged-in clients not waiting / waiting */
    int sv_active, sv_idle, sv_used, sv_login;   /* used: idle longer than server_check_delay */
    int pool_size, reserve_size, max_db_conns;
    int64_t maxwait_us;                          /* age of the oldest waiting client, 0 if none */
    bool paused, disabled;
    int64_t login_failure_age_us;                /* -1: the last server login succeeded (or none) */
    char login_error[256];
    sl_pool_stats stats;
} sl_pool_snap;

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
    sl_pool_snap *pools;
    int npools;
    sl_db_snap *dbs;
    int ndbs;
    int64_t server_login_retry_us;
} sl_snapshot;

/* probe_backends: also check each database's backend (connect, cached about a second). NULL on OOM. */
sl_snapshot *sl_snapshot_take(bool probe_backends);
void sl_snapshot_free(sl_snapshot *s);

const char *sl_run_state_label(int run_state);

#endif
