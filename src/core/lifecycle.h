/* lifecycle.h - the process as a whole: its run state (running, paused, suspended, shutting down),
 * the client count behind max_client_conn, and changing the running configuration (RELOAD, SIGHUP,
 * the console's SET). */
#ifndef SL_LIFECYCLE_H
#define SL_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* SUSPENDED (admin SUSPEND) holds new transactions like PAUSED; order matters: >= SHUTDOWN_GRACEFUL
 * means shutting down. */
typedef enum {
    SL_RUN_NORMAL = 0,
    SL_RUN_PAUSED,
    SL_RUN_SUSPENDED,
    SL_RUN_SHUTDOWN_GRACEFUL,
    SL_RUN_SHUTDOWN_WAIT_CLIENTS,
    SL_RUN_SHUTDOWN_NOW
} sl_run_state;

extern int sl_run_state_v;       /* atomic: sl_run_state */
extern uint64_t sl_conn_counter; /* atomic: connection numbers for logs */
extern int sl_total_clients;     /* atomic: for max_client_conn */

static inline sl_run_state sl_run_state_get(void) { return (sl_run_state)__atomic_load_n(&sl_run_state_v, __ATOMIC_RELAXED); }
const char *sl_run_state_label(sl_run_state rs);

void sl_lifecycle_init(const char *config_path, int verbose, int quiet);
/* Change the run state and tell every worker. */
void sl_set_run_state(sl_run_state st);
/* Re-read the config file; a broken file is refused (err) and the running config stays. */
bool sl_reload(char *err, size_t errlen);
typedef enum { SL_SET_OK, SL_SET_UNKNOWN, SL_SET_RESTART, SL_SET_BAD_VALUE } sl_set_result;
/* SET on the running config (a copy with one setting changed); err says why it was refused. */
sl_set_result sl_set_setting(const char *name, const char *value, char *err, size_t errlen);
/* Make cfg the running config (takes over the caller's reference): routes are refreshed and every
 * worker switches to it. */
void sl_apply_config(sl_config *cfg);

#endif
