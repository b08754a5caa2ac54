/* The Socket.IO layer's objects (private). See ferry.h for the public contract.
 *
 * One sio_client per Engine.IO session (Socket.IO's Client): it decodes the session's messages
 * and owns the sockets, one per namespace the client joined (or is joining). A ferry_socket is
 * referenced by its membership (from creation until it leaves), by a middleware that has not
 * decided yet, and by whoever is inside a callback for it; it is freed with the last. */
#ifndef FERRY_SOCKET_SOCKET_H
#define FERRY_SOCKET_SOCKET_H

#include <stdint.h>

#include "adapter/adapter.h"
#include "common/life.h"
#include "common/list.h"
#include "common/timerwheel.h"
#include "engine/engine.h"
#include "socket/sio.h"
#include "socket/packet.h"

#define SIO_MAX_MIDDLEWARES 16
#define SIO_MAX_SOCKET_HANDLERS 64
#define SIO_MAX_PENDING_ACKS 1024 /* each way: our emits waiting, the client's unanswered */
#define SIO_MAX_SOCKETS_PER_CLIENT 256 /* namespaces one session may join */
#define SIO_MAX_ROOMS_PER_SOCKET FERRY_ADAPTER_MAX_ROOMS_PER_SOCKET
#define SIO_ID_LEN 20
#define SIO_TAB_ID_MAX 16    /* bytes of a tab id (docs/protocol.md section 11) */
#define SIO_MAX_TABS 64      /* tabs one session may carry */

typedef struct sio_handler {
    char *event;
    ferry_event_cb cb;
    void *ud;
} sio_handler;

typedef struct sio_handlers {
    sio_handler *v;
    size_t n;
} sio_handlers;

typedef struct sio_middleware {
    ferry_middleware_cb cb;
    void *ud;
} sio_middleware;

struct ferry_namespace {
    struct ferry_sio *sio;
    ferry_namespace *next; /* in sio->nsps */
    char *name;
    ferry_connection_cb on_connection;
    void *on_connection_ud;
    sio_middleware mw[SIO_MAX_MIDDLEWARES];
    unsigned nmw;
    sio_handlers handlers;
    ferry_list sockets; /* connected sockets (ferry_socket.nsp_link) */
    size_t nsockets;
    ferry_adapter *adapter; /* owns the rooms and who is in them */
    void *data;
    /* Connection-state recovery (recovery.c): sent packets and lost sockets. */
    ferry_list log;
    size_t nlog;
    size_t log_bytes; /* what the logged packets pin: their encoded bytes and rooms */
    uint64_t next_seq;
    size_t last_off_len;   /* of the offset sio_recovery_encode() wrote last */
    uint64_t last_own_seq; /* its number in this node's log in Redis (0: none) */
    /* Several nodes (recovery_remote.c): per origin node, the highest of its broadcasts logged
     * here (the offsets carry it); NULL until first needed, or on a single node. */
    struct sio_vec *vec;
    ferry_list saved;
    size_t nsaved;
    /* Per-namespace bounds (ferry_namespace_set_recovery()); rec_set 0: the server's. */
    int rec_set;
    uint32_t rec_ms;
    size_t rec_max_bytes;
    /* ferry_namespace_keep_socket_data(): NULL, or who frees a socket's data pointer. */
    ferry_socket_data_release_cb data_release;
    void *data_release_ud;
    /* Backpressure (backpressure.c): the policy, its bound (0: max_session_queue_bytes), and
     * the key of the keyed emit under way (NULL outside one). */
    ferry_backpressure bp_policy;
    size_t bp_max;
    ferry_buf *bp_key;
    /* Across nodes (cluster.c): server-side events from other nodes, and what a fetch shows of
     * a socket's data. */
    ferry_server_event_cb server_event;
    void *server_event_ud;
    ferry_socket_info_cb info;
    void *info_ud;
};

struct ferry_sio {
    ferry_server *srv; /* the owner, handed to callbacks */
    ferry_engine *engine;
    ferry_namespace *nsps;
    ferry_namespace_request_cb on_request;
    void *on_request_ud;
    ferry_list clients;
    ferry_list waiting; /* sockets whose middleware decides later (ferry_socket.wait_link) */
    const ferry_adapter_factory *adapter_factory; /* makes each namespace's adapter */
    /* Inside a send or a broadcast: a session that closes now (its queue overflowed, and a
     * polling transport closes at once) must not run callbacks or unlink sockets from rooms
     * under the caller's feet; its close is finished on the next wheel tick instead. */
    unsigned depth;
};

typedef struct sio_client {
    ferry_sio *sio;
    ferry_session *session; /* one reference, dropped when the session closes */
    sio_decoder dec;
    ferry_timer connect_timer; /* the connect timeout, then the wait of a close after drain */
    uint64_t drain_deadline;   /* 0, or when a close after drain stops waiting (loop ms) */
    ferry_list sockets; /* every socket of the client (ferry_socket.client_link) */
    ferry_list link;    /* in sio->clients */
    ferry_timer close_timer; /* finishes a close deferred by depth */
    unsigned nconnected;
    unsigned nsockets;  /* in sockets, connected or not */
    int closing;        /* the session is closing: take no more packets */
    ferry_reason close_reason;
    /* The one lifetime rule (common/life.h): closed when the session's close finished;
     * on_message holds a reference while it runs. */
    ferry_life life;
    /* Tabs (docs/protocol.md section 11): a tab's client shares its parent's session, holds a
     * reference to it, and is not in sio->clients; its packets carry "t<tab>:" on the wire. */
    unsigned ntabs;
    struct sio_client *parent; /* NULL: the session's own client */
    ferry_list tabs;           /* the parent's tab clients (tab_link) */
    ferry_list tab_link;
    struct sio_client *att;    /* the tab whose binary packet waits for its attachments */
    unsigned skip;             /* attachments of a late packet of an ended tab, to drop */
    /* The tab id (at most SIO_TAB_ID_MAX bytes), allocated to its size: "" for the session's
     * own client. */
    char tab[];
} sio_client;

/* The outbox extension (outbox.c, docs/protocol.md section 13): what a socket of ferry's client
 * that asked for it has sent us. Its emits are numbered 1, 2, ... (per socket, across
 * recovery): taken is the highest we passed to the app; a number at or under it is a
 * duplicate and is dropped. The answers we gave to its numbered emits that asked for an ack are
 * kept (bounded) so that a client whose session was lost with them in flight gets them again. */
typedef struct sio_outbox {
    int on;              /* the socket asked for it and recovery is on */
    unsigned every;      /* confirm every that many emits taken */
    uint64_t taken;      /* the highest emit number passed to the app */
    uint64_t confirmed;  /* the last number we confirmed to the client */
    uint64_t gap_at;     /* the first number missing at the last gap refused (0: none) */
    ferry_list answers;  /* sio_ob_answer.link, oldest first */
    size_t nanswers;
    size_t answer_bytes;
} sio_outbox;

typedef enum sock_state {
    SOCK_MIDDLEWARE,    /* middlewares are running */
    SOCK_CONNECTED,
    SOCK_DISCONNECTING, /* ferry_socket_disconnect() was called; deferred to the wheel */
    SOCK_CLOSING,       /* inside its disconnect callback */
    SOCK_GONE,          /* left; waiting for its last reference */
} sock_state;

typedef enum mw_state {
    MW_IDLE,
    MW_RUNNING, /* inside a middleware callback, no decision yet */
    MW_ASYNC,   /* the callback returned without a decision */
    MW_ACCEPTED,
    MW_REFUSED,
} mw_state;

struct ferry_socket {
    sio_client *client;
    ferry_namespace *nsp;
    char id[SIO_ID_LEN + 1];
    char pid[SIO_ID_LEN + 1]; /* connection-state recovery: the private id it resumes with */
    /* The one lifetime rule (common/life.h): its own reference is the membership's, given up
     * when it leaves its client (SOCK_GONE); a waiting middleware and every call out hold one. */
    ferry_life life;
    sock_state state;
    mw_state mw;
    unsigned mw_next;
    int close_session;  /* the deferred disconnect closes the whole session */
    cJSON *auth;
    uint64_t time_ms;   /* when the CONNECT arrived (handshake.issued), wall clock */
    ferry_list client_link;
    ferry_list nsp_link;
    ferry_list wait_link;
    sio_handlers handlers;
    ferry_event_cb any;
    void *any_ud;
    ferry_disconnect_cb on_disconnect;
    void *on_disconnect_ud;
    void *data;
    int64_t next_ack_id;
    ferry_list out_acks; /* emits waiting for the client's ack (sio_out_ack.link) */
    unsigned nout_acks;
    unsigned nin_acks;
    ferry_list in_acks;  /* the client's ack requests not answered yet (ferry_ack.link) */
    ferry_timer defer;   /* runs a deferred disconnect */
    /* Connection-state recovery: what a restore found, until the socket connects (the private
     * id the client resumes with is pid, next to id). */
    int recovered;
    int rec_remote; /* its pid is looked for in Redis before the middlewares run */
    struct sio_saved *restore;
    uint64_t restore_offset;
    uint64_t last_seq;          /* the highest logged packet queued to this socket */
    const char *not_recovered;  /* why a CONNECT asking to recover was not (static) */
    const char *not_recovered_why; /* the same in words, for the log (static) */
    /* Backpressure (backpressure.c): the drain callback, and the SPILL policy's state. */
    ferry_drain_cb drain_cb;
    void *drain_ud;
    size_t drain_low;
    int drain_armed;  /* the buffered amount was above drain_low since the last call */
    int spilling;     /* logged events stay in the log; the socket catches up from it */
    uint64_t spill_pos; /* the highest logged packet it caught up to (queued or not for it) */
    sio_outbox ob;              /* the outbox extension (outbox.c) */
};

/* Queue an encoded packet to the socket's session. volatile_: drop it (returning 0) when the
 * client cannot take it right now. Returns 0 or a negative error. */
int sio_socket_queue(ferry_socket *s, const sio_encoded *e, int volatile_);
/* Is the socket a valid broadcast recipient? (It may be in rooms and not be one: between
 * ferry_socket_disconnect() and the end of its disconnect callback.) */
static inline int sio_socket_live(const ferry_socket *s)
{
    return s->state == SOCK_CONNECTED;
}

#endif
