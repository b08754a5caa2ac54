/* Serving the files built into the library (ferry_server_serve_client, ferry.h): each one at
 * its fixed path, from memory (nothing touches the disk), with its content type, a strong
 * ETag and Cache-Control that lets browsers keep it an hour and then revalidate (a 304 costs
 * no body). */
#include <string.h>

#include "common/strbuf.h"
#include "server/client_files.h"
#include "server/server.h"

/* Browsers and proxies may keep a file an hour; after that (or on reload) they ask again with
 * If-None-Match and get 304 while the build is the same. */
#define CACHE_CONTROL "Cache-Control: public, max-age=3600\r\n"

static void on_get(ferry_req *req, void *ud)
{
    const ferry_client_file *f = ud;
    char extra[128];
    ferry_strbuf sb;
    ferry_strbuf_init(&sb, extra, sizeof(extra));
    ferry_strbuf_printf(&sb, CACHE_CONTROL "ETag: %s\r\nX-Content-Type-Options: nosniff\r\n",
                        f->etag);
    if (ferry_strbuf_error(&sb) != 0) {
        ferry_req_respond_text(req, 500, NULL, NULL, 0);
        return;
    }
    const char *inm = ferry_req_header_get(req, "if-none-match");
    if (inm != NULL && strstr(inm, f->etag) != NULL) {
        ferry_req_respond(req, 304, NULL, extra, NULL, 0);
        return;
    }
    ferry_slice body = {(const char *)f->data, f->len, NULL}; /* static for the program's life */
    ferry_req_respond(req, 200, f->content_type, extra, &body, 1);
}

int ferry_server_serve_client(ferry_server *srv)
{
    if (ferry_client_files[0].path == NULL)
        return -FERRY_EUNSUPPORTED;
    for (const ferry_client_file *f = ferry_client_files; f->path != NULL; f++) {
        int rc = ferry_http_add_route(&srv->http, "GET", f->path, 0, on_get, NULL, (void *)f);
        if (rc != 0)
            return rc;
    }
    return 0;
}
