/* The HTTP layer's server-wide state: listeners, settings, closing. */
#include "http/conn.h"

#include <string.h>
#include <unistd.h>

#include "http/tls.h"

#include "common/assert.h"
#include "common/log.h"
#include "common/mem.h"

static char **split_origins(const char *list)
{
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    char **out = ferry_mem_calloc(n + 1, sizeof(char *));
    if (out == NULL)
        return NULL;
    size_t i = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *trim = end;
        while (trim > p && trim[-1] == ' ')
            trim--;
        if (trim > p) {
            out[i] = ferry_mem_strndup(p, (size_t)(trim - p));
            if (out[i] == NULL)
                break;
            i++;
        }
        p = end;
    }
    return out;
}

static void free_strv(char **v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; v[i]; i++)
        ferry_mem_free(v[i]);
    ferry_mem_free(v);
}

int ferry_http_init(ferry_http *http, uv_loop_t *loop, ferry_wheel *wheel,
                    const ferry_http_limits *limits, const char *static_root,
                    const char *cors_origins, int cors_credentials)
{
    memset(http, 0, sizeof(*http));
    http->loop = loop;
    http->wheel = wheel;
    http->limits = *limits;
    http->cors_credentials = cors_credentials;
    ferry_list_init(&http->listeners);
    ferry_list_init(&http->conns);
    ferry_list_init(&http->routes);
    ferry_list_init(&http->deferred);
    if (static_root != NULL) {
        size_t n = strlen(static_root);
        while (n > 1 && static_root[n - 1] == '/')
            n--; /* "dir/" and "dir" name the same root */
        http->static_root = ferry_mem_strndup(static_root, n);
        if (http->static_root == NULL)
            return -FERRY_ENOMEM;
    }
    if (cors_origins != NULL) {
        http->cors_origins = split_origins(cors_origins);
        if (http->cors_origins == NULL) {
            ferry_mem_free(http->static_root);
            return -FERRY_ENOMEM;
        }
    }
    uv_idle_init(loop, &http->idle);
    http->idle.data = http;
    http->open_handles = 1; /* the idle handle */
    return 0;
}

static void maybe_closed(ferry_http *http)
{
    if (http->closing && http->open_handles == 0 && http->on_closed != NULL)
        http->on_closed(http);
}

static void on_listener_close(uv_handle_t *h)
{
    ferry_listener *l = h->data;
    ferry_http *http = l->http;
    ferry_list_remove(&l->link);
    ferry_tls_release(l->tls);
    ferry_mem_free(l);
    http->open_handles--;
    maybe_closed(http);
}

static void listener_close(ferry_listener *l)
{
    if (!uv_is_closing((uv_handle_t *)&l->tcp))
        uv_close((uv_handle_t *)&l->tcp, on_listener_close);
}

static void refuse_now(ferry_http *http, ferry_listener *l);

static void on_refuse_close(uv_handle_t *h)
{
    ferry_http *http = h->data;
    http->refusing = 0;
    http->open_handles--;
    /* A listener that met an allocation failure meanwhile still holds its connection. */
    ferry_list *p;
    ferry_list_foreach(p, &http->listeners)
    {
        ferry_listener *l = ferry_list_entry(p, ferry_listener, link);
        if (l->refuse_owed && !http->refusing) {
            l->refuse_owed = 0;
            refuse_now(http, l);
        }
    }
    maybe_closed(http);
}

static void refuse_now(ferry_http *http, ferry_listener *l)
{
    uv_tcp_init(http->loop, &http->refuse);
    http->refuse.data = http;
    http->refusing = 1;
    http->open_handles++;
    http->stats.refused_nomem++;
    uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&http->refuse);
    uv_close((uv_handle_t *)&http->refuse, on_refuse_close);
}

void ferry_http_refuse(ferry_http *http, uv_stream_t *server)
{
    ferry_listener *l = server->data;
    if (http->refusing)
        l->refuse_owed = 1; /* taken when the handle is free again (on_refuse_close) */
    else
        refuse_now(http, l);
}

static void on_connection(uv_stream_t *server, int status)
{
    ferry_listener *l = server->data;
    if (status < 0) {
        FERRY_LOG(FERRY_LOG_WARN, "http", NULL, "accept: %s", uv_strerror(status));
        return;
    }
    ferry_conn_accept(l->http, server, l->tls, l->redirect_port);
}

int ferry_http_listen(ferry_http *http, const char *addr, int port)
{
    return ferry_http_listen_ex(http, addr, port, NULL, 0);
}

/* Ciphertext read at once, and plaintext gathered for one SSL_write: 64 KiB each. */
#define TLS_SCRATCH (2 * 64 * 1024)

/* A new listener on http's list (its handle initialised, counted in open_handles), or NULL. */
static ferry_listener *listener_new(ferry_http *http, ferry_tls *tls, int redirect_port)
{
    if (http->read_scratch == NULL) {
        http->read_scratch = ferry_mem_alloc(FERRY_HTTP_READ_CHUNK);
        if (http->read_scratch == NULL)
            return NULL;
    }
    if (tls != NULL && http->tls_scratch == NULL) {
        http->tls_scratch = ferry_mem_alloc(TLS_SCRATCH);
        if (http->tls_scratch == NULL)
            return NULL;
    }
    ferry_listener *l = ferry_mem_calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->http = http;
    l->redirect_port = redirect_port;
    if (tls != NULL) {
        atomic_store(&tls->in_use, 1);
        l->tls = ferry_tls_retain(tls);
    }
    uv_tcp_init(http->loop, &l->tcp);
    l->tcp.data = l;
    ferry_list_insert_tail(&http->listeners, &l->link);
    http->open_handles++;
    return l;
}

/* Listen on l's bound handle and read back its port; on failure close it (asynchronously like
 * any other listener: it never accepted anything) and return the error. */
static int listener_start(ferry_listener *l, int rc)
{
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    if (rc == 0)
        rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &len);
    if (rc == 0 && bound.ss_family != AF_INET && bound.ss_family != AF_INET6)
        rc = -FERRY_EINVAL; /* not a TCP/IP socket */
    if (rc == 0) {
        l->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                              : ntohs(((struct sockaddr_in *)&bound)->sin_port);
        return 0;
    }
    l->port = -1;
    listener_close(l);
    return rc;
}

int ferry_http_listen_ex(ferry_http *http, const char *addr, int port, ferry_tls *tls,
                         int redirect_port)
{
    struct sockaddr_storage ss;
    if (port < 0 || port > 65535 || addr == NULL)
        return -FERRY_EINVAL;
    if (uv_ip4_addr(addr, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&ss) != 0)
        return -FERRY_EINVAL;
    if (redirect_port < 0 || redirect_port > 65535 || (tls && ferry_tls_default_ctx(tls) == NULL))
        return -FERRY_EINVAL;
    ferry_listener *l = listener_new(http, tls, redirect_port);
    if (l == NULL)
        return -FERRY_ENOMEM;
    return listener_start(l, uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0));
}

int ferry_http_listen_fd(ferry_http *http, int fd, ferry_tls *tls)
{
    if (fd < 0 || (tls && ferry_tls_default_ctx(tls) == NULL))
        return -FERRY_EINVAL;
    ferry_listener *l = listener_new(http, tls, 0);
    if (l == NULL)
        return -FERRY_ENOMEM;
    int rc = uv_tcp_open(&l->tcp, (uv_os_sock_t)fd);
    if (rc != 0)
        close(fd); /* the handle did not take it: ours to close, as documented */
    return listener_start(l, rc);
}

int ferry_http_set_tls(ferry_http *http, ferry_tls *old, ferry_tls *tls)
{
    if (tls == NULL || ferry_tls_default_ctx(tls) == NULL)
        return -FERRY_EINVAL;
    int n = 0;
    ferry_list *p;
    ferry_list_foreach(p, &http->listeners)
    {
        ferry_listener *l = ferry_list_entry(p, ferry_listener, link);
        if (l->tls != old || old == NULL)
            continue;
        atomic_store(&tls->in_use, 1);
        l->tls = ferry_tls_retain(tls);
        ferry_tls_release(old); /* open connections hold their own reference */
        n++;
    }
    return n;
}

int ferry_http_listener_port(const ferry_http *http, unsigned index)
{
    const ferry_list *p;
    unsigned i = 0;
    ferry_list_foreach(p, &http->listeners)
    {
        const ferry_listener *l = ferry_list_entry(p, ferry_listener, link);
        if (l->port <= 0)
            continue; /* a listen that failed, still closing */
        if (i++ == index)
            return l->port;
    }
    return -1;
}

int ferry_http_port(const ferry_http *http)
{
    const ferry_list *p;
    ferry_list_foreach(p, &http->listeners)
    {
        const ferry_listener *l = ferry_list_entry(p, ferry_listener, link);
        if (l->port > 0)
            return l->port;
    }
    return -1;
}

static void on_idle_close(uv_handle_t *h)
{
    ferry_http *http = h->data;
    http->open_handles--;
    maybe_closed(http);
}

void ferry_http_close(ferry_http *http, void (*on_closed)(ferry_http *http))
{
    FERRY_ASSERT(!http->closing);
    http->closing = 1;
    http->on_closed = on_closed;
    ferry_list *p, *next;
    for (p = http->listeners.next; p != &http->listeners; p = next) {
        next = p->next;
        listener_close(ferry_list_entry(p, ferry_listener, link));
    }
    for (p = http->conns.next; p != &http->conns; p = next) {
        next = p->next;
        ferry_conn *c = ferry_list_entry(p, ferry_conn, link);
        ferry_conn_shutdown(c);
        if (c->lingering)
            ferry_conn_abort(c); /* its answer is out; a stop does not wait on the client */
        else
            ferry_conn_close(c);
    }
    uv_idle_stop(&http->idle);
    uv_close((uv_handle_t *)&http->idle, on_idle_close);
}

void ferry_http_free(ferry_http *http)
{
    while (!ferry_list_empty(&http->routes)) {
        ferry_route *r = ferry_list_entry(http->routes.next, ferry_route, link);
        ferry_list_remove(&r->link);
        if (r->free_ud != NULL)
            r->free_ud(r->ud);
        ferry_mem_free(r->method);
        ferry_mem_free(r->path);
        ferry_mem_free(r);
    }
    free_strv(http->cors_origins);
    http->cors_origins = NULL;
    ferry_mem_free(http->static_root);
    http->static_root = NULL;
    ferry_mem_free(http->tls_scratch);
    http->tls_scratch = NULL;
    ferry_mem_free(http->read_scratch);
    http->read_scratch = NULL;
}

int ferry_http_add_route(ferry_http *http, const char *method, const char *path, unsigned flags,
                         ferry_route_fn fn, ferry_route_head_fn head_fn, void *ud)
{
    if (path == NULL || path[0] != '/' || fn == NULL)
        return -FERRY_EINVAL;
    ferry_list *p;
    ferry_list_foreach(p, &http->routes)
    {
        ferry_route *r = ferry_list_entry(p, ferry_route, link);
        int same_method = (r->method == NULL && method == NULL) ||
                          (r->method && method && strcmp(r->method, method) == 0);
        if (same_method && strcmp(r->path, path) == 0 &&
            (r->flags & FERRY_ROUTE_UPGRADE) == (flags & FERRY_ROUTE_UPGRADE))
            return -FERRY_EEXIST;
    }
    ferry_route *r = ferry_mem_calloc(1, sizeof(*r));
    if (r == NULL)
        return -FERRY_ENOMEM;
    r->method = method ? ferry_mem_strdup(method) : NULL;
    r->path = ferry_mem_strdup(path);
    if ((method && r->method == NULL) || r->path == NULL) {
        ferry_mem_free(r->method);
        ferry_mem_free(r->path);
        ferry_mem_free(r);
        return -FERRY_ENOMEM;
    }
    r->flags = flags;
    r->fn = fn;
    r->head_fn = head_fn;
    r->ud = ud;
    ferry_list_insert_tail(&http->routes, &r->link);
    return 0;
}

int ferry_http_add_owned_route(ferry_http *http, const char *method, const char *path,
                               unsigned flags, ferry_route_fn fn, void *ud,
                               void (*free_ud)(void *ud))
{
    int rc = ferry_http_add_route(http, method, path, flags, fn, NULL, ud);
    if (rc != 0) {
        free_ud(ud);
        return rc;
    }
    ferry_list_entry(http->routes.prev, ferry_route, link)->free_ud = free_ud;
    return 0;
}
