/* The relay: what clients of the standalone server may do over Socket.IO (join and leave
 * rooms, publish events to rooms they are in), checked against the allowlists of app_config,
 * plus presence (who is in a room) and delivery of HTTP publishes.
 *
 * Client → server events (all take an acknowledgement callback, answered with
 * {ok:true,...} or {ok:false,error:"..."}):
 *   join    {room}                 ack {ok, room, members:[{id,name}], count, history:[...]}
 *                                  (every node's members on a cluster, complete: bool)
 *   leave   {room}                 ack {ok, room}
 *   publish {room, event, data}    ack {ok, id?}; the room (except the sender) gets
 *                                  event(data, meta); events of --history-events get an id
 *                                  and are kept in the room's bounded history (history.h)
 *   receipt {room, id}             ack {ok}; the publisher of message id gets receipt
 * Server → client:
 *   <event>   (data, {room, from:{id,name}, id?, ts?} or {room, id?, ts?} for HTTP publishes)
 *   presence  {room, joined:{id,name}} or {room, left:{id,name}}
 *   receipt   {room, id, by:{id,name}}
 * A client names itself with the CONNECT auth payload {name:"..."}. */
#ifndef FERRY_TOOL_RELAY_H
#define FERRY_TOOL_RELAY_H

#include <cjson/cJSON.h>
#include <ferry.h>

#include "config.h"

typedef struct relay relay;

/* Install the relay on srv's main namespace. cfg is borrowed and must outlive the relay.
 * Returns 0 or a negative ferry error. */
int relay_new(ferry_server *srv, const app_config *cfg, relay **out);

/* Deliver event(data, {room}) to every socket in room. data is borrowed. key (NULL: none) is
 * the publish's key for --backpressure latest; volatile_: dropped for clients that are behind.
 * Returns the number of sockets it was queued for, or a negative ferry error. */
int relay_publish(relay *r, const char *room, const char *event, const cJSON *data,
                  const char *key, int volatile_);

/* Free the relay (after the server has closed). */
void relay_free(relay *r);

/* Room and event names a client or publisher may use: 1..128 bytes of UTF-8 without control
 * characters; events also not one of Socket.IO's reserved names. NULL when valid, else the
 * reason. */
const char *relay_check_room(const char *room);
const char *relay_check_event(const char *event);

#endif
