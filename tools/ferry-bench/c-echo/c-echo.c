/* ferry-c-echo: the baseline of make bench's WebSocket echo (issue 13: ferry's server CPU per
 * message must stay within 1.3x "a minimal C WebSocket echo, measured in the same run").
 *
 * The least a server can do and still answer ferry-bench's echo over WebSocket: one libuv
 * loop, an HTTP head read up to its blank line, the 101 answer, then frames. It speaks only
 * the shape of Engine.IO v4 / Socket.IO v5 that the echo needs, without parsing JSON:
 *   - after the 101, the open packet  0{"sid":...,"upgrades":[],...}
 *   - "40"                  -> "40{"sid":...}"          (CONNECT to the main namespace)
 *   - "42["message",REST    -> "42["message-back",REST  (the same arguments, not re-encoded)
 *   - a close frame         -> a close frame, then the connection ends
 * and, for make bench's broadcast (the ceiling of ferry's relay):
 *   - "42<id>["join",...]"  -> "43<id>[]"  and the connection is in the one room (any name)
 *   - "42<id>["publish",{..."data":DATA}]" -> "42["m",DATA]" to every other member
 * and ignores everything else (pongs "3", other events). No heartbeats (the bench's runs are
 * shorter than a ping interval), no fragmented messages (refused: the bench never sends
 * them), no permessage-deflate, no TLS, one message per frame.
 *
 * What it costs per message is the floor ferry's WebSocket path is compared with: one read
 * (into one shared buffer), the frame unmasked in place, one writev of three slices (frame
 * header, the new event name, the rest of the client's payload) tried at once with
 * uv_try_write; a copy and a uv_write only when the socket does not take it all.
 *
 * A broadcast is what a good server does and no more: the frame is built once in one
 * reference-counted buffer, each member keeps a pointer to it, and just before the loop waits
 * (uv_prepare) every member with frames waiting gets one writev of all of them (no copy
 * unless the socket does not take them all). No JSON parsing, no queue bound, no per-member
 * state besides the pointers.
 *
 *   ferry-c-echo [--host 127.0.0.1] [--port 0]
 * prints "listening on http://HOST:PORT" once it listens; SIGTERM or SIGINT ends it (exit 0). */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <uv.h>

#include "common/base64.h"

#define HEAD_MAX 8192          /* an HTTP head longer than this is refused */
#define MESSAGE_MAX (1u << 20) /* a frame's payload (the Engine.IO maxPayload it announces) */
#define READ_SIZE (64 * 1024)

/* A broadcast frame shared by its recipients. */
typedef struct shared_frame {
    unsigned refs;
    size_t len;
    char data[];
} shared_frame;

typedef struct echo_conn {
    uv_tcp_t tcp;
    int upgraded;
    int closing;
    unsigned id;
    char *in; /* bytes read and not yet used (a cut head or frame); NULL when none */
    size_t in_len, in_cap;
    /* Broadcast: membership of the one room, and the frames waiting for the next flush. */
    struct echo_conn *room_prev, *room_next;
    int joined;
    int dirty;
    struct echo_conn *next_dirty;
    shared_frame **out;
    unsigned nout, out_cap;
} echo_conn;

typedef struct pending_write {
    uv_write_t req;
    char data[];
} pending_write;

static uv_loop_t *loop;
static uv_tcp_t listener;
static uv_signal_t sig_term, sig_int;
static char read_buf[READ_SIZE];
static unsigned next_id;
static unsigned open_conns;
static int stopping;
static echo_conn *room; /* the members, a doubly linked list */
static echo_conn *dirty;
static uv_prepare_t flusher;

static void frame_release(shared_frame *f)
{
    if (--f->refs == 0)
        free(f);
}

static void drop_out(echo_conn *c)
{
    for (unsigned i = 0; i < c->nout; i++)
        frame_release(c->out[i]);
    c->nout = 0;
}

static void on_closed(uv_handle_t *h)
{
    echo_conn *c = h->data;
    if (c->dirty) /* closed between a publish and the flush (rare): off the list */
        for (echo_conn **pp = &dirty; *pp != NULL; pp = &(*pp)->next_dirty)
            if (*pp == c) {
                *pp = c->next_dirty;
                break;
            }
    drop_out(c);
    free(c->out);
    free(c->in);
    free(c);
    open_conns--;
}

static void conn_close(echo_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->joined) {
        if (c->room_prev)
            c->room_prev->room_next = c->room_next;
        else
            room = c->room_next;
        if (c->room_next)
            c->room_next->room_prev = c->room_prev;
        c->joined = 0;
    }
    drop_out(c); /* a dirty connection stays on the list until it is flushed or freed */
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

/* Write n slices: at once when the socket takes them, else the rest copied and queued. */
static void conn_write(echo_conn *c, uv_buf_t *b, unsigned n)
{
    if (c->closing)
        return;
    int done = uv_try_write((uv_stream_t *)&c->tcp, b, n);
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += b[i].len;
    size_t skip = done > 0 ? (size_t)done : 0;
    if (skip == total)
        return;
    pending_write *w = malloc(sizeof(*w) + total - skip);
    if (w == NULL) {
        conn_close(c);
        return;
    }
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t len = b[i].len;
        const char *p = b[i].base;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(w->data + off, p + skip, len - skip);
        off += len - skip;
        skip = 0;
    }
    uv_buf_t rest = uv_buf_init(w->data, (unsigned)off);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &rest, 1, on_written) != 0) {
        free(w);
        conn_close(c);
    }
}

/* A server frame header (unmasked, FIN) for len bytes of opcode; returns its length. */
static size_t frame_header(uint8_t *h, int opcode, size_t len)
{
    h[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        h[1] = (uint8_t)len;
        return 2;
    }
    if (len < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/* One text message of up to three pieces. */
static void send_text(echo_conn *c, const char *a, size_t na, const char *b, size_t nb,
                      const char *d, size_t nd)
{
    uint8_t h[10];
    size_t hl = frame_header(h, 1, na + nb + nd);
    uv_buf_t bufs[4] = {uv_buf_init((char *)h, (unsigned)hl), uv_buf_init((char *)a, (unsigned)na),
                        uv_buf_init((char *)b, (unsigned)nb), uv_buf_init((char *)d, (unsigned)nd)};
    conn_write(c, bufs, nb || nd ? (nd ? 4 : 3) : 2);
}

/* ---------------------------------------------------------------- the handshake */

/* The value of header name in head[0..len), or NULL. */
static const char *header_value(const char *head, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *end = head + len;
    for (const char *p = memchr(head, '\n', len); p != NULL && p + 1 < end;
         p = memchr(p + 1, '\n', (size_t)(end - p - 1))) {
        const char *line = p + 1;
        if ((size_t)(end - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = v;
            while (e < end && *e != '\r' && *e != '\n')
                e++;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *vlen = (size_t)(e - v);
            return v;
        }
    }
    return NULL;
}

static void refuse(echo_conn *c)
{
    static char msg[] = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    uv_buf_t b = uv_buf_init(msg, sizeof(msg) - 1);
    conn_write(c, &b, 1);
    conn_close(c);
}

/* A whole head: answer 101 and the open packet, or 400. */
static void handshake(echo_conn *c, const char *head, size_t len)
{
    size_t klen = 0;
    const char *key = header_value(head, len, "sec-websocket-key", &klen);
    if (key == NULL || klen == 0 || klen > 64 || memmem(head, len, "transport=websocket", 19) == NULL) {
        refuse(c);
        return;
    }
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char src[64 + sizeof(guid)];
    memcpy(src, key, klen);
    memcpy(src + klen, guid, sizeof(guid) - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(src, klen + sizeof(guid) - 1, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20) {
        refuse(c);
        return;
    }
    char accept[32];
    accept[ferry_base64_encode(accept, md, 20)] = '\0';
    char out[512];
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    char open[200];
    int on = snprintf(open, sizeof(open),
                      "0{\"sid\":\"c-echo-%u\",\"upgrades\":[],\"pingInterval\":25000,"
                      "\"pingTimeout\":20000,\"maxPayload\":%u}",
                      c->id, MESSAGE_MAX);
    uint8_t h[10];
    size_t hl = frame_header(h, 1, (size_t)on);
    uv_buf_t bufs[3] = {uv_buf_init(out, (unsigned)n), uv_buf_init((char *)h, (unsigned)hl),
                        uv_buf_init(open, (unsigned)on)};
    conn_write(c, bufs, 3);
    c->upgraded = 1;
}

/* ---------------------------------------------------------------- messages */

/* ---------------------------------------------------------------- the broadcast */

static void on_flush(uv_prepare_t *h);

/* Every frame a member has waiting, in one writev (at most IOV_MAX-sized batches). */
static void flush_conn(echo_conn *c)
{
    uv_buf_t bufs[1024];
    unsigned i = 0;
    while (i < c->nout && !c->closing) {
        unsigned n = 0;
        while (i + n < c->nout && n < 1024) {
            bufs[n] = uv_buf_init(c->out[i + n]->data, (unsigned)c->out[i + n]->len);
            n++;
        }
        conn_write(c, bufs, n);
        i += n;
    }
    drop_out(c);
}

static void on_flush(uv_prepare_t *h)
{
    (void)h;
    echo_conn *list = dirty;
    dirty = NULL;
    while (list != NULL) {
        echo_conn *c = list;
        list = c->next_dirty;
        c->dirty = 0;
        c->next_dirty = NULL;
        if (!c->closing)
            flush_conn(c);
    }
    uv_prepare_stop(&flusher);
}

/* "42<id>["publish",{..."data":DATA}]": "42["m",DATA]" to every other member. */
static void publish(echo_conn *from, const char *p, size_t len)
{
    static const char key[] = "\"data\":";
    static const char head[] = "42[\"m\",";
    const char *d = memmem(p, len, key, sizeof(key) - 1);
    if (d == NULL || len < 2 || p[len - 1] != ']' || p[len - 2] != '}')
        return;
    d += sizeof(key) - 1;
    size_t dlen = (size_t)(p + len - 2 - d);
    size_t plen = sizeof(head) - 1 + dlen + 1;
    shared_frame *f = malloc(sizeof(*f) + 10 + plen);
    if (f == NULL)
        return;
    size_t hl = frame_header((uint8_t *)f->data, 1, plen);
    memcpy(f->data + hl, head, sizeof(head) - 1);
    memcpy(f->data + hl + sizeof(head) - 1, d, dlen);
    f->data[hl + plen - 1] = ']';
    f->len = hl + plen;
    f->refs = 1;
    for (echo_conn *m = room; m != NULL; m = m->room_next) {
        if (m == from)
            continue;
        if (m->nout == m->out_cap) {
            unsigned cap = m->out_cap ? m->out_cap * 2 : 16;
            shared_frame **q = realloc(m->out, cap * sizeof(*q));
            if (q == NULL)
                continue;
            m->out = q;
            m->out_cap = cap;
        }
        f->refs++;
        m->out[m->nout++] = f;
        if (!m->dirty) {
            m->dirty = 1;
            m->next_dirty = dirty;
            dirty = m;
        }
    }
    frame_release(f);
    if (dirty != NULL)
        uv_prepare_start(&flusher, on_flush);
}

/* "42<id>[...": the ack id, or -1 without one. */
static long ack_id(const char *p, size_t len, size_t *after)
{
    size_t i = 2;
    long id = 0;
    while (i < len && p[i] >= '0' && p[i] <= '9' && id < 100000000)
        id = id * 10 + (p[i++] - '0');
    *after = i;
    return i > 2 ? id : -1;
}

static void on_text(echo_conn *c, const char *p, size_t len)
{
    static const char event[] = "42[\"message\",";
    static const char back[] = "42[\"message-back\",";
    static const char join[] = "[\"join\",";
    static const char pub[] = "[\"publish\",";
    size_t at = 0;
    long id = len > 2 && p[0] == '4' && p[1] == '2' ? ack_id(p, len, &at) : -1;
    if (id >= 0 && len - at > sizeof(pub) - 1 && memcmp(p + at, pub, sizeof(pub) - 1) == 0) {
        publish(c, p + at, len - at);
    } else if (id >= 0 && len - at > sizeof(join) - 1 &&
               memcmp(p + at, join, sizeof(join) - 1) == 0) {
        if (!c->joined) {
            c->joined = 1;
            c->room_prev = NULL;
            c->room_next = room;
            if (room)
                room->room_prev = c;
            room = c;
        }
        char ack[32];
        int n = snprintf(ack, sizeof(ack), "43%ld[]", id);
        send_text(c, ack, (size_t)n, NULL, 0, NULL, 0);
    } else if (len >= sizeof(event) - 1 && memcmp(p, event, sizeof(event) - 1) == 0) {
        size_t skip = sizeof(event) - 1;
        send_text(c, back, sizeof(back) - 1, p + skip, len - skip, NULL, 0);
    } else if (len >= 2 && p[0] == '4' && p[1] == '0') {
        char ack[64];
        int n = snprintf(ack, sizeof(ack), "40{\"sid\":\"c-echo-socket-%u\"}", c->id);
        send_text(c, ack, (size_t)n, NULL, 0, NULL, 0);
    } else if (len >= 1 && p[0] == '1') {
        conn_close(c);
    }
}

/* Frames in p[0..len): returns the bytes used (whole frames); a cut frame waits for more. */
static size_t on_frames(echo_conn *c, char *p, size_t len)
{
    size_t used = 0;
    while (!c->closing && len - used >= 2) {
        uint8_t *f = (uint8_t *)p + used;
        size_t avail = len - used;
        int fin = f[0] & 0x80, opcode = f[0] & 0x0f, masked = f[1] & 0x80;
        uint64_t plen = f[1] & 0x7f;
        size_t hl = 2;
        if (plen == 126) {
            if (avail < 4)
                break;
            plen = ((uint64_t)f[2] << 8) | f[3];
            hl = 4;
        } else if (plen == 127) {
            if (avail < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | f[2 + i];
            hl = 10;
        }
        if (!masked || !fin || (f[0] & 0x70) || plen > MESSAGE_MAX) {
            conn_close(c); /* not what the bench sends: the baseline does not try */
            return len;
        }
        if (avail < hl + 4 + plen)
            break;
        const uint8_t *mask = f + hl;
        char *data = (char *)f + hl + 4;
        for (uint64_t i = 0; i < plen; i++)
            data[i] = (char)(data[i] ^ mask[i & 3]);
        used += hl + 4 + (size_t)plen;
        if (opcode == 1) {
            on_text(c, data, (size_t)plen);
        } else if (opcode == 8) {
            uint8_t h[2] = {0x88, 0};
            uv_buf_t b = uv_buf_init((char *)h, 2);
            conn_write(c, &b, 1);
            conn_close(c);
        } else if (opcode == 9) {
            uint8_t h[10];
            size_t n = frame_header(h, 10, (size_t)plen);
            uv_buf_t b[2] = {uv_buf_init((char *)h, (unsigned)n), uv_buf_init(data, (unsigned)plen)};
            conn_write(c, b, 2);
        } else if (opcode != 2 && opcode != 10) {
            conn_close(c);
        }
    }
    return used;
}

/* Use what arrived in p[0..len): a head, then frames. Returns the bytes used. */
static size_t consume(echo_conn *c, char *p, size_t len)
{
    if (c->upgraded)
        return on_frames(c, p, len);
    const char *end = memmem(p, len, "\r\n\r\n", 4);
    if (end == NULL) {
        if (len > HEAD_MAX)
            refuse(c);
        return len > HEAD_MAX ? len : 0;
    }
    size_t head = (size_t)(end - p) + 4;
    handshake(c, p, head);
    return head + (c->upgraded ? on_frames(c, p + head, len - head) : len - head);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    echo_conn *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->closing)
        return;
    char *p = buf->base;
    size_t len = (size_t)nread;
    if (c->in_len > 0) {
        /* A cut head or frame waits: this read continues it. */
        if (c->in_len + len > c->in_cap) {
            size_t cap = (c->in_len + len) * 2;
            char *q = realloc(c->in, cap);
            if (q == NULL) {
                conn_close(c);
                return;
            }
            c->in = q;
            c->in_cap = cap;
        }
        memcpy(c->in + c->in_len, p, len);
        c->in_len += len;
        p = c->in;
        len = c->in_len;
    }
    size_t used = consume(c, p, len);
    if (c->closing)
        return;
    size_t left = len - used;
    if (left > HEAD_MAX + MESSAGE_MAX + 14) {
        conn_close(c);
        return;
    }
    if (p == c->in) {
        memmove(c->in, c->in + used, left);
        c->in_len = left;
        if (left == 0) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
    } else if (left > 0) {
        c->in = malloc(left * 2);
        if (c->in == NULL) {
            conn_close(c);
            return;
        }
        memcpy(c->in, p + used, left);
        c->in_len = left;
        c->in_cap = left * 2;
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0 || stopping)
        return;
    echo_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->id = next_id++;
    open_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP && h != (uv_handle_t *)&listener)
        conn_close(h->data);
    else
        uv_close(h, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    stopping = 1;
    uv_walk(loop, close_walk, NULL);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 0 || v > 65535) {
                fprintf(stderr, "ferry-c-echo: --port takes 0..65535\n");
                return 2;
            }
            port = (int)v;
        } else {
            fprintf(stderr, "usage: ferry-c-echo [--host ADDR] [--port N]\n");
            return 2;
        }
    }
    loop = uv_default_loop();
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        fprintf(stderr, "ferry-c-echo: --host takes an IP address, not '%s'\n", host);
        return 2;
    }
    uv_tcp_init(loop, &listener);
    int rc = uv_tcp_bind(&listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&listener, 1024, on_connection);
    if (rc != 0) {
        fprintf(stderr, "ferry-c-echo: cannot listen on %s:%d: %s\n", host, port, uv_strerror(rc));
        return 1;
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &blen);
    int bport = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    int v6 = strchr(host, ':') != NULL;
    printf("ferry-c-echo: listening on http://%s%s%s:%d\n", v6 ? "[" : "", host, v6 ? "]" : "",
           bport);
    fflush(stdout);
    uv_prepare_init(loop, &flusher);
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return open_conns == 0 ? 0 : 1;
}
