/* POST /api/publish: a backend delivers {room, event, data} to every client in room.
 * Optional: "key" (a string of 1 to 256 bytes: under --backpressure latest a client that is
 * behind gets only the latest publish of each key) and "volatile" (true: dropped for a client
 * that is behind).
 *
 *   Authorization: Bearer <token>    else 401 (403 when no token is configured at all)
 *   body: one JSON object            else 400 with {"error":"...","message":"..."}
 *   200 {"ok":true,"recipients":N}   queued for the N sockets in the room (maybe 0)
 *
 * The token comparison takes the same time whatever the guess, so it leaks nothing. */
#include "publish.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "relay.h"

static void reply_error(ferry_http_req *req, int status, const char *code, const char *msg)
{
    char body[512];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 0);
    cJSON_AddStringToObject(o, "error", code);
    cJSON_AddStringToObject(o, "message", msg);
    int n = 0;
    if (!cJSON_PrintPreallocated(o, body, sizeof(body), 0)) {
        /* code is one of this file's short constants; checked all the same (never a length
         * past what was written). */
        n = snprintf(body, sizeof(body), "{\"ok\":false,\"error\":\"%s\"}", code);
        if (n < 0 || (size_t)n >= sizeof(body))
            n = snprintf(body, sizeof(body), "{\"ok\":false}");
    } else {
        n = (int)strlen(body);
    }
    cJSON_Delete(o);
    ferry_http_reply(req, status, "application/json", body, (size_t)n);
}

int app_token_equal(const char *given, const char *token)
{
    if (given == NULL)
        return 0;
    size_t glen = strlen(given), tlen = strlen(token);
    /* Compare over the token's length whatever the guess's length. */
    int same = CRYPTO_memcmp(given, token, glen < tlen ? glen : tlen) == 0;
    return same && glen == tlen;
}

int app_bearer_ok(const char *auth, const char *token)
{
    static const char scheme[] = "Bearer ";
    if (auth == NULL || strncasecmp(auth, scheme, sizeof(scheme) - 1) != 0)
        return 0;
    return app_token_equal(auth + sizeof(scheme) - 1, token);
}

static void on_publish(ferry_http_req *req, void *ud)
{
    publish_ctx *c = ud;
    if (c->cfg->publish_token == NULL) {
        reply_error(req, 403, "disabled",
                    "publishing over HTTP is off: start ferry with --publish-token");
        return;
    }
    if (!app_bearer_ok(ferry_http_req_header(req, "authorization"), c->cfg->publish_token)) {
        reply_error(req, 401, "unauthorized", "missing or wrong 'Authorization: Bearer' token");
        return;
    }
    size_t len;
    const char *body = ferry_http_req_body(req, &len);
    cJSON *j = len > 0 ? cJSON_ParseWithLength(body, len) : NULL;
    if (j == NULL) {
        reply_error(req, 400, "bad_json", "the body must be a JSON object {room, event, data}");
        return;
    }
    const char *why = NULL, *code = "bad_field";
    cJSON *room = cJSON_GetObjectItemCaseSensitive(j, "room");
    cJSON *event = cJSON_GetObjectItemCaseSensitive(j, "event");
    cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
    cJSON *key = cJSON_GetObjectItemCaseSensitive(j, "key");
    cJSON *vol = cJSON_GetObjectItemCaseSensitive(j, "volatile");
    if (!cJSON_IsObject(j)) {
        code = "bad_json";
        why = "the body must be a JSON object {room, event, data}";
    } else if (room == NULL || event == NULL || data == NULL) {
        code = "missing_field";
        why = room == NULL    ? "'room' is missing"
              : event == NULL ? "'event' is missing"
                              : "'data' is missing";
    } else if (!cJSON_IsString(room)) {
        why = "'room' must be a string";
    } else if (!cJSON_IsString(event)) {
        why = "'event' must be a string";
    } else if ((why = relay_check_room(room->valuestring)) != NULL) {
    } else if ((why = relay_check_event(event->valuestring)) != NULL) {
    } else if (key != NULL && (!cJSON_IsString(key) || key->valuestring[0] == '\0' ||
                               strlen(key->valuestring) > FERRY_NAME_MAX)) {
        why = "'key' must be a string of 1 to 256 bytes";
    } else if (vol != NULL && !cJSON_IsBool(vol)) {
        why = "'volatile' must be true or false";
    }
    if (why != NULL) {
        reply_error(req, 400, code, why);
        cJSON_Delete(j);
        return;
    }
    int rc = relay_publish(c->relay, room->valuestring, event->valuestring, data,
                           key != NULL ? key->valuestring : NULL, cJSON_IsTrue(vol));
    cJSON_Delete(j);
    if (rc < 0) {
        /* -FERRY_EINVAL: data holds a binary argument whose base64 is not base64. */
        reply_error(req, rc == -FERRY_ETOOBIG ? 413 : rc == -FERRY_EINVAL ? 400 : 500, "not_sent",
                    ferry_strerror(rc));
        return;
    }
    char ok[64];
    int n = snprintf(ok, sizeof(ok), "{\"ok\":true,\"recipients\":%d}", rc);
    ferry_http_reply(req, 200, "application/json", ok, n > 0 && (size_t)n < sizeof(ok) ? (size_t)n : 0);
}

int publish_install(ferry_server *srv, publish_ctx *ctx)
{
    return ferry_server_route(srv, "POST", "/api/publish", on_publish, ctx);
}
