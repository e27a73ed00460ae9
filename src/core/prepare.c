/* prepare.c - the statement registry (shared, behind one mutex taken per Parse of a name), client
 * statement maps and server LRU caches (owned by one worker each, no locks). */
#include "core/prepare.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REG_BUCKETS 4096
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static sl_stmt *reg[REG_BUCKETS];
static uint64_t reg_next_id = 1;
static size_t reg_count;

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The registry entry for this body in bucket b, or NULL (reg_lock held). */
static sl_stmt *find_locked(sl_stmt **b, uint64_t h, const uint8_t *body, uint32_t len)
{
    for (sl_stmt *s = *b; s; s = s->next)
        if (s->hash == h && s->body_len == len && memcmp(s->body, body, len) == 0) return s;
    return NULL;
}

/* A new entry with one reference, linked into bucket b under server-side name SL_<id> (reg_lock
 * held); NULL on out of memory. */
static sl_stmt *insert_locked(sl_stmt **b, uint64_t h, const uint8_t *body, uint32_t len, uint64_t id)
{
    sl_stmt *s = calloc(1, sizeof(*s));
    uint8_t *copy = s ? malloc(len ? len : 1) : NULL;
    if (!s || !copy) {
        free(s);
        return NULL;
    }
    memcpy(copy, body, len);
    s->body = copy;
    s->body_len = len;
    s->hash = h;
    s->refs = 1;
    s->id = id;
    if (reg_next_id <= id) reg_next_id = id + 1;
    snprintf(s->name, sizeof(s->name), "SL_%" PRIu64, s->id);
    s->next = *b;
    *b = s;
    reg_count++;
    return s;
}

sl_stmt *sl_stmt_intern(const uint8_t *body, uint32_t len)
{
    uint64_t h = fnv1a(body, len);
    pthread_mutex_lock(&reg_lock);
    sl_stmt **b = &reg[h % REG_BUCKETS];
    sl_stmt *s = find_locked(b, h, body, len);
    if (s) __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    else s = insert_locked(b, h, body, len, reg_next_id);
    pthread_mutex_unlock(&reg_lock);
    return s;
}

/* Takeover: the statement the old process prepared as SL_<id> gets the same id here (its servers
 * have it under that name); NULL when the body is known under another id, or out of memory. */
sl_stmt *sl_stmt_adopt(uint64_t id, const uint8_t *body, uint32_t len, bool valid)
{
    uint64_t h = fnv1a(body, len);
    pthread_mutex_lock(&reg_lock);
    sl_stmt **b = &reg[h % REG_BUCKETS];
    sl_stmt *s = find_locked(b, h, body, len);
    if (s) {
        if (s->id != id) s = NULL;
        else __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    } else if ((s = insert_locked(b, h, body, len, id))) {
        s->valid = valid;
    }
    pthread_mutex_unlock(&reg_lock);
    return s;
}

void sl_stmt_ref(sl_stmt *s) { __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED); }

void sl_stmt_unref(sl_stmt *s)
{
    if (!s) return;
    /* the registry lock orders "last reference gone" against a concurrent intern of the same text */
    pthread_mutex_lock(&reg_lock);
    if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        sl_stmt **b = &reg[s->hash % REG_BUCKETS];
        while (*b && *b != s) b = &(*b)->next;
        if (*b) *b = s->next;
        reg_count--;
        free(s->body);
        free(s);
    }
    pthread_mutex_unlock(&reg_lock);
}

size_t sl_stmt_registry_count(void)
{
    pthread_mutex_lock(&reg_lock);
    size_t n = reg_count;
    pthread_mutex_unlock(&reg_lock);
    return n;
}

/* ---- client map: open addressing on the name ---- */

#define DELETED ((char *)1)

static uint32_t name_hash(const char *s) { return (uint32_t)fnv1a((const uint8_t *)s, strlen(s)); }

static struct sl_stmt_map_entry *map_find(const sl_stmt_map *m, const char *name)
{
    if (!m->cap) return NULL;
    uint32_t i = name_hash(name) & (m->cap - 1);
    for (uint32_t k = 0; k < m->cap; k++, i = (i + 1) & (m->cap - 1)) {
        struct sl_stmt_map_entry *e = &m->e[i];
        if (!e->name) return NULL;
        if (e->name != DELETED && strcmp(e->name, name) == 0) return e;
    }
    return NULL;
}

sl_stmt *sl_stmt_map_get(const sl_stmt_map *m, const char *name)
{
    struct sl_stmt_map_entry *e = map_find(m, name);
    return e ? e->stmt : NULL;
}

static bool map_grow(sl_stmt_map *m)
{
    uint32_t ncap = m->cap ? m->cap * 2 : 8;
    struct sl_stmt_map_entry *ne = calloc(ncap, sizeof(*ne));
    if (!ne) return false;
    for (uint32_t i = 0; i < m->cap; i++) {
        struct sl_stmt_map_entry *e = &m->e[i];
        if (!e->name || e->name == DELETED) continue;
        uint32_t j = name_hash(e->name) & (ncap - 1);
        while (ne[j].name) j = (j + 1) & (ncap - 1);
        ne[j] = *e;
    }
    free(m->e);
    m->e = ne;
    m->cap = ncap;
    return true;
}

bool sl_stmt_map_put(sl_stmt_map *m, const char *name, sl_stmt *stmt)
{
    struct sl_stmt_map_entry *e = map_find(m, name);
    if (e) {
        sl_stmt_unref(e->stmt);
        e->stmt = stmt;
        return true;
    }
    if ((m->n + 1) * 4 > m->cap * 3 && !map_grow(m)) return false;
    char *copy = strdup(name);
    if (!copy) return false;
    uint32_t i = name_hash(name) & (m->cap - 1);
    while (m->e[i].name && m->e[i].name != DELETED) i = (i + 1) & (m->cap - 1);
    m->e[i].name = copy;
    m->e[i].stmt = stmt;
    m->n++;
    return true;
}

bool sl_stmt_map_del(sl_stmt_map *m, const char *name)
{
    struct sl_stmt_map_entry *e = map_find(m, name);
    if (!e) return false;
    free(e->name);
    sl_stmt_unref(e->stmt);
    e->name = DELETED;
    e->stmt = NULL;
    m->n--;
    return true;
}

void sl_stmt_map_clear(sl_stmt_map *m)
{
    for (uint32_t i = 0; i < m->cap; i++) {
        if (m->e[i].name && m->e[i].name != DELETED) {
            free(m->e[i].name);
            sl_stmt_unref(m->e[i].stmt);
        }
    }
    free(m->e);
    m->e = NULL;
    m->cap = m->n = 0;
}

void sl_stmt_map_restore(sl_stmt_map *dst, sl_stmt_map *src)
{
    for (uint32_t i = 0; i < src->cap; i++) {
        struct sl_stmt_map_entry *e = &src->e[i];
        if (!e->name || e->name == DELETED || map_find(dst, e->name)) continue;
        if (sl_stmt_map_put(dst, e->name, e->stmt)) { /* the reference moves to dst */
            free(e->name);
            e->name = DELETED;
            e->stmt = NULL;
            src->n--;
        }
    }
    sl_stmt_map_clear(src);
}

/* ---- server cache ---- */

void sl_stmt_cache_init(sl_stmt_cache *c)
{
    memset(c, 0, sizeof(*c));
    c->lru.lru_next = c->lru.lru_prev = &c->lru;
}

static sl_stmt_node **cache_slot(const sl_stmt_cache *c, const sl_stmt *st)
{
    if (!c->nbuckets) return NULL;
    sl_stmt_node **p = &c->buckets[st->id & (c->nbuckets - 1)];
    while (*p && (*p)->stmt != st) p = &(*p)->hnext;
    return p;
}

static void lru_unlink(sl_stmt_node *n)
{
    n->lru_prev->lru_next = n->lru_next;
    n->lru_next->lru_prev = n->lru_prev;
}

static void lru_push_mru(sl_stmt_cache *c, sl_stmt_node *n)
{
    n->lru_prev = c->lru.lru_prev;
    n->lru_next = &c->lru;
    c->lru.lru_prev->lru_next = n;
    c->lru.lru_prev = n;
}

bool sl_stmt_cache_touch(sl_stmt_cache *c, const sl_stmt *st)
{
    sl_stmt_node **p = cache_slot(c, st);
    if (!p || !*p) return false;
    lru_unlink(*p);
    lru_push_mru(c, *p);
    return true;
}

static bool cache_grow(sl_stmt_cache *c)
{
    uint32_t nb = c->nbuckets ? c->nbuckets * 2 : 16;
    sl_stmt_node **b = calloc(nb, sizeof(*b));
    if (!b) return false;
    for (uint32_t i = 0; i < c->nbuckets; i++) {
        sl_stmt_node *n = c->buckets[i];
        while (n) {
            sl_stmt_node *next = n->hnext;
            sl_stmt_node **dst = &b[n->stmt->id & (nb - 1)];
            n->hnext = *dst;
            *dst = n;
            n = next;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
    return true;
}

bool sl_stmt_cache_add(sl_stmt_cache *c, sl_stmt *st)
{
    if (c->n + 1 > c->nbuckets && !cache_grow(c)) return false;
    sl_stmt_node **p = cache_slot(c, st);
    if (*p) return true;
    sl_stmt_node *n = calloc(1, sizeof(*n));
    if (!n) return false;
    sl_stmt_ref(st);
    n->stmt = st;
    *p = n;
    lru_push_mru(c, n);
    c->n++;
    return true;
}

sl_stmt *sl_stmt_cache_lru(const sl_stmt_cache *c)
{
    return c->lru.lru_next != &c->lru ? c->lru.lru_next->stmt : NULL;
}

void sl_stmt_cache_remove(sl_stmt_cache *c, const sl_stmt *st)
{
    sl_stmt_node **p = cache_slot(c, st);
    if (!p || !*p) return;
    sl_stmt_node *n = *p;
    *p = n->hnext;
    lru_unlink(n);
    c->n--;
    sl_stmt_unref(n->stmt);
    free(n);
}

void sl_stmt_cache_clear(sl_stmt_cache *c)
{
    sl_stmt_node *n = c->lru.lru_next;
    while (n != &c->lru) {
        sl_stmt_node *next = n->lru_next;
        sl_stmt_unref(n->stmt);
        free(n);
        n = next;
    }
    free(c->buckets);
    sl_stmt_cache_init(c);
}
