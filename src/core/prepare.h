/* prepare.h - prepared statements in transaction mode: a process-wide registry of distinct
 * statements (query text + parameter types) with pgsluice-owned server names, each client's map
 * from its own statement names to them, and each server's LRU cache of what it has prepared. */
#ifndef SL_PREPARE_H
#define SL_PREPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl_stmt {
    uint64_t id;            /* unique for the process lifetime: the server-side name is "SL_<id>" */
    uint64_t hash;
    uint32_t refs;          /* atomic */
    int valid;              /* atomic: some server accepted its Parse, so it can be answered locally */
    int sess_plain;         /* atomic, session_state.c: 0 not looked at yet, 1 its text does nothing
                               to the session, -1 it may (classified at each Bind) */
    uint32_t body_len;      /* query + NUL + nparams + types, as in a Parse body after the name */
    uint8_t *body;
    char name[24];
    struct sl_stmt *next;   /* registry chain */
} sl_stmt;

/* Find or add the statement whose Parse body (after the statement name) is body; +1 reference. */
sl_stmt *sl_stmt_intern(const uint8_t *body, uint32_t len);
/* Takeover (core/takeover_*.c): the statement the previous process knew as id, added with that id
 * (servers handed over have it prepared as "SL_<id>"); later ids are above it. +1 reference; NULL
 * when out of memory or the same body already has another id. */
sl_stmt *sl_stmt_adopt(uint64_t id, const uint8_t *body, uint32_t len, bool valid);
void sl_stmt_ref(sl_stmt *s);
void sl_stmt_unref(sl_stmt *s);
size_t sl_stmt_registry_count(void);

/* A client's names -> statements. */
typedef struct sl_stmt_map {
    uint32_t cap, n;
    struct sl_stmt_map_entry {
        char *name;      /* NULL = empty, (char*)1 = deleted */
        sl_stmt *stmt;
    } *e;
} sl_stmt_map;
sl_stmt *sl_stmt_map_get(const sl_stmt_map *m, const char *name);
bool sl_stmt_map_put(sl_stmt_map *m, const char *name, sl_stmt *stmt); /* takes the reference */
bool sl_stmt_map_del(sl_stmt_map *m, const char *name);
void sl_stmt_map_clear(sl_stmt_map *m);
/* Move into dst every entry of src whose name dst does not have; src is left empty. */
void sl_stmt_map_restore(sl_stmt_map *dst, sl_stmt_map *src);

/* A server's prepared statements, least recently used first out. */
typedef struct sl_stmt_node {
    sl_stmt *stmt;
    struct sl_stmt_node *lru_prev, *lru_next, *hnext;
} sl_stmt_node;
typedef struct sl_stmt_cache {
    uint32_t n, nbuckets;
    sl_stmt_node **buckets;
    sl_stmt_node lru; /* sentinel: lru.lru_next is the least recently used */
} sl_stmt_cache;
void sl_stmt_cache_init(sl_stmt_cache *c);
/* Is it prepared here? Marks it most recently used. */
bool sl_stmt_cache_touch(sl_stmt_cache *c, const sl_stmt *st);
/* Record it as prepared (takes a reference). */
bool sl_stmt_cache_add(sl_stmt_cache *c, sl_stmt *st);
/* Least recently used one, or NULL. */
sl_stmt *sl_stmt_cache_lru(const sl_stmt_cache *c);
void sl_stmt_cache_remove(sl_stmt_cache *c, const sl_stmt *st);
void sl_stmt_cache_clear(sl_stmt_cache *c);

#endif
