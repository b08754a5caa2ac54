/* The admin page and its namespace (admin.h). */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN_NSP "/ferry-admin"
#define PUSH_MS 1000
#define SOCKETS_MAX 4096 /* sockets of "/" looked at per push */
#define ROOMS_MAX 256    /* rooms counted per push (the largest are shown) */
#define SLOWEST 10
#define ROOMS_SHOWN 20

extern const char admin_page_html[]; /* admin_page.c */

struct admin {
    ferry_server *srv;
    const char *token;
    ferry_namespace *nsp;
    uv_timer_t timer;
    int timer_open;
    unsigned admins; /* connected admin sockets */
    ferry_socket **sockets;
    struct {
        const char *name;
        unsigned size;
    } rooms[ROOMS_MAX];
};

/* Compare without an early exit, so that the time taken does not tell how much matched. */
static int token_ok(const char *want, const char *got)
{
    size_t n = strlen(want), m = strlen(got);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < m ? got[i] : 0);
    return diff == 0;
}

static void on_auth(ferry_socket *s, void *ud)
{
    admin *a = ud;
    const cJSON *auth = ferry_socket_auth(s);
    const cJSON *tok = auth ? cJSON_GetObjectItemCaseSensitive(auth, "token") : NULL;
    if (!cJSON_IsString(tok) || !token_ok(a->token, tok->valuestring)) {
        ferry_middleware_next(s, "unauthorized", NULL);
        return;
    }
    ferry_middleware_next(s, NULL, NULL);
}

static void add_history(cJSON *o, ferry_session *se)
{
    ferry_transport_event ev[8];
    size_t n = ferry_session_transport_history(se, ev, 8);
    cJSON *h = cJSON_AddArrayToObject(o, "history");
    for (size_t i = 0; h != NULL && i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "t", (double)ev[i].time_ms);
        cJSON_AddStringToObject(e, "kind", ev[i].kind);
        cJSON_AddStringToObject(e, "from", ev[i].from);
        cJSON_AddStringToObject(e, "to", ev[i].to);
        cJSON_AddStringToObject(e, "reason", ev[i].reason);
        cJSON_AddItemToArray(h, e);
    }
}

static void on_metrics_text(const char *text, size_t len, void *ud)
{
    cJSON *o = ud;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return;
    memcpy(copy, text, len);
    copy[len] = '\0';
    cJSON_AddStringToObject(o, "metrics", copy);
    free(copy);
}

/* What the page shows, now. */
static cJSON *snapshot(admin *a)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddNumberToObject(o, "now", (double)uv_now(ferry_server_loop(a->srv)));
    ferry_server_metrics_text(a->srv, on_metrics_text, o);
    ferry_namespace *root = ferry_of(a->srv, "/");
    size_t total = root ? ferry_namespace_sockets(root, NULL, a->sockets, SOCKETS_MAX) : 0;
    size_t n = total < SOCKETS_MAX ? total : SOCKETS_MAX;
    cJSON_AddNumberToObject(o, "sockets", (double)total);
    /* Rooms of "/" and their sizes (each socket's own room left out). */
    size_t nrooms = 0;
    for (size_t i = 0; i < n; i++) {
        const char *names[32];
        size_t k = ferry_socket_rooms(a->sockets[i], names, 32);
        const char *self = ferry_socket_id(a->sockets[i]);
        for (size_t j = 0; j < k && j < 32; j++) {
            if (strcmp(names[j], self) == 0)
                continue;
            size_t r = 0;
            while (r < nrooms && strcmp(a->rooms[r].name, names[j]) != 0)
                r++;
            if (r == nrooms) {
                if (nrooms == ROOMS_MAX)
                    continue;
                a->rooms[nrooms].name = names[j];
                a->rooms[nrooms].size = 0;
                nrooms++;
            }
            a->rooms[r].size++;
        }
    }
    cJSON *rooms = cJSON_AddArrayToObject(o, "rooms");
    for (size_t shown = 0; rooms != NULL && shown < ROOMS_SHOWN && shown < nrooms; shown++) {
        size_t best = shown; /* selection: the largest first */
        for (size_t r = shown + 1; r < nrooms; r++)
            if (a->rooms[r].size > a->rooms[best].size)
                best = r;
        if (best != shown) {
            const char *tn = a->rooms[shown].name;
            unsigned ts = a->rooms[shown].size;
            a->rooms[shown] = a->rooms[best];
            a->rooms[best].name = tn;
            a->rooms[best].size = ts;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", a->rooms[shown].name);
        cJSON_AddNumberToObject(e, "size", a->rooms[shown].size);
        cJSON_AddItemToArray(rooms, e);
    }
    cJSON_AddNumberToObject(o, "roomCount", (double)nrooms);
    /* The slowest sessions by round trip (a selection over the sockets' sessions). */
    cJSON *slow = cJSON_AddArrayToObject(o, "slowest");
    for (size_t shown = 0; slow != NULL && shown < SLOWEST && shown < n; shown++) {
        size_t best = shown;
        int64_t best_rtt = -2;
        for (size_t i = shown; i < n; i++) {
            ferry_session *se = ferry_socket_session(a->sockets[i]);
            int64_t rtt = se ? ferry_session_rtt_ms(se) : -2;
            if (rtt > best_rtt) {
                best_rtt = rtt;
                best = i;
            }
        }
        ferry_socket *tmp = a->sockets[shown];
        a->sockets[shown] = a->sockets[best];
        a->sockets[best] = tmp;
        ferry_session *se = ferry_socket_session(a->sockets[shown]);
        if (se == NULL)
            continue;
        cJSON *e = cJSON_CreateObject();
        char shortid[7];
        snprintf(shortid, sizeof(shortid), "%s", ferry_session_id(se));
        cJSON_AddStringToObject(e, "id", shortid); /* a session id is a credential: 6 chars */
        cJSON_AddStringToObject(e, "transport", ferry_session_transport(se));
        cJSON_AddNumberToObject(e, "rtt", (double)ferry_session_rtt_ms(se));
        cJSON_AddStringToObject(e, "addr", ferry_session_remote_addr(se));
        cJSON_AddNumberToObject(e, "since", (double)ferry_session_time(se));
        add_history(e, se);
        cJSON_AddItemToArray(slow, e);
    }
    return o;
}

static void push(admin *a)
{
    cJSON *snap = snapshot(a);
    cJSON *args = cJSON_CreateArray();
    if (snap != NULL && args != NULL) {
        cJSON_AddItemToArray(args, snap);
        snap = NULL;
        ferry_namespace_emit(a->nsp, "stats", args);
    }
    cJSON_Delete(snap);
    cJSON_Delete(args);
}

static void on_timer(uv_timer_t *t)
{
    admin *a = t->data;
    if (a->admins > 0)
        push(a);
}

static void on_admin_gone(ferry_socket *s, ferry_reason reason, void *ud)
{
    (void)s;
    (void)reason;
    admin *a = ud;
    if (a->admins > 0 && --a->admins == 0)
        uv_timer_stop(&a->timer);
}

static void on_admin(ferry_socket *s, void *ud)
{
    admin *a = ud;
    ferry_socket_on_disconnect(s, on_admin_gone, a);
    if (a->admins++ == 0 && a->timer_open)
        uv_timer_start(&a->timer, on_timer, PUSH_MS, PUSH_MS);
    push(a); /* the first picture at once */
}

static void on_page(ferry_http_req *req, void *ud)
{
    (void)ud;
    ferry_http_reply(req, 200, "text/html; charset=utf-8", admin_page_html,
                     strlen(admin_page_html));
}

int admin_install(ferry_server *srv, const char *token, admin **out)
{
    *out = NULL;
    admin *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -FERRY_ENOMEM;
    a->sockets = calloc(SOCKETS_MAX, sizeof(*a->sockets));
    a->srv = srv;
    a->token = token;
    a->nsp = ferry_of(srv, ADMIN_NSP);
    if (a->sockets == NULL || a->nsp == NULL) {
        free(a->sockets);
        free(a);
        return -FERRY_ENOMEM;
    }
    int rc = ferry_namespace_use(a->nsp, on_auth, a);
    if (rc == 0)
        rc = ferry_server_route(srv, "GET", "/ferry/admin", on_page, a);
    if (rc != 0) {
        free(a->sockets);
        free(a);
        return rc;
    }
    ferry_namespace_on_connection(a->nsp, on_admin, a);
    uv_timer_init(ferry_server_loop(srv), &a->timer);
    a->timer.data = a;
    a->timer_open = 1;
    *out = a;
    return 0;
}

void admin_close(admin *a)
{
    if (a == NULL || !a->timer_open)
        return;
    a->timer_open = 0;
    uv_close((uv_handle_t *)&a->timer, NULL);
}

void admin_free(admin *a)
{
    if (a == NULL)
        return;
    free(a->sockets);
    free(a);
}
