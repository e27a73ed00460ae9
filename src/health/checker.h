/* checker.h - health checks of the hosts of databases with roles (primary/replica routing): a thread
 * per host on a libpq connection of its own, never on a worker's loop. */
#ifndef SL_HEALTH_CHECKER_H
#define SL_HEALTH_CHECKER_H

#include "config/config.h"

/* Take the routed databases of cfg and start checking their hosts (a supervisor thread follows
 * later config changes: new hosts get a checker, hosts no longer named lose theirs). */
void sl_health_start(const sl_config *cfg);
/* Stop every checker (at exit); waits at most 0.3 s for them. */
void sl_health_stop(void);

#endif
