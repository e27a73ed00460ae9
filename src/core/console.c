/* console.c - the hooks the admin console registered (see console.h); without a console every
 * database name is an ordinary one. */
#include "core/console.h"

#include <stddef.h>

static const sl_console_ops *ops;

void sl_console_register(const sl_console_ops *o) { ops = o; }
bool sl_console_is_db(const char *dbname) { return ops && ops->is_console_db(dbname); }
void sl_console_login(sl_client *c) { ops->login(c); }
void sl_console_input(sl_client *c) { ops->input(c); }
void sl_console_closed(sl_client *c) { ops->closed(c); }
void sl_console_cancel(sl_client *c) { ops->cancel(c); }
void sl_console_tick(sl_worker *w, int64_t now)
{
    if (ops) ops->tick(w, now);
}
