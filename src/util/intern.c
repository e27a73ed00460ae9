/* intern.c - the process-wide table of interned strings: a chained hash table under one mutex,
 * taken to look a value up (logins, ParameterStatus) and to remove one whose last reference went.
 * Reference counts are atomic: another reference to a held string (copying a pool's defaults into
 * a client) and dropping one that is not the last take no lock. A lookup only revives an entry whose
 * count is above zero, so an entry on its way out is never handed out again (a new copy is made). */
#include "util/intern.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct istr {
    struct istr *next;
    uint32_t hash;
    uint32_t refs;
    char s[];
} istr;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static istr **g_tab;
static size_t g_cap, g_n;

static uint32_t hash_str(const char *s, size_t *len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    const unsigned char *p = (const unsigned char *)s;
    for (; *p; p++) h = (h ^ *p) * 16777619u;
    *len = (size_t)(p - (const unsigned char *)s);
    return h;
}

static istr *header(const char *interned) { return (istr *)(void *)(interned - offsetof(istr, s)); }

static bool ref_if_alive(istr *e)
{
    uint32_t n = __atomic_load_n(&e->refs, __ATOMIC_RELAXED);
    while (n > 0)
        if (__atomic_compare_exchange_n(&e->refs, &n, n + 1, true, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return true;
    return false;
}

static void grow(void)
{
    size_t ncap = g_cap ? g_cap * 2 : 256;
    istr **nt = calloc(ncap, sizeof(*nt));
    if (!nt) return; /* keep the longer chains */
    for (size_t i = 0; i < g_cap; i++) {
        for (istr *e = g_tab[i], *next; e; e = next) {
            next = e->next;
            e->next = nt[e->hash & (ncap - 1)];
            nt[e->hash & (ncap - 1)] = e;
        }
    }
    free(g_tab);
    g_tab = nt;
    g_cap = ncap;
}

const char *sl_intern(const char *s)
{
    if (!s) return NULL;
    size_t len;
    uint32_t h = hash_str(s, &len);
    pthread_mutex_lock(&g_lock);
    if (g_n >= g_cap) grow();
    istr *e = NULL;
    if (g_cap) {
        for (e = g_tab[h & (g_cap - 1)]; e; e = e->next)
            if (e->hash == h && strcmp(e->s, s) == 0) break;
    }
    if (e && !ref_if_alive(e)) e = NULL; /* its last reference is being dropped: make a new copy */
    if (!e && g_cap && (e = malloc(sizeof(*e) + len + 1)) != NULL) {
        e->hash = h;
        e->refs = 1;
        memcpy(e->s, s, len + 1);
        e->next = g_tab[h & (g_cap - 1)];
        g_tab[h & (g_cap - 1)] = e;
        g_n++;
    }
    pthread_mutex_unlock(&g_lock);
    return e ? e->s : NULL;
}

const char *sl_intern_ref(const char *interned)
{
    if (interned) __atomic_add_fetch(&header(interned)->refs, 1, __ATOMIC_RELAXED); /* caller holds one */
    return interned;
}

void sl_intern_release(const char *interned)
{
    if (!interned) return;
    istr *e = header(interned);
    if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    /* the last reference: nobody can take a new one (lookups skip a zero count), unlink and free */
    pthread_mutex_lock(&g_lock);
    istr **pp = &g_tab[e->hash & (g_cap - 1)];
    while (*pp != e) pp = &(*pp)->next;
    *pp = e->next;
    g_n--;
    pthread_mutex_unlock(&g_lock);
    free(e);
}

unsigned long sl_intern_count(void)
{
    pthread_mutex_lock(&g_lock);
    unsigned long n = (unsigned long)g_n;
    pthread_mutex_unlock(&g_lock);
    return n;
}
