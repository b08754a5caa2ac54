/* No sticky sessions: a request for another node's session is passed to that node (issue 18,
 * docs/scaling.md "Forwarding").
 *
 * A cluster node signs its sids (lib/engine/sid.c): random | tag | mac, tag naming the node.
 * Each node writes "host:port" (where the others reach it) to Redis under
 * <prefix>:node:<tag in hex> with a 15 s TTL, again every 5 s. When a request arrives for a
 * sid this node does not hold, the engine checks the mac and hands the complete request here
 * with the owner's tag:
 *
 *   1. the tag's address: from a small cache (5 s), else GET from Redis (an unknown tag is
 *      not asked about again for 1 s). While Redis cannot say (not connected, an error, no
 *      answer within 1 s, or no key: a Redis restarted empty until the owner writes it again)
 *      the owner's last known address is used: it stays in the cache past its 5 s (one per
 *      owner, PEERS_MAX owners at most) until the owner refuses a connection there;
 *      an address that names its host ("web1.internal:8080") is resolved with uv_getaddrinfo
 *      off the loop, the result kept 30 s for that name;
 *   2. a connection to the owner, from a small pool of keep-alive ones (a pooled connection
 *      is used again within 2 s; one the owner closed meanwhile is replaced once), and the
 *      request written again (method, target, headers without the hop-by-hop ones, the body
 *      with a Content-Length), plus "X-Ferry-Forwarded: <this node's tag>" (the owner never
 *      forwards such a request again, so no loop) and X-Forwarded-For;
 *   3. the owner's answer is parsed (llhttp): one with a Content-Length (polling and POST
 *      answers, errors) is read whole and answered through the HTTP layer, so the client's
 *      keep-alive connection goes on, and the owner's connection goes back to the pool; a
 *      101, an event stream or an answer larger than max_payload + 64 KiB is passed as it
 *      comes: the client's connection is taken from the HTTP layer and bytes go both ways (a
 *      101 and the WebSocket frames after it, SSE events) until the owner closes; then the
 *      client's connection is closed once what was passed has been written.
 *
 * Bounds: max_requests forwarded requests (connections to owners) at once, beyond it 503; an
 * owner that is not known, refuses the connection or is not connected within 3 s: 400
 * "Session ID unknown" (what the engine answers for any sid it does not know), and the
 * address is asked again next time; no first byte within ping interval + ping timeout + 10 s
 * (a held poll is always answered before its ping interval ends): the connections are
 * closed. At most 256 KiB wait to be written in either direction: past it, reading from the
 * other side pauses until they are written.
 *
 * Everything runs on the server's loop; Redis through the link's publish connection. */
#include "server/forward.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <llhttp.h>

#include "adapter/adapter.h"
#include "common/assert.h"
#include "common/buf.h"
#include "common/list.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/strbuf.h"
#include "engine/engine.h"
#include "http/http.h"
#include "server/server.h"

#define PUBLISH_EVERY_MS 5000
#define PUBLISH_RETRY_MS 250
#define ADDRESS_TTL_MS "15000"
#define PEERS_MAX 64
#define PEER_KNOWN_MS 5000
#define PEER_MISSING_MS 1000
#define LOOKUP_WAIT_MS 1000 /* then the last known address, when there is one */
#define SETUP_TIMEOUT_MS 3000
#define MAX_WAITING_BYTES (256u * 1024)
#define READ_CHUNK (64u * 1024)
#define DEFAULT_MAX_REQUESTS 1024
#define ADDRESS_MAX 272 /* a host name (at most 253) and ":port" */
#define RESOLVED_MS 30000 /* a host name's address is used this long before it is asked again */
#define IDLE_MS 2000 /* a pooled connection is used again within this (owners wait 5 s) */
#define IDLE_MAX 64  /* pooled connections, all owners together */

enum { PEER_EMPTY, PEER_LOOKING, PEER_KNOWN, PEER_MISSING };

typedef struct peer {
    struct ferry_forward *f;
    uint8_t tag[FERRY_SID_TAG_LEN];
    int state;
    uint64_t until; /* loop time: KNOWN or MISSING until then */
    struct sockaddr_storage addr;
    int have_addr; /* addr is the last one Redis gave: the fallback while Redis cannot say */
    ferry_list waiting; /* jobs waiting for the lookup (job.wait) */
    /* An address given as a host name: resolved off the loop (uv_getaddrinfo, libuv's thread
     * pool), the result kept RESOLVED_MS for the same name. */
    uv_getaddrinfo_t gai;
    int resolving;
    char name[ADDRESS_MAX]; /* the "host:port" last resolved ("": none) */
    uint64_t resolved_until;
    struct sockaddr_storage resolved;
} peer;

enum { JOB_LOOKUP, JOB_CONNECT, JOB_WAIT, JOB_SPLICE, JOB_DONE };

struct job;

/* A connection to an owner: a job's, or idle in the pool (f->idle). */
typedef struct upconn {
    uv_tcp_t tcp; /* first: libuv's callbacks get back to it by a cast */
    struct ferry_forward *f;
    uint8_t tag[FERRY_SID_TAG_LEN]; /* the owner's */
    ferry_list idle;
    uint64_t idle_until;
    struct job *j; /* NULL while idle */
    uv_connect_t connect;
    llhttp_t parser; /* the answer being read */
    int reading;
} upconn;

typedef struct job {
    struct ferry_forward *f;
    ferry_list all;  /* f->jobs */
    ferry_list wait; /* peer->waiting, while the address is looked up */
    int state;
    ferry_req *req;     /* the client's request, until answered or its connection taken */
    ferry_conn *client; /* the client's connection, taken (a splice) */
    upconn *up;         /* to the owner */
    uv_timer_t timer;
    int client_paused; /* the client's reading is paused (the owner is behind) */
    char *head;        /* the request for the owner (kept for one retry) */
    size_t head_len;
    uint32_t wait_ms; /* the first byte's deadline after the request is written */
    uint8_t tag[FERRY_SID_TAG_LEN]; /* the owner's */
    struct sockaddr_storage addr;   /* and its address */
    int reused;     /* up came from the pool */
    /* The answer, parsed (answer_settings) until it is known how it goes to the client. */
    int answered;   /* a byte of it arrived */
    int complete;   /* read whole */
    int splice_now; /* its head says: pass it as it comes */
    int status;
    int in_value;
    char ctype[128];
    ferry_vec raw;   /* its bytes as they came */
    ferry_vec body;
    ferry_vec hdrs;  /* its headers that go on, as lines */
    ferry_vec field, value;
} job;

struct ferry_forward {
    ferry_server *srv;
    uv_loop_t *loop;
    ferry_engine *engine;
    ferry_redis *redis;
    uint8_t tag[FERRY_SID_TAG_LEN];
    char tag_hex[2 * FERRY_SID_TAG_LEN + 1];
    char address[ADDRESS_MAX];
    char *key; /* <prefix>:node:<tag hex> */
    char *key_prefix; /* <prefix>:node: */
    uint32_t max_requests;
    uv_timer_t publish;
    int published_once;
    peer peers[PEERS_MAX];
    ferry_list jobs;
    ferry_list idle; /* upconn.idle, oldest first */
    unsigned nidle;
    size_t max_held; /* an answer up to this size is read whole, then answered */
    ferry_forward_stats st;
    unsigned owed;    /* Redis replies still to come: the forwarder lives until they came */
    unsigned handles; /* the publish timer and every job's handles */
    int closing;
    void (*done)(ferry_server *srv);
};

static void maybe_free(ferry_forward *f)
{
    if (f->closing && f->handles == 0 && f->owed == 0) {
        ferry_mem_free(f->key);
        ferry_mem_free(f->key_prefix);
        ferry_mem_free(f);
    }
}

/* ------------------------------------------------------------------ addresses */

/* "host:port" into host (NUL-terminated) and *port_out: "a.b.c.d:port", "[v6]:port" or
 * "name:port"; 0 or -1. */
static int split_address(const char *s, size_t n, char *host, size_t cap, int *port_out)
{
    const char *colon;
    const char *hs = s, *he;
    if (n == 0 || n >= ADDRESS_MAX)
        return -1;
    if (s[0] == '[') {
        hs = s + 1;
        he = memchr(hs, ']', n - 1);
        if (he == NULL || he + 1 >= s + n || he[1] != ':')
            return -1;
        colon = he + 1;
    } else {
        colon = NULL;
        for (const char *p = s; p < s + n; p++)
            if (*p == ':')
                colon = p;
        if (colon == NULL)
            return -1;
        he = colon;
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= cap)
        return -1;
    memcpy(host, hs, hl);
    host[hl] = '\0';
    int port = 0;
    const char *p = colon + 1;
    if (p >= s + n || s + n - p > 5)
        return -1;
    for (; p < s + n; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535)
        return -1;
    *port_out = port;
    return 0;
}

/* An IP literal address into *out: 0 or -1. */
static int parse_address(const char *s, size_t n, struct sockaddr_storage *out)
{
    char host[ADDRESS_MAX];
    int port;
    if (split_address(s, n, host, sizeof(host), &port) != 0)
        return -1;
    memset(out, 0, sizeof(*out));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0)
        return 0;
    return -1;
}

/* A host name: letters, digits, '-', '.', '_', not starting with '-' or '.'. */
static int host_name(const char *h)
{
    if (h[0] == '\0' || h[0] == '-' || h[0] == '.')
        return 0;
    for (; *h; h++)
        if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') ||
              *h == '-' || *h == '.' || *h == '_'))
            return 0;
    return 1;
}

/* "name:port" (not a literal) into host and *port: 0 or -1. */
static int name_address(const char *s, size_t n, char *host, size_t cap, int *port)
{
    if (s[0] == '[' || split_address(s, n, host, cap, port) != 0 || !host_name(host))
        return -1;
    return 0;
}

static void to_hex(const uint8_t *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static void on_published(void *ud, const char *str, size_t len, int ok)
{
    ferry_forward *f = ud;
    (void)str;
    (void)len;
    f->owed--;
    if (f->closing) {
        maybe_free(f);
        return;
    }
    if (ok) {
        f->st.published++;
        if (!f->published_once)
            FERRY_LOG(FERRY_LOG_INFO, "forward", NULL,
                      "this node (tag %s) is reached at %s: published in Redis", f->tag_hex,
                      f->address);
        f->published_once = 1;
    }
}

static void publish_now(ferry_forward *f);

static void on_publish_timer(uv_timer_t *t)
{
    publish_now(t->data);
}

/* SET key address PX ttl; again every PUBLISH_EVERY_MS, or soon while Redis is not there. */
static void publish_now(ferry_forward *f)
{
    if (f->closing)
        return;
    const char *argv[5] = {"SET", f->key, f->address, "PX", ADDRESS_TTL_MS};
    size_t lens[5] = {3, strlen(f->key), strlen(f->address), 2, strlen(ADDRESS_TTL_MS)};
    int rc = ferry_redis_command(f->redis, on_published, f, 5, argv, lens);
    if (rc == 0)
        f->owed++;
    uv_timer_start(&f->publish, on_publish_timer, rc == 0 ? PUBLISH_EVERY_MS : PUBLISH_RETRY_MS,
                   0);
}

/* ------------------------------------------------------------------ connections to owners */

static void forwarder_handle_closed(ferry_forward *f)
{
    f->handles--;
    if (f->closing && f->handles == 0 && f->done != NULL) {
        void (*done)(ferry_server *) = f->done;
        f->done = NULL;
        done(f->srv);
    }
    maybe_free(f);
}

static void upconn_freed(uv_handle_t *h)
{
    upconn *u = (upconn *)h;
    ferry_forward *f = u->f;
    ferry_mem_free(u);
    forwarder_handle_closed(f);
}

static void upconn_close(upconn *u)
{
    if (ferry_list_linked(&u->idle)) {
        ferry_list_remove(&u->idle);
        u->f->nidle--;
    }
    if (u->j != NULL && u->j->up == u)
        u->j->up = NULL;
    u->j = NULL;
    if (!uv_is_closing((uv_handle_t *)&u->tcp))
        uv_close((uv_handle_t *)&u->tcp, upconn_freed);
}

/* An answer was read whole and the owner keeps the connection: for the next request to the
 * same owner, for a while. */
static void upconn_pool(upconn *u)
{
    ferry_forward *f = u->f;
    if (u->j != NULL && u->j->up == u)
        u->j->up = NULL;
    u->j = NULL;
    if (f->closing) {
        upconn_close(u);
        return;
    }
    u->idle_until = uv_now(f->loop) + IDLE_MS;
    ferry_list_insert_tail(&f->idle, &u->idle);
    f->nidle++;
    if (f->nidle > IDLE_MAX)
        upconn_close(ferry_list_entry(f->idle.next, upconn, idle)); /* the oldest */
}

/* ------------------------------------------------------------------ jobs */

static void job_handle_closed(uv_handle_t *h)
{
    job *j = h->data;
    ferry_forward *f = j->f;
    ferry_mem_free(j->head);
    ferry_vec_free(&j->raw);
    ferry_vec_free(&j->body);
    ferry_vec_free(&j->hdrs);
    ferry_vec_free(&j->field);
    ferry_vec_free(&j->value);
    ferry_mem_free(j);
    forwarder_handle_closed(f);
}

static const ferry_conn_handler client_handler;

/* The end of a job, whatever its state: the client's request answered (status, 0: none) or
 * its connection closed, the owner's connection closed (unless it went back to the pool),
 * then the timer. */
static void job_end(job *j, int status)
{
    if (j->state == JOB_DONE)
        return;
    j->state = JOB_DONE;
    ferry_forward *f = j->f;
    f->st.active--;
    ferry_list_remove(&j->all);
    if (ferry_list_linked(&j->wait))
        ferry_list_remove(&j->wait);
    if (j->req != NULL) {
        ferry_req *req = j->req;
        j->req = NULL;
        ferry_req_hold(req, NULL, NULL);
        if (status == 400)
            ferry_req_respond_error(req, 1); /* the engine's "Session ID unknown" */
        else
            ferry_req_respond_text(req, status ? status : 503, NULL, NULL, 0);
    }
    if (j->client != NULL) {
        ferry_conn *c = j->client;
        j->client = NULL;
        ferry_conn_set_handler(c, NULL, NULL);
        ferry_conn_close(c); /* after what was passed to it */
    }
    if (j->up != NULL)
        upconn_close(j->up);
    uv_timer_stop(&j->timer);
    uv_close((uv_handle_t *)&j->timer, job_handle_closed);
}

static void job_connect(job *j, const peer *p);

/* The peer entry of tag with a last known address, or NULL. */
static peer *peer_fallback(ferry_forward *f, const uint8_t *tag)
{
    for (size_t i = 0; i < PEERS_MAX; i++) {
        peer *p = &f->peers[i];
        if (p->state != PEER_EMPTY && p->have_addr &&
            memcmp(p->tag, tag, FERRY_SID_TAG_LEN) == 0)
            return p;
    }
    return NULL;
}

static void on_job_timer(uv_timer_t *t)
{
    job *j = t->data;
    peer *p;
    if (j->state == JOB_LOOKUP && (p = peer_fallback(j->f, j->tag)) != NULL) {
        /* Redis does not answer: the owner's last known address. */
        FERRY_LOG(FERRY_LOG_INFO, "forward", NULL,
                  "owner's address not answered within %d ms: the last known one",
                  LOOKUP_WAIT_MS);
        ferry_list_remove(&j->wait);
        uv_timer_start(&j->timer, on_job_timer, SETUP_TIMEOUT_MS, 0);
        job_connect(j, p);
        return;
    }
    if (j->state == JOB_LOOKUP || j->state == JOB_CONNECT) {
        j->f->st.unknown++;
        FERRY_LOG(FERRY_LOG_INFO, "forward", NULL, "owner not reached within %d ms: 400",
                  SETUP_TIMEOUT_MS);
        job_end(j, 400);
    } else {
        FERRY_LOG(FERRY_LOG_INFO, "forward", NULL, "owner did not answer within %u ms",
                  j->wait_ms);
        job_end(j, 504);
    }
}

static void on_client_abort(ferry_req *req, void *ud)
{
    job *j = ud;
    (void)req;
    j->req = NULL; /* freed by the HTTP layer right after */
    job_end(j, 0);
}

static void on_up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    ferry_buf *b = ferry_buf_new(READ_CHUNK);
    *buf = uv_buf_init(b ? b->data : NULL, b ? READ_CHUNK : 0);
}

static void release_read(const uv_buf_t *buf)
{
    if (buf->base != NULL)
        ferry_buf_release((ferry_buf *)(buf->base - offsetof(ferry_buf, data)));
}

/* ---- the owner's answer, parsed while it may be answered through the HTTP layer */

static int hdr_filtered(const char *name, size_t n)
{
    static const char *const names[] = {
        "content-length", "content-type", "connection", "keep-alive", "transfer-encoding", "vary",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == n && strncasecmp(name, names[i], n) == 0)
            return 1;
    /* CORS: the HTTP layer answers the client's Origin itself. */
    return n > 15 && strncasecmp(name, "access-control-", 15) == 0;
}

static int hdr_done(job *j)
{
    if (j->field.len == 0)
        return 0;
    const size_t max = 16 * 1024;
    if (j->field.len == 12 && strncasecmp(j->field.base, "content-type", 12) == 0) {
        if (j->value.len >= sizeof(j->ctype))
            return -1;
        memcpy(j->ctype, j->value.base, j->value.len);
        j->ctype[j->value.len] = '\0';
    } else if (!hdr_filtered(j->field.base, j->field.len)) {
        if (ferry_vec_append(&j->hdrs, j->field.base, j->field.len, max) != 0 ||
            ferry_vec_append(&j->hdrs, ": ", 2, max) != 0 ||
            ferry_vec_append(&j->hdrs, j->value.base, j->value.len, max) != 0 ||
            ferry_vec_append(&j->hdrs, "\r\n", 2, max) != 0)
            return -1;
    }
    j->field.len = 0;
    j->value.len = 0;
    j->in_value = 0;
    return 0;
}

static int on_field(llhttp_t *p, const char *at, size_t len)
{
    job *j = p->data;
    if (j->in_value && hdr_done(j) != 0)
        return -1;
    return ferry_vec_append(&j->field, at, len, 1024) == 0 ? 0 : -1;
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
    job *j = p->data;
    j->in_value = 1;
    return ferry_vec_append(&j->value, at, len, 8192) == 0 ? 0 : -1;
}

static int on_head_done(llhttp_t *p)
{
    job *j = p->data;
    if (hdr_done(j) != 0)
        return -1;
    j->status = p->status_code;
    /* Passed as it comes on the client's connection, the owner's head included: a 101 and
     * the frames after it, a stream (no Content-Length), an answer too large to hold. */
    int sized = (p->flags & F_CONTENT_LENGTH) || j->status == 204 || j->status == 304;
    if (j->status == 101 || !sized || p->content_length > j->f->max_held) {
        j->splice_now = 1;
        return HPE_PAUSED;
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    job *j = p->data;
    return ferry_vec_append(&j->body, at, len, j->f->max_held) == 0 ? 0 : -1;
}

static int on_complete(llhttp_t *p)
{
    job *j = p->data;
    j->complete = 1;
    return HPE_PAUSED;
}

static const llhttp_settings_t *answer_settings(void)
{
    static llhttp_settings_t s;
    static int ready;
    if (!ready) {
        llhttp_settings_init(&s);
        s.on_header_field = on_field;
        s.on_header_value = on_value;
        s.on_headers_complete = on_head_done;
        s.on_body = on_body;
        s.on_message_complete = on_complete;
        ready = 1;
    }
    return &s;
}

/* From now on the client's connection carries the owner's bytes as they come. */
static int start_splice(job *j)
{
    uv_timer_stop(&j->timer);
    ferry_req *req = j->req;
    j->req = NULL;
    ferry_req_hold(req, NULL, NULL);
    j->client = ferry_req_take_conn(req, &client_handler, j);
    if (j->client == NULL)
        return -1;
    j->state = JOB_SPLICE;
    if (j->raw.len > 0) {
        ferry_buf *b = ferry_buf_from(j->raw.base, j->raw.len);
        if (b == NULL)
            return -1;
        ferry_slice sl = {b->data, b->len, b};
        int rc = ferry_conn_write(j->client, &sl, 1);
        ferry_buf_release(b);
        ferry_vec_free(&j->raw);
        j->raw = (ferry_vec){0};
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* The whole answer was read: answer the client's request with it (its connection stays
 * open for its next request) and put the owner's connection back in the pool. */
static void answer(job *j, upconn *u, int reusable)
{
    ferry_req *req = j->req;
    j->req = NULL;
    ferry_req_hold(req, NULL, NULL);
    char nul = '\0';
    if (ferry_vec_append(&j->hdrs, &nul, 1, SIZE_MAX) != 0) {
        j->req = req;
        job_end(j, 503);
        return;
    }
    ferry_buf *b = j->body.len > 0 ? ferry_buf_from(j->body.base, j->body.len) : NULL;
    if (j->body.len > 0 && b == NULL) {
        j->req = req;
        job_end(j, 503);
        return;
    }
    ferry_slice sl = {b ? b->data : NULL, b ? b->len : 0, b};
    ferry_req_respond(req, j->status, j->ctype[0] ? j->ctype : NULL,
                      j->hdrs.len > 1 ? j->hdrs.base : NULL, &sl, b ? 1 : 0);
    ferry_buf_release(b);
    if (reusable)
        upconn_pool(u);
    job_end(j, 0);
}

static void job_connect_fresh(job *j);

static void on_up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    upconn *u = (upconn *)s;
    job *j = u->j;
    if (j == NULL) {
        /* Idle in the pool: the owner closed it (its idle timeout), or said something
         * unasked. */
        release_read(buf);
        if (nread != 0)
            upconn_close(u);
        return;
    }
    if (nread == 0 || j->state == JOB_DONE) {
        release_read(buf);
        return;
    }
    if (nread < 0) {
        release_read(buf);
        if (j->state == JOB_WAIT && !j->answered && j->reused) {
            /* A pooled connection the owner had closed meanwhile: once more on a new one
             * (the owner never read this request on it). */
            upconn_close(u);
            job_connect_fresh(j);
        } else if (j->state == JOB_WAIT && !j->answered) {
            j->f->st.unknown++; /* closed before answering: not there, or going away */
            job_end(j, 400);
        } else {
            job_end(j, j->state == JOB_WAIT ? 502 : 0);
        }
        return;
    }
    ferry_buf *b = (ferry_buf *)(buf->base - offsetof(ferry_buf, data));
    b->len = (size_t)nread;
    if (j->state == JOB_WAIT) {
        j->answered = 1;
        if (ferry_vec_append(&j->raw, b->data, b->len, j->f->max_held + 65536) != 0) {
            ferry_buf_release(b);
            job_end(j, 502);
            return;
        }
        llhttp_errno_t e = llhttp_execute(&u->parser, b->data, b->len);
        size_t used = e == HPE_PAUSED ? (size_t)(llhttp_get_error_pos(&u->parser) - b->data)
                                      : b->len;
        ferry_buf_release(b);
        if (j->complete) {
            answer(j, u, used == (size_t)nread && llhttp_should_keep_alive(&u->parser));
        } else if (j->splice_now) {
            if (start_splice(j) != 0)
                job_end(j, 0);
        } else if (e != HPE_OK) {
            FERRY_LOG(FERRY_LOG_INFO, "forward", NULL, "bad answer from the owner: %s",
                      llhttp_errno_name(e));
            job_end(j, 502);
        }
        return;
    }
    ferry_slice sl = {b->data, b->len, b};
    int rc = ferry_conn_write(j->client, &sl, 1);
    ferry_buf_release(b);
    if (rc != 0) {
        job_end(j, 0);
        return;
    }
    if (j->client != NULL && ferry_conn_pending_bytes(j->client) > MAX_WAITING_BYTES &&
        u->reading) {
        uv_read_stop(s);
        u->reading = 0;
    }
}

typedef struct up_write {
    uv_write_t w;
    upconn *u;
    char data[];
} up_write;

static void on_up_written(uv_write_t *w, int status)
{
    up_write *uw = (up_write *)w;
    upconn *u = uw->u;
    ferry_mem_free(uw);
    job *j = u->j;
    if (j == NULL || j->state == JOB_DONE)
        return;
    if (status < 0) {
        job_end(j, 0);
        return;
    }
    if (j->client_paused && j->client != NULL &&
        uv_stream_get_write_queue_size((uv_stream_t *)&u->tcp) < MAX_WAITING_BYTES / 2) {
        j->client_paused = 0;
        ferry_conn_resume_reading(j->client);
    }
}

/* Write a copy of data to the owner. */
static int up_send(upconn *u, const char *data, size_t len)
{
    up_write *uw = ferry_mem_alloc(sizeof(*uw) + len);
    if (uw == NULL)
        return -1;
    uw->u = u;
    memcpy(uw->data, data, len);
    uv_buf_t b = uv_buf_init(uw->data, (unsigned)len);
    if (uv_write(&uw->w, (uv_stream_t *)&u->tcp, &b, 1, on_up_written) != 0) {
        ferry_mem_free(uw);
        return -1;
    }
    return 0;
}

static void client_data(ferry_conn *c, const char *data, size_t len, void *ud)
{
    job *j = ud;
    if (j->state != JOB_SPLICE || len == 0 || j->up == NULL)
        return;
    if (up_send(j->up, data, len) != 0) {
        job_end(j, 0);
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&j->up->tcp) > MAX_WAITING_BYTES &&
        !j->client_paused) {
        j->client_paused = 1;
        ferry_conn_pause_reading(c);
    }
}

static void client_drain(ferry_conn *c, void *ud)
{
    job *j = ud;
    (void)c;
    if (j->state == JOB_SPLICE && j->up != NULL && !j->up->reading) {
        if (uv_read_start((uv_stream_t *)&j->up->tcp, on_up_alloc, on_up_read) == 0)
            j->up->reading = 1;
        else
            job_end(j, 0);
    }
}

static void client_closed(ferry_conn *c, void *ud)
{
    job *j = ud;
    (void)c;
    j->client = NULL;
    job_end(j, 0);
}

static const ferry_conn_handler client_handler = {
    .on_data = client_data,
    .on_drain = client_drain,
    .on_close = client_closed,
};

/* The request goes out on j->up (new or pooled); the answer is parsed from its first byte. */
static void send_request(job *j)
{
    upconn *u = j->up;
    llhttp_init(&u->parser, HTTP_RESPONSE, answer_settings());
    u->parser.data = j;
    if (up_send(u, j->head, j->head_len) != 0 ||
        (!u->reading && uv_read_start((uv_stream_t *)&u->tcp, on_up_alloc, on_up_read) != 0)) {
        job_end(j, 400);
        return;
    }
    u->reading = 1;
    j->state = JOB_WAIT;
    j->f->st.forwarded++;
    uv_timer_start(&j->timer, on_job_timer, j->wait_ms, 0);
}

static void on_connected(uv_connect_t *req, int status)
{
    upconn *u = req->data;
    job *j = u->j;
    if (j == NULL)
        return; /* the job ended meanwhile: u is closing (UV_ECANCELED) */
    if (status < 0) {
        /* Not there (any more): ask Redis next time. */
        FERRY_LOG(FERRY_LOG_INFO, "forward", NULL, "owner unreachable: %s: 400",
                  uv_strerror(status));
        for (size_t i = 0; i < PEERS_MAX; i++) {
            peer *p = &j->f->peers[i];
            if (p->state != PEER_EMPTY && memcmp(p->tag, j->tag, FERRY_SID_TAG_LEN) == 0) {
                p->have_addr = 0; /* not a fallback any more */
                if (p->state == PEER_KNOWN)
                    p->until = 0;
            }
        }
        j->f->st.unknown++;
        job_end(j, 400);
        return;
    }
    send_request(j);
}

/* A new connection to the owner at j->addr. */
static void job_connect_fresh(job *j)
{
    ferry_forward *f = j->f;
    upconn *u = ferry_mem_calloc(1, sizeof(*u));
    if (u == NULL || uv_tcp_init(f->loop, &u->tcp) != 0) {
        ferry_mem_free(u);
        job_end(j, 503);
        return;
    }
    f->handles++;
    u->f = f;
    ferry_list_init(&u->idle);
    memcpy(u->tag, j->tag, FERRY_SID_TAG_LEN);
    u->j = j;
    j->up = u;
    j->reused = 0;
    uv_tcp_nodelay(&u->tcp, 1);
    u->connect.data = u;
    j->state = JOB_CONNECT;
    if (uv_tcp_connect(&u->connect, &u->tcp, (const struct sockaddr *)&j->addr, on_connected) !=
        0) {
        f->st.unknown++;
        job_end(j, 400);
    }
}

/* A pooled connection to the owner when there is one still fresh, else a new one. Upgrades
 * and streams keep their connection for themselves: never pooled afterwards. */
static void job_connect(job *j, const peer *p)
{
    ferry_forward *f = j->f;
    memcpy(&j->addr, &p->addr, sizeof(j->addr));
    uint64_t now = uv_now(f->loop);
    ferry_list *it = f->idle.prev;
    while (it != &f->idle) {
        upconn *u = ferry_list_entry(it, upconn, idle);
        it = it->prev;
        if (memcmp(u->tag, j->tag, FERRY_SID_TAG_LEN) != 0)
            continue;
        ferry_list_remove(&u->idle);
        f->nidle--;
        if (u->idle_until <= now) {
            upconn_close(u);
            continue;
        }
        u->j = j;
        j->up = u;
        j->reused = 1;
        send_request(j);
        return;
    }
    job_connect_fresh(j);
}

/* ------------------------------------------------------------------ looking owners up */

static void peer_settle(peer *p);

static void on_peer_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    peer *p = req->data;
    ferry_forward *f = p->f;
    p->resolving = 0;
    f->owed--;
    /* The first IPv4 address, else the first IPv6 one. */
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *a = res; status == 0 && a != NULL; a = a->ai_next)
        if ((a->ai_family == AF_INET || a->ai_family == AF_INET6) &&
            (pick == NULL || (pick->ai_family == AF_INET6 && a->ai_family == AF_INET)))
            pick = a;
    if (pick != NULL) {
        memset(&p->resolved, 0, sizeof(p->resolved));
        memcpy(&p->resolved, pick->ai_addr, pick->ai_addrlen);
    }
    uv_freeaddrinfo(res);
    if (f->closing) {
        maybe_free(f);
        return;
    }
    uint64_t now = uv_now(f->loop);
    char tag[2 * FERRY_SID_TAG_LEN + 1];
    to_hex(p->tag, FERRY_SID_TAG_LEN, tag);
    if (pick != NULL) {
        memcpy(&p->addr, &p->resolved, sizeof(p->addr));
        p->resolved_until = now + RESOLVED_MS;
        p->have_addr = 1;
        p->state = PEER_KNOWN;
        p->until = now + PEER_KNOWN_MS;
    } else {
        FERRY_LOG(FERRY_LOG_WARN, "forward", NULL,
                  "cannot resolve the address '%s' of node %s: %s: its sessions' requests are "
                  "answered 400 (Session ID unknown)",
                  p->name, tag, status != 0 ? uv_strerror(status) : "no IPv4 or IPv6 address");
        p->name[0] = '\0';
        p->state = PEER_MISSING;
        p->until = now + PEER_MISSING_MS;
    }
    peer_settle(p);
}

/* The owner's address came as a host name: from the last resolution of the same name while
 * it is fresh, else resolved now off the loop (the jobs keep waiting). 0: settled or on its
 * way; -1: cannot be resolved. */
static int peer_resolve(ferry_forward *f, peer *p, const char *str, size_t len)
{
    char host[ADDRESS_MAX], port[8];
    int pn;
    if (name_address(str, len, host, sizeof(host), &pn) != 0)
        return -1;
    uint64_t now = uv_now(f->loop);
    if (strlen(p->name) == len && memcmp(p->name, str, len) == 0 && p->resolved_until > now) {
        memcpy(&p->addr, &p->resolved, sizeof(p->addr));
        p->have_addr = 1;
        p->state = PEER_KNOWN;
        p->until = now + PEER_KNOWN_MS;
        return 0;
    }
    memcpy(p->name, str, len);
    p->name[len] = '\0';
    snprintf(port, sizeof(port), "%d", pn);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    p->gai.data = p;
    int rc = uv_getaddrinfo(f->loop, &p->gai, on_peer_resolved, host, port, &hints);
    if (rc != 0) {
        FERRY_LOG(FERRY_LOG_WARN, "forward", NULL, "cannot resolve the address '%s': %s",
                  p->name, uv_strerror(rc));
        p->name[0] = '\0';
        return -1;
    }
    p->resolving = 1;
    p->state = PEER_LOOKING;
    f->owed++;
    return 1;
}

static void on_looked_up(void *ud, const char *str, size_t len, int ok)
{
    peer *p = ud;
    ferry_forward *f = p->f;
    f->owed--;
    if (f->closing) {
        maybe_free(f);
        return;
    }
    uint64_t now = uv_now(f->loop);
    struct sockaddr_storage addr;
    int rc;
    if (ok && str != NULL && parse_address(str, len, &addr) == 0) {
        memcpy(&p->addr, &addr, sizeof(addr));
        p->have_addr = 1;
        p->state = PEER_KNOWN;
        p->until = now + PEER_KNOWN_MS;
    } else if (ok && str != NULL && len < ADDRESS_MAX &&
               (rc = peer_resolve(f, p, str, len)) >= 0) {
        if (rc > 0)
            return; /* on_peer_resolved settles it */
    } else if (p->have_addr) {
        /* Redis cannot say now: the last known address, and Redis asked again in 1 s. */
        p->state = PEER_KNOWN;
        p->until = now + PEER_MISSING_MS;
    } else {
        p->state = PEER_MISSING;
        p->until = now + PEER_MISSING_MS;
    }
    peer_settle(p);
}

/* The lookup is over (p KNOWN or MISSING): the jobs that waited for it go on. */
static void peer_settle(peer *p)
{
    ferry_forward *f = p->f;
    while (!ferry_list_empty(&p->waiting)) {
        job *j = ferry_list_entry(p->waiting.next, job, wait);
        ferry_list_remove(&j->wait);
        if (p->state == PEER_KNOWN) {
            job_connect(j, p);
        } else {
            f->st.unknown++;
            job_end(j, 400);
        }
    }
}

/* The peer entry for tag: the one there is, or a free or the stalest one; NULL when every
 * entry is being looked up. */
static peer *peer_for(ferry_forward *f, const uint8_t *tag)
{
    peer *victim = NULL;
    for (size_t i = 0; i < PEERS_MAX; i++) {
        peer *p = &f->peers[i];
        if (p->state != PEER_EMPTY && memcmp(p->tag, tag, FERRY_SID_TAG_LEN) == 0)
            return p;
        if (p->state == PEER_LOOKING)
            continue;
        if (victim == NULL || p->state == PEER_EMPTY ||
            (victim->state != PEER_EMPTY && p->until < victim->until))
            victim = p;
    }
    if (victim != NULL) {
        victim->state = PEER_EMPTY;
        victim->have_addr = 0;
        victim->name[0] = '\0'; /* another node's: nothing resolved for it yet */
        victim->resolved_until = 0;
        memcpy(victim->tag, tag, FERRY_SID_TAG_LEN);
    }
    return victim;
}

static int lookup(ferry_forward *f, peer *p)
{
    char hex[2 * FERRY_SID_TAG_LEN + 1];
    to_hex(p->tag, FERRY_SID_TAG_LEN, hex);
    char key[256];
    int n = snprintf(key, sizeof(key), "%s%s", f->key_prefix, hex);
    if (n < 0 || (size_t)n >= sizeof(key))
        return -1;
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, (size_t)n};
    if (ferry_redis_command(f->redis, on_looked_up, p, 2, argv, lens) != 0)
        return -1;
    f->owed++;
    p->state = PEER_LOOKING;
    return 0;
}

/* ------------------------------------------------------------------ the request */

static int hop_by_hop(const char *name, int upgrade)
{
    static const char *const names[] = {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length",
        "te", "trailer", "x-ferry-forwarded", "x-forwarded-for",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i]) == 0)
            return 1;
    return !upgrade && strcasecmp(name, "upgrade") == 0;
}

/* The request as the owner gets it, in one new block. */
static char *build_head(const ferry_forward *f, ferry_req *req, size_t *out_len)
{
    char addr[64];
    ferry_req_remote_addr(req, addr, sizeof(addr));
    const char *xff = ferry_req_header_get(req, "x-forwarded-for");
    int upgrade = req->upgrade;
    size_t cap = strlen(req->method) + strlen(req->url) + 256 + strlen(addr) +
                 (xff ? strlen(xff) + 2 : 0) + req->body.len;
    for (size_t i = 0; i < req->nheaders; i++)
        cap += strlen(req->headers[i].name) + strlen(req->headers[i].value) + 4;
    char *mem = ferry_mem_alloc(cap);
    if (mem == NULL)
        return NULL;
    ferry_strbuf sb;
    ferry_strbuf_init(&sb, mem, cap);
    ferry_strbuf_printf(&sb, "%s %s HTTP/1.1\r\n", req->method, req->url);
    for (size_t i = 0; i < req->nheaders; i++) {
        if (hop_by_hop(req->headers[i].name, upgrade))
            continue;
        ferry_strbuf_puts(&sb, req->headers[i].name);
        ferry_strbuf_puts(&sb, ": ");
        ferry_strbuf_puts(&sb, req->headers[i].value);
        ferry_strbuf_puts(&sb, "\r\n");
    }
    ferry_strbuf_printf(&sb, "X-Forwarded-For: %s%s%s\r\n", xff ? xff : "", xff ? ", " : "",
                        addr);
    ferry_strbuf_printf(&sb, "X-Ferry-Forwarded: %s\r\n", f->tag_hex);
    if (upgrade)
        ferry_strbuf_puts(&sb, "Connection: Upgrade\r\n");
    if (req->body.len > 0 || strcmp(req->method, "POST") == 0)
        ferry_strbuf_printf(&sb, "Content-Length: %zu\r\n", req->body.len);
    ferry_strbuf_puts(&sb, "\r\n");
    if (req->body.len > 0)
        ferry_strbuf_append(&sb, req->body.base, req->body.len);
    if (ferry_strbuf_error(&sb) != 0) {
        ferry_mem_free(mem);
        return NULL;
    }
    *out_len = sb.len;
    return mem;
}

/* The engine's forward hook: req names another node's session (tag). */
static int forward_request(ferry_req *req, const uint8_t tag[FERRY_SID_TAG_LEN], void *ud)
{
    ferry_forward *f = ud;
    if (f->closing)
        return -1;
    if (f->st.active >= f->max_requests) {
        f->st.busy++;
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        return 0;
    }
    uint64_t now = uv_now(f->loop);
    peer *p = peer_for(f, tag);
    if (p == NULL || (p->state == PEER_MISSING && p->until > now)) {
        f->st.unknown++;
        return -1; /* the engine answers "Session ID unknown" */
    }
    job *j = ferry_mem_calloc(1, sizeof(*j));
    if (j == NULL)
        return -1;
    j->head = build_head(f, req, &j->head_len);
    if (j->head == NULL) {
        ferry_mem_free(j);
        return -1;
    }
    const ferry_server_config *cfg = &f->srv->cfg;
    j->wait_ms = req->upgrade ? SETUP_TIMEOUT_MS * 2
                              : cfg->ping_interval_ms + cfg->ping_timeout_ms + 10000;
    j->f = f;
    memcpy(j->tag, tag, FERRY_SID_TAG_LEN);
    j->req = req;
    ferry_list_init(&j->wait);
    ferry_list_insert_tail(&f->jobs, &j->all);
    f->handles++;
    f->st.active++;
    uv_timer_init(f->loop, &j->timer);
    j->timer.data = j;
    uv_timer_start(&j->timer, on_job_timer, SETUP_TIMEOUT_MS, 0);
    ferry_req_hold(req, on_client_abort, j);
    j->state = JOB_LOOKUP;
    if (p->state == PEER_KNOWN && p->until > now) {
        job_connect(j, p);
    } else if (p->state == PEER_LOOKING || lookup(f, p) == 0) {
        ferry_list_insert_tail(&p->waiting, &j->wait);
        if (p->have_addr) /* Redis has 1 s to answer, then the last known address */
            uv_timer_start(&j->timer, on_job_timer, LOOKUP_WAIT_MS, 0);
    } else if (p->have_addr) {
        /* Redis is not reachable now: the last known address, Redis asked again in 1 s. */
        p->state = PEER_KNOWN;
        p->until = now + PEER_MISSING_MS;
        job_connect(j, p);
    } else {
        p->state = PEER_EMPTY;
        f->st.unknown++;
        job_end(j, 400); /* Redis is not reachable now */
    }
    return 0;
}

/* ------------------------------------------------------------------ the forwarder */

int ferry_forward_new(ferry_server *srv, ferry_redis *r, const ferry_forward_config *cfg,
                      ferry_forward **out)
{
    if (cfg->secret != NULL && strlen(cfg->secret) < 16)
        return -FERRY_EINVAL;
    ferry_forward *f = ferry_mem_calloc(1, sizeof(*f));
    if (f == NULL)
        return -FERRY_ENOMEM;
    f->srv = srv;
    f->loop = srv->loop;
    f->engine = srv->engine;
    f->redis = r;
    f->max_requests = cfg->max_requests ? cfg->max_requests : DEFAULT_MAX_REQUESTS;
    ferry_list_init(&f->jobs);
    ferry_list_init(&f->idle);
    f->max_held = (size_t)srv->cfg.max_payload + 65536;
    for (size_t i = 0; i < PEERS_MAX; i++) {
        f->peers[i].f = f;
        ferry_list_init(&f->peers[i].waiting);
    }
    struct sockaddr_storage check;
    if (cfg->address != NULL) {
        snprintf(f->address, sizeof(f->address), "%s", cfg->address);
    } else {
        int port = ferry_http_port(&srv->http);
        if (port <= 0) {
            ferry_mem_free(f);
            return -FERRY_EINVAL;
        }
        snprintf(f->address, sizeof(f->address), "127.0.0.1:%d", port);
    }
    char hcheck[ADDRESS_MAX];
    int pcheck;
    if (strlen(f->address) >= sizeof(f->address) - 1 ||
        (parse_address(f->address, strlen(f->address), &check) != 0 &&
         name_address(f->address, strlen(f->address), hcheck, sizeof(hcheck), &pcheck) != 0)) {
        ferry_mem_free(f);
        return -FERRY_EINVAL;
    }
    /* The key: HMAC-SHA256 of the secret under a fixed label; without a secret, of what every
     * node of the cluster shares (the Redis link's address, credentials and prefix). */
    char material[1024];
    if (cfg->secret != NULL)
        snprintf(material, sizeof(material), "secret:%s", cfg->secret);
    else {
        char id[900];
        ferry_redis_identity(r, id, sizeof(id));
        snprintf(material, sizeof(material), "redis:%s", id);
    }
    static const char label[] = "ferry cluster sid key v1";
    uint8_t key[EVP_MAX_MD_SIZE];
    unsigned klen = 0;
    HMAC(EVP_sha256(), label, (int)sizeof(label) - 1, (const uint8_t *)material,
         strlen(material), key, &klen);
    if (klen < 32 || RAND_bytes(f->tag, sizeof(f->tag)) != 1) {
        ferry_mem_free(f);
        return -FERRY_ENOMEM;
    }
    to_hex(f->tag, sizeof(f->tag), f->tag_hex);
    const char *prefix = ferry_redis_prefix(r);
    size_t kl = strlen(prefix) + sizeof(":node:") + sizeof(f->tag_hex);
    f->key = ferry_mem_alloc(kl);
    f->key_prefix = ferry_mem_alloc(kl);
    if (f->key == NULL || f->key_prefix == NULL) {
        ferry_mem_free(f->key);
        ferry_mem_free(f->key_prefix);
        ferry_mem_free(f);
        return -FERRY_ENOMEM;
    }
    snprintf(f->key_prefix, kl, "%s:node:", prefix);
    snprintf(f->key, kl, "%s:node:%s", prefix, f->tag_hex);
    ferry_engine_set_cluster(f->engine, key, f->tag, forward_request, f);
    uv_timer_init(f->loop, &f->publish);
    f->publish.data = f;
    f->handles = 1;
    publish_now(f);
    FERRY_LOG(FERRY_LOG_INFO, "forward", NULL,
              "forwarding on: sids signed%s, this node (tag %s) at %s",
              cfg->secret ? " with the cluster secret" : " with a key derived from the Redis URL",
              f->tag_hex, f->address);
    *out = f;
    return 0;
}

static void on_publish_closed(uv_handle_t *h)
{
    ferry_forward *f = h->data;
    f->handles--;
    if (f->handles == 0 && f->done != NULL) {
        void (*done)(ferry_server *) = f->done;
        f->done = NULL;
        done(f->srv);
    }
    maybe_free(f);
}

static void on_deleted(void *ud, const char *str, size_t len, int ok)
{
    ferry_forward *f = ud;
    (void)str;
    (void)len;
    (void)ok;
    f->owed--;
    maybe_free(f);
}

void ferry_forward_close(ferry_forward *f, void (*done)(ferry_server *srv))
{
    f->closing = 1;
    f->done = done;
    ferry_engine_clear_forward(f->engine);
    /* The address goes now rather than at its TTL: requests for this node's sessions are
     * answered "unknown" by the others at once. */
    const char *argv[2] = {"DEL", f->key};
    size_t lens[2] = {3, strlen(f->key)};
    if (ferry_redis_command(f->redis, on_deleted, f, 2, argv, lens) == 0)
        f->owed++;
    while (!ferry_list_empty(&f->jobs))
        job_end(ferry_list_entry(f->jobs.next, job, all), 503);
    while (!ferry_list_empty(&f->idle))
        upconn_close(ferry_list_entry(f->idle.next, upconn, idle));
    for (size_t i = 0; i < PEERS_MAX; i++)
        if (f->peers[i].resolving)
            uv_cancel((uv_req_t *)&f->peers[i].gai); /* its callback runs (owed) */
    uv_timer_stop(&f->publish);
    uv_close((uv_handle_t *)&f->publish, on_publish_closed);
}

void ferry_forward_stats_get(const ferry_forward *f, ferry_forward_stats *out)
{
    *out = f->st;
}
