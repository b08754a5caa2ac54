/* ferry-test-engine: an Engine.IO server for the Node tests, driven by messages.
 *
 * It prints one JSON object per line on stdout for every session event, so that a test can
 * await what the server saw instead of sleeping:
 *   {"event":"open","sid":"...","transport":"polling"}
 *   {"event":"message","sid":"...","text":"..."}        a text message
 *   {"event":"message","sid":"...","binary":"AQID"}     a binary message, base64
 *   {"event":"close","sid":"...","reason":"ping timeout"}
 *   {"event":"report","sid":"...","from":"polling","to":"websocket","reason":"promoted","ms":830}
 *                                                      a transport report (ms -1: not given)
 * The first line is "ferry-test-engine: listening on http://127.0.0.1:PORT/PATH" (as
 * tests/lib/server.mjs expects); the JSON lines follow.
 *
 * Every message is echoed back unchanged, except commands (text messages):
 *   cmd:close      close the session from the server (reason "forced close")
 *   cmd:burst N    send N text messages "burst 0" .. "burst N-1" at once
 *   cmd:binary     send one binary message holding the bytes 00 01 02 ff
 *   cmd:silent     stop echoing on this session (commands still work)
 *   cmd:echo       echo again
 *   cmd:big N      send one text message of N 'x'
 *   cmd:shutdown   close the whole server from inside this message callback (then exit 0)
 *
 * GET /__stats answers the server's counters as JSON ({"requests":N,"sessions":N,
 * "connections":N}; this request counts), so that a test can tell when the server has taken a
 * request that it holds without answering (a long poll).
 *
 * Flags (all optional): --port N (0: a free port), --path P (/engine.io/), --ping-interval MS,
 * --ping-timeout MS, --max-payload N, --max-header-bytes N, --header-timeout MS,
 * --idle-timeout MS, --max-connections N, --queue-bytes N, --transports polling[,websocket],
 * --static DIR, --cors ORIGINS, --ws-deflate THRESHOLD (permessage-deflate on WebSockets),
 * --short-poll-interval MS, --sse-keepalive MS, --sse-padding BYTES, --sse-recycle BYTES.
 * SIGTERM or SIGINT closes the server; the exit status is 0 only if the loop closed clean. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry.h>

#include "common/base64.h"
#include "shared/test_flags.h"
#include "engine/internal.h" /* the counters behind /__stats: a test server may look inside */
#include "server/server.h"

typedef struct sess_data {
    int silent;
} sess_data;

static void shutdown_server(void);

static void json_string(FILE *out, const char *s, size_t len)
{
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void print_event(const char *event, ferry_session *s)
{
    printf("{\"event\":\"%s\",\"sid\":\"%s\"", event, ferry_session_id(s));
}

static void on_close(ferry_session *s, ferry_reason reason, void *ud)
{
    print_event("close", s);
    printf(",\"reason\":\"%s\"}\n", ferry_reason_str(reason));
    free(ferry_session_get_data(s));
}

static int is_cmd(const char *data, size_t len, const char *cmd)
{
    size_t n = strlen(cmd);
    return len >= n && memcmp(data, cmd, n) == 0 && (len == n || data[n] == ' ');
}

/* The number after a command, bounded so that a test cannot ask for unbounded work. */
static long cmd_arg(const char *data, size_t len, size_t skip, long max)
{
    char num[24];
    size_t n = len > skip ? len - skip : 0;
    if (n == 0 || n >= sizeof(num))
        return 0;
    memcpy(num, data + skip, n);
    num[n] = '\0';
    long v = strtol(num, NULL, 10);
    return v < 0 ? 0 : v > max ? max : v;
}

static void run_cmd(ferry_session *s, sess_data *d, const char *data, size_t len)
{
    if (is_cmd(data, len, "cmd:close")) {
        ferry_session_close(s);
    } else if (is_cmd(data, len, "cmd:burst")) {
        long n = cmd_arg(data, len, 10, 100000);
        for (long i = 0; i < n; i++) {
            char msg[32];
            int m = snprintf(msg, sizeof(msg), "burst %ld", i);
            if (ferry_session_send(s, msg, (size_t)m, 0) != 0)
                break;
        }
    } else if (is_cmd(data, len, "cmd:binary")) {
        static const char bytes[] = {0x00, 0x01, 0x02, (char)0xff};
        ferry_session_send(s, bytes, sizeof(bytes), 1);
    } else if (is_cmd(data, len, "cmd:shutdown")) {
        shutdown_server();
    } else if (is_cmd(data, len, "cmd:silent")) {
        d->silent = 1;
    } else if (is_cmd(data, len, "cmd:echo")) {
        d->silent = 0;
    } else if (is_cmd(data, len, "cmd:big")) {
        long n = cmd_arg(data, len, 8, 64L * 1024 * 1024);
        char *big = malloc((size_t)n + 1);
        if (big != NULL) {
            memset(big, 'x', (size_t)n);
            int rc = ferry_session_send(s, big, (size_t)n, 0);
            if (rc != 0)
                printf("{\"event\":\"send-error\",\"sid\":\"%s\",\"error\":\"%s\"}\n",
                       ferry_session_id(s), ferry_strerror(rc));
            free(big);
        }
    } else {
        ferry_session_send(s, data, len, 0); /* an unknown command is echoed */
    }
}

static void on_message(ferry_session *s, const char *data, size_t len, int binary, void *ud)
{
    sess_data *d = ferry_session_get_data(s);
    print_event("message", s);
    if (binary) {
        char *b64 = malloc(FERRY_BASE64_LEN(len) + 1);
        if (b64 == NULL)
            abort();
        size_t n = ferry_base64_encode(b64, data, len);
        printf(",\"binary\":\"%.*s\"}\n", (int)n, b64);
        free(b64);
    } else {
        printf(",\"text\":");
        json_string(stdout, data, len);
        printf("}\n");
    }
    if (!binary && len >= 4 && memcmp(data, "cmd:", 4) == 0) {
        run_cmd(s, d, data, len);
        return;
    }
    if (!d->silent)
        ferry_session_send(s, data, len, binary);
}

static void on_session(ferry_session *s, void *ud)
{
    sess_data *d = calloc(1, sizeof(*d));
    if (d == NULL)
        abort();
    ferry_session_set_data(s, d);
    ferry_session_on_message(s, on_message, NULL);
    ferry_session_on_close(s, on_close, NULL);
    print_event("open", s);
    printf(",\"transport\":\"%s\"}\n", ferry_session_transport(s));
}

static void on_report(ferry_session *s, const char *from, const char *to, const char *reason,
                      int64_t ms, void *ud)
{
    print_event("report", s);
    printf(",\"from\":\"%s\",\"to\":\"%s\",\"reason\":", from, to);
    json_string(stdout, reason, strlen(reason));
    printf(",\"ms\":%lld}\n", (long long)ms);
}

static void on_stats(ferry_http_req *req, void *ud)
{
    ferry_server *srv = ud;
    char body[320];
    const ferry_engine *eng = srv->engine;
    const ferry_engine_stats *st = &eng->stats;
    /* The most any session pins now: its queue and its replay buffer. */
    size_t pinned = 0;
    for (size_t i = 0; i < eng->sessions.nbuckets; i++)
        for (ferry_session *s = eng->sessions.buckets[i]; s != NULL; s = s->hash_next)
            if (s->queued_bytes + s->sent_bytes > pinned)
                pinned = s->queued_bytes + s->sent_bytes;
    int n = snprintf(body, sizeof(body),
                     "{\"requests\":%llu,\"sessions\":%zu,\"connections\":%u,"
                     "\"reports\":%llu,\"reportsIgnored\":%llu,\"attaches\":%llu,"
                     "\"replayDropped\":%llu,\"pinnedBytes\":%zu}",
                     (unsigned long long)srv->http.stats.requests, eng->sessions.count,
                     srv->http.nconns, (unsigned long long)st->reports,
                     (unsigned long long)st->reports_ignored, (unsigned long long)st->attaches,
                     (unsigned long long)st->replay_dropped, pinned);
    ferry_http_reply(req, 200, "application/json", body, (size_t)n);
}

typedef struct sigs {
    uv_signal_t term, intr;
    ferry_server *srv;
} sigs;

static sigs *the_sigs;

static void shutdown_server(void)
{
    sigs *g = the_sigs;
    if (g == NULL)
        return;
    the_sigs = NULL;
    ferry_server_close(g->srv, NULL, NULL);
    uv_close((uv_handle_t *)&g->term, NULL);
    uv_close((uv_handle_t *)&g->intr, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    shutdown_server();
}

int main(int argc, char **argv)
{
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.path = "/engine.io/";
    int port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            fprintf(stderr, "ferry-test-engine: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--port") == 0)
            port = atoi(v);
        else if (!test_engine_flag(&cfg, a, v)) {
            fprintf(stderr, "ferry-test-engine: unknown flag %s\n", a);
            return 2;
        }
    }
    /* Lines reach the test as soon as they are printed. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    uv_loop_t *loop = uv_default_loop();
    ferry_server *srv;
    int rc = ferry_server_new(loop, &cfg, &srv);
    if (rc == 0)
        rc = test_transport_options(srv);
    if (rc == 0)
        rc = ferry_server_listen(srv, "127.0.0.1", port);
    if (rc != 0) {
        fprintf(stderr, "ferry-test-engine: %s\n", ferry_strerror(rc));
        return 1;
    }
    ferry_server_on_session(srv, on_session, NULL);
    ferry_server_on_transport_report(srv, on_report, NULL);
    ferry_server_route(srv, "GET", "/__stats", on_stats, srv);
    sigs g = {.srv = srv};
    uv_signal_init(loop, &g.term);
    uv_signal_init(loop, &g.intr);
    g.term.data = g.intr.data = &g;
    the_sigs = &g;
    uv_signal_start_oneshot(&g.term, on_signal, SIGTERM);
    uv_signal_start_oneshot(&g.intr, on_signal, SIGINT);
    printf("ferry-test-engine: listening on http://127.0.0.1:%d%s\n", ferry_server_port(srv),
           cfg.path);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
