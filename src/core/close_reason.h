/* close_reason.h - why a connection is closed, as an enum with its log text and what the reason
 * means for the goodbye: a healthy server connection closed on purpose is sent Terminate first. */
#ifndef SL_CLOSE_REASON_H
#define SL_CLOSE_REASON_H

#include <stdbool.h>

/* X(id, text, polite): polite = the server connection is healthy and idle: say Terminate. */
#define SL_CLOSE_REASONS(X)                                                                   \
    X(NONE, "", false)                                                                        \
    X(CLIENT_TERMINATE, "client close request", false)                                        \
    X(CLIENT_EOF, "client closed connection", false)                                          \
    X(CLIENT_GAVE_UP_LOGIN, "client gave up during login", false)                             \
    X(CLIENT_READ_ERROR, "client read error", false)                                          \
    X(CLIENT_WRITE_ERROR, "write to client failed", false)                                    \
    X(CLIENT_MID_TRANSACTION, "client disconnected mid-transaction", false)                   \
    X(CLIENT_TOO_MUCH_INPUT, "console client sent too much while a command was running", false) \
    X(ERROR_SENT, "error sent to the client", false)                                         \
    X(SERVER_GONE_MID_ANSWER, "server connection crashed or was terminated", false)           \
    X(CANCEL_REQUEST, "cancel request", false)                                                \
    X(SERVER_LIFETIME, "server_lifetime", true)                                               \
    X(SERVER_IDLE_TIMEOUT, "server_idle_timeout", true)                                       \
    X(SERVER_RETIRED, "server retired", true)                                                 \
    X(SERVER_EOF, "server closed the connection", false)                                      \
    X(SERVER_READ_ERROR, "server read error", false)                                          \
    X(SERVER_WRITE_ERROR, "write to server failed", false)                                    \
    X(SERVER_BAD_MESSAGE, "invalid message length from server", false)                        \
    X(SERVER_OVERSIZED, "oversized message from server", false)                               \
    X(SERVER_DEAD_IN_POOL, "server closed while idle in the pool", false)                     \
    X(SERVER_DIED_UNREAD, "server closed before reading its client's request (sent to another server)", false) \
    X(SERVER_DIED_BETWEEN, "server terminated right after its client's last answer (the client goes on)", false) \
    X(LOGIN_FAILED, "login failed", false)                                                    \
    X(POOLER_QUERY_FAILED, "pooler query failed", false)                                      \
    X(ROLLBACK_FAILED, "cannot roll back", false)                                             \
    X(QUERY_TIMEOUT, "query timeout", false)                                                  \
    X(IDLE_TRANSACTION_TIMEOUT, "idle transaction timeout", false)                            \
    X(TRANSACTION_TIMEOUT, "transaction timeout", false)                                      \
    X(ATTACH_FAILED, "cannot attach", false)                                                  \
    X(REPLICATION_CLIENT_GONE, "its replication client left", false)                          \
    X(OUT_OF_MEMORY, "out of memory", false)                                                  \
    X(ADMIN_KILL, "KILL", true)                                                               \
    X(ADMIN_RECONNECT, "RECONNECT", true)                                                     \
    X(ADMIN_PAUSE, "pause mode", true)                                                        \
    X(SUSPEND_TIMEOUT, "suspend_timeout: buffers not flushed", false)                         \
    X(SHUTDOWN, "shutting down", true)                                                        \
    X(TAKEOVER, "takeover: a new pgsluice process took over", true)                          \
    X(LISTEN_UNUSED, "LISTEN fan-out: no channel left to listen on", true)

#define SL_CLOSE_ENUM(id, text, polite) SL_CLOSE_##id,
typedef enum { SL_CLOSE_REASONS(SL_CLOSE_ENUM) SL_CLOSE_NREASONS } sl_close_reason;
#undef SL_CLOSE_ENUM

const char *sl_close_reason_text(sl_close_reason r);
/* A server closed for this reason is healthy: pgsluice says Terminate before it hangs up. */
bool sl_close_reason_polite(sl_close_reason r);

#endif
