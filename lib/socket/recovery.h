/* Connection-state recovery's records (private to recovery.c and recovery_remote.c). */
#ifndef FERRY_SOCKET_RECOVERY_H
#define FERRY_SOCKET_RECOVERY_H

#include "socket/internal.h"

typedef struct sio_logged {
    ferry_list link;
    uint64_t seq;
    uint64_t at;
    size_t bytes; /* counted in nsp->log_bytes */
    sio_encoded enc;
    char exclude[SIO_ID_LEN + 1]; /* "" for none */
    uint8_t nto, nexcept;
    char **rooms; /* nto "to" rooms, then nexcept "except" rooms */
    char *origin;        /* several nodes: the node that sent it (NULL: none) */
    uint64_t origin_seq; /* ... and its number there (its log in Redis) */
} sio_logged;

/* Per origin node, the last of its broadcasts a recovery from Redis covered. */
typedef struct sio_upto {
    char *node;
    uint64_t seq;
} sio_upto;

typedef struct sio_saved {
    ferry_list link;
    uint64_t expires;
    char id[SIO_ID_LEN + 1];
    char pid[SIO_ID_LEN + 1];
    size_t nrooms;
    char **rooms; /* the socket's rooms; its own id first */
    void *data;   /* its data pointer, when the namespace keeps socket data */
    uint64_t last_seq;    /* the highest logged packet queued to it */
    uint64_t seq_at_loss; /* the namespace's last logged packet when it was lost */
    sio_outbox ob;        /* the outbox extension's state (outbox.c) */
    /* Recovered from another node's record (recovery_remote.c): the packets it missed, stamped
     * with this node's offsets, replayed after the CONNECT answer. */
    sio_encoded *rx;
    size_t nrx;
    /* What of each origin rx covers (read from Redis or had by the client): this node's log
     * after the read is replayed too, without these. */
    sio_upto *upto;
    size_t nupto;
} sio_saved;

/* Is sv meant to get a broadcast to t (its rooms, except rooms, excluded socket)? */
int sio_recovery_meant_for(const ferry_adapter_target *t, const sio_saved *sv);
/* in with offset as its last argument (a new first buffer; the others shared). */
int sio_recovery_stamp_with(const sio_encoded *in, const char *offset, sio_encoded *out);
void sio_recovery_saved_release(sio_saved *sv);

#endif
