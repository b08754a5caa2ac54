/* The relay of tools/ferry: Socket.IO clients on "/" join and leave rooms and publish events
 * to rooms they are in, within the allowlists of app_config; rooms hear who comes and goes
 * (presence); backends publish through relay_publish() (POST /api/publish). The protocol is
 * described in relay.h and docs/server.md.
 *
 * Everything a client sends is checked before anything happens, and every refusal answers the
 * client's acknowledgement with {ok:false, error:"..."} so that a client never waits. */
#include "relay.h"
#include "history.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NICK_MAX_CHARS 32
#define MEMBERS_MAX 256 /* members listed in a join answer; "count" gives the total */
#define MEMBERS_TIMEOUT_MS 1000 /* a cluster node's join answer waits this long for the others */

struct relay {
    ferry_server *srv;
    ferry_namespace *nsp;
    const app_config *cfg;
    history hist; /* recent publishes per room (--history) */
    int cluster;  /* a node of a cluster (--redis): history entries are shared */
};

/* Per-socket state, from the first connection callback until ferry releases it
 * (release_client()): with connection-state recovery, a socket that comes back keeps it. */
typedef struct pending_join pending_join;

typedef struct client {
    pending_join *joins; /* join answers waiting for the other nodes' members */
    /* Token buckets of publishes ([0]) and receipts ([1], so that a page acknowledging a
     * join's history cannot starve its own messages): publish_rate per second each, at most
     * publish_rate saved up. */
    double tokens[2];
    uint64_t refilled_ms[2];
    char name[]; /* the nickname (at most NICK_MAX_CHARS characters), allocated to its size */
} client;

/* A join answer waiting for the members of every node (on_join()). on_disconnect() detaches
 * it from its socket (the ack is freed with the socket); the fetch's callback frees it. */
struct pending_join {
    pending_join *prev, *next; /* in its client's joins */
    client *c;                 /* NULL once detached */
    ferry_ack *ack;            /* NULL once detached */
    cJSON *answer;             /* {ok, room, history?}: members and count are added */
};

/* ---------------------------------------------------------------- answers */

static void answer(ferry_ack *ack, cJSON *obj)
{
    if (ack != NULL) {
        cJSON *args = cJSON_CreateArray();
        cJSON_AddItemToArray(args, obj);
        ferry_ack_send(ack, args);
        cJSON_Delete(args);
    } else {
        cJSON_Delete(obj);
    }
}

static void refuse(ferry_ack *ack, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void refuse(ferry_ack *ack, const char *fmt, ...)
{
    /* Room names are at most 128 bytes and event names 256 (FERRY_NAME_MAX): a message with
     * one of them is never cut, so never cut inside a UTF-8 sequence. */
    char msg[FERRY_NAME_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 0);
    cJSON_AddStringToObject(o, "error", msg);
    answer(ack, o);
}

static cJSON *ok_object(void)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    return o;
}

/* {id, name} of a socket. */
static cJSON *who(ferry_socket *s)
{
    const client *c = ferry_socket_get_data(s);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", ferry_socket_id(s));
    cJSON_AddStringToObject(o, "name", c ? c->name : "");
    return o;
}

/* The string member key of the first argument, which must be an object; NULL if absent. */
static const char *arg_string(cJSON *args, const char *key, const char **why)
{
    cJSON *first = cJSON_GetArrayItem(args, 0);
    if (!cJSON_IsObject(first)) {
        *why = "the first argument must be an object {room, ...}";
        return NULL;
    }
    cJSON *v = cJSON_GetObjectItemCaseSensitive(first, key);
    if (!cJSON_IsString(v)) {
        *why = strcmp(key, "room") == 0 ? "'room' must be a string" : "'event' must be a string";
        return NULL;
    }
    return v->valuestring;
}

/* The valid room name of the first argument, or NULL after refusing the client's request. */
static const char *room_arg(cJSON *args, ferry_ack *ack)
{
    const char *why = NULL;
    const char *room = arg_string(args, "room", &why);
    if (room == NULL || (why = relay_check_room(room)) != NULL) {
        refuse(ack, "%s", why);
        return NULL;
    }
    return room;
}

/* Rooms the socket is in, besides its own id room. */
static size_t joined_rooms(ferry_socket *s)
{
    size_t n = ferry_socket_rooms(s, NULL, 0);
    return n > 0 ? n - 1 : 0;
}

static void presence(relay *r, ferry_socket *from, const char *room, const char *what)
{
    if (!r->cfg->presence)
        return;
    cJSON *args = cJSON_CreateArray();
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "room", room);
    cJSON_AddItemToObject(p, what, who(from));
    cJSON_AddItemToArray(args, p);
    /* Everyone in the room but the one who comes or goes. */
    ferry_bcast b;
    ferry_bcast_from(&b, from);
    ferry_bcast_to(&b, room);
    ferry_bcast_emit(&b, "presence", args);
    cJSON_Delete(args);
}

static int has_binary(const cJSON *c)
{
    if (ferry_binary_is(c))
        return 1;
    for (const cJSON *x = c != NULL && (cJSON_IsArray(c) || cJSON_IsObject(c)) ? c->child : NULL;
         x != NULL; x = x->next)
        if (has_binary(x))
            return 1;
    return 0;
}

/* On a cluster, every other node keeps the entry too (a server-side event, Socket.IO's
 * serverSideEmit): a client joining on any node gets the room's history, and a receipt sent
 * on any node finds the message's publisher. Fire and forget: a node that does not hear it
 * (Redis unreachable) lacks the entry. */
static void share(relay *r, const char *room, const char *id, const char *sender,
                  const char *json)
{
    if (!r->cluster)
        return;
    cJSON *args = cJSON_CreateArray();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(args, o);
    cJSON_AddStringToObject(o, "room", room);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "sender", sender != NULL ? sender : "");
    cJSON_AddStringToObject(o, "entry", json);
    ferry_cluster_server_emit(r->nsp, "relay:history", args);
    cJSON_Delete(args);
}

/* A history entry another node kept (share()). */
static void on_server_event(ferry_namespace *nsp, const char *from_node, const char *event,
                            const cJSON *args, void *ud)
{
    relay *r = ud;
    (void)nsp;
    (void)from_node;
    if (strcmp(event, "relay:history") != 0 || r->cfg->history == 0)
        return;
    const cJSON *o = cJSON_GetArrayItem(args, 0);
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(o, "room");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *sender = cJSON_GetObjectItemCaseSensitive(o, "sender");
    const cJSON *entry = cJSON_GetObjectItemCaseSensitive(o, "entry");
    if (!cJSON_IsString(room) || relay_check_room(room->valuestring) != NULL ||
        !cJSON_IsString(id) || id->valuestring[0] == '\0' ||
        strlen(id->valuestring) >= HISTORY_ID_MAX || !cJSON_IsString(sender) ||
        strlen(sender->valuestring) > 20 || !cJSON_IsString(entry) ||
        history_find(&r->hist, room->valuestring, id->valuestring) != NULL)
        return;
    history_add(&r->hist, room->valuestring, id->valuestring, sender->valuestring,
                entry->valuestring, strlen(entry->valuestring));
}

/* If ev is one of --history-events: give the publish an id and a time (added to meta, the
 * last element of out) and keep {id, ts, event, data, from} as the room's newest entry. id
 * gets the id ("" when not kept). */
static void keep(relay *r, const char *room, const char *ev, cJSON *out, const char *sender,
                 char id[HISTORY_ID_MAX])
{
    id[0] = '\0';
    if (r->cfg->history == 0 || !app_list_match(&r->cfg->history_events, ev))
        return;
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    double ts = (double)tv.tv_sec * 1000.0 + (double)(tv.tv_usec / 1000);
    history_next_id(&r->hist, id);
    cJSON *meta = cJSON_GetArrayItem(out, 1);
    cJSON_AddStringToObject(meta, "id", id);
    cJSON_AddNumberToObject(meta, "ts", ts);
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddStringToObject(entry, "id", id);
    cJSON_AddNumberToObject(entry, "ts", ts);
    cJSON_AddStringToObject(entry, "event", ev);
    /* Binary arguments are kept as base64 (the bytes form would print as its stand-in only);
     * the history's JSON parses back into binary arguments that are sent as attachments. */
    cJSON *data = cJSON_GetArrayItem(out, 0);
    if (has_binary(data))
        cJSON_AddItemToObject(entry, "data", ferry_json_dup(data, FERRY_JSON_BASE64));
    else
        cJSON_AddItemReferenceToObject(entry, "data", data);
    cJSON *from = cJSON_GetObjectItemCaseSensitive(meta, "from");
    if (from != NULL)
        cJSON_AddItemReferenceToObject(entry, "from", from);
    char *json = cJSON_PrintUnformatted(entry);
    cJSON_Delete(entry); /* references (or a copy of data): out keeps data and from */
    if (json != NULL && history_add(&r->hist, room, id, sender, json, strlen(json)) == 0)
        share(r, room, id, sender, json);
    cJSON_free(json);
}

/* ---------------------------------------------------------------- client events */

static void pending_detach(pending_join *p)
{
    if (p->c == NULL)
        return;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        p->c->joins = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    p->c = NULL;
    p->prev = p->next = NULL;
}

/* This node's members of room into the join answer o: members (at most MEMBERS_MAX) and count. */
static void local_members(relay *r, const char *room, cJSON *o)
{
    ferry_socket *members[MEMBERS_MAX];
    size_t total = ferry_namespace_sockets(r->nsp, room, members, MEMBERS_MAX);
    cJSON *list = cJSON_AddArrayToObject(o, "members");
    for (size_t i = 0; i < total && i < MEMBERS_MAX; i++)
        cJSON_AddItemToArray(list, who(members[i]));
    cJSON_AddNumberToObject(o, "count", (double)total);
}

/* Every node's members of the room (ferry_cluster_fetch_sockets): the join answer goes now. */
static void on_members(ferry_namespace *nsp, int status, const ferry_remote_socket *v, size_t n,
                       size_t answered, size_t expected, void *ud)
{
    (void)nsp;
    (void)answered;
    (void)expected;
    pending_join *p = ud;
    cJSON *o = p->answer;
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; i < n && i < MEMBERS_MAX; i++) {
        cJSON *m = cJSON_CreateObject();
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(v[i].data, "name");
        cJSON_AddStringToObject(m, "id", v[i].id);
        cJSON_AddStringToObject(m, "name", cJSON_IsString(name) ? name->valuestring : "");
        cJSON_AddItemToArray(list, m);
    }
    cJSON_AddItemToObject(o, "members", list);
    cJSON_AddNumberToObject(o, "count", (double)n);
    /* false: a node did not answer within MEMBERS_TIMEOUT_MS (or Redis is away): the list and
     * the count are those of the nodes that did. */
    cJSON_AddBoolToObject(o, "complete", status == 0);
    if (p->ack != NULL)
        answer(p->ack, o);
    else
        cJSON_Delete(o);
    pending_detach(p);
    free(p);
}

/* On a cluster, ask every node for the room's members; 1 when the answer o (taken, complete
 * but for the members) goes from on_members() (later, or inside the call when Redis is away),
 * 0 to answer with this node's members now. */
static int members_of_cluster(relay *r, ferry_socket *s, ferry_ack *ack, const char *room,
                              cJSON *o)
{
    client *c = ferry_socket_get_data(s);
    pending_join *p = c != NULL ? calloc(1, sizeof(*p)) : NULL;
    if (p == NULL)
        return 0;
    p->c = c;
    p->ack = ack;
    p->answer = o;
    p->next = c->joins;
    if (c->joins != NULL)
        c->joins->prev = p;
    c->joins = p;
    const char *rooms[1] = {room};
    if (ferry_cluster_fetch_sockets(r->nsp, rooms, 1, MEMBERS_TIMEOUT_MS, on_members, p) != 0) {
        pending_detach(p);
        free(p);
        return 0;
    }
    return 1;
}

static void on_join(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    relay *r = ud;
    const char *room = room_arg(args, ack);
    if (room == NULL)
        return;
    /* Another client's own room is its private channel: never joinable, on any node. Whether
     * an id is a socket of another node cannot be known without a round trip, so every name of
     * a socket id's form is refused but the client's own (docs/scaling.md "A socket's own
     * room"): sound across nodes and workers, and no walk or lookup per join. */
    if (ferry_is_socket_id(room) && strcmp(room, ferry_socket_id(s)) != 0) {
        refuse(ack,
               "joining room '%s' is not allowed: a name of 20 base64url characters is a socket "
               "id, the private room of one client",
               room);
        return;
    }
    if (!app_list_match(&r->cfg->allow_join, room)) {
        refuse(ack, "joining room '%s' is not allowed", room);
        return;
    }
    int fresh = !ferry_socket_in(s, room);
    if (fresh && joined_rooms(s) >= r->cfg->max_rooms) {
        refuse(ack, "a client may be in at most %u rooms", r->cfg->max_rooms);
        return;
    }
    int rc = ferry_socket_join(s, room);
    if (rc != 0) {
        refuse(ack, "cannot join: %s", ferry_strerror(rc));
        return;
    }
    if (fresh)
        presence(r, s, room, "joined");
    if (ack == NULL)
        return;
    /* {members: false}: neither the list nor the count, both a walk over the room: a crowd
     * joining one room at once would otherwise cost the square of its size (and a list of 256
     * members is about 12 KB per answer). */
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(args, 0), "members");
    cJSON *o = ok_object();
    cJSON_AddStringToObject(o, "room", room);
    if (!cJSON_IsFalse(want) && !r->cluster)
        local_members(r, room, o);
    if (r->cfg->history > 0) {
        /* Oldest first; every join answers with it, so that a client joining again after a
         * reconnect can fill what it missed (entries carry ids to drop what it already has). */
        cJSON *past = cJSON_AddArrayToObject(o, "history");
        for (const history_entry *e = history_first(&r->hist, room); e != NULL;
             e = history_entry_next(e)) {
            size_t len;
            const char *json = history_entry_json(e, &len);
            cJSON *item = cJSON_ParseWithLength(json, len);
            if (item != NULL)
                cJSON_AddItemToArray(past, item);
        }
    }
    /* On a cluster, the members of every node: the answer (complete but for them) goes from
     * on_members(), maybe inside the call. */
    if (!cJSON_IsFalse(want) && r->cluster && members_of_cluster(r, s, ack, room, o))
        return;
    if (!cJSON_IsFalse(want) && r->cluster)
        local_members(r, room, o);
    answer(ack, o);
}

static void on_leave(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    relay *r = ud;
    const char *room = room_arg(args, ack);
    if (room == NULL)
        return;
    if (!ferry_socket_in(s, room) || strcmp(room, ferry_socket_id(s)) == 0) {
        refuse(ack, "not in room '%s'", room);
        return;
    }
    ferry_socket_leave(s, room); /* room points into args, not into the room: still valid */
    presence(r, s, room, "left");
    cJSON *o = ok_object();
    cJSON_AddStringToObject(o, "room", room);
    answer(ack, o);
}

/* Take one token from the client's bucket (0: publishes, 1: receipts); 0 when it is empty. */
static int take_token(relay *r, client *c, int bucket)
{
    uint32_t rate = r->cfg->publish_rate;
    if (rate == 0)
        return 1;
    uint64_t now = uv_now(ferry_server_loop(r->srv));
    c->tokens[bucket] += (double)(now - c->refilled_ms[bucket]) * rate / 1000.0;
    if (c->tokens[bucket] > rate)
        c->tokens[bucket] = rate;
    c->refilled_ms[bucket] = now;
    if (c->tokens[bucket] < 1.0)
        return 0;
    c->tokens[bucket] -= 1.0;
    return 1;
}

static void on_publish(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    relay *r = ud;
    const char *why = NULL;
    const char *room = room_arg(args, ack);
    if (room == NULL)
        return;
    const char *ev = arg_string(args, "event", &why);
    if (ev == NULL || (why = relay_check_event(ev)) != NULL) {
        refuse(ack, "%s", why);
        return;
    }
    if (!app_list_match(&r->cfg->allow_publish, ev)) {
        refuse(ack, "publishing event '%s' is not allowed", ev);
        return;
    }
    if (!ferry_socket_in(s, room)) {
        refuse(ack, "not in room '%s': join it first", room);
        return;
    }
    client *c = ferry_socket_get_data(s);
    if (c != NULL && !take_token(r, c, 0)) {
        refuse(ack, "rate limit: at most %u publishes per second", r->cfg->publish_rate);
        return;
    }
    cJSON *first = cJSON_GetArrayItem(args, 0);
    cJSON *data = cJSON_DetachItemFromObjectCaseSensitive(first, "data");
    cJSON *out = cJSON_CreateArray();
    cJSON_AddItemToArray(out, data ? data : cJSON_CreateNull());
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "room", room);
    cJSON_AddItemToObject(meta, "from", who(s));
    cJSON_AddItemToArray(out, meta);
    char id[HISTORY_ID_MAX] = "";
    keep(r, room, ev, out, ferry_socket_id(s), id);
    ferry_bcast b;
    ferry_bcast_from(&b, s);
    ferry_bcast_to(&b, room);
    int rc = ferry_bcast_emit(&b, ev, out);
    cJSON_Delete(out);
    if (rc < 0) {
        refuse(ack, "cannot publish: %s", ferry_strerror(rc));
        return;
    }
    cJSON *o = ok_object();
    if (id[0] != '\0')
        cJSON_AddStringToObject(o, "id", id);
    answer(ack, o);
}

/* receipt {room, id}: the client got message id of room; its publisher hears of it. */
static void on_receipt(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    relay *r = ud;
    const char *why = NULL;
    const char *room = room_arg(args, ack);
    if (room == NULL)
        return;
    const char *id = arg_string(args, "id", &why);
    if (id == NULL) {
        refuse(ack, "'id' must be a string");
        return;
    }
    if (!ferry_socket_in(s, room)) {
        refuse(ack, "not in room '%s': join it first", room);
        return;
    }
    client *c = ferry_socket_get_data(s);
    if (c != NULL && !take_token(r, c, 1)) {
        refuse(ack, "rate limit: at most %u receipts per second", r->cfg->publish_rate);
        return;
    }
    const history_entry *e = history_find(&r->hist, room, id);
    if (e == NULL) {
        refuse(ack, "no message '%.64s' in the history of '%s'", id, room);
        return;
    }
    const char *sender = history_entry_sender(e);
    if (sender[0] != '\0' && strcmp(sender, ferry_socket_id(s)) != 0) {
        /* To the publisher's own room: with connection-state recovery on, a publisher that is
         * reconnecting gets it on its return. */
        cJSON *out = cJSON_CreateArray();
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "room", room);
        cJSON_AddStringToObject(p, "id", id);
        cJSON_AddItemToObject(p, "by", who(s));
        cJSON_AddItemToArray(out, p);
        ferry_bcast b;
        ferry_bcast_init(&b, r->nsp);
        ferry_bcast_to(&b, sender);
        ferry_bcast_emit(&b, "receipt", out);
        cJSON_Delete(out);
    }
    answer(ack, ok_object());
}

static void on_any(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    refuse(ack, "unknown event '%s': use join, leave, publish or receipt", event);
}

/* ---------------------------------------------------------------- connection life */

/* A nickname: 1..32 characters, no control characters. */
static const char *check_name(const cJSON *auth, const char **name)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(auth, "name");
    if (n == NULL) {
        *name = "anonymous";
        return NULL;
    }
    if (!cJSON_IsString(n))
        return "invalid name: it must be a string";
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)n->valuestring; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return "invalid name: control characters";
        if ((*p & 0xc0) != 0x80)
            chars++;
    }
    if (chars == 0 || chars > NICK_MAX_CHARS)
        return "invalid name: 1 to 32 characters";
    *name = n->valuestring;
    return NULL;
}

static void middleware(ferry_socket *s, void *ud)
{
    const char *name;
    ferry_middleware_next(s, check_name(ferry_socket_auth(s), &name), NULL);
}

static void on_disconnect(ferry_socket *s, ferry_reason reason, void *ud)
{
    relay *r = ud;
    /* Its acks are freed with it: join answers still waiting for the other nodes are dropped. */
    client *c = ferry_socket_get_data(s);
    while (c != NULL && c->joins != NULL) {
        c->joins->ack = NULL;
        pending_detach(c->joins);
    }
    /* The socket is still in its rooms here: tell each of them (own id room excluded). */
    const char *rooms[256];
    size_t n = ferry_socket_rooms(s, rooms, 256);
    for (size_t i = 1; i < n && i < 256; i++)
        presence(r, s, rooms[i], "left");
    /* Its client is ferry's now (ferry_namespace_keep_socket_data()): kept for a recovery,
     * released otherwise. */
}

/* What GET /api/sockets shows of a socket (cluster_api.c): its nickname. */
static cJSON *socket_info(ferry_socket *s, void *ud)
{
    (void)ud;
    const client *c = ferry_socket_get_data(s);
    cJSON *o = c != NULL ? cJSON_CreateObject() : NULL;
    if (o != NULL && cJSON_AddStringToObject(o, "name", c->name) == NULL) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

/* No socket will use this client any more (not recoverable, or its recovery window passed). */
static void release_client(ferry_namespace *nsp, void *data, void *ud)
{
    free(data);
}

static void on_connection(ferry_socket *s, void *ud)
{
    relay *r = ud;
    /* A recovered socket has its client again: same nickname, same token buckets. */
    if (ferry_socket_get_data(s) == NULL) {
        const char *name = "anonymous";
        check_name(ferry_socket_auth(s), &name);
        size_t len = strnlen(name, NICK_MAX_CHARS * 4); /* the bound it always had */
        client *c = calloc(1, sizeof(*c) + len + 1);
        if (c == NULL) {
            ferry_socket_disconnect(s, 1);
            return;
        }
        memcpy(c->name, name, len);
        c->name[len] = '\0';
        c->tokens[0] = c->tokens[1] = r->cfg->publish_rate;
        c->refilled_ms[0] = c->refilled_ms[1] = uv_now(ferry_server_loop(r->srv));
        ferry_socket_set_data(s, c);
    }
    ferry_socket_on_disconnect(s, on_disconnect, r);
    ferry_socket_on_any(s, on_any, r);
    /* Back through connection-state recovery, with its old id and rooms: they heard it leave
     * when its connection dropped, so they hear it come back. */
    const char *rooms[256];
    size_t n = ferry_socket_recovered(s) ? ferry_socket_rooms(s, rooms, 256) : 0;
    for (size_t i = 1; i < n && i < 256; i++)
        presence(r, s, rooms[i], "joined");
}

int relay_new(ferry_server *srv, const app_config *cfg, relay **out)
{
    relay *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -FERRY_ENOMEM;
    r->srv = srv;
    r->cfg = cfg;
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    history_init(&r->hist, cfg->history, cfg->history_bytes,
                 (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000);
    r->nsp = ferry_of(srv, "/");
    if (cfg->redis_url != NULL && r->nsp != NULL) {
        /* A tag of 5 random base-36 characters in this node's history ids (history.h). */
        uint8_t rnd[5];
        char tag[6] = "00000";
        if (uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL) == 0)
            for (size_t i = 0; i < sizeof(rnd); i++)
                tag[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[rnd[i] % 36];
        history_set_tag(&r->hist, tag);
        r->cluster = 1;
        ferry_namespace_on_server_event(r->nsp, on_server_event, r);
    }
    int rc = r->nsp ? 0 : -FERRY_ENOMEM;
    if (rc == 0)
        rc = ferry_namespace_use(r->nsp, middleware, r);
    if (rc == 0)
        rc = ferry_namespace_on(r->nsp, "join", on_join, r);
    if (rc == 0)
        rc = ferry_namespace_on(r->nsp, "leave", on_leave, r);
    if (rc == 0)
        rc = ferry_namespace_on(r->nsp, "publish", on_publish, r);
    if (rc == 0)
        rc = ferry_namespace_on(r->nsp, "receipt", on_receipt, r);
    if (rc != 0) {
        free(r);
        return rc;
    }
    /* The policy at its bound; the server's max_session_queue_bytes is set above it (main.c). */
    rc = ferry_namespace_set_backpressure(r->nsp, (ferry_backpressure)cfg->backpressure,
                                          cfg->max_queue_bytes);
    if (rc != 0) {
        free(r);
        return rc;
    }
    ferry_namespace_keep_socket_data(r->nsp, release_client, NULL);
    ferry_namespace_set_socket_info(r->nsp, socket_info, NULL);
    ferry_namespace_on_connection(r->nsp, on_connection, r);
    *out = r;
    return 0;
}

int relay_publish(relay *r, const char *room, const char *event, const cJSON *data, const char *key,
                  int volatile_)
{
    cJSON *out = cJSON_CreateArray();
    cJSON_AddItemToArray(out, ferry_json_dup(data, 0));
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "room", room);
    cJSON_AddItemToArray(out, meta);
    char id[HISTORY_ID_MAX];
    keep(r, room, event, out, NULL, id);
    ferry_bcast b;
    ferry_bcast_init(&b, r->nsp);
    ferry_bcast_to(&b, room);
    if (volatile_)
        ferry_bcast_volatile(&b);
    int rc = key != NULL ? ferry_bcast_keyed(&b, key) : 0;
    if (rc == 0)
        rc = ferry_bcast_emit(&b, event, out);
    cJSON_Delete(out);
    return rc;
}

void relay_free(relay *r)
{
    if (r != NULL)
        history_free(&r->hist);
    free(r);
}
