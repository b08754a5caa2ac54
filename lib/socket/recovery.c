/* Connection-state recovery (Socket.IO >= 4.6, PROTOCOL.md): a socket that lost its connection
 * (not one that left on purpose) can come back within recovery_ms with the same id and rooms,
 * and gets the packets it missed.
 *
 * While recovery is on, every event packet that is not volatile and asks for no ack carries an
 * offset as its last argument (the reference server does the same; clients keep the last one
 * they saw) and is kept in its namespace's log with its recipients (rooms, except rooms, the
 * excluded sender). A socket lost for a recoverable reason leaves a saved record (id, pid,
 * rooms). A CONNECT whose auth carries {pid, offset} that match a record and a logged offset
 * restores the socket and replays every later logged packet that was meant for it.
 *
 * Both lists are bounded in count (oldest dropped first) and pruned by age as packets come;
 * the log is bounded in bytes too (recovery_max_bytes): 10000 packets at max_payload would
 * otherwise pin gigabytes (issue 9). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"
#include "socket/internal.h"

#define LOG_MAX 10000   /* packets kept per namespace */
#define SAVED_MAX 10000 /* lost sockets kept per namespace */

typedef struct sio_logged {
    ferry_list link;
    uint64_t seq;
    uint64_t at;
    size_t bytes; /* counted in nsp->log_bytes */
    sio_encoded enc;
    char exclude[SIO_ID_LEN + 1]; /* "" for none */
    uint8_t nto, nexcept;
    char **rooms; /* nto "to" rooms, then nexcept "except" rooms */
} sio_logged;

typedef struct sio_saved {
    ferry_list link;
    uint64_t expires;
    char id[SIO_ID_LEN + 1];
    char pid[SIO_ID_LEN + 1];
    size_t nrooms;
    char **rooms; /* the socket's rooms; its own id first */
} sio_saved;

static uint64_t now_ms(const ferry_namespace *nsp)
{
    return uv_now(ferry_engine_loop(nsp->sio->engine));
}

static void free_rooms(char **rooms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ferry_mem_free(rooms[i]);
    ferry_mem_free(rooms);
}

static void logged_free(ferry_namespace *nsp, sio_logged *l)
{
    ferry_list_remove(&l->link);
    nsp->nlog--;
    nsp->log_bytes -= l->bytes;
    sio_encoded_release(&l->enc);
    free_rooms(l->rooms, (size_t)l->nto + l->nexcept);
    ferry_mem_free(l);
}

static void saved_free(ferry_namespace *nsp, sio_saved *sv)
{
    ferry_list_remove(&sv->link);
    nsp->nsaved--;
    free_rooms(sv->rooms, sv->nrooms);
    ferry_mem_free(sv);
}

/* Drop what is older than the recovery window, and the oldest beyond the count bounds. */
static void prune(ferry_namespace *nsp)
{
    uint64_t now = now_ms(nsp), window = ferry_engine_server_config(nsp->sio->engine)->recovery_ms;
    size_t max_bytes = ferry_engine_server_config(nsp->sio->engine)->recovery_max_bytes;
    while (!ferry_list_empty(&nsp->log)) {
        sio_logged *l = ferry_list_entry(nsp->log.next, sio_logged, link);
        if (nsp->nlog <= LOG_MAX && nsp->log_bytes <= max_bytes && l->at + window > now)
            break;
        logged_free(nsp, l);
    }
    while (!ferry_list_empty(&nsp->saved)) {
        sio_saved *sv = ferry_list_entry(nsp->saved.next, sio_saved, link);
        if (nsp->nsaved <= SAVED_MAX && sv->expires > now)
            break;
        saved_free(nsp, sv);
    }
}

void sio_recovery_free(ferry_namespace *nsp)
{
    while (!ferry_list_empty(&nsp->log))
        logged_free(nsp, ferry_list_entry(nsp->log.next, sio_logged, link));
    while (!ferry_list_empty(&nsp->saved))
        saved_free(nsp, ferry_list_entry(nsp->saved.next, sio_saved, link));
}

int sio_recovery_on(const ferry_namespace *nsp)
{
    return ferry_engine_server_config(nsp->sio->engine)->recovery_ms > 0;
}

static char **copy_rooms(const char *const *src, size_t n)
{
    char **out = ferry_mem_calloc(n ? n : 1, sizeof(*out));
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((out[i] = ferry_mem_strdup(src[i])) == NULL) {
            free_rooms(out, n);
            return NULL;
        }
    return out;
}

int sio_recovery_encode(ferry_namespace *nsp, const char *event, const cJSON *args,
                        const ferry_bcast *b, const ferry_socket *only, sio_encoded *out)
{
    prune(nsp);
    uint64_t seq = ++nsp->next_seq;
    char offset[24];
    snprintf(offset, sizeof(offset), "%" PRIu64, seq);
    int rc = sio_encode_event_offset(nsp->name, event, args, offset, out);
    if (rc != 0)
        return rc;
    sio_logged *l = ferry_mem_calloc(1, sizeof(*l));
    const char *rooms[2 * FERRY_BCAST_MAX_ROOMS];
    size_t n = 0;
    if (only != NULL) {
        rooms[n++] = only->id;
        if (l != NULL)
            l->nto = 1;
    } else {
        for (unsigned i = 0; i < b->nto; i++)
            rooms[n++] = b->to[i];
        for (unsigned i = 0; i < b->nexcept; i++)
            rooms[n++] = b->except[i];
        if (l != NULL) {
            l->nto = b->nto;
            l->nexcept = b->nexcept;
            if (b->exclude != NULL)
                memcpy(l->exclude, b->exclude->id, sizeof(l->exclude));
        }
    }
    if (l == NULL || (l->rooms = copy_rooms(rooms, n)) == NULL) {
        /* Not kept: a client that comes back will not get this one; sent all the same. */
        ferry_mem_free(l);
        return 0;
    }
    l->seq = seq;
    l->at = now_ms(nsp);
    l->enc.n = out->n;
    l->enc.bufs = l->enc.inline_bufs;
    if (out->n > SIO_ENC_INLINE &&
        (l->enc.bufs = ferry_mem_alloc(out->n * sizeof(*l->enc.bufs))) == NULL) {
        free_rooms(l->rooms, n);
        ferry_mem_free(l);
        return 0;
    }
    l->bytes = sizeof(*l) + n * sizeof(char *);
    for (size_t i = 0; i < n; i++)
        l->bytes += strlen(rooms[i]) + 1;
    for (size_t i = 0; i < out->n; i++) {
        l->enc.bufs[i] = ferry_buf_retain(out->bufs[i]);
        l->bytes += sizeof(ferry_buf) + out->bufs[i]->len;
    }
    ferry_list_insert_tail(&nsp->log, &l->link);
    nsp->nlog++;
    nsp->log_bytes += l->bytes;
    /* Over the byte bound now: the oldest go (this one too when it alone is over). */
    prune(nsp);
    return 0;
}

void sio_recovery_save(ferry_socket *s, ferry_reason reason)
{
    ferry_namespace *nsp = s->nsp;
    if (!sio_recovery_on(nsp) || s->pid[0] == '\0')
        return;
    /* Leaving on purpose is not a lost connection (the reference's recoverable reasons). */
    if (reason == FERRY_REASON_CLIENT_NAMESPACE_DISCONNECT ||
        reason == FERRY_REASON_SERVER_NAMESPACE_DISCONNECT)
        return;
    prune(nsp);
    const char *rooms[SIO_MAX_ROOMS_PER_SOCKET];
    size_t n = ferry_socket_rooms(s, rooms, SIO_MAX_ROOMS_PER_SOCKET);
    if (n > SIO_MAX_ROOMS_PER_SOCKET)
        n = SIO_MAX_ROOMS_PER_SOCKET;
    sio_saved *sv = ferry_mem_calloc(1, sizeof(*sv));
    if (sv == NULL || (sv->rooms = copy_rooms(rooms, n)) == NULL) {
        ferry_mem_free(sv);
        return;
    }
    sv->nrooms = n;
    memcpy(sv->id, s->id, sizeof(sv->id));
    memcpy(sv->pid, s->pid, sizeof(sv->pid));
    sv->expires = now_ms(nsp) + ferry_engine_server_config(nsp->sio->engine)->recovery_ms;
    ferry_list_insert_tail(&nsp->saved, &sv->link);
    nsp->nsaved++;
}

static int has_room(const sio_saved *sv, const char *room)
{
    for (size_t i = 0; i < sv->nrooms; i++)
        if (strcmp(sv->rooms[i], room) == 0)
            return 1;
    return 0;
}

static int meant_for(const sio_logged *l, const sio_saved *sv)
{
    if (strcmp(l->exclude, sv->id) == 0)
        return 0;
    for (unsigned i = 0; i < l->nexcept; i++)
        if (has_room(sv, l->rooms[l->nto + i]))
            return 0;
    if (l->nto == 0)
        return 1;
    for (unsigned i = 0; i < l->nto; i++)
        if (has_room(sv, l->rooms[i]))
            return 1;
    return 0;
}

/* Parse a decimal offset; 0 when it is not one of ours. */
static uint64_t parse_offset(const char *s)
{
    uint64_t v = 0;
    if (*s == '\0' || strlen(s) > 19)
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    return v;
}

int sio_recovery_restore(ferry_socket *s)
{
    ferry_namespace *nsp = s->nsp;
    if (!sio_recovery_on(nsp))
        return 0;
    prune(nsp);
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(s->auth, "pid");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(s->auth, "offset");
    if (!cJSON_IsString(pid) || !cJSON_IsString(off))
        return 0;
    uint64_t offset = parse_offset(off->valuestring);
    /* The offset must still be in the log (or be its very last packet): otherwise packets
     * the client missed are gone and it must start afresh, as the reference decides. */
    if (offset == 0 || offset > nsp->next_seq)
        return 0;
    if (offset < nsp->next_seq) {
        if (ferry_list_empty(&nsp->log))
            return 0;
        sio_logged *first = ferry_list_entry(nsp->log.next, sio_logged, link);
        if (first->seq > offset + 1)
            return 0;
    }
    ferry_list *it;
    ferry_list_foreach(it, &nsp->saved)
    {
        sio_saved *sv = ferry_list_entry(it, sio_saved, link);
        if (strcmp(sv->pid, pid->valuestring) != 0)
            continue;
        if (ferry_namespace_socket(nsp, sv->id) != NULL)
            return 0; /* that id is in use again */
        memcpy(s->id, sv->id, sizeof(s->id));
        memcpy(s->pid, sv->pid, sizeof(s->pid));
        s->recovered = 1;
        s->restore = sv;
        ferry_list_remove(&sv->link);
        ferry_list_init(&sv->link);
        nsp->nsaved--;
        s->restore_offset = offset;
        return 1;
    }
    return 0;
}

void sio_recovery_rejoin(ferry_socket *s)
{
    sio_saved *sv = s->restore;
    if (sv == NULL)
        return;
    for (size_t i = 1; i < sv->nrooms; i++) /* rooms[0] is its own id, joined already */
        s->nsp->adapter->ops->add(s->nsp->adapter, s, sv->rooms[i]);
}

void sio_recovery_replay(ferry_socket *s)
{
    sio_saved *sv = s->restore;
    if (sv == NULL)
        return;
    s->restore = NULL;
    ferry_list *it;
    ferry_list_foreach(it, &s->nsp->log)
    {
        sio_logged *l = ferry_list_entry(it, sio_logged, link);
        if (l->seq > s->restore_offset && meant_for(l, sv))
            if (sio_socket_queue(s, &l->enc, 0) != 0)
                break;
    }
    free_rooms(sv->rooms, sv->nrooms);
    ferry_mem_free(sv);
}

void sio_recovery_discard(ferry_socket *s)
{
    sio_saved *sv = s->restore;
    if (sv == NULL)
        return;
    s->restore = NULL;
    free_rooms(sv->rooms, sv->nrooms);
    ferry_mem_free(sv);
}
