/* Queries and commands across nodes (ferry.h "across nodes", docs/scaling.md): fetch, join,
 * leave and disconnect the sockets of some rooms on every node, and server-side events. This
 * node acts on its own sockets here; the adapter (adapter/redis_query.c) carries the same
 * command, as JSON, to the other nodes, whose host->command (sio_cluster_command) runs it.
 *
 * Commands: {"op":"fetch"|"join"|"leave"|"disc"|"emit", "rooms":[...], "room":..,
 * "close":bool, "event":.., "args":[...]}; a fetch's answer: {"node":..,"sockets":[{"id":..,
 * "rooms":[...],"data":..}]}. */
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "socket/internal.h"

#define FETCH_MAX_ROOMS 64 /* rooms a fetch or command selects by */

void ferry_namespace_on_server_event(ferry_namespace *nsp, ferry_server_event_cb cb, void *ud)
{
    nsp->server_event = cb;
    nsp->server_event_ud = ud;
}

void ferry_namespace_set_socket_info(ferry_namespace *nsp, ferry_socket_info_cb cb, void *ud)
{
    nsp->info = cb;
    nsp->info_ud = ud;
}

static const char *node_of(const ferry_namespace *nsp)
{
    const ferry_adapter_ops *o = nsp->adapter->ops;
    const char *id = o->node_id != NULL ? o->node_id(nsp->adapter) : NULL;
    return id != NULL ? id : "";
}

/* The connected sockets of nsp in any of rooms (n 0: all), each retained, into a new array. */
static ferry_socket **select_sockets(ferry_namespace *nsp, const char *const *rooms, size_t n,
                                     size_t *count)
{
    ferry_socket **out = ferry_mem_calloc(nsp->nsockets ? nsp->nsockets : 1, sizeof(*out));
    size_t k = 0;
    if (out == NULL)
        return NULL;
    ferry_list *it;
    ferry_list_foreach(it, &nsp->sockets)
    {
        ferry_socket *s = ferry_list_entry(it, ferry_socket, nsp_link);
        int in = n == 0;
        for (size_t i = 0; !in && i < n; i++)
            in = ferry_socket_in(s, rooms[i]);
        if (in && sio_socket_live(s) && k < nsp->nsockets) {
            sio_socket_retain(s);
            out[k++] = s;
        }
    }
    *count = k;
    return out;
}

static void release_all(ferry_socket **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sio_socket_release(v[i]);
    ferry_mem_free(v);
}

static int rooms_ok(const char *const *rooms, size_t n)
{
    if (n > FETCH_MAX_ROOMS || (n > 0 && rooms == NULL))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!sio_valid_name(rooms[i]))
            return 0;
    return 1;
}

/* rooms from a command's JSON, into v (borrowing its strings): the count, or -1. */
static int rooms_of(const cJSON *cmd, const char **v)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(cmd, "rooms");
    int n = 0;
    if (a == NULL)
        return 0;
    if (!cJSON_IsArray(a))
        return -1;
    const cJSON *r;
    cJSON_ArrayForEach(r, a)
    {
        if (!cJSON_IsString(r) || n >= FETCH_MAX_ROOMS || !sio_valid_name(r->valuestring))
            return -1;
        v[n++] = r->valuestring;
    }
    return n;
}

/* A new command object: {"op":op,"rooms":[rooms]}, or NULL. */
static cJSON *command_new(const char *op, const char *const *rooms, size_t n)
{
    cJSON *c = cJSON_CreateObject();
    cJSON *a = cJSON_CreateArray();
    int ok = c != NULL && a != NULL && cJSON_AddStringToObject(c, "op", op) != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = cJSON_AddItemToArray(a, cJSON_CreateString(rooms[i]));
    if (ok) {
        cJSON_AddItemToObject(c, "rooms", a);
        return c;
    }
    cJSON_Delete(a);
    cJSON_Delete(c);
    return NULL;
}

/* Send cmd to the other nodes (taking it); 0, or -FERRY_ECLOSED / -FERRY_ENOMEM. */
static int send_others(ferry_namespace *nsp, cJSON *cmd, uint32_t timeout_ms,
                       ferry_adapter_answers_cb cb, void *ud)
{
    const ferry_adapter_ops *o = nsp->adapter->ops;
    int rc = cmd == NULL ? -FERRY_ENOMEM
             : o->cluster_send != NULL
                 ? o->cluster_send(nsp->adapter, cmd, timeout_ms, cb, ud)
                 : (cb != NULL ? -FERRY_EUNSUPPORTED : 0);
    cJSON_Delete(cmd);
    return rc;
}

/* ------------------------------------------------------------------ join, leave, disconnect */

static void act(ferry_namespace *nsp, const char *op, const char *const *rooms, size_t n,
                const char *room, int close_session)
{
    size_t k;
    ferry_socket **v = select_sockets(nsp, rooms, n, &k);
    if (v == NULL) {
        FERRY_LOG(FERRY_LOG_ERROR, "socket", NULL, "out of memory: %s across nodes not done", op);
        return;
    }
    for (size_t i = 0; i < k; i++) {
        if (!sio_socket_live(v[i]))
            continue;
        if (strcmp(op, "join") == 0)
            ferry_socket_join(v[i], room);
        else if (strcmp(op, "leave") == 0)
            ferry_socket_leave(v[i], room);
        else
            ferry_socket_disconnect(v[i], close_session);
    }
    release_all(v, k);
}

static int command_all(ferry_namespace *nsp, const char *op, const char *const *rooms, size_t n,
                       const char *room, int close_session)
{
    if (nsp == NULL || !rooms_ok(rooms, n) || (room != NULL && !sio_valid_name(room)))
        return -FERRY_EINVAL;
    act(nsp, op, rooms, n, room, close_session);
    cJSON *cmd = command_new(op, rooms, n);
    if (cmd != NULL && ((room != NULL && cJSON_AddStringToObject(cmd, "room", room) == NULL) ||
                        cJSON_AddBoolToObject(cmd, "close", close_session) == NULL)) {
        cJSON_Delete(cmd);
        cmd = NULL;
    }
    return send_others(nsp, cmd, 0, NULL, NULL);
}

int ferry_cluster_sockets_join(ferry_namespace *nsp, const char *const *rooms, size_t nrooms,
                               const char *room)
{
    return room == NULL ? -FERRY_EINVAL : command_all(nsp, "join", rooms, nrooms, room, 0);
}

int ferry_cluster_sockets_leave(ferry_namespace *nsp, const char *const *rooms, size_t nrooms,
                                const char *room)
{
    return room == NULL ? -FERRY_EINVAL : command_all(nsp, "leave", rooms, nrooms, room, 0);
}

int ferry_cluster_disconnect_sockets(ferry_namespace *nsp, const char *const *rooms,
                                     size_t nrooms, int close_session)
{
    return command_all(nsp, "disc", rooms, nrooms, NULL, close_session != 0);
}

int ferry_cluster_server_emit(ferry_namespace *nsp, const char *event, const cJSON *args)
{
    if (nsp == NULL || !sio_valid_name(event) || (args != NULL && !cJSON_IsArray(args)))
        return -FERRY_EINVAL;
    if (nsp->adapter->ops->cluster_send == NULL)
        return -FERRY_EUNSUPPORTED;
    cJSON *cmd = command_new("emit", NULL, 0);
    cJSON *a = args != NULL ? cJSON_Duplicate(args, 1) : cJSON_CreateArray();
    if (cmd == NULL || a == NULL || cJSON_AddStringToObject(cmd, "event", event) == NULL ||
        cJSON_AddStringToObject(cmd, "from", node_of(nsp)) == NULL) {
        cJSON_Delete(a);
        cJSON_Delete(cmd);
        return -FERRY_ENOMEM;
    }
    cJSON_AddItemToObject(cmd, "args", a);
    return send_others(nsp, cmd, 0, NULL, NULL);
}

/* ------------------------------------------------------------------ fetch */

/* {"id":..,"rooms":[...],"data":..} of s, or NULL. */
static cJSON *describe(ferry_namespace *nsp, ferry_socket *s)
{
    const char *rooms[SIO_MAX_ROOMS_PER_SOCKET];
    size_t n = ferry_socket_rooms(s, rooms, SIO_MAX_ROOMS_PER_SOCKET);
    if (n > SIO_MAX_ROOMS_PER_SOCKET)
        n = SIO_MAX_ROOMS_PER_SOCKET;
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_CreateArray();
    int ok = o != NULL && a != NULL && cJSON_AddStringToObject(o, "id", s->id) != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = cJSON_AddItemToArray(a, cJSON_CreateString(rooms[i]));
    if (ok) {
        cJSON_AddItemToObject(o, "rooms", a);
        a = NULL;
        cJSON *d = nsp->info != NULL ? nsp->info(s, nsp->info_ud) : NULL;
        if (d != NULL)
            cJSON_AddItemToObject(o, "data", d);
    } else {
        cJSON_Delete(o);
        o = NULL;
    }
    cJSON_Delete(a);
    return o;
}

/* {"node":..,"sockets":[...]} of this node's sockets in rooms, or NULL. */
static cJSON *fetch_local(ferry_namespace *nsp, const char *const *rooms, size_t n)
{
    size_t k;
    ferry_socket **v = select_sockets(nsp, rooms, n, &k);
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_CreateArray();
    int ok = v != NULL && o != NULL && a != NULL &&
             cJSON_AddStringToObject(o, "node", node_of(nsp)) != NULL;
    for (size_t i = 0; ok && i < k; i++)
        ok = cJSON_AddItemToArray(a, describe(nsp, v[i]));
    if (v != NULL)
        release_all(v, k);
    if (!ok) {
        cJSON_Delete(a);
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToObject(o, "sockets", a);
    return o;
}

typedef struct fetch_job {
    ferry_namespace *nsp;
    ferry_fetch_cb cb;
    void *ud;
    cJSON *mine; /* this node's answer */
} fetch_job;

static size_t count_sockets(const cJSON *answer)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(answer, "sockets");
    return cJSON_IsArray(a) ? (size_t)cJSON_GetArraySize(a) : 0;
}

/* Flatten the answers (this node's first) into ferry_remote_socket and call the user. */
static void fetch_done(fetch_job *j, int status, const cJSON *const *answers, size_t n,
                       size_t expected)
{
    size_t total = count_sockets(j->mine), maxrooms = 0;
    for (size_t i = 0; i < n; i++)
        total += count_sockets(answers[i]);
    ferry_remote_socket *out = ferry_mem_calloc(total ? total : 1, sizeof(*out));
    const char **names = NULL;
    size_t k = 0;
    if (out != NULL) {
        /* Rooms of every socket, in one array: counted first. */
        for (size_t i = 0; i <= n; i++) {
            const cJSON *ans = i == 0 ? j->mine : answers[i - 1], *s;
            cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(ans, "sockets"))
            maxrooms += (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(s, "rooms"));
        }
        names = ferry_mem_calloc(maxrooms ? maxrooms : 1, sizeof(*names));
    }
    if (out == NULL || names == NULL) {
        status = -FERRY_ENOMEM;
        total = 0;
    }
    size_t used = 0;
    for (size_t i = 0; total > 0 && i <= n; i++) {
        const cJSON *ans = i == 0 ? j->mine : answers[i - 1], *s;
        const cJSON *node = cJSON_GetObjectItemCaseSensitive(ans, "node");
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(ans, "sockets"))
        {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(s, "id"), *r;
            if (!cJSON_IsString(id) || k >= total)
                continue;
            ferry_remote_socket *x = &out[k++];
            x->id = id->valuestring;
            x->node = cJSON_IsString(node) ? node->valuestring : "";
            x->rooms = names + used;
            cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(s, "rooms"))
            if (cJSON_IsString(r) && used < maxrooms)
            {
                names[used++] = r->valuestring;
                x->nrooms++;
            }
            x->data = cJSON_GetObjectItemCaseSensitive(s, "data");
        }
    }
    j->cb(j->nsp, status, out, k, n, expected, j->ud);
    ferry_mem_free(names);
    ferry_mem_free(out);
    cJSON_Delete(j->mine);
    ferry_mem_free(j);
}

static void on_answers(void *ud, int status, const cJSON *const *answers, size_t n,
                       size_t expected)
{
    fetch_done(ud, status, answers, n, expected);
}

int ferry_cluster_fetch_sockets(ferry_namespace *nsp, const char *const *rooms, size_t nrooms,
                                uint32_t timeout_ms, ferry_fetch_cb cb, void *user_data)
{
    if (nsp == NULL || cb == NULL || !rooms_ok(rooms, nrooms))
        return -FERRY_EINVAL;
    fetch_job *j = ferry_mem_calloc(1, sizeof(*j));
    if (j == NULL || (j->mine = fetch_local(nsp, rooms, nrooms)) == NULL) {
        ferry_mem_free(j);
        return -FERRY_ENOMEM;
    }
    j->nsp = nsp;
    j->cb = cb;
    j->ud = user_data;
    if (nsp->adapter->ops->cluster_send == NULL) {
        fetch_done(j, 0, NULL, 0, 0); /* a single node: inside the call */
        return 0;
    }
    int rc = send_others(nsp, command_new("fetch", rooms, nrooms), timeout_ms, on_answers, j);
    if (rc != 0)
        fetch_done(j, rc, NULL, 0, 0); /* this node's sockets, and the reason */
    return 0;
}

/* ------------------------------------------------------------------ from another node */

cJSON *sio_cluster_command(void *ctx, const cJSON *cmd)
{
    ferry_namespace *nsp = ctx;
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(cmd, "op");
    const char *rooms[FETCH_MAX_ROOMS];
    int n = rooms_of(cmd, rooms);
    if (!cJSON_IsString(op) || n < 0)
        return NULL;
    const char *o = op->valuestring;
    if (strcmp(o, "fetch") == 0)
        return fetch_local(nsp, rooms, (size_t)n);
    if (strcmp(o, "join") == 0 || strcmp(o, "leave") == 0) {
        const cJSON *room = cJSON_GetObjectItemCaseSensitive(cmd, "room");
        if (cJSON_IsString(room) && sio_valid_name(room->valuestring))
            act(nsp, o, rooms, (size_t)n, room->valuestring, 0);
    } else if (strcmp(o, "disc") == 0) {
        act(nsp, o, rooms, (size_t)n, NULL,
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cmd, "close")));
    } else if (strcmp(o, "emit") == 0 && nsp->server_event != NULL) {
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(cmd, "event");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(cmd, "args");
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(cmd, "from");
        if (cJSON_IsString(ev) && sio_valid_name(ev->valuestring) && cJSON_IsArray(args))
            nsp->server_event(nsp, cJSON_IsString(from) ? from->valuestring : "", ev->valuestring,
                              args, nsp->server_event_ud);
    }
    return NULL;
}
