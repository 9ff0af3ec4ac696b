/*
 * list.h - the one intrusive doubly-linked list of the agent.
 *
 * A list is a sentinel node whose next is the head and prev the tail; an
 * empty list points at itself. An element embeds a struct sl_list and is
 * recovered with SL_CONTAINER_OF. A node that is on no list points at
 * itself too (list_init / after list_remove), so list_linked tells whether
 * it is on one. Every operation is O(1) and none allocates.
 */
#ifndef SLUICE_LIST_H
#define SLUICE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct sl_list {
    struct sl_list *prev, *next;
};

#define SL_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void list_init(struct sl_list *l)
{
    l->prev = l->next = l;
}

static inline bool list_empty(const struct sl_list *l)
{
    return l->next == l;
}

static inline bool list_linked(const struct sl_list *n)
{
    return n->next != n;
}

static inline void list_insert_after(struct sl_list *at, struct sl_list *n)
{
    n->prev = at;
    n->next = at->next;
    at->next->prev = n;
    at->next = n;
}

static inline void list_push_front(struct sl_list *l, struct sl_list *n)
{
    list_insert_after(l, n);
}

static inline void list_push_back(struct sl_list *l, struct sl_list *n)
{
    list_insert_after(l->prev, n);
}

static inline void list_remove(struct sl_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    list_init(n);
}

#endif
