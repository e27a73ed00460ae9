/* log.h - timestamped, levelled log lines to stderr, a logfile or syslog; thread-safe. */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <stdarg.h>

typedef enum { SL_LOG_FATAL = 0, SL_LOG_ERROR, SL_LOG_WARNING, SL_LOG_INFO, SL_LOG_DEBUG, SL_LOG_NOISE } sl_log_level;

/* Configure outputs. logfile may be NULL (stderr only unless quiet). Safe to call again on reload. */
void sl_log_setup(const char *logfile, int use_syslog, const char *ident, const char *facility, int verbose, int quiet);
void sl_log_msg(sl_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sl_log_reopen(void); /* reopen the logfile (after rotation, on SIGHUP) */
int sl_log_verbose(void);

#define sl_log_fatal(...) sl_log_msg(SL_LOG_FATAL, __VA_ARGS__)
#define sl_log_error(...) sl_log_msg(SL_LOG_ERROR, __VA_ARGS__)
#define sl_log_warn(...) sl_log_msg(SL_LOG_WARNING, __VA_ARGS__)
#define sl_log_info(...) sl_log_msg(SL_LOG_INFO, __VA_ARGS__)
#define sl_log_debug(...) do { if (sl_log_verbose() >= 1) sl_log_msg(SL_LOG_DEBUG, __VA_ARGS__); } while (0)
#define sl_log_noise(...) do { if (sl_log_verbose() >= 2) sl_log_msg(SL_LOG_NOISE, __VA_ARGS__); } while (0)

#endif
