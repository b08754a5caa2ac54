/* /metrics: the server's counters in the Prometheus text exposition format (version 0.0.4).
 *
 * Nothing is counted here: the engine counts sessions, packets, moves between transports and
 * client reports by transport where they happen (engine.h, ferry_engine_metrics), the HTTP layer
 * counts bytes (heads apart) into the engine's per-transport meters and its own refusals
 * (http.h, ferry_http_stats); this file reads them at scrape time and writes the text. What
 * only the root can see is measured here: the event loop's lag (a timer that should fire every
 * LAG_INTERVAL_MS, and how late it fires) and the process (resident memory, descriptors, CPU).
 *
 * Label values come from static tables only (transport names, reason codes): no session id,
 * room or namespace name ever becomes a label, so the number of series is bounded whatever
 * clients do. Names follow Prometheus's conventions: counters end in _total, units are base
 * units in the name (_bytes, _seconds). */
#include "server/metrics.h"

#include <stdbool.h>
#include <dirent.h>
#include <string.h>
#include <sys/resource.h>

#include "common/assert.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"
#include "server/server.h"

#define LAG_INTERVAL_MS 250
#define RENDER_FIRST 65536           /* bytes; the output of a fresh server is ~20 KB */
#define RENDER_MAX (4u * 1024 * 1024) /* the bounded label sets stay far below this */

/* Upper bounds of the lag histogram's buckets, in seconds (+Inf is implied). */
static const double lag_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,   0.25,   0.5,   1,    2.5,   5};
#define LAG_BUCKETS (sizeof(lag_bounds) / sizeof(lag_bounds[0]))

struct ferry_metrics {
    ferry_server *srv;
    uv_timer_t lag_timer;
    uint64_t lag_due_ns; /* uv_hrtime() at which the timer should fire */
    uint64_t lag_counts[LAG_BUCKETS + 1];
    uint64_t lag_count;
    double lag_sum;
    /* A listener of its own (ferry_server_metrics_listen): a second HTTP layer that serves
     * nothing but the metrics path. */
    ferry_http http;
    int has_http;
    int port;
    unsigned open; /* the timer, the HTTP layer: closed before done() */
    void (*done)(ferry_server *srv);
};

/* ------------------------------------------------------------------ the loop's lag */

static void on_lag_timer(uv_timer_t *t)
{
    ferry_metrics *m = t->data;
    uint64_t now = uv_hrtime();
    double lag = now > m->lag_due_ns ? (double)(now - m->lag_due_ns) / 1e9 : 0.0;
    size_t i = 0;
    while (i < LAG_BUCKETS && lag > lag_bounds[i])
        i++;
    m->lag_counts[i]++;
    m->lag_count++;
    m->lag_sum += lag;
    m->lag_due_ns = now + (uint64_t)LAG_INTERVAL_MS * 1000000u;
    uv_timer_start(&m->lag_timer, on_lag_timer, LAG_INTERVAL_MS, 0);
}

ferry_metrics *ferry_metrics_get(ferry_server *srv)
{
    if (srv->metrics != NULL)
        return srv->metrics;
    ferry_metrics *m = ferry_mem_calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->srv = srv;
    uv_timer_init(srv->loop, &m->lag_timer);
    m->lag_timer.data = m;
    uv_unref((uv_handle_t *)&m->lag_timer); /* measuring never keeps the loop alive */
    m->open = 1;
    m->lag_due_ns = uv_hrtime() + (uint64_t)LAG_INTERVAL_MS * 1000000u;
    uv_timer_start(&m->lag_timer, on_lag_timer, LAG_INTERVAL_MS, 0);
    srv->metrics = m;
    return m;
}

/* ------------------------------------------------------------------ writing */

static void family(ferry_strbuf *sb, const char *name, const char *type, const char *help)
{
    ferry_strbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(ferry_strbuf *sb, const char *name, const char *labels, uint64_t v)
{
    if (labels != NULL && labels[0] != '\0')
        ferry_strbuf_printf(sb, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
    else
        ferry_strbuf_printf(sb, "%s %llu\n", name, (unsigned long long)v);
}

/* A counter with one "transport" label, one line per registered transport (zeros included:
 * a dashboard sees every transport from the first scrape). */
static void by_transport(ferry_strbuf *sb, const char *name, const char *help,
                         const ferry_engine_metrics *em, size_t field_offset)
{
    family(sb, name, "counter", help);
    for (size_t i = 0; i < FERRY_ENGINE_NO_TRANSPORT; i++) {
        const char *tn = ferry_engine_transport_label(i);
        if (tn == NULL)
            break;
        uint64_t v;
        memcpy(&v, (const char *)&em->t[i] + field_offset, sizeof(v));
        char labels[64];
        snprintf(labels, sizeof(labels), "transport=\"%s\"", tn);
        sample(sb, name, labels, v);
    }
}

#define T_FIELD(f) offsetof(ferry_engine_tmetrics, f)

/* The label for a ferry_reason: snake case of the enum's name (two reasons share Socket.IO's
 * "transport error" string; a label must tell them apart). */
static const char *reason_label(size_t r)
{
    static const char *const names[] = {
        "transport_close",        "transport_error",
        "ping_timeout",           "parse_error",
        "forced_close",           "server_shutting_down",
        "server_namespace_disconnect", "client_namespace_disconnect",
        "forced_server_close",    "queue_full",
    };
    return r < sizeof(names) / sizeof(names[0]) ? names[r] : "other";
}

static int better_or_worse(size_t from, size_t to)
{
    /* The registry's order is the server's preference: a lower index is better. "none" (a
     * session between transports) is neither. */
    if (from == FERRY_ENGINE_NO_TRANSPORT || to == FERRY_ENGINE_NO_TRANSPORT || from == to)
        return 0;
    return to < from ? 1 : -1;
}

static void moves(ferry_strbuf *sb, const ferry_engine_metrics *em)
{
    static const char *const move_names[FERRY_MOVES] = {"probe", "attach"};
    static const char *const names[3] = {"ferry_transport_reattaches_total", "ferry_upgrades_total",
                                         "ferry_downgrades_total"};
    static const char *const helps[3] = {
        "Sessions that attached again to the same transport, or to one after losing theirs "
        "(from=\"none\"), by how (attach).",
        "Sessions that moved to a better transport (the server's order: websocket, sse, polling, "
        "short-polling), by how: probe (Engine.IO upgrade) or attach (ferry's extension).",
        "Sessions that moved to a worse transport, by how (attach: ferry's client left a "
        "transport that failed; see ferry_client_transport_reports_total for its reason)."};
    for (int kind = 1; kind >= -1; kind--) {
        int k = kind == 0 ? 0 : kind == 1 ? 1 : 2;
        family(sb, names[k], "counter", helps[k]);
        for (size_t f = 0; f < FERRY_ENGINE_TRANSPORTS; f++) {
            const char *fn = ferry_engine_transport_label(f);
            for (size_t t = 0; fn != NULL && t < FERRY_ENGINE_TRANSPORTS; t++) {
                const char *tn = ferry_engine_transport_label(t);
                if (tn == NULL || better_or_worse(f, t) != kind)
                    continue;
                for (size_t mv = 0; mv < FERRY_MOVES; mv++) {
                    uint64_t v = em->t[f].moves[t][mv];
                    if (v == 0)
                        continue;
                    char labels[128];
                    snprintf(labels, sizeof(labels), "from=\"%s\",to=\"%s\",reason=\"%s\"", fn,
                             tn, move_names[mv]);
                    sample(sb, names[k], labels, v);
                }
            }
        }
    }
    family(sb, "ferry_upgrade_failures_total", "counter",
           "Probes (upgrade attempts) that failed, by from, to and reason: timeout (no \"5\" "
           "within the upgrade timeout) or closed (the probe transport failed or closed).");
    static const char *const fail_names[FERRY_PROBE_FAILS] = {"timeout", "closed"};
    for (size_t f = 0; f < FERRY_ENGINE_TRANSPORTS; f++) {
        const char *fn = ferry_engine_transport_label(f);
        for (size_t t = 0; fn != NULL && t < FERRY_ENGINE_TRANSPORTS; t++) {
            const char *tn = ferry_engine_transport_label(t);
            for (size_t r = 0; tn != NULL && r < FERRY_PROBE_FAILS; r++) {
                uint64_t v = em->t[f].probe_failures[t][r];
                if (v == 0)
                    continue;
                char labels[128];
                snprintf(labels, sizeof(labels), "from=\"%s\",to=\"%s\",reason=\"%s\"", fn, tn,
                         fail_names[r]);
                sample(sb, "ferry_upgrade_failures_total", labels, v);
            }
        }
    }
    family(sb, "ferry_client_transport_reports_total", "counter",
           "Transport decisions reported by ferry's client (docs/client.md \"Reasons\"), by "
           "from (\"none\": the first choice), to and reason; unknown reasons count as other.");
    for (size_t f = 0; f < FERRY_ENGINE_TRANSPORTS; f++) {
        const char *fn = ferry_engine_transport_label(f);
        for (size_t t = 0; fn != NULL && t < FERRY_ENGINE_TRANSPORTS; t++) {
            const char *tn = ferry_engine_transport_label(t);
            for (size_t r = 0; tn != NULL && r <= FERRY_ENGINE_REPORT_REASONS; r++) {
                uint64_t v = em->t[f].reports[t][r];
                if (v == 0)
                    continue;
                const char *rn = ferry_engine_report_reason(r);
                char labels[160];
                snprintf(labels, sizeof(labels), "from=\"%s\",to=\"%s\",reason=\"%s\"", fn, tn,
                         rn != NULL ? rn : "other");
                sample(sb, "ferry_client_transport_reports_total", labels, v);
            }
        }
    }
}

/* One byte family: per transport, the heads (part="header") apart from the rest. */
static void wire_bytes(ferry_strbuf *sb, const ferry_engine_metrics *em, const char *name,
                       const char *help, bool out)
{
    family(sb, name, "counter", help);
    for (size_t i = 0; i < FERRY_ENGINE_NO_TRANSPORT; i++) {
        const char *tn = ferry_engine_transport_label(i);
        if (tn == NULL)
            break;
        const ferry_wire_meter *w = &em->t[i].wire;
        uint64_t head = out ? w->head_bytes_out : w->head_bytes_in;
        uint64_t all = out ? w->bytes_out : w->bytes_in;
        char labels[96];
        snprintf(labels, sizeof(labels), "transport=\"%s\",part=\"header\"", tn);
        sample(sb, name, labels, head);
        snprintf(labels, sizeof(labels), "transport=\"%s\",part=\"body\"", tn);
        sample(sb, name, labels, all - head);
    }
}

static void bytes(ferry_strbuf *sb, const ferry_engine_metrics *em)
{
    wire_bytes(sb, em, "ferry_received_bytes_total",
               "Bytes received on requests and connections of each transport, HTTP heads "
               "(part=\"header\") apart from bodies, frames and streams (part=\"body\"); under TLS, "
               "before decryption is undone: HTTP bytes.",
               false);
    wire_bytes(sb, em, "ferry_sent_bytes_total",
               "Bytes sent on requests and connections of each transport, HTTP heads "
               "(part=\"header\": response heads, the 101, an SSE stream's head) apart from the "
               "rest (part=\"body\").",
               true);
    family(sb, "ferry_http_requests_by_transport_total", "counter",
           "HTTP requests naming each transport (handshakes, polls, POSTs, WebSocket upgrades, "
           "SSE streams), answered or taken.");
    for (size_t i = 0; i < FERRY_ENGINE_NO_TRANSPORT; i++) {
        const char *tn = ferry_engine_transport_label(i);
        if (tn == NULL)
            break;
        char labels[64];
        snprintf(labels, sizeof(labels), "transport=\"%s\"", tn);
        sample(sb, "ferry_http_requests_by_transport_total", labels, em->t[i].wire.requests);
    }
}

static void kinds(ferry_strbuf *sb, const char *name, const char *help, const char *const *names,
                  const uint64_t *values, size_t n)
{
    family(sb, name, "counter", help);
    for (size_t i = 0; i < n; i++) {
        char labels[96];
        snprintf(labels, sizeof(labels), "kind=\"%s\"", names[i]);
        sample(sb, name, labels, values[i]);
    }
}

static void errors(ferry_strbuf *sb, const ferry_engine_stats *es, const ferry_http_stats *hs)
{
    static const char *const rej_names[] = {
        "transport_unknown",    "session_unknown",        "bad_handshake_method",
        "bad_request",          "forbidden",              "unsupported_protocol_version",
        "admission_refused",    "admission_timeout",      "admission_busy",
        "http_bad_request",     "http_header_too_large",  "http_body_too_large",
        "connection_over_limit", "connection_no_memory",  "tls_busy",
        "tls_plain_http",       "new_session_rate",
    };
    const uint64_t rej[] = {
        es->rejected_code[0], es->rejected_code[1], es->rejected_code[2],
        es->rejected_code[3], es->rejected_code[4], es->rejected_code[5],
        es->admission_refused, es->admission_timeouts, es->admission_busy,
        hs->bad_requests,      hs->header_too_large,  hs->body_too_large,
        hs->refused_over_limit, hs->refused_nomem,    hs->tls_refused_busy,
        hs->tls_plain_http,     es->rate_limited,
    };
    FERRY_ASSERT(sizeof(rej) / sizeof(rej[0]) == sizeof(rej_names) / sizeof(rej_names[0]));
    kinds(sb, "ferry_rejections_total",
          "Requests and connections turned away, by kind: Engine.IO's error codes 0-5 (HTTP "
          "400/403), the admission hook, the HTTP parser's limits, the connection limits, the "
          "per-address new-session rate (429).",
          rej_names, rej, sizeof(rej) / sizeof(rej[0]));
    static const char *const err_names[] = {
        "parse_error",     "queue_overflow", "attach_refused",        "report_ignored",
        "replay_dropped",  "unavailable",    "http_timeout",          "tls_handshake_failed",
        "tls_handshake_timeout",
    };
    const uint64_t err[] = {
        es->parse_errors,   es->queue_overflows, es->attach_refused, es->reports_ignored,
        es->replay_dropped, es->unavailable,     hs->timeouts,       hs->tls_failed,
        hs->tls_timeouts,
    };
    FERRY_ASSERT(sizeof(err) / sizeof(err[0]) == sizeof(err_names) / sizeof(err_names[0]));
    kinds(sb, "ferry_errors_total",
          "Things that went wrong, by kind: undecodable packets, send queues over their bound, "
          "refused attaches, ignored client reports, replay packets dropped, 503 answers, HTTP "
          "header/idle timeouts, failed or timed-out TLS handshakes.",
          err_names, err, sizeof(err) / sizeof(err[0]));
}

/* Open descriptors: the entries of /proc/self/fd (Linux; -1 elsewhere). A directory of the
 * kernel's memory, not a disk: reading it does not block the loop. */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void process(ferry_strbuf *sb)
{
    size_t rss = 0;
    if (uv_resident_set_memory(&rss) == 0) {
        family(sb, "ferry_process_resident_memory_bytes", "gauge",
               "Resident memory of the process.");
        sample(sb, "ferry_process_resident_memory_bytes", NULL, rss);
    }
    long fds = open_fds();
    if (fds >= 0) {
        family(sb, "ferry_process_open_fds", "gauge", "Open file descriptors of the process.");
        sample(sb, "ferry_process_open_fds", NULL, (uint64_t)fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        family(sb, "ferry_process_max_fds", "gauge",
               "The descriptor limit of the process (soft RLIMIT_NOFILE).");
        sample(sb, "ferry_process_max_fds", NULL, (uint64_t)rl.rlim_cur);
    }
    uv_rusage_t ru;
    if (uv_getrusage(&ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        family(sb, "ferry_process_cpu_seconds_total", "counter",
               "User and system CPU time of the process.");
        ferry_strbuf_printf(sb, "ferry_process_cpu_seconds_total %.6f\n", cpu);
    }
}

static void lag(ferry_strbuf *sb, const ferry_metrics *m)
{
    family(sb, "ferry_event_loop_lag_seconds", "histogram",
           "How late a timer due every 250 ms fires: the time the loop spent busy (callbacks, "
           "flushes) when it should have been waiting.");
    uint64_t cum = 0;
    for (size_t i = 0; i < LAG_BUCKETS; i++) {
        cum += m->lag_counts[i];
        ferry_strbuf_printf(sb, "ferry_event_loop_lag_seconds_bucket{le=\"%g\"} %llu\n",
                            lag_bounds[i], (unsigned long long)cum);
    }
    cum += m->lag_counts[LAG_BUCKETS];
    ferry_strbuf_printf(sb, "ferry_event_loop_lag_seconds_bucket{le=\"+Inf\"} %llu\n",
                        (unsigned long long)cum);
    ferry_strbuf_printf(sb, "ferry_event_loop_lag_seconds_sum %.9f\n", m->lag_sum);
    ferry_strbuf_printf(sb, "ferry_event_loop_lag_seconds_count %llu\n",
                        (unsigned long long)m->lag_count);
}

/* Forwarding between cluster nodes (ferry_server_forward, docs/scaling.md): only on a server
 * that forwards. */
static void forwarding(ferry_strbuf *sb, const ferry_server *srv)
{
    if (srv->forward == NULL)
        return;
    ferry_forward_stats st;
    ferry_server_forward_stats(srv, &st);
    family(sb, "ferry_forward_requests_total", "counter",
           "Requests of another node's session passed to that node (the owner).");
    sample(sb, "ferry_forward_requests_total", NULL, st.forwarded);
    family(sb, "ferry_forward_refused_total", "counter",
           "Requests of another node's session answered here, by reason: unknown (the owner "
           "is not in Redis or not reachable: 400), busy (too many forwarded at once: 503).");
    sample(sb, "ferry_forward_refused_total", "reason=\"unknown\"", st.unknown);
    sample(sb, "ferry_forward_refused_total", "reason=\"busy\"", st.busy);
    family(sb, "ferry_forward_active", "gauge",
           "Forwarded requests waiting for their owner's answer and spliced connections now.");
    sample(sb, "ferry_forward_active", NULL, st.active);
    family(sb, "ferry_forward_address_published_total", "counter",
           "Times this node's address was written to Redis (every 5 s while Redis is there).");
    sample(sb, "ferry_forward_address_published_total", NULL, st.published);
}

void ferry_metrics_render(ferry_metrics *m, ferry_strbuf *sb)
{
    ferry_server *srv = m->srv;
    const ferry_engine_metrics *em = ferry_engine_get_metrics(srv->engine);
    const ferry_engine_stats *es = ferry_engine_get_stats(srv->engine);
    const ferry_http_stats *hs = &srv->http.stats;
    ferry_engine_gauges g;
    ferry_engine_get_gauges(srv->engine, &g);

    family(sb, "ferry_build_info", "gauge", "Always 1; the library's version as a label.");
    ferry_strbuf_printf(sb, "ferry_build_info{version=\"%d.%d.%d\"} 1\n", FERRY_VERSION_MAJOR,
                        FERRY_VERSION_MINOR, FERRY_VERSION_PATCH);

    family(sb, "ferry_sessions_open", "gauge",
           "Engine.IO sessions open now, by current transport (\"none\": a session of ferry's "
           "client between transports, waiting for its attach).");
    for (size_t i = 0; i < FERRY_ENGINE_TRANSPORTS; i++) {
        const char *tn = ferry_engine_transport_label(i);
        if (tn == NULL)
            continue;
        char labels[64];
        snprintf(labels, sizeof(labels), "transport=\"%s\"", tn);
        sample(sb, "ferry_sessions_open", labels, g.sessions[i]);
    }
    family(sb, "ferry_sessions_upgrading", "gauge", "Open sessions with a probe out now.");
    sample(sb, "ferry_sessions_upgrading", NULL, g.upgrading);
    family(sb, "ferry_sessions_extension", "gauge",
           "Open sessions of ferry's own client (ferry=1: reports, attach, client pings).");
    sample(sb, "ferry_sessions_extension", NULL, g.extensions);
    family(sb, "ferry_queued_bytes", "gauge",
           "Bytes queued for sessions and not yet taken by a transport (all sessions).");
    sample(sb, "ferry_queued_bytes", NULL, g.queued_bytes);
    family(sb, "ferry_replay_bytes", "gauge",
           "Bytes sent to sessions of ferry's client and kept until acknowledged (replay).");
    sample(sb, "ferry_replay_bytes", NULL, g.replay_bytes);

    by_transport(sb, "ferry_handshakes_total", "Sessions opened (Engine.IO handshakes), by transport.",
                 em, T_FIELD(handshakes));
    family(sb, "ferry_sessions_closed_total", "counter",
           "Sessions closed, by reason (ferry_reason: transport_close is the client leaving).");
    for (size_t r = 0; r < FERRY_ENGINE_REASONS; r++) {
        if (em->closes[r] == 0 && r > FERRY_REASON_QUEUE_FULL)
            continue;
        char labels[64];
        snprintf(labels, sizeof(labels), "reason=\"%s\"", reason_label(r));
        sample(sb, "ferry_sessions_closed_total", labels, em->closes[r]);
    }
    moves(sb, em);
    by_transport(sb, "ferry_heartbeat_timeouts_total",
                 "Sessions closed because no pong came in time, by the transport they were on.",
                 em, T_FIELD(ping_timeouts));
    by_transport(sb, "ferry_packets_received_total", "Engine.IO packets received, by transport.",
                 em, T_FIELD(packets_in));
    by_transport(sb, "ferry_packets_sent_total",
                 "Engine.IO packets handed to a transport (replays included), by transport.", em,
                 T_FIELD(packets_out));
    by_transport(sb, "ferry_messages_received_total",
                 "Engine.IO messages (type 4) received, by transport.", em, T_FIELD(messages_in));
    by_transport(sb, "ferry_messages_sent_total",
                 "Engine.IO messages handed to a transport, by transport.", em,
                 T_FIELD(messages_out));
    bytes(sb, em);
    errors(sb, es, hs);

    family(sb, "ferry_http_connections", "gauge", "HTTP connections open now.");
    sample(sb, "ferry_http_connections", NULL, srv->http.nconns);
    family(sb, "ferry_http_connections_accepted_total", "counter", "TCP connections accepted.");
    sample(sb, "ferry_http_connections_accepted_total", NULL, hs->accepted);
    family(sb, "ferry_http_requests_total", "counter",
           "HTTP requests read whole (every route, static files included).");
    sample(sb, "ferry_http_requests_total", NULL, hs->requests);
    family(sb, "ferry_tls_handshakes_total", "counter", "TLS handshakes completed.");
    sample(sb, "ferry_tls_handshakes_total", NULL, hs->tls_handshakes);
    forwarding(sb, srv);

    lag(sb, m);
    process(sb);
}

/* ------------------------------------------------------------------ serving */

/* The exposition in a buffer of its own (a reference for the caller), or NULL. */
static ferry_buf *render(ferry_metrics *m)
{
    for (size_t cap = RENDER_FIRST; cap <= RENDER_MAX; cap *= 2) {
        ferry_buf *b = ferry_buf_new(cap);
        if (b == NULL)
            return NULL;
        ferry_strbuf sb;
        ferry_strbuf_init(&sb, b->data, cap);
        ferry_metrics_render(m, &sb);
        if (ferry_strbuf_error(&sb) == 0) {
            b->len = sb.len;
            return b;
        }
        ferry_buf_release(b);
    }
    return NULL;
}

int ferry_server_metrics_text(ferry_server *srv, void (*cb)(const char *text, size_t len, void *ud),
                              void *ud)
{
    if (srv == NULL || cb == NULL)
        return -FERRY_EINVAL;
    if (srv->closing && srv->metrics == NULL)
        return -FERRY_ECLOSED; /* no timer is started once the server closes */
    ferry_metrics *m = ferry_metrics_get(srv);
    ferry_buf *b = m ? render(m) : NULL;
    if (b == NULL)
        return -FERRY_ENOMEM;
    cb(b->data, b->len, ud);
    ferry_buf_release(b);
    return 0;
}

static void on_metrics(ferry_req *req, void *ud)
{
    ferry_buf *b = render(ud);
    if (b == NULL) {
        FERRY_LOG(FERRY_LOG_WARN, "metrics", NULL, "cannot render the metrics: out of memory");
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        return;
    }
    ferry_slice s = {b->data, b->len, b};
    ferry_req_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8",
                      "Cache-Control: no-store\r\n", &s, 1);
    ferry_buf_release(b);
}

static int check_path(const char *path)
{
    return path != NULL && path[0] == '/' ? 0 : -FERRY_EINVAL;
}

int ferry_server_metrics(ferry_server *srv, const char *path)
{
    if (srv == NULL || check_path(path) != 0)
        return -FERRY_EINVAL;
    if (srv->closing)
        return -FERRY_ECLOSED;
    ferry_metrics *m = ferry_metrics_get(srv);
    if (m == NULL)
        return -FERRY_ENOMEM;
    return ferry_http_add_route(&srv->http, "GET", path, 0, on_metrics, NULL, m);
}

int ferry_server_metrics_listen(ferry_server *srv, const char *addr, int port, const char *path)
{
    if (srv == NULL || addr == NULL || port < 0 || port > 65535)
        return -FERRY_EINVAL;
    if (path == NULL)
        path = "/metrics";
    if (check_path(path) != 0)
        return -FERRY_EINVAL;
    if (srv->closing)
        return -FERRY_ECLOSED;
    ferry_metrics *m = ferry_metrics_get(srv);
    if (m == NULL)
        return -FERRY_ENOMEM;
    if (m->has_http)
        return -FERRY_EBUSY;
    /* Small requests only: a scraper sends a GET with a few headers. */
    ferry_http_limits limits = {
        .max_header_bytes = 8192,
        .max_body_bytes = 1024,
        .header_timeout_ms = srv->cfg.header_timeout_ms,
        .idle_timeout_ms = 60000, /* Prometheus keeps its connection between scrapes */
        .max_connections = 64,
        .tls_handshake_timeout_ms = srv->cfg.tls_handshake_timeout_ms,
        .max_tls_handshakes = 1,
    };
    int rc = ferry_http_init(&m->http, srv->loop, &srv->wheel, &limits, NULL, NULL, 0);
    if (rc != 0)
        return rc;
    m->has_http = 1;
    m->open++;
    rc = ferry_http_add_route(&m->http, "GET", path, 0, on_metrics, NULL, m);
    if (rc == 0)
        rc = ferry_http_listen(&m->http, addr, port);
    if (rc != 0)
        return rc; /* the HTTP layer stays, without a listener, until the server closes */
    m->port = ferry_http_port(&m->http);
    FERRY_LOG(FERRY_LOG_INFO, "metrics", NULL, "metrics on http://%s:%d%s", addr, m->port, path);
    return 0;
}

int ferry_server_metrics_port(const ferry_server *srv)
{
    if (srv == NULL || srv->metrics == NULL || !srv->metrics->has_http)
        return -FERRY_ENOTFOUND;
    return srv->metrics->port > 0 ? srv->metrics->port : -FERRY_ENOTFOUND;
}

/* ------------------------------------------------------------------ closing */

static void closed_one(ferry_metrics *m)
{
    if (--m->open == 0 && m->done != NULL)
        m->done(m->srv);
}

static void on_timer_close(uv_handle_t *h)
{
    closed_one(h->data);
}

static void on_http_closed(ferry_http *http)
{
    closed_one(container_of(http, ferry_metrics, http));
}

void ferry_metrics_close(ferry_metrics *m, void (*done)(ferry_server *srv))
{
    m->done = done;
    uv_close((uv_handle_t *)&m->lag_timer, on_timer_close);
    if (m->has_http)
        ferry_http_close(&m->http, on_http_closed);
}

void ferry_metrics_free(ferry_metrics *m)
{
    if (m == NULL)
        return;
    if (m->has_http)
        ferry_http_free(&m->http);
    ferry_mem_free(m);
}
