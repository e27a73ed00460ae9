/* client.h - a client connection from accept to close (client.c); password checks live in
 * client_auth.c, forwarding in proxy.c. */
#ifndef SL_CLIENT_H
#define SL_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/conn.h"
#include "net/worker.h"

/* A connection accepted on w (the listener's callback). */
void sl_client_accept(sl_worker *w, int fd, const char *addr, bool is_unix);
void sl_client_close(sl_client *c, sl_close_reason why);
/* Close with a reason that needs words of its own in the log (an error it was sent). */
void sl_client_close_detail(sl_client *c, sl_close_reason why, const char *detail);
/* Send an ErrorResponse (FATAL and close, or ERROR followed by ReadyForQuery). */
void sl_client_error(sl_client *c, bool fatal, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A server for this client (WELCOME or WAITING) arrived on its worker. */
void sl_client_got_server(sl_client *c, sl_server *s);
/* Ask the route for a server (WELCOME or WAITING, not already queued). */
void sl_client_wake(sl_client *c);
/* Takeover (core/takeover_*.c): a client handed over by the previous process, built off-thread with
 * its slot already claimed on w, joins w now (its thread): counted, polled, and what it sent meanwhile
 * (buffered or on the socket) is served. state: SL_CL_IDLE, SL_CL_WELCOME, or SL_CL_ACTIVE with
 * c->server linked and attached. fatal_sqlstate: it cannot go on here, told so (FATAL fatal_msg) and
 * closed. false: it was closed. */
bool sl_client_adopt(sl_worker *w, sl_client *c, const char *fatal_sqlstate, const char *fatal_msg);
/* Timeouts, every tick of its worker. */
void sl_client_tick(sl_client *c, int64_t now);
/* A request arrived while no server is linked. */
void sl_client_idle_input(sl_client *c);
/* Called by client_auth.c once the client is authenticated; scram keys (both or neither) are what
 * its SCRAM proof revealed, for logging in to servers as this user without the password. Only now is
 * the client's route looked up or created: nobody creates routes, or learns which databases exist,
 * without logging in. */
void sl_client_auth_done(sl_client *c, const uint8_t *scram_client_key, const uint8_t *scram_server_key);

#endif
