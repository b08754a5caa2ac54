/* Namespaces, the layer's set-up on a server, and handler tables. */
#include <string.h>

#include "common/mem.h"
#include "common/utf8.h"
#include "socket/internal.h"

int sio_valid_name(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    return n > 0 && n <= FERRY_NAME_MAX && ferry_utf8_valid(name, n);
}

/* ------------------------------------------------------------------ handler tables */

const sio_handler *sio_handlers_find(const sio_handlers *h, const char *event)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->v[i].event, event) == 0)
            return &h->v[i];
    return NULL;
}

int sio_handlers_set(sio_handlers *h, const char *event, ferry_event_cb cb, void *ud, size_t max)
{
    if (!sio_valid_name(event))
        return -FERRY_EINVAL;
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->v[i].event, event) == 0) {
            if (cb == NULL) {
                ferry_mem_free(h->v[i].event);
                h->v[i] = h->v[--h->n];
            } else {
                h->v[i].cb = cb;
                h->v[i].ud = ud;
            }
            return 0;
        }
    if (cb == NULL)
        return 0;
    if (h->n >= max)
        return -FERRY_ELIMIT;
    sio_handler *v = ferry_mem_realloc(h->v, (h->n + 1) * sizeof(*v));
    if (v == NULL)
        return -FERRY_ENOMEM;
    h->v = v;
    char *e = ferry_mem_strdup(event);
    if (e == NULL)
        return -FERRY_ENOMEM;
    v[h->n++] = (sio_handler){e, cb, ud};
    return 0;
}

void sio_handlers_free(sio_handlers *h)
{
    for (size_t i = 0; i < h->n; i++)
        ferry_mem_free(h->v[i].event);
    ferry_mem_free(h->v);
    h->v = NULL;
    h->n = 0;
}

/* ------------------------------------------------------------------ the layer */

static void nsp_free(ferry_namespace *nsp)
{
    sio_recovery_free(nsp);
    if (nsp->adapter != NULL)
        nsp->adapter->ops->destroy(nsp->adapter);
    sio_handlers_free(&nsp->handlers);
    ferry_mem_free(nsp->name);
    ferry_mem_free(nsp);
}

/* Runs when the server is freed: every session (hence every socket) is gone by then. */
void sio_free(ferry_sio *sio)
{
    /* A close deferred past the wheel's last tick (the server was closing) ends here. */
    sio_client_drop_all(sio);
    sio_socket_drop_waiting(sio);
    while (sio->nsps != NULL) {
        ferry_namespace *n = sio->nsps;
        sio->nsps = n->next;
        nsp_free(n);
    }
    ferry_mem_free(sio);
}

/* The adapter's one way to a socket: queue the broadcast's shared packet to it. */
static int deliver(void *ctx, ferry_socket *s, const ferry_adapter_packet *pkt, unsigned flags)
{
    (void)ctx;
    if (!sio_socket_live(s))
        return 0;
    /* A view of the broadcaster's buffers: the queue takes its own references. */
    sio_encoded e = {.n = pkt->n, .bufs = (ferry_buf **)pkt->bufs};
    int rc = sio_socket_queue(s, &e, (flags & FERRY_ADAPTER_VOLATILE) != 0);
    return rc == 0 ? 1 : rc;
}

/* A broadcast from another node: stamped and logged for recovery like our own (a client that
 * comes back here gets it), then delivered to this node's sockets. */
static int remote(void *ctx, const ferry_adapter_packet *pkt, const ferry_adapter_target *t)
{
    ferry_namespace *nsp = ctx;
    sio_encoded in = {.n = pkt->n, .bufs = (ferry_buf **)pkt->bufs}, stamped;
    const sio_encoded *e = &in;
    if (sio_recovery_on(nsp) && !(t->flags & FERRY_ADAPTER_VOLATILE) &&
        sio_recovery_stamp(nsp, t, &in, pkt->origin, pkt->origin_seq, &stamped) == 0)
        e = &stamped;
    ferry_adapter_target local = *t;
    local.flags |= FERRY_ADAPTER_LOCAL;
    ferry_adapter_packet p = {.bufs = e->bufs, .n = e->n};
    nsp->sio->depth++;
    int rc = nsp->adapter->ops->broadcast(nsp->adapter, &p, &local);
    nsp->sio->depth--;
    if (e == &stamped)
        sio_encoded_release(&stamped);
    return rc;
}

static ferry_namespace *nsp_new(ferry_sio *sio, const char *name)
{
    ferry_namespace *nsp = ferry_mem_calloc(1, sizeof(*nsp));
    if (nsp == NULL)
        return NULL;
    nsp->sio = sio;
    ferry_list_init(&nsp->sockets);
    ferry_list_init(&nsp->log);
    ferry_list_init(&nsp->saved);
    nsp->name = ferry_mem_strdup(name);
    ferry_adapter_host host = {
        .deliver = deliver, .remote = remote, .command = sio_cluster_command, .ctx = nsp};
    const ferry_adapter_factory *f = sio->adapter_factory;
    if (nsp->name == NULL || f->create(f->ud, nsp->name, &host, &nsp->adapter) != 0) {
        nsp_free(nsp);
        return NULL;
    }
    nsp->next = sio->nsps;
    sio->nsps = nsp;
    return nsp;
}

ferry_sio *sio_new(ferry_server *owner, ferry_engine *eng, const ferry_adapter_factory *adapters)
{
    ferry_sio *sio = ferry_mem_calloc(1, sizeof(*sio));
    if (sio == NULL)
        return NULL;
    sio->srv = owner;
    sio->engine = eng;
    sio->adapter_factory = adapters;
    ferry_list_init(&sio->clients);
    ferry_list_init(&sio->waiting);
    /* The main namespace always exists, as in Socket.IO. */
    if (nsp_new(sio, "/") == NULL) {
        ferry_mem_free(sio);
        return NULL;
    }
    return sio;
}

ferry_namespace *sio_nsp_find(ferry_sio *sio, const char *name)
{
    for (ferry_namespace *n = sio->nsps; n != NULL; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

const char *sio_full_name(const char *name, char buf[FERRY_NAME_MAX + 2])
{
    if (!sio_valid_name(name))
        return NULL;
    if (name[0] != '/') {
        buf[0] = '/';
        strcpy(buf + 1, name);
        name = buf;
        if (strlen(name) > FERRY_NAME_MAX)
            return NULL;
    }
    return name;
}

ferry_namespace *sio_of(ferry_sio *sio, const char *full_name)
{
    ferry_namespace *nsp = sio_nsp_find(sio, full_name);
    return nsp != NULL ? nsp : nsp_new(sio, full_name);
}

void sio_on_namespace_request(ferry_sio *sio, ferry_namespace_request_cb cb, void *user_data)
{
    sio->on_request = cb;
    sio->on_request_ud = user_data;
}

const char *ferry_namespace_name(const ferry_namespace *nsp)
{
    return nsp->name;
}

ferry_server *ferry_namespace_server(const ferry_namespace *nsp)
{
    return nsp->sio->srv;
}

void ferry_namespace_set_data(ferry_namespace *nsp, void *data)
{
    nsp->data = data;
}

void *ferry_namespace_get_data(const ferry_namespace *nsp)
{
    return nsp->data;
}

void ferry_namespace_on_connection(ferry_namespace *nsp, ferry_connection_cb cb, void *user_data)
{
    nsp->on_connection = cb;
    nsp->on_connection_ud = user_data;
}

int ferry_namespace_use(ferry_namespace *nsp, ferry_middleware_cb cb, void *user_data)
{
    if (cb == NULL)
        return -FERRY_EINVAL;
    if (nsp->nmw >= SIO_MAX_MIDDLEWARES)
        return -FERRY_ELIMIT;
    nsp->mw[nsp->nmw++] = (sio_middleware){cb, user_data};
    return 0;
}

int ferry_namespace_on(ferry_namespace *nsp, const char *event, ferry_event_cb cb,
                       void *user_data)
{
    return sio_handlers_set(&nsp->handlers, event, cb, user_data, (size_t)-1);
}

typedef struct collect {
    ferry_socket **out;
    size_t max;
    size_t n;
    const char *id; /* looking for this socket only */
} collect;

static int collect_one(void *ud, ferry_socket *s)
{
    collect *c = ud;
    if (!sio_socket_live(s))
        return 0;
    if (c->id != NULL) {
        /* The room named by a socket id could also have been joined by others: check. */
        if (strcmp(s->id, c->id) != 0)
            return 0;
        c->out[0] = s;
        return 1;
    }
    if (c->n < c->max)
        c->out[c->n] = s;
    c->n++;
    return 0;
}

size_t ferry_namespace_sockets(ferry_namespace *nsp, const char *room, ferry_socket **out,
                               size_t max)
{
    collect c = {out, max, 0, NULL};
    ferry_adapter_target t = {.rooms = &room, .nrooms = room != NULL};
    nsp->adapter->ops->fetch(nsp->adapter, &t, collect_one, &c);
    return c.n;
}

ferry_socket *ferry_namespace_socket(ferry_namespace *nsp, const char *id)
{
    ferry_socket *s = NULL;
    if (id == NULL)
        return NULL;
    /* A socket is found in the room named by its id, which holds it: a name no socket has is
     * answered by the adapter's index at once instead of by a walk over a room of that name
     * (a crowd's room, in the relay's join check). */
    if (!nsp->adapter->ops->has(nsp->adapter, id, id))
        return NULL;
    collect c = {&s, 1, 0, id};
    ferry_adapter_target t = {.rooms = &id, .nrooms = 1};
    nsp->adapter->ops->fetch(nsp->adapter, &t, collect_one, &c);
    return s;
}

/* ------------------------------------------------------------------ broadcasts */

void ferry_bcast_init(ferry_bcast *b, ferry_namespace *nsp)
{
    memset(b, 0, sizeof(*b));
    b->nsp = nsp;
}

void ferry_bcast_from(ferry_bcast *b, const ferry_socket *s)
{
    ferry_bcast_init(b, s->nsp);
    b->exclude = s;
}

int ferry_bcast_to(ferry_bcast *b, const char *room)
{
    if (room == NULL)
        return -FERRY_EINVAL;
    if (b->nto >= FERRY_BCAST_MAX_ROOMS)
        return -FERRY_ELIMIT;
    b->to[b->nto++] = room;
    return 0;
}

int ferry_bcast_except(ferry_bcast *b, const char *room)
{
    if (room == NULL)
        return -FERRY_EINVAL;
    if (b->nexcept >= FERRY_BCAST_MAX_ROOMS)
        return -FERRY_ELIMIT;
    b->except[b->nexcept++] = room;
    return 0;
}

void ferry_bcast_volatile(ferry_bcast *b)
{
    b->flags |= FERRY_BCAST_VOLATILE;
}

int ferry_bcast_emit(const ferry_bcast *b, const char *event, const cJSON *args)
{
    if (b == NULL || b->nsp == NULL || !sio_valid_name(event) || sio_reserved_event(event) ||
        (args != NULL && !cJSON_IsArray(args)))
        return -FERRY_EINVAL;
    /* Encoded once; every recipient's queue shares the buffers. */
    sio_encoded e;
    int logged = sio_recovery_on(b->nsp) && !(b->flags & FERRY_BCAST_VOLATILE);
    int rc = logged ? sio_recovery_encode(b->nsp, event, args, b, NULL, &e)
                    : sio_encode_event(b->nsp->name, SIO_NO_ID, event, args, &e);
    if (rc != 0)
        return rc;
    size_t max = ferry_engine_server_config(b->nsp->sio->engine)->max_payload;
    for (size_t i = 0; i < e.n; i++)
        if (e.bufs[i]->len > max) {
            sio_encoded_release(&e);
            return -FERRY_ETOOBIG;
        }
    ferry_adapter_target t = {
        .rooms = b->to,
        .nrooms = b->nto,
        .except = b->except,
        .nexcept = b->nexcept,
        .except_sid = b->exclude != NULL ? b->exclude->id : NULL,
        .flags = (b->flags & FERRY_BCAST_VOLATILE) ? FERRY_ADAPTER_VOLATILE : 0,
    };
    ferry_adapter_packet pkt = {
        .bufs = e.bufs,
        .n = e.n,
        .offset_len = logged ? sio_recovery_offset_len(b->nsp) : 0,
        .origin_seq = logged ? b->nsp->last_own_seq : 0,
    };
    /* A keyed broadcast (ferry_bcast_keyed): deliver() finds the key on the namespace. */
    ferry_buf *key = NULL;
    if (b->key != NULL && (key = sio_bp_key_new(b->nsp, b->key)) == NULL) {
        sio_encoded_release(&e);
        return -FERRY_ENOMEM;
    }
    /* No user callback runs inside: a session that closes during delivery finishes its close
     * on the next tick (client.c). */
    b->nsp->sio->depth++;
    b->nsp->bp_key = key;
    rc = b->nsp->adapter->ops->broadcast(b->nsp->adapter, &pkt, &t);
    b->nsp->bp_key = NULL;
    b->nsp->sio->depth--;
    if (key != NULL)
        ferry_buf_release(key);
    sio_encoded_release(&e);
    return rc;
}

int ferry_namespace_emit(ferry_namespace *nsp, const char *event, const cJSON *args)
{
    ferry_bcast b;
    ferry_bcast_init(&b, nsp);
    return ferry_bcast_emit(&b, event, args);
}
