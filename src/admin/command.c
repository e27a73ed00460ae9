/* command.c - dispatch of admin console commands: the SHOW table, SET, transaction no-ops, the
 * session parameters some drivers ask for, and who may run what (stats_users: SHOW only). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "admin/admin_int.h"
#include "core/lifecycle.h"


static const adm_show shows[] = {
    {"help", NULL, adm_show_help},
    {"pools", adm_cols_pools, adm_show_pools},
    {"clients", adm_cols_clients, adm_show_clients},
    {"servers", adm_cols_servers, adm_show_servers},
    {"stats", adm_cols_stats, adm_show_stats},
    {"stats_totals", adm_cols_stats_totals, adm_show_stats_totals},
    {"stats_averages", adm_cols_stats_averages, adm_show_stats_averages},
    {"totals", adm_cols_totals, adm_show_totals},
    {"databases", adm_cols_databases, adm_show_databases},
    {"users", adm_cols_users, adm_show_users},
    {"config", adm_cols_config, adm_show_config},
    {"lists", adm_cols_lists, adm_show_lists},
    {"mem", adm_cols_mem, adm_show_mem},
    {"state", adm_cols_state, adm_show_state},
    {"version", adm_cols_version, adm_show_version},
    {"sockets", adm_cols_debug_sockets, adm_show_sockets},
    {"active_sockets", adm_cols_debug_sockets, adm_show_active_sockets},
    {"dns_hosts", adm_cols_dns_hosts, adm_show_dns_hosts},
    {"dns_zones", adm_cols_dns_zones, adm_show_dns_zones},
    {"peers", adm_cols_peers, adm_show_peers},
    {"peer_pools", adm_cols_peer_pools, adm_show_peer_pools},
    {"backends", adm_cols_backends, adm_show_backends},
};

const adm_show *adm_show_find(const char *name)
{
    for (size_t i = 0; i < sizeof(shows) / sizeof(shows[0]); i++)
        if (!strcasecmp(shows[i].name, name)) return &shows[i];
    return NULL;
}

/* Session parameters answered with fixed values (SHOW x) and accepted without effect (SET x). */
static const struct {
    const char *name, *value;
} fake_params[] = {
    {"client_encoding", "UTF8"},
    {"server_encoding", "UTF8"},
    {"datestyle", "ISO"},
    {"timezone", "UTC"},
    {"standard_conforming_strings", "on"},
    {"default_transaction_isolation", "read committed"},
    {"transaction_isolation", "read committed"},
    {"extra_float_digits", "1"},
    {"intervalstyle", "postgres"},
    {"application_name", ""},
    {"search_path", ""},
    {"server_version", "15.0 (pgsluice " SL_VERSION ")"},
    {"server_version_num", "150000"},
};

static int fake_param(const char *name)
{
    for (size_t i = 0; i < sizeof(fake_params) / sizeof(fake_params[0]); i++)
        if (!strcasecmp(fake_params[i].name, name)) return (int)i;
    return -1;
}

static bool is_show(const adm_cmd *cmd)
{
    return cmd->kind == ADM_CMD_WORDS && (!strcmp(cmd->verb, "show") || !strcmp(cmd->verb, "select"));
}

/* BEGIN/COMMIT/ROLLBACK: accepted as no-ops so drivers that wrap statements in transactions work. */
static int xact_kind(const adm_cmd *cmd)
{
    static const char *const begins[] = {"begin", "start", NULL};
    static const char *const ends[] = {"commit", "end", "rollback", "abort", NULL};
    if (cmd->kind != ADM_CMD_WORDS) return 0;
    for (int i = 0; begins[i]; i++)
        if (!strcmp(cmd->verb, begins[i])) return 1;
    for (int i = 0; ends[i]; i++)
        if (!strcmp(cmd->verb, ends[i])) return i >= 2 ? 3 : 2;
    return 0;
}

static void invalid(const adm_cmd *cmd, adm_result *r)
{
    adm_error(r, "42601", "invalid command '%s', use SHOW HELP;", cmd->text);
}

bool adm_describe(const adm_cmd *cmd, adm_result *r)
{
    if (cmd->kind == ADM_CMD_SET || xact_kind(cmd)) return false;
    if (!is_show(cmd)) {
        if (!adm_control_known(cmd->verb)) invalid(cmd, r);
        return false;
    }
    int fp = fake_param(cmd->arg);
    if (fp >= 0) {
        adm_cols(r, "s", fake_params[fp].name);
        return true;
    }
    const adm_show *sh = adm_show_find(cmd->arg);
    if (!sh) {
        invalid(cmd, r);
        return false;
    }
    if (sh->cols) sh->cols(r);
    return sh->cols != NULL;
}

static adm_status run_set(adm_session *s, const adm_cmd *cmd, adm_result *r)
{
    if (fake_param(cmd->arg) >= 0) {
        adm_notice(r, "SET ignored", NULL);
        adm_tag(r, "SET");
        return ADM_DONE;
    }
    if (!s->is_admin) {
        adm_error(r, "42501", "admin access needed: SET is for admin_users");
        return ADM_DONE;
    }
    char err[256];
    sl_set_result sr = sl_set_setting(cmd->arg, cmd->value, err, sizeof(err));
    if (sr != SL_SET_OK) {
        adm_error(r, sr == SL_SET_UNKNOWN ? "42704" : "22023", "SET failed: %s", err);
        return ADM_DONE;
    }
    adm_tag(r, "SET %s=%s", cmd->arg, cmd->value);
    return ADM_DONE;
}

static adm_status run_show(adm_session *s, const adm_cmd *cmd, adm_result *r)
{
    int fp = fake_param(cmd->arg);
    if (fp >= 0) {
        adm_cols(r, "s", fake_params[fp].name);
        adm_row(r, "s", fake_params[fp].value);
        adm_tag(r, "SHOW");
        return ADM_DONE;
    }
    const adm_show *sh = cmd->arg[0] ? adm_show_find(cmd->arg) : NULL;
    if (!sh) {
        invalid(cmd, r);
        return ADM_DONE;
    }
    adm_tag(r, "SHOW");
    return sh->run(s, r);
}

adm_status adm_execute(adm_session *s, const adm_cmd *cmd, adm_result *r)
{
    int xk = xact_kind(cmd);
    if (xk) {
        s->xact = xk == 1 ? 'T' : 'I';
        adm_tag(r, "%s", xk == 1 ? "BEGIN" : xk == 2 ? "COMMIT" : "ROLLBACK");
        return ADM_DONE;
    }
    if (cmd->kind == ADM_CMD_SET) return run_set(s, cmd, r);
    if (is_show(cmd)) return run_show(s, cmd, r);
    bool found = false;
    adm_status st = adm_control(s, cmd, r, &found);
    if (!found) invalid(cmd, r);
    return st;
}
