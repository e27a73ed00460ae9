/* userlist_gen.c - `pgsluice userlist`: writes an auth_file from user/password pairs in the environment
 * (POSTGRES_USER/POSTGRES_PASSWORD, SAV3_USER/SAV3_PASSWORD, any PREFIX_USER/PREFIX_PASSWORD, or
 * PREFIX_PASSWORD_FILE for container secrets) or from pg_authid of a running PostgreSQL. Secrets are
 * SCRAM-SHA-256 by default (md5 or plain text only on request); the file is written whole or not at all, mode
 * 0600, and an existing file is kept unless --force. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/md5.h"
#include "auth/scram.h"
#include "config/config.h"
#include "tools/file_util.h"
#include "tools/pgconn.h"
#include "tools/tools.h"
#include "util/log.h"

typedef enum { FMT_SCRAM, FMT_MD5, FMT_PLAIN } secret_format;

typedef struct entry {
    char *user;
    char *secret; /* as written to the file */
} entry;

typedef struct ul_opts {
    const char *output;
    const char *prefixes[16];
    int n_prefixes;
    bool from_server;
    const char *conninfo;
    const char *users; /* with --from-server: comma-separated role names */
    secret_format fmt;
    int iterations;
    bool force;
} ul_opts;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: pgsluice userlist [OPTION]... FILE\n\n"
            "Writes an auth_file (\"user\" \"secret\" per line) for pgsluice or PgBouncer, mode 0600. FILE \"-\" writes\n"
            "to standard output. An existing FILE is kept unless --force.\n\n"
            "Where the users come from (one of):\n"
            "  --env PREFIX            PREFIX_USER and PREFIX_PASSWORD (or PREFIX_PASSWORD_FILE, a file holding the\n"
            "                          password); repeat for more users. Both must be set.\n"
            "                          Default: --env POSTGRES --env SAV3, skipping a pair that is not set at all\n"
            "  --from-server[=CONNINFO]  the login roles' secrets in pg_authid of a running PostgreSQL (needs a\n"
            "                          superuser); copied as stored, so SCRAM logins pass through to the server.\n"
            "                          CONNINFO is a libpq string; PGHOST, PGUSER, PGPASSWORD, PGPASSWORD_FILE apply\n"
            "  --users U1,U2           with --from-server: only these roles (each must exist)\n\n"
            "How passwords from the environment are stored:\n"
            "  --scram                 SCRAM-SHA-256 secret (default)\n"
            "  --md5                   md5 hash (md5 of password and user name, as PostgreSQL stores it)\n"
            "  --plain                 the password in plain text (pgsluice can then log in to any server)\n"
            "  --iterations N          SCRAM iteration count (default 4096, as PostgreSQL)\n\n"
            "  --force                 replace FILE when it exists\n"
            "  -h, --help              show this help\n");
}

static bool parse_args(int argc, char **argv, ul_opts *o)
{
    enum { O_ENV = 256, O_FROM, O_USERS, O_SCRAM, O_MD5, O_PLAIN, O_ITER, O_FORCE };
    static const struct option opts[] = {
        {"env", required_argument, NULL, O_ENV},      {"from-server", optional_argument, NULL, O_FROM},
        {"users", required_argument, NULL, O_USERS},  {"scram", no_argument, NULL, O_SCRAM},
        {"md5", no_argument, NULL, O_MD5},            {"plain", no_argument, NULL, O_PLAIN},
        {"iterations", required_argument, NULL, O_ITER}, {"force", no_argument, NULL, O_FORCE},
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
    };
    *o = (ul_opts){.fmt = FMT_SCRAM, .iterations = SL_SCRAM_DEFAULT_ITERATIONS};
    int c, n_fmt = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_ENV:
            if (o->n_prefixes == 16) return fprintf(stderr, "pgsluice userlist: at most 16 --env\n"), false;
            for (const char *p = optarg; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '_') optarg = "";
            if (!*optarg)
                return fprintf(stderr, "pgsluice userlist: --env needs a variable name prefix like POSTGRES\n"), false;
            o->prefixes[o->n_prefixes++] = optarg;
            break;
        case O_FROM:
            o->from_server = true;
            o->conninfo = optarg;
            break;
        case O_USERS: o->users = optarg; break;
        case O_SCRAM: o->fmt = FMT_SCRAM, n_fmt++; break;
        case O_MD5: o->fmt = FMT_MD5, n_fmt++; break;
        case O_PLAIN: o->fmt = FMT_PLAIN, n_fmt++; break;
        case O_ITER: {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || v < 1 || v > SL_SCRAM_MAX_ITERATIONS)
                return fprintf(stderr, "pgsluice userlist: --iterations needs a number from 1 to %d\n",
                               SL_SCRAM_MAX_ITERATIONS), false;
            o->iterations = (int)v;
            break;
        }
        case O_FORCE: o->force = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return false;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "pgsluice userlist: name the file to write (or - for standard output)\n");
        usage(stderr);
        return false;
    }
    o->output = argv[optind];
    if (n_fmt > 1) return fprintf(stderr, "pgsluice userlist: choose one of --scram, --md5, --plain\n"), false;
    if (o->from_server && o->n_prefixes)
        return fprintf(stderr, "pgsluice userlist: --env and --from-server exclude each other\n"), false;
    if (o->from_server && n_fmt && o->fmt != FMT_SCRAM)
        return fprintf(stderr, "pgsluice userlist: --from-server copies the secrets as the server stores them; "
                               "--md5/--plain apply to --env only\n"), false;
    if (o->users && !o->from_server)
        return fprintf(stderr, "pgsluice userlist: --users goes with --from-server\n"), false;
    return true;
}

/* ---- entries ---- */

typedef struct entries {
    entry *v;
    size_t n, cap;
} entries;

static void entries_free(entries *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].user);
        if (e->v[i].secret) memset(e->v[i].secret, 0, strlen(e->v[i].secret));
        free(e->v[i].secret);
    }
    free(e->v);
    e->v = NULL;
    e->n = e->cap = 0;
}

static bool has_line_break(const char *s) { return strpbrk(s, "\r\n") != NULL; }

static bool add_entry(entries *e, const char *user, char *secret, const char *origin)
{
    if (!*user || has_line_break(user) || has_line_break(secret)) {
        fprintf(stderr, "pgsluice userlist: %s: a user name must be non-empty and neither may contain a line break\n",
                origin);
        return false;
    }
    for (size_t i = 0; i < e->n; i++)
        if (!strcmp(e->v[i].user, user)) {
            fprintf(stderr, "pgsluice userlist: %s: user \"%s\" is given twice\n", origin, user);
            return false;
        }
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 8;
        entry *v = realloc(e->v, cap * sizeof(*v));
        if (!v) return fprintf(stderr, "pgsluice userlist: out of memory\n"), false;
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n].user = strdup(user);
    e->v[e->n].secret = secret;
    if (!e->v[e->n].user) return fprintf(stderr, "pgsluice userlist: out of memory\n"), false;
    e->n++;
    return true;
}

static char *make_secret(const ul_opts *o, const char *user, const char *password)
{
    char buf[SL_SCRAM_SECRET_MAX];
    if (o->fmt == FMT_PLAIN) return strdup(password);
    if (o->fmt == FMT_MD5) {
        char h[36];
        sl_md5_user_hash(password, user, h);
        return h[0] ? strdup(h) : NULL;
    }
    sl_scram_secret sec;
    if (!sl_scram_secret_from_password(password, NULL, 0, o->iterations, &sec) ||
        !sl_scram_secret_format(&sec, buf, sizeof(buf)))
        return NULL;
    memset(&sec, 0, sizeof(sec));
    return strdup(buf);
}

/* PREFIX_PASSWORD, else the file named by PREFIX_PASSWORD_FILE (first line). malloc'd; NULL if neither. */
static char *password_from_env(const char *prefix, bool *bad)
{
    char var[300];
    *bad = false;
    snprintf(var, sizeof(var), "%s_PASSWORD", prefix);
    const char *pw = getenv(var);
    if (pw) return strdup(pw);
    snprintf(var, sizeof(var), "%s_PASSWORD_FILE", prefix);
    const char *path = getenv(var);
    if (!path) return NULL;
    char err[600];
    char *data = sl_file_read(path, NULL, err, sizeof(err));
    if (!data) {
        fprintf(stderr, "pgsluice userlist: %s: %s\n", var, err);
        *bad = true;
        return NULL;
    }
    size_t n = strlen(data);
    if (n > 0 && data[n - 1] == '\n') data[--n] = '\0';
    if (n > 0 && data[n - 1] == '\r') data[--n] = '\0';
    if (has_line_break(data)) {
        fprintf(stderr, "pgsluice userlist: %s: the file %s must hold the password on one line\n", var, path);
        free(data);
        *bad = true;
        return NULL;
    }
    return data;
}

static bool from_env(const ul_opts *o, entries *e)
{
    static const char *const defaults[] = {"POSTGRES", "SAV3"};
    bool explicit = o->n_prefixes > 0;
    int n = explicit ? o->n_prefixes : 2;
    for (int i = 0; i < n; i++) {
        const char *prefix = explicit ? o->prefixes[i] : defaults[i];
        char uvar[300], origin[700];
        snprintf(uvar, sizeof(uvar), "%s_USER", prefix);
        const char *user = getenv(uvar);
        bool bad;
        char *pw = password_from_env(prefix, &bad);
        if (bad) return false;
        if (!user && !pw && !explicit) continue; /* a default pair that is not used here */
        if (!user || !pw) {
            if (!user) fprintf(stderr, "pgsluice userlist: %s is not set\n", uvar);
            if (!pw)
                fprintf(stderr, "pgsluice userlist: %s_PASSWORD is not set (nor %s_PASSWORD_FILE, a file holding it)\n",
                        prefix, prefix);
            free(pw);
            return false;
        }
        if (!*pw) {
            fprintf(stderr, "pgsluice userlist: %s_PASSWORD is empty\n", prefix);
            free(pw);
            return false;
        }
        snprintf(origin, sizeof(origin), "%s / %s_PASSWORD", uvar, prefix);
        char *secret = make_secret(o, user, pw);
        memset(pw, 0, strlen(pw));
        free(pw);
        if (!secret) return fprintf(stderr, "pgsluice userlist: cannot compute the secret for %s\n", user), false;
        if (!add_entry(e, user, secret, origin)) {
            free(secret);
            return false;
        }
    }
    if (e->n == 0) {
        fprintf(stderr, "pgsluice userlist: no users: set POSTGRES_USER and POSTGRES_PASSWORD (and/or SAV3_USER and "
                        "SAV3_PASSWORD), or name other variables with --env PREFIX, or use --from-server\n");
        return false;
    }
    return true;
}

static bool in_list(const char *list, const char *name, size_t *which)
{
    size_t idx = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == strlen(name) && !strncmp(p, name, n)) {
            *which = idx;
            return true;
        }
        p += n;
        if (*p == ',') p++;
        idx++;
    }
    return false;
}

static bool from_server(const ul_opts *o, entries *e)
{
    sl_pg_target t = {.conninfo = o->conninfo, .application_name = "pgsluice userlist"};
    char err[600];
    PGconn *c = sl_pg_connect(&t, err, sizeof(err));
    if (!c) return fprintf(stderr, "pgsluice userlist: cannot connect to PostgreSQL: %s\n", err), false;
    PGresult *r = PQexec(c, "SELECT rolname, rolpassword FROM pg_catalog.pg_authid "
                            "WHERE rolcanlogin AND rolpassword IS NOT NULL "
                            "AND (rolvaliduntil IS NULL OR rolvaliduntil > now()) ORDER BY rolname");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[512];
        fprintf(stderr, "pgsluice userlist: cannot read pg_authid as %s (a superuser is needed): %s\n", PQuser(c),
                sl_pg_errmsg(c, m, sizeof(m)));
        PQclear(r);
        PQfinish(c);
        return false;
    }
    size_t n_wanted = 0;
    bool found[256] = {false};
    if (o->users) {
        for (const char *p = o->users; *p; p++) n_wanted += *p == ',';
        n_wanted++;
        if (n_wanted > 256) {
            PQclear(r);
            PQfinish(c);
            return fprintf(stderr, "pgsluice userlist: --users: at most 256 names\n"), false;
        }
    }
    bool ok = true;
    for (int i = 0; i < PQntuples(r) && ok; i++) {
        const char *name = PQgetvalue(r, i, 0);
        size_t which;
        if (o->users && !in_list(o->users, name, &which)) continue;
        if (o->users) found[which] = true;
        char *secret = strdup(PQgetvalue(r, i, 1));
        ok = secret && add_entry(e, name, secret, "pg_authid");
        if (!ok) free(secret);
    }
    PQclear(r);
    PQfinish(c);
    if (!ok) return false;
    if (o->users) {
        const char *p = o->users;
        for (size_t idx = 0;; idx++) {
            size_t n = strcspn(p, ",");
            if (!found[idx]) {
                fprintf(stderr, "pgsluice userlist: --users: no login role \"%.*s\" with a password on the server\n",
                        (int)n, p);
                return false;
            }
            p += n;
            if (*p != ',') break;
            p++;
        }
    }
    if (e->n == 0) return fprintf(stderr, "pgsluice userlist: the server has no login roles with a password\n"), false;
    return true;
}

/* ---- output ---- */

static void put_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static char *render(const ul_opts *o, const entries *e, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) return NULL;
    const char *what = o->from_server ? "secrets copied from pg_authid"
                       : o->fmt == FMT_SCRAM ? "SCRAM-SHA-256 secrets"
                       : o->fmt == FMT_MD5   ? "md5 hashes"
                                             : "PLAIN-TEXT passwords";
    time_t now = time(NULL);
    struct tm tm;
    char stamp[40];
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(f, ";; auth_file written by pgsluice userlist at %s: %zu user%s, %s\n", stamp, e->n, e->n == 1 ? "" : "s",
            what);
    for (size_t i = 0; i < e->n; i++) {
        put_quoted(f, e->v[i].user);
        fputc(' ', f);
        put_quoted(f, e->v[i].secret);
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The finished file must read back as an auth_file with the same entries. */
static bool validate_userlist(const char *tmp, void *arg, char *err, size_t errlen)
{
    const entries *e = arg;
    sl_userlist_entry *got = NULL;
    size_t n = 0;
    char lerr[512];
    if (!sl_userlist_load(tmp, &got, &n, lerr, sizeof(lerr))) {
        snprintf(err, errlen, "the written file does not read back (%s); nothing written", lerr);
        return false;
    }
    bool ok = n == e->n;
    for (size_t i = 0; i < e->n && ok; i++) {
        bool match = false;
        for (size_t k = 0; k < n && !match; k++)
            match = !strcmp(got[k].name, e->v[i].user) && !strcmp(got[k].password, e->v[i].secret);
        ok = match;
    }
    sl_userlist_free(got, n);
    if (!ok) snprintf(err, errlen, "the written file reads back differently; nothing written");
    return ok;
}

int sl_tool_userlist_main(int argc, char **argv)
{
    ul_opts o;
    if (!parse_args(argc, argv, &o)) return 1;
    sl_log_setup(NULL, 0, NULL, NULL, 0, 0);
    bool to_stdout = !strcmp(o.output, "-");
    if (!to_stdout && !o.force && access(o.output, F_OK) == 0) {
        fprintf(stderr, "pgsluice userlist: %s already exists: not overwritten (use --force to replace it)\n", o.output);
        return 1;
    }
    entries e = {0};
    bool ok = o.from_server ? from_server(&o, &e) : from_env(&o, &e);
    if (!ok) {
        entries_free(&e);
        fprintf(stderr, "pgsluice userlist: nothing written\n");
        return 1;
    }
    size_t len = 0;
    char *text = render(&o, &e, &len);
    if (!text) {
        entries_free(&e);
        return fprintf(stderr, "pgsluice userlist: out of memory\n"), 1;
    }
    char err[1024];
    if (to_stdout) {
        ok = fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0;
        if (!ok) snprintf(err, sizeof(err), "cannot write to standard output: %s", strerror(errno));
    } else {
        sl_write_opts wo = {.mode = 0600, .overwrite = o.force, .validate = validate_userlist, .validate_arg = &e};
        ok = sl_file_write_atomic(o.output, text, len, &wo, err, sizeof(err));
    }
    memset(text, 0, len);
    free(text);
    if (ok && !to_stdout)
        fprintf(stderr, "pgsluice userlist: wrote %s (%zu user%s, mode 0600)\n", o.output, e.n, e.n == 1 ? "" : "s");
    entries_free(&e);
    if (!ok) fprintf(stderr, "pgsluice userlist: %s\n", err);
    return ok ? 0 : 1;
}
