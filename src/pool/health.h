/* health.h - primary/replica routing's knowledge: what the health checks found on each host (one
 * record per host:port, process-wide, written by the checker threads of src/health), and each
 * routed database's topology computed from it (which host is its primary, which replicas are in
 * rotation, how far they lag), which the routes of that database copy into their backends. No I/O
 * here: the checker stores results, sl_topology_refresh decides, core carries out the actions.
 *
 * Locks: a host's lock and the topology lock are leaves (taken last); the order is registry ->
 * route -> topology -> host. */
#ifndef SL_POOL_HEALTH_H
#define SL_POOL_HEALTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

struct sl_pool_actions;

/* What a host was found to be at its last check. */
typedef enum {
    SL_HOST_UNCHECKED = 0, /* no check has finished yet */
    SL_HOST_UP,            /* connected, logged in, answered */
    SL_HOST_DOWN,          /* could not connect, or the server refused (starting, shutting down) */
    SL_HOST_CHECK_FAILED,  /* reachable, but the check could not log in or query (credentials?) */
} sl_host_state;
const char *sl_host_state_name(int s);

/* One check, as the checker found it. */
typedef struct sl_check_result {
    int64_t started, finished;   /* monotonic usec */
    int state;                   /* sl_host_state: UP, DOWN or CHECK_FAILED */
    bool in_recovery;
    uint64_t lsn;                /* primary: pg_current_wal_insert_lsn(); replica: pg_last_wal_replay_lsn() */
    uint64_t receive_lsn;        /* replica: pg_last_wal_receive_lsn() (0: none) */
    double replay_age_s;         /* replica: now() - pg_last_xact_replay_timestamp() (< 0: unknown) */
    bool replay_paused;
    int timeline;                /* primary: its timeline (0: unknown) */
    char error[256];
} sl_check_result;

#define SL_LSN_SAMPLES 128

/* A host as the checks see it. Records are never freed (a process checks few hosts). */
typedef struct sl_host {
    char *host;                  /* NULL: the default Unix socket directory */
    int port;
    struct sl_host *next;
    pthread_mutex_t lock;
    pthread_cond_t wake;         /* its checker waits on it between checks */
    /* --- lock --- */
    bool check_now;              /* evidence that something changed: check at once */
    bool in_use;                 /* a routed database of the current config names it */
    int state;                   /* sl_host_state */
    bool role_known;             /* a check has answered at least once */
    bool in_recovery;            /* the last answer */
    int timeline;
    uint64_t lsn, receive_lsn;
    double replay_age_s;
    bool replay_paused;
    int64_t checked_at;          /* when the last check started (usec; 0: never) */
    int64_t finished_at;
    int64_t state_since;
    uint32_t role_gen;           /* bumped whenever in_recovery changes */
    uint64_t checks, failures;
    char error[256];
    /* WAL positions the primary had, with the time each check started: replica lag in seconds is
     * how long ago the primary first had WAL a replica has not replayed; read-your-writes needs
     * the position of a check that started after a client's write */
    int64_t sample_at[SL_LSN_SAMPLES];
    uint64_t sample_lsn[SL_LSN_SAMPLES];
    int nsamples, sample_head;   /* head: the oldest */
} sl_host;

/* The record of host:port, made if needed (NULL on out of memory). */
sl_host *sl_host_get(const char *host, int port);
/* Every record, in the order made (the list only grows; safe to walk without a lock). */
sl_host *sl_hosts_first(void);
/* Store a check's result; true if anything routing depends on changed (state, role, timeline, or
 * a lag sample). */
bool sl_host_store(sl_host *h, const sl_check_result *res);
/* Evidence from a pool connection (a failed connect, a login that reported in_hot_standby not as
 * expected): check this host now. */
void sl_host_request_check(sl_host *h);
/* The checker waits here until its next check is due (deadline, monotonic usec), a check is
 * requested or stop is set; returns at once if a check was requested. */
void sl_host_wait(sl_host *h, int64_t deadline, const bool *stop);
void sl_host_wake_all(void);
/* "host:port" ("unix:port" for the default socket directory). */
void sl_host_addr_str(const sl_host *h, char *out, size_t len);

/* ---- topology of each routed database ---- */

/* How a host serves its database, decided by the last refresh. */
typedef enum {
    SL_BH_UNCHECKED = 0,  /* not checked yet: its role_map role is trusted */
    SL_BH_UP,             /* in rotation for its role */
    SL_BH_DOWN,           /* unreachable */
    SL_BH_LAGGING,        /* a replica past max_replica_lag(_bytes) */
    SL_BH_FENCED,         /* writable but not the database's primary (split brain: an older timeline) */
    SL_BH_CHECK_FAILED,   /* checks cannot log in: its role_map role is trusted */
} sl_backend_health;
const char *sl_backend_health_name(int h);

/* A backend's view, copied into every route of the database. */
typedef struct sl_topo_host {
    sl_host *h;
    int configured;              /* sl_host_role (role_map) */
    int role;                    /* sl_role: what it is now (configured until a check answers) */
    int health;                  /* sl_backend_health */
    bool writes;                 /* the database's primary */
    bool reads;                  /* a replica in rotation */
    int64_t lag_us, lag_bytes;   /* replicas; -1: unknown */
    uint32_t role_gen;
} sl_topo_host;

/* Events a refresh reports (logged there; the checker runs failover_command on PRIMARY_LOST). */
typedef enum { SL_TOPO_PRIMARY_LOST, SL_TOPO_PRIMARY_CHANGED } sl_topo_event_kind;
#define SL_TOPO_MAX_EVENTS 16
typedef struct sl_topo_events {
    struct {
        int kind;
        char db[128];
        char host[256];
        int port;
    } ev[SL_TOPO_MAX_EVENTS];
    int n;
} sl_topo_events;

/* Take the routed databases of a new snapshot (at start, on every reload): their hosts' records
 * are made and marked in use, the others unmarked. Routes pick the new views at their next
 * refresh. false on out of memory (the old views stay). */
bool sl_topology_configure(const sl_config *cfg);
/* Recompute every database's view from its hosts' records, copy it into the routes, and serve
 * waiting clients that can be served now (act). ev: may be NULL. */
void sl_topology_refresh(int64_t now, struct sl_pool_actions *act, sl_topo_events *ev);
/* Has some routed database no primary (so its hosts are checked more often)? */
bool sl_topology_primary_missing(void);

/* A copy of one database's view, for SHOW BACKENDS, /metrics, /health and /ready. */
typedef struct sl_topo_snap_host {
    char addr[280];              /* host:port */
    char *host;
    int port;
    int configured, role, health;
    bool writes, reads;
    int64_t lag_us, lag_bytes;
    int host_state;              /* sl_host_state of the record */
    int timeline;
    uint64_t lsn;
    int64_t checked_ago_us;      /* -1: never */
    uint64_t checks, failures;
    char error[256];
} sl_topo_snap_host;
typedef struct sl_topo_snap_db {
    char *name;
    sl_db_routing rt;
    int primary;                 /* index, -1: none */
    int nreaders;
    uint64_t primary_changes;
    int n;
    sl_topo_snap_host *hosts;
} sl_topo_snap_db;
typedef struct sl_topo_snap {
    sl_topo_snap_db *dbs;
    int n;
} sl_topo_snap;
bool sl_topology_snapshot(sl_topo_snap *s, int64_t now);
void sl_topology_snapshot_free(sl_topo_snap *s);

#endif
