/* pgoptions.h - the startup packet's "options" parameter (libpq's options / PGOPTIONS), read as
 * PostgreSQL reads it: arguments separated by blanks, a backslash taking the next character
 * literally, and "-c name=value", "-cname=value" or "--name=value" setting a parameter ("-" in the
 * name becomes "_", in either form). pgsluice accepts only such settings; any other switch is refused. */
#ifndef SL_PROTO_PGOPTIONS_H
#define SL_PROTO_PGOPTIONS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    SL_PGOPT_DONE = 0, /* no more settings */
    SL_PGOPT_SETTING,  /* name and value filled */
    SL_PGOPT_ERROR,    /* err says why (a switch other than -c/--, no "=", too long) */
} sl_pgopt_status;

/* The next setting from *pos (start with *pos = the options string); advances *pos. */
sl_pgopt_status sl_pgoptions_next(const char **pos, char *name, size_t name_len, char *value, size_t value_len,
                                  char *err, size_t err_len);

#endif
