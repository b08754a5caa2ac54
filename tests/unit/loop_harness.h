/* A ferry server and raw TCP clients on one private libuv loop, for unit tests that check the
 * HTTP limits and the session state machine byte for byte (libuv's own test style: count the
 * callbacks, end with uv_loop_close() == 0).
 *
 * The loop is pumped with UV_RUN_ONCE until a condition holds or a deadline passes; a 5 ms
 * repeating timer only makes sure the condition is looked at again, it waits for nothing. */
#ifndef FERRY_LOOP_HARNESS_H
#define FERRY_LOOP_HARNESS_H

#include "ferry_test.h"

#include <signal.h>
#include <stdlib.h>
#include <uv.h>

#include "ferry.h"

typedef struct h_server {
    uv_loop_t loop;
    uv_timer_t tick;
    ferry_server *srv;
    int port;
    int closed;
} h_server;

typedef struct h_client {
    uv_tcp_t tcp;
    uv_connect_t creq;
    h_server *h;
    int connected;
    int eof;
    int closed;
    uint64_t eof_at;
    size_t len;
    char in[256 * 1024];
} h_client;

static inline void h_on_tick(uv_timer_t *t)
{
    (void)t;
}

static inline h_server *h_start(const ferry_server_config *cfg)
{
    h_server *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    assert_int_equal(ferry_server_new(&h->loop, cfg, &h->srv), 0);
    assert_int_equal(ferry_server_listen(h->srv, "127.0.0.1", 0), 0);
    h->port = ferry_server_port(h->srv);
    assert_true(h->port > 0);
    uv_timer_init(&h->loop, &h->tick);
    return h;
}

static inline uint64_t h_now(h_server *h)
{
    uv_update_time(&h->loop);
    return uv_now(&h->loop);
}

/* Pump the loop until cond(ud) holds; 1, or 0 when ms passed first. */
static inline int h_run_until(h_server *h, int (*cond)(void *), void *ud, uint64_t ms)
{
    uint64_t deadline = h_now(h) + ms;
    uv_timer_start(&h->tick, h_on_tick, 5, 5);
    int ok;
    while (!(ok = cond(ud)) && uv_now(&h->loop) < deadline)
        uv_run(&h->loop, UV_RUN_ONCE);
    uv_timer_stop(&h->tick);
    return ok;
}

static inline int h_cond_flag(void *ud)
{
    return *(int *)ud != 0;
}

static inline void h_on_server_closed(ferry_server *srv, void *ud)
{
    (void)srv;
    ((h_server *)ud)->closed = 1;
}

/* Close the server, run the loop dry, and require that nothing was left open. */
static inline void h_stop(h_server *h)
{
    assert_int_equal(ferry_server_close(h->srv, h_on_server_closed, h), 0);
    assert_true(h_run_until(h, h_cond_flag, &h->closed, 5000));
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    free(h);
}

/* ---- clients */

static inline void hc_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    h_client *c = hd->data;
    (void)suggested;
    buf->base = c->in + c->len;
    buf->len = sizeof(c->in) - c->len - 1;
}

static inline void hc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    h_client *c = s->data;
    (void)buf;
    if (n < 0) {
        if (!c->eof) {
            c->eof = 1;
            c->eof_at = uv_now(s->loop);
        }
        uv_read_stop(s);
        return;
    }
    c->len += (size_t)n;
    c->in[c->len] = '\0';
}

static inline void hc_connected(uv_connect_t *req, int status)
{
    h_client *c = req->data;
    c->connected = status == 0 ? 1 : -1;
    if (status == 0)
        uv_read_start((uv_stream_t *)&c->tcp, hc_alloc, hc_read);
}

static inline h_client *hc_connect(h_server *h)
{
    h_client *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->h = h;
    uv_tcp_init(&h->loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", h->port, &addr);
    assert_int_equal(uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&addr, hc_connected), 0);
    assert_true(h_run_until(h, h_cond_flag, &c->connected, 2000));
    assert_int_equal(c->connected, 1);
    return c;
}

typedef struct hc_write_req {
    uv_write_t req;
    char data[];
} hc_write_req;

static inline void hc_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static inline void hc_send(h_client *c, const void *data, size_t len)
{
    hc_write_req *w = malloc(sizeof(*w) + len);
    assert_non_null(w);
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    assert_int_equal(uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, hc_written), 0);
}

static inline void hc_sends(h_client *c, const char *s)
{
    hc_send(c, s, strlen(s));
}

/* A parsed response taken off the front of the client's input. */
typedef struct h_response {
    int status;
    char head[2048];
    char body[64 * 1024];
    size_t body_len;
} h_response;

/* Length of one complete response at the front of c->in, or 0. */
static inline size_t hc_complete(const h_client *c)
{
    const char *end = strstr(c->in, "\r\n\r\n");
    if (end == NULL)
        return 0;
    size_t head = (size_t)(end - c->in) + 4;
    size_t body = 0;
    const char *cl = strcasestr(c->in, "\r\nContent-Length:");
    if (cl != NULL && cl < end)
        body = strtoul(cl + 17, NULL, 10);
    return c->len >= head + body ? head + body : 0;
}

static inline int hc_cond_response(void *ud)
{
    h_client *c = ud;
    return hc_complete(c) > 0 || c->eof;
}

static inline int hc_cond_eof(void *ud)
{
    return ((h_client *)ud)->eof;
}

/* Wait for the next response; returns 0 (status 0) when the connection ended first. */
static inline int hc_response(h_client *c, h_response *r, uint64_t ms)
{
    memset(r, 0, sizeof(*r));
    h_run_until(c->h, hc_cond_response, c, ms);
    size_t n = hc_complete(c);
    if (n == 0)
        return 0;
    const char *end = strstr(c->in, "\r\n\r\n");
    size_t head = (size_t)(end - c->in);
    assert_true(head < sizeof(r->head));
    memcpy(r->head, c->in, head);
    r->head[head] = '\0';
    r->body_len = n - head - 4;
    assert_true(r->body_len < sizeof(r->body));
    memcpy(r->body, end + 4, r->body_len);
    r->body[r->body_len] = '\0';
    r->status = atoi(c->in + 9);
    memmove(c->in, c->in + n, c->len - n);
    c->len -= n;
    c->in[c->len] = '\0';
    return r->status;
}

static inline int hc_wait_eof(h_client *c, uint64_t ms)
{
    return h_run_until(c->h, hc_cond_eof, c, ms);
}

static inline void hc_on_close(uv_handle_t *hd)
{
    ((h_client *)hd->data)->closed = 1;
}

static inline void hc_close(h_client *c)
{
    uv_close((uv_handle_t *)&c->tcp, hc_on_close);
    assert_true(h_run_until(c->h, h_cond_flag, &c->closed, 2000));
    free(c);
}

/* One request on a fresh connection; returns the status (0: closed without an answer). */
static inline int h_request(h_server *h, const char *raw, h_response *r)
{
    h_client *c = hc_connect(h);
    hc_sends(c, raw);
    int status = hc_response(c, r, 3000);
    hc_close(c);
    return status;
}

#endif
