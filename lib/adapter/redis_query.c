/* Commands and queries across nodes (issue 18, docs/scaling.md "Queries and commands across
 * nodes"): the socket layer's ferry_cluster_* calls send a JSON command to every other node
 * serving the namespace; each runs it on its own sockets (host->command) and, when asked,
 * answers the sender.
 *
 *   "<prefix>#<nsp>##req"         every node serving nsp subscribes; carries commands
 *   "<prefix>#<nsp>##res#<node>"  the node's own; carries the answers to its commands
 * (no room channel ends that way: a room channel ends with '#'). A message is "FRJ1" then
 * {"t":"cmd"|"ans","nsp":..,"node":sender,"req":id,"body":command|"answer":answer}.
 *
 * How many answers to wait for: PUBLISH answers with the number of subscribers that got the
 * command, this node included; a request is complete when that many minus one answered, or
 * when its timeout fires (the caller then has a partial result and says so). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "adapter/redis_internal.h"
#include "common/log.h"
#include "common/mem.h"

#define MAX_ANSWERS 1024

typedef struct q_req {
    ferry_list link;
    ferry_redis *r;
    const ferry_adapter *owner;
    uint64_t id;
    char *nsp;
    ferry_adapter_answers_cb cb;
    void *ud;
    long expected; /* -1 until PUBLISH answered */
    cJSON **answers;
    size_t n;
    int done;      /* the caller was answered */
    int published; /* hiredis answered the PUBLISH (it holds q until then) */
    uv_timer_t timer;
} q_req;

static char *chan_of(const ferry_redis *r, const char *nsp, const char *node)
{
    size_t n = strlen(redis_prefix(r)) + strlen(nsp) + (node ? strlen(node) : 0) + 16;
    char *c = ferry_mem_alloc(n);
    if (c == NULL)
        return NULL;
    if (node == NULL)
        snprintf(c, n, "%s#%s##req", redis_prefix(r), nsp);
    else
        snprintf(c, n, "%s#%s##res#%s", redis_prefix(r), nsp, node);
    return c;
}

void redis_q_channels(ferry_redis *r, const char *nsp, int want)
{
    char *req = chan_of(r, nsp, NULL), *res = chan_of(r, nsp, redis_node(r));
    if (req != NULL && res != NULL) {
        redis_chan(r, req, want);
        redis_chan(r, res, want);
    } else {
        FERRY_LOG(FERRY_LOG_ERROR, "redis", NULL,
                  "out of memory: commands across nodes unavailable for %s", nsp);
    }
    ferry_mem_free(req);
    ferry_mem_free(res);
}

/* PUBLISH "FRJ1"+msg on channel; cb NULL: the answer is not needed. */
static int publish(ferry_redis *r, const char *channel, const cJSON *msg,
                   redisCallbackFn *cb, void *ud)
{
    if (!redis_can_publish(r))
        return -FERRY_ECLOSED;
    char *text = cJSON_PrintUnformatted(msg);
    if (text == NULL)
        return -FERRY_ENOMEM;
    size_t tl = strlen(text);
    char *body = ferry_mem_alloc(tl + 4);
    int rc = -FERRY_ENOMEM;
    if (body != NULL) {
        memcpy(body, "FRJ1", 4);
        memcpy(body + 4, text, tl);
        rc = redis_publish(r, channel, body, tl + 4, cb, ud);
    }
    ferry_mem_free(body);
    cJSON_free(text);
    return rc;
}

/* ------------------------------------------------------------------ requests */

static void on_req_closed(uv_handle_t *h)
{
    q_req *q = h->data;
    for (size_t i = 0; i < q->n; i++)
        cJSON_Delete(q->answers[i]);
    ferry_mem_free(q->answers);
    ferry_mem_free(q->nsp);
    ferry_mem_free(q);
}

/* Answer the caller once. */
static void req_finish(q_req *q, int status)
{
    if (q->done)
        return;
    q->done = 1;
    ferry_list_remove(&q->link);
    ferry_list_init(&q->link);
    uv_timer_stop(&q->timer);
    q->cb(q->ud, status, (const cJSON *const *)q->answers, q->n,
          q->expected < 0 ? 0 : (size_t)q->expected);
}

/* Freed (its timer closed) once answered and once hiredis gave back its PUBLISH. */
static void req_maybe_free(q_req *q)
{
    if (q->done && q->published && !uv_is_closing((uv_handle_t *)&q->timer))
        uv_close((uv_handle_t *)&q->timer, on_req_closed);
}

static void on_timeout(uv_timer_t *t)
{
    q_req *q = t->data;
    req_finish(q, -FERRY_ETIMEDOUT);
    req_maybe_free(q);
}

static void on_published(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    q_req *q = privdata;
    redisReply *rep = reply;
    q->published = 1;
    if (!q->done) {
        if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
            req_finish(q, -FERRY_EIO);
        } else {
            q->expected = rep->integer > 0 ? (long)rep->integer - 1 : 0;
            if ((long)q->n >= q->expected)
                req_finish(q, 0);
        }
    }
    req_maybe_free(q);
}

int redis_q_send(ferry_redis *r, const char *nsp, const ferry_adapter *owner, const cJSON *cmd,
                 uint32_t timeout_ms, ferry_adapter_answers_cb cb, void *ud)
{
    redis_q *rq = redis_q_of(r);
    if (!redis_can_publish(r))
        return -FERRY_ECLOSED;
    char *chan = chan_of(r, nsp, NULL);
    cJSON *msg = cJSON_CreateObject();
    cJSON *body = cJSON_Duplicate(cmd, 1);
    q_req *q = cb != NULL ? ferry_mem_calloc(1, sizeof(*q)) : NULL;
    uint64_t id = cb != NULL ? ++rq->next_id : 0;
    int rc = -FERRY_ENOMEM;
    if (chan == NULL || msg == NULL || body == NULL || (cb != NULL && q == NULL) ||
        cJSON_AddStringToObject(msg, "t", "cmd") == NULL ||
        cJSON_AddStringToObject(msg, "nsp", nsp) == NULL ||
        cJSON_AddStringToObject(msg, "node", redis_node(r)) == NULL ||
        cJSON_AddNumberToObject(msg, "req", (double)id) == NULL)
        goto out;
    cJSON_AddItemToObject(msg, "body", body);
    body = NULL;
    if (q == NULL) {
        rc = publish(r, chan, msg, NULL, NULL);
        goto out;
    }
    q->r = r;
    q->owner = owner;
    q->id = id;
    q->cb = cb;
    q->ud = ud;
    q->expected = -1;
    if ((q->nsp = ferry_mem_strdup(nsp)) == NULL)
        goto out;
    rc = publish(r, chan, msg, on_published, q);
    if (rc != 0)
        goto out;
    uv_timer_init(redis_loop(r), &q->timer);
    q->timer.data = q;
    uv_timer_start(&q->timer, on_timeout, timeout_ms, 0);
    ferry_list_insert_tail(&rq->reqs, &q->link);
    q = NULL;
out:
    if (q != NULL)
        ferry_mem_free(q->nsp);
    ferry_mem_free(q);
    cJSON_Delete(body);
    cJSON_Delete(msg);
    ferry_mem_free(chan);
    return rc;
}

void redis_q_cancel(ferry_redis *r, const ferry_adapter *owner)
{
    redis_q *rq = redis_q_of(r);
    ferry_list *it, *next;
    for (it = rq->reqs.next; it != &rq->reqs; it = next) {
        next = it->next;
        q_req *q = ferry_list_entry(it, q_req, link);
        if (q->owner == owner) {
            req_finish(q, -FERRY_ECLOSED);
            req_maybe_free(q);
        }
    }
}

/* ------------------------------------------------------------------ receiving */

static void on_command(ferry_redis *r, const cJSON *m, const char *nsp, const char *from)
{
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(m, "body");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(m, "req");
    const ferry_adapter_host *h = redis_host_of(r, nsp);
    if (h == NULL || h->command == NULL || !cJSON_IsObject(body) || !cJSON_IsNumber(req))
        return;
    cJSON *answer = h->command(h->ctx, body);
    if (req->valuedouble > 0) {
        cJSON *out = cJSON_CreateObject();
        char *chan = chan_of(r, nsp, from);
        if (out != NULL && chan != NULL && cJSON_AddStringToObject(out, "t", "ans") != NULL &&
            cJSON_AddStringToObject(out, "nsp", nsp) != NULL &&
            cJSON_AddStringToObject(out, "node", redis_node(r)) != NULL &&
            cJSON_AddNumberToObject(out, "req", req->valuedouble) != NULL) {
            cJSON_AddItemToObject(out, "answer", answer != NULL ? answer : cJSON_CreateNull());
            answer = NULL;
            publish(r, chan, out, NULL, NULL);
        }
        ferry_mem_free(chan);
        cJSON_Delete(out);
    }
    cJSON_Delete(answer);
}

static void on_answer(ferry_redis *r, const cJSON *m, const char *nsp)
{
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(m, "req");
    const cJSON *answer = cJSON_GetObjectItemCaseSensitive(m, "answer");
    if (!cJSON_IsNumber(req) || answer == NULL)
        return;
    ferry_list *it;
    ferry_list_foreach(it, &redis_q_of(r)->reqs)
    {
        q_req *q = ferry_list_entry(it, q_req, link);
        if ((double)q->id != req->valuedouble || strcmp(q->nsp, nsp) != 0)
            continue;
        if (q->n >= MAX_ANSWERS)
            return;
        cJSON **grown = ferry_mem_realloc(q->answers, (q->n + 1) * sizeof(*grown));
        cJSON *copy = cJSON_Duplicate(answer, 1);
        if (grown != NULL)
            q->answers = grown;
        if (grown == NULL || copy == NULL) {
            cJSON_Delete(copy);
            return; /* counted as not answered: the timeout says so */
        }
        q->answers[q->n++] = copy;
        if (q->expected >= 0 && (long)q->n >= q->expected) {
            req_finish(q, 0);
            req_maybe_free(q);
        }
        return;
    }
}

void redis_q_on_message(ferry_redis *r, const char *data, size_t len)
{
    cJSON *m = cJSON_ParseWithLength(data, len);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "t");
    const cJSON *nsp = cJSON_GetObjectItemCaseSensitive(m, "nsp");
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(m, "node");
    if (cJSON_IsString(t) && cJSON_IsString(nsp) && cJSON_IsString(node) &&
        strcmp(node->valuestring, redis_node(r)) != 0) {
        if (strcmp(t->valuestring, "cmd") == 0)
            on_command(r, m, nsp->valuestring, node->valuestring);
        else if (strcmp(t->valuestring, "ans") == 0)
            on_answer(r, m, nsp->valuestring);
    }
    cJSON_Delete(m);
}
