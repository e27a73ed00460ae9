/* client_auth.h - checking a client's password (trust, cleartext, md5, SCRAM-SHA-256) against the auth file. */
#ifndef SL_CLIENT_AUTH_H
#define SL_CLIENT_AUTH_H

#include "core/conn.h"

void sl_client_auth_start(sl_client *c);
void sl_client_auth_input(sl_client *c);


#endif
