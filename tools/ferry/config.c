/* Flags and environment variables of tools/ferry. Order of precedence: defaults (or the
 * suite's defaults with --suite), then FERRY_* variables, then flags. Values are checked
 * strictly: a bad number or an unknown flag stops the program with one clear line. */
#include "config.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The usage text, around the --transports line that the registry's names fill in. */
static const char usage_head[] =
    "usage: ferry [flags]\n"
    "  --host ADDR            listen address (FERRY_HOST, default 127.0.0.1)\n"
    "  --port N               listen port, 0 picks a free one (FERRY_PORT, default 8080)\n"
    "  --path PATH            Socket.IO path (FERRY_PATH, default /socket.io/)\n"
    "  --ping-interval MS     (FERRY_PING_INTERVAL, default 25000)\n"
    "  --ping-timeout MS      (FERRY_PING_TIMEOUT, default 20000)\n"
    "  --max-payload BYTES    largest HTTP body or WebSocket message (FERRY_MAX_PAYLOAD,\n"
    "                         default 1000000)\n"
    ;
static const char usage_tail[] =
    "  --cors-origins LIST    allowed origins, comma-separated, or * (FERRY_CORS_ORIGINS)\n"
    "  --static DIR           serve this folder at / (FERRY_STATIC)\n"
    "  --publish-token TOKEN  bearer token for POST /api/publish (FERRY_PUBLISH_TOKEN);\n"
    "                         without it the endpoint answers 403\n"
    "  --client-token TOKEN   clients must show it to connect: ?token=TOKEN in the URL or\n"
    "                         'Authorization: Bearer TOKEN' (FERRY_CLIENT_TOKEN); others\n"
    "                         get 403 {\"code\":4,\"message\":\"Invalid client token\"}\n"
    "  --allow-publish LIST   events clients may publish, e.g. message,typing or *\n"
    "                         (FERRY_ALLOW_PUBLISH, default: none)\n"
    "  --allow-join LIST      rooms clients may join: names, prefixes like team-*, or *\n"
    "                         (FERRY_ALLOW_JOIN, default *); empty: none\n"
    "  --max-rooms N          rooms one client may be in (FERRY_MAX_ROOMS, default 16)\n"
    "  --publish-rate N       publishes per second one client may make, in bursts of N\n"
    "                         (FERRY_PUBLISH_RATE, default 50; 0: no limit)\n"
    "  --new-session-rate N[/BURST]  new sessions per second one address may open, in\n"
    "                         bursts of BURST (default N); more get 429\n"
    "                         (FERRY_NEW_SESSION_RATE, default 0: no limit)\n"
    "  --trust-forwarded-for  the new-session rate counts the last X-Forwarded-For address\n"
    "                         (only behind a proxy that sets it; FERRY_TRUST_FORWARDED_FOR=1)\n"
    "  --require-post-token   every polling/SSE POST must carry its session's token in\n"
    "                         X-Ferry-Post-Token (CSRF protection; ferry's client sends it,\n"
    "                         official clients then work over WebSocket only;\n"
    "                         FERRY_REQUIRE_POST_TOKEN=1)\n"
    "  --no-presence          do not announce joins and leaves to rooms (FERRY_PRESENCE=0)\n"
    "  --history N            publishes kept per room and sent to joiners (FERRY_HISTORY,\n"
    "                         default 50; 0: none)\n"
    "  --history-events LIST  events kept, e.g. message or chat:* (FERRY_HISTORY_EVENTS,\n"
    "                         default message)\n"
    "  --history-bytes BYTES  bound on the history of all rooms together\n"
    "                         (FERRY_HISTORY_BYTES, default 16777216)\n"
    "  --client-js FILE       socket.io-client browser bundle served at\n"
    "                         /vendor/socket.io.min.js (FERRY_CLIENT_JS, default: found in\n"
    "                         node_modules/socket.io-client/dist/)\n"
    "  --recovery-ms MS       connection-state recovery window: a client that lost its\n"
    "                         connection and comes back within MS gets its id, rooms and\n"
    "                         the messages it missed (FERRY_RECOVERY_MS, default 120000;\n"
    "                         0 turns recovery off; --suite: 0)\n"
    "  --recovery-packets N   the recovery log's bound in packets (FERRY_RECOVERY_PACKETS,\n"
    "                         default 10000): the window lasts only as long as the log, so\n"
    "                         a server sending N packets a second needs N times the window\n"
    "                         in seconds\n"
    "  --recovery-bytes BYTES  the recovery log's bound in bytes (FERRY_RECOVERY_BYTES,\n"
    "                         default 16777216)\n"
    "  --max-queue-bytes BYTES  bytes queued for one client before --backpressure acts\n"
    "                         (FERRY_MAX_QUEUE_BYTES, default 8388608)\n"
    "  --backpressure POLICY  what a client that reads too slowly gets: close (its session\n"
    "                         is closed), drop-volatile, latest (keyed publishes replace\n"
    "                         older ones) or spill (it catches up from the recovery log)\n"
    "                         (FERRY_BACKPRESSURE, default close)\n"
    "  --redis URL            run as a node of a cluster sharing rooms and broadcasts\n"
    "                         through Redis, e.g. redis://127.0.0.1:6379 (FERRY_REDIS;\n"
    "                         docs/scaling.md). Unreachable: local delivery goes on, and\n"
    "                         the node reconnects with backoff\n"
    "  --redis-sharded        with --redis: sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7)\n"
    "                         for a Redis Cluster (--redis names any of its nodes) or one\n"
    "                         Redis 7; every node the same (FERRY_REDIS_SHARDED=1)\n"
    "  --node-id ID           this node's name in the cluster, [A-Za-z0-9._-]{1,64}\n"
    "                         (FERRY_NODE_ID, default: random)\n"
    "  --header-timeout MS    a new connection must send a request within MS, and a\n"
    "                         request arrive whole within MS of its first byte; else 408\n"
    "                         (FERRY_HEADER_TIMEOUT, default 10000)\n"
    "  --workers N            run N worker processes on one port (SO_REUSEPORT), each a\n"
    "                         cluster node through --redis (required) named NODE-ID.wI;\n"
    "                         a supervisor restarts a worker that dies and passes SIGTERM,\n"
    "                         SIGINT and SIGHUP on (FERRY_WORKERS, default 0: one process;\n"
    "                         at most 64; docs/scaling.md)\n"
    "  --node-address HOST:PORT  where the other nodes reach this one (FERRY_NODE_ADDRESS;\n"
    "                         an IP literal, [v6]:port or a host name, resolved without\n"
    "                         blocking; default: --host and the port, or\n"
    "                         127.0.0.1 when --host is 0.0.0.0 or ::). With --redis, a\n"
    "                         request for another node's session is forwarded to it: no\n"
    "                         sticky sessions needed (docs/scaling.md)\n"
    "  --cluster-secret S     the cluster's secret, the same on every node, at least 16\n"
    "                         characters: session ids are signed with it so that they\n"
    "                         cannot be forged (FERRY_CLUSTER_SECRET; default: a key\n"
    "                         derived from the --redis URL, which every node must then\n"
    "                         spell the same way)\n"
    "  --log-level LEVEL      error, warn, info or debug (FERRY_LOG_LEVEL, default warn)\n"
    "  --log-format FORMAT    text (default) or json: one JSON object per line on stderr,\n"
    "                         {time, level, module, sid (6 characters), msg}\n"
    "                         (FERRY_LOG_FORMAT)\n"
    "  --tls-cert FILE        PEM certificate chain: --port speaks TLS (https, wss)\n"
    "                         (FERRY_TLS_CERT; repeat the flag, or commas in the variable,\n"
    "                         for more certificates chosen by SNI; the first is the default)\n"
    "  --tls-key FILE         PEM private key of each --tls-cert, in the same order\n"
    "                         (FERRY_TLS_KEY). SIGHUP reloads certificates and keys\n"
    "  --tls-min-version V    1.2 or 1.3 (FERRY_TLS_MIN_VERSION, default 1.2)\n"
    "  --tls-ciphers LIST     TLS 1.2 cipher list, OpenSSL syntax (FERRY_TLS_CIPHERS,\n"
    "                         default: ECDHE with AES-GCM or ChaCha20-Poly1305)\n"
    "  --tls-handshake-timeout MS  a TLS handshake must end within this\n"
    "                         (FERRY_TLS_HANDSHAKE_TIMEOUT, default 10000)\n"
    "  --tls-max-handshakes N TLS handshakes in flight (from a client's first byte); a\n"
    "                         client starting one more is closed at once\n"
    "                         (FERRY_TLS_MAX_HANDSHAKES, default 256)\n"
    "  --http-port N          with TLS, also listen for plain HTTP on N (FERRY_HTTP_PORT)\n"
    "  --http-mode MODE       redirect: the http port answers 308 to https (default);\n"
    "                         serve: it serves everything as the TLS port (FERRY_HTTP_MODE)\n"
    "  --admin-token TOKEN    serve the live admin page at /ferry/admin; its data needs\n"
    "                         this token (FERRY_ADMIN_TOKEN); without it: no admin page\n"
    "  --metrics-listen HOST:PORT  serve Prometheus metrics at http://HOST:PORT/metrics, on\n"
    "                         a listener of their own (FERRY_METRICS_LISTEN; e.g.\n"
    "                         127.0.0.1:9464, [::1]:9464; empty: none)\n"
    "  --suite                the server the socket.io-protocol test suite expects:\n"
    "                         port 3000, ping 300/200, namespaces / and /custom\n"
    "  --help, --version\n";

static int bad(const char *what, const char *value, const char *why)
{
    fprintf(stderr, "ferry: invalid %s '%s': %s (see ferry --help)\n", what, value, why);
    return -1;
}

static int parse_u32(const char *what, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    if (s[0] < '0' || s[0] > '9')
        return bad(what, s, "not a number");
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return bad(what, s, "not a number");
    if (v < min || v > max) {
        char why[64];
        snprintf(why, sizeof(why), "must be between %u and %u", (unsigned)min, (unsigned)max);
        return bad(what, s, why);
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_list(const char *what, const char *s, app_list *l)
{
    size_t len = strlen(s);
    if (len >= sizeof(l->buf))
        return bad(what, s, "too long");
    memcpy(l->buf, s, len + 1);
    l->n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(l->buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *e = tok + strlen(tok);
        while (e > tok && e[-1] == ' ')
            *--e = '\0';
        if (*tok == '\0')
            continue;
        if (l->n == APP_LIST_MAX)
            return bad(what, s, "more than 64 entries");
        if (strlen(tok) > APP_NAME_MAX)
            return bad(what, s, "an entry is longer than 128 bytes");
        l->item[l->n++] = tok;
    }
    return 0;
}

int app_list_match(const app_list *l, const char *name)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < l->n; i++) {
        const char *p = l->item[i];
        size_t plen = strlen(p);
        if (plen > 0 && p[plen - 1] == '*') {
            if (nlen >= plen - 1 && strncmp(name, p, plen - 1) == 0)
                return 1;
        } else if (strcmp(name, p) == 0) {
            return 1;
        }
    }
    return 0;
}

static int parse_level(const char *s, ferry_log_level *out)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (ferry_log_level)i;
            return 0;
        }
    return bad("log level", s, "use error, warn, info or debug");
}

static int parse_bool(const char *what, const char *s, int *out)
{
    if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 ||
        strcmp(s, "on") == 0)
        *out = 1;
    else if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0 || strcmp(s, "no") == 0 ||
             strcmp(s, "off") == 0)
        *out = 0;
    else
        return bad(what, s, "use 1 or 0");
    return 0;
}

/* N or N/BURST: a token bucket's rate per second and size (BURST 0: as N). */
static int parse_rate(const char *s, uint32_t *rate, uint32_t *burst)
{
    char buf[32];
    const char *slash = strchr(s, '/');
    size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);
    if (n >= sizeof(buf))
        return bad("new session rate", s, "not a number");
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (parse_u32("new session rate", buf, 0, 1000000, rate) != 0)
        return -1;
    *burst = 0;
    if (slash != NULL && parse_u32("new session burst", slash + 1, 1, 1000000, burst) != 0)
        return -1;
    return 0;
}

/* The library's transport names joined by sep, the last two by last ("polling, websocket, sse
 * or short-polling"), into out; cut short (never overrun) if out is too small. */
static const char *transport_names(char *out, size_t size, const char *sep, const char *last)
{
    size_t len = 0;
    const char *name;
    out[0] = '\0';
    for (size_t i = 0; (name = ferry_transport_at(i, NULL)) != NULL; i++) {
        const char *before = i == 0 ? "" : ferry_transport_at(i + 1, NULL) != NULL ? sep : last;
        int n = snprintf(out + len, size - len, "%s%s", before, name);
        if (n < 0 || (size_t)n >= size - len)
            break; /* cut short: out holds what fitted */
        len += (size_t)n;
    }
    return out;
}

static void print_usage(void)
{
    char names[256];
    fputs(usage_head, stdout);
    printf("  --transports LIST      %s (FERRY_TRANSPORTS,\n"
           "                         default all of them)\n",
           transport_names(names, sizeof(names), ",", ","));
    fputs(usage_tail, stdout);
}

/* Transport names from the library's registry (ferry_transport_bit()). */
static int parse_transports(const char *s, unsigned *out)
{
    app_list l;
    if (parse_list("transports", s, &l) != 0)
        return -1;
    unsigned bits = 0;
    for (size_t i = 0; i < l.n; i++) {
        unsigned bit = ferry_transport_bit(l.item[i]);
        if (bit == 0) {
            char names[256], why[300];
            snprintf(why, sizeof(why), "use %s",
                     transport_names(names, sizeof(names), ", ", " or "));
            return bad("transport", l.item[i], why);
        }
        bits |= bit;
    }
    if (bits == 0)
        return bad("transports", s, "name at least one");
    *out = bits;
    return 0;
}

static int check_path(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || s[0] != '/' || s[n - 1] != '/')
        return bad("path", s, "must start and end with '/'");
    return 0;
}

/* A certificate (which 0) or key (which 1) file. From the environment, v is a comma-separated
 * list; a flag names one file and may be repeated, and the first flag replaces the variable's
 * list. */
static int add_tls_file(app_config *cfg, int which, const char *v)
{
    const char **list = which == 0 ? cfg->tls_cert : cfg->tls_key;
    size_t *n = which == 0 ? &cfg->ntls_cert : &cfg->ntls_key;
    const char *what = which == 0 ? "TLS certificate" : "TLS key";
    if (v == cfg->tls_env_buf[which] || !cfg->tls_flag_seen[which]) {
        /* The variable, or the first flag: start the list afresh. */
        *n = 0;
    }
    if (v == cfg->tls_env_buf[which]) {
        char *save = NULL;
        for (char *tok = strtok_r(cfg->tls_env_buf[which], ",", &save); tok != NULL;
             tok = strtok_r(NULL, ",", &save)) {
            if (*tok == '\0')
                continue;
            if (*n == APP_TLS_MAX)
                return bad(what, tok, "more than 16 certificates");
            list[(*n)++] = tok;
        }
        return 0;
    }
    cfg->tls_flag_seen[which] = 1;
    if (*v == '\0')
        return bad(what, v, "empty file name");
    if (*n == APP_TLS_MAX)
        return bad(what, v, "more than 16 certificates");
    list[(*n)++] = v;
    return 0;
}

/* HOST:PORT, or [V6]:PORT. */
static int parse_listen(const char *what, const char *v, char *host, size_t hostcap, int *port)
{
    const char *colon = strrchr(v, ':');
    if (colon == NULL)
        return bad(what, v, "use HOST:PORT, e.g. 127.0.0.1:9464");
    const char *h = v;
    size_t hlen = (size_t)(colon - v);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    } else if (memchr(h, ':', hlen) != NULL) {
        return bad(what, v, "write an IPv6 address in brackets: [::1]:9464");
    }
    if (hlen == 0)
        return bad(what, v, "empty host");
    if (hlen >= hostcap)
        return bad(what, v, "host too long");
    uint32_t u;
    if (parse_u32(what, colon + 1, 0, 65535, &u) != 0)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)u;
    return 0;
}

/* One setting by its flag name (without "--"); shared by flags and variables. */
static int set(app_config *cfg, const char *name, const char *v)
{
    uint32_t u;
    if (strcmp(name, "host") == 0) {
        if (*v == '\0')
            return bad("host", v, "empty");
        cfg->host = v;
    } else if (strcmp(name, "port") == 0) {
        if (parse_u32("port", v, 0, 65535, &u) != 0)
            return -1;
        cfg->port = (int)u;
    } else if (strcmp(name, "path") == 0) {
        if (check_path(v) != 0)
            return -1;
        cfg->path = v;
    } else if (strcmp(name, "ping-interval") == 0) {
        return parse_u32("ping interval", v, 1, 3600000, &cfg->ping_interval_ms);
    } else if (strcmp(name, "ping-timeout") == 0) {
        return parse_u32("ping timeout", v, 1, 3600000, &cfg->ping_timeout_ms);
    } else if (strcmp(name, "max-payload") == 0) {
        return parse_u32("max payload", v, 1024, 100u * 1024 * 1024, &cfg->max_payload);
    } else if (strcmp(name, "transports") == 0) {
        return parse_transports(v, &cfg->transports);
    } else if (strcmp(name, "cors-origins") == 0) {
        cfg->cors_origins = *v ? v : NULL;
    } else if (strcmp(name, "static") == 0) {
        struct stat st;
        if (*v != '\0' && (stat(v, &st) != 0 || !S_ISDIR(st.st_mode)))
            return bad("static folder", v, "not a folder");
        cfg->static_root = *v ? v : NULL;
    } else if (strcmp(name, "publish-token") == 0) {
        cfg->publish_token = *v ? v : NULL;
    } else if (strcmp(name, "admin-token") == 0) {
        if (*v != '\0' && strlen(v) < 16)
            return bad("admin token", "(hidden)", "at least 16 characters");
        cfg->admin_token = *v ? v : NULL;
    } else if (strcmp(name, "client-token") == 0) {
        cfg->client_token = *v ? v : NULL;
    } else if (strcmp(name, "client-js") == 0) {
        cfg->client_js = *v ? v : NULL;
    } else if (strcmp(name, "allow-publish") == 0) {
        return parse_list("--allow-publish", v, &cfg->allow_publish);
    } else if (strcmp(name, "allow-join") == 0) {
        return parse_list("--allow-join", v, &cfg->allow_join);
    } else if (strcmp(name, "max-rooms") == 0) {
        /* The socket layer keeps a socket in at most 256 rooms, its own included. */
        if (parse_u32("max rooms", v, 0, 255, &u) != 0)
            return -1;
        cfg->max_rooms = u;
    } else if (strcmp(name, "publish-rate") == 0) {
        return parse_u32("publish rate", v, 0, 1000000, &cfg->publish_rate);
    } else if (strcmp(name, "new-session-rate") == 0) {
        return parse_rate(v, &cfg->new_session_rate, &cfg->new_session_burst);
    } else if (strcmp(name, "trust-forwarded-for") == 0) {
        return parse_bool("FERRY_TRUST_FORWARDED_FOR", v, &cfg->trust_forwarded_for);
    } else if (strcmp(name, "require-post-token") == 0) {
        return parse_bool("FERRY_REQUIRE_POST_TOKEN", v, &cfg->require_post_token);
    } else if (strcmp(name, "presence") == 0) {
        return parse_bool("FERRY_PRESENCE", v, &cfg->presence);
    } else if (strcmp(name, "history") == 0) {
        return parse_u32("history", v, 0, 10000, &cfg->history);
    } else if (strcmp(name, "history-events") == 0) {
        return parse_list("--history-events", v, &cfg->history_events);
    } else if (strcmp(name, "history-bytes") == 0) {
        return parse_u32("history bytes", v, 0, 1u << 30, &cfg->history_bytes);
    } else if (strcmp(name, "recovery-ms") == 0) {
        return parse_u32("recovery window", v, 0, 86400000, &cfg->recovery_ms);
    } else if (strcmp(name, "recovery-packets") == 0) {
        return parse_u32("recovery log packets", v, 0, 10000000, &cfg->recovery_packets);
    } else if (strcmp(name, "recovery-bytes") == 0) {
        return parse_u32("recovery log bytes", v, 0, 1u << 30, &cfg->recovery_bytes);
    } else if (strcmp(name, "max-queue-bytes") == 0) {
        return parse_u32("max queue bytes", v, 1024, 1u << 30, &cfg->max_queue_bytes);
    } else if (strcmp(name, "backpressure") == 0) {
        ferry_backpressure p;
        if (ferry_backpressure_parse(v, &p) != 0)
            return bad("backpressure policy", v, "use close, drop-volatile, latest or spill");
        cfg->backpressure = (int)p;
    } else if (strcmp(name, "redis") == 0) {
        if (*v != '\0' && strncmp(v, "redis://", 8) != 0)
            return bad("Redis URL", v, "use redis://host:port");
        cfg->redis_url = *v ? v : NULL;
    } else if (strcmp(name, "redis-sharded") == 0) {
        return parse_bool("FERRY_REDIS_SHARDED", v, &cfg->redis_sharded);
    } else if (strcmp(name, "node-id") == 0) {
        size_t n = strlen(v);
        if (n == 0 || n > 64 || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789._-") != n)
            return bad("node id", v, "use 1 to 64 of A-Z a-z 0-9 . _ -");
        cfg->node_id = v;
    } else if (strcmp(name, "header-timeout") == 0) {
        return parse_u32("header timeout", v, 100, 3600000, &cfg->header_timeout_ms);
    } else if (strcmp(name, "workers") == 0) {
        return parse_u32("number of workers", v, 0, APP_WORKERS_MAX, &cfg->workers);
    } else if (strcmp(name, "node-address") == 0) {
        const char *colon = strrchr(v, ':');
        if (*v != '\0' && (colon == NULL || colon == v || colon[1] == '\0' || strlen(v) > 260))
            return bad("node address", v,
                       "use an IP address or a host name and a port, e.g. 10.0.0.5:8080 or "
                       "web1.internal:8080");
        cfg->node_address = *v ? v : NULL;
    } else if (strcmp(name, "cluster-secret") == 0) {
        if (*v != '\0' && strlen(v) < 16)
            return bad("cluster secret", "...", "use at least 16 characters");
        cfg->cluster_secret = *v ? v : NULL;
    } else if (strcmp(name, "log-level") == 0) {
        return parse_level(v, &cfg->log_level);
    } else if (strcmp(name, "log-format") == 0) {
        if (strcmp(v, "json") == 0)
            cfg->log_json = 1;
        else if (strcmp(v, "text") == 0)
            cfg->log_json = 0;
        else
            return bad("log format", v, "use text or json");
    } else if (strcmp(name, "tls-cert") == 0 || strcmp(name, "tls-key") == 0) {
        return add_tls_file(cfg, name[4] == 'c' ? 0 : 1, v);
    } else if (strcmp(name, "tls-min-version") == 0) {
        if (strcmp(v, "1.2") == 0)
            cfg->tls_min_version = FERRY_TLS_1_2;
        else if (strcmp(v, "1.3") == 0)
            cfg->tls_min_version = FERRY_TLS_1_3;
        else
            return bad("TLS minimum version", v, "use 1.2 or 1.3");
    } else if (strcmp(name, "tls-ciphers") == 0) {
        cfg->tls_ciphers = *v ? v : NULL;
    } else if (strcmp(name, "tls-handshake-timeout") == 0) {
        return parse_u32("TLS handshake timeout", v, 1, 3600000, &cfg->tls_handshake_timeout_ms);
    } else if (strcmp(name, "tls-max-handshakes") == 0) {
        return parse_u32("TLS handshakes in flight", v, 1, 1000000, &cfg->tls_max_handshakes);
    } else if (strcmp(name, "http-port") == 0) {
        if (*v == '\0') {
            cfg->http_port = -1;
            return 0;
        }
        if (parse_u32("http port", v, 0, 65535, &u) != 0)
            return -1;
        cfg->http_port = (int)u;
    } else if (strcmp(name, "metrics-listen") == 0) {
        if (*v == '\0') {
            cfg->metrics_port = -1;
            return 0;
        }
        return parse_listen("metrics listen address", v, cfg->metrics_host,
                            sizeof(cfg->metrics_host), &cfg->metrics_port);
    } else if (strcmp(name, "http-mode") == 0) {
        if (strcmp(v, "redirect") == 0)
            cfg->http_redirect = 1;
        else if (strcmp(v, "serve") == 0)
            cfg->http_redirect = 0;
        else
            return bad("http mode", v, "use redirect or serve");
    } else {
        return 1; /* not a setting with a value */
    }
    return 0;
}

static const struct {
    const char *env;
    const char *name;
} env_names[] = {
    {"FERRY_HOST", "host"},
    {"FERRY_PORT", "port"},
    {"FERRY_PATH", "path"},
    {"FERRY_PING_INTERVAL", "ping-interval"},
    {"FERRY_PING_TIMEOUT", "ping-timeout"},
    {"FERRY_MAX_PAYLOAD", "max-payload"},
    {"FERRY_TRANSPORTS", "transports"},
    {"FERRY_CORS_ORIGINS", "cors-origins"},
    {"FERRY_STATIC", "static"},
    {"FERRY_PUBLISH_TOKEN", "publish-token"},
    {"FERRY_CLIENT_TOKEN", "client-token"},
    {"FERRY_ADMIN_TOKEN", "admin-token"},
    {"FERRY_CLIENT_JS", "client-js"},
    {"FERRY_ALLOW_PUBLISH", "allow-publish"},
    {"FERRY_ALLOW_JOIN", "allow-join"},
    {"FERRY_MAX_ROOMS", "max-rooms"},
    {"FERRY_PUBLISH_RATE", "publish-rate"},
    {"FERRY_NEW_SESSION_RATE", "new-session-rate"},
    {"FERRY_TRUST_FORWARDED_FOR", "trust-forwarded-for"},
    {"FERRY_REQUIRE_POST_TOKEN", "require-post-token"},
    {"FERRY_PRESENCE", "presence"},
    {"FERRY_HISTORY", "history"},
    {"FERRY_HISTORY_EVENTS", "history-events"},
    {"FERRY_HISTORY_BYTES", "history-bytes"},
    {"FERRY_RECOVERY_MS", "recovery-ms"},
    {"FERRY_RECOVERY_PACKETS", "recovery-packets"},
    {"FERRY_RECOVERY_BYTES", "recovery-bytes"},
    {"FERRY_MAX_QUEUE_BYTES", "max-queue-bytes"},
    {"FERRY_BACKPRESSURE", "backpressure"},
    {"FERRY_REDIS", "redis"},
    {"FERRY_REDIS_SHARDED", "redis-sharded"},
    {"FERRY_NODE_ID", "node-id"},
    {"FERRY_HEADER_TIMEOUT", "header-timeout"},
    {"FERRY_WORKERS", "workers"},
    {"FERRY_NODE_ADDRESS", "node-address"},
    {"FERRY_CLUSTER_SECRET", "cluster-secret"},
    {"FERRY_LOG_LEVEL", "log-level"},
    {"FERRY_LOG_FORMAT", "log-format"},
    {"FERRY_TLS_CERT", "tls-cert"},
    {"FERRY_TLS_KEY", "tls-key"},
    {"FERRY_TLS_MIN_VERSION", "tls-min-version"},
    {"FERRY_TLS_CIPHERS", "tls-ciphers"},
    {"FERRY_TLS_HANDSHAKE_TIMEOUT", "tls-handshake-timeout"},
    {"FERRY_TLS_MAX_HANDSHAKES", "tls-max-handshakes"},
    {"FERRY_HTTP_PORT", "http-port"},
    {"FERRY_HTTP_MODE", "http-mode"},
    {"FERRY_METRICS_LISTEN", "metrics-listen"},
};

int app_config_parse(app_config *cfg, int argc, char **argv)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->host = "127.0.0.1";
    cfg->port = 8080;
    cfg->path = "/socket.io/";
    cfg->ping_interval_ms = 25000;
    cfg->ping_timeout_ms = 20000;
    cfg->max_payload = 1000000;
    cfg->max_rooms = 16;
    cfg->publish_rate = 50;
    cfg->presence = 1;
    cfg->history = 50;
    cfg->history_bytes = 16u << 20;
    cfg->recovery_ms = 120000;
    cfg->recovery_bytes = 16u << 20;
    cfg->recovery_packets = 10000;
    cfg->max_queue_bytes = 8u << 20;
    cfg->backpressure = FERRY_BACKPRESSURE_CLOSE;
    cfg->log_level = FERRY_LOG_WARN;
    cfg->header_timeout_ms = 10000;
    cfg->tls_min_version = FERRY_TLS_1_2;
    cfg->tls_handshake_timeout_ms = 10000;
    cfg->tls_max_handshakes = 256;
    cfg->http_port = -1;
    cfg->http_redirect = 1;
    cfg->metrics_port = -1;
    parse_list("--allow-join", "*", &cfg->allow_join);
    parse_list("--history-events", "message", &cfg->history_events);

    /* --suite changes the defaults, so it is applied before anything else. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--suite") == 0) {
            cfg->suite = 1;
            cfg->port = 3000;
            cfg->ping_interval_ms = 300;
            cfg->ping_timeout_ms = 200;
            cfg->recovery_ms = 0; /* the suite checks events without an offset argument */
        }

    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++) {
        const char *v = getenv(env_names[i].env);
        if (v != NULL && strncmp(env_names[i].env, "FERRY_TLS_", 10) == 0 &&
            (strcmp(env_names[i].name, "tls-cert") == 0 ||
             strcmp(env_names[i].name, "tls-key") == 0)) {
            /* A list of files: split in a copy of our own. */
            char *buf = cfg->tls_env_buf[env_names[i].name[4] == 'c' ? 0 : 1];
            if (strlen(v) >= sizeof(cfg->tls_env_buf[0])) {
                fprintf(stderr, "ferry: %s is too long\n", env_names[i].env);
                return -1;
            }
            strcpy(buf, v);
            v = buf;
        }
        if (v != NULL && set(cfg, env_names[i].name, v) < 0) {
            fprintf(stderr, "ferry: (from the environment variable %s)\n", env_names[i].env);
            return -1;
        }
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_usage();
            return 1;
        }
        if (strcmp(a, "--version") == 0) {
            printf("ferry %d.%d.%d\n", FERRY_VERSION_MAJOR, FERRY_VERSION_MINOR,
                   FERRY_VERSION_PATCH);
            return 1;
        }
        if (strcmp(a, "--suite") == 0)
            continue;
        if (strcmp(a, "--no-presence") == 0) {
            cfg->presence = 0;
            continue;
        }
        if (strcmp(a, "--trust-forwarded-for") == 0) {
            cfg->trust_forwarded_for = 1;
            continue;
        }
        if (strcmp(a, "--require-post-token") == 0) {
            cfg->require_post_token = 1;
            continue;
        }
        if (strcmp(a, "--redis-sharded") == 0) {
            cfg->redis_sharded = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "ferry: unexpected argument '%s' (see ferry --help)\n", a);
            return -1;
        }
        /* --name value, or --name=value */
        char name[32];
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        const char *v = eq ? eq + 1 : NULL;
        if (nlen >= sizeof(name) || nlen == 0) {
            fprintf(stderr, "ferry: unknown flag '%s' (see ferry --help)\n", a);
            return -1;
        }
        memcpy(name, a + 2, nlen);
        name[nlen] = '\0';
        int known = 0;
        for (size_t k = 0; k < sizeof(env_names) / sizeof(env_names[0]); k++)
            known |= strcmp(name, env_names[k].name) == 0 && strcmp(name, "presence") != 0 &&
                     strcmp(name, "trust-forwarded-for") != 0 &&
                     strcmp(name, "require-post-token") != 0 &&
                     strcmp(name, "redis-sharded") != 0;
        if (!known) {
            fprintf(stderr, "ferry: unknown flag '%s' (see ferry --help)\n", a);
            return -1;
        }
        if (v == NULL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "ferry: missing value for '%s' (see ferry --help)\n", a);
                return -1;
            }
            v = argv[++i];
        }
        if (set(cfg, name, v) != 0)
            return -1;
    }
    if (cfg->ntls_cert != cfg->ntls_key) {
        fprintf(stderr,
                "ferry: %zu TLS certificate(s) but %zu key(s): give one --tls-key per "
                "--tls-cert, in the same order (see ferry --help)\n",
                cfg->ntls_cert, cfg->ntls_key);
        return -1;
    }
    if (cfg->backpressure == FERRY_BACKPRESSURE_SPILL && cfg->recovery_ms == 0) {
        fprintf(stderr, "ferry: --backpressure spill keeps what a slow client missed in the "
                        "recovery log: it needs --recovery-ms above 0 (see ferry --help)\n");
        return -1;
    }
    if (cfg->redis_sharded && cfg->redis_url == NULL) {
        fprintf(stderr, "ferry: --redis-sharded needs --redis URL (a node of the Redis Cluster, "
                        "or a Redis 7; see docs/scaling.md)\n");
        return -1;
    }
    if (cfg->workers > 0 && cfg->redis_url == NULL) {
        fprintf(stderr, "ferry: --workers needs --redis URL: each worker is a process of its "
                        "own, and only through Redis do they share rooms and broadcasts (see "
                        "docs/scaling.md)\n");
        return -1;
    }
    if (cfg->workers > 0 && cfg->node_id != NULL && strlen(cfg->node_id) > 60) {
        fprintf(stderr, "ferry: with --workers the node id is at most 60 characters (each "
                        "worker adds .wN to it)\n");
        return -1;
    }
    if (cfg->workers > 0 && cfg->http_port >= 0) {
        fprintf(stderr, "ferry: --http-port does not work with --workers yet: serve plain HTTP "
                        "from a proxy in front (see docs/scaling.md)\n");
        return -1;
    }
    if (cfg->http_port >= 0 && cfg->ntls_cert == 0) {
        fprintf(stderr, "ferry: --http-port is for a second, plain port beside TLS: give "
                        "--tls-cert and --tls-key, or use --port alone (see ferry --help)\n");
        return -1;
    }
    return 0;
}
