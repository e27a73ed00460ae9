/* admin.c - the admin console's login and protocol handling. */
#include "admin/admin.h"

#include <string.h>
#include <strings.h>

#include "core/pooler.h"

bool sl_admin_is_db(const char *dbname)
{
    return dbname && (!strcmp(dbname, "pgbouncer") || !strcmp(dbname, "pgsluice"));
}

void sl_admin_login(sl_client *c)
{
    sl_client_error(c, true, "0A000", "the admin console is not available in this build yet");
}

void sl_admin_input(sl_client *c)
{
    sl_client_error(c, true, "0A000", "the admin console is not available in this build yet");
}
