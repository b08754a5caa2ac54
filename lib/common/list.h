/* Intrusive circular doubly linked lists (libuv's queue.h idea, written out as functions):
 * nodes live inside the objects, so linking never allocates. An unlinked node points to
 * itself, which makes ferry_list_remove() safe to call twice. */
#ifndef FERRY_COMMON_LIST_H
#define FERRY_COMMON_LIST_H

#include <stddef.h>

typedef struct ferry_list {
    struct ferry_list *next;
    struct ferry_list *prev;
} ferry_list;

static inline void ferry_list_init(ferry_list *l)
{
    l->next = l->prev = l;
}

static inline int ferry_list_empty(const ferry_list *l)
{
    return l->next == l;
}

/* Is node linked into some list? (Only for nodes initialised with ferry_list_init.) */
static inline int ferry_list_linked(const ferry_list *node)
{
    return node->next != node;
}

static inline void ferry_list_insert_tail(ferry_list *head, ferry_list *node)
{
    node->next = head;
    node->prev = head->prev;
    head->prev->next = node;
    head->prev = node;
}

static inline void ferry_list_insert_head(ferry_list *head, ferry_list *node)
{
    node->prev = head;
    node->next = head->next;
    head->next->prev = node;
    head->next = node;
}

static inline void ferry_list_remove(ferry_list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->next = node->prev = node;
}

/* Move every node of from to the empty list to; from ends empty. Iterate the local copy when
 * callbacks may change the original list (libuv uv__queue_move). */
static inline void ferry_list_move(ferry_list *from, ferry_list *to)
{
    if (ferry_list_empty(from)) {
        ferry_list_init(to);
        return;
    }
    to->next = from->next;
    to->prev = from->prev;
    to->next->prev = to;
    to->prev->next = to;
    ferry_list_init(from);
}

#define ferry_list_entry(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define ferry_list_foreach(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

#endif
