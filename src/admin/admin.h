/* admin.h - the admin console: the virtual database "pgbouncer" (also "pgsluice") answered by
 * pgsluice itself with PgBouncer's SHOW and control commands. */
#ifndef SL_ADMIN_H
#define SL_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/conn.h"
#include "net/worker.h"

/* Hook the console into the connection layer (src/core/console.h); once, at start-up. */
void sl_admin_register(void);

bool sl_admin_is_db(const char *dbname);
/* The client authenticated against the auth file: check admin_users/stats_users and welcome it
 * (ParameterStatus, BackendKeyData, ReadyForQuery) or refuse it. */
void sl_admin_login(sl_client *c);
/* Bytes arrived from an admin client in IDLE state: run complete messages. */
void sl_admin_input(sl_client *c);
/* A CancelRequest names a console client: a waiting PAUSE/SUSPEND is called off (and the pooler
 * resumed, as PgBouncer does on ^C), a waiting WAIT_CLOSE stops.  */
void sl_admin_cancel(sl_client *c);
/* The admin client is closing : drop its console session. */
void sl_admin_closed(sl_client *c);
/* Every worker's tick: re-check commands that wait (PAUSE, WAIT_CLOSE, SUSPEND); on worker 0 also
 * the stats_period snapshots behind SHOW STATS averages. */
void sl_admin_tick(sl_worker *w, int64_t now);

#endif
