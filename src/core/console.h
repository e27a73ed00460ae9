/* console.h - how the connection layer reaches the admin console without depending on it: the
 * console registers these hooks at start-up (src/admin), and a client whose database is the
 * console's is handed to them. */
#ifndef SL_CONSOLE_H
#define SL_CONSOLE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/conn.h"
#include "net/worker.h"

typedef struct sl_console_ops {
    bool (*is_console_db)(const char *dbname);
    void (*login)(sl_client *c);            /* the client authenticated: greet it */
    void (*input)(sl_client *c);            /* bytes arrived while idle */
    void (*closed)(sl_client *c);           /* the client is closing */
    void (*cancel)(sl_client *c);           /* a cancel request named this client */
    void (*tick)(sl_worker *w, int64_t now); /* every tick of every worker */
} sl_console_ops;

void sl_console_register(const sl_console_ops *ops);
bool sl_console_is_db(const char *dbname);
void sl_console_login(sl_client *c);
void sl_console_input(sl_client *c);
void sl_console_closed(sl_client *c);
void sl_console_cancel(sl_client *c);
void sl_console_tick(sl_worker *w, int64_t now);

#endif
