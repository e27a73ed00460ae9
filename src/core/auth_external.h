/* auth_external.h - password checks that block (PAM, LDAP), run on libuv's thread pool so that a
 * worker's loop never waits for them. */
#ifndef SL_AUTH_EXTERNAL_H
#define SL_AUTH_EXTERNAL_H

#include <stdbool.h>

#include "core/conn.h"

/* Check c's cleartext password with PAM or LDAP (c->login->external_ldap; the options of c->login->rule, or
 * PAM's defaults for auth_type pam). The answer comes back on c's worker through
 * sl_client_auth_external_done, unless c has gone meanwhile. false: the job could not be queued. */
bool sl_auth_external_start(sl_client *c, const char *password);
/* Every tick: start checks queued on this worker that found no room (auth_external.c) when they came. */
void sl_auth_external_tick(struct sl_worker *w);

#endif
