/* sdnotify.h - tell systemd (Type=notify / notify-reload) what pgsluice is doing, through sd_notify(3):
 * READY=1, RELOADING=1 with MONOTONIC_USEC, STOPPING=1 and STATUS= lines. Does nothing when NOTIFY_SOCKET is
 * unset, so pgsluice runs the same outside systemd. Safe from any thread. */
#ifndef SL_UTIL_SDNOTIFY_H
#define SL_UTIL_SDNOTIFY_H

/* Listening sockets are open and the workers run: READY=1, MAINPID, STATUS=status. */
void sl_sd_ready(const char *status);
/* A reload starts: RELOADING=1 and MONOTONIC_USEC=now (what Type=notify-reload waits for). */
void sl_sd_reloading(void);
/* The reload finished (also when it failed and the old config stays): READY=1, STATUS=status. */
void sl_sd_reloaded(const char *status);
/* Shutting down: STOPPING=1, STATUS=status. */
void sl_sd_stopping(const char *status);
/* Takeover: another process (pid) is the service's main process from now on: MAINPID=pid. */
void sl_sd_mainpid(long pid, const char *status);
/* STATUS= line only. */
void sl_sd_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
