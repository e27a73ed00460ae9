/* pooler.h - the glue between workers and connection logic: event dispatch, cross-worker messages,
 * the periodic tick, process-wide state (pause, shutdown) and the entry points of client.c,
 * server.c and proxy.c. */
#ifndef SL_POOLER_H
#define SL_POOLER_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/conn.h"
#include "net/worker.h"

/* SUSPENDED (admin SUSPEND) holds new transactions like PAUSED; order matters: >= SHUTDOWN_GRACEFUL means
 * shutting down. */
typedef enum {
    SL_RUN_NORMAL = 0,
    SL_RUN_PAUSED,
    SL_RUN_SUSPENDED,
    SL_RUN_SHUTDOWN_GRACEFUL,
    SL_RUN_SHUTDOWN_WAIT_CLIENTS,
    SL_RUN_SHUTDOWN_NOW
} sl_run_state;

extern int sl_run_state_v;      /* atomic: sl_run_state */
extern uint64_t sl_conn_counter; /* atomic */
extern int sl_total_clients;     /* atomic: for max_client_conn */

int sl_pooler_buf_size(void);
void sl_pooler_worker_started(sl_worker *w);
void sl_pooler_handle_msg(sl_worker *w, sl_msg *m);
void sl_pooler_tick(sl_worker *w);
void sl_poll_dispatch(uv_poll_t *h, int status, int events);

/* client.c */
/* A new client on fd; takes over the caller's reference to cfg (the snapshot it is admitted under). */
void sl_client_accept(sl_worker *w, int fd, const char *addr, bool unix_sock, sl_config *cfg);
void sl_client_on_event(sl_client *c, int events);
void sl_client_close(sl_client *c, const char *reason);
/* Send an error (and close when fatal). */
void sl_client_error(sl_client *c, bool fatal, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void sl_client_got_server(sl_client *c, sl_server *s);
void sl_client_wake(sl_client *c);
void sl_client_tick(sl_client *c, int64_t now);
void sl_client_cancel_request(sl_worker *w, uint32_t pid, uint32_t key);

/* server.c */
sl_server *sl_server_launch(sl_worker *w, struct sl_pool *p);
void sl_server_on_event(sl_server *s, int events);
void sl_server_close(sl_server *s, const char *reason);
bool sl_server_attach(sl_server *s, sl_worker *w);
/* Start pooler queries on a server (check, SET, reset); when they finish the server goes on. */
bool sl_server_begin_setup(sl_server *s);
void sl_server_tick(sl_server *s, int64_t now);


/* cancel.c */
void sl_cancel_on_event(sl_stream *st, int events);
void sl_cancel_forward(sl_worker *w, uint32_t pid, uint32_t key);

/* pooler.c */
void sl_pooler_set_startup_options(const char *config_path, int verbose, int quiet);
void sl_pooler_set_run_state(sl_run_state st);
bool sl_pooler_reload(char *err, size_t errlen);
/* SET on the running config (reloadable settings only); false + err on an unknown name or bad value. */
bool sl_pooler_set_setting(const char *name, const char *value, char *err, size_t errlen);
/* Run each(w, arg) on every worker, each on its own thread in any order; once all have run, run
 * done(home, arg) on worker `home`. Never blocks. false (nothing runs) when out of memory. */
bool sl_pooler_collect(sl_worker *home, sl_worker_fn each, sl_worker_fn done, void *arg);
void sl_pooler_apply_config(sl_config *cfg);
bool sl_pooler_listen(const sl_config *cfg);
void sl_pooler_set_buf_size(int n);

/* proxy.c: forwarding between a linked client and server */
void sl_proxy_link(sl_client *c, sl_server *s);
void sl_proxy_client_input(sl_client *c);
void sl_proxy_server_input(sl_server *s);
void sl_proxy_client_writable(sl_client *c);
void sl_proxy_server_writable(sl_server *s);
void sl_proxy_update_poll(sl_client *c, sl_server *s);
void sl_proxy_unlink_release(sl_server *s);
void sl_proxy_start(sl_client *c, sl_server *s);
void sl_proxy_client_input_buffered(sl_client *c);
void sl_proxy_server_lost_client(sl_client *c);
/* client.c: a request arrived while no server is linked */
void sl_client_idle_input(sl_client *c);

#endif
