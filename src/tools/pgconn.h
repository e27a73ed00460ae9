/* pgconn.h - the tools' connections to PostgreSQL and to pgsluice's admin console, through libpq. */
#ifndef SL_TOOLS_PGCONN_H
#define SL_TOOLS_PGCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

/* Where to connect. NULL fields are left to libpq's defaults (PGHOST, PGUSER, ~/.pgpass, ...). When password is
 * NULL and PGPASSWORD is unset, the file named by PGPASSWORD_FILE is read (its first line), the convention of
 * container secrets. */
typedef struct sl_pg_target {
    const char *conninfo; /* a libpq connection string or URI; the fields below override it when set */
    const char *host;
    const char *port;
    const char *dbname;
    const char *user;
    const char *password;
    const char *application_name;
} sl_pg_target;

/* Connect (connect_timeout 10 s unless the conninfo sets one). NULL with a one-line reason in err. */
PGconn *sl_pg_connect(const sl_pg_target *t, char *err, size_t errlen);

/* The password in $PGPASSWORD_FILE (first line), malloc'd; NULL when unset or unreadable (reason in err, "" when
 * simply unset). */
char *sl_pg_password_from_file_env(char *err, size_t errlen);

/* libpq's message without its trailing newline, first line only. */
const char *sl_pg_errmsg(PGconn *c, char *buf, size_t len);

#endif
