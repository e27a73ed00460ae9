/* loader.c - sl_config_load: reads the ini file into a fresh snapshot and validates it. */
#include "config/config_int.h"

#include "util/log.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef enum { SEC_GLOBAL, SEC_DATABASES, SEC_USERS, SEC_PEERS, SEC_UNKNOWN } section_kind;

typedef struct load_ctx {
    sl_config *c;
    sl_warn_once warn;
    size_t db_cap, user_cap;
} load_ctx;

static section_kind classify(const char *section)
{
    if (!strcasecmp(section, "pgbouncer") || !strcasecmp(section, "pgsluice")) return SEC_GLOBAL;
    if (!strcasecmp(section, "databases")) return SEC_DATABASES;
    if (!strcasecmp(section, "users")) return SEC_USERS;
    if (!strcasecmp(section, "peers")) return SEC_PEERS;
    return SEC_UNKNOWN;
}

static bool global_key(load_ctx *lc, const char *key, const char *value, char *err, size_t errlen)
{
    const sl_setting *s = sl_setting_find(key);
    if (s && (s->flags & SL_SETTING_UNIMPLEMENTED) && strcmp(value, s->default_value) != 0)
        sl_warn_once_log(&lc->warn, s->name, "setting %s is not implemented by pgsluice yet and has no effect", s->name);
    if (s) return sl_setting_set(lc->c, s, value, err, errlen);
    const sl_key_doc *ign = sl_key_doc_find(sl_ignored_settings, key);
    if (ign) {
        sl_warn_once_log(&lc->warn, ign->name, "setting %s is not implemented by pgsluice and is ignored", ign->name);
        return true;
    }
    sl_cfg_err(err, errlen, "unknown setting \"%s\"", key);
    return false;
}

/* Index of the entry called name in an array of structs whose first member is char *name, or -1. */
static long find_named(const void *base, size_t n, size_t size, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(*(char *const *)((const char *)base + i * size), name) == 0) return (long)i;
    return -1;
}

/* Make room for one more element; false on OOM. */
static bool grow(void **base, size_t n, size_t *cap, size_t size)
{
    if (n < *cap) return true;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*base, ncap * size);
    if (!p) return false;
    *base = p;
    *cap = ncap;
    return true;
}

static bool database_key(load_ctx *lc, const sl_ini_pos *pos, const char *name, const char *value, char *err,
                         size_t errlen)
{
    sl_db_def d;
    char reason[512];
    if (!sl_db_def_parse(&d, name, value, &lc->warn, reason, sizeof(reason))) {
        sl_db_def_free(&d);
        sl_cfg_err(err, errlen, "database \"%s\": %s", name, reason);
        return false;
    }
    d.line = pos->line;
    sl_config *c = lc->c;
    long at = find_named(c->dbs, c->n_dbs, sizeof(*c->dbs), name);
    if (at >= 0) {
        sl_log_debug("%s:%d: database \"%s\" redefined; the later entry wins", pos->file, pos->line, name);
        sl_db_def_free(&c->dbs[at]);
        c->dbs[at] = d;
        return true;
    }
    if (!grow((void **)&c->dbs, c->n_dbs, &lc->db_cap, sizeof(*c->dbs))) {
        sl_db_def_free(&d);
        return sl_cfg_err(err, errlen, "out of memory"), false;
    }
    c->dbs[c->n_dbs++] = d;
    return true;
}

static bool user_key(load_ctx *lc, const char *name, const char *value, char *err, size_t errlen)
{
    sl_user_def u;
    char reason[512];
    if (!sl_user_def_parse(&u, name, value, &lc->warn, reason, sizeof(reason))) {
        sl_user_def_free(&u);
        sl_cfg_err(err, errlen, "user \"%s\": %s", name, reason);
        return false;
    }
    sl_config *c = lc->c;
    long at = find_named(c->users, c->n_users, sizeof(*c->users), name);
    if (at >= 0) {
        sl_user_def_free(&c->users[at]);
        c->users[at] = u;
        return true;
    }
    if (!grow((void **)&c->users, c->n_users, &lc->user_cap, sizeof(*c->users))) {
        sl_user_def_free(&u);
        return sl_cfg_err(err, errlen, "out of memory"), false;
    }
    c->users[c->n_users++] = u;
    return true;
}

static bool peer_key(load_ctx *lc, const char *key, const char *value, char *err, size_t errlen)
{
    sl_config *c = lc->c;
    sl_peer_def p;
    char why[256];
    if (!sl_peer_def_parse(&p, key, value, why, sizeof(why))) return sl_cfg_err(err, errlen, "[peers] %s", why), false;
    for (size_t i = 0; i < c->n_peers; i++)
        if (c->peers[i].id == p.id) { /* a repeated id keeps the later entry, as elsewhere */
            sl_peer_def_free(&c->peers[i]);
            c->peers[i] = p;
            return true;
        }
    sl_peer_def *grown = realloc(c->peers, (c->n_peers + 1) * sizeof(*grown));
    if (!grown) {
        sl_peer_def_free(&p);
        return sl_cfg_err(err, errlen, "out of memory"), false;
    }
    c->peers = grown;
    c->peers[c->n_peers++] = p;
    return true;
}

static bool on_line(void *vctx, const sl_ini_pos *pos, const char *section, const char *key, const char *value,
                    char *err, size_t errlen)
{
    load_ctx *lc = vctx;
    section_kind kind = classify(section);
    snprintf(lc->warn.where, sizeof(lc->warn.where), "%s:%d", pos->file, pos->line);
    if (kind == SEC_UNKNOWN) return sl_cfg_err(err, errlen, "unknown section [%s]", section), false;
    if (!key) return true;
    switch (kind) {
    case SEC_GLOBAL: return global_key(lc, key, value, err, errlen);
    case SEC_DATABASES: return database_key(lc, pos, key, value, err, errlen);
    case SEC_USERS: return user_key(lc, key, value, err, errlen);
    case SEC_PEERS: return peer_key(lc, key, value, err, errlen);
    case SEC_UNKNOWN: break;
    }
    return false;
}

static int cmp_db(const void *a, const void *b)
{
    return strcmp(((const sl_db_def *)a)->name, ((const sl_db_def *)b)->name);
}

static int cmp_user(const void *a, const void *b)
{
    return strcmp(((const sl_user_def *)a)->name, ((const sl_user_def *)b)->name);
}

static bool auth_needs_file(int auth_type)
{
    return auth_type == SL_AUTH_PLAIN || auth_type == SL_AUTH_MD5 || auth_type == SL_AUTH_SCRAM;
}

static bool any_auth_user(const sl_config *c)
{
    if (c->auth_user && *c->auth_user) return true;
    for (size_t i = 0; i < c->n_dbs; i++)
        if (c->dbs[i].auth_user && *c->dbs[i].auth_user) return true;
    return false;
}

/* Load auth_file. Missing is fatal only for auth types that check passwords from it. */
static bool load_auth_file(sl_config *c, char *err, size_t errlen)
{
    const char *name = sl_auth_type_name((sl_auth_type)c->auth_type);
    if (!c->auth_file || !*c->auth_file) {
        if (auth_needs_file(c->auth_type) && !any_auth_user(c))
            sl_log_warn("%s: auth_type %s but neither auth_file nor auth_user is set; no client can log in",
                        c->path, name);
        return true;
    }
    if (access(c->auth_file, R_OK) != 0 && !auth_needs_file(c->auth_type)) {
        sl_log_warn("%s: cannot read auth_file \"%s\": %s; continuing without it", c->path, c->auth_file,
                    strerror(errno));
        return true;
    }
    return sl_userlist_load(c->auth_file, &c->userlist, &c->n_userlist, err, errlen);
}

/* workers = 0 (auto): one event loop per two CPUs this process may run on, at least one. Most of a
 * pooler's CPU is the kernel's socket work, done on the same cores as PostgreSQL's and the clients'
 * when they share the machine; on 2 cores one loop beats two (bench scenario 7, issue 15). */
static int auto_workers(void)
{
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
    n /= 2;
    return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

/* A plain-text password? (libpq, which runs the health checks, cannot log in with a hash.) */
static bool is_hash(const char *pw)
{
    return !strncmp(pw, "SCRAM-SHA-256$", 14) || (strlen(pw) == 35 && !strncmp(pw, "md5", 3));
}

/* Databases with roles need someone to check their hosts as; fail closed rather than guess roles. */
static bool check_routing(const sl_config *c, char *err, size_t errlen)
{
    if (c->health_check_period <= 0 || c->health_check_timeout <= 0)
        return sl_cfg_err(err, errlen, "%s: health_check_period and health_check_timeout must be more than 0", c->path),
               false;
    if (c->health_check_password_file && *c->health_check_password_file) {
        char why[400];
        char *pw = sl_read_secret_file(c->health_check_password_file, why, sizeof(why));
        if (!pw) return sl_cfg_err(err, errlen, "%s: health_check_password_file: %s", c->path, why), false;
        explicit_bzero(pw, strlen(pw));
        free(pw);
    }
    for (size_t i = 0; i < c->n_dbs; i++) {
        const sl_db_def *d = &c->dbs[i];
        sl_db_routing rt;
        sl_db_routing_of(c, d, &rt);
        if (!rt.routed) continue;
        const char *user, *pw, *pwfile, *db;
        if (!sl_db_health_login(c, d, &user, &pw, &pwfile, &db))
            return sl_cfg_err(err, errlen,
                              "%s:%d: database \"%s\" has roles (role_map, target_session_attrs or read_write_split) "
                              "but nobody to check its hosts as: set health_check_user (its password in auth_file) "
                              "or user= and password= on the entry", c->path, d->line, d->name),
                   false;
        if (pw && is_hash(pw))
            return sl_cfg_err(err, errlen,
                              "%s:%d: database \"%s\": the health checks log in as \"%s\", whose auth_file entry is a "
                              "hash; they need its plain-text password (or a trust/peer rule on the server and no entry)",
                              c->path, d->line, d->name, user),
                   false;
    }
    return true;
}

/* Everything that needs the whole file: workers, auth_file, warnings, sorting. */
static bool finish(load_ctx *lc, char *err, size_t errlen)
{
    sl_config *c = lc->c;
    lc->warn.where[0] = '\0';
    if (c->workers == 0) c->workers = auto_workers();
    /* fail closed: a login method pgsluice cannot carry out refuses the file, it never falls back */
    char why[400];
    if (!sl_config_load_auth_rules(c, why, sizeof(why))) return sl_cfg_err(err, errlen, "%s: %s", c->path, why), false;
    /* cert logs in by a verified client certificate: without TLS and a CA to check against, nobody could */
    if (c->auth_type == SL_AUTH_CERT && (c->client_tls_sslmode == SL_TLS_DISABLE || !c->client_tls_ca_file ||
                                         !*c->client_tls_ca_file))
        return sl_cfg_err(err, errlen, "%s: auth_type cert needs client_tls_sslmode other than disable and "
                          "client_tls_ca_file (client certificates are checked against it)", c->path),
               false;
    if (!load_auth_file(c, err, errlen)) return false;
    if (!check_routing(c, err, errlen)) return false;
    if (c->n_dbs > 1) qsort(c->dbs, c->n_dbs, sizeof(*c->dbs), cmp_db);
    if (c->n_users > 1) qsort(c->users, c->n_users, sizeof(*c->users), cmp_user);
    return true;
}

sl_config *sl_config_load(const char *path, char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!path) return sl_cfg_err(err, errlen, "no config file given"), NULL;
    load_ctx lc = {0};
    lc.c = sl_config_new_default();
    if (!lc.c) return sl_cfg_err(err, errlen, "out of memory"), NULL;
    lc.c->path = strdup(path);
    bool ok = lc.c->path != NULL;
    if (!ok) sl_cfg_err(err, errlen, "out of memory");
    if (ok) ok = sl_ini_parse(path, on_line, &lc, err, errlen);
    if (ok) ok = finish(&lc, err, errlen);
    sl_warn_once_free(&lc.warn);
    if (!ok) {
        sl_config_unref(lc.c);
        return NULL;
    }
    return lc.c;
}
