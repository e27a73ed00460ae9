/* pool.h - pools of server connections, one per (database, user): limits, the idle lists (one per
 * worker), the FIFO of waiting clients, the cached welcome parameters and the pool's counters.
 * Shared by all workers; every field below `lock` is protected by it. Functions named *_locked
 * expect the lock held. */
#ifndef SL_POOL_H
#define SL_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

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
} sl_limit_group;

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
    sl_params db_defaults;      /* client_encoding/datestyle/timezone/application_name from [databases] */
    int pool_size, min_pool_size, reserve_size, max_db_conns, max_user_conns, pool_mode;

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

#endif
