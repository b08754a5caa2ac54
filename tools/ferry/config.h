/* tools/ferry's settings: parsed from environment variables first, then command-line flags
 * (a flag wins over its variable). Every string points into argv, the environment or static
 * storage, so nothing here needs freeing. */
#ifndef FERRY_TOOL_CONFIG_H
#define FERRY_TOOL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <ferry.h>

/* A comma-separated list split into at most APP_LIST_MAX entries. An entry ending in '*' is a
 * prefix pattern; "*" alone matches anything. */
#define APP_LIST_MAX 64
#define APP_NAME_MAX 128
#define APP_TLS_MAX 16 /* certificates (SNI) */
#define APP_WORKERS_MAX 64

typedef struct app_list {
    char buf[4096];
    const char *item[APP_LIST_MAX];
    size_t n;
} app_list;

typedef struct app_config {
    const char *host;          /* 127.0.0.1 */
    int port;                  /* 8080; 0 picks a free one */
    const char *path;          /* /socket.io/ */
    uint32_t ping_interval_ms; /* 25000 */
    uint32_t ping_timeout_ms;  /* 20000 */
    uint32_t max_payload;      /* 1000000: bytes per HTTP body or WebSocket message */
    unsigned transports;       /* bits of ferry_transport_bit(); 0: every transport */
    const char *cors_origins;  /* NULL: no CORS */
    const char *static_root;   /* NULL: no static files */
    const char *publish_token; /* NULL: POST /api/publish refuses every request */
    const char *client_token;  /* NULL: any client may connect; else its Engine.IO handshake
                                  must carry it (admit.c) */
    const char *admin_token;   /* NULL: no admin page; else /ferry/admin with this token */
    const char *client_js;     /* NULL: look for socket.io-client's bundle in node_modules */
    app_list allow_publish;    /* events clients may publish; empty: none */
    app_list allow_join;       /* rooms clients may join; default "*" */
    unsigned max_rooms;        /* 16: rooms one socket may be in (besides its own) */
    uint32_t publish_rate; /* 50: publishes per second per client (burst as many); 0: no limit */
    int presence;          /* 1: tell rooms who joins and leaves */
    uint32_t new_session_rate;  /* 0: no limit; else new sessions per second per address */
    uint32_t new_session_burst; /* 0: as new_session_rate */
    int trust_forwarded_for;    /* 1: the rate counts the last X-Forwarded-For address */
    int require_post_token;     /* 1: POSTs carry their session's token (X-Ferry-Post-Token) */
    uint32_t history;          /* 50: publishes kept per room for joiners; 0: none */
    uint32_t history_bytes;    /* 16 MiB: the history of all rooms together */
    app_list history_events;   /* events kept in the history; default "message" */
    uint32_t recovery_ms;  /* 120000: connection-state recovery window; 0: off (--suite: 0) */
    uint32_t recovery_bytes;   /* 16 MiB: the byte bound of each namespace's recovery log */
    uint32_t recovery_packets; /* 10000: its count bound */
    uint32_t max_queue_bytes; /* 8 MiB: bytes queued per client before the policy acts */
    int backpressure;         /* ferry_backpressure: FERRY_BACKPRESSURE_CLOSE */
    int suite;             /* 1: the socket.io-protocol test suite's server */
    const char *redis_url; /* NULL: one node; else a cluster node through this Redis */
    int redis_sharded;     /* --redis-sharded: SSUBSCRIBE/SPUBLISH (Redis Cluster, Redis 7) */
    const char *node_id;   /* NULL: random */
    uint32_t workers;      /* 0: one process; else a supervisor of this many workers */
    uint32_t header_timeout_ms; /* 10000: a request must arrive within this (408) */
    const char *node_address;   /* NULL: --host:port (127.0.0.1 for a wildcard --host) */
    const char *cluster_secret; /* NULL: a key derived from the Redis URL */
    ferry_log_level log_level; /* warn */
    int log_json;              /* --log-format json: JSON Lines on stderr */
    /* TLS: with certificates, --port speaks TLS (https, wss). The first pair is the default
     * certificate, the others are chosen by SNI. */
    const char *tls_cert[APP_TLS_MAX];
    const char *tls_key[APP_TLS_MAX];
    size_t ntls_cert, ntls_key;
    int tls_min_version;      /* FERRY_TLS_1_2 */
    const char *tls_ciphers;  /* NULL: the library's default */
    uint32_t tls_handshake_timeout_ms; /* 10000 */
    uint32_t tls_max_handshakes;       /* 256 in flight */
    int http_port;            /* -1: none; else also listen for plain HTTP on this port */
    int http_redirect;        /* 1: the http port redirects to https; 0: it serves */
    char metrics_host[64];    /* --metrics-listen HOST:PORT: /metrics on a listener of its own */
    int metrics_port;         /* -1: no metrics listener */
    char tls_env_buf[2][4096]; /* FERRY_TLS_CERT / FERRY_TLS_KEY split into names */
    int tls_flag_seen[2];      /* a --tls-cert / --tls-key flag replaced the variable's list */
} app_config;

/* Parse env and argv into cfg. Returns 0 to run, 1 when --help or --version was printed
 * (exit 0), -1 after printing an error to stderr (exit 2). */
int app_config_parse(app_config *cfg, int argc, char **argv);

/* Does the list allow name (exact entry, prefix pattern "x*", or "*")? */
int app_list_match(const app_list *l, const char *name);

#endif
