/* Routing a complete request: an exact route, else the first matching prefix route; GET and HEAD fall back to the
 * static folder; anything else is 404. CORS headers and preflights for routes that ask. */
#include "http/conn.h"

#include <stdio.h>
#include <string.h>

#include "common/assert.h"
#include "common/mem.h"

static int route_matches(const ferry_route *r, const ferry_req *req)
{
    if ((r->flags & FERRY_ROUTE_UPGRADE) && !req->upgrade)
        return 0;
    /* A CORS route also takes the OPTIONS preflight for its path. */
    if (r->method != NULL && strcmp(r->method, req->method) != 0 &&
        !((r->flags & FERRY_ROUTE_CORS) && strcmp(req->method, "OPTIONS") == 0))
        return 0;
    size_t n = strlen(r->path);
    if (r->flags & FERRY_ROUTE_PREFIX)
        return strncmp(req->path, r->path, n) == 0;
    return strcmp(req->path, r->path) == 0;
}

static const char cors_credentials[] = "Access-Control-Allow-Credentials: true\r\n";

static const char *cors_origin(const ferry_req *req)
{
    const ferry_http *http = req->conn->http;
    if (!req->cors || http->cors_origins == NULL || !ferry_req_origin_allowed(req))
        return NULL;
    return ferry_req_header_get(req, "origin");
}

size_t ferry_http_cors_size(const ferry_req *req)
{
    const char *origin = cors_origin(req);
    if (origin == NULL)
        return 0;
    return sizeof("Access-Control-Allow-Origin: \r\nVary: Origin\r\n") - 1 + strlen(origin) +
           (req->conn->http->cors_credentials ? sizeof(cors_credentials) - 1 : 0);
}

void ferry_http_cors_append(const ferry_req *req, ferry_strbuf *sb)
{
    const char *origin = cors_origin(req);
    if (origin == NULL)
        return;
    ferry_strbuf_puts(sb, "Access-Control-Allow-Origin: ");
    ferry_strbuf_puts(sb, origin);
    ferry_strbuf_puts(sb, "\r\nVary: Origin\r\n");
    if (req->conn->http->cors_credentials)
        ferry_strbuf_puts(sb, cors_credentials);
}

/* Answer an OPTIONS preflight as the cors package does for Socket.IO: 204. The requested
 * headers are echoed whole (a long list used to be dropped, failing the preflight). */
static void preflight(ferry_req *req)
{
    static const char methods[] = "Access-Control-Allow-Methods: GET,HEAD,PUT,PATCH,POST,DELETE\r\n";
    static const char allow[] = "Access-Control-Allow-Headers: ";
    const char *want = ferry_req_header_get(req, "access-control-request-headers");
    size_t cap = sizeof(methods) + sizeof(allow) + (want ? strlen(want) : 0) + 2;
    char *extra = ferry_mem_alloc(cap);
    if (extra == NULL) {
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        return;
    }
    ferry_strbuf sb;
    ferry_strbuf_init(&sb, extra, cap);
    ferry_strbuf_puts(&sb, methods);
    if (want != NULL) {
        ferry_strbuf_puts(&sb, allow);
        ferry_strbuf_puts(&sb, want);
        ferry_strbuf_puts(&sb, "\r\n");
    }
    FERRY_ASSERT(ferry_strbuf_error(&sb) == 0); /* cap counts every piece */
    ferry_req_respond(req, 204, NULL, extra, NULL, 0);
    ferry_mem_free(extra);
}

/* An exact path beats a prefix (the engine's /socket.io/ owns everything below it, except
 * what an app routes exactly, such as /socket.io/socket.io.js); among equals the first added
 * wins. */
void ferry_http_route_head(ferry_http *http, ferry_req *req)
{
    ferry_route *found = NULL;
    ferry_list *p;
    ferry_list_foreach(p, &http->routes)
    {
        ferry_route *r = ferry_list_entry(p, ferry_route, link);
        if (!route_matches(r, req))
            continue;
        if (!(r->flags & FERRY_ROUTE_PREFIX)) {
            found = r;
            break;
        }
        if (found == NULL)
            found = r;
    }
    if (found == NULL)
        return;
    req->route = found;
    if (found->flags & FERRY_ROUTE_CORS)
        req->cors = 1;
    if (found->head_fn != NULL && strcmp(req->method, "OPTIONS") != 0)
        found->head_fn(req, found->ud);
}

void ferry_http_dispatch(ferry_http *http, ferry_req *req)
{
    ferry_route *r = req->route;
    if (r != NULL) {
        if ((r->flags & FERRY_ROUTE_CORS) && strcmp(req->method, "OPTIONS") == 0) {
            preflight(req);
            return;
        }
        r->fn(req, r->ud);
        return;
    }
    if (http->static_root != NULL && !req->upgrade &&
        (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0)) {
        ferry_static_serve(req);
        return;
    }
    static const char msg[] = "Not Found\n";
    ferry_req_respond_text(req, 404, "text/plain; charset=UTF-8", msg, sizeof(msg) - 1);
}

/* A redirect listener: the same host and target on https. The host comes from the request
 * (without its port) and is checked to be a plain host name or address literal, so that a
 * crafted Host cannot make the Location point somewhere odd. */
int ferry_http_host_ok(const char *host, size_t len)
{
    if (len == 0 || len > 255)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = host[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == '[' || ch == ']' || ch == ':'))
            return 0;
    }
    return 1;
}

void ferry_http_redirect(ferry_req *req, int https_port)
{
    const char *host = ferry_req_header_get(req, "host");
    size_t hlen = 0;
    if (host != NULL) {
        if (host[0] == '[') {
            const char *end = strchr(host, ']');
            hlen = end ? (size_t)(end - host) + 1 : 0;
        } else {
            hlen = strcspn(host, ":");
        }
        if (!ferry_http_host_ok(host, hlen))
            hlen = 0;
    }
    if (hlen == 0) {
        static const char msg[] = "This port redirects to https: a Host header is needed.\n";
        ferry_req_respond_text(req, 400, "text/plain; charset=UTF-8", msg, sizeof(msg) - 1);
        return;
    }
    size_t cap = strlen(req->url) + hlen + 64;
    char *loc = ferry_mem_alloc(cap);
    if (loc == NULL) {
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        return;
    }
    char port[16] = "";
    if (https_port != 443)
        snprintf(port, sizeof(port), ":%d", https_port);
    int n = snprintf(loc, cap, "Location: https://%.*s%s%s\r\n", (int)hlen, host, port, req->url);
    if (n < 0 || (size_t)n >= cap) {
        ferry_mem_free(loc);
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        return;
    }
    ferry_req_respond(req, 308, NULL, loc, NULL, 0);
    ferry_mem_free(loc);
}
