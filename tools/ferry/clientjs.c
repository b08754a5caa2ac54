/* Serving socket.io-client's browser bundle from memory. It is read once at start-up, before
 * uv_run, so no request ever waits on the disk (STYLE.md: nothing blocking on the loop). */
#include "clientjs.h"

#include <stdio.h>
#include <stdlib.h>

#define BUNDLE_REL "node_modules/socket.io-client/dist/socket.io.min.js"
#define BUNDLE_MAX (4u * 1024 * 1024)

struct clientjs {
    char *data;
    size_t len;
};

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(BUNDLE_MAX);
    size_t n = buf ? fread(buf, 1, BUNDLE_MAX, f) : 0;
    int too_big = n == BUNDLE_MAX;
    fclose(f);
    if (buf == NULL || n == 0 || too_big) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static void on_get(ferry_http_req *req, void *ud)
{
    clientjs *c = ud;
    if (c->data == NULL) {
        static const char msg[] = "socket.io-client is not installed: run `npm ci` in the "
                                  "ferry checkout, or pass --client-js FILE\n";
        ferry_http_reply(req, 404, NULL, msg, sizeof(msg) - 1);
        return;
    }
    ferry_http_reply(req, 200, "text/javascript; charset=UTF-8", c->data, c->len);
}

int clientjs_install(ferry_server *srv, const char *engine_path, const char *file, clientjs **out,
                     int *found)
{
    clientjs *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -FERRY_ENOMEM;
    if (file != NULL) {
        c->data = read_file(file, &c->len);
    } else {
        /* The working directory first (make run), then the source tree this was built from. */
        c->data = read_file(BUNDLE_REL, &c->len);
#ifdef FERRY_SOURCE_DIR
        if (c->data == NULL)
            c->data = read_file(FERRY_SOURCE_DIR "/" BUNDLE_REL, &c->len);
#endif
    }
    *found = c->data != NULL;
    int rc = ferry_server_route(srv, "GET", CLIENTJS_PATH, on_get, c);
    static const char *const names[] = {"socket.io.js", "socket.io.min.js"};
    for (size_t i = 0; rc == 0 && i < sizeof(names) / sizeof(names[0]); i++) {
        char path[512];
        int n = snprintf(path, sizeof(path), "%s%s", engine_path, names[i]);
        rc = n > 0 && (size_t)n < sizeof(path) ? ferry_server_route(srv, "GET", path, on_get, c)
                                               : -FERRY_EINVAL;
    }
    if (rc != 0) {
        clientjs_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void clientjs_free(clientjs *c)
{
    if (c == NULL)
        return;
    free(c->data);
    free(c);
}
