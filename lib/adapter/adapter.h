/* The adapter: rooms, membership and broadcast for one namespace, behind an ops table so that
 * a Redis adapter (several nodes, issue 18) is a second implementation of the same interface
 * (Socket.IO's Adapter class: addAll, del, delAll, broadcast, sockets, socketRooms,
 * fetchSockets).
 *
 * Adapter interface
 * -----------------
 * Layering. lib/adapter includes lib/common and ferry.h only; it never sees the socket layer's
 * structs. The socket layer (lib/socket) creates one adapter per namespace through the
 * ferry_adapter_factory its server was given (the local one unless told otherwise), and hands
 * it a ferry_adapter_host: one deliver callback and its context. A socket is known to the
 * adapter by its id (a string, as in Socket.IO) and by an opaque ferry_socket pointer that the
 * adapter stores and gives back to deliver() and fetch() without ever dereferencing it.
 *
 * Ownership. The adapter is the one owner of rooms and membership: which sockets of this node
 * are in the namespace, which rooms each is in, the room names (copied on add), and whatever
 * it needs to make a broadcast reach each socket once. The socket layer keeps no room state of
 * its own; it asks (has, socket_rooms, fetch). Membership is not owning: a socket is a member
 * from its first add_all() until del_all(), which the socket layer calls before the socket is
 * freed; the adapter must then forget the pointer. A member may be in no room at all (it left
 * its own id room) and still receives broadcasts to every socket. destroy() frees everything,
 * members still present included (their sockets are gone by then).
 *
 * Broadcast. The socket layer encodes a packet once; broadcast() hands that same
 * ferry_adapter_packet (the shared refcounted buffers, never a copy) to deliver() once per
 * matching local socket: in any of target->rooms (all members when there are none), in none
 * of target->except, not target->except_sid. Each socket at most once, whatever the number of
 * matching rooms it is in. broadcast() returns the number of sockets for which deliver()
 * returned 1: that is the client count Socket.IO's broadcastWithAck reports, and a
 * broadcast-with-ack would register its ack inside deliver() per socket. A deliver() error
 * of -FERRY_ENOMEM stops the broadcast and is returned; other errors only skip that socket.
 * An implementation that spans nodes also forwards the packet (unless FERRY_ADAPTER_LOCAL),
 * encoded once per node, and delivers what it receives from other nodes locally in the same
 * way with FERRY_ADAPTER_LOCAL set.
 *
 * Callback timing. deliver() and fetch()'s visitor run synchronously inside broadcast() and
 * fetch(), on the loop, and never later. They may remove members and memberships (del,
 * del_all: a session that closes during delivery), including the one being visited; the
 * adapter must stay consistent, must not hand a removed member to deliver() afterwards, and a
 * socket added during the walk does not receive that broadcast. They must not start another
 * broadcast or fetch on the same adapter (asserted). Nothing else calls back: add_all, del,
 * del_all and the queries never call the host.
 *
 * Not in the interface yet (issue 18 adds them with the Redis adapter, asynchronous and with
 * a timeout): queries across nodes (Socket.IO's fetchSockets/serverCount across the cluster),
 * serverSideEmit, addSockets/delSockets/disconnectSockets from another node. Recovery state
 * kept where other nodes find it: the optional rec_* ops below (adapter/redis_recovery.c). ferry's public API has no broadcast-with-ack and no "local" flag today;
 * FERRY_ADAPTER_LOCAL exists for the Redis adapter's own use. */
#ifndef FERRY_ADAPTER_ADAPTER_H
#define FERRY_ADAPTER_ADAPTER_H

#include <stddef.h>

#include "common/buf.h"
#include "ferry.h"

/* A socket is in at most this many rooms, its own id room included (ferry.h documents 256). */
#define FERRY_ADAPTER_MAX_ROOMS_PER_SOCKET 256

typedef struct ferry_adapter ferry_adapter;

/* One encoded packet: the Engine.IO message, then its binary attachments, each a refcounted
 * buffer built once by the socket layer. The adapter passes it on as it is; to keep a buffer
 * past the call (a queue, a write to Redis), retain it. */
typedef struct ferry_adapter_packet {
    ferry_buf *const *bufs;
    size_t n;
    /* Connection-state recovery: bufs[0] ends with this node's offset argument, the
     * offset_len bytes `,"<offset>"` just before its final ']' (0: no offset). A node-spanning
     * adapter leaves them out of what it forwards; the receiving node stamps its own. */
    size_t offset_len;
    /* Cross-node recovery (adapter/redis_recovery.c): the origin node's sequence number of a
     * logged broadcast (0: not logged), given by the socket layer for its own broadcasts and
     * by a node-spanning adapter, with origin (the sending node's id), for other nodes' ones.
     * origin NULL: this node. */
    uint64_t origin_seq;
    const char *origin;
} ferry_adapter_packet;

enum {
    FERRY_ADAPTER_VOLATILE = 1u << 0, /* passed to deliver(): drop where the client is behind */
    FERRY_ADAPTER_LOCAL = 1u << 1,    /* this node only: do not forward to other nodes */
};

/* The recipients of a broadcast or a fetch (Socket.IO's BroadcastOptions). Every pointer is
 * borrowed for the duration of the call. */
typedef struct ferry_adapter_target {
    const char *const *rooms; /* sockets in any of these; nrooms 0: every member */
    size_t nrooms;
    const char *const *except; /* minus sockets in any of these */
    size_t nexcept;
    const char *except_sid; /* minus this one socket (socket.broadcast's sender); NULL: none */
    unsigned flags;         /* FERRY_ADAPTER_* */
} ferry_adapter_target;

/* What the socket layer gives an adapter: its one way to reach a socket. */
typedef struct ferry_adapter_host {
    /* Queue the shared packet to socket s (a member given to add_all()). flags are the
     * target's. Returns 1 when handed over (or dropped because volatile: it counts as sent),
     * 0 when s takes no broadcast now (disconnecting), or a negative error. */
    int (*deliver)(void *ctx, ferry_socket *s, const ferry_adapter_packet *pkt, unsigned flags);
    /* A broadcast from another node (pkt without offset, offset_len 0): the host stamps and
     * logs it for connection-state recovery as its own broadcasts, then hands it back to
     * broadcast() with FERRY_ADAPTER_LOCAL set. Called on the loop by node-spanning adapters,
     * never inside a walk. Returns what broadcast() returned, or a negative error. */
    int (*remote)(void *ctx, const ferry_adapter_packet *pkt, const ferry_adapter_target *t);
    /* A command from another node (adapter/redis_query.c: fetch, join, leave, disconnect,
     * server-side emit, as JSON): run it on this node's sockets. Returns the answer a fetch
     * gets (ownership passes to the adapter) or NULL. Called on the loop, never inside a
     * walk; NULL: this host takes no commands. */
    cJSON *(*command)(void *ctx, const cJSON *cmd);
    void *ctx;
} ferry_adapter_host;

/* Cross-node connection-state recovery (optional ops; NULL in the local adapter). A logged
 * broadcast as another node wrote it: its origin node and sequence number, its wall-clock time,
 * the entry its origin logged before it (seqs have holes: a broadcast too big or not forwarded
 * took one; 0: none known), the packet without offset and its recipients. Everything is
 * borrowed for the callback. */
typedef struct ferry_adapter_entry {
    const char *origin;
    uint64_t seq;
    uint64_t at_ms;
    uint64_t prev_seq, prev_at_ms; /* prev_seq not in the answer, after its position: trimmed */
    ferry_adapter_packet pkt;
    ferry_adapter_target t;
} ferry_adapter_entry;

/* A position in one origin's log: entries after seq (0 with no position: all of them). */
typedef struct ferry_adapter_pos {
    const char *origin;
    uint64_t seq;
} ferry_adapter_pos;

/* rec_find's answer: status 0 with the record (its bytes, the node that wrote it and every
 * node whose log may hold entries), 1 when there is none, or a negative error. */
typedef void (*ferry_adapter_found_cb)(void *ud, int status, const char *rec, size_t len,
                                       const char *node, const char *const *nodes,
                                       size_t nnodes);
/* rec_read's answer: status 0 with the entries (each origin's together, oldest first), or a
 * negative error. */
typedef void (*ferry_adapter_entries_cb)(void *ud, int status, const ferry_adapter_entry *e,
                                         size_t n);

/* cluster_send's answer: status 0 when every other node answered, -FERRY_ETIMEDOUT when
 * the timeout came first (answers holds those that came), or another negative error; expected
 * is the number of other nodes that heard the command. The answers are borrowed for the call. */
typedef void (*ferry_adapter_answers_cb)(void *ud, int status, const cJSON *const *answers,
                                         size_t n, size_t expected);

/* A fetch() visitor: called once per matching socket; a nonzero return stops the walk and is
 * what fetch() returns. */
typedef int (*ferry_adapter_visit_cb)(void *ud, ferry_socket *s);

typedef struct ferry_adapter_ops {
    const char *name;
    /* Make socket s, known as sid, a member (if it is not yet) and add it to rooms[0..n)
     * (names copied; duplicates and rooms it is in already are fine). All or nothing: on
     * error nothing changed. 0, -FERRY_EINVAL (sid a member with another socket),
     * -FERRY_ELIMIT (over FERRY_ADAPTER_MAX_ROOMS_PER_SOCKET rooms) or -FERRY_ENOMEM. */
    int (*add_all)(ferry_adapter *a, ferry_socket *s, const char *sid, const char *const *rooms,
                   size_t n);
    /* Remove sid from room; nothing when it is not in. It stays a member. */
    void (*del)(ferry_adapter *a, const char *sid, const char *room);
    /* Remove sid from every room and forget it (it leaves the namespace). */
    void (*del_all)(ferry_adapter *a, const char *sid);
    /* Is sid in room? */
    int (*has)(ferry_adapter *a, const char *sid, const char *room);
    /* The rooms of sid, in the order it joined them, into out[0..max); returns the total.
     * The strings live until sid leaves the room. */
    size_t (*socket_rooms)(ferry_adapter *a, const char *sid, const char **out, size_t max);
    /* Visit this node's sockets that match t (flags ignored), each once, in join order for a
     * single room. Returns 0 or the visitor's nonzero return. */
    int (*fetch)(ferry_adapter *a, const ferry_adapter_target *t, ferry_adapter_visit_cb cb,
                 void *ud);
    /* Deliver pkt to the sockets t describes (see "Broadcast" above). Returns how many took
     * it, or -FERRY_ENOMEM. */
    int (*broadcast)(ferry_adapter *a, const ferry_adapter_packet *pkt,
                     const ferry_adapter_target *t);
    void (*destroy)(ferry_adapter *a);
    /* Cross-node connection-state recovery (docs/scaling.md), all optional (NULL: this node
     * only). rec_save keeps the record of socket pid (opaque bytes, copied) where other nodes
     * find it, for window_ms after this node stops refreshing it (window_ms, max_bytes and
     * max_packets, the namespace's recovery bounds, also bound this node's log there, and
     * max_packets the entries rec_read takes from each node's); rec_drop forgets it.
     * rec_find looks for pid's record on every node and takes it (no other node finds it
     * after); rec_read reads the logs of nodes[] after the positions given. Both answer once,
     * later, on the loop (never inside the call), unless they return a negative error; an
     * answer still due when the adapter is destroyed comes inside destroy() with
     * -FERRY_ECLOSED. */
    void (*rec_save)(ferry_adapter *a, const char *pid, const char *rec, size_t len,
                     uint32_t window_ms, size_t max_bytes, size_t max_packets);
    void (*rec_drop)(ferry_adapter *a, const char *pid);
    int (*rec_find)(ferry_adapter *a, const char *pid, ferry_adapter_found_cb cb, void *ud);
    int (*rec_read)(ferry_adapter *a, const char *const *nodes, size_t nnodes,
                    const ferry_adapter_pos *pos, size_t npos, ferry_adapter_entries_cb cb,
                    void *ud);
    /* Send cmd (a JSON object, copied) to the host->command of every other node serving the
     * namespace; cb NULL: no answer wanted. Otherwise cb runs once, later, on the loop: when
     * every other node answered, or after timeout_ms with the answers that came. Returns 0 or a
     * negative error (-FERRY_ECLOSED: Redis unreachable; cb is not called). Optional. */
    int (*cluster_send)(ferry_adapter *a, const cJSON *cmd, uint32_t timeout_ms,
                        ferry_adapter_answers_cb cb, void *ud);
    /* This node's id in the cluster (NULL: a single node). */
    const char *(*node_id)(ferry_adapter *a);
} ferry_adapter_ops;

struct ferry_adapter {
    const ferry_adapter_ops *ops;
};

/* Creates the adapter of one namespace. nsp (its name) and host are copied. ud is the
 * factory's. Returns 0 with *out set, or a negative error (-FERRY_ENOMEM). */
typedef struct ferry_adapter_factory {
    const char *name;
    int (*create)(void *ud, const char *nsp, const ferry_adapter_host *host, ferry_adapter **out);
    void *ud;
} ferry_adapter_factory;

/* The in-process adapter (adapter/local.c): every socket of the namespace is on this node. */
extern const ferry_adapter_factory ferry_adapter_local;

/* A local adapter that also tells on_room(ud, room, 1) when a room gets its first member and
 * on_room(ud, room, 0) when it has none left (a node-spanning adapter subscribes to the
 * channels of the rooms this node serves). on_room must not call the adapter. */
typedef void (*ferry_adapter_room_cb)(void *ud, const char *room, int exists);
int ferry_adapter_local_new(const ferry_adapter_host *host, ferry_adapter_room_cb on_room,
                            void *ud, ferry_adapter **out);

/* The Redis adapter's factory for r (adapter/redis.c; ferry.h "several nodes"). */
const ferry_adapter_factory *ferry_redis_factory(ferry_redis *r);

/* Other users of a node's Redis link (the forwarder, lib/server/forward.c): one command on
 * the publish connection. fn runs exactly once: with the reply as text (a status, a bulk
 * string, an integer in decimal; str NULL for a nil reply) and ok 1, or with ok 0 when there
 * was no reply (an error reply, the connection lost, the link closed: ferry_redis_close()
 * runs the callbacks still waiting). Returns 0, or -FERRY_ECLOSED when Redis is not
 * reachable now (fn is not called). */
typedef void (*ferry_redis_reply_fn)(void *ud, const char *str, size_t len, int ok);
int ferry_redis_command(ferry_redis *r, ferry_redis_reply_fn fn, void *ud, int argc,
                        const char **argv, const size_t *lens);
/* The key prefix of r's cluster (its channel prefix, "ferry" by default). */
const char *ferry_redis_prefix(const ferry_redis *r);
/* What every node of r's cluster has in common: the Redis address and credentials and the
 * prefix, as text into out (NUL-terminated, truncated to cap); for a key derived from it. */
void ferry_redis_identity(const ferry_redis *r, char *out, size_t cap);

#endif
