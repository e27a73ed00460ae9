/* main.c - the pgsluice process: command line (as PgBouncer's), config, daemon mode, pidfile,
 * starting the workers, and signals (HUP reload, INT graceful, TERM wait for clients, QUIT now,
 * USR1 pause, USR2 resume) on the main thread's own loop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "admin/admin.h"
#include "config/config.h"
#include "core/dispatch.h"
#include "core/lifecycle.h"
#include "core/takeover.h"
#include "http/http.h"
#include "health/checker.h"
#include "net/listener.h"
#include "net/tls.h"
#include "pool/pool.h"
#include "proto/params.h"
#include "tools/tools.h"
#include "util/log.h"
#include "util/sdnotify.h"

static char *g_config_path;
static char *g_pidfile;
static char *g_unix_socket;
static int g_quiet, g_verbose;
static uv_loop_t g_main_loop;
static uv_timer_t g_watch;

static void usage(FILE *f)
{
    fprintf(f,
            "pgsluice is a PostgreSQL connection pooler, a drop-in for PgBouncer.\n\n"
            "Usage:\n  pgsluice [OPTION]... CONFIG_FILE\n"
            "  pgsluice tune [--apply] [OPTION]... [CONFIG_FILE]   size the pools for this machine (tune --help)\n"
            "  pgsluice userlist [OPTION]... FILE                  write an auth_file (userlist --help)\n\n"
            "Options:\n"
            "  -d, --daemon         run in the background (without it, the process runs in the foreground)\n"
            "  -q, --quiet          run quietly (only errors to stderr)\n"
            "  -R, --takeover, --reboot\n"
            "                       take over from the running pgsluice (same config, same OS user): its\n"
            "                       listening sockets and every client and server connection are handed to\n"
            "                       this process between transactions, and it exits; nothing is dropped\n"
            "      --takeover-timeout=SECONDS\n"
            "                       how long the running process waits for its clients to get between\n"
            "                       transactions before it gives up and serves on (default 60)\n"
            "  -u, --user=USERNAME  drop privileges to this OS user\n"
            "  -v, --verbose        increase verbosity (repeat for more)\n"
            "  -V, --version        show the version and exit\n"
            "  -h, --help           show this help and exit\n\n"
            "Signals: HUP reload, INT graceful shutdown (running transactions finish), TERM shutdown once\n"
            "clients have left, QUIT immediate shutdown, USR1 pause, USR2 resume.\n");
}

static void write_pidfile(const char *path)
{
    if (!path || !*path) return;
    char buf[32];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        sl_log_fatal("cannot write pidfile %s: %s", path, strerror(errno));
        exit(1);
    }
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (write(fd, buf, (size_t)n) != n) sl_log_warn("short write to pidfile %s", path);
    close(fd);
    g_pidfile = strdup(path);
}

static void cleanup_and_exit(int code)
{
    sl_sd_stopping("stopped");
    sl_http_stop();
    sl_health_stop();
    if (g_pidfile) unlink(g_pidfile);
    if (g_unix_socket) unlink(g_unix_socket);
    sl_log_info("pgsluice stopped");
    _exit(code);
}

/* Every 5 s under systemd: a STATUS= line for `systemctl status`. */
static void sd_status_tick(void)
{
    static unsigned ticks;
    const char *ns = getenv("NOTIFY_SOCKET");
    if (!ns || !*ns || ++ticks % 50 != 0) return;
    sl_sd_status("%d clients, %d server connections in use", __atomic_load_n(&sl_total_clients, __ATOMIC_RELAXED),
                 sl_pools_busy_servers());
}

static void watch_cb(uv_timer_t *t)
{
    (void)t;
    sd_status_tick();
    sl_run_state rs = sl_run_state_get();
    if (rs == SL_RUN_SHUTDOWN_GRACEFUL) {
        if (sl_pools_busy_servers() == 0) cleanup_and_exit(0);
    } else if (rs == SL_RUN_SHUTDOWN_WAIT_CLIENTS) {
        if (__atomic_load_n(&sl_total_clients, __ATOMIC_RELAXED) <= 0) cleanup_and_exit(0);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    sl_run_state rs = sl_run_state_get();
    switch (signum) {
    case SIGHUP:
        sl_log_reopen();
        sl_reload(NULL, 0);
        break;
    case SIGINT:
        if (rs >= SL_RUN_SHUTDOWN_GRACEFUL) cleanup_and_exit(0);
        sl_log_info("got SIGINT, shutting down after running transactions finish");
        sl_sd_stopping("shutting down after running transactions finish");
        sl_set_run_state(SL_RUN_SHUTDOWN_GRACEFUL);
        break;
    case SIGTERM:
        if (rs >= SL_RUN_SHUTDOWN_GRACEFUL) cleanup_and_exit(0);
        sl_log_info("got SIGTERM, shutting down once all clients have left");
        sl_sd_stopping("shutting down once all clients have left");
        sl_set_run_state(SL_RUN_SHUTDOWN_WAIT_CLIENTS);
        break;
    case SIGQUIT:
        sl_log_info("got SIGQUIT, shutting down now");
        cleanup_and_exit(0);
        break;
    case SIGUSR1:
        sl_log_info("got SIGUSR1, pausing");
        if (rs == SL_RUN_NORMAL) sl_set_run_state(SL_RUN_PAUSED);
        break;
    case SIGUSR2:
        sl_log_info("got SIGUSR2, resuming");
        if (rs == SL_RUN_PAUSED) sl_set_run_state(SL_RUN_NORMAL);
        break;
    }
}

/* The signals pgsluice acts on, handled by the main loop (g_main_loop, initialized). */
static void catch_signals(void)
{
    static const int sigs[] = {SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2};
    static uv_signal_t sh[6];
    for (int i = 0; i < 6; i++) {
        uv_signal_init(&g_main_loop, &sh[i]);
        uv_signal_start(&sh[i], on_signal, sigs[i]);
    }
}

static void drop_privileges(const char *user)
{
    if (!user || !*user) return;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        sl_log_fatal("unknown user: %s", user);
        exit(1);
    }
    if (getuid() != 0 && getuid() == pw->pw_uid) return;
    if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        sl_log_fatal("cannot switch to user %s: %s", user, strerror(errno));
        exit(1);
    }
}

static void daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        sl_log_fatal("fork failed: %s", strerror(errno));
        exit(1);
    }
    if (pid > 0) _exit(0);
    setsid();
    pid = fork();
    if (pid < 0) exit(1);
    if (pid > 0) _exit(0);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2) close(fd);
    }
}

#define SL_THREADPOOL_SIZE "16"

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"daemon", no_argument, NULL, 'd'}, {"quiet", no_argument, NULL, 'q'},   {"verbose", no_argument, NULL, 'v'},
        {"user", required_argument, NULL, 'u'}, {"version", no_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'},
        {"reboot", no_argument, NULL, 'R'}, {"takeover", no_argument, NULL, 'R'},
        {"takeover-timeout", required_argument, NULL, 'T'}, {NULL, 0, NULL, 0},
    };
    /* Operator subcommands first: they have options of their own. */
    if (argc >= 2 && !strcmp(argv[1], "tune")) return sl_tool_tune_main(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "userlist")) return sl_tool_userlist_main(argc - 1, argv + 1);
    int daemon_mode = 0, c, takeover = 0, takeover_timeout = 60;
    const char *run_user = NULL;
    /* libuv's thread pool (read once, at its first use) runs host name lookups, SCRAM key derivations
     * and PAM/LDAP checks for every worker. Its default of 4 threads would let four logins waiting on
     * a slow LDAP server hold up every server connection that needs a DNS lookup; UV_THREADPOOL_SIZE
     * in the environment still decides. */
    setenv("UV_THREADPOOL_SIZE", SL_THREADPOOL_SIZE, 0);
    while ((c = getopt_long(argc, argv, "dqvu:VhR", opts, NULL)) != -1) {
        switch (c) {
        case 'd': daemon_mode = 1; break;
        case 'q': g_quiet = 1; break;
        case 'v': g_verbose++; break;
        case 'u': run_user = optarg; break;
        case 'V': printf("pgsluice %s\n", SL_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        case 'R': takeover = 1; break;
        case 'T': {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > 86400) {
                fprintf(stderr, "pgsluice: --takeover-timeout wants a number of seconds (1 to 86400), not \"%s\"\n", optarg);
                return 1;
            }
            takeover_timeout = (int)v;
            break;
        }
        default: usage(stderr); return 1;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 1;
    }
    g_config_path = realpath(argv[optind], NULL);
    if (!g_config_path) {
        fprintf(stderr, "pgsluice: cannot open config file %s: %s\n", argv[optind], strerror(errno));
        return 1;
    }
    sl_log_setup(NULL, 0, NULL, NULL, g_verbose, g_quiet);
    {
        /* what the console's UPGRADE runs: this binary's path, read again from disk then */
        char *exe = realpath("/proc/self/exe", NULL);
        sl_takeover_set_exec(exe, g_config_path);
        free(exe);
    }
    char err[512];
    sl_config *cfg = sl_config_load(g_config_path, err, sizeof(err));
    if (!cfg) {
        sl_log_fatal("%s", err);
        return 1;
    }
    if (!sl_params_track_extra(cfg->track_extra_parameters, err, sizeof(err))) {
        sl_log_fatal("%s", err);
        sl_config_unref(cfg);
        return 1;
    }
    /* fail closed: TLS that is asked for and cannot be set up refuses to start */
    if (!sl_tls_install(cfg, err, sizeof(err))) {
        sl_log_fatal("%s", err);
        sl_config_unref(cfg); /* nothing left for LeakSanitizer to report at this exit */
        return 1;
    }
    sl_log_setup(cfg->logfile, cfg->syslog, cfg->syslog_ident, cfg->syslog_facility, cfg->verbose + g_verbose, g_quiet);
    sl_lifecycle_init(g_config_path, g_verbose, g_quiet);
    if (!run_user && cfg->user && *cfg->user) run_user = cfg->user;
    sl_config_set_current(cfg);
    cfg = sl_config_acquire();
    if (daemon_mode) daemonize();
    signal(SIGPIPE, SIG_IGN);
    sl_pools_init(cfg->workers < SL_MAX_WORKERS ? cfg->workers : SL_MAX_WORKERS);
    sl_admin_register();
    uv_loop_init(&g_main_loop);
    if (takeover) {
        /* the sockets come from the running process, which must be the same OS user: switch first.
         * A signal during the transfer keeps its default action: the new process dies and the old
         * one, seeing the transfer cut, goes on serving. */
        drop_privileges(run_user);
        if (!sl_takeover_receive(cfg, takeover_timeout, err, sizeof(err))) {
            sl_log_fatal("takeover failed, the running pgsluice goes on serving: %s", err);
            return 1;
        }
        catch_signals();
    } else {
        /* caught before the first "listening on": a SIGHUP sent as soon as that is logged is a reload
         * (run once the loop runs), not the default action that kills the process */
        catch_signals();
        if (!sl_listen_open(cfg)) return 1;
    }
    if (cfg->unix_socket_dir && *cfg->unix_socket_dir) {
        char path[512];
        snprintf(path, sizeof(path), "%s/.s.PGSQL.%d", cfg->unix_socket_dir, cfg->listen_port);
        g_unix_socket = strdup(path);
    }
    drop_privileges(run_user);
    write_pidfile(cfg->pidfile);

    uv_timer_init(&g_main_loop, &g_watch);
    uv_timer_start(&g_watch, watch_cb, 100, 100);

    if (!sl_workers_start(cfg->workers, (uint32_t)(cfg->pkt_buf < 1024 ? 1024 : cfg->pkt_buf), &sl_core_worker_ops, cfg))
        return 1;
    (void)sl_http_start(cfg); /* a monitoring endpoint that cannot listen is logged, never fatal */
    sl_health_start(cfg);     /* health checks of the hosts of databases with roles */
    sl_log_info("pgsluice %s started: %d worker%s, pool_mode=%s", SL_VERSION, sl_nworkers, sl_nworkers == 1 ? "" : "s",
                sl_pool_mode_name(cfg->pool_mode));
    sl_sd_ready("accepting connections");
    sl_config_unref(cfg);
    uv_run(&g_main_loop, UV_RUN_DEFAULT);
    return 0;
}
