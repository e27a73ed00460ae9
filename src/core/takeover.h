/* takeover.h - zero-downtime restart: a new pgsluice process (`pgsluice --takeover`, `-R`) takes the
 * listening sockets and every client and server connection, with its state, over from the running
 * one through the admin console's Unix socket (SCM_RIGHTS). See takeover_int.h for the protocol
 * and the files (takeover_donor.c, takeover_receive.c, ...). */
#ifndef SL_TAKEOVER_H
#define SL_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/conn.h"
#include "net/worker.h"

/* ---- the running (old) process: the console command TAKEOVER ---- */

/* The console client c (on its own worker) asks to take over, waiting at most timeout_s seconds for
 * clients to get between transactions. false + err: refused (not over the Unix socket from our own
 * OS user, not running normally, a takeover already under way). On true the console's session waits:
 * the takeover answers it (an error, or the hand-over itself). */
bool sl_takeover_donor_begin(sl_client *c, int timeout_s, char *err, size_t errlen);
/* Every tick of every worker: drives the hand-over on the console's worker. */
void sl_takeover_tick(sl_worker *w, int64_t now);
/* This worker's connections are frozen for a hand-over: its timeouts and pool upkeep wait. */
bool sl_takeover_frozen(const sl_worker *w);

/* The binary and config this process runs with (main, at start): what UPGRADE starts. */
void sl_takeover_set_exec(const char *exe_path, const char *config_path);
/* UPGRADE (console): start `<exe> --takeover --takeover-timeout <s> <config>` as a child of this
 * process - in its systemd service, with its environment - which then takes over from it. The
 * binary is read from disk now: a new version installed over it is what runs. false + err: it could
 * not be started. */
bool sl_takeover_spawn(int timeout_s, char *err, size_t errlen);

/* ---- the new process ---- */

/* Connect to the running process's console (unix_socket_dir, listen_port of cfg), ask it to hand
 * over and receive everything; build the connections and confirm. Main thread, after sl_pools_init
 * and before the workers start. false + err: nothing was taken over (the old process goes on). */
bool sl_takeover_receive(const sl_config *cfg, int timeout_s, char *err, size_t errlen);
/* On worker w's thread before it polls anything: adopt the connections received for it. */
void sl_takeover_adopt(sl_worker *w);

#endif
