/* pool.h - routes and backends: the pooling decisions, without I/O.
 *
 * A route is what clients connect to: one (database, user) pair, its limits, its queue of waiting
 * clients, its counters and its admin-console state. A route has backends: one per host of its
 * database (in the order configured), each with its own idle server connections (one list per
 * worker), DNS cache, welcome parameters and login-failure state.
 *
 * This layer only keeps the books, under each route's lock, and answers with decisions: "here is
 * an idle server", "ask worker 2 for its idle server", "open a connection to this backend on worker
 * 1", "hand this server to the client in slot 7 of worker 0", "close it". The connection layer
 * (src/core) carries them out. It knows a server connection and a waiting client only by the small
 * structs they embed (sl_pool_conn, sl_pool_waiter). Functions named *_locked expect the route's
 * lock held. */
#ifndef SL_POOL_H
#define SL_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "pool/stats.h"
#include "proto/params.h"
#include "proto/pkt.h"
#include "util/list.h"
#include "util/mutex.h"

struct sl_route;
struct sl_backend;
struct sl_host;

/* What a client wants a server for: a transaction it declared read-only may go to a replica
 * (read_write_split); anything else needs the primary. */
typedef enum { SL_INTENT_WRITE = 0, SL_INTENT_READ } sl_intent;
/* What a backend is to its database. */
typedef enum { SL_ROLE_ANY = 0, SL_ROLE_PRIMARY, SL_ROLE_REPLICA } sl_role;
const char *sl_role_name(sl_role r);

/* Embedded in a server connection: what the pool knows of it. */
typedef struct sl_pool_conn {
    sl_list idle_node;           /* on backend->idle[worker] while parked (route lock) */
    struct sl_backend *backend;
    int worker;                  /* the worker whose loop holds it (whose idle list, when parked) */
    int64_t connect_time;
    int64_t idle_since;
    uint32_t target_gen;         /* backend->target_gen when it connected */
    bool logged_in;              /* counted as connecting until then */
    bool testing;                /* counted as tested (pooler queries running) */
    bool retire;                 /* atomic: close instead of reuse (at release, or by its owner's tick when
                                    taken off the idle list to make room) */
    bool gone;                   /* forgotten by its route (no longer counted) */
    bool promised;               /* taken off the idle list for a client whose worker asks its owner
                                    to hand it over (route lock): the owner must keep it until then */
    uint8_t standby;             /* in_hot_standby the server reported at login: SL_STANDBY_* */
} sl_pool_conn;
enum { SL_STANDBY_UNKNOWN = 0, SL_STANDBY_OFF, SL_STANDBY_ON };

/* Embedded in a client: its place in its route's queue. */
typedef struct sl_pool_waiter {
    sl_list node;                /* on route->waiting (route lock) */
    int worker;
    uint32_t slot, gen;          /* how its worker names it */
    sl_intent intent;            /* set by the owner before it asks */
    int64_t queued_at;
    bool queued;                 /* written under the route lock; read by the owner (atomic) */
    bool login;                  /* a client still logging in (it needs a server to learn its parameters) */
    /* read-your-writes (routes with read_write_split; route lock): its last transaction went to the
     * primary as a write; since when its reads need a replica that has replayed what it wrote */
    bool last_write;
    int64_t ryw_after;
} sl_pool_waiter;

/* Accounting shared by all routes of one database (max_db_connections) or one user. Never freed:
 * a database's group also keeps the counters of its routes that were freed. */
typedef struct sl_limit_group {
    char *name;
    int n_servers;               /* atomic */
    int n_clients;               /* atomic: logged-in clients (max_db/user_client_connections) */
    struct sl_limit_group *next;
    /* admin console state of a database (db groups only; atomics) */
    bool paused;                 /* PAUSE db / KILL db: no server for new transactions until RESUME */
    bool disabled;               /* DISABLE db: new client logins refused until ENABLE */
    int64_t reconnect_before;    /* RECONNECT: servers connected up to then close when released */
    sl_pool_stats retired;       /* counters of freed routes (registry lock) */
    uint64_t retired_assignments;
    bool have_retired;
} sl_limit_group;

/* The counters behind SHOW STATS at one moment (at: monotonic usec). */
typedef struct sl_pool_totals {
    int64_t at;
    uint64_t assignments, xact_count, query_count, bytes_in, bytes_out, xact_time_us, query_time_us, wait_time_us,
        client_parses, server_parses, binds, client_logins;
} sl_pool_totals;

typedef struct sl_backend {
    struct sl_route *route;
    int index;                   /* position in the database's host list */
    char *host;                  /* NULL: the default Unix socket directory */
    int port;
    int role;                    /* sl_role: what it is now (atomic; route lock to change) */
    bool retired;                /* no longer configured: its servers close, then it is freed */
    sl_list retired_node;        /* on route->retired_backends while retired */
    uint32_t target_gen;         /* bumped when what its servers log in to changes (reload) */
    bool tls_after_refusal;      /* atomic; server_tls_sslmode allow: a plaintext login was refused, so
                                    its next connections ask for TLS */
    /* --- route lock --- */
    int n_servers;               /* all, including connecting ones */
    int n_connecting;
    int n_idle;
    int n_tested;
    int n_listeners;             /* LISTEN fan-out connections holding it (sl_route_listen_backend) */
    sl_list *idle;               /* one list per worker; most recently used first */
    int64_t last_connect_attempt;
    /* primary/replica routing (routed databases; copied from the topology by every refresh) */
    struct sl_host *hostrec;     /* its health check record; NULL when the database has no roles */
    int configured_role;         /* sl_host_role (role_map) */
    int health;                  /* sl_backend_health */
    bool serves_write;           /* the database's primary */
    bool serves_read;            /* a replica in rotation */
    int64_t lag_us, lag_bytes;   /* -1: unknown */
    uint32_t role_gen;           /* its record's role_gen when last copied: a change retires its servers */
    bool role_gen_set;
    int64_t last_login_failure;  /* usec; new logins are not tried for server_login_retry after */
    char last_login_error[256];
    char last_login_sqlstate[6];
    bool last_login_transient;   /* the server is not up right now (restarting, refusing connections):
                                    logged-in clients wait for it instead of failing */
    /* the address the host name resolved to last, reused for dns_max_ttl (dns_at 0: none) */
    struct sockaddr_storage dns_addr;
    socklen_t dns_len;
    int64_t dns_at;
    /* what a server of this backend says at login, replayed to clients that log in later */
    bool have_welcome;
    sl_pktbuf welcome;           /* ParameterStatus messages of untracked parameters */
    sl_params welcome_params;    /* the server's defaults of tracked parameters */
} sl_backend;

/* The timeouts of a route's clients, resolved from [users], [databases] and the global settings
 * (in that order of precedence). usec, 0 = off. */
typedef struct sl_client_timeouts {
    int64_t query_timeout, query_wait_timeout, idle_transaction_timeout, transaction_timeout, client_idle_timeout;
} sl_client_timeouts;

/* A replication connection's kind (the startup packet's replication=): its own route, one server
 * opened for each client with the client's parameters, closed when the client leaves. */
typedef enum { SL_REPL_NONE = 0, SL_REPL_PHYSICAL, SL_REPL_LOGICAL } sl_replication;
const char *sl_replication_name(int replication); /* "none", "physical", "logical" (SHOW CLIENTS) */

typedef struct sl_route {
    sl_list node;                /* the registry's list */
    char *db_name;               /* as clients name it; never changes */
    char *user;                  /* client user; never changes */
    int replication;             /* sl_replication; never changes (part of the key) */
    int refs;                    /* clients admitted through it (atomic) */

    sl_mutex lock;               /* util/mutex.h: taken twice per transaction */
    /* --- everything below is protected by lock --- */
    /* resolved from the config snapshot (database, user and global settings), refreshed on reload */
    char *server_db, *server_user;
    char *server_password;       /* NULL: the auth file's entry for server_user */
    char *connect_query;
    sl_params db_defaults;       /* client_encoding/datestyle/timezone/application_name from [databases] */
    int pool_size, min_pool_size, reserve_size, max_db_conns, max_user_conns;
    int pool_mode;               /* also read without the lock (atomic) */
    int64_t server_lifetime;     /* usec, 0 = unlimited; also read without the lock (atomic) */
    bool round_robin;            /* server_round_robin: idle servers reused oldest first */
    int load_balance;            /* sl_load_balance over the backends */
    int next_backend;            /* round-robin position, or the sticky backend (disable) */
    /* primary/replica routing (sl_db_routing of its database) */
    bool routed;                 /* its database has roles: backends serve by role and health */
    int target;                  /* sl_target_session */
    int rw_split;                /* read_write_split; also read without the lock by clients (atomic) */
    bool fallback;               /* replica_fallback */
    bool ryw;                    /* read_your_writes */
    int replica_lb;              /* sl_replica_lb */
    int primary;                 /* index of the primary backend, -1: none */
    int n_readers;               /* replicas in rotation */
    char *topo_name;             /* its [databases] entry (the topology view's name) */
    int max_db_client_conns, max_user_client_conns; /* -1: unlimited */
    sl_client_timeouts timeouts; /* read by the clients' workers without the lock (atomics) */

    sl_backend **backends;       /* the database's hosts, in order */
    int nbackends;
    sl_list retired_backends;    /* no longer configured, servers still open */

    int n_servers;               /* over all backends, including retired ones */
    int n_clients;               /* logged-in clients (any worker) */
    int n_waiting;
    sl_list waiting;             /* sl_pool_waiter.node, first come first served */
    int64_t unused_since;        /* no client and no server since then (0: in use) */
    int64_t free_after;          /* usec unused before the route is freed: pool_idle_timeout (the user's or
                                    the global one) when set, else autodb_idle_timeout (route lock) */

    char *auth_secret;           /* the user's secret found by auth_query (also logs servers in) */
    int64_t auth_secret_at;
    bool have_scram_keys;        /* ClientKey recovered from a client's SCRAM proof (pass-through) */
    uint8_t scram_client_key[32], scram_server_key[32];

    bool paused, disabled;
    int evict_wanted;            /* idle servers to give up for another pool of the same database or user that
                                    waits at max_db_connections / max_user_connections (registry tick) */
    sl_limit_group *db_group, *user_group;
    sl_pool_stats stats;
    uint64_t assignments;        /* times a server was given to a client */
    sl_pool_totals period_old, period_new; /* at the last two stats_period boundaries (SHOW STATS avg_*) */
} sl_route;

/* ---- decisions ---- */

#define SL_POOL_MAX_LAUNCH 16
typedef struct sl_launch {
    sl_backend *backend;         /* already counted in its route: launch it, or sl_route_launch_failed */
    int worker;
    uint32_t slot, gen;          /* replication routes: the client it is opened for (gen 0: anyone) */
} sl_launch;

typedef struct sl_wakeup {
    int worker;
    uint32_t slot, gen;
} sl_wakeup;

typedef struct sl_handover {
    sl_pool_conn *conn;          /* idle on conn->worker, taken off its idle list */
    int to_worker;
    uint32_t slot, gen;
} sl_handover;

/* Side effects a decision asks for, carried out by the caller once every lock is released. */
typedef struct sl_pool_actions {
    sl_launch launch[SL_POOL_MAX_LAUNCH];
    int nlaunch;
    sl_wakeup *wake;             /* clients to wake up (they ask again, or learn why not) */
    int nwake, wake_cap;
    sl_handover *hand;
    int nhand, hand_cap;
} sl_pool_actions;
/* Cheap: most decisions ask for nothing (the launch slots are written only when counted). */
static inline void sl_pool_actions_init(sl_pool_actions *a)
{
    a->nlaunch = a->nwake = a->nhand = 0;
    a->wake_cap = a->hand_cap = 0;
    a->wake = NULL;
    a->hand = NULL;
}
void sl_pool_actions_free_lists(sl_pool_actions *a);
static inline void sl_pool_actions_free(sl_pool_actions *a)
{
    if (a->wake || a->hand) sl_pool_actions_free_lists(a);
    a->nlaunch = a->nwake = a->nhand = 0;
}

typedef enum {
    SL_ACQ_GOT,      /* conn: an idle server of the caller's worker, now the caller's */
    SL_ACQ_STEAL,    /* conn: an idle server of conn->worker, promised to the caller; its owner must
                        detach it and send it over */
    SL_ACQ_QUEUED,   /* the client waits: a server is handed over or it is woken later */
    SL_ACQ_FAIL,     /* cannot serve now: sqlstate + err */
} sl_acquire_kind;

typedef struct sl_acquire {
    sl_acquire_kind kind;
    sl_pool_conn *conn;
    char sqlstate[6];
    char err[400];
} sl_acquire;

typedef enum {
    SL_REL_IDLE,     /* parked on the caller's idle list */
    SL_REL_HANDOFF,  /* give it to the waiting client (worker, slot, gen) */
    SL_REL_CLOSE,    /* retire it (lifetime, RECONNECT, target changed, database gone) */
} sl_release_kind;

typedef struct sl_release {
    sl_release_kind kind;
    int worker;
    uint32_t slot, gen;
} sl_release;

/* ---- the registry of routes (registry.c) ---- */

/* nworkers: how many idle lists each backend keeps. */
void sl_pools_init(int nworkers);
/* The route of (dbname, user, replication), created if needed, with a reference for the caller (a
 * client). NULL if the database is unknown or disabled (err set, sqlstate 3D000 or 57P03). */
sl_route *sl_route_get(const sl_config *cfg, const char *dbname, const char *user, int replication,
                       char *sqlstate, char *err, size_t errlen);
/* A replication route's server, logged in for the client it was opened for: that client's turn,
 * taken out of the queue (false: it is no longer waiting; the server is not for anyone else). */
bool sl_route_claim_waiter(sl_route *r, sl_pool_waiter *w);
void sl_route_put(sl_route *r);
/* Refresh every route's targets and limits from a new snapshot; servers whose target changed
 * retire. Starts servers for waiting clients where the new limits allow. */
void sl_pools_reconfigure(const sl_config *cfg, sl_pool_actions *act);
/* Every 100 ms (worker 0): reserve pool, min_pool_size, retries after login failures, freeing
 * unused routes and retired backends. */
void sl_pools_tick(const sl_config *cfg, int64_t now, sl_pool_actions *act);
/* Hold new transactions everywhere (the process is paused, suspended or shutting down). */
void sl_pools_set_hold(bool hold);
/* Calls fn for each route with the registry lock held (routes cannot be freed meanwhile). */
void sl_pools_foreach(void (*fn)(sl_route *r, void *arg), void *arg);
int sl_pools_count(void);
/* Servers serving a client or running pooler queries, over every route (shutdown waits for 0). */
int sl_pools_busy_servers(void);

/* ---- one route (route.c) ---- */

sl_acquire_kind sl_route_acquire(sl_route *r, sl_pool_waiter *w, const sl_config *cfg, sl_acquire *out,
                                 sl_pool_actions *act);
/* The client no longer wants a server (closed, timed out). false if a server is already on its way. */
bool sl_route_unqueue(sl_route *r, sl_pool_waiter *w);
/* A server of the caller's worker is free (just logged in, or done with a client); pend: its
 * counters not yet added to the route's. */
void sl_route_release(sl_pool_conn *c, sl_pool_stats *pend, sl_release *out);
/* A server is gone: drop it from the books (once; act may be NULL when nothing is to be done). */
void sl_route_forget(sl_pool_conn *c, sl_pool_stats *pend, sl_pool_actions *act);
/* A launch that never became a connection (out of memory). */
/* Takeover (core/takeover_*.c): a logged-in server connection of backend c->backend handed over by the
 * previous process, counted in now; idle: parked on worker's idle list (else linked to a client). */
void sl_route_adopt_conn(sl_pool_conn *c, int worker, bool idle);
void sl_route_launch_failed(sl_backend *b, sl_pool_actions *act);
/* LISTEN fan-out (core/listen_fanout.c): the backend a database's listener connection logs in to
 * (the only host, or the primary of a database with roles; NULL when there is none or the database
 * has several hosts without roles), held with its route until sl_route_listen_backend_put: neither
 * is freed meanwhile. The listener is not one of the route's servers (pool sizes do not count it). */
sl_backend *sl_route_listen_backend(sl_route *r);
void sl_route_listen_backend_put(sl_backend *b);
/* Would sl_route_listen_backend still pick b (not retired by a reload, still the primary)? */
bool sl_route_listen_backend_current(sl_backend *b);
void sl_route_logged_in(sl_pool_conn *c);
/* A server's login failed: remember why and forget the server (c may be NULL: the failure was
 * before a server existed). When no server of the route is left, the waiting clients are woken:
 * they ask again and learn why at once. New servers for waiters are tried again a second later. */
void sl_route_login_failed(sl_backend *b, sl_pool_conn *c, sl_pool_stats *pend, const char *sqlstate,
                           const char *msg, sl_pool_actions *act);
/* Open servers for waiting clients where the limits allow. */
void sl_route_kick(sl_route *r, sl_pool_actions *act);
/* Take an idle server of this worker off its idle list (maintenance, closing): SL_IDLE_TAKEN, or
 * SL_IDLE_PROMISED when it was promised to a client meanwhile (a detach message is on its way to
 * the owner, who must keep the object until it arrives), or SL_IDLE_NOT_PARKED. */
typedef enum { SL_IDLE_TAKEN, SL_IDLE_PROMISED, SL_IDLE_NOT_PARKED } sl_idle_take;
sl_idle_take sl_route_take_idle(sl_pool_conn *c);
/* The owner got the detach message of a promised connection (it moves, or is closing already). */
void sl_route_promise_kept(sl_pool_conn *c);
/* Pooler queries started / finished on a server (SHOW POOLS sv_tested). */
void sl_route_conn_testing(sl_pool_conn *c, bool testing);
/* An idle connection beyond its route's pool_size (made smaller by SET or RELOAD; or a reserve
 * server nobody waits for), above min_pool_size: true when it is taken off the pool and counted
 * off (the caller closes it). */
bool sl_route_conn_surplus(sl_pool_conn *c, sl_pool_stats *pend);
/* Should this server close instead of going back to the pool? (lifetime, RECONNECT, its target or
 * backend changed by a reload) */
static inline bool sl_route_conn_retire_due(const sl_pool_conn *c, int64_t now);
/* Why it should close, for the log. */
typedef enum { SL_RETIRE_NO = 0, SL_RETIRE_TARGET, SL_RETIRE_LIFETIME, SL_RETIRE_RECONNECT } sl_retire_why;
static inline sl_retire_why sl_route_conn_retire_why(const sl_pool_conn *c, int64_t now);
/* A timeout of the route's clients (field: offsetof in sl_client_timeouts). */
#define SL_ROUTE_TIMEOUT(r, field) __atomic_load_n(&(r)->timeouts.field, __ATOMIC_RELAXED)
/* Move a server's collected counters into its route. */
void sl_route_flush_stats(sl_pool_conn *c, sl_pool_stats *pend);
/* Add counters to a route directly (a client's work that no server collected); st is drained. */
void sl_route_add_stats(sl_route *r, sl_pool_stats *st);
/* A client of this route logged in: false (and not counted) when max_db_client_connections or
 * max_user_client_connections is reached (*which names it). */
bool sl_route_client_login(sl_route *r, const char **which);
void sl_route_client_logout(sl_route *r);  /* a logged-in client of this route left */
static inline int sl_route_pool_mode(const sl_route *r) { return __atomic_load_n(&r->pool_mode, __ATOMIC_RELAXED); }
bool sl_route_held_locked(const sl_route *r);
void sl_route_totals_locked(const sl_route *r, sl_pool_totals *t, int64_t now);
void sl_pool_totals_of(sl_pool_totals *t, const sl_pool_stats *st, uint64_t assignments, int64_t now);
/* Hand idle servers to queued clients and start new ones (after PAUSE/RESUME). */
void sl_route_serve(sl_route *r, sl_pool_actions *act);

/* What a new server of backend b logs in as (copies: a reload may change them). password: NULL
 * when the auth file's entry for user is to be used; free it. */
void sl_route_login_target(sl_backend *b, char *user, size_t ulen, char *db, size_t dlen, char **password,
                           char **connect_query);
void sl_route_set_scram_keys(sl_route *r, const uint8_t client_key[32], const uint8_t server_key[32]);
/* The secret auth_query found for the route's user. */
void sl_route_set_auth_secret(sl_route *r, const char *secret);
/* A copy of it (free it), or NULL when there is none or it is older than max_age (0: any age). */
char *sl_route_auth_secret(sl_route *r, int64_t max_age);
/* The secret auth_query found for (dbname, user) less than max_age ago, if its route exists. */
char *sl_pools_cached_secret(const char *dbname, const char *user, int64_t max_age);
bool sl_route_scram_keys(sl_route *r, uint8_t client_key[32], uint8_t server_key[32]);
/* A client's welcome from what the route's first backend said at login: the untracked
 * ParameterStatus messages appended to out, unset tracked values of p filled in (database defaults
 * first). false when no server has logged in yet. */
bool sl_route_welcome(sl_route *r, sl_pktbuf *out, sl_params *p);
bool sl_route_has_welcome(sl_route *r);

/* Does this route send declared read-only transactions to replicas (read_write_split)? Read by
 * the client's worker without the lock. */
static inline bool sl_route_rw_split(const sl_route *r) { return __atomic_load_n(&r->rw_split, __ATOMIC_RELAXED) != 0; }
/* What a server of this backend is now (sl_role), for SHOW SERVERS. */
static inline int sl_backend_role(const sl_backend *b) { return __atomic_load_n(&b->role, __ATOMIC_RELAXED); }

/* ---- one backend (backend.c) ---- */

sl_backend *sl_backend_new(sl_route *r, int index, const sl_host_def *h);
void sl_backend_free(sl_backend *b);
/* The last working address of the backend's host name, if looked up less than ttl ago. */
bool sl_backend_dns_get(sl_backend *b, int64_t ttl, struct sockaddr_storage *ss, socklen_t *len);
void sl_backend_dns_store(sl_backend *b, const struct sockaddr *sa, socklen_t len);
void sl_backend_dns_forget(sl_backend *b);
/* Remember what the first server to log in said (others are not kept). */
void sl_backend_set_welcome(sl_backend *b, const sl_params *server_params, const sl_pktbuf *other_params);
/* "host:port" or "unix:port" for logs. */
void sl_backend_addr_str(const sl_backend *b, char *out, size_t len);

/* ---- admin console controls (registry.c) ---- */

/* PAUSE/RESUME one database (NULL: every database). Resuming hands idle servers to queued clients
 * and opens new ones. */
void sl_db_set_paused(const char *db, bool paused, sl_pool_actions *act);
void sl_db_set_disabled(const char *db, bool disabled);
/* RECONNECT: servers of db (NULL: all) connected until now are closed when next released. */
void sl_db_reconnect(const char *db);
/* Admin state of a database; false if no route or control ever named it. */
bool sl_db_state(const char *db, bool *paused, bool *disabled, int *n_servers);
int sl_dbs_paused_count(void);
int sl_user_servers(const char *user);
/* The process-wide hold ended: serve queued clients of every route not paused itself. */
void sl_pools_resume(sl_pool_actions *act);
/* Counters of the freed routes of a database (for totals); false if none. */
bool sl_db_retired_stats(const char *db, sl_pool_stats *out);
/* Host names and the address each resolved to, as cached by the backends (SHOW DNS_HOSTS):
 * fn(host, seconds the entry stays valid, "address:port"), each name once. */
void sl_pools_foreach_dns(int64_t ttl, void (*fn)(const char *host, int64_t valid_s, const char *addr, void *arg),
                          void *arg);
/* For each database some of whose routes were freed: their totals (registry lock held). */
void sl_pools_foreach_retired(void (*fn)(const char *db, const sl_pool_totals *t, void *arg), void *arg);

static inline sl_retire_why sl_route_conn_retire_why(const sl_pool_conn *c, int64_t now)
{
    const sl_backend *b = c->backend;
    const sl_route *r = b->route;
    if (__atomic_load_n(&c->retire, __ATOMIC_RELAXED) || b->retired || c->target_gen != __atomic_load_n(&b->target_gen, __ATOMIC_RELAXED))
        return SL_RETIRE_TARGET;
    int64_t lifetime = __atomic_load_n(&r->server_lifetime, __ATOMIC_RELAXED);
    if (lifetime > 0 && now - c->connect_time > lifetime) return SL_RETIRE_LIFETIME;
    if (c->connect_time <= __atomic_load_n(&r->db_group->reconnect_before, __ATOMIC_RELAXED)) return SL_RETIRE_RECONNECT;
    return SL_RETIRE_NO;
}

static inline bool sl_route_conn_retire_due(const sl_pool_conn *c, int64_t now)
{
    return sl_route_conn_retire_why(c, now) != SL_RETIRE_NO;
}

#endif
