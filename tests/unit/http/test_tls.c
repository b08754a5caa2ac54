/* TLS in lib/http (conn.c, tls.c) from outside: the API's errors and ownership, and a real
 * server on a private loop with a client made of OpenSSL memory BIOs over a raw TCP client, so
 * that every byte is placed by hand: the handshake and a request sent one byte per write (every
 * split point of the records), ALPN, plain HTTP on the TLS port, the handshake timeout and the
 * cap on handshakes in flight, each at the limit and one over. Certificates are made by the
 * openssl command in a temporary folder. */
#include "loop_harness.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

static char dir[] = "/tmp/ferry-unit-tls-XXXXXX";
static char cert[256], key[256], cert2[256], key2[256];

static void run(const char *cmd)
{
    char line[2048];
    snprintf(line, sizeof(line), "cd %s && %s >/dev/null 2>&1", dir, cmd);
    assert_int_equal(system(line), 0);
}

/* A CA and two certificates it signs: "localhost" and "other.test". */
static void make_pki(void)
{
    assert_non_null(mkdtemp(dir));
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=unit-ca -keyout ca.key -out ca.pem");
    for (int i = 0; i < 2; i++) {
        const char *cn = i == 0 ? "localhost" : "other.test";
        char cmd[1024];
        snprintf(cmd, sizeof(cmd),
                 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=%s "
                 "-keyout %s.key -out %s.csr && printf 'subjectAltName=DNS:%s\\n' > %s.ext && "
                 "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
                 "-out %s.pem -extfile %s.ext",
                 cn, cn, cn, cn, cn, cn, cn, cn);
        run(cmd);
    }
    snprintf(cert, sizeof(cert), "%s/localhost.pem", dir);
    snprintf(key, sizeof(key), "%s/localhost.key", dir);
    snprintf(cert2, sizeof(cert2), "%s/other.test.pem", dir);
    snprintf(key2, sizeof(key2), "%s/other.test.key", dir);
}

static void drop_pki(void)
{
    run("rm -f ca.* localhost.* other.test.*");
    rmdir(dir);
}

static ferry_tls *new_tls(void)
{
    ferry_tls *tls;
    assert_int_equal(ferry_tls_new(NULL, &tls), 0);
    assert_int_equal(ferry_tls_add_cert(tls, cert, key), 0);
    return tls;
}

/* h_start() with a TLS listener. */
static h_server *start_tls(ferry_server_config *cfg)
{
    h_server *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    assert_int_equal(ferry_server_new(&h->loop, cfg, &h->srv), 0);
    ferry_tls *tls = new_tls();
    assert_int_equal(ferry_server_listen_tls(h->srv, "127.0.0.1", 0, tls), 0);
    ferry_tls_release(tls); /* the listener holds its own */
    h->port = ferry_server_port(h->srv);
    assert_true(h->port > 0);
    uv_timer_init(&h->loop, &h->tick);
    return h;
}

static void api_errors_and_ownership(void **state)
{
    (void)state;
    make_pki();
    ferry_tls_config tc;
    ferry_tls *tls;
    ferry_tls_config_init(&tc);
    assert_int_equal(tc.min_version, FERRY_TLS_1_2);
    tc.min_version = 0x0302; /* TLS 1.1 */
    assert_int_equal(ferry_tls_new(&tc, &tls), -FERRY_EINVAL);
    ferry_tls_config_init(&tc);
    tc.ciphers = "NO-SUCH-CIPHER";
    assert_int_equal(ferry_tls_new(&tc, &tls), -FERRY_EINVAL);
    assert_int_equal(ferry_tls_new(NULL, &tls), 0);
    assert_int_equal(ferry_tls_add_cert(tls, "/nonexistent.pem", key), -FERRY_EIO);
    assert_int_equal(ferry_tls_add_cert(tls, cert, "/nonexistent.key"), -FERRY_EIO);
    assert_int_equal(ferry_tls_add_cert(tls, cert, key2), -FERRY_EINVAL); /* not its key */
    assert_int_equal(ferry_tls_add_cert(tls, NULL, key), -FERRY_EINVAL);

    uv_loop_t loop;
    ferry_server *srv;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(ferry_server_new(&loop, NULL, &srv), 0);
    /* No certificate yet: refused. */
    assert_int_equal(ferry_server_listen_tls(srv, "127.0.0.1", 0, tls), -FERRY_EINVAL);
    assert_int_equal(ferry_tls_add_cert(tls, cert, key), 0);
    assert_int_equal(ferry_tls_add_cert(tls, cert2, key2), 0);
    assert_int_equal(ferry_server_listen_tls(srv, "127.0.0.1", 0, tls), 0);
    assert_int_equal(ferry_server_listen_redirect(srv, "127.0.0.1", 0, 443), 0);
    assert_int_equal(ferry_server_listen_redirect(srv, "127.0.0.1", 0, 0), -FERRY_EINVAL);
    assert_true(ferry_server_listener_port(srv, 0) > 0);
    assert_int_equal(ferry_server_listener_port(srv, 0), ferry_server_port(srv));
    assert_true(ferry_server_listener_port(srv, 1) > 0);
    assert_int_equal(ferry_server_listener_port(srv, 2), -1);
    /* In use: no more certificates; a reload is a new context. */
    assert_int_equal(ferry_tls_add_cert(tls, cert, key), -FERRY_EBUSY);
    ferry_tls *fresh, *empty, *stranger = new_tls();
    assert_int_equal(ferry_tls_new(NULL, &empty), 0);
    fresh = new_tls();
    assert_int_equal(ferry_server_set_tls(srv, tls, empty), -FERRY_EINVAL);
    assert_int_equal(ferry_server_set_tls(srv, stranger, fresh), 0); /* no listener uses it */
    assert_int_equal(ferry_server_set_tls(srv, tls, fresh), 1);
    /* Every reference given back: the listener's are dropped when it closes. */
    ferry_tls_release(tls);
    ferry_tls_release(fresh);
    ferry_tls_release(empty);
    ferry_tls_release(stranger);
    ferry_tls_release(NULL);
    assert_int_equal(ferry_server_close(srv, NULL, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    drop_pki();
}

/* ---- a client made of memory BIOs over a raw TCP client */

typedef struct tlsc {
    h_client *c;
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rb, *wb;
    size_t fed;
    int bytewise;
} tlsc;

/* A TLS client on the connected raw client c. */
static tlsc *tlsc_on(h_client *c, const char *alpn, size_t alpn_len, int bytewise)
{
    tlsc *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->c = c;
    t->bytewise = bytewise;
    t->ctx = SSL_CTX_new(TLS_client_method());
    char ca[300];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    assert_int_equal(SSL_CTX_load_verify_locations(t->ctx, ca, NULL), 1);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    t->ssl = SSL_new(t->ctx);
    t->rb = BIO_new(BIO_s_mem());
    t->wb = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(t->rb, -1);
    SSL_set_bio(t->ssl, t->rb, t->wb);
    SSL_set_tlsext_host_name(t->ssl, "localhost");
    SSL_set1_host(t->ssl, "localhost");
    if (alpn != NULL)
        SSL_set_alpn_protos(t->ssl, (const unsigned char *)alpn, (unsigned)alpn_len);
    SSL_set_connect_state(t->ssl);
    return t;
}

static tlsc *tlsc_new(h_server *h, const char *alpn, size_t alpn_len, int bytewise)
{
    return tlsc_on(hc_connect(h), alpn, alpn_len, bytewise);
}

static void tlsc_free(tlsc *t)
{
    hc_close(t->c);
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    free(t);
}

static int cond_more(void *ud)
{
    tlsc *t = ud;
    return t->c->len > t->fed || t->c->eof;
}

/* What OpenSSL wrote goes out, one byte per write and one loop turn per byte when bytewise. */
static void tlsc_flush(tlsc *t)
{
    char buf[64 * 1024];
    int n;
    while ((n = BIO_read(t->wb, buf, sizeof(buf))) > 0) {
        if (!t->bytewise) {
            hc_send(t->c, buf, (size_t)n);
            continue;
        }
        for (int i = 0; i < n; i++) {
            hc_send(t->c, buf + i, 1);
            uv_run(&t->c->h->loop, UV_RUN_NOWAIT);
            uv_run(&t->c->h->loop, UV_RUN_NOWAIT);
        }
    }
}

/* Wait for bytes from the server and give them to OpenSSL; 0 when the connection ended. */
static int tlsc_pump(tlsc *t)
{
    h_run_until(t->c->h, cond_more, t, 3000);
    if (t->c->len > t->fed) {
        BIO_write(t->rb, t->c->in + t->fed, (int)(t->c->len - t->fed));
        t->fed = t->c->len;
        return 1;
    }
    return 0;
}

/* 1: handshake done; 0: refused. */
static int tlsc_handshake(tlsc *t)
{
    for (int i = 0; i < 100; i++) {
        int r = SSL_do_handshake(t->ssl);
        tlsc_flush(t);
        if (r == 1)
            return 1;
        if (SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
            ERR_clear_error();
            return 0;
        }
        if (!tlsc_pump(t))
            return 0;
    }
    return 0;
}

/* Send one request and read one whole response (head and Content-Length body) into out. */
static size_t tlsc_request(tlsc *t, const char *req, char *out, size_t cap)
{
    assert_int_equal(SSL_write(t->ssl, req, (int)strlen(req)), (int)strlen(req));
    tlsc_flush(t);
    size_t len = 0;
    for (int i = 0; i < 200; i++) {
        int n;
        while (len + 1 < cap && (n = SSL_read(t->ssl, out + len, (int)(cap - 1 - len))) > 0)
            len += (size_t)n;
        out[len] = '\0';
        tlsc_flush(t); /* answers to the server's TLS 1.3 messages, if any */
        const char *end = strstr(out, "\r\n\r\n");
        const char *cl = strcasestr(out, "\r\nContent-Length:");
        if (end != NULL && cl != NULL &&
            len >= (size_t)(end + 4 - out) + strtoul(cl + 17, NULL, 10))
            return len;
        if (!tlsc_pump(t))
            break;
    }
    return len;
}

static void handshake_and_request_byte_by_byte(void **state)
{
    (void)state;
    make_pki();
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    h_server *h = start_tls(&cfg);
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        tlsc *t = tlsc_new(h, "\x02h2\x08http/1.1", 12, bytewise);
        assert_true(tlsc_handshake(t));
        const unsigned char *proto;
        unsigned plen;
        SSL_get0_alpn_selected(t->ssl, &proto, &plen);
        assert_int_equal(plen, 8);
        assert_memory_equal(proto, "http/1.1", 8);
        assert_int_equal(SSL_get_verify_result(t->ssl), X509_V_OK);
        char out[4096];
        /* Two requests on the one connection: keep-alive works through TLS. */
        for (int k = 0; k < 2; k++) {
            size_t n = tlsc_request(t, "GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n", out,
                                    sizeof(out));
            assert_true(n > 0);
            assert_non_null(strstr(out, "HTTP/1.1 404 Not Found\r\n"));
        }
        tlsc_free(t);
    }
    h_stop(h);
    drop_pki();
}

static void alpn_without_http11_refused(void **state)
{
    (void)state;
    make_pki();
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    h_server *h = start_tls(&cfg);
    tlsc *t = tlsc_new(h, "\x02h2", 3, 0);
    assert_false(tlsc_handshake(t));
    assert_true(hc_wait_eof(t->c, 3000));
    tlsc_free(t);
    h_stop(h);
    drop_pki();
}

static void plain_http_on_tls_port(void **state)
{
    (void)state;
    make_pki();
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    h_server *h = start_tls(&cfg);
    h_response r;
    /* A whole head: sent to the same URL over https (the Host's port is this one). */
    assert_int_equal(h_request(h, "GET /a?b=c HTTP/1.1\r\nhost:  localhost:8443 \r\n\r\n", &r),
                     308);
    assert_non_null(strstr(r.head, "\r\nLocation: https://localhost:8443/a?b=c"));
    /* No Host, a Host that is no host name, a target that is not a path, a head cut in two:
     * told in plain text. */
    static const char *const bad[] = {
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n",
        "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        h_client *c = hc_connect(h);
        hc_sends(c, bad[i]);
        assert_int_equal(hc_response(c, &r, 3000), 400);
        assert_non_null(strstr(r.body, "use https://"));
        assert_true(hc_wait_eof(c, 3000));
        hc_close(c);
    }
    h_stop(h);
    drop_pki();
}

static void handshake_timeout(void **state)
{
    (void)state;
    make_pki();
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.tls_handshake_timeout_ms = 150;
    h_server *h = start_tls(&cfg);
    /* Half a ClientHello, then nothing. The timeout runs from the accept. */
    uint64_t t0 = h_now(h);
    tlsc *t = tlsc_new(h, NULL, 0, 0);
    SSL_do_handshake(t->ssl);
    char buf[4096];
    int n = BIO_read(t->wb, buf, sizeof(buf));
    assert_true(n > 20);
    hc_send(t->c, buf, (size_t)n / 2);
    assert_true(hc_wait_eof(t->c, 3000));
    uint64_t took = t->c->eof_at - t0;
    if (took < 150 - 5 || took > 150 + 1000)
        fail_msg("cut after %llu ms, not 150", (unsigned long long)took);
    tlsc_free(t);
    h_stop(h);
    drop_pki();
}

static void max_tls_handshakes_at_limit_and_one_over(void **state)
{
    (void)state;
    make_pki();
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.max_tls_handshakes = 2;
    h_server *h = start_tls(&cfg);
    /* Idle connections do not count: they are not handshaking yet. */
    h_client *quiet = hc_connect(h);
    /* Two handshakes started (the first byte of a record) and left hanging: the limit. */
    h_client *slow[2] = {hc_connect(h), hc_connect(h)};
    for (int i = 0; i < 2; i++) {
        hc_send(slow[i], "\x16", 1);
        h_run_until(h, hc_cond_eof, slow[i], 100); /* let the server read it */
    }
    /* One more starts: closed at once. */
    h_client *over = hc_connect(h);
    hc_send(over, "\x16", 1);
    assert_true(hc_wait_eof(over, 2000));
    hc_close(over);
    for (int i = 0; i < 2; i++)
        assert_false(slow[i]->eof); /* the two at the limit are still waited for */
    /* The quiet one can still do its whole handshake once a slot is free. */
    hc_close(slow[0]);
    tlsc *t = tlsc_on(quiet, NULL, 0, 0);
    assert_true(tlsc_handshake(t));
    tlsc_free(t);
    hc_close(slow[1]);
    h_stop(h);
    drop_pki();
}

static void on_session_secure(ferry_session *s, void *ud)
{
    *(int *)ud = ferry_session_secure(s) ? 1 : -1;
}

/* Socket.IO's handshake.secure: 1 for a session opened over TLS, 0 over plain HTTP. */
static void session_secure(void **state)
{
    (void)state;
    make_pki();
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    h_server *h = start_tls(&cfg);
    assert_int_equal(ferry_server_listen(h->srv, "127.0.0.1", 0), 0);
    int seen = 0;
    assert_int_equal(ferry_server_on_session(h->srv, on_session_secure, &seen), 0);
    static const char open_req[] = "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"
                                   "Host: localhost\r\n\r\n";
    tlsc *t = tlsc_new(h, NULL, 0, 0);
    assert_true(tlsc_handshake(t));
    char out[4096];
    assert_true(tlsc_request(t, open_req, out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
    assert_int_equal(seen, 1);
    tlsc_free(t);
    /* The same over the plain listener. */
    seen = 0;
    h->port = ferry_server_listener_port(h->srv, 1);
    h_response r;
    assert_int_equal(h_request(h, open_req, &r), 200);
    assert_int_equal(seen, -1);
    h_stop(h);
    drop_pki();
}

static void on_session_keep(ferry_session *s, void *ud)
{
    *(ferry_session **)ud = s;
}

/* The session counters (ferry_session_counter()) count HTTP bytes, as a plain-HTTP peer sees
 * them: under TLS the plaintext of the request and of the answer, not the records around them. */
static void counters_count_plaintext(void **state)
{
    (void)state;
    make_pki();
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    h_server *h = start_tls(&cfg);
    ferry_session *s = NULL;
    assert_int_equal(ferry_server_on_session(h->srv, on_session_keep, &s), 0);
    static const char open_req[] = "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"
                                   "Host: localhost\r\n\r\n";
    tlsc *t = tlsc_new(h, NULL, 0, 0);
    assert_true(tlsc_handshake(t));
    char out[4096];
    size_t n = tlsc_request(t, open_req, out, sizeof(out));
    assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
    assert_non_null(s);
    assert_int_equal(ferry_session_counter(s, FERRY_COUNTER_BYTES_IN), strlen(open_req));
    assert_int_equal(ferry_session_counter(s, FERRY_COUNTER_BYTES_OUT), n);
    assert_int_equal(ferry_session_counter(s, FERRY_COUNTER_REQUESTS), 1);
    assert_true(t->c->len > n); /* the ciphertext the client read: records, handshake */
    tlsc_free(t);
    h_stop(h);
    drop_pki();
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(api_errors_and_ownership),
    cmocka_unit_test(handshake_and_request_byte_by_byte),
    cmocka_unit_test(alpn_without_http11_refused),
    cmocka_unit_test(plain_http_on_tls_port),
    cmocka_unit_test(handshake_timeout),
    cmocka_unit_test(max_tls_handshakes_at_limit_and_one_over),
    cmocka_unit_test(session_secure),
    cmocka_unit_test(counters_count_plaintext),
};

FERRY_TEST_MAIN(tests)
