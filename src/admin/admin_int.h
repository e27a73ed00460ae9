/* admin_int.h - shared by the admin console's files: console sessions, result sets, parsed
 * commands and the command tables. Everything here runs on the worker that owns the admin client,
 * except the `each` steps of worker rounds (collect.c, control.c), which run on every worker. */
#ifndef SL_ADMIN_INT_H
#define SL_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conn.h"
#include "net/worker.h"
#include "proto/pkt.h"

#define ADM_MAX_COLS 40
#define ADM_MAX_MSG (1u << 20) /* largest message accepted from a console client */

/* ---- result sets (result.c) ---- */

/* Column types, as letters: s text, i int4, q int8, N numeric, T timestamp shown as text. */
typedef struct adm_result {
    int ncols;
    const char *names[ADM_MAX_COLS];
    char types[ADM_MAX_COLS];
    sl_pktbuf rows;     /* DataRow messages, text format */
    uint32_t nrows;
    sl_pktbuf notices;  /* NoticeResponse messages, sent before the rows */
    char tag[128];
    bool failed;
    char sqlstate[6];
    char message[512];
} adm_result;

void adm_result_init(adm_result *r);
void adm_result_reset(adm_result *r);
void adm_result_free(adm_result *r);
/* Column names follow `types`, one per letter. */
void adm_cols(adm_result *r, const char *types, ...);
/* Values follow `types`: s const char * (NULL = SQL NULL), i int, q int64_t, N uint64_t,
 * T int64_t wall-clock usec (0 = NULL). */
void adm_row(adm_result *r, const char *types, ...);
void adm_tag(adm_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void adm_error(adm_result *r, const char *sqlstate, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void adm_notice(adm_result *r, const char *message, const char *detail);
/* Move the rows of part to the end of r (worker rounds build rows per worker). */
void adm_result_take_rows(adm_result *r, adm_result *part);

/* Simple query: notices, RowDescription, DataRows, CommandComplete (or the ErrorResponse). */
void adm_send_simple(sl_pktbuf *out, const adm_result *r);
/* Describe: RowDescription with these result formats, or NoData when the command has no rows. */
void adm_send_rowdesc(sl_pktbuf *out, const adm_result *r, const int16_t *fmts, int nfmts);
/* Execute: notices, DataRows in the requested formats, CommandComplete (or the ErrorResponse). */
void adm_send_execute(sl_pktbuf *out, const adm_result *r, const int16_t *fmts, int nfmts);
void adm_send_error(sl_pktbuf *out, const char *sqlstate, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- statements (parse.c) ---- */

typedef enum { ADM_CMD_WORDS, ADM_CMD_SET } adm_cmd_kind;
typedef struct adm_cmd {
    adm_cmd_kind kind;
    char verb[64];      /* first word, lower case */
    char arg[256];      /* second word (quotes removed), "" when absent; SET: the setting name */
    char value[1024];   /* SET: the value */
    char text[160];     /* the statement, shortened, for error messages */
} adm_cmd;

/* The next statement of a query string from *off (split at semicolons outside quotes, comments
 * skipped): [*start, *start + *len). false when none is left. */
bool adm_next_statement(const char *q, size_t *off, size_t *start, size_t *len);
/* Parse one statement; false with err filled on a syntax error. */
bool adm_parse(const char *stmt, size_t len, adm_cmd *cmd, char *err, size_t errlen);

/* ---- sessions (admin.c) ---- */

typedef enum { ADM_DONE, ADM_ASYNC } adm_status;
typedef enum { ADM_WAIT_NONE, ADM_WAIT_PAUSE, ADM_WAIT_CLOSE, ADM_WAIT_SUSPEND } adm_wait;

typedef struct adm_stmt {
    char *name, *query;
    struct adm_stmt *next;
} adm_stmt;

typedef struct adm_portal {
    char *name, *query;
    int16_t *fmts;
    int nfmts;
    struct adm_portal *next;
} adm_portal;

typedef struct adm_session {
    sl_client *c;
    struct adm_session *next;   /* this worker's sessions */
    bool is_admin;              /* admin_users; else stats_users (read-only) */
    bool busy;                  /* an asynchronous command is running: input waits */
    bool ext_skip;              /* extended protocol: after an error, skip to Sync */
    bool simple;                /* the running statement belongs to a simple Query */
    char xact;                  /* ReadyForQuery status: 'I', or 'T' after a no-op BEGIN */
    char *query;                /* simple Query in progress */
    size_t qoff;
    int qran;                   /* statements of it answered so far */
    int16_t *xfmts;             /* Execute in progress: result formats */
    int nxfmts;
    adm_stmt *stmts;
    adm_portal *portals;
    adm_result res;             /* the running statement's answer */
    adm_wait wait;              /* PAUSE / WAIT_CLOSE / SUSPEND waiting for the pooler */
    char wait_db[256];          /* "" = all databases */
    bool wait_round;            /* a check round is in flight */
    unsigned wait_seq;          /* which wait a round belongs to (rounds of a cancelled wait are ignored) */
    int64_t wait_since;         /* when the waiting command began (SUSPEND: suspend_timeout) */
    bool suspended;             /* issued SUSPEND: RESUME when it disconnects */
} adm_session;

/* Names an admin client from any thread; resolved on its worker. */
typedef struct adm_ref {
    int worker;
    uint32_t slot, gen;
} adm_ref;

adm_ref adm_ref_of(const adm_session *s);
/* The session behind ref, on its own worker w; NULL if the client left meanwhile. */
adm_session *adm_ref_session(sl_worker *w, const adm_ref *ref);
/* An asynchronous command filled s->res: answer it and go on with the session's input. */
void adm_async_done(adm_session *s);
extern int adm_nsessions; /* atomic: open console sessions */
extern uint64_t adm_nlogins; /* atomic: console logins since start (SHOW STATS' pgbouncer row) */

/* ---- commands (control.c, show.c, collect.c, stats.c) ---- */

/* Run one parsed command into r. ADM_ASYNC: r is filled later, then adm_async_done. */
adm_status adm_execute(adm_session *s, const adm_cmd *cmd, adm_result *r);
/* Columns only, no side effects (extended-protocol Describe). false: the command returns no rows,
 * or is unknown (then r->failed). */
bool adm_describe(const adm_cmd *cmd, adm_result *r);

typedef struct adm_show {
    const char *name;
    void (*cols)(adm_result *r);
    adm_status (*run)(adm_session *s, adm_result *r);
} adm_show;
const adm_show *adm_show_find(const char *name);

/* show.c */
void adm_cols_pools(adm_result *r);
adm_status adm_show_pools(adm_session *s, adm_result *r);
/* stats.c */
void adm_cols_stats(adm_result *r);
void adm_cols_stats_totals(adm_result *r);
void adm_cols_stats_averages(adm_result *r);
void adm_cols_totals(adm_result *r);
adm_status adm_show_stats(adm_session *s, adm_result *r);
adm_status adm_show_stats_totals(adm_session *s, adm_result *r);
adm_status adm_show_stats_averages(adm_session *s, adm_result *r);
adm_status adm_show_totals(adm_session *s, adm_result *r);
void adm_stats_tick(sl_worker *w, int64_t now);
/* collect.c */
void adm_cols_sockets(adm_result *r);
void adm_cols_clients(adm_result *r);
void adm_cols_servers(adm_result *r);
void adm_cols_debug_sockets(adm_result *r);
void adm_cols_lists(adm_result *r);
void adm_cols_mem(adm_result *r);
adm_status adm_show_clients(adm_session *s, adm_result *r);
adm_status adm_show_servers(adm_session *s, adm_result *r);
adm_status adm_show_sockets(adm_session *s, adm_result *r);
adm_status adm_show_active_sockets(adm_session *s, adm_result *r);
adm_status adm_show_lists(adm_session *s, adm_result *r);
adm_status adm_show_mem(adm_session *s, adm_result *r);
/* control.c */
adm_status adm_control(adm_session *s, const adm_cmd *cmd, adm_result *r, bool *found);
void adm_wait_tick(adm_session *s);
void adm_cancel(adm_session *s);
void adm_session_left(adm_session *s);

/* Time helpers: wall-clock usec of a monotonic stamp. */
int64_t adm_wall_of(int64_t mono_us, int64_t now_mono, int64_t now_wall);

/* show.c: answered from the routes' snapshot and the running config; control.c */
adm_status adm_show_help(adm_session *s, adm_result *r);
adm_status adm_show_databases(adm_session *s, adm_result *r);
adm_status adm_show_users(adm_session *s, adm_result *r);
adm_status adm_show_config(adm_session *s, adm_result *r);
adm_status adm_show_state(adm_session *s, adm_result *r);
adm_status adm_show_version(adm_session *s, adm_result *r);
adm_status adm_show_dns_hosts(adm_session *s, adm_result *r);
adm_status adm_show_dns_zones(adm_session *s, adm_result *r);
adm_status adm_show_peers(adm_session *s, adm_result *r);
adm_status adm_show_peer_pools(adm_session *s, adm_result *r);
void adm_cols_peers(adm_result *r);
void adm_cols_peer_pools(adm_result *r);
void adm_cols_databases(adm_result *r);
void adm_cols_users(adm_result *r);
void adm_cols_config(adm_result *r);
void adm_cols_state(adm_result *r);
void adm_cols_version(adm_result *r);
void adm_cols_dns_hosts(adm_result *r);
void adm_cols_dns_zones(adm_result *r);
bool adm_control_known(const char *verb);
/* show_backends.c */
struct sl_topo_snap;
typedef struct adm_db_routing_info {
    const char *target;          /* target_session_attrs */
    bool read_write_split;
    char primary[280];           /* host:port, "" when none */
    int replicas;                /* in rotation */
} adm_db_routing_info;
void adm_cols_backends(adm_result *r);
adm_status adm_show_backends(adm_session *s, adm_result *r);
/* The routing of database name (false: it has no roles). */
bool adm_db_routing(const struct sl_topo_snap *t, const char *name, adm_db_routing_info *out);

#endif
