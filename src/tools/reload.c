/* reload.c - make a running pgsluice reload (see reload.h). The pidfile way needs the right to signal the
 * process (root or the same OS user); the console way needs an admin_users login (password from PGPASSWORD,
 * PGPASSWORD_FILE or ~/.pgpass) and reports a failed reload synchronously. */
#include "tools/reload.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tools/pgconn.h"

/* The pid in the pidfile when it names a live process whose name starts with "pgsluice"; else 0. */
static long pidfile_process(const char *pidfile, char *why, size_t whylen)
{
    why[0] = '\0';
    if (!pidfile || !*pidfile) return 0;
    FILE *f = fopen(pidfile, "r");
    if (!f) {
        snprintf(why, whylen, "pidfile %s: %s", pidfile, strerror(errno));
        return 0;
    }
    long pid = 0;
    if (fscanf(f, "%ld", &pid) != 1) pid = 0;
    fclose(f);
    if (pid <= 1) {
        snprintf(why, whylen, "pidfile %s holds no pid", pidfile);
        return 0;
    }
    char path[64], comm[64] = "";
    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
    f = fopen(path, "r");
    if (!f || !fgets(comm, sizeof(comm), f)) {
        if (f) fclose(f);
        snprintf(why, whylen, "pidfile %s names pid %ld, which is not running (stale pidfile)", pidfile, pid);
        return 0;
    }
    fclose(f);
    if (strncmp(comm, "pgsluice", 8) != 0) {
        comm[strcspn(comm, "\n")] = '\0';
        snprintf(why, whylen, "pidfile %s names pid %ld, which is \"%s\", not pgsluice (stale pidfile)", pidfile, pid,
                 comm);
        return 0;
    }
    return pid;
}

static void first_admin(const char *list, char *out, size_t outlen)
{
    out[0] = '\0';
    if (!list) return;
    while (*list && (isspace((unsigned char)*list) || *list == ',')) list++;
    size_t n = strcspn(list, ", \t");
    if (n >= outlen) n = outlen - 1;
    memcpy(out, list, n);
    out[n] = '\0';
}

static sl_reload_result console_reload(const sl_config *cfg, const char *admin_user, char *msg, size_t msglen)
{
    char host[512], port[16], user[128];
    struct stat st;
    snprintf(port, sizeof(port), "%d", cfg->listen_port);
    char sock[600];
    snprintf(sock, sizeof(sock), "%s/.s.PGSQL.%d", cfg->unix_socket_dir ? cfg->unix_socket_dir : "", cfg->listen_port);
    if (cfg->unix_socket_dir && *cfg->unix_socket_dir && stat(sock, &st) == 0 && S_ISSOCK(st.st_mode)) {
        snprintf(host, sizeof(host), "%s", cfg->unix_socket_dir);
    } else {
        const char *a = cfg->listen_addr ? cfg->listen_addr : "";
        size_t n = strcspn(a, ", \t");
        if (n == 0 || (n == 1 && a[0] == '*')) snprintf(host, sizeof(host), "127.0.0.1");
        else snprintf(host, sizeof(host), "%.*s", (int)n, a);
        if (!strcmp(host, "0.0.0.0")) snprintf(host, sizeof(host), "127.0.0.1");
        if (!strcmp(host, "::")) snprintf(host, sizeof(host), "::1");
    }
    const char *pkw[] = {"host", "port", "dbname", "connect_timeout", NULL};
    const char *pval[] = {host, port, "pgbouncer", "5", NULL};
    if (PQpingParams(pkw, pval, 0) == PQPING_NO_RESPONSE) {
        snprintf(msg, msglen, "nothing answers on the admin console %s:%s", host, port);
        return SL_RELOAD_NOT_RUNNING;
    }
    if (admin_user) snprintf(user, sizeof(user), "%s", admin_user);
    else if (getenv("PGUSER")) snprintf(user, sizeof(user), "%s", getenv("PGUSER"));
    else first_admin(cfg->admin_users, user, sizeof(user));
    if (!user[0]) {
        snprintf(msg, msglen, "no admin user to log in to the console with (set admin_users or --admin-user)");
        return SL_RELOAD_FAILED;
    }
    sl_pg_target t = {.host = host, .port = port, .dbname = "pgbouncer", .user = user,
                      .application_name = "pgsluice tune"};
    char err[512];
    PGconn *c = sl_pg_connect(&t, err, sizeof(err));
    if (!c) {
        bool absent = strstr(err, "Connection refused") || strstr(err, "No such file or directory");
        if (snprintf(msg, msglen, "admin console %s:%s as %s: %s", host, port, user, err) >= (int)msglen)
            msg[msglen - 1] = '\0';
        return absent ? SL_RELOAD_NOT_RUNNING : SL_RELOAD_FAILED;
    }
    PGresult *r = PQexec(c, "RELOAD");
    sl_reload_result res = SL_RELOAD_DONE;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        char m[512];
        snprintf(msg, msglen, "RELOAD on the admin console %s:%s failed: %s", host, port, sl_pg_errmsg(c, m, sizeof(m)));
        res = SL_RELOAD_FAILED;
    } else {
        snprintf(msg, msglen, "RELOAD done on the admin console (%s:%s as %s)", host, port, user);
    }
    PQclear(r);
    PQfinish(c);
    return res;
}

sl_reload_result sl_tool_reload(const sl_config *cfg, const char *admin_user, char *msg, size_t msglen)
{
    char why[600];
    long pid = pidfile_process(cfg->pidfile, why, sizeof(why));
    if (pid > 0) {
        if (kill((pid_t)pid, SIGHUP) == 0) {
            snprintf(msg, msglen, "sent SIGHUP to pgsluice (pid %ld from %s)", pid, cfg->pidfile);
            return SL_RELOAD_SIGNALLED;
        }
        snprintf(why, sizeof(why), "cannot signal pid %ld from %s: %s", pid, cfg->pidfile, strerror(errno));
    }
    char cmsg[800];
    sl_reload_result r = console_reload(cfg, admin_user, cmsg, sizeof(cmsg));
    if (r == SL_RELOAD_DONE || !why[0]) snprintf(msg, msglen, "%s", cmsg);
    else snprintf(msg, msglen, "%s; %s", why, cmsg);
    return r;
}
