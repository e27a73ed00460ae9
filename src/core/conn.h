/* conn.h - the two connection objects the pooler herds: a client (an application's socket) and a
 * server (a socket to PostgreSQL), their states, and the session parameters tracked for each. */
#ifndef SL_CONN_H
#define SL_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/prepare.h"
#include "net/stream.h"
#include "pool/stats.h"
#include "util/list.h"

struct sl_pool;
struct sl_server;
struct sl_config;

/* Session parameters a client may set at startup and that pgsluice keeps per client: when a client
 * is linked to a server whose value differs, pgsluice sends SET first. X-macro: C name, wire name. */
#define SL_TRACKED_PARAMS(X)                                   \
    X(CLIENT_ENCODING, "client_encoding")                      \
    X(DATESTYLE, "DateStyle")                                  \
    X(TIMEZONE, "TimeZone")                                    \
    X(INTERVALSTYLE, "IntervalStyle")                          \
    X(STANDARD_CONFORMING_STRINGS, "standard_conforming_strings") \
    X(APPLICATION_NAME, "application_name")
#define SL_PARAM_ENUM(id, name) SL_PARAM_##id,
typedef enum { SL_TRACKED_PARAMS(SL_PARAM_ENUM) SL_NPARAMS } sl_param_id;
#undef SL_PARAM_ENUM
extern const char *const sl_param_names[SL_NPARAMS];
int sl_param_lookup(const char *name); /* case-insensitive; -1 if not tracked */

/* Parameter values, interned (util/intern.h): equal values are the same pointer, and thousands of
 * clients with the same settings share one copy. NULL = unset. */
typedef struct sl_params {
    const char *v[SL_NPARAMS];
} sl_params;
void sl_params_set(sl_params *p, int id, const char *value);
/* Set from a value that is already interned (another sl_params' v[]): no lookup. */
void sl_params_set_interned(sl_params *p, int id, const char *interned);
void sl_params_clear(sl_params *p);

#define SL_CLIENT_STATES(X)                                                   \
    X(LOGIN)        /* reading the startup packet */                           \
    X(AUTH)         /* password exchange */                                    \
    X(WELCOME)      /* logged in, waiting for a server so it can learn server parameters */ \
    X(IDLE)         /* between transactions, no server */                      \
    X(WAITING)      /* wants a server, queued in its pool */                   \
    X(ACTIVE)       /* linked to a server */                                   \
    X(CLOSING)
#define SL_STATE_ENUM(s) SL_CL_##s,
typedef enum { SL_CLIENT_STATES(SL_STATE_ENUM) } sl_client_state;
#undef SL_STATE_ENUM
const char *sl_client_state_name(sl_client_state s);

#define SL_SERVER_STATES(X)                                                   \
    X(CONNECTING)   /* TCP/unix connect in progress */                        \
    X(LOGIN)        /* startup and authentication */                          \
    X(IDLE)         /* in its pool's idle list, ready */                       \
    X(SETUP)        /* running pooler queries (SET, check, reset) before use or reuse */ \
    X(ACTIVE)       /* linked to a client */                                   \
    X(MOVING)       /* being handed to another worker */                      \
    X(CLOSING)
#define SL_STATE_ENUM(s) SL_SV_##s,
typedef enum { SL_SERVER_STATES(SL_STATE_ENUM) } sl_server_state;
#undef SL_STATE_ENUM
const char *sl_server_state_name(sl_server_state s);

struct sl_scram_server;

typedef struct sl_client {
    sl_stream s;                 /* must stay first */
    sl_client_state state;
    uint32_t slot, gen;          /* identity on its worker, for messages from other threads */
    uint32_t cancel_key;         /* BackendKeyData we gave it: pid = worker<<24 | slot */
    uint64_t id;                 /* global connection number for logs */
    struct sl_pool *pool;
    struct sl_server *server;
    sl_list node;                /* on its worker's client list */
    sl_list wait_node;           /* on its pool's waiting list (under the pool lock) */
    int waiter_worker;           /* for the pool: which worker owns this waiter */
    int64_t queued_at;           /* when it joined the waiting list (pool lock) */
    sl_params params;            /* what this client expects on any server */
    const char *user;            /* interned */
    const char *dbname;          /* interned */
    char addr[64];
    int auth_method;             /* sl_auth_type used for this login */
    uint8_t md5_salt[4];
    struct sl_scram_server *scram;
    bool admin;                  /* connected to the admin console */
    bool in_wait_queue;          /* changed under the pool lock; read by the owner with __atomic_load_n */
    bool got_server_by_handoff;
    bool peer_closed;            /* it sent Terminate or closed its end: no shutdown() needed */
    int64_t connect_time, request_time, wait_start, last_activity, xact_start, query_start;
    uint64_t wait_us_total;
    struct sl_config *cfg;       /* snapshot this client was admitted under */
    sl_stmt_map ps_map;          /* its prepared statement names (transaction mode rewriting) */
} sl_client;

typedef enum { SL_SETUP_NONE = 0, SL_SETUP_CHECK, SL_SETUP_PARAMS, SL_SETUP_RESET, SL_SETUP_CONNECT_QUERY, SL_SETUP_ROLLBACK } sl_setup_step;

typedef struct sl_server {
    sl_stream s;                 /* must stay first */
    sl_server_state state;
    uint64_t id;
    struct sl_pool *pool;
    sl_client *client;
    sl_list node;                /* on its worker's server list */
    sl_list pool_node;           /* on its pool's idle list (under the pool lock) */
    int idle_worker;             /* which idle list it is on */
    uint32_t be_pid, be_key;     /* PostgreSQL's BackendKeyData, for cancels */
    sl_params params;            /* the server's current values */
    int outstanding;             /* ReadyForQuery messages still expected by the linked client */
    bool in_batch;               /* extended-protocol messages since the last Sync */
    bool release_pending;        /* ready to go back to the pool once flushed */
    bool close_after_release;
    bool logged_in;              /* counted as connecting in its pool until then */
    bool dirty;                  /* session state may be left (session mode: reset needed) */
    char xact;                   /* last ReadyForQuery status: I, T or E */
    sl_setup_step setup;         /* pooler query in flight */
    bool setup_failed;
    char setup_error[256];
    char addr_str[64];
    /* connect: a host name being looked up (resolve != NULL while the lookup runs) */
    uv_getaddrinfo_t *resolve;
    struct addrinfo *dns_res, *dns_cur, *dns_next; /* the answer: all, being tried, still to try */
    bool retrying;               /* poll handle closing between two addresses */
    char dns_name[256];
    int dns_port;
    /* login */
    int auth_step;
    void *scram;                 /* sl_scram_client during login */
    int64_t connect_time, last_used, idle_since, link_time;
    /* handoff between workers */
    uint32_t handoff_slot, handoff_gen;
    int handoff_to;
    sl_pool_stats pend;          /* counters not yet added to the pool's */
    /* prepared statements (proxy_ps.c) */
    bool ps_active;              /* this link rewrites statement names */
    bool ps_skip_till_sync;      /* the server failed an extended-protocol request and discards
                                    everything up to the client's next Sync */
    sl_stmt_cache ps_cache;      /* statements prepared on this server */
    struct sl_expect *exp;       /* ring of responses the server owes, in order */
    uint32_t exp_head, exp_n, exp_cap;
    uint32_t ps_parses_queued;   /* entries of exp that are Parses of a statement (for proxy_ps.c) */
} sl_server;

#endif
