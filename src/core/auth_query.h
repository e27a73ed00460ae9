/* auth_query.h - looking up the password secret of a user auth_file does not list: auth_query runs
 * as auth_user on a server of the (auth_dbname, auth_user) pool, with the user name as a bound
 * parameter and search_path pinned to pg_catalog, and the answer is cached on the user's route. */
#ifndef SL_AUTH_QUERY_H
#define SL_AUTH_QUERY_H

#include <stdbool.h>

#include "core/conn.h"

/* Start looking up c's secret (c in AUTH). false when no auth_user applies to its database (the
 * login goes on without one). A fresh cached secret is used at once. */
bool sl_auth_query_start(sl_client *c);
/* A server of the lookup's pool arrived for c: send the query. */
void sl_auth_query_run(sl_client *c, sl_server *s);
/* server_setup.c: the query's answer is in (s->found_*), or it failed (s->setup_failed). */
void sl_auth_query_finished(sl_server *s);

#endif
