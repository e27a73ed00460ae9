/* admin.h - the admin console: the virtual database "pgbouncer" (also "pgsluice") answered by
 * pgsluice itself with PgBouncer's SHOW and control commands. */
#ifndef SL_ADMIN_H
#define SL_ADMIN_H

#include <stdbool.h>

#include "core/conn.h"

bool sl_admin_is_db(const char *dbname);
/* The client authenticated against the auth file: check admin_users/stats_users and welcome it
 * (ParameterStatus, BackendKeyData, ReadyForQuery) or refuse it. */
void sl_admin_login(sl_client *c);
/* Bytes arrived from an admin client in IDLE state: run complete messages. */
void sl_admin_input(sl_client *c);

#endif
