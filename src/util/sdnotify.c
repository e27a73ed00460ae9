/* sdnotify.c - systemd readiness and state notifications via libsystemd's sd_notify (see sdnotify.h). */
#include "util/sdnotify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

static int enabled(void)
{
    const char *s = getenv("NOTIFY_SOCKET");
    return s && *s;
}

static void send_state(const char *state)
{
    /* unset_environment = 0: the workers' threads may notify too, later. */
    (void)sd_notify(0, state);
}

void sl_sd_ready(const char *status)
{
    if (!enabled()) return;
    char buf[600];
    snprintf(buf, sizeof(buf), "READY=1\nMAINPID=%ld\nSTATUS=%s", (long)getpid(), status ? status : "ready");
    send_state(buf);
}

void sl_sd_mainpid(long pid, const char *status)
{
    if (!enabled()) return;
    char buf[600];
    snprintf(buf, sizeof(buf), "MAINPID=%ld\nSTATUS=%s", pid, status ? status : "");
    send_state(buf);
}

void sl_sd_reloading(void)
{
    if (!enabled()) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char buf[128];
    snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
    send_state(buf);
}

void sl_sd_reloaded(const char *status)
{
    if (!enabled()) return;
    char buf[600];
    snprintf(buf, sizeof(buf), "READY=1\nSTATUS=%s", status ? status : "ready");
    send_state(buf);
}

void sl_sd_stopping(const char *status)
{
    if (!enabled()) return;
    char buf[600];
    snprintf(buf, sizeof(buf), "STOPPING=1\nSTATUS=%s", status ? status : "stopping");
    send_state(buf);
}

void sl_sd_status(const char *fmt, ...)
{
    if (!enabled()) return;
    char buf[600] = "STATUS=";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + 7, sizeof(buf) - 7, fmt, ap);
    va_end(ap);
    send_state(buf);
}
