/* One Engine.IO session seen by the Socket.IO layer (Socket.IO's Client): decoding its
 * messages, routing packets to the socket of their namespace, CONNECT and its errors, and the
 * connect timeout of a session that joins no namespace.
 *
 * Any packet that cannot be decoded, or that comes in the wrong state (a CONNECT for a
 * namespace already joined, an EVENT for one not joined, a CONNECT_ERROR from a client),
 * closes the session: the spec says the receiver MUST close the connection, and the reference
 * server does the same. */
#include <string.h>

#include "common/assert.h"
#include "common/log.h"
#include "common/mem.h"
#include "socket/internal.h"

static int tab_queue_head(sio_client *t, const ferry_buf *head);

int sio_client_send(sio_client *c, const sio_encoded *e)
{
    int rc = 0;
    c->sio->depth++;
    for (size_t i = 0; i < e->n && rc == 0; i++)
        rc = i == 0 && c->parent != NULL ? tab_queue_head(c, e->bufs[0])
                                          : ferry_engine_queue(c->session, e->bufs[i]);
    c->sio->depth--;
    return rc;
}

static ferry_socket *socket_of(sio_client *c, const char *nsp)
{
    ferry_list *it;
    ferry_list_foreach(it, &c->sockets)
    {
        ferry_socket *s = ferry_list_entry(it, ferry_socket, client_link);
        if (strcmp(s->nsp->name, nsp) == 0)
            return s;
    }
    return NULL;
}

static void send_connect_error(sio_client *c, const char *nsp, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || cJSON_AddStringToObject(o, "message", message) == NULL) {
        cJSON_Delete(o);
        return;
    }
    sio_encoded e;
    if (sio_encode(SIO_CONNECT_ERROR, nsp, SIO_NO_ID, o, &e) == 0) {
        sio_client_send(c, &e);
        sio_encoded_release(&e);
    }
    cJSON_Delete(o);
}

static void protocol_error(sio_client *c, const char *what)
{
    FERRY_LOG(FERRY_LOG_INFO, "socket", ferry_session_id(c->session), "closing: %s", what);
    c->closing = 1;
    ferry_engine_count_parse_error(c->session);
    ferry_engine_close_session(c->session, FERRY_REASON_PARSE_ERROR, 0);
}

/* Out of memory answering a packet: a CONNECT left unanswered would leave its client waiting
 * for ever, so the session ends instead (issue 9). */
static void nomem_close(sio_client *c)
{
    FERRY_LOG(FERRY_LOG_WARN, "socket", ferry_session_id(c->session), "out of memory: closing");
    c->closing = 1;
    ferry_engine_close_session(c->session, FERRY_REASON_TRANSPORT_ERROR, 0);
}

static void on_connect(sio_client *c, sio_packet *pkt)
{
    ferry_sio *sio = c->sio;
    ferry_namespace *nsp = sio_nsp_find(sio, pkt->nsp);
    if (nsp == NULL && sio->on_request != NULL) {
        cJSON *empty = pkt->data == NULL ? cJSON_CreateObject() : NULL;
        sio->on_request(sio->srv, pkt->nsp, pkt->data != NULL ? pkt->data : empty,
                        sio->on_request_ud);
        cJSON_Delete(empty);
        if (c->closing)
            return;
        nsp = sio_nsp_find(sio, pkt->nsp);
    }
    if (nsp == NULL) {
        send_connect_error(c, pkt->nsp, "Invalid namespace");
        return;
    }
    if (c->nsockets >= SIO_MAX_SOCKETS_PER_CLIENT) {
        send_connect_error(c, pkt->nsp, "Too many namespaces");
        return;
    }
    cJSON *auth = pkt->data; /* NULL when the client sent none: ferry_socket_auth gives {} */
    pkt->data = NULL;
    ferry_socket *s = sio_socket_new(c, nsp, auth);
    if (s == NULL) {
        cJSON_Delete(auth);
        nomem_close(c);
        return;
    }
    sio_socket_retain(s);
    sio_socket_start(s);
    sio_socket_release(s);
}

static void on_packet(sio_client *c, sio_packet *pkt)
{
    ferry_socket *s = socket_of(c, pkt->nsp);
    if (pkt->type == SIO_CONNECT) {
        if (s != NULL)
            protocol_error(c, "CONNECT for a namespace already joined");
        else
            on_connect(c, pkt);
        return;
    }
    if (pkt->type == SIO_CONNECT_ERROR) {
        protocol_error(c, "CONNECT_ERROR from a client");
        return;
    }
    if (s == NULL || s->state == SOCK_MIDDLEWARE) {
        protocol_error(c, "packet for a namespace not joined");
        return;
    }
    if (s->state != SOCK_CONNECTED)
        return; /* a server disconnect is under way: late packets are dropped */
    switch (pkt->type) {
    case SIO_DISCONNECT:
        sio_socket_close(s, FERRY_REASON_CLIENT_NAMESPACE_DISCONNECT, 0);
        break;
    case SIO_EVENT:
    case SIO_BINARY_EVENT:
        if (s->ob.on) {
            /* The outbox extension: the last argument numbers the emit (outbox.c). */
            int rc = sio_outbox_take(s, pkt);
            if (rc == -FERRY_ELIMIT) {
                c->closing = 1; /* recovered, the socket gets what is missing again */
                ferry_engine_close_session(c->session, FERRY_REASON_TRANSPORT_ERROR, 0);
            } else if (rc < 0)
                protocol_error(c, "EVENT without a valid outbox number");
            if (rc <= 0)
                break;
            sio_socket_retain(s);
            sio_socket_on_event(s, pkt);
            sio_outbox_confirm(s);
            sio_socket_release(s);
            break;
        }
        sio_socket_on_event(s, pkt);
        break;
    case SIO_ACK:
    case SIO_BINARY_ACK:
        sio_socket_on_ack(s, pkt);
        break;
    }
}

static void client_free(sio_client *c)
{
    sio_decoder_free(&c->dec);
    ferry_mem_free(c);
}

void sio_client_hold(sio_client *c)
{
    ferry_life_hold(&c->life);
}

void sio_client_drop(sio_client *c)
{
    if (ferry_life_drop(&c->life))
        client_free(c);
}

/* One message for client c (the session's own or a tab's): decode it, and handle the packet
 * once complete. Returns what the decoder returned (0: waiting for attachments, < 0: the
 * session is closing). */
static int client_input(sio_client *c, const char *data, size_t len, int binary)
{
    sio_packet pkt;
    int rc = binary ? sio_decode_binary(&c->dec, data, len, &pkt)
                    : sio_decode_text(&c->dec, data, len, &pkt);
    if (rc < 0) {
        if (rc == -FERRY_ENOMEM)
            ferry_engine_close_session(c->session, FERRY_REASON_TRANSPORT_ERROR, 0);
        else
            protocol_error(c, rc == -FERRY_ELIMIT ? "too many attachments" : "bad packet");
        c->closing = 1;
    } else if (rc > 0) {
        on_packet(c, &pkt);
        sio_packet_clear(&pkt);
    }
    return rc;
}

static void on_tab_message(sio_client *c, const char *data, size_t len);
static void on_tab_attachment(sio_client *c, const char *data, size_t len, int binary);

/* The session's close may run inside this callback (a user callback closing the session, a
 * polling transport closing at once): the reference held around it keeps c allocated until
 * the callback ends (common/life.h). The engine holds a session reference around the call, so
 * c->session stays valid too. */
static void on_message(ferry_session *session, const char *data, size_t len, int binary,
                       void *ud)
{
    sio_client *c = ud;
    if (c->closing || ferry_life_closed(&c->life))
        return;
    sio_client_hold(c);
    if (!binary)
        c->skip = 0; /* the attachments of a packet come before any other text */
    if (c->skip > 0 && binary)
        c->skip--; /* an attachment of a late packet of an ended tab */
    else if (c->att != NULL)
        on_tab_attachment(c, data, len, binary);
    else if (!binary && len > 0 && (data[0] == 't' || data[0] == 'x') &&
             ferry_session_extensions(session))
        on_tab_message(c, data, len);
    else
        client_input(c, data, len, binary);
    sio_client_drop(c);
}

/* ------------------------------------------------------------------ tabs
 *
 * docs/protocol.md section 11: on an extension session, "t<tab>:<packet>" is a packet of the
 * tab's own client (made on its first packet), the binary attachments of a tab's packet follow
 * it, and "x<tab>" ends the tab (its sockets leave with "transport close"). The server sends a
 * tab's packets with the same prefix, and "x<tab>" when it closed the tab itself. */

static int tab_char(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           ch == '_' || ch == '-';
}

static sio_client *tab_find(sio_client *c, const char *id, size_t len)
{
    ferry_list *it;
    ferry_list_foreach(it, &c->tabs)
    {
        sio_client *t = ferry_list_entry(it, sio_client, tab_link);
        if (strlen(t->tab) == len && memcmp(t->tab, id, len) == 0)
            return t;
    }
    return NULL;
}

static void client_init(sio_client *c, ferry_sio *sio, ferry_session *s);

static sio_client *tab_new(sio_client *c, const char *id, size_t len)
{
    sio_client *t = ferry_mem_calloc(1, sizeof(*t) + len + 1);
    if (t == NULL)
        return NULL;
    client_init(t, c->sio, c->session);
    t->parent = c;
    memcpy(t->tab, id, len);
    t->tab[len] = '\0';
    ferry_list_insert_tail(&c->tabs, &t->tab_link);
    c->ntabs++;
    return t;
}

/* The attachments a binary packet announces ("5<n>-..." or "6<n>-..."), at most the decoder's
 * bound (a packet announcing more is dropped whole by the skip running out). */
static unsigned late_attachments(const char *p, size_t len)
{
    if (len < 3 || (p[0] != '5' && p[0] != '6'))
        return 0;
    unsigned n = 0;
    for (size_t i = 1; i < len && i < 6 && p[i] >= '0' && p[i] <= '9'; i++)
        n = n * 10 + (unsigned)(p[i] - '0');
    return n > SIO_MAX_ATTACHMENTS_CEILING ? SIO_MAX_ATTACHMENTS_CEILING : n;
}

/* A text message: "t" or "x", the tab id, then ":" and a packet for "t". */
static void on_tab_message(sio_client *c, const char *data, size_t len)
{
    size_t n = 1;
    while (n < len && n <= SIO_TAB_ID_MAX && tab_char(data[n]))
        n++;
    size_t idlen = n - 1;
    if (idlen == 0 || idlen > SIO_TAB_ID_MAX || c->dec.waiting) {
        protocol_error(c, "bad tab message");
        return;
    }
    sio_client *t = tab_find(c, data + 1, idlen);
    if (data[0] == 'x') {
        if (n != len)
            protocol_error(c, "bad tab message");
        else if (t != NULL)
            sio_client_tab_end(t, FERRY_REASON_TRANSPORT_CLOSE, 0);
        return;
    }
    if (n == len || data[n] != ':') {
        protocol_error(c, "bad tab message");
        return;
    }
    const char *body = data + n + 1;
    size_t blen = len - n - 1;
    if (t == NULL && (blen == 0 || body[0] != '0')) {
        /* A late packet of a tab that has ended (the server ended it while the client was
         * still sending): dropped, with its attachments. */
        c->skip = late_attachments(body, blen);
        return;
    }
    if (t == NULL) {
        if (c->ntabs >= SIO_MAX_TABS) {
            protocol_error(c, "too many tabs");
            return;
        }
        if ((t = tab_new(c, data + 1, idlen)) == NULL) {
            nomem_close(c);
            return;
        }
    }
    sio_client_hold(t);
    if (client_input(t, body, blen, 0) == 0 && !t->closing)
        c->att = t; /* its attachments come next */
    sio_client_drop(t);
}

/* A message while a tab's packet waits for attachments: it must be one. */
static void on_tab_attachment(sio_client *c, const char *data, size_t len, int binary)
{
    sio_client *t = c->att;
    if (!binary) {
        protocol_error(c, "a tab packet's attachments cut by a text message");
        return;
    }
    sio_client_hold(t);
    if (client_input(t, data, len, 1) != 0)
        c->att = NULL;
    sio_client_drop(t);
}

/* A tab's packet head: "4" + "t<tab>:" + the Socket.IO text (the shared buffer is "4" + it). */
static int tab_queue_head(sio_client *t, const ferry_buf *head)
{
    size_t id = strlen(t->tab);
    ferry_buf *b = ferry_buf_new(head->len + id + 2);
    if (b == NULL)
        return -FERRY_ENOMEM;
    b->data[0] = '4';
    b->data[1] = 't';
    memcpy(b->data + 2, t->tab, id);
    b->data[2 + id] = ':';
    memcpy(b->data + 3 + id, head->data + 1, head->len - 1);
    int rc = ferry_engine_queue(t->session, b);
    ferry_buf_release(b);
    return rc;
}

static ferry_reason socket_reason(ferry_reason r)
{
    /* A full send queue is a "transport error" for Socket.IO's vocabulary. */
    return r == FERRY_REASON_QUEUE_FULL ? FERRY_REASON_TRANSPORT_ERROR : r;
}

/* The session is gone: its sockets leave (disconnect callbacks), then c goes. */
static void finish_close(sio_client *c, ferry_reason reason)
{
    while (!ferry_list_empty(&c->tabs))
        finish_close(ferry_list_entry(c->tabs.next, sio_client, tab_link), reason);
    ferry_session *session = c->session;
    ferry_wheel *w = ferry_engine_wheel(c->sio->engine);
    ferry_timer_stop(w, &c->connect_timer);
    ferry_timer_stop(w, &c->close_timer);
    /* Each socket unlinks itself; take them from the head until none is left but those
     * inside their own disconnect callback (the session closed from there: ferry_server_close
     * in a disconnect handler looped here for ever). Those unlink themselves when the callback
     * returns, holding c until then. */
    ferry_list *it = c->sockets.next;
    while (it != &c->sockets) {
        ferry_socket *s = ferry_list_entry(it, ferry_socket, client_link);
        if (s->state == SOCK_CLOSING) {
            it = it->next;
            continue;
        }
        if (s->state == SOCK_MIDDLEWARE)
            sio_socket_abandon(s);
        else
            sio_socket_close(s, socket_reason(reason), 0);
        it = c->sockets.next; /* a close may unlink more than s: start again */
    }
    ferry_list_remove(&c->link);
    if (c->parent != NULL) {
        ferry_list_remove(&c->tab_link);
        c->parent->ntabs--;
        if (c->parent->att == c)
            c->parent->att = NULL;
        c->parent = NULL;
    }
    if (c->parent == NULL) /* backpressure.c's watch, with the session's own client as data */
        ferry_session_watch_drain(session, NULL, NULL);
    ferry_session_release(session);
    if (ferry_life_close(&c->life))
        client_free(c); /* otherwise on_message is on the stack: its drop frees c */
}

static void on_close_timer(ferry_timer *t)
{
    sio_client *c = container_of(t, sio_client, close_timer);
    finish_close(c, c->close_reason);
}

static void on_close(ferry_session *session, ferry_reason reason, void *ud)
{
    sio_client *c = ud;
    c->closing = 1;
    ferry_timer_stop(ferry_engine_wheel(c->sio->engine), &c->connect_timer);
    if (c->sio->depth > 0) {
        c->close_reason = reason;
        ferry_timer_start(ferry_engine_wheel(c->sio->engine), &c->close_timer, 0);
        return;
    }
    finish_close(c, reason);
}

void sio_client_tab_end(sio_client *t, ferry_reason reason, int notify)
{
    if (notify) {
        char x[2 + SIO_TAB_ID_MAX];
        size_t n = strlen(t->tab);
        x[0] = '4';
        x[1] = 'x';
        memcpy(x + 2, t->tab, n);
        ferry_buf *b = ferry_buf_from(x, n + 2);
        if (b != NULL) {
            ferry_engine_queue(t->session, b);
            ferry_buf_release(b);
        }
    }
    t->closing = 1;
    finish_close(t, reason);
}

void sio_client_drop_all(ferry_sio *sio)
{
    while (!ferry_list_empty(&sio->clients)) {
        sio_client *c = ferry_list_entry(sio->clients.next, sio_client, link);
        finish_close(c, c->close_reason);
    }
}

/* The server closes a whole session (ferry_socket_disconnect(s, 1)): the DISCONNECT packets
 * must leave in an earlier write than the Engine.IO close packet. An official client that gets
 * both in one polling payload handles the close first (socket.io-client defers decoded packets
 * to the next tick) and reports "transport close" instead of "io server disconnect". The
 * reference server waits for its write buffer to drain; so do we, checking every few ms, and
 * never longer than ping_timeout. */
#define DRAIN_CHECK_MS 5

static void check_drained(sio_client *c)
{
    ferry_session *s = c->session;
    uint64_t now = uv_now(ferry_engine_loop(c->sio->engine));
    if (ferry_session_queued_bytes(s) > 0 && ferry_session_is_open(s) && now < c->drain_deadline) {
        ferry_timer_start(ferry_engine_wheel(c->sio->engine), &c->connect_timer, DRAIN_CHECK_MS);
        return;
    }
    ferry_engine_close_session(s, FERRY_REASON_FORCED_SERVER_CLOSE, 1);
}

void sio_client_close_after_drain(sio_client *c)
{
    if (c->parent != NULL) { /* a tab: only it closes, after its DISCONNECT packets */
        sio_client_tab_end(c, FERRY_REASON_FORCED_SERVER_CLOSE, 1);
        return;
    }
    ferry_engine *eng = c->sio->engine;
    c->closing = 1;
    c->drain_deadline =
        uv_now(ferry_engine_loop(eng)) + ferry_engine_server_config(eng)->ping_timeout_ms;
    ferry_timer_stop(ferry_engine_wheel(eng), &c->connect_timer);
    check_drained(c);
}

static void on_connect_timeout(ferry_timer *t)
{
    sio_client *c = container_of(t, sio_client, connect_timer);
    if (c->drain_deadline != 0) {
        check_drained(c);
        return;
    }
    if (c->nconnected > 0 || c->ntabs > 0 || c->closing)
        return;
    FERRY_LOG(FERRY_LOG_DEBUG, "socket", ferry_session_id(c->session),
              "no namespace joined in time");
    c->closing = 1;
    ferry_engine_close_session(c->session, FERRY_REASON_FORCED_CLOSE, 0);
}

static void client_init(sio_client *c, ferry_sio *sio, ferry_session *s)
{
    c->sio = sio;
    c->session = s;
    ferry_life_init(&c->life);
    ferry_session_retain(s);
    sio_decoder_init(&c->dec, ferry_engine_server_config(sio->engine)->max_attachments);
    ferry_list_init(&c->sockets);
    ferry_list_init(&c->link);
    ferry_list_init(&c->tabs);
    ferry_list_init(&c->tab_link);
    ferry_timer_init(&c->connect_timer, on_connect_timeout);
    ferry_timer_init(&c->close_timer, on_close_timer);
}

void sio_on_session(ferry_session *s, void *ud)
{
    ferry_sio *sio = ud;
    sio_client *c = ferry_mem_calloc(1, sizeof(*c) + 1); /* tab: "" */
    if (c == NULL) {
        ferry_engine_close_session(s, FERRY_REASON_TRANSPORT_ERROR, 0);
        return;
    }
    client_init(c, sio, s);
    ferry_list_insert_tail(&sio->clients, &c->link);
    const ferry_server_config *cfg = ferry_engine_server_config(sio->engine);
    if (cfg->connect_timeout_ms > 0)
        ferry_timer_start(ferry_engine_wheel(sio->engine), &c->connect_timer,
                          cfg->connect_timeout_ms);
    ferry_session_on_message(s, on_message, c);
    ferry_session_on_close(s, on_close, c);
}
