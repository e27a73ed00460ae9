/* conn.h - the two connection objects the pooler herds: a client (an application's socket) and a
 * server (a socket to PostgreSQL), their states, and what each keeps. A state is changed only by
 * sl_client_set_state / sl_server_set_state (state.c), which check the transition and keep the
 * lists that go with the state. */
#ifndef SL_CONN_H
#define SL_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <netdb.h>

#include "core/close_reason.h"
#include "core/prepare.h"
#include "net/stream.h"
#include "net/worker.h"
#include "pool/pool.h"
#include "pool/stats.h"
#include "proto/params.h"
#include "util/list.h"

struct sl_server;

#define SL_CLIENT_STATES(X)                                                   \
    X(LOGIN)        /* reading the startup packet */                           \
    X(AUTH)         /* password exchange */                                    \
    X(WELCOME)      /* logged in, waiting for a server so it can learn server parameters */ \
    X(IDLE)         /* between transactions, no server */                      \
    X(WAITING)      /* wants a server: queued in its route, or one is on its way */ \
    X(ACTIVE)       /* linked to a server */                                   \
    X(CLOSING)      /* off every list; freed once libuv lets go of its socket */
#define SL_STATE_ENUM(s) SL_CL_##s,
typedef enum { SL_CLIENT_STATES(SL_STATE_ENUM) SL_CL_NSTATES } sl_client_state;
#undef SL_STATE_ENUM
const char *sl_client_state_name(sl_client_state s);

#define SL_SERVER_STATES(X)                                                   \
    X(CONNECTING)   /* name lookup and TCP/unix connect in progress */       \
    X(LOGIN)        /* startup and authentication */                          \
    X(IDLE)         /* parked on its backend's idle list, ready */            \
    X(SETUP)        /* running pooler queries (check, SET, reset, connect_query) */ \
    X(ACTIVE)       /* linked to a client, or in hand between two decisions */ \
    X(MOVING)       /* detached, on its way to another worker */              \
    X(CLOSING)      /* off every list; freed once libuv lets go of its socket */
#define SL_STATE_ENUM(s) SL_SV_##s,
typedef enum { SL_SERVER_STATES(SL_STATE_ENUM) SL_SV_NSTATES } sl_server_state;
#undef SL_STATE_ENUM
const char *sl_server_state_name(sl_server_state s);

struct sl_scram_server;
struct sl_session;
struct sl_fanout_client;
struct sl_fanout_db;

/* What a client needs only while it logs in (allocated at accept, freed once it is in), so that
 * an idle client carries none of it. */
typedef struct sl_client_login {
    int method;                  /* the password exchange under way (client_auth.c) */
    uint8_t md5_salt[4];
    bool external_ldap;          /* SL_AUTH_STEP_EXTERNAL*: LDAP (else PAM) checks the password */
    struct sl_scram_server *scram;
    char *secret;                /* its password secret as auth_query found it (NULL: auth_file's) */
    struct sl_config *cfg;       /* the snapshot whose rule (rule) decides it */
    const void *rule;            /* the matching sl_hba_rule (auth_type hba and ldap), else NULL */
    int64_t fail_at;             /* a refused login answered then (auth_failure_delay; 0: none pending) */
    char fail_sqlstate[6];
    char fail_msg[256];
} sl_client_login;

typedef struct sl_client {
    sl_stream s;                 /* must stay first */
    sl_client_state state;
    uint32_t slot, gen;          /* identity on its worker, for messages from other threads */
    uint32_t cancel_key;         /* BackendKeyData we gave it: pid = worker<<24 | slot */
    uint64_t id;                 /* global connection number for logs */
    sl_route *route;             /* referenced while the client lives (NULL: console or not admitted) */
    struct sl_server *server;
    sl_list node;                /* on its worker's client list (every state but CLOSING) */
    sl_pool_waiter wt;           /* its place in its route's queue */
    sl_params params;            /* what this client expects on any server */
    const char *user;            /* interned */
    const char *dbname;          /* interned */
    char addr[64];
    struct sl_client_login *login; /* while it logs in (LOGIN, AUTH): the exchange's state; NULL after */
    bool console_peer_admin;     /* "pgbouncer" on the console over the Unix socket from our own OS user */
    bool admin;                  /* a console client (its input goes to the console, never a server) */
    uint8_t replication;         /* sl_replication it asked for (startup replication=): its own server */
    bool counted;                /* counted in sl_total_clients (max_client_conn) */
    bool logged_in;              /* counted in its route's clients */
    bool peer_closed;            /* it sent Terminate or closed its end: no shutdown() needed */
    bool is_unix;                /* came in over the Unix socket (never TLS there, as in PostgreSQL) */
    bool wait_notified;          /* told (query_wait_notify) that this wait for a server is long */
    uint8_t resends;             /* times its request went to another server because the one it got
                                    died before answering (proxy.c; reset once a server answers) */
    int64_t connect_time, request_time, wait_start, last_activity, xact_start, query_start;
    uint64_t wait_us_total;
    sl_stmt_map ps_map;          /* its prepared statement names (transaction mode rewriting) */
    char *deferred_begin;        /* read_write_split: a BEGIN pgsluice answered, replayed on the server it
                                    gets (rw_split.c); NULL when none */
    struct sl_session *sess;     /* transaction pooling: settings followed and pins (session_state.c);
                                    NULL until its first request there */
    struct sl_fanout_client *fanout; /* LISTEN fan-out: its channels and notifications waiting for it
                                    (listen_fanout.c); NULL until its first LISTEN served that way */
} sl_client;

typedef enum {
    SL_SETUP_NONE = 0,
    SL_SETUP_CHECK,
    SL_SETUP_PARAMS,
    SL_SETUP_RESET,
    SL_SETUP_CONNECT_QUERY,
    SL_SETUP_ROLLBACK,
    SL_SETUP_AUTH_QUERY, /* looking up a client's secret (auth_query.c) */
    SL_SETUP_BEGIN,      /* the client's deferred BEGIN (read_write_split, rw_split.c) */
    SL_SETUP_ADVISORY,   /* between a pinned client's transactions: does it still hold advisory locks? */
} sl_setup_step;

/* A server connection's way to its backend: the name lookup and the addresses still to try. */
typedef struct sl_connect {
    uv_getaddrinfo_t *resolve;   /* the lookup in libuv's thread pool (NULL when none runs) */
    struct addrinfo *res, *cur, *next; /* the answer: all, being tried, still to try */
    bool retrying;               /* the poll handle is closing between two addresses */
    char name[256];              /* the host name being looked up ("" for numeric / unix) */
} sl_connect;

typedef struct sl_server {
    sl_stream s;                 /* must stay first */
    sl_server_state state;
    uint64_t id;
    sl_pool_conn pc;             /* what its route knows of it: backend, idle list, times */
    sl_client *client;
    sl_list node;                /* on its worker's server list (every state but MOVING and CLOSING) */
    uint32_t be_pid, be_key;     /* PostgreSQL's BackendKeyData, for cancels */
    sl_params params;            /* the server's current values */
    uint32_t reported;           /* bit per SL_PARAM_*: the server reports it (ParameterStatus); the
                                    others are followed from clients' SET statements */
    bool session_dirty;          /* a pinned client left state here: DISCARD ALL before reuse */
    bool sess_active;            /* this link follows SET and pins (transaction/statement pooling) */
    /* the link with a client (proxy.c) */
    int outstanding;             /* ReadyForQuery messages still expected by the linked client */
    bool in_batch;               /* extended-protocol messages since the last Sync */
    bool release_pending;        /* ready to go back to the pool once flushed */
    bool resend_ok;              /* nothing of its answer has reached the client yet and the client's
                                    bytes since the link are kept: should it turn out dead before it
                                    read them, they go to another server (proxy.c) */
    uint32_t resend_sent;        /* while resend_ok: bytes written to it since the link (the client's
                                    and pgsluice's own, such as injected Parse messages) */
    char xact;                   /* last ReadyForQuery status: I, T or E */
    int64_t last_used, link_time;
    sl_pool_stats pend;          /* counters not yet added to the route's */
    /* pooler queries (server_setup.c) */
    sl_setup_step setup;         /* the query in flight */
    bool setup_failed;
    char setup_error[256];
    char *found_secret;          /* SL_SETUP_AUTH_QUERY: the secret column of the row found */
    int found_rows;
    bool advisory_held;          /* SL_SETUP_ADVISORY: the answer (true unless the server said false) */
    /* connect and login (server.c) */
    char addr_str[64];
    sl_connect conn;
    void *scram;                 /* sl_scram_client during login */
    void *scram_job;             /* its key derivation running in libuv's thread pool (server.c), or NULL */
    bool auth_ok;                /* the server said AuthenticationOk (believed only then: ReadyForQuery ends the login) */
    uint8_t tls_step;            /* sl_server_tls_step: TLS negotiation before the startup packet */
    uint8_t tls_plan;            /* sl_tls_plan this connection follows */
    /* cancel requests sent for its client's query (cancel.c): it is not given to anyone else before
     * they are done, or its next client's query could be the one cancelled */
    sl_list cancels;
    bool release_after_cancel;   /* released while cancels were in flight: go back when they end */
    /* replication routes: the client it is opened for (its parameters go in the startup packet) */
    uint32_t for_slot, for_gen;
    /* handoff between workers */
    bool await_detach;           /* closed while promised to another worker's client: its detach
                                    message still names this object, so it is freed after both */
    bool free_pending;           /* await_detach and the poll handle is closed already */
    uint32_t handoff_slot, handoff_gen;
    int handoff_to;
    /* prepared statements (proxy_ps.c) */
    bool ps_active;              /* this link rewrites statement names */
    bool ps_skip_till_sync;      /* the server failed an extended-protocol request and discards
                                    everything up to the client's next Sync */
    sl_stmt_cache ps_cache;      /* statements prepared on this server */
    struct sl_expect *exp;       /* ring of responses the server owes, in order */
    uint32_t exp_head, exp_n, exp_cap;
    uint32_t ps_parses_queued;   /* entries of exp that are Parses of a statement (for proxy_ps.c) */
    /* LISTEN fan-out: this is a database's listener connection (listen_fanout.c), never pooled */
    struct sl_fanout_db *fanout;
} sl_server;

static inline sl_route *sl_server_route(const sl_server *s) { return s->pc.backend->route; }

/* state.c: the transition tables (bit `to` of next[from]) and the changes that keep lists */
extern const unsigned sl_client_next[SL_CL_NSTATES];
extern const unsigned sl_server_next[SL_SV_NSTATES];
bool sl_client_transition_ok(sl_client_state from, sl_client_state to);
bool sl_server_transition_ok(sl_server_state from, sl_server_state to);
void sl_client_set_state_slow(sl_client *c, sl_client_state to);
void sl_server_set_state_slow(sl_server *s, sl_server_state to);

/* Every state change goes through these. The common ones (between IDLE, WAITING and ACTIVE, on the
 * path of every transaction) are a table lookup; the rest (closing, moving, pooler queries: lists
 * and counts to keep, or an illegal change) take the slow path. */
static inline void sl_client_set_state(sl_client *c, sl_client_state to)
{
    if (to != SL_CL_CLOSING && ((sl_client_next[c->state] >> to) & 1u)) c->state = to;
    else sl_client_set_state_slow(c, to);
}

static inline void sl_server_set_state(sl_server *s, sl_server_state to)
{
    sl_server_state from = s->state;
    if (to != SL_SV_CLOSING && to != SL_SV_MOVING && to != SL_SV_SETUP && from != SL_SV_SETUP &&
        from != SL_SV_MOVING && ((sl_server_next[from] >> to) & 1u))
        s->state = to;
    else
        sl_server_set_state_slow(s, to);
}

#endif
