/* reload.h - ask a running pgsluice to re-read its config: SIGHUP to the pid in its pidfile, or RELOAD on its
 * admin console (unix socket, else TCP) through libpq. */
#ifndef SL_TOOLS_RELOAD_H
#define SL_TOOLS_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

typedef enum {
    SL_RELOAD_SIGNALLED,   /* SIGHUP sent to the pidfile's process */
    SL_RELOAD_DONE,        /* RELOAD answered on the admin console */
    SL_RELOAD_NOT_RUNNING, /* no pidfile process and nothing listening on the console */
    SL_RELOAD_FAILED,      /* a pgsluice is there but refused or failed (msg says why) */
} sl_reload_result;

/* cfg: the config the running pgsluice was started with (pidfile, unix_socket_dir, listen_addr/port,
 * admin_users). admin_user: console user (NULL: $PGUSER, else the first of admin_users). msg: what happened. */
sl_reload_result sl_tool_reload(const sl_config *cfg, const char *admin_user, char *msg, size_t msglen);

#endif
