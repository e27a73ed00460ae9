/* lifecycle.c - the process's run state and its running configuration: RELOAD/SIGHUP and the
 * console's SET build a new snapshot and apply it (routes refreshed, every worker switched to it). */
#include "core/lifecycle.h"

#include <stdio.h>
#include <string.h>

#include "core/dispatch.h"
#include "net/tls.h"
#include "net/worker.h"
#include "pool/pool.h"
#include "util/log.h"
#include "util/sdnotify.h"

int sl_run_state_v;
uint64_t sl_conn_counter;
int sl_total_clients;

static const char *g_config_path;
static int g_verbose, g_quiet;
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER; /* one config change at a time */

void sl_lifecycle_init(const char *config_path, int verbose, int quiet)
{
    g_config_path = config_path;
    g_verbose = verbose;
    g_quiet = quiet;
}

const char *sl_run_state_label(sl_run_state rs)
{
    switch (rs) {
    case SL_RUN_NORMAL: return "running";
    case SL_RUN_PAUSED: return "paused";
    case SL_RUN_SUSPENDED: return "suspended";
    case SL_RUN_SHUTDOWN_GRACEFUL:
    case SL_RUN_SHUTDOWN_WAIT_CLIENTS:
    case SL_RUN_SHUTDOWN_NOW: return "shutting_down";
    }
    return "unknown";
}

void sl_set_run_state(sl_run_state st)
{
    __atomic_store_n(&sl_run_state_v, (int)st, __ATOMIC_RELAXED);
    sl_pools_set_hold(st == SL_RUN_PAUSED || st == SL_RUN_SUSPENDED || st == SL_RUN_SHUTDOWN_GRACEFUL);
    sl_broadcast_state();
}

static void setup_log(const sl_config *cfg)
{
    sl_log_setup(cfg->logfile, cfg->syslog, cfg->syslog_ident, cfg->syslog_facility, cfg->verbose + g_verbose,
                 g_quiet);
}

void sl_apply_config(sl_config *cfg)
{
    sl_config_set_current(cfg);
    sl_config *cur = sl_config_acquire();
    sl_pool_actions act;
    sl_pool_actions_init(&act);
    sl_pools_reconfigure(cur, &act);
    /* the console that asked (SET, RELOAD) sees its change in its next command; other workers switch
     * when they read their mailbox */
    sl_worker *self = sl_worker_self();
    if (self) sl_worker_set_config(self, cur);
    else sl_config_unref(cur);
    sl_carry_out(&act);
    sl_broadcast_state();
}

/* TLS contexts for a new snapshot, built before it applies (certificate and key files read and
 * checked now: a RELOAD picks up renewed files); a failure refuses the snapshot and the running
 * contexts stay. always: rebuild even when no TLS setting changed (RELOAD). A change of the server
 * side's settings reconnects every server connection once it is back in its pool. */
static bool tls_prepare(const sl_config *cfg, bool always, char *err, size_t errlen)
{
    sl_config *cur = sl_config_acquire();
    bool server_changed = sl_tls_settings_differ(cur, cfg, SL_TLS_CONNECT);
    bool changed = server_changed || sl_tls_settings_differ(cur, cfg, SL_TLS_ACCEPT);
    sl_config_unref(cur);
    if (!always && !changed) return true;
    if (!sl_tls_install(cfg, err, errlen)) return false;
    if (server_changed) sl_db_reconnect(NULL);
    return true;
}

bool sl_reload(char *errbuf, size_t errlen)
{
    char err[512];
    pthread_mutex_lock(&reload_lock);
    sl_sd_reloading();
    sl_config *cfg = sl_config_load(g_config_path, err, sizeof(err));
    if (!cfg) {
        sl_sd_reloaded("RELOAD failed, running the previous configuration");
        pthread_mutex_unlock(&reload_lock);
        sl_log_error("RELOAD failed, keeping the running configuration: %s", err);
        if (errbuf) snprintf(errbuf, errlen, "%s", err);
        return false;
    }
    if (!tls_prepare(cfg, true, err, sizeof(err))) {
        sl_config_unref(cfg);
        sl_sd_reloaded("RELOAD failed, running the previous configuration");
        pthread_mutex_unlock(&reload_lock);
        sl_log_error("RELOAD failed, keeping the running configuration: %s", err);
        if (errbuf) snprintf(errbuf, errlen, "%s", err);
        return false;
    }
    setup_log(cfg);
    sl_apply_config(cfg);
    sl_sd_reloaded("configuration reloaded");
    pthread_mutex_unlock(&reload_lock);
    sl_log_info("configuration reloaded from %s", g_config_path);
    return true;
}

sl_set_result sl_set_setting(const char *name, const char *value, char *err, size_t errlen)
{
    const sl_setting *st = sl_setting_find(name);
    if (!st) {
        snprintf(err, errlen, "unknown setting: %s", name);
        return SL_SET_UNKNOWN;
    }
    if (!sl_setting_reloadable(st)) {
        snprintf(err, errlen, "%s cannot be changed while running (restart needed)", st->name);
        return SL_SET_RESTART;
    }
    pthread_mutex_lock(&reload_lock);
    sl_config *cur = sl_config_acquire();
    sl_config *cfg = sl_config_clone(cur);
    sl_config_unref(cur);
    bool ok = cfg && sl_setting_set(cfg, st, value, err, errlen) && tls_prepare(cfg, false, err, errlen);
    /* the rules behind auth_type hba and ldap are read again when what they come from changes */
    if (ok && (!strcmp(st->name, "auth_type") || !strcmp(st->name, "auth_hba_file") ||
               !strcmp(st->name, "auth_ident_file") || !strcmp(st->name, "auth_ldap_options")))
        ok = sl_config_load_auth_rules(cfg, err, errlen);
    if (!cfg) snprintf(err, errlen, "out of memory");
    if (ok) {
        if (!strcmp(st->name, "verbose") || !strncmp(st->name, "log", 3) || !strncmp(st->name, "syslog", 6))
            setup_log(cfg);
        sl_apply_config(cfg);
    } else if (cfg) {
        sl_config_unref(cfg);
    }
    pthread_mutex_unlock(&reload_lock);
    if (ok) sl_log_info("SET %s = %s", st->name, value);
    return ok ? SL_SET_OK : SL_SET_BAD_VALUE;
}
