/* pam.h - password check through PAM (the pam method: auth_type = pam, or a pam line in auth_hba_file).
 *
 * sl_pam_check BLOCKS (PAM modules read files, ask servers, some sleep): call it from libuv's thread pool
 * (uv_queue_work), never on a worker's loop. It is thread-safe: every call has its own PAM handle and
 * conversation, and many may run at once. It never logs, and never copies the password anywhere but
 * into the reply PAM asks for (PAM wipes and frees that).
 */
#ifndef SL_AUTH_PAM_H
#define SL_AUTH_PAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* PgBouncer's PAM service name; a pam line's pamservice= overrides it. */
#define SL_PAM_DEFAULT_SERVICE "pgbouncer"

/* Authenticate user with password against the PAM service (/etc/pam.d/<service>; Linux-PAM falls back to
 * /etc/pam.d/other when that file does not exist), then check the account (expired, locked: refused).
 * remote_host (may be NULL) becomes PAM_RHOST. An empty password is refused without asking PAM, as
 * PostgreSQL does, and accounts without a password never pass (PAM_DISALLOW_NULL_AUTHTOK).
 * The delay PAM asks for after a failure (pam_unix: about 2 s) is NOT slept here, so a password guesser
 * cannot tie up the thread pool; the caller may delay its refusal with a timer instead.
 * true: authenticated. false: err holds a reason for the log (PAM's words; never the password). */
bool sl_pam_check(const char *service, const char *user, const char *password, const char *remote_host, char *err,
                  size_t errlen);

/* The PAM_RHOST text for a client address: the numeric address, or with use_hostname (pam_use_hostname=1)
 * its host name by reverse lookup (falling back to the address). Blocks when use_hostname is set: call it
 * in the same thread-pool job as sl_pam_check. Returns buf ("" for an address that is not IP). */
const char *sl_pam_remote_host(const struct sockaddr *addr, socklen_t addrlen, bool use_hostname, char *buf,
                               size_t len);

#endif
