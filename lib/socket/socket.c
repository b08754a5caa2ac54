/* Sockets: a client's membership of one namespace. Middlewares and connection, events and the
 * handlers they reach, acknowledgements both ways, emits, rooms, and leaving. */
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "common/assert.h"
#include "common/base64.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/wallclock.h"
#include "socket/internal.h"

/* An emit of ours waiting for the client's ack. */
typedef struct sio_out_ack {
    ferry_list link;
    ferry_timer timer;
    ferry_socket *socket;
    int64_t id;
    ferry_ack_cb cb;
    void *ud;
} sio_out_ack;

/* The client asked us for an ack. */
struct ferry_ack {
    ferry_list link;
    ferry_socket *socket;
    int64_t id;
};

static ferry_wheel *wheel_of(const ferry_socket *s)
{
    return ferry_engine_wheel(s->nsp->sio->engine);
}

/* ------------------------------------------------------------------ lifetime */

static void on_defer(ferry_timer *t);

ferry_socket *sio_socket_new(sio_client *c, ferry_namespace *nsp, cJSON *auth)
{
    ferry_socket *s = ferry_mem_calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    uint8_t rnd[15]; /* 120 bits: 20 base64url characters, the length Socket.IO uses */
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        ferry_mem_free(s);
        return NULL;
    }
    ferry_base64url_encode(s->id, rnd, sizeof(rnd));
    s->id[SIO_ID_LEN] = '\0';
    s->client = c;
    s->nsp = nsp;
    ferry_life_init(&s->life); /* the membership's */
    s->state = SOCK_MIDDLEWARE;
    s->auth = auth;
    s->time_ms = ferry_wall_ms();
    s->next_ack_id = 0;
    ferry_list_init(&s->nsp_link);
    ferry_list_init(&s->wait_link);
    ferry_list_init(&s->out_acks);
    ferry_list_init(&s->in_acks);
    sio_outbox_init(&s->ob);
    ferry_timer_init(&s->defer, on_defer);
    ferry_list_insert_tail(&c->sockets, &s->client_link);
    c->nsockets++;
    if (sio_recovery_on(nsp) && !sio_recovery_restore(s)) {
        if (RAND_bytes(rnd, sizeof(rnd)) == 1)
            ferry_base64url_encode(s->pid, rnd, sizeof(rnd));
        s->pid[SIO_ID_LEN] = '\0';
    }
    sio_outbox_negotiate(s);
    return s;
}

void sio_socket_retain(ferry_socket *s)
{
    ferry_life_hold(&s->life);
}

static void socket_free(ferry_socket *s);

void sio_socket_release(ferry_socket *s)
{
    if (ferry_life_drop(&s->life))
        socket_free(s);
}

static void socket_free(ferry_socket *s)
{
    FERRY_ASSERT(s->state == SOCK_GONE);
    while (!ferry_list_empty(&s->in_acks)) {
        ferry_ack *a = ferry_list_entry(s->in_acks.next, ferry_ack, link);
        ferry_list_remove(&a->link);
        ferry_mem_free(a);
    }
    sio_handlers_free(&s->handlers);
    sio_outbox_free(&s->ob);
    cJSON_Delete(s->auth);
    sio_recovery_release_data(s->nsp, s->data); /* set after it left (kept socket data) */
    ferry_mem_free(s);
}

/* Leave the client without having connected (refused, or the session went away). */
static void drop(ferry_socket *s)
{
    sio_recovery_discard(s);
    /* Data the namespace keeps and recovery did not take (ferry_namespace_keep_socket_data()). */
    void *data = s->data;
    s->data = NULL;
    sio_recovery_release_data(s->nsp, data);
    s->client->nsockets--;
    ferry_list_remove(&s->client_link);
    s->client = NULL;
    s->state = SOCK_GONE;
    if (ferry_life_close(&s->life)) /* the membership's reference */
        socket_free(s);
}

void sio_socket_abandon(ferry_socket *s)
{
    /* A middleware still deciding keeps its reference until ferry_middleware_next(). */
    drop(s);
}

void sio_socket_drop_waiting(ferry_sio *sio)
{
    while (!ferry_list_empty(&sio->waiting)) {
        ferry_socket *s = ferry_list_entry(sio->waiting.next, ferry_socket, wait_link);
        ferry_list_remove(&s->wait_link);
        if (s->state != SOCK_GONE)
            drop(s);
        sio_socket_release(s); /* the waiting middleware's */
    }
}

/* ------------------------------------------------------------------ sending */

int sio_socket_queue(ferry_socket *s, const sio_encoded *e, int volatile_)
{
    /* The namespace's backpressure policy decides (backpressure.c). */
    return sio_bp_queue(s, e, volatile_);
}

static int check_emit(const ferry_socket *s, const char *event, const cJSON *args)
{
    if (event != NULL && (!sio_valid_name(event) || sio_reserved_event(event)))
        return -FERRY_EINVAL;
    if (args != NULL && !cJSON_IsArray(args))
        return -FERRY_EINVAL;
    if (s->state == SOCK_MIDDLEWARE)
        return -FERRY_EBUSY;
    if (s->state != SOCK_CONNECTED || s->client->closing)
        return -FERRY_ECLOSED;
    return 0;
}

static int too_big(const ferry_socket *s, const sio_encoded *e)
{
    size_t max = ferry_engine_server_config(s->nsp->sio->engine)->max_payload;
    for (size_t i = 0; i < e->n; i++)
        if (e->bufs[i]->len > max)
            return 1;
    return 0;
}

static int emit(ferry_socket *s, const char *event, const cJSON *args, int64_t id, int vol)
{
    int rc = check_emit(s, event, args);
    if (rc != 0)
        return rc;
    sio_encoded e;
    rc = sio_recovery_on(s->nsp) && id == SIO_NO_ID && !vol
             ? sio_recovery_encode(s->nsp, event, args, NULL, s, &e)
             : sio_encode_event(s->nsp->name, id, event, args, &e);
    if (rc != 0)
        return rc;
    rc = too_big(s, &e) ? -FERRY_ETOOBIG : sio_socket_queue(s, &e, vol);
    sio_encoded_release(&e);
    return rc;
}

int ferry_socket_emit(ferry_socket *s, const char *event, const cJSON *args)
{
    if (event == NULL)
        return -FERRY_EINVAL;
    return emit(s, event, args, SIO_NO_ID, 0);
}

int ferry_socket_emit_volatile(ferry_socket *s, const char *event, const cJSON *args)
{
    if (event == NULL)
        return -FERRY_EINVAL;
    return emit(s, event, args, SIO_NO_ID, 1);
}

/* ------------------------------------------------------------------ acks we asked for */

static void out_ack_finish(sio_out_ack *a, int status, cJSON *args)
{
    ferry_socket *s = a->socket;
    ferry_list_remove(&a->link);
    ferry_timer_stop(wheel_of(s), &a->timer);
    s->nout_acks--;
    ferry_ack_cb cb = a->cb;
    void *ud = a->ud;
    ferry_mem_free(a); /* the books are closed before the callback (STYLE.md smell 6) */
    sio_socket_retain(s);
    cb(s, status, args, ud);
    sio_socket_release(s);
}

static void on_ack_timeout(ferry_timer *t)
{
    out_ack_finish(container_of(t, sio_out_ack, timer), -FERRY_ETIMEDOUT, NULL);
}

int ferry_socket_emit_ack(ferry_socket *s, const char *event, const cJSON *args,
                          uint32_t timeout_ms, ferry_ack_cb cb, void *user_data)
{
    if (event == NULL || cb == NULL)
        return -FERRY_EINVAL;
    int rc = check_emit(s, event, args);
    if (rc != 0)
        return rc;
    if (s->nout_acks >= SIO_MAX_PENDING_ACKS)
        return -FERRY_ELIMIT;
    sio_out_ack *a = ferry_mem_calloc(1, sizeof(*a));
    if (a == NULL)
        return -FERRY_ENOMEM;
    a->socket = s;
    a->id = s->next_ack_id;
    a->cb = cb;
    a->ud = user_data;
    ferry_timer_init(&a->timer, on_ack_timeout);
    rc = emit(s, event, args, a->id, 0);
    if (rc != 0) {
        ferry_mem_free(a);
        return rc;
    }
    s->next_ack_id = s->next_ack_id >= SIO_MAX_ID ? 0 : s->next_ack_id + 1;
    ferry_list_insert_tail(&s->out_acks, &a->link);
    s->nout_acks++;
    if (timeout_ms == 0)
        timeout_ms = ferry_engine_server_config(s->nsp->sio->engine)->ack_timeout_ms;
    if (timeout_ms > 0)
        ferry_timer_start(wheel_of(s), &a->timer, timeout_ms);
    return 0;
}

void sio_socket_on_ack(ferry_socket *s, sio_packet *pkt)
{
    ferry_list *it;
    ferry_list_foreach(it, &s->out_acks)
    {
        sio_out_ack *a = ferry_list_entry(it, sio_out_ack, link);
        if (a->id == pkt->id) {
            out_ack_finish(a, 0, pkt->data);
            return;
        }
    }
    /* An unknown or late ack id (after our timeout) is ignored, as the reference does. */
}

/* ------------------------------------------------------------------ acks the client asked for */

int ferry_ack_send(ferry_ack *ack, const cJSON *args)
{
    if (ack == NULL)
        return -FERRY_EINVAL;
    ferry_socket *s = ack->socket;
    if (args != NULL && !cJSON_IsArray(args))
        return -FERRY_EINVAL;
    int64_t id = ack->id;
    ferry_list_remove(&ack->link);
    ferry_mem_free(ack);
    s->nin_acks--;
    int rc = check_emit(s, NULL, NULL);
    if (rc != 0)
        return rc == -FERRY_EBUSY ? -FERRY_ECLOSED : rc;
    cJSON *empty = NULL;
    if (args == NULL && (args = empty = cJSON_CreateArray()) == NULL)
        return -FERRY_ENOMEM;
    sio_encoded e;
    rc = sio_encode(SIO_ACK, s->nsp->name, id, args, &e);
    cJSON_Delete(empty);
    if (rc != 0)
        return rc;
    rc = too_big(s, &e) ? -FERRY_ETOOBIG : sio_socket_queue(s, &e, 0);
    /* Kept to be sent again if its session is lost. Also when the engine refused it because
     * the session is closing over its queue's bound (closed at the next flush: the rest of the
     * same read still arrives and is taken): the client's recovered socket will not send the
     * emit again, so the kept answer is the only one it can get. */
    if ((rc == 0 || rc == -FERRY_ECLOSED) && sio_outbox_keep_answer(s, id, &e) && rc != 0) {
        FERRY_LOG(FERRY_LOG_INFO, "socket", ferry_session_id(s->client->session),
                  "ack %lld answered as the session closes: kept for the recovered socket",
                  (long long)id);
        rc = 0;
    }
    sio_encoded_release(&e);
    return rc;
}

ferry_socket *ferry_ack_socket(const ferry_ack *ack)
{
    return ack->socket;
}

/* ------------------------------------------------------------------ events */

void sio_socket_on_event(ferry_socket *s, sio_packet *pkt)
{
    cJSON *args = pkt->data;
    cJSON *first = cJSON_DetachItemViaPointer(args, args->child);
    char num[32];
    const char *event;
    if (cJSON_IsString(first)) {
        event = first->valuestring;
    } else {
        snprintf(num, sizeof(num), "%.17g", first->valuedouble);
        event = num;
    }
    const sio_handler *h = sio_handlers_find(&s->handlers, event);
    if (h == NULL)
        h = sio_handlers_find(&s->nsp->handlers, event);
    ferry_event_cb cb = h != NULL ? h->cb : s->any;
    void *ud = h != NULL ? h->ud : s->any_ud;
    if (cb == NULL) {
        cJSON_Delete(first);
        return; /* no handler: dropped, as in Socket.IO */
    }
    ferry_ack *ack = NULL;
    if (pkt->id != SIO_NO_ID) {
        if (s->nin_acks >= SIO_MAX_PENDING_ACKS) {
            /* A client piling up acks the app answers slowly (or never): memory would grow
             * without bound, so the session is closed as a flood. */
            FERRY_LOG(FERRY_LOG_WARN, "socket", ferry_session_id(s->client->session),
                      "over %u unanswered acks: closing", SIO_MAX_PENDING_ACKS);
            cJSON_Delete(first);
            s->client->closing = 1;
            ferry_engine_close_session(s->client->session, FERRY_REASON_TRANSPORT_ERROR, 0);
            return;
        }
        ack = ferry_mem_alloc(sizeof(*ack));
        if (ack == NULL) {
            /* The client waits for this ack: dropping the event silently would leave it
             * waiting (issue 9). The session ends instead. */
            cJSON_Delete(first);
            s->client->closing = 1;
            ferry_engine_close_session(s->client->session, FERRY_REASON_TRANSPORT_ERROR, 0);
            return;
        }
        ack->socket = s;
        ack->id = pkt->id;
        ferry_list_insert_tail(&s->in_acks, &ack->link);
        s->nin_acks++;
    }
    sio_socket_retain(s);
    cb(s, event, args, ack, ud);
    sio_socket_release(s);
    cJSON_Delete(first);
}

int ferry_socket_on(ferry_socket *s, const char *event, ferry_event_cb cb, void *user_data)
{
    return sio_handlers_set(&s->handlers, event, cb, user_data, SIO_MAX_SOCKET_HANDLERS);
}

void ferry_socket_on_any(ferry_socket *s, ferry_event_cb cb, void *user_data)
{
    s->any = cb;
    s->any_ud = user_data;
}

void ferry_socket_on_disconnect(ferry_socket *s, ferry_disconnect_cb cb, void *user_data)
{
    s->on_disconnect = cb;
    s->on_disconnect_ud = user_data;
}

/* ------------------------------------------------------------------ connecting */

static void send_connect_error(ferry_socket *s, const char *message, const cJSON *data)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || cJSON_AddStringToObject(o, "message", message) == NULL)
        goto out;
    if (data != NULL) {
        cJSON *d = cJSON_Duplicate(data, 1);
        if (d == NULL || !cJSON_AddItemToObject(o, "data", d)) {
            cJSON_Delete(d);
            goto out;
        }
    }
    sio_encoded e;
    if (sio_encode(SIO_CONNECT_ERROR, s->nsp->name, SIO_NO_ID, o, &e) == 0) {
        sio_client_send(s->client, &e);
        sio_encoded_release(&e);
    }
out:
    cJSON_Delete(o);
}

static void do_connect(ferry_socket *s)
{
    sio_client *c = s->client;
    ferry_namespace *nsp = s->nsp;
    if (sio_socket_join(s, s->id) != 0) {
        ferry_engine_close_session(c->session, FERRY_REASON_TRANSPORT_ERROR, 0);
        return;
    }
    sio_recovery_rejoin(s);
    s->state = SOCK_CONNECTED;
    ferry_list_insert_tail(&nsp->sockets, &s->nsp_link);
    nsp->nsockets++;
    c->nconnected++;
    ferry_timer_stop(wheel_of(s), &c->connect_timer);
    if (s->not_recovered != NULL) {
        /* The client asked to recover (it sent a pid): say why it was not, so that a run that
         * counts reconnections not recovered can tell them apart. */
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(s->auth, "offset");
        FERRY_LOG(FERRY_LOG_INFO, "socket", ferry_session_id(c->session),
                  "socket %s in %s not recovered (%s: %s; offset %s): a new socket", s->id,
                  nsp->name, s->not_recovered,
                  s->not_recovered_why != NULL ? s->not_recovered_why : "-",
                  cJSON_IsString(off) ? off->valuestring : "none");
    }
    cJSON *o = cJSON_CreateObject();
    sio_encoded e;
    if (o != NULL && cJSON_AddStringToObject(o, "sid", s->id) != NULL &&
        (s->pid[0] == '\0' || cJSON_AddStringToObject(o, "pid", s->pid) != NULL) &&
        (s->not_recovered == NULL ||
         cJSON_AddStringToObject(o, "notRecovered", s->not_recovered) != NULL) &&
        sio_outbox_connect_data(s, o) == 0 &&
        sio_encode(SIO_CONNECT, nsp->name, SIO_NO_ID, o, &e) == 0) {
        sio_client_send(c, &e);
        sio_encoded_release(&e);
    } else {
        /* Out of memory for the CONNECT answer: the client would wait for it for ever. */
        cJSON_Delete(o);
        FERRY_LOG(FERRY_LOG_WARN, "socket", ferry_session_id(c->session),
                  "out of memory connecting: closing");
        c->closing = 1;
        ferry_engine_close_session(c->session, FERRY_REASON_TRANSPORT_ERROR, 0);
        return;
    }
    cJSON_Delete(o);
    s->ob.confirmed = s->ob.taken;
    /* Ack answers lost with the old session, then what a recovered socket missed, go out
     * before anything the app sends now. */
    sio_outbox_resend_answers(s);
    sio_recovery_replay(s);
    sio_rr_persist(s);
    if (nsp->on_connection != NULL)
        nsp->on_connection(s, nsp->on_connection_ud);
}

/* Run middlewares from s->mw_next on. A middleware that decides inside its callback lets the
 * loop go on; one that returns undecided parks s on the waiting list until
 * ferry_middleware_next(). The caller holds a reference on s. */
void sio_socket_start(ferry_socket *s)
{
    ferry_namespace *nsp = s->nsp;
    if (s->rec_remote && sio_rr_begin(s))
        return; /* its record is looked for in Redis first */
    while (s->state == SOCK_MIDDLEWARE) {
        if (s->mw_next >= nsp->nmw) {
            s->mw = MW_IDLE;
            do_connect(s);
            return;
        }
        sio_middleware m = nsp->mw[s->mw_next];
        s->mw = MW_RUNNING;
        m.cb(s, m.ud);
        if (s->mw == MW_RUNNING) {
            s->mw = MW_ASYNC;
            sio_socket_retain(s); /* until the decision */
            ferry_list_insert_tail(&nsp->sio->waiting, &s->wait_link);
            return;
        }
        if (s->mw == MW_REFUSED) {
            if (s->state == SOCK_MIDDLEWARE)
                drop(s);
            return;
        }
        s->mw_next++;
    }
}

int ferry_middleware_next(ferry_socket *s, const char *error_message, const cJSON *error_data)
{
    if (s == NULL || (s->mw != MW_RUNNING && s->mw != MW_ASYNC))
        return -FERRY_EINVAL;
    int async = s->mw == MW_ASYNC;
    if (s->state == SOCK_MIDDLEWARE && error_message != NULL)
        send_connect_error(s, error_message, error_data);
    s->mw = error_message != NULL ? MW_REFUSED : MW_ACCEPTED;
    if (!async)
        return 0; /* sio_socket_start() goes on when the callback returns */
    ferry_list_remove(&s->wait_link);
    if (s->state == SOCK_MIDDLEWARE) {
        if (error_message != NULL) {
            drop(s);
        } else {
            s->mw_next++;
            sio_socket_start(s);
        }
    }
    sio_socket_release(s); /* the waiting middleware's */
    return 0;
}

/* ------------------------------------------------------------------ leaving */

void sio_socket_close(ferry_socket *s, ferry_reason reason, int notify)
{
    if (s->state != SOCK_CONNECTED && s->state != SOCK_DISCONNECTING)
        return;
    sio_client *c = s->client;
    ferry_timer_stop(wheel_of(s), &s->defer);
    sio_socket_retain(s);
    /* The disconnect callback may close the session (or the server): c stays allocated until
     * this socket has left it (the one lifetime rule, common/life.h). */
    sio_client_hold(c);
    if (notify) {
        sio_encoded e;
        if (sio_encode(SIO_DISCONNECT, s->nsp->name, SIO_NO_ID, NULL, &e) == 0) {
            sio_client_send(c, &e);
            sio_encoded_release(&e);
        }
    }
    s->state = SOCK_CLOSING;
    /* Acks we wait for fail first, then the app hears the disconnect (ferry.h). */
    while (!ferry_list_empty(&s->out_acks))
        out_ack_finish(ferry_list_entry(s->out_acks.next, sio_out_ack, link), -FERRY_ECLOSED,
                       NULL);
    if (s->on_disconnect != NULL)
        s->on_disconnect(s, reason, s->on_disconnect_ud);
    sio_recovery_save(s, reason); /* with the rooms it has after "disconnecting" */
    s->nsp->adapter->ops->del_all(s->nsp->adapter, s->id);
    ferry_list_remove(&s->nsp_link);
    s->nsp->nsockets--;
    c->nconnected--;
    drop(s);
    sio_client_drop(c);
    sio_socket_release(s);
}

static void on_defer(ferry_timer *t)
{
    ferry_socket *s = container_of(t, ferry_socket, defer);
    if (s->state != SOCK_DISCONNECTING)
        return;
    if (!s->close_session) {
        sio_socket_close(s, FERRY_REASON_SERVER_NAMESPACE_DISCONNECT, 1);
        return;
    }
    /* Every namespace of the session leaves, then the session closes once its queue (the
     * DISCONNECT packets included) is written. */
    sio_client *c = s->client;
    ferry_session *ss = c->session;
    ferry_session_retain(ss);
    c->closing = 1;
    for (;;) {
        ferry_socket *live = NULL;
        ferry_list *it;
        ferry_list_foreach(it, &c->sockets)
        {
            ferry_socket *o = ferry_list_entry(it, ferry_socket, client_link);
            if (o->state == SOCK_CONNECTED || o->state == SOCK_DISCONNECTING) {
                live = o;
                break;
            }
        }
        if (live == NULL)
            break;
        sio_socket_close(live, FERRY_REASON_FORCED_SERVER_CLOSE, 1);
    }
    sio_client_close_after_drain(c);
    ferry_session_release(ss);
}

void ferry_socket_disconnect(ferry_socket *s, int close_session)
{
    if (s->state != SOCK_CONNECTED)
        return;
    s->state = SOCK_DISCONNECTING;
    s->close_session = close_session != 0;
    ferry_timer_start(wheel_of(s), &s->defer, 0);
}

int ferry_socket_recovered(const ferry_socket *s)
{
    return s->recovered;
}

int ferry_socket_connected(const ferry_socket *s)
{
    return s->state == SOCK_CONNECTED;
}

/* ------------------------------------------------------------------ rooms and accessors
 *
 * The namespace's adapter owns rooms and membership; a socket is known to it by its id. */

int sio_socket_join(ferry_socket *s, const char *room)
{
    ferry_adapter *a = s->nsp->adapter;
    return a->ops->add_all(a, s, s->id, &room, 1);
}

static int room_call_ok(const ferry_socket *s, const char *room)
{
    if (!sio_valid_name(room))
        return -FERRY_EINVAL;
    if (s->state == SOCK_MIDDLEWARE)
        return -FERRY_EBUSY;
    if (s->state != SOCK_CONNECTED)
        return -FERRY_ECLOSED;
    return 0;
}

int ferry_socket_join(ferry_socket *s, const char *room)
{
    int rc = room_call_ok(s, room);
    if (rc == 0 && (rc = sio_socket_join(s, room)) == 0)
        sio_rr_persist(s);
    return rc;
}

int ferry_socket_leave(ferry_socket *s, const char *room)
{
    int rc = room_call_ok(s, room);
    if (rc == 0) {
        s->nsp->adapter->ops->del(s->nsp->adapter, s->id, room);
        sio_rr_persist(s);
    }
    return rc;
}

int ferry_socket_in(const ferry_socket *s, const char *room)
{
    return room != NULL && s->nsp->adapter->ops->has(s->nsp->adapter, s->id, room);
}

size_t ferry_socket_rooms(const ferry_socket *s, const char **out, size_t max)
{
    return s->nsp->adapter->ops->socket_rooms(s->nsp->adapter, s->id, out, max);
}

const char *ferry_socket_id(const ferry_socket *s)
{
    return s->id;
}

_Static_assert(15 * 4 / 3 == SIO_ID_LEN, "a socket id is 15 random bytes in base64url");

int ferry_is_socket_id(const char *name)
{
    /* sio_socket_new(): base64url of 15 random bytes, no padding. */
    if (name == NULL)
        return 0;
    size_t n = 0;
    for (; name[n] != '\0' && n <= SIO_ID_LEN; n++) {
        unsigned char c = (unsigned char)name[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return n == SIO_ID_LEN;
}

ferry_namespace *ferry_socket_namespace(const ferry_socket *s)
{
    return s->nsp;
}

ferry_session *ferry_socket_session(const ferry_socket *s)
{
    return s->client != NULL ? s->client->session : NULL;
}

uint64_t ferry_socket_counter(const ferry_socket *s, ferry_counter which)
{
    ferry_session *session = ferry_socket_session(s);
    return session != NULL ? ferry_session_counter(session, which) : 0;
}

void ferry_socket_set_data(ferry_socket *s, void *data)
{
    void *old = s->data;
    s->data = data;
    if (old != data)
        sio_recovery_release_data(s->nsp, old);
}

void *ferry_socket_get_data(const ferry_socket *s)
{
    return s->data;
}

const cJSON *ferry_socket_auth(const ferry_socket *s)
{
    /* A CONNECT without a payload keeps no object of its own: every such socket shares this
     * empty one (const: the app may not modify it, as for any auth). */
    static const cJSON none = {.type = cJSON_Object};
    return s->auth != NULL ? s->auth : &none;
}

const char *ferry_socket_query(const ferry_socket *s, const char *name)
{
    return s->client != NULL ? ferry_session_query(s->client->session, name) : NULL;
}

const char *ferry_socket_header(const ferry_socket *s, const char *name)
{
    return s->client != NULL ? ferry_session_header(s->client->session, name) : NULL;
}

const char *ferry_socket_query_at(const ferry_socket *s, size_t i, const char **value)
{
    if (s->client != NULL)
        return ferry_session_query_at(s->client->session, i, value);
    if (value != NULL)
        *value = NULL;
    return NULL;
}

const char *ferry_socket_header_at(const ferry_socket *s, size_t i, const char **value)
{
    if (s->client != NULL)
        return ferry_session_header_at(s->client->session, i, value);
    if (value != NULL)
        *value = NULL;
    return NULL;
}

const char *ferry_socket_url(const ferry_socket *s)
{
    return s->client != NULL ? ferry_session_url(s->client->session) : "";
}

const char *ferry_socket_address(const ferry_socket *s)
{
    return s->client != NULL ? ferry_session_remote_addr(s->client->session) : "";
}

int ferry_socket_secure(const ferry_socket *s)
{
    return s->client != NULL ? ferry_session_secure(s->client->session) : 0;
}

uint64_t ferry_socket_time(const ferry_socket *s)
{
    return s->time_ms;
}
