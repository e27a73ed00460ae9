/* log.c - the logger: one formatted line per call, written with a single write(2) so threads never interleave. */
#include "util/log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static int g_fd = -1;
static char *g_path;
static int g_syslog;
static int g_verbose;
static int g_quiet;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_name[] = {"FATAL", "ERROR", "WARNING", "LOG", "DEBUG", "NOISE"};
static const int level_prio[] = {LOG_CRIT, LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG};

static int facility_code(const char *name)
{
    static const struct { const char *n; int v; } tab[] = {
        {"daemon", LOG_DAEMON}, {"user", LOG_USER}, {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1},
        {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
        {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
    };
    for (size_t i = 0; name && i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strcasecmp(name, tab[i].n) == 0) return tab[i].v;
    return LOG_DAEMON;
}

void sl_log_setup(const char *logfile, int use_syslog, const char *ident, const char *facility, int verbose, int quiet)
{
    pthread_mutex_lock(&g_lock);
    if (g_fd >= 0) close(g_fd);
    g_fd = -1;
    free(g_path);
    g_path = logfile && *logfile ? strdup(logfile) : NULL;
    if (g_path) {
        g_fd = open(g_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (g_fd < 0) fprintf(stderr, "cannot open logfile %s\n", g_path);
    }
    if (g_syslog) closelog();
    g_syslog = use_syslog;
    if (g_syslog) openlog(ident && *ident ? ident : "pgsluice", LOG_PID, facility_code(facility));
    __atomic_store_n(&g_verbose, verbose, __ATOMIC_RELAXED);
    g_quiet = quiet;
    pthread_mutex_unlock(&g_lock);
}

void sl_log_reopen(void)
{
    pthread_mutex_lock(&g_lock);
    if (g_path) {
        int fd = open(g_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd >= 0) {
            if (g_fd >= 0) close(g_fd);
            g_fd = fd;
        }
    }
    pthread_mutex_unlock(&g_lock);
}

int sl_log_verbose(void) { return __atomic_load_n(&g_verbose, __ATOMIC_RELAXED); }

/* A message may carry text a client chose (a user or database name): it must not be able to forge a
 * log line of its own. A newline is followed by an indent (PgBouncer's way: continuation lines are
 * indented), other control bytes are written as \xNN. */
static int sanitize(const char *in, int n, char *out, int cap)
{
    int o = 0;
    for (int i = 0; i < n && o < cap - 5; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch == '\n') {
            out[o++] = '\n';
            out[o++] = '\t';
        } else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            o += snprintf(out + o, (size_t)(cap - o), "\\x%02x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    return o;
}

void sl_log_msg(sl_log_level lvl, const char *fmt, ...)
{
    char line[2048], msg[1500];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03d UTC [%d] %s ", (int)(tv.tv_usec / 1000), (int)getpid(),
                  level_name[lvl]);
    int head = n;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0) m = 0;
    if (m >= (int)sizeof(msg)) m = (int)sizeof(msg) - 1;
    n += sanitize(msg, m, line + n, (int)sizeof(line) - n - 1);
    if (n > (int)sizeof(line) - 2) n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    line[n] = 0;
    /* the lock orders writes against sl_log_setup/sl_log_reopen swapping the outputs */
    pthread_mutex_lock(&g_lock);
    if (!g_quiet || lvl <= SL_LOG_ERROR) {
        ssize_t r = write(STDERR_FILENO, line, (size_t)n);
        (void)r;
    }
    if (g_fd >= 0) {
        ssize_t r = write(g_fd, line, (size_t)n);
        (void)r;
    }
    if (g_syslog) syslog(level_prio[lvl], "%s", line + head);
    pthread_mutex_unlock(&g_lock);
}
