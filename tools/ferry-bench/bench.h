/* ferry-bench: shared declarations of the load generator (tools/ferry-bench).
 *
 * One libuv loop drives N Engine.IO v4 / Socket.IO v5 client sessions against a server (ferry
 * or Node's socket.io) over one transport. Files: main.c (flags, modes, figures, output),
 * client.c (the sessions: HTTP requests, WebSocket frames, SSE events, Engine.IO and
 * Socket.IO packets). docs/performance.md says how make bench uses it. */
#ifndef FERRY_BENCH_H
#define FERRY_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>
#include <uv.h>

#include "common/buf.h"
#include "ws/frame.h"

enum bench_transport { TR_WEBSOCKET, TR_POLLING, TR_SSE, TR_SHORT_POLLING };
enum bench_mode { MODE_CONNECT, MODE_ECHO, MODE_BROADCAST, MODE_WIRE };

typedef struct bench_opts {
    const char *host;
    int port;
    const char *path;
    int transport;
    int mode;
    unsigned sessions;    /* -n */
    unsigned concurrency; /* handshakes at once */
    unsigned inflight;    /* echo: per session; broadcast: publishes not yet delivered to all */
    unsigned size;        /* payload bytes of a message */
    unsigned procs;       /* echo, broadcast: processes the sessions are spread over */
    double duration_s;    /* echo/broadcast run time */
    double hold_s;        /* connect: how long the sessions stay open after the last one;
                             broadcast: how long they stay idle after joining, before the
                             first publish (heartbeats flow meanwhile) */
    const char *sources;  /* --sources: local addresses, taken in turn by the sessions */
    double timeout_s;     /* the whole run, hard */
    uint64_t max_messages; /* echo/broadcast/wire: stop after this many sent (0: no bound) */
    unsigned poll_interval_ms; /* short-polling: 0 = the server's shortPollInterval */
    int pid;                   /* the server's pid for memory and CPU, 0: none */
    int ferry_ext;             /* send ferry=1 on the handshake (always for sse/short-polling) */
    int browser_headers;       /* add the headers a browser sends to every HTTP request */
    const char *json_path;     /* JSON result here ("-": stdout) */
    const char *label;         /* free text copied into the JSON (e.g. "node" or "ferry") */
} bench_opts;

typedef struct conn conn;
typedef struct sess sess;

/* Session states. */
enum { S_IDLE, S_HANDSHAKE, S_OPEN, S_READY, S_DEAD };

struct sess {
    unsigned idx;
    int state;
    char sid[64];
    conn *down; /* WebSocket, or the GET / event-stream connection */
    conn *up;   /* POST connection (not WebSocket) */
    ferry_vec outq; /* upstream packets waiting for a POST, joined by 0x1e */
    int post_busy;
    int get_busy;
    unsigned poll_interval_ms;
    uv_timer_t poll_timer;
    int poll_timer_on;
    uint64_t t_start; /* ns, handshake start */
    unsigned outstanding; /* echo messages not yet answered */
    uint32_t next_ack;
    int joined;
};

/* The shared state of one run (one per process). */
typedef struct bench {
    bench_opts o;
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    struct sockaddr_storage src[64]; /* --sources: session i connects from src[i % nsrc] */
    unsigned nsrc;
    sess *s;
    unsigned n_sess;
    char *pad; /* o.size bytes of 'x', NUL-terminated */
    char hostport[300];
    /* Counters. */
    unsigned started, ready, failed, closed_early;
    uint64_t bytes_in, bytes_out, requests;
    uint64_t sent, received;   /* echo: messages; broadcast: publishes and deliveries */
    uint64_t acks;
    uint64_t pings; /* Engine.IO pings received (and answered) */
    int stopping;   /* no new messages */
    int finishing;  /* the run is over: closing everything */
    char first_error[256];
    /* Samples in microseconds. */
    uint32_t *hs_lat;
    size_t hs_n, hs_cap;
    uint32_t *rt_lat;
    size_t rt_n, rt_cap;
    /* Hooks of the mode driver (main.c). */
    void (*on_ready)(sess *s);
    void (*on_event)(sess *s, const char *name, size_t name_len, const char *rest, size_t len);
    void (*on_ack)(sess *s, uint32_t id, const char *args, size_t len);
    void (*on_dead)(sess *s);
} bench;

extern bench B;

uint64_t now_ns(void);
void sample_add(uint32_t **arr, size_t *n, size_t *cap, uint64_t us);

/* client.c */
void sess_start(sess *s);
/* Send one Engine.IO packet in its text form ("3", "40", "42[...]"). */
void sess_send(sess *s, const char *pkt, size_t len);
void sess_close(sess *s);
void sess_fail(sess *s, const char *why);
const char *transport_name(int t);

#endif
