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
    unsigned transports;       /* FERRY_TRANSPORT_* bits; 0: the library's default */
    const char *cors_origins;  /* NULL: no CORS */
    const char *static_root;   /* NULL: no static files */
    const char *publish_token; /* NULL: POST /api/publish refuses every request */
    const char *client_js;     /* NULL: look for socket.io-client's bundle in node_modules */
    app_list allow_publish;    /* events clients may publish; empty: none */
    app_list allow_join;       /* rooms clients may join; default "*" */
    unsigned max_rooms;        /* 16: rooms one socket may be in (besides its own) */
    uint32_t publish_rate; /* 50: publishes per second per client (burst as many); 0: no limit */
    int presence;          /* 1: tell rooms who joins and leaves */
    int suite;             /* 1: the socket.io-protocol test suite's server */
    ferry_log_level log_level; /* warn */
} app_config;

/* Parse env and argv into cfg. Returns 0 to run, 1 when --help or --version was printed
 * (exit 0), -1 after printing an error to stderr (exit 2). */
int app_config_parse(app_config *cfg, int argc, char **argv);

/* Does the list allow name (exact entry, prefix pattern "x*", or "*")? */
int app_list_match(const app_list *l, const char *name);

#endif
