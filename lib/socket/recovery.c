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
 * Both lists are bounded in count (oldest dropped first; the log's bound is the server's
 * recovery_max_packets, so that a namespace sending thousands a second can keep its window)
 * and pruned by age as packets come; the log is bounded in bytes too (recovery_max_bytes):
 * 10000 packets at max_payload would otherwise pin gigabytes (issue 9). Window and byte bound
 * are per namespace (ferry_namespace_set_recovery(), the server's by default).
 *
 * A recovery that does not happen says why in the CONNECT answer ("notRecovered", issue 14):
 * "expired" (no saved socket has that pid: lost longer than the window ago, or never known),
 * "gap" (a packet it missed is no longer in the log), "invalid" (an offset we never gave),
 * "off" (recovery is off here). A CONNECT with the pid of a socket still connected on another
 * session (the server has not noticed the old connection's loss yet) takes it over: the old
 * socket is closed as lost ("transport close"), then recovered. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "socket/internal.h"
#include "socket/recovery.h"

#define SAVED_MAX 10000 /* lost sockets kept per namespace */

static uint64_t now_ms(const ferry_namespace *nsp)
{
    return uv_now(ferry_engine_loop(nsp->sio->engine));
}

static uint64_t window_of(const ferry_namespace *nsp)
{
    return nsp->rec_set ? nsp->rec_ms : ferry_engine_server_config(nsp->sio->engine)->recovery_ms;
}

static size_t max_bytes_of(const ferry_namespace *nsp)
{
    return nsp->rec_set ? nsp->rec_max_bytes : ferry_engine_server_config(nsp->sio->engine)->recovery_max_bytes;
}

/* The count bound is the server's: ferry_namespace_set_recovery() sets no count. */
size_t sio_recovery_max_packets(const ferry_namespace *nsp)
{
    return ferry_engine_server_config(nsp->sio->engine)->recovery_max_packets;
}

uint32_t sio_recovery_window(const ferry_namespace *nsp)
{
    return (uint32_t)window_of(nsp);
}

size_t sio_recovery_max_bytes(const ferry_namespace *nsp)
{
    return max_bytes_of(nsp);
}

void ferry_namespace_set_recovery(ferry_namespace *nsp, uint32_t window_ms, size_t max_bytes)
{
    nsp->rec_set = 1;
    nsp->rec_ms = window_ms;
    nsp->rec_max_bytes = max_bytes;
}

void ferry_namespace_keep_socket_data(ferry_namespace *nsp, ferry_socket_data_release_cb release,
                                      void *user_data)
{
    nsp->data_release = release;
    nsp->data_release_ud = user_data;
}

void sio_recovery_release_data(ferry_namespace *nsp, void *data)
{
    if (data != NULL && nsp->data_release != NULL)
        nsp->data_release(nsp, data, nsp->data_release_ud);
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
    ferry_mem_free(l->origin);
    ferry_mem_free(l);
}

void sio_recovery_saved_release(sio_saved *sv)
{
    free_rooms(sv->rooms, sv->nrooms);
    sio_outbox_free(&sv->ob);
    for (size_t i = 0; i < sv->nrx; i++)
        sio_encoded_release(&sv->rx[i]);
    ferry_mem_free(sv->rx);
    for (size_t i = 0; i < sv->nupto; i++)
        ferry_mem_free(sv->upto[i].node);
    ferry_mem_free(sv->upto);
    ferry_mem_free(sv);
}

/* forget: its record in Redis goes too (not when the server stops: another node may recover
 * it from there). */
static void saved_free(ferry_namespace *nsp, sio_saved *sv, int forget)
{
    ferry_list_remove(&sv->link);
    nsp->nsaved--;
    if (forget)
        sio_rr_forget(nsp, sv->pid);
    void *data = sv->data;
    sio_recovery_saved_release(sv);
    sio_recovery_release_data(nsp, data);
}

/* Drop what is older than the recovery window, and the oldest beyond the count bounds. */
static void prune(ferry_namespace *nsp)
{
    uint64_t now = now_ms(nsp), window = window_of(nsp);
    size_t max_bytes = max_bytes_of(nsp);
    size_t max_packets = sio_recovery_max_packets(nsp);
    while (!ferry_list_empty(&nsp->log)) {
        sio_logged *l = ferry_list_entry(nsp->log.next, sio_logged, link);
        if (nsp->nlog <= max_packets && nsp->log_bytes <= max_bytes && l->at + window > now)
            break;
        logged_free(nsp, l);
    }
    while (!ferry_list_empty(&nsp->saved)) {
        sio_saved *sv = ferry_list_entry(nsp->saved.next, sio_saved, link);
        if (nsp->nsaved <= SAVED_MAX && sv->expires > now)
            break;
        saved_free(nsp, sv, 1);
    }
}

void sio_recovery_free(ferry_namespace *nsp)
{
    while (!ferry_list_empty(&nsp->log))
        logged_free(nsp, ferry_list_entry(nsp->log.next, sio_logged, link));
    while (!ferry_list_empty(&nsp->saved))
        saved_free(nsp, ferry_list_entry(nsp->saved.next, sio_saved, link), 0);
    sio_rr_free(nsp);
}

int sio_recovery_on(const ferry_namespace *nsp)
{
    return window_of(nsp) > 0;
}

void sio_recovery_queued(ferry_socket *s, const sio_encoded *e)
{
    ferry_namespace *nsp = s->nsp;
    if (ferry_list_empty(&nsp->log) || e->n == 0)
        return;
    /* A broadcast shares its buffers with the log's newest entry. */
    sio_logged *l = ferry_list_entry(nsp->log.prev, sio_logged, link);
    if (l->enc.n > 0 && l->enc.bufs[0] == e->bufs[0] && l->seq > s->last_seq)
        s->last_seq = l->seq;
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

/* Keep the encoded packet out (offset seq) in the log with its recipients: rooms[0..nto) "to",
 * then nexcept "except" rooms, and the excluded socket (NULL: none). Out of memory: not kept
 * (a client that comes back will not get it; it is sent all the same). */
static void record(ferry_namespace *nsp, uint64_t seq, const char *const *rooms, size_t nto,
                   size_t nexcept, const char *exclude, const char *origin, uint64_t origin_seq,
                   const sio_encoded *out)
{
    size_t n = nto + nexcept;
    sio_logged *l = ferry_mem_calloc(1, sizeof(*l));
    if (l == NULL || (l->rooms = copy_rooms(rooms, n)) == NULL) {
        ferry_mem_free(l);
        return;
    }
    if (origin != NULL && origin_seq != 0) {
        if ((l->origin = ferry_mem_strdup(origin)) == NULL) {
            free_rooms(l->rooms, n);
            ferry_mem_free(l);
            return;
        }
        l->origin_seq = origin_seq;
    }
    l->nto = (uint8_t)nto;
    l->nexcept = (uint8_t)nexcept;
    if (exclude != NULL && strlen(exclude) < sizeof(l->exclude))
        memcpy(l->exclude, exclude, strlen(exclude) + 1);
    l->seq = seq;
    l->at = now_ms(nsp);
    l->enc.n = out->n;
    l->enc.bufs = l->enc.inline_bufs;
    if (out->n > SIO_ENC_INLINE &&
        (l->enc.bufs = ferry_mem_alloc(out->n * sizeof(*l->enc.bufs))) == NULL) {
        free_rooms(l->rooms, n);
        ferry_mem_free(l->origin);
        ferry_mem_free(l);
        return;
    }
    l->bytes = sizeof(*l) + n * sizeof(char *) + (l->origin ? strlen(l->origin) + 1 : 0);
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
}

int sio_recovery_encode(ferry_namespace *nsp, const char *event, const cJSON *args,
                        const ferry_bcast *b, const ferry_socket *only, sio_encoded *out)
{
    prune(nsp);
    uint64_t seq = ++nsp->next_seq;
    /* A broadcast of ours is numbered in this node's log in Redis too (recovery_remote.c). */
    nsp->last_own_seq = only == NULL && sio_rr_on(nsp) ? sio_rr_own_next(nsp) : 0;
    char offset[SIO_OFFSET_MAX];
    int olen = sio_rr_offset(nsp, seq, offset, sizeof(offset));
    if (olen < 0)
        return -FERRY_ENOMEM;
    nsp->last_off_len = 3 + (size_t)olen;
    int rc = sio_encode_event_offset(nsp->name, event, args, offset, out);
    if (rc != 0)
        return rc;
    const char *rooms[2 * FERRY_BCAST_MAX_ROOMS];
    size_t nto = 0, nexcept = 0;
    const char *exclude = NULL;
    if (only != NULL) {
        rooms[nto++] = only->id;
    } else {
        for (unsigned i = 0; i < b->nto; i++)
            rooms[nto++] = b->to[i];
        for (unsigned i = 0; i < b->nexcept; i++)
            rooms[nto + nexcept++] = b->except[i];
        if (b->exclude != NULL)
            exclude = b->exclude->id;
    }
    record(nsp, seq, rooms, nto, nexcept, exclude, nsp->last_own_seq ? sio_rr_self(nsp) : NULL,
           nsp->last_own_seq, out);
    return 0;
}

size_t sio_recovery_offset_len(const ferry_namespace *nsp)
{
    return nsp->last_off_len;
}

int sio_recovery_stamp_with(const sio_encoded *in, const char *offset, sio_encoded *out)
{
    out->n = 0;
    out->bufs = out->inline_bufs;
    const ferry_buf *b0 = in->n > 0 ? in->bufs[0] : NULL;
    /* An event (text "42..." or binary "45<n>-...") whose argument array ends the packet. */
    if (b0 == NULL || b0->len < 4 || b0->data[0] != '4' ||
        (b0->data[1] != '2' && b0->data[1] != '5') || b0->data[b0->len - 1] != ']')
        return -FERRY_EINVAL;
    if (in->n > SIO_ENC_INLINE &&
        (out->bufs = ferry_mem_alloc(in->n * sizeof(*out->bufs))) == NULL) {
        out->bufs = out->inline_bufs;
        return -FERRY_ENOMEM;
    }
    size_t olen = strlen(offset);
    ferry_buf *nb = ferry_buf_new(b0->len + 3 + olen);
    if (nb == NULL) {
        sio_encoded_release(out);
        return -FERRY_ENOMEM;
    }
    char *w = nb->data;
    memcpy(w, b0->data, b0->len - 1), w += b0->len - 1;
    *w++ = ',';
    *w++ = '"';
    memcpy(w, offset, olen), w += olen;
    *w++ = '"';
    *w++ = ']';
    nb->len = (size_t)(w - nb->data);
    nb->flags = b0->flags;
    out->bufs[0] = nb;
    for (size_t i = 1; i < in->n; i++)
        out->bufs[i] = ferry_buf_retain(in->bufs[i]);
    out->n = in->n;
    return 0;
}

int sio_recovery_stamp(ferry_namespace *nsp, const ferry_adapter_target *t, const sio_encoded *in,
                       const char *origin, uint64_t origin_seq, sio_encoded *out)
{
    out->n = 0;
    out->bufs = out->inline_bufs;
    if (t->nrooms > FERRY_BCAST_MAX_ROOMS || t->nexcept > FERRY_BCAST_MAX_ROOMS)
        return -FERRY_EINVAL;
    prune(nsp);
    if (origin != NULL && origin_seq != 0)
        sio_rr_note(nsp, origin, origin_seq);
    char offset[SIO_OFFSET_MAX];
    if (sio_rr_offset(nsp, nsp->next_seq + 1, offset, sizeof(offset)) < 0)
        return -FERRY_ENOMEM;
    int rc = sio_recovery_stamp_with(in, offset, out);
    if (rc != 0)
        return rc;
    uint64_t seq = ++nsp->next_seq;
    const char *rooms[2 * FERRY_BCAST_MAX_ROOMS];
    size_t nto = 0, nexcept = 0;
    for (size_t i = 0; i < t->nrooms; i++)
        rooms[nto++] = t->rooms[i];
    for (size_t i = 0; i < t->nexcept; i++)
        rooms[nto + nexcept++] = t->except[i];
    record(nsp, seq, rooms, nto, nexcept, t->except_sid, origin, origin_seq, out);
    return 0;
}

void sio_recovery_save(ferry_socket *s, ferry_reason reason)
{
    ferry_namespace *nsp = s->nsp;
    if (!sio_recovery_on(nsp) || s->pid[0] == '\0')
        return;
    /* Leaving on purpose is not a lost connection (the reference's recoverable reasons). */
    if (reason == FERRY_REASON_CLIENT_NAMESPACE_DISCONNECT ||
        reason == FERRY_REASON_SERVER_NAMESPACE_DISCONNECT) {
        sio_rr_forget(nsp, s->pid);
        return;
    }
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
    sio_outbox_init(&sv->ob);
    sio_outbox_move(&sv->ob, &s->ob);
    memcpy(sv->id, s->id, sizeof(sv->id));
    memcpy(sv->pid, s->pid, sizeof(sv->pid));
    sv->expires = now_ms(nsp) + window_of(nsp);
    sv->last_seq = s->last_seq;
    /* Every logged packet up to here was queued to it or not meant for it; not so for a socket
     * behind (spilling, or a recovered one catching up): only up to where it caught up. */
    sv->seq_at_loss = s->spilling ? s->spill_pos : nsp->next_seq;
    if (nsp->data_release != NULL) {
        sv->data = s->data; /* the socket's now; it is released with the record */
        s->data = NULL;
    }
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

int sio_recovery_meant_for(const ferry_adapter_target *t, const sio_saved *sv)
{
    if (t->except_sid != NULL && strcmp(t->except_sid, sv->id) == 0)
        return 0;
    for (size_t i = 0; i < t->nexcept; i++)
        if (has_room(sv, t->except[i]))
            return 0;
    if (t->nrooms == 0)
        return 1;
    for (size_t i = 0; i < t->nrooms; i++)
        if (has_room(sv, t->rooms[i]))
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

/* Parse a decimal offset into *out; -1 when it is not one. */
static int parse_offset(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0' || strlen(s) > 19)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/* A socket still connected with this pid on another session: the old connection is lost but
 * the server has not noticed yet (a cut polling connection waits for the ping timeout). */
static ferry_socket *live_with_pid(ferry_namespace *nsp, const ferry_socket *s, const char *pid)
{
    ferry_list *it;
    ferry_list_foreach(it, &nsp->sockets)
    {
        ferry_socket *o = ferry_list_entry(it, ferry_socket, nsp_link);
        if (o != s && o->client != s->client && sio_socket_live(o) && strcmp(o->pid, pid) == 0)
            return o;
    }
    return NULL;
}

static sio_saved *saved_with_pid(ferry_namespace *nsp, const char *pid)
{
    ferry_list *it;
    ferry_list_foreach(it, &nsp->saved)
    {
        sio_saved *sv = ferry_list_entry(it, sio_saved, link);
        if (strcmp(sv->pid, pid) == 0)
            return sv;
    }
    return NULL;
}

int sio_recovery_restore(ferry_socket *s)
{
    ferry_namespace *nsp = s->nsp;
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(s->auth, "pid");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(s->auth, "offset");
    if (!cJSON_IsString(pid))
        return 0;
    if (!sio_recovery_on(nsp)) {
        s->not_recovered = "off";
        s->not_recovered_why = "recovery is off";
        return 0;
    }
    prune(nsp);
    /* A client that received no event has no offset (the official client then sends none):
     * it missed everything after 0. */
    uint64_t offset = 0;
    int foreign = 0;
    if (off != NULL && cJSON_IsString(off) && sio_rr_on(nsp)) {
        foreign = sio_rr_offset_local(nsp, off->valuestring, &offset);
        if (foreign < 0) {
            s->not_recovered = "invalid";
            s->not_recovered_why = "an offset this cluster does not know";
            return 0;
        }
    } else if ((off != NULL &&
                (!cJSON_IsString(off) || parse_offset(off->valuestring, &offset) != 0)) ||
               offset > nsp->next_seq) {
        s->not_recovered = "invalid";
        s->not_recovered_why = "an offset not a number or beyond the log";
        return 0;
    }
    sio_saved *sv = saved_with_pid(nsp, pid->valuestring);
    if (sv == NULL && strlen(pid->valuestring) == SIO_ID_LEN) {
        ferry_socket *old = live_with_pid(nsp, s, pid->valuestring);
        if (old != NULL) {
            FERRY_LOG(FERRY_LOG_INFO, "socket", ferry_session_id(s->client->session),
                      "recovering socket %s still connected on another session: closing it",
                      old->id);
            sio_socket_close(old, FERRY_REASON_TRANSPORT_CLOSE, 1);
            sv = saved_with_pid(nsp, pid->valuestring);
        }
    }
    if (sio_rr_on(nsp) && (foreign || sv == NULL)) {
        /* Several nodes: an offset another node gave, or a socket none of ours has, is
         * resumed from its record in Redis (recovery_remote.c) before the middlewares run. */
        if (sv != NULL)
            saved_free(nsp, sv, 0); /* its record, in Redis, is the one to resume from */
        s->rec_remote = strlen(pid->valuestring) == SIO_ID_LEN;
        s->not_recovered = "expired";
        s->not_recovered_why = "not resumed from its record in Redis";
        return 0;
    }
    if (sv == NULL) {
        s->not_recovered = "expired";
        s->not_recovered_why = "no saved socket with its pid (never lost here, or past the window)";
        return 0;
    }
    if (ferry_namespace_socket(nsp, sv->id) != NULL) {
        s->not_recovered = "expired"; /* that id is in use again */
        s->not_recovered_why = "its socket id is in use again";
        return 0;
    }
    /* Every packet it missed must still be in the log: those after its offset, or, when it
     * had every packet queued to it before it was lost (offset >= last_seq), those after the
     * loss. Otherwise it must start afresh, as the reference decides. */
    uint64_t need = offset;
    if (offset > nsp->next_seq) {
        s->not_recovered = "invalid";
        s->not_recovered_why = "an offset beyond the log";
        return 0;
    }
    if (offset >= sv->last_seq && sv->seq_at_loss > need)
        need = sv->seq_at_loss;
    if (need < nsp->next_seq) {
        if (ferry_list_empty(&nsp->log) ||
            ferry_list_entry(nsp->log.next, sio_logged, link)->seq > need + 1) {
            s->not_recovered = "gap";
            s->not_recovered_why = "what it missed is no longer in the log";
            return 0;
        }
    }
    memcpy(s->id, sv->id, sizeof(s->id));
    memcpy(s->pid, sv->pid, sizeof(s->pid));
    s->recovered = 1;
    s->restore = sv;
    s->data = sv->data;
    sv->data = NULL;
    s->last_seq = sv->last_seq;
    sio_outbox_move(&s->ob, &sv->ob);
    ferry_list_remove(&sv->link);
    ferry_list_init(&sv->link);
    nsp->nsaved--;
    /* Where its replay starts: after what it needs no more (`need`, not its offset: when the log
     * has aged out since, the packets between the two are gone, and they were not meant for it;
     * starting at the offset, the replay found a gap and closed every session it was offered on,
     * and the client came back with the same offset, again and again). */
    s->restore_offset = need;
    return 1;
}

void sio_recovery_rejoin(ferry_socket *s)
{
    sio_saved *sv = s->restore;
    if (sv == NULL)
        return;
    for (size_t i = 1; i < sv->nrooms; i++) /* rooms[0] is its own id, joined already */
        sio_socket_join(s, sv->rooms[i]);
}

/* Did the read from Redis (or the client already) cover l? */
static int covered(const sio_logged *l, const sio_saved *sv)
{
    for (size_t i = 0; l->origin != NULL && i < sv->nupto; i++)
        if (strcmp(sv->upto[i].node, l->origin) == 0)
            return l->origin_seq <= sv->upto[i].seq;
    return 0;
}

void sio_recovery_replay(ferry_socket *s)
{
    sio_saved *sv = s->restore;
    if (sv == NULL)
        return;
    s->restore = NULL;
    if (sv->nrx > 0) {
        /* Resumed from another node's record (Redis): what it missed, read from Redis, then
         * what this node logged after the read went out and the read did not cover (each
         * origin's broadcasts in their order), at once (not paced: the two sources would
         * have to be merged as they drain). */
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < sv->nrx; i++)
            rc = sio_socket_queue(s, &sv->rx[i], 0);
        ferry_list *it;
        ferry_list_foreach(it, &s->nsp->log)
        {
            sio_logged *l = ferry_list_entry(it, sio_logged, link);
            if (rc != 0 || l->seq <= s->restore_offset || !meant_for(l, sv) || covered(l, sv))
                continue;
            s->last_seq = l->seq;
            rc = sio_socket_queue(s, &l->enc, 0);
        }
        sio_recovery_saved_release(sv);
        return;
    }
    sio_recovery_saved_release(sv);
    /* The rooms are its saved ones again (sio_recovery_rejoin), so its rooms now decide what
     * it missed. Replayed all at once, more than the backpressure bound would close (policy
     * close) the session it was just recovered on, and the client, missing as much again
     * next time, would never catch up: paced by the bound instead (sio_bp_replay). What
     * sio_recovery_restore() found dropped from the log was not meant for it (the quiet-room
     * case): start at the log's head then. restore_offset is where sio_recovery_restore()
     * found the log whole from. */
    s->spill_pos = s->restore_offset;
    if (!ferry_list_empty(&s->nsp->log)) {
        uint64_t head = ferry_list_entry(s->nsp->log.next, sio_logged, link)->seq;
        if (head > s->spill_pos + 1)
            s->spill_pos = head - 1;
    }
    sio_bp_replay(s);
}

void sio_recovery_discard(ferry_socket *s)
{
    sio_saved *sv = s->restore;
    if (sv == NULL)
        return;
    s->restore = NULL;
    sio_recovery_saved_release(sv);
}

/* ---- backpressure's SPILL policy (backpressure.c) */

uint64_t sio_recovery_seq_of(const ferry_namespace *nsp, const sio_encoded *e)
{
    if (ferry_list_empty(&nsp->log) || e->n == 0)
        return 0;
    const sio_logged *l = ferry_list_entry(nsp->log.prev, sio_logged, link);
    return l->enc.n > 0 && l->enc.bufs[0] == e->bufs[0] ? l->seq : 0;
}

/* A logged packet meant for a connected socket: by its rooms now (a recovered one has its
 * saved rooms again). */
static int meant_for_live(const sio_logged *l, const ferry_socket *s)
{
    if (strcmp(l->exclude, s->id) == 0)
        return 0;
    for (unsigned i = 0; i < l->nexcept; i++)
        if (ferry_socket_in(s, l->rooms[l->nto + i]))
            return 0;
    if (l->nto == 0)
        return 1;
    for (unsigned i = 0; i < l->nto; i++)
        if (ferry_socket_in(s, l->rooms[i]))
            return 1;
    return 0;
}

static size_t enc_bytes(const sio_encoded *e)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++)
        n += e->bufs[i]->len;
    return n;
}

int sio_recovery_catch_up(ferry_socket *s, size_t bound)
{
    ferry_namespace *nsp = s->nsp;
    ferry_session *ss = s->client->session;
    if (s->spill_pos >= nsp->next_seq)
        return 1;
    if (ferry_list_empty(&nsp->log) ||
        ferry_list_entry(nsp->log.next, sio_logged, link)->seq > s->spill_pos + 1)
        return -FERRY_ELIMIT;
    /* From the newest back to the first one it has not seen: a socket catching up is near the
     * end of the log. */
    ferry_list *it = nsp->log.prev;
    while (it != &nsp->log && ferry_list_entry(it, sio_logged, link)->seq > s->spill_pos)
        it = it->prev;
    for (it = it->next; it != &nsp->log; it = it->next) {
        sio_logged *l = ferry_list_entry(it, sio_logged, link);
        int mine = meant_for_live(l, s);
        if (mine) {
            size_t q = ferry_session_queued_bytes(ss);
            if (q > 0 && q + enc_bytes(&l->enc) > bound)
                return 0;
            int rc = sio_bp_send(s, &l->enc, 0, NULL);
            if (rc != 0)
                return rc;
            s->last_seq = l->seq;
        }
        s->spill_pos = l->seq;
    }
    return 1;
}
