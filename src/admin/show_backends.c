/* show_backends.c - SHOW BACKENDS (pgsluice's own): one row per host of each database with roles,
 * as the health checks and the topology see it: role (found, and as configured in role_map),
 * health, whether it serves writes or reads now, replication lag, the last check. Also the routing
 * summary SHOW DATABASES adds to its rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "pool/health.h"
#include "pool/pool.h"
#include "util/time.h"

void adm_cols_backends(adm_result *r)
{
    adm_cols(r, "ssissssqsiqNNs", "database", "host", "port", "role", "configured_role", "health", "serves",
             "lag_bytes", "lag_seconds", "timeline", "last_check_ms", "checks", "check_failures", "error");
}

static const char *serves(const sl_topo_snap_host *h)
{
    return h->writes ? "writes" : h->reads ? "reads" : "none";
}

static void backend_row(adm_result *r, const sl_topo_snap_db *d, const sl_topo_snap_host *h)
{
    char lag[32] = "";
    bool replica = h->role == SL_ROLE_REPLICA;
    if (replica && h->lag_us >= 0) snprintf(lag, sizeof(lag), "%.3f", (double)h->lag_us / 1e6);
    /* lag_seconds is text ("1.250"; NULL: not a replica, or not known): the console has no numeric type */
    adm_row(r, "ssissssqsiqNNs", d->name, h->host ? h->host : "unix", h->port, sl_role_name((sl_role)h->role),
            sl_host_role_name(h->configured), sl_backend_health_name(h->health), serves(h),
            replica && h->lag_bytes >= 0 ? h->lag_bytes : (int64_t)0, lag[0] ? lag : NULL, h->timeline,
            h->checked_ago_us >= 0 ? h->checked_ago_us / 1000 : (int64_t)-1, h->checks, h->failures,
            h->error[0] ? h->error : NULL);
}

adm_status adm_show_backends(adm_session *s, adm_result *r)
{
    (void)s;
    sl_topo_snap t;
    if (!sl_topology_snapshot(&t, sl_now_us())) {
        adm_error(r, "53200", "out of memory");
        return ADM_DONE;
    }
    adm_cols_backends(r);
    for (int i = 0; i < t.n; i++)
        for (int k = 0; k < t.dbs[i].n; k++) backend_row(r, &t.dbs[i], &t.dbs[i].hosts[k]);
    sl_topology_snapshot_free(&t);
    return ADM_DONE;
}

bool adm_db_routing(const sl_topo_snap *t, const char *name, adm_db_routing_info *out)
{
    for (int i = 0; i < t->n; i++) {
        const sl_topo_snap_db *d = &t->dbs[i];
        if (strcmp(d->name, name)) continue;
        out->target = sl_tsa_name(d->rt.target);
        out->read_write_split = d->rt.read_write_split;
        snprintf(out->primary, sizeof(out->primary), "%s", d->primary >= 0 ? d->hosts[d->primary].addr : "");
        out->replicas = d->nreaders;
        return true;
    }
    return false;
}
