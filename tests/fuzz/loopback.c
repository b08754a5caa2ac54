/* See loopback.h. */
#include "loopback.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

static uv_loop_t loop;
static ferry_server *srv;
static void (*user_on_session)(ferry_session *s);

void lb_bytes_put(lb_bytes *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *nb = realloc(b->data, cap);
        if (nb == NULL)
            abort();
        b->data = nb;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void lb_bytes_free(lb_bytes *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static void quiet(ferry_log_level level, const char *module, const char *sid, const char *msg,
                  void *ud)
{
    (void)level, (void)module, (void)sid, (void)msg, (void)ud;
}

static void on_message(ferry_session *s, const char *data, size_t len, int binary, void *ud)
{
    (void)ud;
    ferry_session_send(s, data, len, binary); /* echo: downstream gets work too */
}

static void on_session(ferry_session *s, void *ud)
{
    (void)ud;
    /* The handshake accessors must give NUL-terminated strings for whatever came in. */
    const char *v;
    for (size_t i = 0; ferry_session_query_at(s, i, &v) != NULL; i++)
        if (strlen(v) > 1u << 20)
            abort();
    ferry_session_on_message(s, on_message, NULL);
    if (user_on_session != NULL)
        user_on_session(s);
}

ferry_server *lb_server(void (*cb)(ferry_session *s))
{
    if (srv != NULL)
        return srv;
    user_on_session = cb;
    ferry_set_log_cb(quiet, FERRY_LOG_ERROR, NULL);
    if (uv_loop_init(&loop) != 0)
        abort();
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.transports = FERRY_TRANSPORT_ALL;
    cfg.ping_interval_ms = 300; /* sessions the fuzzer abandons die soon */
    cfg.ping_timeout_ms = 300;
    cfg.upgrade_timeout_ms = 300;
    cfg.max_payload = 4096;     /* the bounds are reachable from short inputs */
    cfg.max_header_bytes = 2048;
    cfg.max_session_queue_bytes = 16384;
    cfg.sse_recycle_bytes = 4096;
    cfg.ws_per_message_deflate = 1;
    cfg.cors_origins = "http://good.example";
    if (ferry_server_new(&loop, &cfg, &srv) != 0 || ferry_server_on_session(srv, on_session, NULL) != 0 ||
        ferry_server_listen(srv, "127.0.0.1", 0) != 0)
        abort();
    return srv;
}

int lb_connect(void)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)ferry_server_port(srv));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        abort();
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
        perror("connect");
        abort();
    }
    /* Loopback completes at once; let the server accept. */
    uv_run(&loop, UV_RUN_NOWAIT);
    return fd;
}

void lb_send(int fd, const void *p, size_t n)
{
    const char *c = p;
    int stuck = 0;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w > 0) {
            c += w;
            n -= (size_t)w;
            stuck = 0;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR) && stuck++ < 1000) {
            uv_run(&loop, UV_RUN_NOWAIT); /* the server reads and makes room */
            char sink[4096];
            while (recv(fd, sink, sizeof(sink), 0) > 0) {
            }
        } else {
            break; /* the server closed: the rest is not wanted */
        }
    }
    uv_run(&loop, UV_RUN_NOWAIT);
}

int lb_pump(int fd, lb_bytes *out, int rounds)
{
    int quiet_rounds = 0;
    for (int i = 0; i < 200 && quiet_rounds < rounds; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        char buf[16384];
        ssize_t r;
        int got = 0;
        while ((r = recv(fd, buf, sizeof(buf), 0)) > 0) {
            if (out != NULL)
                lb_bytes_put(out, buf, (size_t)r);
            got = 1;
        }
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            return -1;
        quiet_rounds = got ? 0 : quiet_rounds + 1;
    }
    return 0;
}

void lb_close(int fd)
{
    close(fd);
    for (int i = 0; i < 3; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
}

static int find_sid(const lb_bytes *b, char *sid)
{
    const char *p = b->data ? strstr(b->data, "\"sid\":\"") : NULL;
    if (p == NULL)
        return -1;
    p += 7;
    size_t n = 0;
    while (p[n] != '"' && p[n] != '\0' && n < 31)
        n++;
    if (p[n] != '"')
        return -1;
    memcpy(sid, p, n);
    sid[n] = '\0';
    return 0;
}

int lb_open_session(const char *transport, char *sid, int *stream)
{
    int fd = lb_connect();
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET /socket.io/?EIO=4&transport=%s HTTP/1.1\r\nHost: x\r\n"
                     "Accept: text/event-stream\r\n\r\n",
                     transport);
    if (n < 0 || (size_t)n >= sizeof(req))
        abort();
    lb_send(fd, req, (size_t)n);
    lb_bytes b = {0};
    int rc = -1;
    for (int i = 0; i < 50; i++) {
        int closed = lb_pump(fd, &b, 2);
        if ((rc = find_sid(&b, sid)) == 0 || closed != 0)
            break;
    }
    lb_bytes_free(&b);
    if (stream != NULL && rc == 0 && strcmp(transport, "sse") == 0) {
        *stream = fd;
        return 0;
    }
    if (stream != NULL)
        *stream = -1;
    lb_close(fd);
    return rc;
}

void lb_subst_sid(const uint8_t *in, size_t n, const char *sid, lb_bytes *out)
{
    size_t sl = strlen(sid);
    for (size_t i = 0; i < n; i++) {
        if (i + 3 <= n && memcmp(in + i, "SID", 3) == 0) {
            lb_bytes_put(out, sid, sl);
            i += 2;
        } else {
            lb_bytes_put(out, in + i, 1);
        }
    }
}

void lb_check_response(const lb_bytes *b)
{
    if (b->len == 0)
        return;
    size_t n = b->len < 13 ? b->len : 13;
    /* "HTTP/1.1 NNN " */
    static const char pat[] = "HTTP/1.1 ddd ";
    for (size_t i = 0; i < n; i++) {
        char c = b->data[i];
        if (pat[i] == 'd' ? (c < '0' || c > '9') : c != pat[i]) {
            fprintf(stderr, "response does not start with a status line: %.40s\n", b->data);
            abort();
        }
    }
}
