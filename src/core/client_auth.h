/* client_auth.h - authenticating a client: the method (auth_type, or the matching auth_hba_file rule),
 * then trust, cleartext, md5, SCRAM-SHA-256, cert, peer, or a PAM/LDAP check on the thread pool. */
#ifndef SL_CLIENT_AUTH_H
#define SL_CLIENT_AUTH_H

#include "core/conn.h"

/* The steps of a login (sl_client_login.method). */
typedef enum {
    SL_AUTH_STEP_NONE = 0,
    SL_AUTH_STEP_PLAIN,
    SL_AUTH_STEP_MD5,
    SL_AUTH_STEP_SCRAM_FIRST,
    SL_AUTH_STEP_SCRAM_FINAL,
    SL_AUTH_STEP_LOOKUP,        /* its secret is being looked up with auth_query */
    SL_AUTH_STEP_EXTERNAL,      /* cleartext password asked for, to be checked by PAM or LDAP */
    SL_AUTH_STEP_EXTERNAL_WAIT, /* the PAM/LDAP check runs on libuv's thread pool */
} sl_auth_step;

void sl_client_auth_start(sl_client *c);
void sl_client_auth_input(sl_client *c);
/* The auth_query lookup ended: the secret (NULL: no such user, or a NULL secret), or an error that
 * kept the lookup from running. */
void sl_client_auth_lookup_done(sl_client *c, const char *secret, const char *error);
/* The PAM or LDAP check ended (auth_external.c): ok, or refused (28000, PostgreSQL's words). The
 * password that passed is kept to log its servers in with, when nothing else knows one. */
void sl_client_auth_external_done(sl_client *c, bool ok, const char *password);


#endif
