/* ferry-test-handshake: a Socket.IO server for the tests of what an app learns about a client
 * before and at its connection: the handshake accessors (socket.handshake) and the admission
 * hook (allowRequest).
 *
 * It prints one JSON object per line on stdout, so that a test awaits the server's view:
 *   {"event":"connect","id":"...","handshake":{...}}   for every socket of "/": the socket's
 *       url, query [[name,value]...], headers [[name,value]...], address, time, auth, the
 *       lookups query_a / query_A / header_x_custom (of names "a", "A", "X-CUSTOM"), and
 *       "session": the same fields read from its Engine.IO session
 *   {"event":"admission","transport":"...","url":"...","address":"...","time":N,
 *    "query":[[name,value]...],"headers":[[name,value]...],"admit":"...","token":"...",
 *    "header_x_token":"..."}                             the hook was asked (--admission)
 *   {"event":"admission-answer","admit":"...","url":"...","rc":"ok"|"closed"|"timedout"|
 *    "inval","waiting":true|false}                     the app answered (waiting: before it)
 * The first line is "ferry-test-handshake: listening on http://127.0.0.1:PORT/socket.io/".
 *
 * With --admission, the hook decides by the handshake's query: admit=yes (or none) admits at
 * once, admit=no refuses at once with the query's msg (none: NULL, the default message),
 * admit=later / later-no admit / refuse after delay ms (query delay, default 100),
 * admit=hold admits after delay ms whatever happened meanwhile (the client may be gone).
 *
 * Flags: --port N (0), --tls-cert PEM --tls-key KEY (listen with TLS), --admission 1, --admission-timeout MS, --max-pending-admissions N, and
 * the engine flags of shared/test_flags.h.
 * SIGTERM or SIGINT closes the server; exit status 0 only if the loop closed clean. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry.h>

#include "shared/test_flags.h"

static uv_loop_t *loop;

static void print_line(cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(o);
}

typedef const char *(*pair_at_fn)(const void *obj, size_t i, const char **value);

static cJSON *pairs(const void *obj, pair_at_fn at)
{
    cJSON *list = cJSON_CreateArray();
    const char *name, *value;
    for (size_t i = 0; (name = at(obj, i, &value)) != NULL; i++) {
        cJSON *p = cJSON_CreateArray();
        cJSON_AddItemToArray(p, cJSON_CreateString(name));
        cJSON_AddItemToArray(p, cJSON_CreateString(value));
        cJSON_AddItemToArray(list, p);
    }
    return list;
}

static const char *sock_query_at(const void *o, size_t i, const char **v)
{
    return ferry_socket_query_at(o, i, v);
}
static const char *sock_header_at(const void *o, size_t i, const char **v)
{
    return ferry_socket_header_at(o, i, v);
}
static const char *sess_query_at(const void *o, size_t i, const char **v)
{
    return ferry_session_query_at(o, i, v);
}
static const char *sess_header_at(const void *o, size_t i, const char **v)
{
    return ferry_session_header_at(o, i, v);
}

static void add_string_or_null(cJSON *o, const char *key, const char *v)
{
    cJSON_AddItemToObject(o, key, v != NULL ? cJSON_CreateString(v) : cJSON_CreateNull());
}

static void on_connection(ferry_socket *s, void *ud)
{
    (void)ud;
    ferry_session *es = ferry_socket_session(s);
    cJSON *hs = cJSON_CreateObject();
    cJSON_AddStringToObject(hs, "url", ferry_socket_url(s));
    cJSON_AddItemToObject(hs, "query", pairs(s, sock_query_at));
    cJSON_AddItemToObject(hs, "headers", pairs(s, sock_header_at));
    cJSON_AddStringToObject(hs, "address", ferry_socket_address(s));
    cJSON_AddNumberToObject(hs, "time", (double)ferry_socket_time(s));
    cJSON_AddBoolToObject(hs, "secure", ferry_socket_secure(s));
    cJSON_AddItemToObject(hs, "auth", cJSON_Duplicate(ferry_socket_auth(s), 1));
    add_string_or_null(hs, "query_a", ferry_socket_query(s, "a"));
    add_string_or_null(hs, "query_A", ferry_socket_query(s, "A"));
    add_string_or_null(hs, "header_x_custom", ferry_socket_header(s, "X-CUSTOM"));
    cJSON *sess = cJSON_CreateObject();
    cJSON_AddStringToObject(sess, "url", ferry_session_url(es));
    cJSON_AddItemToObject(sess, "query", pairs(es, sess_query_at));
    cJSON_AddItemToObject(sess, "headers", pairs(es, sess_header_at));
    cJSON_AddStringToObject(sess, "address", ferry_session_remote_addr(es));
    cJSON_AddNumberToObject(sess, "time", (double)ferry_session_time(es));
    cJSON_AddBoolToObject(sess, "secure", ferry_session_secure(es));
    add_string_or_null(sess, "query_a", ferry_session_query(es, "a"));
    add_string_or_null(sess, "query_A", ferry_session_query(es, "A"));
    add_string_or_null(sess, "header_x_custom", ferry_session_header(es, "x-custom"));
    cJSON_AddItemToObject(hs, "session", sess);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "connect");
    cJSON_AddStringToObject(o, "id", ferry_socket_id(s));
    cJSON_AddItemToObject(o, "handshake", hs);
    print_line(o);
}

/* ------------------------------------------------------------------ admission */

typedef struct decision {
    uv_timer_t timer;
    ferry_admission *a;
    int refuse;
    char admit[32];
} decision;

static const char *rc_name(int rc)
{
    return rc == 0                  ? "ok"
           : rc == -FERRY_ECLOSED   ? "closed"
           : rc == -FERRY_ETIMEDOUT ? "timedout"
           : rc == -FERRY_EINVAL    ? "inval"
                                    : ferry_strerror(rc);
}

static const char *adm_query_at(const void *o, size_t i, const char **v)
{
    return ferry_admission_query_at(o, i, v);
}
static const char *adm_header_at(const void *o, size_t i, const char **v)
{
    return ferry_admission_header_at(o, i, v);
}

/* Answer a, printing what the answer returned. a is freed by the answer: read it first. */
static void answer(ferry_admission *a, const char *admit, int refuse)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "admission-answer");
    cJSON_AddStringToObject(o, "admit", admit);
    cJSON_AddStringToObject(o, "url", ferry_admission_url(a));
    cJSON_AddBoolToObject(o, "waiting", ferry_admission_waiting(a));
    int rc = refuse ? ferry_admission_refuse(a, ferry_admission_query(a, "msg"))
                    : ferry_admission_allow(a);
    cJSON_AddStringToObject(o, "rc", rc_name(rc));
    print_line(o);
}

static void decision_free(uv_handle_t *h)
{
    free(h->data);
}

static void on_decision(uv_timer_t *t)
{
    decision *d = t->data;
    answer(d->a, d->admit, d->refuse);
    uv_close((uv_handle_t *)&d->timer, decision_free);
}

static void on_admission(ferry_admission *a, void *ud)
{
    (void)ud;
    const char *admit = ferry_admission_query(a, "admit");
    if (admit == NULL)
        admit = "yes";
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "admission");
    cJSON_AddStringToObject(o, "transport", ferry_admission_transport(a));
    cJSON_AddStringToObject(o, "url", ferry_admission_url(a));
    cJSON_AddStringToObject(o, "address", ferry_admission_remote_addr(a));
    cJSON_AddNumberToObject(o, "time", (double)ferry_admission_time(a));
    cJSON_AddBoolToObject(o, "secure", ferry_admission_secure(a));
    cJSON_AddItemToObject(o, "query", pairs(a, adm_query_at));
    cJSON_AddItemToObject(o, "headers", pairs(a, adm_header_at));
    cJSON_AddStringToObject(o, "admit", admit);
    add_string_or_null(o, "token", ferry_admission_query(a, "token"));
    add_string_or_null(o, "header_x_token", ferry_admission_header(a, "X-TOKEN"));
    cJSON_AddBoolToObject(o, "server", ferry_admission_server(a) != NULL);
    print_line(o);
    if (strcmp(admit, "yes") == 0 || strcmp(admit, "no") == 0) {
        answer(a, admit, admit[0] == 'n');
        return;
    }
    const char *delay = ferry_admission_query(a, "delay");
    decision *d = calloc(1, sizeof(*d));
    d->a = a;
    d->refuse = strcmp(admit, "later-no") == 0;
    snprintf(d->admit, sizeof(d->admit), "%s", admit);
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, on_decision, delay != NULL ? strtoull(delay, NULL, 10) : 100, 0);
}

/* ------------------------------------------------------------------ main */

typedef struct sigs {
    uv_signal_t term, intr;
    ferry_server *srv;
} sigs;

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    sigs *g = sig->data;
    ferry_server_close(g->srv, NULL, NULL);
    uv_close((uv_handle_t *)&g->term, NULL);
    uv_close((uv_handle_t *)&g->intr, NULL);
}

int main(int argc, char **argv)
{
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    int port = 0;
    int admission = 0;
    const char *tls_cert = NULL, *tls_key = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            fprintf(stderr, "ferry-test-handshake: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--port") == 0)
            port = atoi(v);
        else if (strcmp(a, "--tls-cert") == 0)
            tls_cert = v;
        else if (strcmp(a, "--tls-key") == 0)
            tls_key = v;
        else if (strcmp(a, "--admission") == 0)
            admission = atoi(v);
        else if (strcmp(a, "--admission-timeout") == 0)
            cfg.admission_timeout_ms = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--max-pending-admissions") == 0)
            cfg.max_pending_admissions = (uint32_t)strtoul(v, NULL, 10);
        else if (!test_engine_flag(&cfg, a, v)) {
            fprintf(stderr, "ferry-test-handshake: unknown flag %s\n", a);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    loop = uv_default_loop();
    ferry_server *srv;
    int rc = ferry_server_new(loop, &cfg, &srv);
    if (rc == 0)
        rc = test_transport_options(srv);
    ferry_tls *tls = NULL;
    if (rc == 0 && tls_cert != NULL) {
        rc = ferry_tls_new(NULL, &tls);
        if (rc == 0)
            rc = ferry_tls_add_cert(tls, tls_cert, tls_key);
        if (rc == 0)
            rc = ferry_server_listen_tls(srv, "127.0.0.1", port, tls);
        ferry_tls_release(tls); /* the listener holds its own reference */
    } else if (rc == 0) {
        rc = ferry_server_listen(srv, "127.0.0.1", port);
    }
    if (rc != 0) {
        fprintf(stderr, "ferry-test-handshake: %s\n", ferry_strerror(rc));
        return 1;
    }
    ferry_namespace_on_connection(ferry_of(srv, "/"), on_connection, NULL);
    if (admission)
        ferry_server_on_admission(srv, on_admission, NULL);
    sigs g = {.srv = srv};
    uv_signal_init(loop, &g.term);
    uv_signal_init(loop, &g.intr);
    g.term.data = g.intr.data = &g;
    uv_signal_start_oneshot(&g.term, on_signal, SIGTERM);
    uv_signal_start_oneshot(&g.intr, on_signal, SIGINT);
    printf("ferry-test-handshake: listening on %s://127.0.0.1:%d%s\n",
           tls_cert != NULL ? "https" : "http", ferry_server_port(srv),
           cfg.path != NULL ? cfg.path : "/socket.io/");
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
