/* Backpressure per namespace (ferry.h "backpressure per namespace", docs/reliability.md): what
 * happens to a packet that would take its session's send queue past the namespace's bound, the
 * bytes queued for a socket, and the drain callback.
 *
 * Every packet the Socket.IO layer queues for a socket's events and acks comes through
 * sio_bp_queue(); control packets (CONNECT, DISCONNECT, CONNECT_ERROR) go through
 * sio_client_send() and the engine's own (ping, pong, close, noop) never reach a policy, so
 * they are never dropped. The engine does the queue work (engine/engine.h "backpressure"):
 * marked entries (volatile, keyed) that a policy may remove, the deferred close, and a call
 * after each flush in which a transport took packets (ferry_session_watch_drain), where drain
 * callbacks run and spilling sockets catch up from the recovery log. */
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "socket/internal.h"

/* LATEST: the newest queued packets searched for an older one with the same key. */
#define LATEST_SCAN 4096

static const char *const policy_names[] = {"close", "drop-volatile", "latest", "spill"};
#define NPOLICIES (sizeof(policy_names) / sizeof(policy_names[0]))

const char *ferry_backpressure_name(ferry_backpressure policy)
{
    return (unsigned)policy < NPOLICIES ? policy_names[policy] : NULL;
}

int ferry_backpressure_parse(const char *name, ferry_backpressure *out)
{
    if (name == NULL || out == NULL)
        return -FERRY_EINVAL;
    for (unsigned i = 0; i < NPOLICIES; i++)
        if (strcmp(name, policy_names[i]) == 0) {
            *out = (ferry_backpressure)i;
            return 0;
        }
    return -FERRY_EINVAL;
}

static size_t hard_max(const ferry_namespace *nsp)
{
    return ferry_engine_server_config(nsp->sio->engine)->max_session_queue_bytes;
}

static size_t bound_of(const ferry_namespace *nsp)
{
    return nsp->bp_max != 0 ? nsp->bp_max : hard_max(nsp);
}

int ferry_namespace_set_backpressure(ferry_namespace *nsp, ferry_backpressure policy,
                                     size_t max_bytes)
{
    if (nsp == NULL || ferry_backpressure_name(policy) == NULL || max_bytes > hard_max(nsp))
        return -FERRY_EINVAL;
    if (policy == FERRY_BACKPRESSURE_SPILL && !sio_recovery_on(nsp))
        return -FERRY_EINVAL;
    nsp->bp_policy = policy;
    nsp->bp_max = max_bytes;
    return 0;
}

ferry_backpressure ferry_namespace_backpressure(const ferry_namespace *nsp, size_t *max_bytes)
{
    if (max_bytes != NULL)
        *max_bytes = bound_of(nsp);
    return nsp->bp_policy;
}

static int valid_key(const char *key)
{
    return key != NULL && key[0] != '\0' && strlen(key) <= FERRY_NAME_MAX;
}

ferry_buf *sio_bp_key_new(const ferry_namespace *nsp, const char *key)
{
    /* Namespaced: two namespaces of one session may use the same key. */
    size_t a = strlen(nsp->name), k = strlen(key);
    ferry_buf *b = ferry_buf_new(a + 1 + k);
    if (b == NULL)
        return NULL;
    memcpy(b->data, nsp->name, a + 1);
    memcpy(b->data + a + 1, key, k);
    return b;
}

int ferry_bcast_keyed(ferry_bcast *b, const char *key)
{
    if (b == NULL || !valid_key(key))
        return -FERRY_EINVAL;
    b->key = key;
    return 0;
}

int ferry_socket_emit_keyed(ferry_socket *s, const char *key, const char *event, const cJSON *args)
{
    if (s == NULL || !valid_key(key))
        return -FERRY_EINVAL;
    ferry_buf *kb = sio_bp_key_new(s->nsp, key);
    if (kb == NULL)
        return -FERRY_ENOMEM;
    /* ferry_socket_emit() ends in sio_bp_queue(), which finds the key here; no callback runs
     * in between. */
    ferry_buf *outer = s->nsp->bp_key;
    s->nsp->bp_key = kb;
    int rc = ferry_socket_emit(s, event, args);
    s->nsp->bp_key = outer;
    ferry_buf_release(kb);
    return rc;
}

size_t ferry_socket_buffered_amount(const ferry_socket *s)
{
    ferry_session *ss = s != NULL ? ferry_socket_session(s) : NULL;
    return ss != NULL ? ferry_session_queued_bytes(ss) : 0;
}

static void on_session_drain(ferry_session *ss, void *ud);

/* One watch per session, on the session's own client: a tab's client (docs/protocol.md
 * section 11) shares its parent's session. */
static void watch(ferry_socket *s)
{
    sio_client *root = s->client->parent != NULL ? s->client->parent : s->client;
    ferry_session_watch_drain(root->session, on_session_drain, root);
}

int ferry_socket_on_drain(ferry_socket *s, size_t low_water, ferry_drain_cb cb, void *user_data)
{
    if (s == NULL)
        return -FERRY_EINVAL;
    if (s->state != SOCK_CONNECTED || s->client == NULL || s->client->closing)
        return -FERRY_ECLOSED;
    s->drain_cb = cb;
    s->drain_ud = user_data;
    s->drain_low = low_water;
    s->drain_armed = cb != NULL && ferry_socket_buffered_amount(s) > low_water;
    if (cb != NULL)
        watch(s);
    return 0;
}

int sio_bp_send(ferry_socket *s, const sio_encoded *e, unsigned flags, ferry_buf *key)
{
    sio_client *c = s->client;
    if (c->parent != NULL)
        return sio_client_send(c, e); /* a tab's packets are rewritten there; never marked */
    /* Only a packet without attachments is marked: removing part of an event would break the
     * stream. */
    if (e->n != 1) {
        flags = 0;
        key = NULL;
    }
    int rc = 0;
    c->sio->depth++;
    for (size_t i = 0; i < e->n && rc == 0; i++)
        rc = ferry_engine_queue_marked(c->session, e->bufs[i], flags, key);
    c->sio->depth--;
    return rc;
}

static size_t enc_bytes(const sio_encoded *e)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++)
        n += e->bufs[i]->len;
    return n;
}

/* SPILL, or a recovery's replay: catch up from the log as far as the bound lets; a gap closes
 * the session. */
static void catch_up(ferry_socket *s)
{
    int rc = sio_recovery_catch_up(s, bound_of(s->nsp));
    if (rc == 1) {
        if (s->spilling == SIO_SPILL_BEHIND)
            FERRY_LOG(FERRY_LOG_INFO, "socket", ferry_session_id(s->client->session),
                      "socket %s caught up from the recovery log", s->id);
        s->spilling = 0;
    } else if (rc < 0) {
        FERRY_LOG(FERRY_LOG_WARN, "socket", ferry_session_id(s->client->session),
                  "socket %s cannot catch up from the recovery log (%s): closing", s->id,
                  ferry_strerror(rc));
        s->spilling = 0;
        ferry_engine_overflow(s->client->session);
    }
}

void sio_bp_replay(ferry_socket *s)
{
    s->spilling = SIO_SPILL_REPLAY;
    catch_up(s);
    if (s->spilling != 0 && s->state == SOCK_CONNECTED && !s->client->closing)
        watch(s);
}

int sio_bp_queue(ferry_socket *s, const sio_encoded *e, int volatile_)
{
    ferry_namespace *nsp = s->nsp;
    ferry_session *ss = s->client->session;
    size_t queued = ferry_session_queued_bytes(ss);
    if (volatile_ && (queued > 0 || ferry_session_upgrading(ss) || s->spilling))
        return 0; /* the client is behind: a volatile packet is dropped, as documented */
    ferry_backpressure policy = nsp->bp_policy;
    if (policy == FERRY_BACKPRESSURE_SPILL && !sio_recovery_on(nsp))
        policy = FERRY_BACKPRESSURE_CLOSE;
    uint64_t seq = 0;
    if (!volatile_ && sio_recovery_on(nsp))
        seq = sio_recovery_seq_of(nsp, e);
    size_t bound = bound_of(nsp), len = enc_bytes(e);
    int over = queued > 0 && queued + len > bound;
    if (s->spilling && seq != 0) {
        /* Already in the log, behind what the socket is catching up on: queued now if the
         * queue has room again, else later. */
        if (!over)
            catch_up(s);
        return 0;
    }
    if (policy == FERRY_BACKPRESSURE_SPILL && seq != 0) {
        if (over) {
            FERRY_LOG(FERRY_LOG_INFO, "socket", ferry_session_id(ss),
                      "socket %s is behind (%zu bytes queued): its events wait in the recovery "
                      "log",
                      s->id, queued);
            s->spilling = SIO_SPILL_BEHIND;
            s->spill_pos = s->last_seq;
            watch(s);
            return 0;
        }
    }
    if (over && policy != FERRY_BACKPRESSURE_CLOSE)
        ferry_engine_shed_volatile(ss);
    ferry_buf *key = NULL;
    if (policy == FERRY_BACKPRESSURE_LATEST && !volatile_ && nsp->bp_key != NULL) {
        key = nsp->bp_key;
        if (over)
            ferry_engine_drop_key(ss, key, LATEST_SCAN);
    }
    if (seq != 0)
        sio_recovery_queued(s, e);
    int rc = sio_bp_send(s, e, volatile_ ? FERRY_QUEUE_VOLATILE : 0, key);
    if (rc == 0 && policy == FERRY_BACKPRESSURE_CLOSE && over)
        ferry_engine_overflow(ss);
    if (rc == 0 && s->drain_cb != NULL && ferry_session_queued_bytes(ss) > s->drain_low)
        s->drain_armed = 1;
    return rc;
}

/* The sockets of c that listen (spilling, or with a drain callback) into v[n..), retained. */
static size_t collect(sio_client *c, ferry_socket **v, size_t n)
{
    ferry_list *it;
    ferry_list_foreach(it, &c->sockets)
    {
        ferry_socket *s = ferry_list_entry(it, ferry_socket, client_link);
        if (n < SIO_MAX_SOCKETS_PER_CLIENT && s->state == SOCK_CONNECTED &&
            (s->spilling || s->drain_cb != NULL)) {
            sio_socket_retain(s);
            v[n++] = s;
        }
    }
    return n;
}

/* After a flush in which transports took packets from the session's queue: spilling sockets
 * catch up, then drain callbacks run. Sockets are held in an array first: a callback may
 * disconnect any of them or close the session. */
static void on_session_drain(ferry_session *ss, void *ud)
{
    sio_client *c = ud;
    if (c->closing || ferry_life_closed(&c->life))
        return;
    ferry_socket *v[SIO_MAX_SOCKETS_PER_CLIENT];
    size_t n = collect(c, v, 0);
    ferry_list *t;
    ferry_list_foreach(t, &c->tabs)
    {
        n = collect(ferry_list_entry(t, sio_client, tab_link), v, n);
    }
    if (n == 0) {
        ferry_session_watch_drain(ss, NULL, NULL); /* nobody listens any more */
        return;
    }
    sio_client_hold(c);
    for (size_t i = 0; i < n; i++)
        if (v[i]->spilling && v[i]->state == SOCK_CONNECTED && !v[i]->client->closing)
            catch_up(v[i]);
    for (size_t i = 0; i < n; i++) {
        ferry_socket *s = v[i];
        size_t q = ferry_session_queued_bytes(ss);
        if (s->state == SOCK_CONNECTED && !s->client->closing && s->drain_cb != NULL) {
            if (q > s->drain_low) {
                s->drain_armed = 1;
            } else if (s->drain_armed) {
                s->drain_armed = 0;
                s->drain_cb(s, q, s->drain_ud);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        sio_socket_release(v[i]);
    sio_client_drop(c);
}
