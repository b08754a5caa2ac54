/* The diagnosis page's one server-side check (diagnose.h). The page itself is embedded in the
 * library from client-js/diagnose/ (the embed list of CMakeLists.txt) and mounted by
 * ferry_server_serve_client(). */
#include "diagnose.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ID_MAX 40

struct diagnose {
    struct {
        char id[ID_MAX + 1];
        int upgrade;
    } seen[DIAGNOSE_SEEN_MAX];
    unsigned next; /* ring position of the next record */
};

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
        ferry_http_reply(req, 200, "application/json", body,
                         n > 0 && (size_t)n < sizeof(body) ? (size_t)n : 0);
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
    int rc = ferry_server_route(srv, "GET", DIAGNOSE_PATH "/seen", on_seen, d);
    if (rc != 0) {
        diagnose_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void diagnose_free(diagnose *d)
{
    free(d);
}
