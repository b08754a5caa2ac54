/* Admission: the app's say on each Engine.IO handshake before a session exists (Socket.IO's
 * allowRequest), now or later.
 *
 * A handshake request waiting for a decision is held on its connection (ferry_req_hold) and
 * listed on the server with a deadline on the wheel. Three things can end the wait before the
 * app answers: the client hangs up (the HTTP layer's abort, and the request is freed right
 * after), the deadline passes (403), or the server closes (503). The handle itself belongs to
 * the app until it answers, so it holds its own copy of the request and never points at the
 * request or the server once the wait is over: a late answer touches nothing but the handle
 * (no use-after-free whatever the order). */
#include <string.h>

#include "common/assert.h"
#include "common/life.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/utf8.h"
#include "common/wallclock.h"
#include "engine/internal.h"

/* Refusal messages are bounded: they go into a response body the client may log. */
#define MAX_MESSAGE 512

typedef enum adm_state {
    ADM_WAITING,   /* held; in eng->admissions */
    ADM_DECIDED,   /* the app answered while the client waited */
    ADM_GONE,      /* the client hung up first */
    ADM_TIMED_OUT, /* answered 403 at the deadline */
    ADM_CLOSED,    /* answered 503: the server closed */
} adm_state;

struct ferry_admission {
    ferry_list link;   /* in eng->admissions while waiting */
    ferry_timer timer; /* the decision deadline (admission_timeout_ms) */
    ferry_engine *eng; /* NULL once the server closed */
    ferry_req *req;    /* the held request while waiting, NULL after */
    const ferry_transport_ops *ops;
    adm_state state;
    /* The one lifetime rule (common/life.h): its own reference is the app's, given up by its
     * answer (closed: answered); the engine holds one around the callback and each answer. */
    ferry_life life;
    /* The request, copied: the app may read it after the request is gone. */
    char *url;
    ferry_kv *query;
    size_t nquery;
    ferry_kv *headers;
    size_t nheaders;
    char remote_addr[48];
    uint64_t time_ms;
    int secure; /* the request came over TLS */
    void *data;
};

static void adm_free(ferry_admission *a)
{
    ferry_kv_free(a->query, a->nquery);
    ferry_kv_free(a->headers, a->nheaders);
    ferry_mem_free(a->url);
    ferry_mem_free(a);
}

static void release(ferry_admission *a)
{
    if (ferry_life_drop(&a->life))
        adm_free(a);
}

/* End the wait: the handshake no longer counts against the bound and has no deadline; the
 * request (if any) is the caller's to answer. */
static ferry_req *detach(ferry_admission *a, adm_state state)
{
    FERRY_ASSERT(a->state == ADM_WAITING);
    ferry_req *req = a->req;
    a->req = NULL;
    a->state = state;
    ferry_list_remove(&a->link);
    ferry_timer_stop(a->eng->wheel, &a->timer);
    a->eng->nadmissions--;
    if (req != NULL)
        ferry_req_hold(req, NULL, NULL); /* whoever takes it next sets its own abort */
    return req;
}

/* 403 {"code":4,"message":message}: Engine.IO's Forbidden, with the app's message. */
static void respond_forbidden(ferry_req *req, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    char *body = NULL;
    if (o != NULL && cJSON_AddNumberToObject(o, "code", 4) != NULL &&
        cJSON_AddStringToObject(o, "message", message) != NULL)
        body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (body == NULL) {
        ferry_req_respond_error(req, 4); /* out of memory: the standard "Forbidden" */
        return;
    }
    ferry_req_respond_text(req, 403, "application/json", body, strlen(body));
    cJSON_free(body);
}

static void on_abort(ferry_req *req, void *ud)
{
    ferry_admission *a = ud;
    (void)req; /* freed by the HTTP layer right after this returns */
    a->req = NULL;
    FERRY_LOG(FERRY_LOG_DEBUG, "engine", NULL, "client left while its handshake awaited admission");
    detach(a, ADM_GONE);
}

static void on_timeout(ferry_timer *t)
{
    ferry_admission *a = container_of(t, ferry_admission, timer);
    FERRY_LOG(FERRY_LOG_INFO, "engine", NULL, "admission undecided after %u ms: refused",
              a->eng->cfg->admission_timeout_ms);
    a->eng->stats.admission_timeouts++;
    ferry_req *req = detach(a, ADM_TIMED_OUT);
    respond_forbidden(req, "Admission timed out");
}

static int copy_request(ferry_admission *a, const ferry_req *req)
{
    a->url = ferry_mem_strdup(req->url != NULL ? req->url : "");
    if (a->url == NULL || ferry_kv_copy(&a->query, &a->nquery, req->query, req->nquery) != 0 ||
        ferry_kv_copy(&a->headers, &a->nheaders, req->headers, req->nheaders) != 0)
        return -FERRY_ENOMEM;
    ferry_req_remote_addr(req, a->remote_addr, sizeof(a->remote_addr));
    a->time_ms = ferry_wall_ms();
    a->secure = ferry_req_is_tls(req);
    return 0;
}

void ferry_admission_begin(ferry_engine *eng, const ferry_transport_ops *ops, ferry_req *req)
{
    if (eng->on_admission == NULL) {
        ferry_engine_handshake(eng, ops, req);
        return;
    }
    if (eng->nadmissions >= eng->cfg->max_pending_admissions) {
        FERRY_LOG(FERRY_LOG_WARN, "engine", NULL,
                  "%u handshakes await admission (max_pending_admissions): 503", eng->nadmissions);
        eng->stats.admission_busy++;
        static const char busy[] = "{\"code\":4,\"message\":\"Too many handshakes pending\"}";
        ferry_req_respond_text(req, 503, "application/json", busy, sizeof(busy) - 1);
        return;
    }
    ferry_admission *a = ferry_mem_calloc(1, sizeof(*a));
    if (a == NULL || copy_request(a, req) != 0) {
        if (a != NULL) {
            ferry_life_init(&a->life);
            if (ferry_life_close(&a->life)) /* nobody else has it: the last reference */
                adm_free(a);
        }
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        return;
    }
    a->eng = eng;
    a->req = req;
    a->ops = ops;
    a->state = ADM_WAITING;
    ferry_life_init(&a->life); /* the app's, until it answers */
    ferry_life_hold(&a->life); /* ours, until the callback returns */
    ferry_list_insert_tail(&eng->admissions, &a->link);
    eng->nadmissions++;
    ferry_req_hold(req, on_abort, a);
    ferry_timer_init(&a->timer, on_timeout);
    if (eng->cfg->admission_timeout_ms > 0)
        ferry_timer_start(eng->wheel, &a->timer, eng->cfg->admission_timeout_ms);
    eng->on_admission(a, eng->on_admission_ud);
    release(a);
}

/* An answer: the app's reference goes, ours is held until the answer is done. */
static void answer(ferry_admission *a)
{
    FERRY_ASSERT(!ferry_life_closed(&a->life)); /* exactly once */
    ferry_life_hold(&a->life);
    ferry_life_close(&a->life);
}

void ferry_admission_cancel_all(ferry_engine *eng)
{
    while (!ferry_list_empty(&eng->admissions)) {
        ferry_admission *a = ferry_list_entry(eng->admissions.next, ferry_admission, link);
        ferry_req *req = detach(a, ADM_CLOSED);
        a->eng = NULL; /* the server is freed before the app may answer */
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
    }
}

/* ------------------------------------------------------------------ public API */

int ferry_engine_on_admission(ferry_engine *eng, ferry_admission_cb cb, void *user_data)
{
    if (eng->closing)
        return -FERRY_ECLOSED;
    eng->on_admission = cb;
    eng->on_admission_ud = user_data;
    return 0;
}

/* What a late answer returns. */
static int late(const ferry_admission *a)
{
    return a->state == ADM_TIMED_OUT ? -FERRY_ETIMEDOUT : -FERRY_ECLOSED;
}

int ferry_admission_allow(ferry_admission *a)
{
    answer(a); /* exactly once, even inside the callback */
    int rc = late(a);
    if (a->state == ADM_WAITING) {
        ferry_engine *eng = a->eng;
        ferry_req *req = detach(a, ADM_DECIDED);
        ferry_engine_handshake(eng, a->ops, req);
        rc = 0;
    }
    release(a);
    return rc;
}

int ferry_admission_refuse(ferry_admission *a, const char *message)
{
    answer(a);
    int rc = late(a);
    int bad = message != NULL && (strlen(message) > MAX_MESSAGE ||
                                  !ferry_utf8_valid(message, strlen(message)));
    if (a->state == ADM_WAITING) {
        FERRY_LOG(FERRY_LOG_INFO, "engine", NULL, "handshake refused by the app (%s)",
                  a->ops->name);
        a->eng->stats.admission_refused++;
        ferry_req *req = detach(a, ADM_DECIDED);
        respond_forbidden(req, message == NULL || bad ? "Forbidden" : message);
        rc = 0;
    }
    release(a);
    return bad ? -FERRY_EINVAL : rc;
}

int ferry_admission_waiting(const ferry_admission *a)
{
    return a->state == ADM_WAITING;
}

const char *ferry_admission_url(const ferry_admission *a)
{
    return a->url;
}

const char *ferry_admission_query(const ferry_admission *a, const char *name)
{
    return ferry_kv_find(a->query, a->nquery, name, 0);
}

const char *ferry_admission_header(const ferry_admission *a, const char *name)
{
    return ferry_kv_find(a->headers, a->nheaders, name, 1);
}

const char *ferry_admission_query_at(const ferry_admission *a, size_t i, const char **value)
{
    return ferry_kv_at(a->query, a->nquery, i, value);
}

const char *ferry_admission_header_at(const ferry_admission *a, size_t i, const char **value)
{
    return ferry_kv_at(a->headers, a->nheaders, i, value);
}

const char *ferry_admission_remote_addr(const ferry_admission *a)
{
    return a->remote_addr;
}

const char *ferry_admission_transport(const ferry_admission *a)
{
    return a->ops->name;
}

uint64_t ferry_admission_time(const ferry_admission *a)
{
    return a->time_ms;
}

int ferry_admission_secure(const ferry_admission *a)
{
    return a->secure;
}

ferry_server *ferry_admission_server(const ferry_admission *a)
{
    return a->eng != NULL ? a->eng->owner : NULL;
}

void ferry_admission_set_data(ferry_admission *a, void *data)
{
    a->data = data;
}

void *ferry_admission_get_data(const ferry_admission *a)
{
    return a->data;
}
