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

int sio_client_send(sio_client *c, const sio_encoded *e)
{
    int rc = 0;
    c->sio->depth++;
    for (size_t i = 0; i < e->n && rc == 0; i++)
        rc = ferry_engine_queue(c->session, e->bufs[i]);
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
    cJSON *auth = pkt->data;
    pkt->data = NULL;
    if (auth == NULL && (auth = cJSON_CreateObject()) == NULL) {
        nomem_close(c);
        return;
    }
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
    sio_packet pkt;
    int rc = binary ? sio_decode_binary(&c->dec, data, len, &pkt)
                    : sio_decode_text(&c->dec, data, len, &pkt);
    if (rc == 0) {
        /* waiting for attachments */
    } else if (rc < 0) {
        if (rc == -FERRY_ENOMEM)
            ferry_engine_close_session(session, FERRY_REASON_TRANSPORT_ERROR, 0);
        else
            protocol_error(c, rc == -FERRY_ELIMIT ? "too many attachments" : "bad packet");
        c->closing = 1;
    } else {
        on_packet(c, &pkt);
        sio_packet_clear(&pkt);
    }
    sio_client_drop(c);
}

static ferry_reason socket_reason(ferry_reason r)
{
    /* A full send queue is a "transport error" for Socket.IO's vocabulary. */
    return r == FERRY_REASON_QUEUE_FULL ? FERRY_REASON_TRANSPORT_ERROR : r;
}

/* The session is gone: its sockets leave (disconnect callbacks), then c goes. */
static void finish_close(sio_client *c, ferry_reason reason)
{
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
    if (c->nconnected > 0 || c->closing)
        return;
    FERRY_LOG(FERRY_LOG_DEBUG, "socket", ferry_session_id(c->session),
              "no namespace joined in time");
    c->closing = 1;
    ferry_engine_close_session(c->session, FERRY_REASON_FORCED_CLOSE, 0);
}

void sio_on_session(ferry_session *s, void *ud)
{
    ferry_sio *sio = ud;
    sio_client *c = ferry_mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        ferry_engine_close_session(s, FERRY_REASON_TRANSPORT_ERROR, 0);
        return;
    }
    c->sio = sio;
    c->session = s;
    ferry_life_init(&c->life);
    ferry_session_retain(s);
    sio_decoder_init(&c->dec, ferry_engine_server_config(sio->engine)->max_attachments);
    ferry_list_init(&c->sockets);
    ferry_list_insert_tail(&sio->clients, &c->link);
    ferry_timer_init(&c->connect_timer, on_connect_timeout);
    ferry_timer_init(&c->close_timer, on_close_timer);
    const ferry_server_config *cfg = ferry_engine_server_config(sio->engine);
    if (cfg->connect_timeout_ms > 0)
        ferry_timer_start(ferry_engine_wheel(sio->engine), &c->connect_timer,
                          cfg->connect_timeout_ms);
    ferry_session_on_message(s, on_message, c);
    ferry_session_on_close(s, on_close, c);
}
