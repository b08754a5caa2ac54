/* The outbox extension (docs/protocol.md section 13, issue 14): client-to-server exactly once
 * across lost Engine.IO sessions, for ferry's client.
 *
 * A CONNECT whose auth holds "ferryOutbox" (an object) on a namespace with recovery on turns it
 * on for that socket: the CONNECT answer then carries "ferryOutbox": the highest emit number we
 * took (0 for a new socket; the saved one for a recovered socket), and every EVENT of the
 * socket carries its number as its last argument (1, 2, ...; 0 for an emit that is not
 * numbered, a volatile one). We take the argument off before the app sees the event; a number
 * at or under the one taken is a duplicate (the client sent it again after a lost session) and
 * is dropped; a number above the next one (a gap) closes the session, so that the client
 * recovers and sends the missing emits again (sio_outbox_take). Every OB_CONFIRM_EVERY emits
 * taken (fewer when the client says its window, "ferryOutbox": {"window": n}, is under twice
 * that: every n/2) we tell the client (a CONNECT packet holding only "ferryOutbox") so that it
 * can forget what we have.
 *
 * Acks: the answers we gave to numbered emits are kept, at most OB_ANSWERS_MAX of them and
 * OB_ANSWERS_BYTES bytes (oldest dropped first; a larger answer is not kept), with the socket
 * and its recovery record. A recovered socket whose CONNECT lists ack ids it still awaits
 * ("ferryOutbox": {"acks": [...]}) gets those answers again after the CONNECT answer; the
 * client runs an ack callback once (an id it no longer awaits is ignored).
 *
 * The state travels with connection-state recovery (recovery.c moves it into the saved record
 * and back), so it lives as long as the recovery window and no longer. */
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "socket/internal.h"

#define OB_CONFIRM_EVERY 32
#define OB_ANSWERS_MAX 128
#define OB_ANSWERS_BYTES (64 * 1024)
#define OB_KEY "ferryOutbox"

typedef struct sio_ob_answer {
    ferry_list link;
    int64_t id; /* the client's ack id */
    size_t bytes;
    sio_encoded enc;
} sio_ob_answer;

void sio_outbox_init(sio_outbox *ob)
{
    memset(ob, 0, sizeof(*ob));
    ferry_list_init(&ob->answers);
}

static void answer_free(sio_outbox *ob, sio_ob_answer *a)
{
    ferry_list_remove(&a->link);
    ob->nanswers--;
    ob->answer_bytes -= a->bytes;
    sio_encoded_release(&a->enc);
    ferry_mem_free(a);
}

void sio_outbox_free(sio_outbox *ob)
{
    while (!ferry_list_empty(&ob->answers))
        answer_free(ob, ferry_list_entry(ob->answers.next, sio_ob_answer, link));
}

void sio_outbox_move(sio_outbox *dst, sio_outbox *src)
{
    dst->taken = src->taken;
    dst->confirmed = src->confirmed;
    dst->gap_at = src->gap_at;
    dst->nanswers = src->nanswers;
    dst->answer_bytes = src->answer_bytes;
    ferry_list_move(&src->answers, &dst->answers);
    int on = src->on;
    sio_outbox_init(src);
    src->on = on;
}

void sio_outbox_negotiate(ferry_socket *s)
{
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(s->auth, OB_KEY);
    s->ob.on = sio_recovery_on(s->nsp) && cJSON_IsObject(ext);
    /* Confirm at least twice per client window, so that a full outbox always drains. */
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(ext, "window");
    s->ob.every = OB_CONFIRM_EVERY;
    if (cJSON_IsNumber(w) && w->valuedouble < 2 * OB_CONFIRM_EVERY)
        s->ob.every = w->valuedouble >= 2 ? (unsigned)(w->valuedouble / 2) : 1;
}

int sio_outbox_connect_data(const ferry_socket *s, cJSON *o)
{
    if (!s->ob.on)
        return 0;
    return cJSON_AddNumberToObject(o, OB_KEY, (double)s->ob.taken) != NULL ? 0 : -FERRY_ENOMEM;
}

static int awaited(const cJSON *acks, int64_t id)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, acks) if (cJSON_IsNumber(x) && x->valuedouble == (double)id) return 1;
    return 0;
}

void sio_outbox_resend_answers(ferry_socket *s)
{
    if (!s->ob.on || ferry_list_empty(&s->ob.answers))
        return;
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(s->auth, OB_KEY);
    const cJSON *acks = cJSON_GetObjectItemCaseSensitive(ext, "acks");
    ferry_list *it = s->ob.answers.next;
    while (it != &s->ob.answers) {
        sio_ob_answer *a = ferry_list_entry(it, sio_ob_answer, link);
        it = it->next;
        /* One the client no longer awaits arrived: forget it. */
        if (!cJSON_IsArray(acks) || !awaited(acks, a->id)) {
            answer_free(&s->ob, a);
            continue;
        }
        if (sio_socket_queue(s, &a->enc, 0) != 0)
            return;
    }
}

int sio_outbox_take(ferry_socket *s, sio_packet *pkt)
{
    cJSON *args = pkt->data;
    /* The event name and at least the number. */
    if (!cJSON_IsArray(args) || args->child == NULL || args->child->next == NULL)
        return -FERRY_EPROTO;
    cJSON *last = args->child;
    while (last->next != NULL)
        last = last->next;
    if (!cJSON_IsNumber(last) || !(last->valuedouble >= 0) ||
        last->valuedouble > 9007199254740991.0 ||
        (double)(uint64_t)last->valuedouble != last->valuedouble)
        return -FERRY_EPROTO;
    uint64_t n = (uint64_t)last->valuedouble;
    cJSON_Delete(cJSON_DetachItemViaPointer(args, last));
    if (n == 0)
        return 1; /* not numbered (a volatile emit) */
    if (n <= s->ob.taken)
        return 0; /* taken already: a duplicate */
    if (n != s->ob.taken + 1) {
        /* A gap: never skipped silently. The first time at this point the emit is refused and
         * the session closed: the client recovers the socket and sends again every emit above
         * the CONNECT answer's number. The same gap again right after means the client no
         * longer holds those emits: they are lost, said so, and the stream goes on. */
        const char *sid = ferry_session_id(s->client->session);
        if (s->ob.gap_at != s->ob.taken + 1) {
            s->ob.gap_at = s->ob.taken + 1;
            FERRY_LOG(FERRY_LOG_WARN, "socket", sid,
                      "outbox: emit %llu after %llu (a gap): refused, "
                      "closing so that the client resends",
                      (unsigned long long)n, (unsigned long long)s->ob.taken);
            return -FERRY_ELIMIT;
        }
        FERRY_LOG(FERRY_LOG_WARN, "socket", sid,
                  "outbox: emit %llu after %llu (a gap the client cannot fill): %llu emits lost",
                  (unsigned long long)n, (unsigned long long)s->ob.taken,
                  (unsigned long long)(n - s->ob.taken - 1));
    }
    s->ob.taken = n;
    sio_rr_persist(s); /* another node resumes from it if this one dies */
    return 1;
}

void sio_outbox_confirm(ferry_socket *s)
{
    if (!s->ob.on || s->ob.taken - s->ob.confirmed < s->ob.every ||
        !sio_socket_live(s) || s->client->closing)
        return;
    cJSON *o = cJSON_CreateObject();
    sio_encoded e;
    if (o != NULL && cJSON_AddNumberToObject(o, OB_KEY, (double)s->ob.taken) != NULL &&
        sio_encode(SIO_CONNECT, s->nsp->name, SIO_NO_ID, o, &e) == 0) {
        if (sio_socket_queue(s, &e, 0) == 0)
            s->ob.confirmed = s->ob.taken;
        sio_encoded_release(&e);
    }
    cJSON_Delete(o); /* out of memory: the next emit tries again */
}

int sio_outbox_keep_answer(ferry_socket *s, int64_t id, const sio_encoded *e)
{
    if (!s->ob.on)
        return 0;
    size_t bytes = sizeof(sio_ob_answer);
    for (size_t i = 0; i < e->n; i++)
        bytes += sizeof(ferry_buf) + e->bufs[i]->len;
    if (bytes > OB_ANSWERS_BYTES)
        return 0; /* too big to keep: lost if its session is */
    sio_ob_answer *a = ferry_mem_calloc(1, sizeof(*a));
    if (a == NULL)
        return 0;
    a->enc.n = e->n;
    a->enc.bufs = a->enc.inline_bufs;
    if (e->n > SIO_ENC_INLINE && (a->enc.bufs = ferry_mem_alloc(e->n * sizeof(*a->enc.bufs))) == NULL) {
        ferry_mem_free(a);
        return 0;
    }
    for (size_t i = 0; i < e->n; i++)
        a->enc.bufs[i] = ferry_buf_retain(e->bufs[i]);
    a->id = id;
    a->bytes = bytes;
    ferry_list_insert_tail(&s->ob.answers, &a->link);
    s->ob.nanswers++;
    s->ob.answer_bytes += bytes;
    while (s->ob.nanswers > OB_ANSWERS_MAX || s->ob.answer_bytes > OB_ANSWERS_BYTES)
        answer_free(&s->ob, ferry_list_entry(s->ob.answers.next, sio_ob_answer, link));
    return 1;
}
