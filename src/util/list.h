/* list.h - intrusive circular doubly linked list (an object on one list at a time per node). */
#ifndef SL_LIST_H
#define SL_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl_list {
    struct sl_list *next, *prev;
} sl_list;

static inline void sl_list_init(sl_list *l) { l->next = l->prev = l; }
static inline bool sl_list_empty(const sl_list *l) { return l->next == l; }
static inline bool sl_list_linked(const sl_list *n) { return n->next && n->next != n; }
static inline void sl_list_insert_tail(sl_list *head, sl_list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
static inline void sl_list_insert_head(sl_list *head, sl_list *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}
static inline void sl_list_remove(sl_list *n)
{
    if (!n->next) return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}
static inline sl_list *sl_list_pop_head(sl_list *head)
{
    if (sl_list_empty(head)) return NULL;
    sl_list *n = head->next;
    sl_list_remove(n);
    return n;
}
#define sl_container_of(ptr, type, member) ((type *)((uintptr_t)(ptr) - offsetof(type, member)))
#define sl_list_for_each_safe(pos, tmp, head) \
    for (pos = (head)->next, tmp = pos->next; pos != (head); pos = tmp, tmp = pos->next)

#endif
