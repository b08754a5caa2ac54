/* Connections: accept, read, parse with llhttp, hand complete requests to the router, write
 * responses, and close, with the limits of ferry_http_limits applied where bytes come in. */
#include "http/conn.h"

#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "common/assert.h"
#include "common/log.h"
#include "common/mem.h"
#include "http/tls.h"

/* Bytes read but not parsed beyond one maximal request: enough for a pipelined follower.
 * Past it, reading pauses until the current request is answered. */
#define READ_SLACK (64 * 1024)
#define READ_CHUNK FERRY_HTTP_READ_CHUNK
/* How long a closing connection may take to flush what it has queued and then to drop what
 * the client still sends (lingering close, see on_shutdown). */
#define LINGER_MS 2000

static const llhttp_settings_t *parser_settings(void);
static void process(ferry_conn *c);
static void process_scratch(ferry_conn *c, size_t n);
static void defer_process(ferry_conn *c);
static void on_close(uv_handle_t *h);
static void conn_free(ferry_conn *c);

/* Around every call out (common/life.h). */
static void conn_hold(ferry_conn *c)
{
    ferry_life_hold(&c->life);
}

static void conn_unhold(ferry_conn *c)
{
    if (ferry_life_drop(&c->life))
        conn_free(c);
}
static int raw_write(ferry_conn *c, const ferry_slice *s, size_t n);

/* ------------------------------------------------------------------ TLS state
 *
 * TLS lives inside the connection (h2o's way): ciphertext read from the socket goes into an
 * OpenSSL memory BIO, plaintext comes out into c->in where llhttp or the taker reads it as on
 * a plain connection; ferry_conn_write() encrypts into the other memory BIO and writes the
 * ciphertext with uv_write. Nothing above this file knows. No OpenSSL call touches a socket,
 * so none can block: every step runs when libuv says bytes came or may go. */
typedef struct conn_tls {
    SSL *ssl;
    BIO *rbio;      /* network -> OpenSSL (owned by ssl) */
    BIO *wbio;      /* OpenSSL -> network (owned by ssl) */
    ferry_tls *ctx; /* retained: the SNI callback reads it during the handshake */
    unsigned handshaking : 1; /* the handshake has not completed */
    unsigned counted : 1;     /* in http->tls_handshaking: it started (bytes came) */
    unsigned first : 1;       /* nothing read yet: a plain HTTP client shows at its first byte */
    unsigned done : 1;        /* fatal error or close_notify sent: no more SSL calls */
    unsigned peer_closed : 1; /* the client sent close_notify */
    unsigned stalled : 1;     /* the last pull stopped because c->in was full */
} conn_tls;

/* Ciphertext read at once (the first half of http->tls_scratch), and plaintext gathered for
 * one SSL_write (the second half; small slices such as a WebSocket frame header would
 * otherwise each cost a record). */
#define TLS_READ (64 * 1024)
#define TLS_STAGE (64 * 1024)
/* A slice this large is encrypted where it is, not gathered. */
#define TLS_DIRECT (4 * 1024)
/* Plaintext is pulled a record at a time: an idle connection's input stays this small. */
#define TLS_RECORD 16384

/* ------------------------------------------------------------------ timers */

static void set_timer(ferry_conn *c, conn_timer_kind kind, uint32_t ms)
{
    c->timer_kind = kind;
    if (kind == CONN_TIMER_NONE || ms == 0)
        ferry_timer_stop(c->http->wheel, &c->timer);
    else
        ferry_timer_start(c->http->wheel, &c->timer, ms);
}

static void on_timer(ferry_timer *t)
{
    ferry_conn *c = container_of(t, ferry_conn, timer);
    switch (c->timer_kind) {
    case CONN_TIMER_HEADER:
        c->http->stats.timeouts++;
        FERRY_LOG(FERRY_LOG_INFO, "http", NULL, "request timeout: closing connection");
        if (c->state == CONN_HTTP && !c->waiting) {
            /* The client is still sending a request: tell it why, then close (Node: 408). */
            static const char msg[] = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                                      "Content-Length: 0\r\n\r\n";
            ferry_slice s = {msg, sizeof(msg) - 1, NULL};
            ferry_conn_write(c, &s, 1);
        }
        ferry_conn_close(c);
        break;
    case CONN_TIMER_IDLE:
        c->http->stats.timeouts++;
        ferry_conn_close(c);
        break;
    case CONN_TIMER_LINGER:
        ferry_conn_abort(c);
        break;
    case CONN_TIMER_HANDSHAKE:
        c->http->stats.tls_timeouts++;
        FERRY_LOG(FERRY_LOG_INFO, "tls", NULL, "handshake timeout: closing connection");
        c->tls->done = 1;
        ferry_conn_abort(c);
        break;
    case CONN_TIMER_NONE:
        break;
    }
}

/* ------------------------------------------------------------------ TLS */

static int tls_setup(ferry_conn *c, ferry_tls *tls)
{
    conn_tls *t = ferry_mem_calloc(1, sizeof(*t));
    if (t == NULL)
        return -FERRY_ENOMEM;
    t->ssl = SSL_new(ferry_tls_default_ctx(tls));
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        ferry_mem_free(t);
        return -FERRY_ENOMEM;
    }
    /* An empty BIO means "wait for more", not end of stream. */
    BIO_set_mem_eof_return(t->rbio, -1);
    BIO_set_mem_eof_return(t->wbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_accept_state(t->ssl);
    t->ctx = ferry_tls_retain(tls);
    t->handshaking = 1;
    t->first = 1;
    c->tls = t;
    return 0;
}

static void tls_free(ferry_conn *c)
{
    conn_tls *t = c->tls;
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    ferry_tls_release(t->ctx);
    ferry_mem_free(t);
    c->tls = NULL;
}

/* Bytes OpenSSL holds that c->in has not seen: undecrypted records or decrypted plaintext. */
static int tls_buffered(const ferry_conn *c)
{
    return BIO_ctrl_pending(c->tls->rbio) > 0 || SSL_pending(c->tls->ssl) > 0;
}

/* A memory BIO keeps the largest size it ever held: a connection that once carried a 10 MB
 * message would keep 10 MB for its life. Past this size an emptied BIO is replaced. */
#define TLS_BIO_KEEP (32 * 1024)

static BIO *bio_trimmed(BIO *b)
{
    BUF_MEM *m = NULL;
    if (BIO_ctrl_pending(b) != 0 || BIO_get_mem_ptr(b, &m) != 1 || m == NULL ||
        m->max <= TLS_BIO_KEEP)
        return NULL;
    BIO *fresh = BIO_new(BIO_s_mem());
    if (fresh != NULL)
        BIO_set_mem_eof_return(fresh, -1);
    return fresh; /* NULL when out of memory: the large one stays, which is only a waste */
}

/* Write what OpenSSL produced (handshake messages, records, alerts) to the socket. */
static int tls_flush(ferry_conn *c)
{
    size_t pending = BIO_ctrl_pending(c->tls->wbio);
    if (pending == 0)
        return 0;
    ferry_buf *b = ferry_buf_new(pending);
    if (b == NULL) {
        ferry_conn_abort(c);
        return -FERRY_ENOMEM;
    }
    int got = BIO_read(c->tls->wbio, b->data, (int)pending);
    b->len = got > 0 ? (size_t)got : 0;
    BIO *fresh = bio_trimmed(c->tls->wbio);
    if (fresh != NULL) {
        SSL_set0_wbio(c->tls->ssl, fresh); /* frees the old one */
        c->tls->wbio = fresh;
    }
    ferry_slice sl = {b->data, b->len, b};
    int rc = raw_write(c, &sl, 1);
    ferry_buf_release(b);
    return rc;
}

/* A fatal TLS error: send the alert OpenSSL queued (it tells the client why), then close. */
static void tls_fail(ferry_conn *c, const char *what, int err)
{
    conn_tls *t = c->tls;
    char why[200];
    if (err == SSL_ERROR_SSL)
        ferry_tls_error_text(why, sizeof(why));
    else
        snprintf(why, sizeof(why), "SSL error %d", err);
    ERR_clear_error();
    if (t->handshaking)
        c->http->stats.tls_failed++;
    FERRY_LOG(FERRY_LOG_INFO, "tls", NULL, "%s failed: %s", what, why);
    t->done = 1;
    tls_flush(c);
    ferry_conn_close(c);
}

static void tls_uncount(ferry_conn *c)
{
    if (c->tls != NULL && c->tls->counted) {
        c->tls->counted = 0;
        c->http->tls_handshaking--;
    }
}

static void tls_handshake_done(ferry_conn *c)
{
    c->tls->handshaking = 0;
    tls_uncount(c);
    c->http->stats.tls_handshakes++;
    /* From here on the connection is a plain one: a first request must come in time. */
    set_timer(c, CONN_TIMER_HEADER, c->http->limits.header_timeout_ms);
}

/* Where a plain HTTP request belongs: "Location: https://HOST/TARGET\r\n" into out, from the
 * request's own Host (its port is this TLS port) and target, when the whole head came in the
 * first read and both look sane; 0 otherwise. */
static int plain_http_location(const char *d, size_t n, char *out, size_t cap)
{
    const char *end = memmem(d, n, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    const char *eol = memmem(d, (size_t)(end - d) + 2, "\r\n", 2);
    const char *sp1 = memchr(d, ' ', (size_t)(eol - d));
    const char *t = sp1 ? sp1 + 1 : NULL;
    const char *sp2 = t ? memchr(t, ' ', (size_t)(eol - t)) : NULL;
    if (sp2 == NULL || *t != '/' || sp2 - t > 2048)
        return 0;
    for (const char *q = t; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return 0;
    const char *host = NULL;
    size_t hlen = 0;
    for (const char *p = eol; p < end && host == NULL;) {
        const char *line = p + 2;
        const char *le = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        if (le == NULL)
            break;
        if (le - line > 5 && strncasecmp(line, "host:", 5) == 0) {
            host = line + 5;
            while (host < le && (*host == ' ' || *host == '\t'))
                host++;
            hlen = (size_t)(le - host);
            while (hlen > 0 && (host[hlen - 1] == ' ' || host[hlen - 1] == '\t'))
                hlen--;
        }
        p = le;
    }
    if (host == NULL || !ferry_http_host_ok(host, hlen))
        return 0;
    int k = snprintf(out, cap, "Location: https://%.*s%.*s\r\n", (int)hlen, host,
                     (int)(sp2 - t), t);
    return k > 0 && (size_t)k < cap;
}

/* A client that speaks plain HTTP to the TLS port (http://host:tlsport/ typed in a browser):
 * sent to the same URL over https (308) when its head came whole in the first read, else told
 * in plain text (400, as nginx does); the connection closes either way. */
static void tls_plain_http(ferry_conn *c, const char *data, size_t len)
{
    static const char body[] = "This port speaks TLS: use https:// (or wss://).\n";
    char loc[2400];
    char msg[2800];
    int n;
    if (plain_http_location(data, len, loc, sizeof(loc)))
        n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 308 Permanent Redirect\r\nConnection: close\r\n%s"
                     "Content-Length: 0\r\n\r\n",
                     loc);
    else
        n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                     "Content-Type: text/plain; charset=UTF-8\r\nContent-Length: %zu\r\n\r\n%s",
                     sizeof(body) - 1, body);
    c->http->stats.tls_plain_http++;
    c->tls->done = 1;
    FERRY_LOG(FERRY_LOG_INFO, "tls", NULL, "plain HTTP on a TLS port: %.3s", msg + 9);
    ferry_buf *b = n > 0 && (size_t)n < sizeof(msg) ? ferry_buf_from(msg, (size_t)n) : NULL;
    if (b != NULL) {
        ferry_slice sl = {b->data, b->len, b};
        raw_write(c, &sl, 1);
        ferry_buf_release(b);
    }
    ferry_conn_close(c);
}

static size_t input_limit(const ferry_conn *c);

static void start_reading(ferry_conn *c);

/* Move what OpenSSL has into c->in: the handshake first, then plaintext while there is room.
 * Returns the plaintext bytes added, or -1 when the connection was closed. */
static long tls_pull(ferry_conn *c)
{
    conn_tls *t = c->tls;
    t->stalled = 0;
    if (t->done)
        return 0;
    ERR_clear_error();
    if (t->handshaking) {
        int rc = SSL_do_handshake(t->ssl);
        if (rc != 1) {
            int err = SSL_get_error(t->ssl, rc);
            if (err == SSL_ERROR_WANT_READ)
                return tls_flush(c) == 0 ? 0 : -1;
            tls_fail(c, "handshake", err);
            return -1;
        }
        tls_handshake_done(c);
    }
    long total = 0;
    while (!c->read_paused && !t->peer_closed) {
        size_t limit = input_limit(c);
        if (c->in.len >= limit) {
            /* Full: stop reading the socket; the records wait in the BIO, bounded by what one
             * read brought, until the input is consumed. */
            t->stalled = 1;
            if (c->reading) {
                uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = 0;
            }
            break;
        }
        size_t want = limit - c->in.len < TLS_RECORD ? limit - c->in.len : TLS_RECORD;
        if (ferry_vec_reserve(&c->in, want, limit) != 0) {
            ferry_conn_abort(c);
            return -1;
        }
        int n = SSL_read(t->ssl, c->in.base + c->in.len, (int)want);
        if (n > 0) {
            c->in.len += (size_t)n;
            total += n;
            continue;
        }
        int err = SSL_get_error(t->ssl, n);
        if (err == SSL_ERROR_WANT_READ)
            break;
        if (err == SSL_ERROR_ZERO_RETURN) {
            t->peer_closed = 1;
            break;
        }
        tls_fail(c, "read", err);
        return -1;
    }
    BIO *fresh = bio_trimmed(t->rbio);
    if (fresh != NULL) {
        SSL_set0_rbio(t->ssl, fresh); /* frees the old one */
        t->rbio = fresh;
    }
    /* Reading may produce output too: TLS 1.3 session tickets, a KeyUpdate answer. */
    return tls_flush(c) == 0 ? total : -1;
}

/* Ciphertext arrived: into the read BIO, then through the pump. */
static void tls_on_read(ferry_conn *c, const char *data, size_t n)
{
    conn_tls *t = c->tls;
    if (t->first) {
        t->first = 0;
        /* A TLS record starts with its type (22 for a handshake); a letter starts a method. */
        if (data[0] >= 'A' && data[0] <= 'Z') {
            tls_plain_http(c, data, n);
            return;
        }
        /* A handshake starts: the CPU and memory it takes are bounded by max_tls_handshakes.
         * Counted from the first byte, not from the accept, so that idle connections (bounded
         * by max_connections and the handshake timeout) cannot keep real clients out. */
        ferry_http *http = c->http;
        if (http->limits.max_tls_handshakes &&
            http->tls_handshaking >= http->limits.max_tls_handshakes) {
            http->stats.tls_refused_busy++;
            FERRY_LOG(FERRY_LOG_WARN, "tls", NULL,
                      "max_tls_handshakes (%u) in flight: closing a connection",
                      http->limits.max_tls_handshakes);
            t->done = 1;
            ferry_conn_abort(c);
            return;
        }
        t->counted = 1;
        http->tls_handshaking++;
    }
    if (BIO_write(t->rbio, data, (int)n) != (int)n) {
        t->done = 1;
        ferry_conn_abort(c);
        return;
    }
    process(c);
}

/* Encrypt the slices into as few records as fit, then write the ciphertext in one uv_write.
 * Under TLS each connection encrypts its own copy: a shared broadcast payload is read, not
 * copied, when it is large, and gathered with its neighbours when it is small. */
static int tls_write(ferry_conn *c, const ferry_slice *s, size_t n)
{
    conn_tls *t = c->tls;
    if (c->state == CONN_CLOSING || t->done || t->handshaking)
        return -FERRY_ECLOSED;
    char *stage = c->http->tls_scratch + TLS_READ;
    size_t fill = 0;
    int ok = 1;
    ERR_clear_error();
    for (size_t i = 0; i < n && ok; i++) {
        const char *p = s[i].base;
        size_t len = s[i].len;
        if (len == 0)
            continue;
        if (len >= TLS_DIRECT || fill + len > TLS_STAGE) {
            if (fill > 0)
                ok = SSL_write(t->ssl, stage, (int)fill) == (int)fill;
            fill = 0;
        }
        if (!ok)
            break;
        if (len >= TLS_DIRECT) {
            ok = SSL_write(t->ssl, p, (int)len) == (int)len;
        } else {
            memcpy(stage + fill, p, len);
            fill += len;
        }
    }
    if (ok && fill > 0)
        ok = SSL_write(t->ssl, stage, (int)fill) == (int)fill;
    if (!ok) {
        tls_fail(c, "write", SSL_ERROR_SSL);
        return -FERRY_ECLOSED;
    }
    return tls_flush(c);
}

/* ------------------------------------------------------------------ accept */

void ferry_conn_accept(ferry_http *http, uv_stream_t *server, ferry_tls *tls, int redirect_port)
{
    ferry_conn *c = ferry_mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        FERRY_LOG(FERRY_LOG_ERROR, "http", NULL, "out of memory accepting a connection");
        /* It cannot stay where it is: libuv stops watching the listener until it is taken. */
        ferry_http_refuse(http, server);
        return;
    }
    if (uv_tcp_init(http->loop, &c->tcp) != 0) {
        ferry_mem_free(c);
        return;
    }
    c->http = http;
    c->tcp.data = c;
    ferry_life_init(&c->life);
    ferry_list_init(&c->deferred);
    ferry_timer_init(&c->timer, on_timer);
    ferry_list_insert_tail(&http->conns, &c->link);
    http->nconns++;
    http->open_handles++;
    c->state = CONN_HTTP;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        ferry_conn_abort(c);
        return;
    }
    http->stats.accepted++;
    if (http->closing || (http->limits.max_connections && http->nconns > http->limits.max_connections)) {
        http->stats.refused_over_limit++;
        /* One line a second at most: a client retrying in a loop must not flood the log. */
        uint64_t now = uv_now(http->loop);
        if (http->limit_logged_ms == 0 || now - http->limit_logged_ms >= 1000) {
            http->limit_logged_ms = now;
            FERRY_LOG(FERRY_LOG_WARN, "http", NULL,
                      "max_connections (%u) reached: closing new connections (%llu so far); "
                      "raise the descriptor limit (ulimit -n) or max_connections",
                      http->limits.max_connections,
                      (unsigned long long)http->stats.refused_over_limit);
        }
        ferry_conn_abort(c);
        return;
    }
    c->redirect_port = redirect_port;
    if (tls != NULL) {
        if (tls_setup(c, tls) != 0) {
            FERRY_LOG(FERRY_LOG_ERROR, "tls", NULL, "out of memory accepting a connection");
            ferry_conn_abort(c);
            return;
        }
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->tls != NULL)
        set_timer(c, CONN_TIMER_HANDSHAKE, http->limits.tls_handshake_timeout_ms);
    else
        set_timer(c, CONN_TIMER_HEADER, http->limits.header_timeout_ms);
    ferry_conn_resume_reading(c);
}

/* ------------------------------------------------------------------ reading */

static size_t input_limit(const ferry_conn *c)
{
    if (c->state == CONN_TAKEN)
        return READ_CHUNK * 4;
    return c->http->limits.max_header_bytes + c->http->limits.max_body_bytes + READ_SLACK;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    ferry_conn *c = h->data;
    (void)suggested;
    if (c->tls != NULL) {
        /* Ciphertext goes into the read BIO within on_read: one buffer serves every TLS
         * connection (libuv calls alloc and read back to back for one stream). */
        buf->base = c->http->tls_scratch;
        buf->len = TLS_READ;
        return;
    }
    if (c->in.len == 0 && c->http->read_scratch != NULL) {
        /* Nothing waits unparsed: read into the shared buffer (on_read keeps the rest). */
        buf->base = c->http->read_scratch;
        buf->len = READ_CHUNK;
        return;
    }
    size_t want = READ_CHUNK;
    size_t limit = input_limit(c);
    if (c->in.len + want > limit)
        want = limit > c->in.len ? limit - c->in.len : 0;
    int rc = want == 0 ? -FERRY_ETOOBIG : ferry_vec_reserve(&c->in, want, limit);
    if (rc != 0) {
        c->in_nomem = rc == -FERRY_ENOMEM;
        buf->base = NULL;
        buf->len = 0; /* libuv reports UV_ENOBUFS */
        return;
    }
    buf->base = c->in.base + c->in.len;
    buf->len = want;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    ferry_conn *c = s->data;
    (void)buf;
    if (nread == UV_ENOBUFS && c->in_nomem) {
        /* No memory for this connection's input: nothing will resume the read, so the
         * connection ends now rather than hang until a timeout (issue 9). */
        FERRY_LOG(FERRY_LOG_WARN, "http", NULL, "out of memory reading: closing a connection");
        uv_read_stop(s);
        c->reading = 0;
        ferry_conn_close(c);
        return;
    }
    if (nread == UV_ENOBUFS) {
        /* The input is full: stop until the current request has been answered. */
        uv_read_stop(s);
        c->reading = 0;
        return;
    }
    if (nread < 0) {
        if (nread != UV_EOF)
            FERRY_LOG(FERRY_LOG_DEBUG, "http", NULL, "read: %s", uv_strerror((int)nread));
        c->eof = 1;
        /* As Node's HTTP server does without httpAllowHalfOpen: the peer's end aborts a
         * request that is still waiting for its answer. */
        ferry_conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->tls != NULL) {
        tls_on_read(c, buf->base, (size_t)nread);
        return;
    }
    if (buf->base == c->http->read_scratch) {
        process_scratch(c, (size_t)nread);
        return;
    }
    c->in.len += (size_t)nread;
    process(c);
}

static void start_reading(ferry_conn *c)
{
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
}

void ferry_conn_resume_reading(ferry_conn *c)
{
    if (c->state == CONN_CLOSING || c->reading)
        return;
    c->read_paused = 0;
    if (c->tls != NULL) {
        /* Plaintext may wait inside OpenSSL (the pull stopped when the input was full): pull
         * it on the next turn; read the socket only while there is room for more. */
        if (tls_buffered(c))
            defer_process(c);
        if (c->in.len >= input_limit(c))
            return;
    }
    start_reading(c);
}

void ferry_conn_pause_reading(ferry_conn *c)
{
    c->read_paused = 1;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

/* ------------------------------------------------------------------ parser callbacks */

static ferry_conn *conn_of(llhttp_t *p)
{
    return p->data;
}

/* A piece of a head token (llhttp may deliver one in several pieces, one per read) into the
 * request's store, where the head is gathered as "url\0name\0value\0...": one buffer per
 * request rather than three accumulators per connection, and nothing kept between requests.
 * Bounded: the tokens by max_header_bytes (count_header), plus one NUL each. */
static int store_put(ferry_conn *c, const char *at, size_t n)
{
    /* A NUL inside a token would misplace every string after it (llhttp lets none through
     * in its strict mode; this holds whatever the mode). */
    if (n > 0 && memchr(at, '\0', n) != NULL) {
        c->p->error_status = 400;
        return -1;
    }
    size_t max = 2 * c->http->limits.max_header_bytes + 2;
    int rc = ferry_vec_append(&c->req->store, n > 0 ? at : "", n, max);
    if (rc != 0)
        c->p->error_status = rc == -FERRY_ETOOBIG ? 431 : 503;
    return rc == 0 ? 0 : -1;
}

/* The end of a token: its NUL. */
static int store_end(llhttp_t *p)
{
    ferry_conn *c = p->data;
    int rc = ferry_vec_append(&c->req->store, "", 1, 2 * c->http->limits.max_header_bytes + 2);
    if (rc != 0)
        c->p->error_status = rc == -FERRY_ETOOBIG ? 431 : 503;
    return rc == 0 ? 0 : -1;
}

/* An early lower bound on the head's size from the tokens seen so far (431 beyond), so that
 * one huge read cannot grow the accumulators; the exact count is done in process(). */
static int count_header(ferry_conn *c, size_t n)
{
    c->p->header_bytes += n;
    if (c->p->header_bytes > c->http->limits.max_header_bytes) {
        c->p->error_status = 431;
        return -1;
    }
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    ferry_conn *c = conn_of(p);
    FERRY_ASSERT(c->req == NULL);
    c->req = ferry_mem_calloc(1, sizeof(*c->req));
    if (c->req == NULL) {
        c->p->error_status = 503;
        return -1;
    }
    c->req->conn = c;
    c->p->header_bytes = 0;
    c->p->busy = 1;
    if (c->timer_kind != CONN_TIMER_HEADER)
        set_timer(c, CONN_TIMER_HEADER, c->http->limits.header_timeout_ms);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    ferry_conn *c = conn_of(p);
    if (count_header(c, n) != 0)
        return -1;
    return store_put(c, at, n);
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    ferry_conn *c = conn_of(p);
    if (count_header(c, n) != 0)
        return -1;
    return store_put(c, at, n);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    ferry_conn *c = conn_of(p);
    if (count_header(c, n) != 0)
        return -1;
    return store_put(c, at, n);
}

/* One more NUL in [p, end). */
static size_t count_nuls(const char *p, const char *end)
{
    size_t n = 0;
    while (p < end && (p = memchr(p, '\0', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

/* The head is complete: lay the request out in its store. It holds "url\0name\0value\0..."
 * (the tokens as they came); behind them go the percent-decoded path, the query's pairs
 * ("name\0value\0", decoded) and, aligned, the headers' and the query's ferry_kv arrays,
 * whose pointers point into the same block. One allocation, sized once: a request held for a
 * long poll keeps its head in one block of about its own size. Returns 0, or the HTTP status
 * to refuse the request with. */
static int req_build(ferry_req *r)
{
    ferry_vec *v = &r->store;
    if (v->len == 0 || v->base[v->len - 1] != '\0')
        return 400;
    size_t ulen = strlen(v->base);
    size_t nheaders = count_nuls(v->base + ulen + 1, v->base + v->len) / 2;
    /* Origin-form targets only ("/path?query"); absolute-form is for proxies. */
    if (v->base[0] != '/')
        return 400;
    const char *qmark = memchr(v->base, '?', ulen);
    int hasq = qmark != NULL; /* qmark is not used past the realloc below, which may move */
    size_t plen = hasq ? (size_t)(qmark - v->base) : ulen;
    size_t qlen = hasq ? ulen - plen - 1 : 0;
    size_t nq = 0;
    if (hasq) {
        nq = 1;
        for (const char *q = qmark + 1; (q = memchr(q, '&', (size_t)(v->base + ulen - q))) != NULL; q++)
            nq++;
    }
    /* Each query pair takes its bytes less the '&', plus two NULs at most. */
    size_t strings = v->len + plen + 1 + (hasq ? qlen + 2 * nq : 0);
    size_t align = _Alignof(ferry_kv);
    size_t kv_off = (strings + align - 1) / align * align;
    size_t total = kv_off + (nheaders + nq) * sizeof(ferry_kv);
    char *base = ferry_mem_realloc(v->base, total);
    if (base == NULL)
        return 503;
    v->base = base;
    v->cap = total;
    ferry_kv *kv = (ferry_kv *)(void *)(base + kv_off);
    r->url = base;
    char *s = base + ulen + 1;
    for (size_t i = 0; i < nheaders; i++) {
        kv[i].name = s;
        s += strlen(s) + 1;
        kv[i].value = s;
        s += strlen(s) + 1;
    }
    r->headers = nheaders ? kv : NULL;
    r->nheaders = nheaders;
    char *out = base + v->len;
    r->path = out;
    memcpy(out, base, plen);
    out[plen] = '\0';
    if (ferry_url_decode(out, plen, 0) < 0)
        return 400;
    out += plen + 1;
    ferry_kv *qkv = kv + nheaders;
    r->query = nq ? qkv : NULL;
    const char *q = base + (hasq ? plen + 1 : ulen);
    const char *qend = base + ulen;
    while (q < qend) {
        const char *amp = memchr(q, '&', (size_t)(qend - q));
        size_t len = amp ? (size_t)(amp - q) : (size_t)(qend - q);
        if (len > 0) {
            const char *eq = memchr(q, '=', len);
            size_t nlen = eq ? (size_t)(eq - q) : len;
            size_t vlen = eq ? len - nlen - 1 : 0;
            ferry_kv *pair = &qkv[r->nquery++];
            pair->name = out;
            memcpy(out, q, nlen);
            out[nlen] = '\0';
            out += nlen + 1;
            pair->value = out;
            memcpy(out, eq ? eq + 1 : "", vlen);
            out[vlen] = '\0';
            out += vlen + 1;
            if (ferry_url_decode(pair->name, nlen, 1) < 0 ||
                ferry_url_decode(pair->value, vlen, 1) < 0)
                return 400;
        }
        q += len;
        if (q < qend)
            q++; /* the '&' */
    }
    FERRY_ASSERT((size_t)(out - base) <= strings);
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    ferry_conn *c = conn_of(p);
    ferry_req *r = c->req;
    r->method = llhttp_method_name((llhttp_method_t)llhttp_get_method(p));
    r->http_major = llhttp_get_http_major(p);
    r->http_minor = llhttp_get_http_minor(p);
    r->keep_alive = llhttp_should_keep_alive(p) ? 1 : 0;
    r->upgrade = llhttp_get_upgrade(p) ? 1 : 0;
    r->head = strcmp(r->method, "HEAD") == 0;
    int status = req_build(r);
    if (status != 0) {
        c->p->error_status = status;
        return -1;
    }
    /* Stop at the end of the head: process() counts its exact size before going on. */
    c->head_paused = 1;
    return HPE_PAUSED;
}

/* The head is complete and within its limit: check the declared body, tell the route. */
static int head_complete(ferry_conn *c)
{
    ferry_req *r = c->req;
    /* The route hears of the request first, so that a holder (a polling POST) is told through
     * its abort callback when the request is then refused: a 413 closes its session. */
    if (c->redirect_port == 0)
        ferry_http_route_head(c->http, r);
    if (c->state == CONN_CLOSING)
        return -1;
    /* A declared body over the limit is refused before it is sent. */
    if ((c->p->parser.flags & F_CONTENT_LENGTH) &&
        c->p->parser.content_length > c->http->limits.max_body_bytes) {
        c->p->error_status = 413;
        return -1;
    }
    const char *expect = ferry_req_header_get(r, "expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ferry_slice s = {cont, sizeof(cont) - 1, NULL};
        ferry_conn_write(c, &s, 1);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    ferry_conn *c = conn_of(p);
    int rc = ferry_vec_append(&c->req->body, at, n, c->http->limits.max_body_bytes);
    if (rc != 0) {
        c->p->error_status = rc == -FERRY_ETOOBIG ? 413 : 503;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    ferry_conn *c = conn_of(p);
    set_timer(c, CONN_TIMER_NONE, 0);
    /* Stop here: the request is handled before the next pipelined one is parsed. */
    return HPE_PAUSED;
}

static const llhttp_settings_t *parser_settings(void)
{
    static llhttp_settings_t s;
    static int ready;
    if (!ready) {
        llhttp_settings_init(&s);
        s.on_message_begin = on_message_begin;
        s.on_url = on_url;
        s.on_url_complete = store_end;
        s.on_header_field = on_header_field;
        s.on_header_field_complete = store_end;
        s.on_header_value = on_header_value;
        s.on_header_value_complete = store_end;
        s.on_headers_complete = on_headers_complete;
        s.on_body = on_body;
        s.on_message_complete = on_message_complete;
        ready = 1;
    }
    return &s;
}

/* ------------------------------------------------------------------ processing */

/* Forget the current request without answering it; a holder hears on_abort first. */
static void drop_req(ferry_conn *c)
{
    ferry_req *r = c->req;
    if (r == NULL)
        return;
    int dispatched = c->waiting;
    c->req = NULL;
    c->waiting = 0;
    if (r->on_abort != NULL) {
        conn_hold(c);
        r->on_abort(r, r->abort_ud);
        conn_unhold(c);
    } else if (dispatched) {
        /* A handler (a ferry_server_route callback) still owns this request and will answer
         * it later: it is orphaned, not freed, and ferry_http_reply() frees it then with
         * -FERRY_ECLOSED. Freeing it here left the handler a dangling pointer. */
        r->conn = NULL;
        return;
    }
    ferry_req_free(r);
}

static void reject(ferry_conn *c, int status)
{
    ferry_http_stats *st = &c->http->stats;
    if (status == 431)
        st->header_too_large++;
    else if (status == 413)
        st->body_too_large++;
    else
        st->bad_requests++;
    FERRY_LOG(FERRY_LOG_INFO, "http", NULL, "bad request: %d %s (%s)", status,
              ferry_http_status_text(status), llhttp_get_error_reason(&c->p->parser));
    char head[160];
    ferry_strbuf sb;
    ferry_strbuf_init(&sb, head, sizeof(head));
    ferry_strbuf_printf(&sb, "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                        status, ferry_http_status_text(status));
    FERRY_ASSERT(ferry_strbuf_error(&sb) == 0); /* status texts are short and fixed */
    ferry_buf *b = ferry_buf_from(head, sb.len);
    if (b != NULL) {
        ferry_slice s = {b->data, b->len, b};
        ferry_conn_write(c, &s, 1);
        ferry_buf_release(b);
    }
    drop_req(c);
    ferry_conn_close(c);
}

/* All of the input consumed: give its buffer back until a read needs one again, so that an
 * idle connection (a WebSocket, an SSE stream, a held long poll, a keep-alive connection
 * between requests) holds none; the next read goes to the shared scratch (on_alloc). Not
 * under TLS, whose reads fill c->in from OpenSSL (process() frees it there), nor while c->in
 * borrows the scratch. */
static void in_release(ferry_conn *c)
{
    if (c->in.len == 0 && c->in.cap > 0 && c->tls == NULL &&
        c->in.base != c->http->read_scratch && !ferry_life_held(&c->life))
        ferry_vec_free(&c->in);
}

/* Hand the bytes buffered past a take to the new owner. */
static void feed_taken(ferry_conn *c)
{
    while (c->state == CONN_TAKEN && c->in.len > 0 && !c->read_paused) {
        size_t n = c->in.len;
        if (c->meter != NULL)
            c->meter->bytes_in += n;
        if (c->total != NULL)
            c->total->bytes_in += n;
        /* The handler may write, close or pause; the bytes stay ours until it returns. */
        conn_hold(c);
        c->handler->on_data(c, c->in.base, n, c->handler_ud);
        conn_unhold(c);
        if (c->state == CONN_CLOSING)
            return;
        ferry_vec_consume(&c->in, n);
    }
    in_release(c);
}

/* A request's first bytes are here: a fresh parser for it. */
static int parse_begin(ferry_conn *c)
{
    c->p = ferry_mem_calloc(1, sizeof(*c->p));
    if (c->p == NULL) {
        FERRY_LOG(FERRY_LOG_WARN, "http", NULL, "out of memory parsing: closing a connection");
        ferry_conn_close(c);
        return -FERRY_ENOMEM;
    }
    llhttp_init(&c->p->parser, HTTP_REQUEST, parser_settings());
    c->p->parser.data = c;
    return 0;
}

static void process_input(ferry_conn *c)
{
    if (ferry_life_held(&c->life))
        return; /* the outer call continues with what arrived */
    conn_hold(c);
    const size_t max_head = c->http->limits.max_header_bytes;
    /* After the head's pause a bodiless request completes without further bytes. */
    while (c->state == CONN_HTTP && !c->waiting && (c->in.len > 0 || c->in_body)) {
        if (c->p == NULL && parse_begin(c) != 0)
            break;
        llhttp_errno_t err = llhttp_execute(&c->p->parser, c->in.base, c->in.len);
        if (err == HPE_OK) {
            /* Everything was taken. Still in the head: it is at least this long. */
            if (!c->in_body) {
                c->p->head_fed += c->in.len;
                if (c->p->head_fed > max_head) {
                    c->p->error_status = 431;
                    reject(c, 431);
                    break;
                }
            } else {
                c->p->body_fed += c->in.len;
            }
            ferry_vec_consume(&c->in, c->in.len);
            break;
        }
        size_t used = (size_t)(llhttp_get_error_pos(&c->p->parser) - c->in.base);
        if (err != HPE_PAUSED) {
            reject(c, c->p->error_status ? c->p->error_status : 400);
            break;
        }
        ferry_vec_consume(&c->in, used);
        llhttp_resume(&c->p->parser);
        if (c->head_paused) {
            /* The exact head size: request line, header lines and the blank line. */
            c->head_paused = 0;
            size_t head = c->p->head_fed + used;
            c->p->head_fed = 0;
            c->p->body_fed = 0;
            c->req->wire_in = head;
            c->req->head_in = head;
            if (head > max_head) {
                reject(c, 431);
                break;
            }
            if (head_complete(c) != 0) {
                if (c->state != CONN_CLOSING)
                    reject(c, c->p->error_status ? c->p->error_status : 400);
                break;
            }
            c->in_body = 1;
            continue;
        }
        c->in_body = 0;
        ferry_req *r = c->req;
        r->wire_in += c->p->body_fed + used; /* the body as it came: chunk sizes and all */
        c->p->body_fed = 0;
        c->p->busy = 0;
        c->waiting = 1;
        c->http->stats.requests++;
        if (c->redirect_port != 0)
            ferry_http_redirect(r, c->redirect_port);
        else
            ferry_http_dispatch(c->http, r);
    }
    conn_unhold(c);
    if (c->state == CONN_TAKEN) {
        feed_taken(c);
        return;
    }
    /* Between requests, with nothing buffered: the parser goes until bytes come. */
    if (c->state == CONN_HTTP && c->p != NULL && !c->p->busy && c->in.len == 0) {
        ferry_mem_free(c->p);
        c->p = NULL;
    }
    if (c->state == CONN_HTTP && !c->reading && !c->eof && !c->read_paused)
        ferry_conn_resume_reading(c);
}

static void process(ferry_conn *c)
{
    if (c->tls == NULL) {
        process_input(c);
        in_release(c);
        return;
    }
    if (ferry_life_held(&c->life))
        return;
    conn_tls *t = c->tls;
    for (;;) {
        long got = tls_pull(c);
        if (got < 0 || c->state == CONN_CLOSING)
            return;
        process_input(c);
        if (c->state == CONN_CLOSING)
            return;
        if (t->peer_closed) {
            /* close_notify: the end of the stream, as a plain EOF. */
            c->eof = 1;
            ferry_conn_close(c);
            return;
        }
        /* Go on while plaintext came, or the input was full and has room again. */
        if (got == 0 && !(t->stalled && c->in.len < input_limit(c)))
            break;
    }
    /* Reading stopped for lack of room: start again now that there is some. */
    if (!c->reading && !c->read_paused && !c->eof && c->in.len < input_limit(c))
        start_reading(c);
    /* All consumed: the input buffer is given back, so that an idle TLS connection holds no
     * 16 KiB of it (one malloc per read burst; measured: 25 KiB per idle wss connection
     * against 92 KiB while it kept a 64 KiB buffer made resident by the handshakes' heap). */
    if (c->in.len == 0 && c->in.cap > 0)
        ferry_vec_free(&c->in);
}

/* n bytes were read into http->read_scratch while c->in was empty: parse them where they
 * are (c->in borrows the scratch for the call), then keep in c->in, in a buffer of its own,
 * only what was not consumed. Nothing in here grows c->in (the parser copies what it keeps;
 * a taker consumes what it is given), and no other read can reuse the scratch meanwhile: libuv
 * runs one stream's read callback at a time, never from inside our calls. */
static void process_scratch(ferry_conn *c, size_t n)
{
    char *scratch = c->http->read_scratch;
    FERRY_ASSERT(c->in.len == 0);
    ferry_vec own = c->in; /* empty, maybe with capacity left from an earlier partial read */
    c->in = (ferry_vec){scratch, n, READ_CHUNK};
    process_input(c);
    FERRY_ASSERT(c->in.base == scratch);
    size_t left = c->in.len;
    c->in = own;
    if (left == 0 || c->state == CONN_CLOSING) {
        /* All of it parsed (or the connection is going): hold no buffer while idle. */
        ferry_vec_free(&c->in);
        return;
    }
    /* A request cut in the middle, or what a client sent past the request being answered:
     * kept (consumed from the front, so it sits at the scratch's start). */
    if (ferry_vec_append(&c->in, scratch, left, input_limit(c)) != 0) {
        FERRY_LOG(FERRY_LOG_WARN, "http", NULL, "out of memory reading: closing a connection");
        ferry_conn_close(c);
        return;
    }
    /* What process_input would have done had the bytes been in c->in from the start. */
    if (c->state == CONN_TAKEN)
        feed_taken(c);
    else if (c->state == CONN_HTTP && !c->waiting)
        defer_process(c);
}

void ferry_conn_process_deferred(ferry_http *http)
{
    ferry_list local;
    ferry_list_move(&http->deferred, &local);
    while (!ferry_list_empty(&local)) {
        ferry_conn *c = ferry_list_entry(local.next, ferry_conn, deferred);
        ferry_list_remove(&c->deferred);
        if (c->state != CONN_CLOSING)
            process(c);
    }
}

static void on_idle(uv_idle_t *h)
{
    ferry_http *http = h->data;
    ferry_conn_process_deferred(http);
    if (ferry_list_empty(&http->deferred))
        uv_idle_stop(h);
}

/* Parse the rest of c's input on the next loop turn, outside whatever callback answered the
 * request (it may be another connection's). The idle handle keeps the loop from blocking. */
static void defer_process(ferry_conn *c)
{
    if (ferry_list_linked(&c->deferred))
        return;
    ferry_list_insert_tail(&c->http->deferred, &c->deferred);
    uv_idle_start(&c->http->idle, on_idle);
}

/* The current request was answered or taken: go on with the connection. */
static void request_done(ferry_conn *c)
{
    c->req = NULL;
    c->waiting = 0;
    if (c->state != CONN_HTTP)
        return;
    /* The keep-alive idle time starts now. Bytes already buffered that are not a request
     * (a client's trailing CRLF) do not stop it; a request that begins switches to the header
     * timeout (on_message_begin). */
    set_timer(c, CONN_TIMER_IDLE, c->http->limits.idle_timeout_ms);
    if (c->in.len > 0) {
        if (!ferry_life_held(&c->life))
            defer_process(c);
    } else if (!c->reading && !c->eof) {
        ferry_conn_resume_reading(c);
    }
}

/* ------------------------------------------------------------------ requests */

int ferry_req_is_tls(const ferry_req *req)
{
    return req->conn != NULL && req->conn->tls != NULL;
}

void ferry_req_set_meter(ferry_req *req, ferry_wire_meter *m)
{
    req->meter = m;
}

void ferry_req_set_total(ferry_req *req, ferry_wire_meter *m)
{
    req->total = m;
}

/* An answered request, into its meters. */
static void count_answer(ferry_wire_meter *m, const ferry_req *req, size_t out, size_t head_out)
{
    if (m == NULL)
        return;
    m->bytes_in += req->wire_in;
    m->head_bytes_in += req->head_in;
    m->bytes_out += out;
    m->head_bytes_out += head_out;
    m->requests++;
}

void ferry_req_hold(ferry_req *req, void (*on_abort)(ferry_req *req, void *ud), void *ud)
{
    req->on_abort = on_abort;
    req->abort_ud = ud;
}

int ferry_req_respond(ferry_req *req, int status, const char *content_type,
                      const char *extra_headers, const ferry_slice *body, size_t nbody)
{
    ferry_conn *c = req->conn;
    if (c == NULL) {
        /* Orphaned: its connection closed while a handler held it (drop_req). */
        ferry_req_free(req);
        return -FERRY_ECLOSED;
    }
    FERRY_ASSERT(c->req == req);
    /* Detached before writing: a failed write aborts the connection, and the abort must not
     * free this request a second time (drop_req). */
    c->req = NULL;
    size_t blen = 0;
    for (size_t i = 0; i < nbody; i++)
        blen += body[i].len;
    int keep = req->keep_alive && !c->http->closing && !c->http->draining && !req->upgrade;
    const char *reason = ferry_http_status_text(status);
    /* 128 holds the fixed pieces: status line without its reason, the header names, a 20-digit
     * length, "Connection: keep-alive", the blank line and the NUL. */
    size_t cap = 128 + strlen(reason) + (content_type ? strlen(content_type) : 0) +
                 ferry_http_cors_size(req) + (extra_headers ? strlen(extra_headers) : 0);
    ferry_buf *head = ferry_buf_new(cap);
    int rc = -FERRY_ENOMEM;
    if (head != NULL) {
        ferry_strbuf sb;
        ferry_strbuf_init(&sb, head->data, cap);
        ferry_strbuf_printf(&sb, "HTTP/1.1 %d %s\r\n", status, reason);
        if (content_type != NULL) {
            ferry_strbuf_puts(&sb, "Content-Type: ");
            ferry_strbuf_puts(&sb, content_type);
            ferry_strbuf_puts(&sb, "\r\n");
        }
        ferry_strbuf_printf(&sb, "Content-Length: %zu\r\n", blen);
        if (!keep)
            ferry_strbuf_puts(&sb, "Connection: close\r\n");
        else if (req->http_minor == 0)
            ferry_strbuf_puts(&sb, "Connection: keep-alive\r\n");
        ferry_http_cors_append(req, &sb);
        if (extra_headers != NULL)
            ferry_strbuf_puts(&sb, extra_headers);
        ferry_strbuf_puts(&sb, "\r\n");
        /* cap counts every piece; a head that does not fit would be a bug here, never a
         * truncated head on the wire. */
        FERRY_ASSERT(ferry_strbuf_error(&sb) == 0);
        head->len = sb.len;
        ferry_slice sl[9];
        size_t ns = 0;
        sl[ns++] = (ferry_slice){head->data, head->len, head};
        size_t wire_out = head->len + (req->head ? 0 : blen);
        rc = 0;
        if (!req->head && nbody + 1 > sizeof(sl) / sizeof(sl[0])) {
            /* Many slices: write the head first; ordering is kept by the write queue. */
            rc = ferry_conn_write(c, sl, ns);
            ns = 0;
            if (rc == 0)
                rc = ferry_conn_write(c, body, nbody);
        } else {
            for (size_t i = 0; i < nbody && !req->head; i++)
                sl[ns++] = body[i];
            rc = ferry_conn_write(c, sl, ns);
        }
        size_t head_out = head->len;
        ferry_buf_release(head);
        if (rc == 0) {
            count_answer(req->meter, req, wire_out, head_out);
            count_answer(req->total, req, wire_out, head_out);
        }
    }
    ferry_req_free(req);
    request_done(c);
    if (rc != 0 || !keep)
        ferry_conn_close(c);
    return rc;
}

int ferry_req_respond_text(ferry_req *req, int status, const char *content_type,
                           const char *body, size_t len)
{
    ferry_slice s = {body, len, NULL};
    ferry_buf *copy = NULL;
    if (req->conn == NULL)
        return ferry_req_respond(req, status, content_type, NULL, NULL, 0); /* frees it */
    if (len > 0) {
        copy = ferry_buf_from(body, len);
        if (copy == NULL) {
            ferry_conn *c = req->conn;
            c->req = NULL;
            ferry_req_free(req);
            request_done(c);
            ferry_conn_close(c);
            return -FERRY_ENOMEM;
        }
        s = (ferry_slice){copy->data, copy->len, copy};
    }
    int rc = ferry_req_respond(req, status, content_type, NULL, &s, len > 0 ? 1 : 0);
    ferry_buf_release(copy);
    return rc;
}

ferry_conn *ferry_req_take_conn(ferry_req *req, const ferry_conn_handler *h, void *ud)
{
    ferry_conn *c = req->conn;
    if (c == NULL) {
        ferry_req_free(req);
        return NULL;
    }
    FERRY_ASSERT(c->req == req);
    ferry_wire_meter *meter = req->meter;
    ferry_wire_meter *total = req->total;
    size_t wire_in = req->wire_in;
    size_t head_in = req->head_in;
    ferry_req_free(req);
    c->req = NULL;
    c->waiting = 0;
    if (c->state != CONN_HTTP)
        return NULL;
    c->state = CONN_TAKEN;
    /* No more HTTP on this connection: its parser goes now rather than with it. */
    ferry_mem_free(c->p);
    c->p = NULL;
    if (meter != NULL) {
        meter->bytes_in += wire_in;
        meter->head_bytes_in += head_in;
        meter->requests++;
        c->meter = meter; /* the 101 or the stream's head, then every frame or event */
    }
    if (total != NULL) {
        total->bytes_in += wire_in;
        total->head_bytes_in += head_in;
        total->requests++;
        c->total = total;
    }
    c->head_next = 1;
    c->handler = h;
    c->handler_ud = ud;
    set_timer(c, CONN_TIMER_NONE, 0);
    /* Bytes after the request (a WebSocket client's first frames) are delivered once the
     * taker has returned and set itself up. */
    if (c->in.len > 0 && !ferry_life_held(&c->life))
        defer_process(c);
    if (!c->reading && !c->eof)
        ferry_conn_resume_reading(c);
    return c;
}

void ferry_conn_shutdown(ferry_conn *c)
{
    if (c->state != CONN_TAKEN || c->handler == NULL || c->handler->on_shutdown == NULL)
        return;
    conn_hold(c);
    c->handler->on_shutdown(c, c->handler_ud);
    conn_unhold(c);
}

void ferry_conn_set_handler(ferry_conn *c, const ferry_conn_handler *h, void *ud)
{
    c->handler = h;
    c->handler_ud = ud;
    if (h == NULL)
        c->meter = NULL; /* the owner let go: its meter may go before the connection */
    /* c->total stays: the engine's, which outlives every connection. */
}

uv_loop_t *ferry_conn_loop(const ferry_conn *c)
{
    return c->tcp.loop;
}

/* ------------------------------------------------------------------ writing */

typedef struct conn_write {
    uv_write_t req;
    size_t bytes;
    size_t nrefs;
    ferry_buf *refs[];
} conn_write;

static void on_write(uv_write_t *wr, int status)
{
    conn_write *w = (conn_write *)wr;
    ferry_conn *c = wr->handle->data;
    for (size_t i = 0; i < w->nrefs; i++)
        ferry_buf_release(w->refs[i]);
    c->pending_bytes -= w->bytes;
    c->nwrites--;
    ferry_mem_free(w);
    if (status < 0 && status != UV_ECANCELED) {
        FERRY_LOG(FERRY_LOG_DEBUG, "http", NULL, "write: %s", uv_strerror(status));
        ferry_conn_abort(c);
        return;
    }
    if (c->nwrites == 0 && c->state == CONN_TAKEN && c->handler && c->handler->on_drain) {
        conn_hold(c);
        c->handler->on_drain(c, c->handler_ud);
        conn_unhold(c);
    }
}

int ferry_conn_write(ferry_conn *c, const ferry_slice *s, size_t n)
{
    int rc = c->tls != NULL ? tls_write(c, s, n) : raw_write(c, s, n);
    if (rc == 0 && (c->meter != NULL || c->total != NULL)) {
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++)
            bytes += s[i].len;
        uint64_t head = c->head_next && c->state == CONN_TAKEN ? bytes : 0;
        if (c->meter != NULL) {
            c->meter->bytes_out += bytes;
            c->meter->head_bytes_out += head;
        }
        if (c->total != NULL) {
            c->total->bytes_out += bytes;
            c->total->head_bytes_out += head;
        }
    }
    if (c->state == CONN_TAKEN)
        c->head_next = 0;
    return rc;
}

/* The bytes as they go on the wire: plaintext, or ciphertext from tls_flush(). */
static int raw_write(ferry_conn *c, const ferry_slice *s, size_t n)
{
    if (c->state == CONN_CLOSING)
        return -FERRY_ECLOSED;
    if (n == 0)
        return 0;
    /* A WebSocket batch (64 frames: 128 slices) on the stack: see ws/stream.c SMALL_BATCH. */
    uv_buf_t small[128];
    uv_buf_t *bufs = n <= 128 ? small : ferry_mem_alloc(n * sizeof(uv_buf_t));
    if (bufs == NULL) {
        FERRY_LOG(FERRY_LOG_WARN, "http", NULL, "out of memory writing: closing a connection");
        ferry_conn_abort(c); /* as below: these bytes would be a hole in the stream */
        return -FERRY_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        bufs[i] = uv_buf_init((char *)s[i].base, (unsigned)s[i].len);
    /* Most writes fit in the socket buffer: write them now, in one writev, without a request,
     * a reference or a callback (and without the epoll_ctl and malloc that uv_write costs).
     * Only when nothing is queued, so that order holds (libuv refuses then anyway). What the
     * kernel did not take goes through uv_write below; an error goes there too, so that it is
     * reported as before. */
    size_t first = 0;
    if (c->nwrites == 0) {
        int done = uv_try_write((uv_stream_t *)&c->tcp, bufs, (unsigned)n);
        if (done > 0) {
            c->wrote_now = 1;
            size_t left = (size_t)done;
            while (first < n && left >= bufs[first].len) {
                left -= bufs[first].len;
                first++;
            }
            if (first == n) {
                if (bufs != small)
                    ferry_mem_free(bufs);
                return 0;
            }
            /* A partial write: the rest of this slice and the slices after it. */
            bufs[first].base += left;
            bufs[first].len -= left;
        }
    }
    /* Slices without a reference: small ones (frame headers built on the caller's stack)
     * are copied behind the request; longer ones live as long as the program. */
    size_t nrefs = 0, ncopy = 0;
    for (size_t i = first; i < n; i++) {
        nrefs += s[i].ref != NULL;
        if (s[i].ref == NULL && s[i].len <= FERRY_CONN_COPY_MAX)
            ncopy += bufs[i].len;
    }
    conn_write *w = ferry_mem_alloc(sizeof(*w) + nrefs * sizeof(ferry_buf *) + ncopy);
    if (w == NULL) {
        if (bufs != small)
            ferry_mem_free(bufs);
        /* Bytes that cannot be queued leave a hole in the stream (or cut a message that
         * partly went out): everything after them would be misread (a 101 lost, then frames
         * taken for HTTP). The connection ends, as when uv_write fails below (issue 9). */
        FERRY_LOG(FERRY_LOG_WARN, "http", NULL, "out of memory writing: closing a connection");
        ferry_conn_abort(c);
        return -FERRY_ENOMEM;
    }
    w->bytes = 0;
    w->nrefs = 0;
    char *copy = (char *)&w->refs[nrefs];
    for (size_t i = first; i < n; i++) {
        w->bytes += bufs[i].len;
        if (s[i].ref != NULL) {
            w->refs[w->nrefs++] = ferry_buf_retain(s[i].ref);
        } else if (s[i].len <= FERRY_CONN_COPY_MAX && bufs[i].len > 0) {
            memcpy(copy, bufs[i].base, bufs[i].len);
            bufs[i].base = copy;
            copy += bufs[i].len;
        }
    }
    /* libuv copies the uv_buf_t array; only the bytes must live until on_write. */
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs + first, (unsigned)(n - first),
                      on_write);
    if (bufs != small)
        ferry_mem_free(bufs);
    if (rc != 0) {
        for (size_t i = 0; i < w->nrefs; i++)
            ferry_buf_release(w->refs[i]);
        ferry_mem_free(w);
        FERRY_LOG(FERRY_LOG_DEBUG, "http", NULL, "uv_write: %s", uv_strerror(rc));
        ferry_conn_abort(c);
        return -FERRY_ECLOSED;
    }
    c->pending_bytes += w->bytes;
    c->nwrites++;
    return 0;
}

size_t ferry_conn_pending_bytes(const ferry_conn *c)
{
    return c->pending_bytes;
}

int ferry_conn_limit_unsent(ferry_conn *c, size_t bytes)
{
#ifdef TCP_NOTSENT_LOWAT
    uv_os_fd_t fd;
    int v = bytes > INT_MAX ? INT_MAX : (int)bytes;
    if (c->state == CONN_CLOSING || uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof(v)) != 0)
        return -FERRY_EINVAL;
    return 0;
#else
    (void)c;
    (void)bytes;
    return -FERRY_EINVAL;
#endif
}

/* ------------------------------------------------------------------ closing */

/* Tell whoever holds the connection that it is going away, once. */
static void begin_close(ferry_conn *c)
{
    c->state = CONN_CLOSING;
    c->meter = NULL; /* nothing is read or written from here on; the session may go first */
    c->total = NULL;
    set_timer(c, CONN_TIMER_NONE, 0);
    ferry_list_remove(&c->deferred);
    tls_uncount(c);
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    drop_req(c);
    if (c->handler != NULL) {
        const ferry_conn_handler *h = c->handler;
        c->handler = NULL;
        if (h->on_close != NULL) {
            conn_hold(c);
            h->on_close(c, c->handler_ud);
            conn_unhold(c);
        }
    }
}

/* Lingering close. Closing a socket whose receive queue still holds bytes makes the kernel
 * send a reset, which can destroy our last answer (a 413, a WebSocket close 1009) before the
 * client has read it: exactly the clients that sent too much. So after our FIN has gone out,
 * the connection reads and drops what the client still sends until it ends its side, bounded
 * by the linger timer set in ferry_conn_close (as nginx's lingering_close, Apache's
 * lingering_close). The bytes land in one buffer per server: they are never looked at. */
static void on_linger_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    ferry_conn *c = h->data;
    (void)suggested;
    buf->base = c->http->linger_sink;
    buf->len = sizeof(c->http->linger_sink);
}

static void on_linger_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0 && !uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, on_close); /* the client's end (or an error): done */
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    ferry_conn *c = req->data;
    ferry_mem_free(req); /* libuv calls this once, also when the handle closes first */
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    /* Linger only when the client may still be sending: not after its end, an error, or
     * while the server stops (a stop does not wait on clients). */
    if (status == 0 && !c->eof && !c->http->closing &&
        uv_read_start((uv_stream_t *)&c->tcp, on_linger_alloc, on_linger_read) == 0) {
        c->lingering = 1;
        return;
    }
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

void ferry_conn_close(ferry_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    conn_tls *t = c->tls;
    if (t != NULL && !t->handshaking && !t->done) {
        /* close_notify, so that the client can tell our end from a cut (RFC 8446 6.1); its
         * answer is not awaited. */
        t->done = 1;
        ERR_clear_error();
        SSL_shutdown(t->ssl);
        ERR_clear_error();
        tls_flush(c);
        if (c->state == CONN_CLOSING)
            return; /* the write failed: aborted */
    }
    begin_close(c);
    if (c->nwrites > 0 || c->wrote_now) {
        /* Allocated here, not kept in every connection (80 bytes each while idle). Without
         * memory for it the connection closes at once, as when uv_shutdown fails. */
        uv_shutdown_t *sd = ferry_mem_alloc(sizeof(*sd));
        if (sd != NULL) {
            sd->data = c;
            if (uv_shutdown(sd, (uv_stream_t *)&c->tcp, on_shutdown) == 0) {
                set_timer(c, CONN_TIMER_LINGER, LINGER_MS);
                return;
            }
            ferry_mem_free(sd);
        }
    }
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

void ferry_conn_abort(ferry_conn *c)
{
    if (c->state != CONN_CLOSING)
        begin_close(c);
    set_timer(c, CONN_TIMER_NONE, 0);
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

/* The handle is closed: the connection's own reference goes (common/life.h). libuv never
 * runs this inside one of our calls out, so this is always the last reference; the rule is
 * followed all the same. */
static void on_close(uv_handle_t *h)
{
    ferry_conn *c = h->data;
    if (ferry_life_close(&c->life))
        conn_free(c);
}

static void conn_free(ferry_conn *c)
{
    ferry_http *http = c->http;
    ferry_timer_stop(http->wheel, &c->timer);
    ferry_list_remove(&c->link);
    ferry_list_remove(&c->deferred);
    ferry_vec_free(&c->in);
    ferry_mem_free(c->p);
    tls_free(c);
    ferry_mem_free(c);
    http->nconns--;
    http->open_handles--;
    if (http->closing && http->open_handles == 0 && http->on_closed != NULL)
        http->on_closed(http);
}
