/* A chat server on ferry's Socket.IO API: the server of examples/chat written in C, as you
 * would write your own. It speaks what the page expects (the relay protocol of tools/ferry,
 * docs/server.md), kept to what a chat needs:
 *
 *   join    {room}               -> {ok, room, members:[{id,name}], count, history:[...]}
 *   leave   {room}               -> {ok, room}
 *   publish {room, event, data}  -> {ok, id}   event "message" (kept in the room's history)
 *                                              or "typing" (not kept); the others in the room
 *                                              get event(data, {room, from, id, ts})
 *   receipt {room, id}           -> {ok}       the author of message id gets receipt {room,
 *                                              id, by}
 *   presence {room, joined|left: {id, name}}   to the others in the room
 *
 * The nickname comes with the CONNECT auth payload (io({auth: {name}})), checked by a
 * middleware. Connection-state recovery is on: a client back within two minutes keeps its id
 * and rooms and gets what it missed. Each room keeps its last HISTORY messages while anyone is
 * in it. The page and ferry's browser client are served from the same port.
 *
 *   ferry-chat-server [--port N] [--static DIR] [--ping-interval MS] [--ping-timeout MS]
 *   (defaults: 8080, examples/chat, Socket.IO's 25000 and 20000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ferry.h>

#define HISTORY 50  /* messages kept per room */
#define NICK_MAX 32 /* characters of a nickname */

/* A room with its history ring; rooms live in one list while someone is in them. */
typedef struct message {
    char id[32];
    char author[32]; /* socket id */
    cJSON *entry;    /* {id, ts, event, data, from} */
} message;

typedef struct room {
    struct room *next;
    char name[129];
    message ring[HISTORY];
    unsigned first, count;
} room;

static ferry_namespace *nsp;
static room *rooms;
static unsigned long long next_id;
static unsigned long long started_ms;

static room *find_room(const char *name, int create)
{
    for (room *r = rooms; r != NULL; r = r->next)
        if (strcmp(r->name, name) == 0)
            return r;
    room *r = create ? calloc(1, sizeof(*r)) : NULL;
    if (r != NULL) {
        snprintf(r->name, sizeof(r->name), "%s", name);
        r->next = rooms;
        rooms = r;
    }
    return r;
}

static void free_room(room *r)
{
    for (room **p = &rooms; *p != NULL; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    for (unsigned i = 0; i < r->count; i++)
        cJSON_Delete(r->ring[(r->first + i) % HISTORY].entry);
    free(r);
}

/* Keep entry (taken) as the newest message of r, dropping the oldest when full. */
static void remember(room *r, const char *id, const char *author, cJSON *entry)
{
    message *m;
    if (r->count == HISTORY) {
        m = &r->ring[r->first];
        cJSON_Delete(m->entry);
        r->first = (r->first + 1) % HISTORY;
    } else {
        m = &r->ring[(r->first + r->count++) % HISTORY];
    }
    snprintf(m->id, sizeof(m->id), "%s", id);
    snprintf(m->author, sizeof(m->author), "%s", author);
    m->entry = entry;
}

/* ---------------------------------------------------------------- helpers */

/* Answer an acknowledgement with one object (taken). */
static void reply(ferry_ack *ack, cJSON *obj)
{
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, obj);
    if (ack != NULL)
        ferry_ack_send(ack, args);
    cJSON_Delete(args);
}

static void refuse(ferry_ack *ack, const char *error)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 0);
    cJSON_AddStringToObject(o, "error", error);
    reply(ack, o);
}

static cJSON *ok(void)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    return o;
}

/* {id, name} of a socket; the name is the socket's data (set on connection). */
static cJSON *who(ferry_socket *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", ferry_socket_id(s));
    cJSON_AddStringToObject(o, "name", ferry_socket_get_data(s) ? ferry_socket_get_data(s) : "");
    return o;
}

/* The string field key of the first argument, or NULL. */
static const char *field(cJSON *args, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(args, 0), key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A room name: 1..128 bytes, no control characters. */
static const char *room_of(cJSON *args, ferry_ack *ack)
{
    const char *name = field(args, "room");
    size_t n = name ? strlen(name) : 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20)
            n = 0;
    if (n == 0 || n > 128) {
        refuse(ack, "'room' must be a name of 1 to 128 characters");
        return NULL;
    }
    return name;
}

/* Tell the others in room that s joined or left ("joined" / "left"). */
static void presence(ferry_socket *s, const char *room_name, const char *what)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "room", room_name);
    cJSON_AddItemToObject(p, what, who(s));
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, p);
    ferry_bcast b;
    ferry_bcast_from(&b, s); /* everyone but s ... */
    ferry_bcast_to(&b, room_name); /* ... in the room */
    ferry_bcast_emit(&b, "presence", args);
    cJSON_Delete(args);
}

/* s is leaving room_name: the others hear it, and the history goes with the last one. */
static void leaving(ferry_socket *s, const char *room_name)
{
    presence(s, room_name, "left");
    if (ferry_namespace_sockets(nsp, room_name, NULL, 0) <= 1) {
        room *r = find_room(room_name, 0);
        if (r != NULL)
            free_room(r);
    }
}

/* ---------------------------------------------------------------- events */

static void on_join(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    const char *name = room_of(args, ack);
    if (name == NULL)
        return;
    if (ferry_namespace_socket(nsp, name) != NULL) { /* another client's own room */
        refuse(ack, "that room is private");
        return;
    }
    int fresh = !ferry_socket_in(s, name);
    if (fresh && ferry_socket_rooms(s, NULL, 0) > 16) {
        refuse(ack, "a client may be in at most 16 rooms");
        return;
    }
    if (ferry_socket_join(s, name) != 0) {
        refuse(ack, "cannot join");
        return;
    }
    if (fresh)
        presence(s, name, "joined");

    cJSON *o = ok();
    cJSON_AddStringToObject(o, "room", name);
    ferry_socket *members[256];
    size_t total = ferry_namespace_sockets(nsp, name, members, 256);
    cJSON *list = cJSON_AddArrayToObject(o, "members");
    for (size_t i = 0; i < total && i < 256; i++)
        cJSON_AddItemToArray(list, who(members[i]));
    cJSON_AddNumberToObject(o, "count", (double)total);
    cJSON *history = cJSON_AddArrayToObject(o, "history");
    room *r = find_room(name, 0);
    for (unsigned i = 0; r != NULL && i < r->count; i++)
        cJSON_AddItemToArray(history, ferry_json_dup(r->ring[(r->first + i) % HISTORY].entry, 0));
    reply(ack, o);
}

static void on_leave(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    const char *name = room_of(args, ack);
    if (name == NULL)
        return;
    if (!ferry_socket_in(s, name) || strcmp(name, ferry_socket_id(s)) == 0) {
        refuse(ack, "not in that room");
        return;
    }
    leaving(s, name);
    ferry_socket_leave(s, name);
    cJSON *o = ok();
    cJSON_AddStringToObject(o, "room", name);
    reply(ack, o);
}

static void on_publish(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    const char *name = room_of(args, ack);
    if (name == NULL)
        return;
    const char *ev = field(args, "event");
    int keep = ev && strcmp(ev, "message") == 0;
    if (!keep && !(ev && strcmp(ev, "typing") == 0)) {
        refuse(ack, "'event' must be message or typing");
        return;
    }
    if (!ferry_socket_in(s, name)) {
        refuse(ack, "not in that room: join it first");
        return;
    }
    /* event(data, {room, from, id, ts}) to the others in the room. */
    uv_timeval64_t now;
    uv_gettimeofday(&now);
    char id[32];
    snprintf(id, sizeof(id), "%llx-%llu", started_ms, ++next_id);
    cJSON *data = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(args, 0), "data");
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "room", name);
    cJSON_AddItemToObject(meta, "from", who(s));
    if (keep) {
        cJSON_AddStringToObject(meta, "id", id);
        cJSON_AddNumberToObject(meta, "ts", (double)now.tv_sec * 1000 + now.tv_usec / 1000);
    }
    cJSON *out = cJSON_CreateArray();
    cJSON_AddItemToArray(out, data ? ferry_json_dup(data, 0) : cJSON_CreateNull());
    cJSON_AddItemToArray(out, meta);
    ferry_bcast b;
    ferry_bcast_from(&b, s);
    ferry_bcast_to(&b, name);
    ferry_bcast_emit(&b, ev, out);

    cJSON *answer = ok();
    if (keep) {
        /* The history entry: {id, ts, event, data, from}. */
        room *r = find_room(name, 1);
        cJSON *entry = cJSON_CreateObject();
        cJSON_AddStringToObject(entry, "id", id);
        cJSON_AddItemToObject(entry, "ts", cJSON_Duplicate(cJSON_GetObjectItem(meta, "ts"), 1));
        cJSON_AddStringToObject(entry, "event", ev);
        cJSON_AddItemToObject(entry, "data", ferry_json_dup(cJSON_GetArrayItem(out, 0), 0));
        cJSON_AddItemToObject(entry, "from", who(s));
        if (r != NULL)
            remember(r, id, ferry_socket_id(s), entry);
        else
            cJSON_Delete(entry);
        cJSON_AddStringToObject(answer, "id", id);
    }
    cJSON_Delete(out);
    reply(ack, answer);
}

static void on_receipt(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    const char *name = room_of(args, ack);
    const char *id = field(args, "id");
    if (name == NULL)
        return;
    room *r = id && ferry_socket_in(s, name) ? find_room(name, 0) : NULL;
    for (unsigned i = 0; r != NULL && i < r->count; i++) {
        message *m = &r->ring[(r->first + i) % HISTORY];
        if (strcmp(m->id, id) != 0)
            continue;
        /* To the author's own room (its id): with recovery on, it gets it even if it is
         * reconnecting right now. */
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "room", name);
        cJSON_AddStringToObject(p, "id", id);
        cJSON_AddItemToObject(p, "by", who(s));
        cJSON *out = cJSON_CreateArray();
        cJSON_AddItemToArray(out, p);
        ferry_bcast b;
        ferry_bcast_init(&b, nsp);
        ferry_bcast_to(&b, m->author);
        if (strcmp(m->author, ferry_socket_id(s)) != 0)
            ferry_bcast_emit(&b, "receipt", out);
        cJSON_Delete(out);
        reply(ack, ok());
        return;
    }
    refuse(ack, "no such message in that room");
}

/* ---------------------------------------------------------------- connections */

/* Middleware: a nickname of 1 to 32 characters, or the client gets a connect_error. */
static void check_name(ferry_socket *s, void *ud)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(ferry_socket_auth(s), "name");
    size_t chars = 0;
    int control = 0;
    for (const char *p = cJSON_IsString(name) ? name->valuestring : ""; *p; p++) {
        unsigned char c = (unsigned char)*p;
        control |= c < 0x20 || c == 0x7f;
        chars += (c & 0xc0) != 0x80; /* UTF-8: count the first byte of each character */
    }
    int good = chars >= 1 && chars <= NICK_MAX && !control;
    ferry_middleware_next(s, good ? NULL : "invalid name: 1 to 32 characters", NULL);
}

static void on_disconnect(ferry_socket *s, ferry_reason reason, void *ud)
{
    /* Still in its rooms here; its own id room comes first. */
    const char *in[17];
    size_t n = ferry_socket_rooms(s, in, 17);
    for (size_t i = 1; i < n && i < 17; i++)
        leaving(s, in[i]);
    free(ferry_socket_get_data(s));
}

static void on_connection(ferry_socket *s, void *ud)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(ferry_socket_auth(s), "name");
    ferry_socket_set_data(s, strdup(name->valuestring)); /* the middleware checked it */
    ferry_socket_on_disconnect(s, on_disconnect, NULL);
    /* Back through recovery, with its old id and rooms: its rooms heard it leave, so they
     * hear it come back. */
    const char *in[17];
    size_t n = ferry_socket_recovered(s) ? ferry_socket_rooms(s, in, 17) : 0;
    for (size_t i = 1; i < n && i < 17; i++)
        presence(s, in[i], "joined");
}

/* ---------------------------------------------------------------- main */

static uv_signal_t sigterm, sigint;

/* SIGTERM or SIGINT: close every session, then uv_run returns (no handle left open). */
static void on_signal(uv_signal_t *sig, int signum)
{
    ferry_server_close(sig->data, NULL, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
}

int main(int argc, char **argv)
{
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.static_root = "examples/chat";
    cfg.transports = ferry_transport_all(); /* WebSocket, SSE, long- and short polling */
    cfg.recovery_ms = 120000;               /* connection-state recovery for two minutes */
    int port = 8080;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--static") == 0)
            cfg.static_root = argv[i + 1];
        else if (strcmp(argv[i], "--ping-interval") == 0)
            cfg.ping_interval_ms = (uint32_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--ping-timeout") == 0)
            cfg.ping_timeout_ms = (uint32_t)atoi(argv[i + 1]);
    }
    uv_timeval64_t now;
    uv_gettimeofday(&now);
    started_ms = (unsigned long long)now.tv_sec * 1000 + (unsigned long long)now.tv_usec / 1000;

    uv_loop_t *loop = uv_default_loop();
    ferry_server *srv;
    int rc = ferry_server_new(loop, &cfg, &srv);
    if (rc == 0)
        rc = ferry_server_serve_client(srv); /* /ferry/ferry.min.js for the page */
    nsp = rc == 0 ? ferry_of(srv, "/") : NULL;
    if (nsp != NULL) {
        ferry_namespace_use(nsp, check_name, NULL);
        ferry_namespace_on_connection(nsp, on_connection, NULL);
        ferry_namespace_on(nsp, "join", on_join, NULL);
        ferry_namespace_on(nsp, "leave", on_leave, NULL);
        ferry_namespace_on(nsp, "publish", on_publish, NULL);
        ferry_namespace_on(nsp, "receipt", on_receipt, NULL);
        rc = ferry_server_listen(srv, "127.0.0.1", port);
    }
    if (rc != 0 || nsp == NULL) {
        fprintf(stderr, "chat-server: %s\n", ferry_strerror(rc != 0 ? rc : -FERRY_ENOMEM));
        return 1;
    }
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    sigterm.data = sigint.data = srv;
    uv_signal_start_oneshot(&sigterm, on_signal, SIGTERM);
    uv_signal_start_oneshot(&sigint, on_signal, SIGINT);
    printf("chat-server: listening on http://127.0.0.1:%d/ (page from %s)\n",
           ferry_server_port(srv), cfg.static_root);
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    while (rooms != NULL)
        free_room(rooms);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
