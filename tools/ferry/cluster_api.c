/* The cluster's sockets over HTTP (issue 18, docs/scaling.md "Queries and commands across
 * nodes"), for backends, with the --publish-token of POST /api/publish:
 *
 *   GET  /api/sockets[?room=R][&timeout=MS]   every node's sockets (in room R), within MS
 *        (default 2000, at most 30000): 200 {"ok":true,"complete":bool,"nodesAnswered":n,
 *        "nodesExpected":m,"sockets":[{"id","node","rooms":[...],"data":{"name"}}]}
 *        (complete false: a node did not answer in time; the list has the others')
 *   POST /api/sockets/join        {"rooms":[...], "room":"x"}   sockets in rooms join x
 *   POST /api/sockets/leave       {"rooms":[...], "room":"x"}   ... leave x
 *   POST /api/sockets/disconnect  {"rooms":[...]}               ... are disconnected
 *        200 {"ok":true}; 502 {"ok":false,"error":"redis_unreachable"} when this node acted
 *        and the others could not be told.
 * Errors as POST /api/publish: 401/403 for the token, 400 with a code for a bad request. */
#include "cluster_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "publish.h"

#define MAX_ROOMS 64

static void reply_json(ferry_http_req *req, int status, cJSON *o)
{
    char *text = o != NULL ? cJSON_PrintUnformatted(o) : NULL;
    if (text != NULL)
        ferry_http_reply(req, status, "application/json", text, strlen(text));
    else
        ferry_http_reply(req, 500, "application/json", "{\"ok\":false,\"error\":\"nomem\"}", 29);
    cJSON_free(text);
    cJSON_Delete(o);
}

static void reply_error(ferry_http_req *req, int status, const char *code, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 0);
    cJSON_AddStringToObject(o, "error", code);
    cJSON_AddStringToObject(o, "message", msg);
    reply_json(req, status, o);
}

static int authorized(ferry_http_req *req, const cluster_api_ctx *c)
{
    if (c->cfg->publish_token == NULL) {
        reply_error(req, 403, "disabled", "the HTTP API is off: start ferry with --publish-token");
        return 0;
    }
    if (!app_bearer_ok(ferry_http_req_header(req, "authorization"), c->cfg->publish_token)) {
        reply_error(req, 401, "unauthorized", "missing or wrong 'Authorization: Bearer' token");
        return 0;
    }
    return 1;
}

static void on_fetched(ferry_namespace *nsp, int status, const ferry_remote_socket *v, size_t n,
                       size_t answered, size_t expected, void *ud)
{
    (void)nsp;
    ferry_http_req *req = ud;
    cJSON *o = cJSON_CreateObject(), *a = cJSON_CreateArray();
    cJSON_AddBoolToObject(o, "ok", 1);
    cJSON_AddBoolToObject(o, "complete", status == 0);
    cJSON_AddNumberToObject(o, "nodesAnswered", (double)answered);
    cJSON_AddNumberToObject(o, "nodesExpected", (double)expected);
    if (status != 0 && status != -FERRY_ETIMEDOUT)
        cJSON_AddStringToObject(o, "error", ferry_strerror(status));
    for (size_t i = 0; i < n; i++) {
        cJSON *s = cJSON_CreateObject(), *r = cJSON_CreateArray();
        cJSON_AddStringToObject(s, "id", v[i].id);
        cJSON_AddStringToObject(s, "node", v[i].node);
        for (size_t k = 0; k < v[i].nrooms; k++)
            cJSON_AddItemToArray(r, cJSON_CreateString(v[i].rooms[k]));
        cJSON_AddItemToObject(s, "rooms", r);
        if (v[i].data != NULL)
            cJSON_AddItemToObject(s, "data", cJSON_Duplicate(v[i].data, 1));
        cJSON_AddItemToArray(a, s);
    }
    cJSON_AddItemToObject(o, "sockets", a);
    reply_json(req, 200, o);
}

static void on_sockets(ferry_http_req *req, void *ud)
{
    cluster_api_ctx *c = ud;
    if (!authorized(req, c))
        return;
    const char *room = ferry_http_req_query(req, "room");
    const char *t = ferry_http_req_query(req, "timeout");
    const char *why = room != NULL ? relay_check_room(room) : NULL;
    char *end = NULL;
    unsigned long ms = t != NULL ? strtoul(t, &end, 10) : 2000;
    if (why != NULL) {
        reply_error(req, 400, "bad_field", why);
        return;
    }
    if (t != NULL && (*t == '\0' || *end != '\0' || ms < 1 || ms > 30000)) {
        reply_error(req, 400, "bad_field", "'timeout' must be 1 to 30000 (ms)");
        return;
    }
    const char *rooms[1] = {room};
    int rc = ferry_cluster_fetch_sockets(ferry_of(c->srv, "/"), rooms, room != NULL ? 1 : 0,
                                         (uint32_t)ms, on_fetched, req);
    if (rc != 0)
        reply_error(req, 500, "not_done", ferry_strerror(rc));
}

static void on_command(ferry_http_req *req, const cluster_api_ctx *c, const char *op)
{
    if (!authorized(req, c))
        return;
    size_t len;
    const char *body = ferry_http_req_body(req, &len);
    cJSON *j = len > 0 ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(j, "rooms");
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(j, "room");
    const char *names[MAX_ROOMS];
    size_t n = 0;
    const char *why = NULL;
    if (!cJSON_IsObject(j)) {
        why = "the body must be a JSON object {rooms, room}";
    } else if (rooms != NULL && !cJSON_IsArray(rooms)) {
        why = "'rooms' must be an array of room names";
    } else if (strcmp(op, "disconnect") != 0 && !cJSON_IsString(room)) {
        why = "'room' must be a string";
    } else if (cJSON_IsString(room) && strcmp(op, "disconnect") != 0) {
        why = relay_check_room(room->valuestring);
    }
    const cJSON *r;
    cJSON_ArrayForEach(r, rooms)
    {
        if (why != NULL)
            break;
        if (!cJSON_IsString(r) || n == MAX_ROOMS)
            why = "'rooms' must be an array of at most 64 room names";
        else if ((why = relay_check_room(r->valuestring)) == NULL)
            names[n++] = r->valuestring;
    }
    if (why != NULL) {
        reply_error(req, 400, j == NULL || !cJSON_IsObject(j) ? "bad_json" : "bad_field", why);
        cJSON_Delete(j);
        return;
    }
    ferry_namespace *nsp = ferry_of(c->srv, "/");
    int rc = strcmp(op, "join") == 0    ? ferry_cluster_sockets_join(nsp, names, n, room->valuestring)
             : strcmp(op, "leave") == 0 ? ferry_cluster_sockets_leave(nsp, names, n, room->valuestring)
                                        : ferry_cluster_disconnect_sockets(nsp, names, n, 0);
    cJSON_Delete(j);
    if (rc == -FERRY_ECLOSED)
        reply_error(req, 502, "redis_unreachable",
                    "done on this node; the other nodes could not be told (Redis unreachable)");
    else if (rc != 0)
        reply_error(req, 500, "not_done", ferry_strerror(rc));
    else
        ferry_http_reply(req, 200, "application/json", "{\"ok\":true}", 11);
}

static void on_join(ferry_http_req *req, void *ud)
{
    on_command(req, ud, "join");
}

static void on_leave(ferry_http_req *req, void *ud)
{
    on_command(req, ud, "leave");
}

static void on_disconnect(ferry_http_req *req, void *ud)
{
    on_command(req, ud, "disconnect");
}

int cluster_api_install(ferry_server *srv, cluster_api_ctx *ctx)
{
    ctx->srv = srv;
    int rc = ferry_server_route(srv, "GET", "/api/sockets", on_sockets, ctx);
    if (rc == 0)
        rc = ferry_server_route(srv, "POST", "/api/sockets/join", on_join, ctx);
    if (rc == 0)
        rc = ferry_server_route(srv, "POST", "/api/sockets/leave", on_leave, ctx);
    if (rc == 0)
        rc = ferry_server_route(srv, "POST", "/api/sockets/disconnect", on_disconnect, ctx);
    return rc;
}
