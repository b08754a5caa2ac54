/* The adapter: rooms and broadcast for one namespace, behind a small ops table so that a Redis
 * adapter (several nodes) can replace the local one (Socket.IO's Adapter class).
 *
 * The socket layer calls it only on the loop. A broadcast never calls user code: it only
 * queues the shared encoded packet to each recipient (STYLE.md smell 5). Membership links are
 * not owning: del_all() runs when a socket leaves, before it is freed. */
#ifndef FERRY_ADAPTER_ADAPTER_H
#define FERRY_ADAPTER_ADAPTER_H

#include <stddef.h>

#include "ferry.h"

struct sio_encoded;
typedef struct ferry_adapter ferry_adapter;

typedef struct ferry_adapter_ops {
    const char *name;
    /* Add s to room (copied). 0 when done or already in; -FERRY_ELIMIT, -FERRY_ENOMEM. */
    int (*add)(ferry_adapter *a, ferry_socket *s, const char *room);
    /* Remove s from room; nothing when it is not in. */
    void (*del)(ferry_adapter *a, ferry_socket *s, const char *room);
    /* Remove s from every room (it is leaving the namespace). */
    void (*del_all)(ferry_adapter *a, ferry_socket *s);
    int (*has)(ferry_adapter *a, const ferry_socket *s, const char *room);
    /* The rooms of s into out[0..max); returns the total. */
    size_t (*socket_rooms)(ferry_adapter *a, const ferry_socket *s, const char **out, size_t max);
    /* The sockets in room (NULL: every socket of the namespace) into out[0..max); returns the
     * total. */
    size_t (*sockets)(ferry_adapter *a, const char *room, ferry_socket **out, size_t max);
    /* Queue pkt to the recipients b describes, each once. Returns how many, or an error. */
    int (*broadcast)(ferry_adapter *a, const struct sio_encoded *pkt, const ferry_bcast *b);
    void (*destroy)(ferry_adapter *a);
} ferry_adapter_ops;

struct ferry_adapter {
    const ferry_adapter_ops *ops;
    ferry_namespace *nsp;
};

/* The in-process adapter (adapter/local.c). NULL when out of memory. */
ferry_adapter *ferry_adapter_local_new(ferry_namespace *nsp);

#endif
