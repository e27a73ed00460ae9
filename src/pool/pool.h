/* pool.h - pools of server connections, one per (database, user): limits, the idle lists (one per
 * worker), the FIFO of waiting clients, the cached welcome parameters and the pool's counters.
 * Shared by all workers; every field below `lock` is protected by it. Functions named *_locked
 * expect the lock held. */
#ifndef SL_POOL_H
#define SL_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "core/conn.h"
#include "net/worker.h"
#include "pool/stats.h"
#include "proto/pkt.h"
#include "util/list.h"



/* Accounting shared by all pools of one database (max_db_connections) or one user. */
typedef struct sl_limit_group {
    char *name;
    int n_servers;
    struct sl_limit_group *next;
    /* admin console state of a database (db groups only; read and written with atomics) */
    bool paused;                /* PAUSE db / KILL db: no server for new transactions until RESUME */
    bool disabled;              /* DISABLE db: new client logins refused until ENABLE */
    int64_t reconnect_before;   /* RECONNECT: servers connected up to then close when released */
} sl_limit_group;

/* The counters behind SHOW STATS at one moment (at: monotonic usec). */
typedef struct sl_pool_totals {
    int64_t at;
    uint64_t assignments, xact_count, query_count, bytes_in, bytes_out, xact_time_us, query_time_us, wait_time_us,
        client_parses, server_parses, binds;
} sl_pool_totals;

typedef struct sl_pool {
    sl_list node;               /* global pool list */
    char *db_name;              /* as clients name it */
    char *user;                 /* client user */

    pthread_mutex_t lock;
    /* --- everything below is protected by lock --- */
    /* target, refreshed on reload */
    char *host;
    int port;
    char *server_db;
    char *server_user;
    char *server_password;      /* NULL: use client's / userlist */
    char *connect_query;
    /* the last address host resolved to (server.c), reused for dns_max_ttl; dns_at 0 = none */
    char *dns_host;
    int dns_port;
    struct sockaddr_storage dns_addr;
    socklen_t dns_len;
    int64_t dns_at;
    sl_params db_defaults;      /* client_encoding/datestyle/timezone/application_name from [databases] */
    int pool_size, min_pool_size, reserve_size, max_db_conns, max_user_conns, pool_mode;
    int64_t server_lifetime;    /* usec, 0 = unlimited: checked when a server is released */
    bool round_robin;           /* server_round_robin: idle servers reused oldest first */

    int n_servers;              /* all, including connecting ones */
    int n_connecting;
    int n_idle;
    int n_waiting;
    sl_list idle[SL_MAX_WORKERS];
    sl_list waiting;            /* sl_client.wait_node, FIFO */
    int n_clients;              /* logged-in clients of this pool (any worker) */

    bool have_welcome;
    sl_pktbuf welcome;          /* ParameterStatus messages of untracked parameters */
    sl_params welcome_params;   /* the server's defaults of tracked parameters */

    bool have_scram_keys;       /* ClientKey recovered from a client's SCRAM proof (pass-through) */
    uint8_t scram_client_key[32], scram_server_key[32];

    int64_t last_login_failure;  /* usec; new logins are not tried for server_login_retry after */
    char last_login_error[256];
    char last_login_sqlstate[6];

    bool paused, disabled;
    sl_limit_group *db_group, *user_group;
    sl_pool_stats stats;
    int64_t last_connect_attempt;
    uint64_t assignments;       /* times a server was given to a client */
    sl_pool_totals period_old, period_new; /* at the last two stats_period boundaries (SHOW STATS avg_*) */
} sl_pool;

typedef enum {
    SL_ACQ_GOT,      /* *out is an idle server of this worker, now the caller's */
    SL_ACQ_QUEUED,   /* the client waits; it will be handed a server or woken */
    SL_ACQ_FAIL,     /* cannot serve now: err filled (sqlstate + message) */
} sl_acquire_result;

void sl_pools_init(void);
/* Find or create the pool for a client; NULL if the database is unknown (err set). */
sl_pool *sl_pool_get(const sl_config *cfg, const char *dbname, const char *user, char *err, size_t errlen);
/* Refresh every pool's target and limits from a new config. */
void sl_pools_reconfigure(const sl_config *cfg);

sl_acquire_result sl_pool_acquire(sl_pool *p, sl_client *c, sl_server **out, char *sqlstate, char *err, size_t errlen);
/* Client no longer wants a server (closed, timed out). Returns false if a server is already on its way. */
bool sl_pool_unqueue(sl_pool *p, sl_client *c);
/* A server on the calling worker is free (just logged in, or done with a client). */
void sl_pool_release(sl_server *s);
/* A server is gone; drop it from the books. */
void sl_pool_forget_server(sl_server *s);
/* Could not log in: record and fail or keep waiters. */
void sl_pool_login_failed(sl_pool *p, const char *sqlstate, const char *msg);
/* Start connections for waiting clients / min_pool_size, on the worker of each waiter. */
void sl_pool_kick(sl_pool *p);
void sl_pools_tick(int64_t now);
/* Take an idle server of this worker out of its idle list for maintenance; false if gone. */
bool sl_pool_take_idle(sl_server *s);

void sl_pool_set_welcome(sl_pool *p, const sl_server *s, const sl_pktbuf *other_params);
/* Move a server's collected counters into its pool (takes the lock). */
void sl_pool_flush_stats(sl_server *s);

/* Iterate pools (admin/stats): calls fn for each pool with the pool list lock held. */
/* Cross-worker handoff of a server (mailbox handlers). */
void sl_pool_detach_for(sl_server *s, int to, uint32_t slot, uint32_t gen);
void sl_pool_arrived(sl_worker *w, sl_server *s, uint32_t slot, uint32_t gen);

void sl_pools_foreach(void (*fn)(sl_pool *p, void *arg), void *arg);
int sl_pools_count(void);

/* ---- admin console controls ---- */
/* Is this pool holding new transactions (PAUSE of its database, or the process paused, suspended or
 * shutting down)? */
bool sl_pool_paused_locked(const sl_pool *p);
void sl_pool_totals_locked(const sl_pool *p, sl_pool_totals *t, int64_t now);
/* PAUSE/RESUME one database (NULL: every database that has pools). Resuming hands idle servers to
 * queued clients and opens new ones. */
void sl_db_set_paused(const char *db, bool paused);
void sl_db_set_disabled(const char *db, bool disabled);
/* RECONNECT: servers of db (NULL: all) connected until now are closed when next released. */
void sl_db_reconnect(const char *db);
/* Admin state of a database; false if no pool or control ever named it. */
bool sl_db_state(const char *db, bool *paused, bool *disabled, int *n_servers);
int sl_dbs_paused_count(void);
int sl_user_servers(const char *user);
/* Should this server close instead of going back to the pool (RECONNECT, RELOAD)? */
bool sl_server_close_needed(const sl_server *s);
/* The process-wide pause ended: serve queued clients of every pool not paused itself. */
void sl_pools_resume(void);

#endif
