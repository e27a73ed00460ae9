/* takeover_upgrade.c - the console's UPGRADE: the running process starts the new one
 * (`<exe> --takeover --takeover-timeout <s> <config>`, twice forked, in its own cgroup and
 * environment), which then takes over from it through TAKEOVER. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/takeover.h"
#include "util/log.h"

static char *g_exe, *g_config;

void sl_takeover_set_exec(const char *exe_path, const char *config_path)
{
    free(g_exe);
    free(g_config);
    g_exe = exe_path ? strdup(exe_path) : NULL;
    g_config = config_path ? strdup(config_path) : NULL;
}

bool sl_takeover_spawn(int timeout_s, char *err, size_t errlen)
{
    if (!g_exe || !g_config) {
        snprintf(err, errlen, "the path of the pgsluice binary is unknown");
        return false;
    }
    if (access(g_exe, X_OK) != 0) {
        snprintf(err, errlen, "cannot run %s: %s", g_exe, strerror(errno));
        return false;
    }
    char secs[16];
    snprintf(secs, sizeof(secs), "%d", timeout_s);
    char *const argv[] = {g_exe, "--takeover", "--takeover-timeout", secs, g_config, NULL};
    /* twice forked: the new process is nobody's zombie, and stays in this process's cgroup */
    pid_t mid = fork();
    if (mid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return false;
    }
    if (mid == 0) {
        setsid();
        if (fork() != 0) _exit(0);
        /* only stdin/out/err go along: every socket of this process stays here until handed over */
        for (int fd = 3; fd < 65536; fd++) close(fd);
        execv(argv[0], argv);
        fprintf(stderr, "pgsluice: UPGRADE: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(mid, &st, 0) < 0 && errno == EINTR) {}
    sl_log_info("UPGRADE: started %s --takeover", g_exe);
    return true;
}
