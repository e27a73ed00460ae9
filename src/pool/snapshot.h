/* snapshot.h - a copy of every route's state at one moment: the one source behind SHOW POOLS,
 * SHOW DATABASES' counts, /pools, /health and /metrics. Each route's lock is held only while its
 * fields are copied. */
#ifndef SL_POOL_SNAPSHOT_H
#define SL_POOL_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "pool/stats.h"

typedef struct sl_route_snap {
    char *db, *user;
    int replication;                             /* a replication route's, until merged (below) */
    int pool_mode;
    int n_clients;                               /* logged in */
    int cl_active, cl_waiting;                   /* logged-in clients not waiting / waiting */
    int sv_active, sv_idle, sv_used, sv_tested, sv_login; /* used: idle longer than server_check_delay */
    int pool_size, reserve_size, min_pool_size, max_db_conns;
    int nbackends;
    int64_t maxwait_us;                          /* age of the oldest waiting client, 0 if none */
    bool paused, disabled;
    int64_t login_failure_age_us;                /* -1: no backend's last server login failed */
    char login_error[256];
    sl_pool_stats stats;
} sl_route_snap;

typedef struct sl_pools_snap {
    int64_t now;
    sl_route_snap *v;
    int n;
} sl_pools_snap;

/* check_delay_us: idle servers idle longer than this count as "used". Sorted by database, user; one
 * entry per pair: the replication connections of a pair are counted in its entry (as PgBouncer's
 * SHOW POOLS does), so tools keyed by database and user see no duplicate.
 * false on out of memory (s is then empty). */
bool sl_pools_snapshot(sl_pools_snap *s, int64_t check_delay_us);
void sl_pools_snapshot_free(sl_pools_snap *s);

#endif
