/* Request accessors, canned answers, and the public ferry_http_req functions. */
#include "http/conn.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/assert.h"
#include "common/mem.h"

void ferry_req_free(ferry_req *req)
{
    if (req == NULL)
        return;
    ferry_vec_free(&req->store); /* url, path, query and headers (conn.c, req_build) */
    ferry_vec_free(&req->body);
    ferry_mem_free(req);
}

/* One block: the array, then every string behind it, so that what a session keeps of its
 * handshake (query and headers) costs one allocation of its own size rather than two per
 * pair. ferry_kv_free() frees it. */
int ferry_kv_copy(ferry_kv **dst, size_t *n, const ferry_kv *src, size_t count)
{
    *dst = NULL;
    *n = 0;
    if (count == 0)
        return 0;
    size_t bytes = count * sizeof(ferry_kv);
    for (size_t i = 0; i < count; i++)
        bytes += strlen(src[i].name) + strlen(src[i].value) + 2;
    ferry_kv *kv = ferry_mem_alloc(bytes);
    if (kv == NULL)
        return -FERRY_ENOMEM;
    char *s = (char *)(kv + count);
    for (size_t i = 0; i < count; i++) {
        size_t ln = strlen(src[i].name) + 1, lv = strlen(src[i].value) + 1;
        kv[i].name = memcpy(s, src[i].name, ln);
        s += ln;
        kv[i].value = memcpy(s, src[i].value, lv);
        s += lv;
    }
    *dst = kv;
    *n = count;
    return 0;
}

void ferry_kv_free(ferry_kv *kv, size_t n)
{
    (void)n;
    ferry_mem_free(kv); /* one block (ferry_kv_copy) */
}

const char *ferry_kv_find(const ferry_kv *kv, size_t n, const char *name, int nocase)
{
    for (size_t i = 0; i < n; i++)
        if ((nocase ? strcasecmp(kv[i].name, name) : strcmp(kv[i].name, name)) == 0)
            return kv[i].value;
    return NULL;
}

const char *ferry_kv_at(const ferry_kv *kv, size_t n, size_t i, const char **value)
{
    if (value != NULL)
        *value = i < n ? kv[i].value : NULL;
    return i < n ? kv[i].name : NULL;
}

const char *ferry_req_query_get(const ferry_req *req, const char *name)
{
    return ferry_kv_find(req->query, req->nquery, name, 0);
}

const char *ferry_req_header_get(const ferry_req *req, const char *name)
{
    return ferry_kv_find(req->headers, req->nheaders, name, 1);
}

int ferry_req_header_has_token(const ferry_req *req, const char *name, const char *token)
{
    size_t tlen = strlen(token);
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, name) != 0)
            continue;
        const char *p = req->headers[i].value;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            const char *end = p;
            while (*end && *end != ',')
                end++;
            const char *trim = end;
            while (trim > p && (trim[-1] == ' ' || trim[-1] == '\t'))
                trim--;
            if ((size_t)(trim - p) == tlen && strncasecmp(p, token, tlen) == 0)
                return 1;
            p = end;
        }
    }
    return 0;
}

int ferry_req_origin_allowed(const ferry_req *req)
{
    char **list = req->conn->http->cors_origins;
    const char *origin = ferry_req_header_get(req, "origin");
    if (list == NULL || origin == NULL)
        return 1;
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], "*") == 0 || strcmp(list[i], origin) == 0)
            return 1;
    return 0;
}

void ferry_req_remote_addr(const ferry_req *req, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    out[0] = '\0';
    if (req->conn == NULL)
        return;
    if (uv_tcp_getpeername(&req->conn->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, out, outlen);
    else
        uv_ip4_name((struct sockaddr_in *)&ss, out, outlen);
}

int ferry_req_respond_error(ferry_req *req, int code)
{
    /* Engine.IO's Server.errors / errorMessages, exactly (PROTOCOL.md). */
    static const char *const messages[] = {
        "Transport unknown", "Session ID unknown", "Bad handshake method", "Bad request",
        "Forbidden",         "Unsupported protocol version",
    };
    if (code < 0 || code > 5)
        code = 3;
    char body[96];
    ferry_strbuf sb;
    ferry_strbuf_init(&sb, body, sizeof(body));
    ferry_strbuf_printf(&sb, "{\"code\":%d,\"message\":\"%s\"}", code, messages[code]);
    FERRY_ASSERT(ferry_strbuf_error(&sb) == 0); /* the messages are fixed and short */
    return ferry_req_respond_text(req, code == 4 ? 403 : 400, "application/json", body, sb.len);
}

long ferry_url_decode(char *s, size_t len, int plus)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= len)
                return -1;
            int v = 0;
            for (int k = 1; k <= 2; k++) {
                char h = s[i + (size_t)k];
                v <<= 4;
                if (h >= '0' && h <= '9')
                    v |= h - '0';
                else if (h >= 'a' && h <= 'f')
                    v |= h - 'a' + 10;
                else if (h >= 'A' && h <= 'F')
                    v |= h - 'A' + 10;
                else
                    return -1;
            }
            if (v == 0)
                return -1; /* a decoded NUL would cut C strings short */
            s[o++] = (char)v;
            i += 2;
        } else if (ch == '+' && plus) {
            s[o++] = ' ';
        } else {
            s[o++] = ch;
        }
    }
    s[o] = '\0';
    return (long)o;
}

const char *ferry_http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 304:
        return "Not Modified";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    }
    return status < 400 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
}

/* ------------------------------------------------------------------ public API */

const char *ferry_http_req_method(const ferry_http_req *req)
{
    return req->method;
}

const char *ferry_http_req_path(const ferry_http_req *req)
{
    return req->path;
}

const char *ferry_http_req_query(const ferry_http_req *req, const char *name)
{
    return ferry_req_query_get(req, name);
}

const char *ferry_http_req_header(const ferry_http_req *req, const char *name)
{
    return ferry_req_header_get(req, name);
}

const char *ferry_http_req_body(const ferry_http_req *req, size_t *len)
{
    if (len != NULL)
        *len = req->body.len;
    return req->body.base ? req->body.base : "";
}

int ferry_http_reply(ferry_http_req *req, int status, const char *content_type, const void *body,
                     size_t len)
{
    return ferry_req_respond_text(req, status,
                                  content_type ? content_type : "text/plain; charset=UTF-8",
                                  body, len);
}
