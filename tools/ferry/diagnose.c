/* The diagnosis page and its one server-side check (diagnose.h). Files are read before the
 * loop runs, so no request waits on the disk. */
#include "diagnose.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FILE_MAX (256u * 1024)
#define ID_MAX 40

typedef struct page_file {
    const char *rel;  /* under the source tree */
    const char *path; /* the route */
    const char *type;
    char *data;
    size_t len;
} page_file;

struct diagnose {
    page_file files[2];
    struct {
        char id[ID_MAX + 1];
        int upgrade;
    } seen[DIAGNOSE_SEEN_MAX];
    unsigned next; /* ring position of the next record */
};

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(FILE_MAX);
    size_t n = buf ? fread(buf, 1, FILE_MAX, f) : 0;
    int too_big = n == FILE_MAX;
    fclose(f);
    if (buf == NULL || n == 0 || too_big) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static void on_file(ferry_http_req *req, void *ud)
{
    const page_file *f = ud;
    if (f->data == NULL) {
        static const char msg[] = "the diagnosis page is not installed (client-js/diagnose/ was "
                                  "not found next to this ferry build)\n";
        ferry_http_reply(req, 404, NULL, msg, sizeof(msg) - 1);
        return;
    }
    ferry_http_reply(req, 200, f->type, f->data, f->len);
}

static int valid_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static void on_seen(ferry_http_req *req, void *ud)
{
    diagnose *d = ud;
    const char *id = ferry_http_req_query(req, "id");
    if (!valid_id(id)) {
        static const char msg[] = "id: 1 to 40 letters, digits, - or _\n";
        ferry_http_reply(req, 400, NULL, msg, sizeof(msg) - 1);
        return;
    }
    if (ferry_http_req_query(req, "ask") != NULL) {
        int seen = 0, upgrade = 0;
        for (unsigned i = 0; i < DIAGNOSE_SEEN_MAX; i++) {
            if (strcmp(d->seen[i].id, id) == 0) {
                seen = 1;
                upgrade |= d->seen[i].upgrade;
            }
        }
        char body[64];
        int n = snprintf(body, sizeof(body), "{\"seen\":%s,\"upgrade\":%s}", seen ? "true" : "false",
                         upgrade ? "true" : "false");
        ferry_http_reply(req, 200, "application/json", body, n > 0 && (size_t)n < sizeof(body) ? (size_t)n : 0);
        return;
    }
    const char *up = ferry_http_req_header(req, "upgrade");
    unsigned slot = d->next++ % DIAGNOSE_SEEN_MAX;
    snprintf(d->seen[slot].id, sizeof(d->seen[slot].id), "%s", id);
    d->seen[slot].upgrade = up != NULL && strcasecmp(up, "websocket") == 0;
    static const char msg[] = "seen\n";
    ferry_http_reply(req, 200, NULL, msg, sizeof(msg) - 1);
}

int diagnose_install(ferry_server *srv, diagnose **out)
{
    diagnose *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -FERRY_ENOMEM;
    d->files[0] = (page_file){"client-js/diagnose/index.html", DIAGNOSE_PATH,
                              "text/html; charset=UTF-8", NULL, 0};
    d->files[1] = (page_file){"client-js/diagnose/checks.mjs", DIAGNOSE_PATH "/checks.mjs",
                              "text/javascript; charset=UTF-8", NULL, 0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof(d->files) / sizeof(d->files[0]); i++) {
        page_file *f = &d->files[i];
        /* The working directory first (make run), then the source tree this was built from. */
        f->data = read_file(f->rel, &f->len);
#ifdef FERRY_SOURCE_DIR
        if (f->data == NULL) {
            char path[1024];
            int n = snprintf(path, sizeof(path), "%s/%s", FERRY_SOURCE_DIR, f->rel);
            if (n > 0 && (size_t)n < sizeof(path))
                f->data = read_file(path, &f->len);
        }
#endif
        rc = ferry_server_route(srv, "GET", f->path, on_file, f);
    }
    if (rc == 0)
        rc = ferry_server_route(srv, "GET", DIAGNOSE_PATH "/seen", on_seen, d);
    if (rc != 0) {
        diagnose_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void diagnose_free(diagnose *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < sizeof(d->files) / sizeof(d->files[0]); i++)
        free(d->files[i].data);
    free(d);
}
