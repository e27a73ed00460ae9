/* config.c - snapshot lifetime (refcount, current pointer, clone) and look-ups. */
#include "config/config_int.h"
#include "config/hba.h"
#include "config/ident.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_mutex_t g_current_lock = PTHREAD_MUTEX_INITIALIZER;
static sl_config *g_current;

static void config_free(sl_config *c)
{
    sl_config_free_settings(c);
    for (size_t i = 0; i < c->n_dbs; i++) sl_db_def_free(&c->dbs[i]);
    free(c->dbs);
    for (size_t i = 0; i < c->n_users; i++) sl_user_def_free(&c->users[i]);
    free(c->users);
    sl_userlist_free(c->userlist, c->n_userlist);
    sl_hba_unref(c->hba);
    sl_ident_unref(c->ident);
    for (size_t i = 0; i < c->n_peers; i++) sl_peer_def_free(&c->peers[i]);
    free(c->peers);
    free(c->path);
    free(c);
}

void sl_config_ref(sl_config *c)
{
    if (c) __atomic_add_fetch(&c->refcount, 1, __ATOMIC_RELAXED);
}

void sl_config_unref(sl_config *c)
{
    if (c && __atomic_sub_fetch(&c->refcount, 1, __ATOMIC_ACQ_REL) == 0) config_free(c);
}

sl_config *sl_config_acquire(void)
{
    pthread_mutex_lock(&g_current_lock);
    sl_config *c = g_current;
    sl_config_ref(c);
    pthread_mutex_unlock(&g_current_lock);
    return c;
}

void sl_config_set_current(sl_config *c)
{
    pthread_mutex_lock(&g_current_lock);
    sl_config *old = g_current;
    g_current = c;
    pthread_mutex_unlock(&g_current_lock);
    sl_config_unref(old);
}

static bool clone_dbs(sl_config *dst, const sl_config *src)
{
    if (src->n_dbs == 0) return true;
    dst->dbs = calloc(src->n_dbs, sizeof(*dst->dbs));
    if (!dst->dbs) return false;
    bool ok = true;
    for (size_t i = 0; i < src->n_dbs; i++, dst->n_dbs++)
        if (!sl_db_def_copy(&dst->dbs[i], &src->dbs[i])) ok = false;
    return ok;
}

static bool clone_users(sl_config *dst, const sl_config *src)
{
    if (src->n_users == 0) return true;
    dst->users = calloc(src->n_users, sizeof(*dst->users));
    if (!dst->users) return false;
    bool ok = true;
    for (size_t i = 0; i < src->n_users; i++, dst->n_users++)
        if (!sl_user_def_copy(&dst->users[i], &src->users[i])) ok = false;
    return ok;
}

static bool clone_userlist(sl_config *dst, const sl_config *src)
{
    if (src->n_userlist == 0) return true;
    dst->userlist = calloc(src->n_userlist, sizeof(*dst->userlist));
    if (!dst->userlist) return false;
    bool ok = true;
    for (size_t i = 0; i < src->n_userlist; i++, dst->n_userlist++) {
        dst->userlist[i].name = sl_cfg_strdup(src->userlist[i].name);
        dst->userlist[i].password = sl_cfg_strdup(src->userlist[i].password);
        if (!dst->userlist[i].name || !dst->userlist[i].password) ok = false;
    }
    return ok;
}

static bool clone_peers(sl_config *dst, const sl_config *src)
{
    if (src->n_peers == 0) return true;
    dst->peers = calloc(src->n_peers, sizeof(*dst->peers));
    if (!dst->peers) return false;
    bool ok = true;
    for (size_t i = 0; i < src->n_peers; i++, dst->n_peers++) {
        dst->peers[i] = src->peers[i];
        dst->peers[i].host = sl_cfg_strdup(src->peers[i].host);
        if (!dst->peers[i].host) ok = false;
    }
    return ok;
}

sl_config *sl_config_clone(const sl_config *src)
{
    if (!src) return NULL;
    sl_config *c = malloc(sizeof(*c));
    if (!c) return NULL;
    /* everything but the reference count, which other threads change atomically */
    memcpy(c, src, offsetof(sl_config, refcount));
    c->dbs = NULL, c->users = NULL, c->userlist = NULL, c->peers = NULL;
    c->n_dbs = c->n_users = c->n_userlist = c->n_peers = 0;
    c->refcount = 1;
    if (c->hba) sl_hba_ref(c->hba);
    if (c->ident) sl_ident_ref(c->ident);
    bool ok = sl_config_copy_settings(c, src);
    c->path = sl_cfg_strdup(src->path);
    if (src->path && !c->path) ok = false;
    ok = clone_dbs(c, src) && ok;
    ok = clone_users(c, src) && ok;
    ok = clone_userlist(c, src) && ok;
    ok = clone_peers(c, src) && ok;
    if (!ok) {
        config_free(c);
        return NULL;
    }
    return c;
}

/* The arrays are sorted by name and every element starts with char *name. */
static int cmp_name_key(const void *key, const void *elem)
{
    return strcmp((const char *)key, *(char *const *)elem);
}

const sl_db_def *sl_config_find_db(const sl_config *c, const char *name)
{
    if (!c || !c->n_dbs) return NULL;
    const sl_db_def *d = NULL;
    if (name) d = bsearch(name, c->dbs, c->n_dbs, sizeof(*c->dbs), cmp_name_key);
    if (!d) d = bsearch("*", c->dbs, c->n_dbs, sizeof(*c->dbs), cmp_name_key);
    return d;
}

const sl_user_def *sl_config_find_user(const sl_config *c, const char *name)
{
    if (!c || !name || !c->n_users) return NULL;
    return bsearch(name, c->users, c->n_users, sizeof(*c->users), cmp_name_key);
}

const sl_userlist_entry *sl_config_find_userlist(const sl_config *c, const char *name)
{
    if (!c || !name || !c->n_userlist) return NULL;
    return bsearch(name, c->userlist, c->n_userlist, sizeof(*c->userlist), cmp_name_key);
}

bool sl_list_contains(const char *list, const char *item)
{
    if (!list || !item) return false;
    size_t ilen = strlen(item);
    const char *p = list;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p)) p++;
        const char *start = p;
        while (*p && *p != ',' && !isspace((unsigned char)*p)) p++;
        size_t len = (size_t)(p - start);
        if (len == 1 && *start == '*') return true;
        if (len && len == ilen && strncasecmp(start, item, len) == 0) return true;
    }
    return false;
}

/* ---- primary/replica routing ---- */

static const char *const host_role_names[] = {"auto", "primary", "replica"};
static const char *const tsa_names[] = {"any", "read-write", "primary", "read-only", "standby", "prefer-standby"};

const char *sl_host_role_name(int r)
{
    return r >= SL_HOSTROLE_AUTO && r <= SL_HOSTROLE_REPLICA ? host_role_names[r] : "unknown";
}

const char *sl_tsa_name(int t) { return t >= SL_TSA_ANY && t <= SL_TSA_PREFER_STANDBY ? tsa_names[t] : "unknown"; }

bool sl_parse_tsa(const char *text, int *out)
{
    for (int i = SL_TSA_ANY; text && i <= SL_TSA_PREFER_STANDBY; i++)
        if (!strcasecmp(text, tsa_names[i])) return *out = i, true;
    return false;
}

void sl_db_routing_of(const sl_config *c, const sl_db_def *d, sl_db_routing *out)
{
    out->read_write_split = (d->read_write_split >= 0 ? d->read_write_split : c->read_write_split) != 0;
    out->replica_fallback = (d->replica_fallback >= 0 ? d->replica_fallback : c->replica_fallback) != 0;
    out->read_your_writes = c->read_your_writes != 0;
    out->replica_lb = d->replica_load_balance >= 0 ? d->replica_load_balance : c->replica_load_balance;
    out->max_lag_us = d->max_replica_lag >= 0 ? d->max_replica_lag : c->max_replica_lag;
    out->max_lag_bytes = d->max_replica_lag_bytes >= 0 ? d->max_replica_lag_bytes : c->max_replica_lag_bytes;
    bool tsa_set = d->target_session_attrs >= 0 && d->target_session_attrs != SL_TSA_ANY;
    out->routed = d->role_map != NULL || tsa_set || (d->nhosts > 1 && out->read_write_split);
    if (!out->routed) out->read_write_split = false;
    out->target = d->target_session_attrs >= 0 ? d->target_session_attrs : out->routed ? SL_TSA_READ_WRITE : SL_TSA_ANY;
}

bool sl_db_health_login(const sl_config *c, const sl_db_def *d, const char **user, const char **password,
                        const char **password_file, const char **dbname)
{
    *user = *password = *password_file = NULL;
    *dbname = d->dbname && *d->dbname ? d->dbname : strcmp(d->name, "*") ? d->name : "postgres";
    if (c->health_check_user && *c->health_check_user) {
        *user = c->health_check_user;
        if (c->health_check_password_file && *c->health_check_password_file) {
            *password_file = c->health_check_password_file;
            return true;
        }
    } else if (d->user && *d->user) {
        *user = d->user;
        if (d->password && *d->password) *password = d->password;
    } else {
        return false;
    }
    if (!*password) {
        const sl_userlist_entry *e = sl_config_find_userlist(c, *user);
        if (e) *password = e->password;
    }
    return true;
}
