/* Sharded pub/sub for Redis 7 and Redis Cluster (redis_shard.c; docs/scaling.md "Redis
 * Cluster: sharded pub/sub"). Private to lib/adapter. */
#ifndef FERRY_ADAPTER_REDIS_SHARD_H
#define FERRY_ADAPTER_REDIS_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "ferry.h"

#define REDIS_SLOTS 16384

/* ------------------------------------------------------------------ sans-I/O pieces (tested) */

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0, no reflection), as the Redis Cluster
 * specification's key distribution model defines it. */
uint16_t redis_crc16(const char *buf, size_t len);
/* The hash slot of a key or sharded channel (0..16383), hash tags included: when the key
 * has a '{' followed later by a '}' with at least one byte between them, only the bytes
 * between the first '{' and the first '}' after it are hashed. */
unsigned redis_keyslot(const char *key, size_t len);

/* An error reply "MOVED <slot> <host>:<port>" (returns 1) or "ASK <slot> <host>:<port>"
 * (returns 2): the slot and the address (host NUL-terminated into host[0..cap), an IPv6
 * literal without brackets). 0: another error, or a malformed one. */
int redis_redirect_parse(const char *err, size_t len, unsigned *slot, char *host, size_t cap,
                         int *port);

/* CLUSTER SLOTS's answer: each range's master, in order. fn(ud, first, last, host, port)
 * per range (host "" when Redis gave none: the node that was asked). Returns the number of
 * ranges, or -1 when rep is not a CLUSTER SLOTS answer (fn may have run for the ranges
 * before the bad one). */
typedef void (*redis_slots_fn)(void *ud, unsigned first, unsigned last, const char *host, int port);
int redis_slots_parse(const redisReply *rep, redis_slots_fn fn, void *ud);

/* A push on a subscribed connection: 1 "smessage" (chan, data), 2 "ssubscribe" (chan),
 * 3 "sunsubscribe" (chan); 0 anything else (data NULL, len 0 then). */
enum { PUSH_NONE, PUSH_MESSAGE, PUSH_SUBSCRIBED, PUSH_UNSUBSCRIBED };
int redis_push_parse(const redisReply *rep, const char **chan, size_t *clen, const char **data,
                     size_t *dlen);

/* ------------------------------------------------------------------ the link's shard part */

typedef struct redis_shard redis_shard;

/* Start: the slot map is read from the link's Redis (CLUSTER SLOTS; a Redis without cluster
 * mode owns every slot). 0 or -FERRY_ENOMEM. */
int redis_shard_new(ferry_redis *r, redis_shard **out);
/* Close every handle; done(r) runs once, from the last close callback. Commands still
 * waiting get their callback with reply NULL before this returns. */
void redis_shard_close(redis_shard *s, void (*done)(ferry_redis *r));
void redis_shard_free(redis_shard *s);

/* Subscribe to (want 1) or forget (want 0) a sharded channel, on the node owning its slot,
 * again after that node comes back or the slot moves. */
void redis_shard_want(redis_shard *s, const char *name, size_t len, int want);

/* Send the command argv (argv[1] is its key or sharded channel: the command goes to the node
 * owning that slot, following MOVED and ASK). cb (may be NULL) runs exactly once, later, on
 * the loop, with its ac argument NULL and the reply (NULL: no reply: the node went away,
 * the link closed, too many redirections). Returns 0, -FERRY_ECLOSED (the slot's node is
 * not reachable now: cb is not called), -FERRY_ELIMIT (too many bytes waiting) or
 * -FERRY_ENOMEM. */
int redis_shard_command(redis_shard *s, int argc, const char **argv, const size_t *lens,
                        redisCallbackFn *cb, void *privdata);

void redis_shard_stats(const redis_shard *s, ferry_redis_shard_stats *out);

/* redis.c, for redis_shard.c: a message on one of our channels; the seed's address. */
void redis_on_message(ferry_redis *r, const char *data, size_t len);
uv_loop_t *redis_loop(ferry_redis *r);
/* The link's Redis (the URL's host, resolved: "" until then), port and credentials. */
void redis_seed(const ferry_redis *r, const char **ip, int *port, const char **user,
                const char **password);

#endif
