/* client_auth.h - checking a client's password (trust, cleartext, md5, SCRAM-SHA-256) against the auth file. */
#ifndef SL_CLIENT_AUTH_H
#define SL_CLIENT_AUTH_H

#include "core/conn.h"

/* The steps of a login (sl_client.auth_method). */
typedef enum {
    SL_AUTH_STEP_NONE = 0,
    SL_AUTH_STEP_PLAIN,
    SL_AUTH_STEP_MD5,
    SL_AUTH_STEP_SCRAM_FIRST,
    SL_AUTH_STEP_SCRAM_FINAL,
    SL_AUTH_STEP_LOOKUP,        /* its secret is being looked up with auth_query */
} sl_auth_step;

void sl_client_auth_start(sl_client *c);
void sl_client_auth_input(sl_client *c);
/* The auth_query lookup ended: the secret (NULL: no such user, or a NULL secret), or an error that
 * kept the lookup from running. */
void sl_client_auth_lookup_done(sl_client *c, const char *secret, const char *error);


#endif
