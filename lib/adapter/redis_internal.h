/* What redis.c shares with redis_recovery.c (private to lib/adapter). */
#ifndef FERRY_ADAPTER_REDIS_INTERNAL_H
#define FERRY_ADAPTER_REDIS_INTERNAL_H

#include <stdint.h>

#include <hiredis/async.h>

#include "adapter/adapter.h"
#include "common/list.h"

/* One message of the wire format (redis.c describes its bytes), read: every string a
 * NUL-terminated copy, every part a buffer of its own. */
typedef struct redis_msg {
    unsigned flags;
    char *node, *nsp;
    const char **names; /* nrooms rooms, then nexcept except rooms */
    size_t nrooms, nexcept;
    char *sid; /* NULL: none */
    ferry_buf **bufs;
    size_t nbufs;
    uint64_t seq; /* the origin's recovery sequence number; 0: none */
    char *strs;
} redis_msg;

int redis_msg_parse(const char *data, size_t len, redis_msg *m);
void redis_msg_free(redis_msg *m);
/* m as a packet and a target (borrowing m's memory). */
void redis_msg_view(const redis_msg *m, ferry_adapter_packet *pkt, ferry_adapter_target *t);

/* The link's command connection (the publish one), or NULL while it is down. */
redisAsyncContext *redis_cmd_ctx(ferry_redis *r);
uv_loop_t *redis_loop(ferry_redis *r);
/* PUBLISH (SPUBLISH with sharded pub/sub) msg on chan; cb as redisAsyncCommand's (its ac may
 * be NULL). 0 or a negative error (cb is not called). redis_can_publish: would it try? */
int redis_publish(ferry_redis *r, const char *chan, const char *msg, size_t len,
                  redisCallbackFn *cb, void *ud);
int redis_can_publish(ferry_redis *r);
const char *redis_prefix(const ferry_redis *r);
struct redis_rec *redis_rec_of(ferry_redis *r);

/* redis_recovery.c: cross-node connection-state recovery (docs/scaling.md). */
typedef struct redis_rec redis_rec;
int redis_rec_new(ferry_redis *r, redis_rec **out);
/* Close its handle; done(r) runs from the close callback. */
void redis_rec_close(redis_rec *rc, void (*done)(ferry_redis *r));
void redis_rec_free(redis_rec *rc);
/* A namespace's adapter came or went (owner: the adapter, for the answers still due). */
void redis_rec_nsp_add(ferry_redis *r, const char *nsp);
void redis_rec_nsp_del(ferry_redis *r, const char *nsp, const ferry_adapter *owner);
/* The command connection is up (first time or again): every namespace beats at once. */
void redis_rec_linked(ferry_redis *r);
/* A broadcast of ours, logged (origin seq), published as msg: keep it in our log stream. */
void redis_rec_logged(ferry_redis *r, const char *nsp, uint64_t seq, const char *msg,
                      size_t len);
/* window_ms, max_bytes, max_packets: the namespace's recovery bounds, which bound our log too. */
void redis_rec_save(ferry_redis *r, const char *nsp, const char *pid, const char *rec,
                    size_t len, uint32_t window_ms, size_t max_bytes, size_t max_packets);
void redis_rec_drop(ferry_redis *r, const char *nsp, const char *pid);
int redis_rec_find(ferry_redis *r, const char *nsp, const ferry_adapter *owner, const char *pid,
                   ferry_adapter_found_cb cb, void *ud);
int redis_rec_read(ferry_redis *r, const char *nsp, const ferry_adapter *owner,
                   const char *const *nodes, size_t nnodes, const ferry_adapter_pos *pos,
                   size_t npos, ferry_adapter_entries_cb cb, void *ud);

/* redis_query.c: commands and queries across nodes (fetch, join, leave, disconnect,
 * server-side emit). Channels "<prefix>#<nsp>##req" (every node) and
 * "<prefix>#<nsp>##res#<node>" (that node's answers); messages "FRJ1" + JSON. */
typedef struct redis_q {
    ferry_list reqs; /* requests waiting for answers */
    uint64_t next_id;
} redis_q;
redis_q *redis_q_of(ferry_redis *r);
const char *redis_node(const ferry_redis *r);
/* Subscribe to (want 1) or forget (want 0) a channel. */
void redis_chan(ferry_redis *r, const char *name, int want);
/* The host of nsp's adapter on this link, or NULL. */
const ferry_adapter_host *redis_host_of(ferry_redis *r, const char *nsp);
/* The adapter of nsp came (want 1) or goes (want 0): its two channels. */
void redis_q_channels(ferry_redis *r, const char *nsp, int want);
/* A message on one of them (after "FRJ1"). */
void redis_q_on_message(ferry_redis *r, const char *data, size_t len);
int redis_q_send(ferry_redis *r, const char *nsp, const ferry_adapter *owner, const cJSON *cmd,
                 uint32_t timeout_ms, ferry_adapter_answers_cb cb, void *ud);
void redis_q_cancel(ferry_redis *r, const ferry_adapter *owner);

#endif
