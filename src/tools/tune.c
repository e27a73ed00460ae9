/* tune.c - `pgsluice tune [--apply] [CONFIG]`: sizes default_pool_size, max_db_connections and max_client_conn
 * from the machine (CPUs, memory) and the servers' connection limits (sizing.c), prints the change as a diff
 * with a reason per value, and with --apply rewrites the file keeping its comments (ini_edit.c), keeps a backup
 * and makes the running pgsluice reload (reload.c). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "tools/file_util.h"
#include "tools/ini_edit.h"
#include "tools/machine.h"
#include "tools/pgconn.h"
#include "tools/reload.h"
#include "tools/sizing.h"
#include "tools/tools.h"
#include "util/log.h"

#define DEFAULT_CONFIG "/etc/pgsluice/pgsluice.ini"

typedef struct tune_opts {
    const char *config;
    bool apply, reload, connect;
    int cpus;                 /* 0: detect */
    uint64_t memory;          /* 0: detect */
    int instances;
    int max_connections;      /* 0: ask the servers */
    int superuser_reserved;
    const char *server_user;
    const char *admin_user;
} tune_opts;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: pgsluice tune [OPTION]... [CONFIG]\n\n"
            "Proposes default_pool_size (2 x CPU cores), max_client_conn (10 x pool) and max_db_connections\n"
            "(2 x pool) for CONFIG (default: $PGSLUICE_CONFIG, else " DEFAULT_CONFIG "), capped so that every\n"
            "database of every instance fits in each server's max_connections - superuser_reserved_connections.\n"
            "Prints the change as a diff with the reason for each value. Nothing is written without --apply.\n\n"
            "Options:\n"
            "  --apply                 rewrite CONFIG in place (comments and other lines kept; a backup\n"
            "                          CONFIG.<time>.bak is written first), then make the running pgsluice reload\n"
            "  --no-reload             with --apply: do not signal the running pgsluice\n"
            "  --cpus N                size for N CPU cores instead of this machine's\n"
            "  --memory SIZE           size for SIZE of memory (8GiB, 512MiB, bytes) instead of this machine's\n"
            "  --instances N           pgsluice instances sharing the servers (default 1)\n"
            "  --max-connections N     the servers' max_connections: do not connect to them\n"
            "  --superuser-reserved N  with --max-connections: superuser_reserved_connections (default 3)\n"
            "  --no-connect            do not connect to the servers (no cap from their limits)\n"
            "  --server-user USER      log in to the servers as USER (default: the entry's user=, else $PGUSER,\n"
            "                          else postgres); password from the entry, PGPASSWORD, PGPASSWORD_FILE,\n"
            "                          ~/.pgpass or a plain-text auth_file entry\n"
            "  --admin-user USER       console user for RELOAD when there is no pidfile (default: $PGUSER, else\n"
            "                          the first of admin_users)\n"
            "  -h, --help              show this help\n");
}

static bool parse_args(int argc, char **argv, tune_opts *o)
{
    enum { O_APPLY = 256, O_NORELOAD, O_CPUS, O_MEM, O_INST, O_MAXC, O_SUR, O_NOCONN, O_SUSER, O_AUSER };
    static const struct option opts[] = {
        {"apply", no_argument, NULL, O_APPLY},
        {"no-reload", no_argument, NULL, O_NORELOAD},
        {"cpus", required_argument, NULL, O_CPUS},
        {"memory", required_argument, NULL, O_MEM},
        {"instances", required_argument, NULL, O_INST},
        {"max-connections", required_argument, NULL, O_MAXC},
        {"superuser-reserved", required_argument, NULL, O_SUR},
        {"no-connect", no_argument, NULL, O_NOCONN},
        {"server-user", required_argument, NULL, O_SUSER},
        {"admin-user", required_argument, NULL, O_AUSER},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (tune_opts){.reload = true, .connect = true, .instances = 1, .superuser_reserved = 3};
    bool sur_given = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_APPLY: o->apply = true; break;
        case O_NORELOAD: o->reload = false; break;
        case O_CPUS:
            if (!sl_parse_count(optarg, 1, 4096, &o->cpus))
                return fprintf(stderr, "pgsluice tune: --cpus needs a whole number from 1 to 4096, not \"%s\"\n", optarg), false;
            break;
        case O_MEM:
            if (!sl_parse_memory(optarg, &o->memory))
                return fprintf(stderr, "pgsluice tune: --memory needs a size like 8GiB or 512MiB, not \"%s\"\n", optarg), false;
            break;
        case O_INST:
            if (!sl_parse_count(optarg, 1, 1000, &o->instances))
                return fprintf(stderr, "pgsluice tune: --instances needs a whole number from 1 to 1000, not \"%s\"\n", optarg), false;
            break;
        case O_MAXC:
            if (!sl_parse_count(optarg, 1, 262143, &o->max_connections))
                return fprintf(stderr, "pgsluice tune: --max-connections needs a whole number from 1 to 262143, not \"%s\"\n", optarg), false;
            break;
        case O_SUR:
            if (!sl_parse_count(optarg, 0, 262143, &o->superuser_reserved))
                return fprintf(stderr, "pgsluice tune: --superuser-reserved needs a whole number, not \"%s\"\n", optarg), false;
            sur_given = true;
            break;
        case O_NOCONN: o->connect = false; break;
        case O_SUSER: o->server_user = optarg; break;
        case O_AUSER: o->admin_user = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return false;
        }
    }
    if (sur_given && !o->max_connections)
        return fprintf(stderr, "pgsluice tune: --superuser-reserved goes with --max-connections\n"), false;
    if (optind < argc - 1) return fprintf(stderr, "pgsluice tune: one CONFIG file at most\n"), usage(stderr), false;
    o->config = optind < argc ? argv[optind] : getenv("PGSLUICE_CONFIG");
    if (!o->config || !*o->config) o->config = DEFAULT_CONFIG;
    return true;
}

/* ---- the servers behind [databases] ---- */

static void server_name(const sl_db_def *d, char *out, size_t len)
{
    if (!d->host || !*d->host) snprintf(out, len, "(unix socket):%d", d->port);
    else if (d->host[0] == '/') snprintf(out, len, "%s:%d", d->host, d->port);
    else if (strchr(d->host, ':')) snprintf(out, len, "[%s]:%d", d->host, d->port);
    else snprintf(out, len, "%s:%d", d->host, d->port);
}

typedef struct server_ref {
    const sl_db_def *first;  /* an entry pointing at it, to connect with */
    char dbs[512];           /* names of the entries, for the report */
} server_ref;

static bool query_int(PGconn *c, const char *sql, int *out)
{
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0);
    if (ok) *out = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return ok;
}

static void read_server_limits(const sl_config *cfg, const tune_opts *o, const sl_db_def *d, sl_sizing_server *s)
{
    if (o->max_connections) {
        s->limits_known = true;
        s->max_connections = o->max_connections;
        s->superuser_reserved = o->superuser_reserved;
        return;
    }
    if (!o->connect) return;
    char port[16];
    snprintf(port, sizeof(port), "%d", d->port);
    const char *user = o->server_user ? o->server_user : d->user ? d->user : getenv("PGUSER") ? getenv("PGUSER") : "postgres";
    const char *password = (!o->server_user || (d->user && !strcmp(d->user, user))) ? d->password : NULL;
    if (!password && !getenv("PGPASSWORD") && !getenv("PGPASSWORD_FILE")) {
        const sl_userlist_entry *e = sl_config_find_userlist(cfg, user);
        if (e && e->password && strncmp(e->password, "md5", 3) != 0 && strncmp(e->password, "SCRAM-SHA-256$", 14) != 0)
            password = e->password;
    }
    const char *dbname = d->dbname ? d->dbname : strcmp(d->name, "*") ? d->name : "postgres";
    sl_pg_target t = {.host = d->host, .port = port, .dbname = dbname, .user = user, .password = password,
                      .application_name = "pgsluice tune"};
    char err[512];
    PGconn *c = sl_pg_connect(&t, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "pgsluice tune: cannot connect to %s as %s: %s\n", s->name, user, err);
        return;
    }
    bool ok = query_int(c, "SELECT current_setting('max_connections')::int", &s->max_connections) &&
              query_int(c, "SELECT current_setting('superuser_reserved_connections')::int", &s->superuser_reserved);
    /* reserved_connections exists from PostgreSQL 16 on; missing_ok gives NULL before. */
    if (ok && !query_int(c, "SELECT coalesce(current_setting('reserved_connections', true), '0')::int", &s->reserved))
        s->reserved = 0;
    if (!ok) {
        char m[512];
        fprintf(stderr, "pgsluice tune: cannot read max_connections on %s: %s\n", s->name, sl_pg_errmsg(c, m, sizeof(m)));
    }
    s->limits_known = ok;
    PQfinish(c);
}

static void collect_servers(const sl_config *cfg, const tune_opts *o, sl_sizing_input *in, server_ref *refs)
{
    for (size_t i = 0; i < cfg->n_dbs; i++) {
        const sl_db_def *d = &cfg->dbs[i];
        char name[160];
        server_name(d, name, sizeof(name));
        size_t k;
        for (k = 0; k < in->n_servers; k++)
            if (!strcmp(in->servers[k].name, name)) break;
        if (k == in->n_servers) {
            if (k == SL_SIZING_MAX_SERVERS) continue;
            memset(&in->servers[k], 0, sizeof(in->servers[k]));
            snprintf(in->servers[k].name, sizeof(in->servers[k].name), "%s", name);
            refs[k].first = d;
            refs[k].dbs[0] = '\0';
            in->n_servers++;
        }
        sl_sizing_server *s = &in->servers[k];
        size_t used = strlen(refs[k].dbs);
        snprintf(refs[k].dbs + used, sizeof(refs[k].dbs) - used, "%s%s", used ? ", " : "", d->name);
        if (!strcmp(d->name, "*")) s->has_wildcard = true;
        if (d->max_db_connections < 0) s->n_dbs++;
        else if (d->max_db_connections == 0) s->n_unlimited_dbs++;
        else s->fixed_db_conns += d->max_db_connections;
    }
    for (size_t k = 0; k < in->n_servers; k++) read_server_limits(cfg, o, refs[k].first, &in->servers[k]);
}

/* ---- report ---- */

typedef struct proposal {
    const char *key;
    int current;
    const sl_sizing_value *v;
} proposal;

static void print_machine(const tune_opts *o, const sl_machine *m, const sl_sizing_input *in, const server_ref *refs)
{
    printf("pgsluice tune: %s\n", o->config);
    double mib = (double)in->memory_bytes / (1024.0 * 1024);
    printf("  machine: %d CPU core%s (%s), %.1f %s memory (%s)\n", in->cpus, in->cpus == 1 ? "" : "s",
           o->cpus ? "--cpus" : m->cpus_source, mib >= 1024 ? mib / 1024 : mib, mib >= 1024 ? "GiB" : "MiB",
           o->memory ? "--memory" : m->memory_source);
    printf("  instances: %d%s\n", in->instances, in->instances > 1 ? " (--instances)" : "");
    for (size_t k = 0; k < in->n_servers; k++) {
        const sl_sizing_server *s = &in->servers[k];
        if (s->limits_known)
            printf("  server %s: max_connections %d, superuser_reserved_connections %d%s%.0d -> %d for poolers%s; "
                   "databases: %s\n",
                   s->name, s->max_connections, s->superuser_reserved, s->reserved ? ", reserved_connections " : "",
                   s->reserved, sl_sizing_server_budget(s), o->max_connections ? " (--max-connections)" : "", refs[k].dbs);
        else
            printf("  server %s: limits unknown%s; databases: %s\n", s->name, o->connect ? "" : " (--no-connect)",
                   refs[k].dbs);
    }
}

static const char *basename_of(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static void print_diff(const char *path, const proposal *p, const sl_ini_change *ch, size_t n, int *n_changed)
{
    *n_changed = 0;
    printf("\n--- %s\n+++ %s (tuned)\n", basename_of(path), basename_of(path));
    for (size_t i = 0; i < n; i++) {
        bool changed = p[i].current != p[i].v->value;
        if (!changed) {
            printf("  %s = %d  (unchanged: %s)\n", p[i].key, p[i].v->value, p[i].v->reason);
            continue;
        }
        (*n_changed)++;
        if (ch[i].line) printf("@@ line %d: %s @@\n-%s\n", ch[i].line, p[i].v->reason, ch[i].old_line);
        else printf("@@ added (default was %d): %s @@\n", p[i].current, p[i].v->reason);
        printf("+%s\n", ch[i].new_line ? ch[i].new_line : "?");
    }
}

/* ---- --apply ---- */

typedef struct check_arg {
    const proposal *p;
    size_t n;
} check_arg;

static int config_int(const sl_config *c, const char *key)
{
    const sl_setting *s = sl_setting_find(key);
    return *(const int *)((const char *)c + s->offset);
}

/* The rewritten file must load, and give the proposed values (an %include after the edited lines could set
 * them again). */
static bool validate_tuned(const char *tmp, void *arg, char *err, size_t errlen)
{
    const check_arg *a = arg;
    char lerr[512];
    sl_log_setup(NULL, 0, NULL, NULL, 0, 1);
    sl_config *c = sl_config_load(tmp, lerr, sizeof(lerr));
    sl_log_setup(NULL, 0, NULL, NULL, 0, 0);
    if (!c) {
        snprintf(err, errlen, "the rewritten file does not load (%s); nothing written", lerr);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < a->n && ok; i++) {
        int got = config_int(c, a->p[i].key);
        if (got != a->p[i].v->value) {
            snprintf(err, errlen,
                     "after the edit %s is still %d, not %d: it is set again later (an %%include?); change it there. "
                     "Nothing written",
                     a->p[i].key, got, a->p[i].v->value);
            ok = false;
        }
    }
    sl_config_unref(c);
    return ok;
}

static int apply(const tune_opts *o, const sl_config *cfg, const char *text, const proposal *p, size_t n)
{
    char err[1024];
    struct stat st;
    if (stat(o->config, &st) != 0) {
        fprintf(stderr, "pgsluice tune: %s: %s\n", o->config, strerror(errno));
        return 1;
    }
    sl_ini_change ch[8];
    char vals[8][32];
    for (size_t i = 0; i < n; i++) {
        snprintf(vals[i], sizeof(vals[i]), "%d", p[i].v->value);
        ch[i] = (sl_ini_change){.key = p[i].key, .value = vals[i]};
    }
    char *out = sl_ini_edit(text, ch, n, err, sizeof(err));
    sl_ini_changes_free(ch, n);
    if (!out) {
        fprintf(stderr, "pgsluice tune: %s\n", err);
        return 1;
    }
    char backup[4200];
    if (!sl_file_backup(o->config, backup, sizeof(backup), err, sizeof(err))) {
        fprintf(stderr, "pgsluice tune: cannot write a backup, nothing changed: %s\n", err);
        free(out);
        return 1;
    }
    check_arg a = {p, n};
    sl_write_opts wo = {.mode = st.st_mode & 07777, .overwrite = true, .set_owner = true, .uid = st.st_uid,
                        .gid = st.st_gid, .validate = validate_tuned, .validate_arg = &a};
    bool ok = sl_file_write_atomic(o->config, out, strlen(out), &wo, err, sizeof(err));
    free(out);
    if (!ok) {
        unlink(backup);
        fprintf(stderr, "pgsluice tune: %s\n", err);
        return 1;
    }
    printf("\nwrote %s (backup: %s)\n", o->config, backup);
    if (!o->reload) {
        printf("not reloading (--no-reload): run RELOAD on the admin console or send SIGHUP to pgsluice\n");
        return 0;
    }
    char msg[1500];
    sl_reload_result r = sl_tool_reload(cfg, o->admin_user, msg, sizeof(msg));
    switch (r) {
    case SL_RELOAD_SIGNALLED:
    case SL_RELOAD_DONE: printf("%s\n", msg); return 0;
    case SL_RELOAD_NOT_RUNNING:
        printf("no running pgsluice found (%s): the new values apply when it starts\n", msg);
        return 0;
    case SL_RELOAD_FAILED: break;
    }
    fprintf(stderr, "pgsluice tune: the file is written but the running pgsluice did not reload: %s\n", msg);
    return 2;
}

int sl_tool_tune_main(int argc, char **argv)
{
    tune_opts o;
    if (!parse_args(argc, argv, &o)) return 1;
    sl_log_setup(NULL, 0, NULL, NULL, 0, 0);
    char err[1024];
    size_t len;
    char *text = sl_file_read(o.config, &len, err, sizeof(err));
    if (!text) {
        fprintf(stderr, "pgsluice tune: %s\n", err);
        return 1;
    }
    sl_config *cfg = sl_config_load(o.config, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "pgsluice tune: %s\n", err);
        free(text);
        return 1;
    }
    sl_machine m;
    sl_machine_detect(&m, NULL);
    sl_sizing_input in = {.cpus = o.cpus ? o.cpus : m.cpus, .memory_bytes = o.memory ? o.memory : m.memory_bytes,
                          .instances = o.instances, .pkt_buf = cfg->pkt_buf, .cur_min_pool_size = cfg->min_pool_size};
    static server_ref refs[SL_SIZING_MAX_SERVERS];
    collect_servers(cfg, &o, &in, refs);
    sl_sizing_result res;
    if (!sl_sizing_compute(&in, &res, err, sizeof(err))) {
        print_machine(&o, &m, &in, refs);
        fprintf(stderr, "pgsluice tune: %s\n", err);
        free(text);
        sl_config_unref(cfg);
        return 1;
    }
    proposal p[4] = {
        {"default_pool_size", cfg->default_pool_size, &res.default_pool_size},
        {"max_db_connections", cfg->max_db_connections, &res.max_db_connections},
        {"max_client_conn", cfg->max_client_conn, &res.max_client_conn},
        {"min_pool_size", cfg->min_pool_size, &res.min_pool_size},
    };
    size_t n = res.change_min_pool_size ? 4 : 3;
    print_machine(&o, &m, &in, refs);
    /* The diff shows the lines as --apply would write them. */
    sl_ini_change ch[4];
    char vals[4][32];
    for (size_t i = 0; i < n; i++) {
        snprintf(vals[i], sizeof(vals[i]), "%d", p[i].v->value);
        ch[i] = (sl_ini_change){.key = p[i].key, .value = vals[i]};
    }
    char *preview = sl_ini_edit(text, ch, n, err, sizeof(err));
    int n_changed = 0;
    if (preview) print_diff(o.config, p, ch, n, &n_changed);
    sl_ini_changes_free(ch, n);
    free(preview);
    for (int i = 0; i < res.n_warnings; i++) printf("warning: %s\n", res.warnings[i]);
    int rc = 0;
    if (!preview) {
        fprintf(stderr, "pgsluice tune: %s\n", err);
        rc = 1;
    } else if (n_changed == 0) {
        printf("\n%s is already tuned: nothing to change\n", o.config);
    } else if (!o.apply) {
        printf("\nnothing written: run `pgsluice tune --apply %s` to apply\n", o.config);
    } else {
        proposal changed[4];
        size_t nc = 0;
        for (size_t i = 0; i < n; i++)
            if (p[i].current != p[i].v->value) changed[nc++] = p[i];
        rc = apply(&o, cfg, text, changed, nc);
    }
    free(text);
    sl_config_unref(cfg);
    return rc;
}
