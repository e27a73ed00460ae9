/* sizing.h - the pool sizing rules of `pgsluice tune`, as pure arithmetic on its inputs (machine, servers,
 * [databases] entries, current settings) so that they can be unit-tested without a machine or a server. */
#ifndef SL_TOOLS_SIZING_H
#define SL_TOOLS_SIZING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_SIZING_MAX_SERVERS 64
#define SL_SIZING_REASON 320

/* One PostgreSQL server that [databases] entries point at. */
typedef struct sl_sizing_server {
    char name[160];              /* "host:port" as shown to the operator */
    bool limits_known;           /* max_connections etc. were read (or given with --max-connections) */
    int max_connections;
    int superuser_reserved;      /* superuser_reserved_connections */
    int reserved;                /* reserved_connections (PostgreSQL 16+; 0 before) */
    int n_dbs;                   /* [databases] entries using the global max_db_connections */
    int fixed_db_conns;          /* sum of per-database max_db_connections overrides (> 0) */
    int n_unlimited_dbs;         /* entries whose own max_db_connections = 0 (no bound at all) */
    bool has_wildcard;           /* the "*" entry points here: one pool per database name clients ask for */
} sl_sizing_server;

typedef struct sl_sizing_input {
    int cpus;                    /* >= 1 */
    uint64_t memory_bytes;       /* >= 1 */
    int instances;               /* pgsluice processes sharing the servers (>= 1) */
    int pkt_buf;                 /* bytes; a client costs about two buffers */
    int cur_min_pool_size;
    sl_sizing_server servers[SL_SIZING_MAX_SERVERS];
    size_t n_servers;
} sl_sizing_input;

typedef struct sl_sizing_value {
    int value;
    char reason[SL_SIZING_REASON];
} sl_sizing_value;

typedef struct sl_sizing_result {
    sl_sizing_value default_pool_size;
    sl_sizing_value max_db_connections;
    sl_sizing_value max_client_conn;
    bool change_min_pool_size;   /* min_pool_size must come down to default_pool_size */
    sl_sizing_value min_pool_size;
    char warnings[4][SL_SIZING_REASON];
    int n_warnings;
} sl_sizing_result;

/* Memory a client connection is reckoned to cost: two packet buffers and its bookkeeping. */
uint64_t sl_sizing_client_cost(int pkt_buf);

/* Compute the proposal. false (with a reason in err) when the servers cannot give every database even one
 * connection, or when an input is out of range. */
bool sl_sizing_compute(const sl_sizing_input *in, sl_sizing_result *out, char *err, size_t errlen);

/* Connections one server can give to poolers: max_connections - superuser_reserved - reserved (>= 0). */
int sl_sizing_server_budget(const sl_sizing_server *s);

#endif
