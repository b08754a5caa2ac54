/* ferry-bench: a load generator and meter for any Engine.IO v4 / Socket.IO v5 server (ferry,
 * Node's socket.io), over websocket, polling, sse or short-polling. `ferry-bench --help` lists
 * the flags; docs/performance.md explains the figures and how make bench uses them.
 *
 * Modes:
 *   connect    open N sessions (at most --concurrency handshakes at once): rate, handshake
 *              latency; with --pid the server's memory per session (VmRSS, and RssAnon) and CPU per
 *              connection; then hold them --hold seconds: the server's wake-ups per second.
 *   echo       N sessions each keep --inflight messages in flight: emit "message" (one string
 *              argument, --size bytes) and wait for "message-back" with the same argument.
 *              Round-trip p50/p99/p999, messages per second, server CPU per message.
 *   broadcast  N receivers and one sender join room "bench" (emit "join" {room}, acked); the
 *              sender emits "publish" {room, event:"m", data}, every receiver gets "m" data.
 *              --inflight publishes may wait for their last receiver. Deliveries per second and
 *              the time until the last receiver has a message. --procs N spreads the
 *              receivers over N processes (forked; they count into shared memory and tell
 *              the sender's process of a publish every receiver has through a pipe).
 *              Echo takes --procs N too: the sessions are spread over N processes that start
 *              and stop together, so that the load client is not what bounds messages/s.
 *   wire       echo with one message in flight on one session (by default): bytes on the
 *              wire per message each direction (HTTP headers included), requests per message.
 * Every mode is bounded by --duration / --messages and by --timeout; only loopback addresses
 * unless --allow-remote. The result is a table on stdout, and JSON with --json FILE. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bench.h"

bench B;

static const char usage[] =
    "usage: ferry-bench [flags]\n"
    "  --host ADDR          server address, an IP literal (127.0.0.1)\n"
    "  --port N             server port (8080)\n"
    "  --path P             Engine.IO path (/socket.io/)\n"
    "  --transport T        websocket | polling | sse | short-polling (websocket)\n"
    "  --mode M             connect | echo | broadcast | wire (echo)\n"
    "  -n, --sessions N     sessions (connect 100, echo 100, broadcast 100 receivers, wire 1)\n"
    "  --concurrency N      handshakes in progress at once (100)\n"
    "  --inflight N         echo: messages in flight per session (1); broadcast: publishes\n"
    "                       not yet delivered to every receiver (4)\n"
    "  --size N             payload bytes of a message (32)\n"
    "  --duration S         echo/broadcast run time in seconds (5)\n"
    "  --procs N            echo, broadcast: spread the sessions (receivers) over N\n"
    "                       processes (1), so that the client is not what limits the rate\n"
    "  --messages N         stop after N messages sent (echo/broadcast: none; wire: 100;\n"
    "                       echo with --procs: N split between the processes)\n"
    "  --hold S             connect: keep the sessions open S seconds and count the\n"
    "                       server's wake-ups (0); broadcast: keep them idle S seconds\n"
    "                       after joining, before the first publish (pings counted)\n"
    "  --sources LIST       local addresses (e.g. 127.0.0.2,127.0.0.3) the sessions\n"
    "                       connect from in turn, so that more sessions than one\n"
    "                       address's ephemeral ports reach one port (10,000 each)\n"
    "  --timeout S          hard bound of the whole run (120)\n"
    "  --poll-interval MS   short-polling: GET interval (the server's shortPollInterval)\n"
    "  --pid PID            the server's process: memory per session and CPU per message\n"
    "  --ferry              ask for ferry's extensions (ferry=1) on polling/websocket too\n"
    "  --browser-headers    add the headers a browser sends to every HTTP request\n"
    "  --json FILE          also write the result as JSON (- for stdout)\n"
    "  --label TEXT         copied into the JSON (e.g. ferry or node)\n"
    "  --allow-remote       allow a non-loopback server address\n";

/* ---------------------------------------------------------------- helpers */

uint64_t now_ns(void)
{
    return uv_hrtime();
}

void sample_add(uint32_t **arr, size_t *n, size_t *cap, uint64_t us)
{
    if (*n == *cap) {
        if (*cap >= (64u << 20))
            return; /* 256 MB of samples: enough */
        size_t nc = *cap ? *cap * 2 : 4096;
        uint32_t *p = realloc(*arr, nc * sizeof(**arr));
        if (p == NULL)
            return;
        *arr = p;
        *cap = nc;
    }
    (*arr)[(*n)++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of sorted samples, in microseconds; -1 when there are none. */
static double quantile(const uint32_t *a, size_t n, double q)
{
    if (n == 0)
        return -1;
    size_t i = (size_t)ceil(q * (double)n);
    if (i > 0)
        i--;
    if (i >= n)
        i = n - 1;
    return a[i];
}

/* ---------------------------------------------------------------- the server's process */

typedef struct proc_sample {
    int ok;
    uint64_t cpu_ns;   /* user + system of every thread, from schedstat */
    uint64_t rss_kb;   /* VmRSS */
    /* RssAnon: VmRSS less the file-backed pages (code and libraries paged in the first time
     * a path runs: a fixed cost that does not grow with the sessions) and shared memory. */
    uint64_t anon_kb;
    uint64_t switches; /* voluntary + involuntary context switches of every thread */
    uint64_t user_ticks, sys_ticks; /* utime and stime of /proc/PID/stat (clock ticks) */
} proc_sample;

static int read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return 0;
}

static uint64_t status_field(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static proc_sample proc_read(int pid)
{
    proc_sample ps = {0};
    if (pid <= 0)
        return ps;
    char path[64], text[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if (read_file(path, text, sizeof(text)) != 0)
        return ps;
    ps.rss_kb = status_field(text, "VmRSS:");
    ps.anon_kb = status_field(text, "RssAnon:");
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (read_file(path, text, sizeof(text)) == 0) {
        /* After the command's closing parenthesis: state is field 3, utime 14, stime 15. */
        const char *q = strrchr(text, ')');
        unsigned long long ut = 0, st = 0;
        if (q != NULL && sscanf(q + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                                &ut, &st) == 2) {
            ps.user_ticks = ut;
            ps.sys_ticks = st;
        }
    }
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return ps;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p2[128];
        snprintf(p2, sizeof(p2), "/proc/%d/task/%.20s/schedstat", pid, e->d_name);
        if (read_file(p2, text, sizeof(text)) == 0)
            ps.cpu_ns += strtoull(text, NULL, 10);
        snprintf(p2, sizeof(p2), "/proc/%d/task/%.20s/status", pid, e->d_name);
        if (read_file(p2, text, sizeof(text)) == 0)
            ps.switches += status_field(text, "\nvoluntary_ctxt_switches:") +
                           status_field(text, "nonvoluntary_ctxt_switches:");
    }
    closedir(d);
    ps.ok = 1;
    return ps;
}

static uint64_t self_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

/* ---------------------------------------------------------------- the run */

enum { PH_CONNECT, PH_JOIN, PH_RUN, PH_DRAIN, PH_HOLD, PH_DONE };

static struct {
    int phase;
    unsigned next_start; /* next session to start */
    unsigned in_handshake;
    uv_timer_t deadline, phase_timer;
    uint64_t t0, t_connected, t_run, t_run_end, t_last_recv;
    proc_sample p_before, p_connected, p_run, p_run_end, p_hold_end;
    uint64_t self_cpu_run;
    uint64_t bytes_in0, bytes_out0, requests0;
    uint64_t bytes_in1, bytes_out1, requests1;
    unsigned joined;
    int timed_out;
    uint64_t kids_cpu_ns; /* --procs: the other processes' CPU during the run */
    uint64_t run_cpu_ns;  /* this process's CPU during the run (echo: until the drain) */
    /* broadcast */
    struct slot {
        uint64_t seq, t;
        unsigned count;
        int used;
    } *slots;
    unsigned outstanding;
    uint64_t next_seq, completed;
    uint64_t expected_deliveries;
} R;

static void finish(void);
static void run_start(void);

/* ---------------------------------------------------------------- several processes
 *
 * Broadcast with --procs N: process 0 (the one started) keeps the sender and the first share
 * of the receivers, N-1 forked processes the other shares. They share one mapping: how many
 * sessions have joined, each publish's count of receivers that have it, a stop flag, and each
 * process's figures, written as it exits. The receiver that completes a publish in another
 * process writes its number (8 bytes) to a pipe that process 0 reads; process 0 polls the
 * mapping every millisecond only while waiting for the joins, and the others poll the stop
 * flag every 5 ms.
 *
 * Echo with --procs N: each process has a share of the sessions. Once every session of every
 * process is open (joined counts them), process 0 sets go and runs the clock; each process
 * polls go every millisecond and starts its share. When the run's time is up process 0 sets
 * halt: each process stops sending, says so (live[].halted) and keeps reading the answers;
 * process 0 ends the run once every process halted and every message sent came back (live[]
 * counters, written by their own process only), or 2 s later. Round trips are copied into the
 * mapping (samples) when a process exits. */

#define MAX_PROCS 64
/* Echo: round-trip samples each process hands back (the pages are touched only as used). */
#define PROC_SAMPLES (1u << 21)

typedef struct proc_figures {
    unsigned ready, failed, closed_early;
    uint64_t pings;
    uint64_t sent, received, bytes_in, bytes_out, requests, cpu_run_ns;
    size_t nsamples; /* echo: round trips in the process's part of the samples */
} proc_figures;

/* A process's live echo counters, each on its own cache line (one writer). */
typedef struct live_counters {
    _Alignas(64) _Atomic uint64_t sent;
    _Atomic uint64_t received;
    _Atomic uint64_t t_last; /* ns, the last answer */
    atomic_int halted;
} live_counters;

typedef struct shared {
    atomic_uint joined;
    atomic_int stop, abort;
    atomic_int go, halt; /* echo: start sending; stop sending */
    char first_error[256];
    proc_figures fig[MAX_PROCS];
    live_counters live[MAX_PROCS];
    struct {
        _Atomic uint64_t seq;
        atomic_uint count;
    } slots[]; /* --inflight of them */
} shared;

static struct {
    unsigned idx, n;      /* this process's index, and how many there are */
    unsigned lo, hi;      /* this process's sessions [lo, hi) */
    shared *sh;
    int pipe_fd[2];       /* completions: others write, process 0 reads */
    pid_t kids[MAX_PROCS];
    uv_pipe_t notify;
    uv_timer_t poll;
    char carry[8];
    size_t ncarry;
    uint64_t self_cpu0;
    uint32_t *samples; /* echo: MAX_PROCS x PROC_SAMPLES, shared */
} P;

static void bc_complete(uint64_t seq, uint64_t now);

/* Broadcast: every receiver has joined. With --hold the sessions first stay idle that long
 * (heartbeats go on; a session lost meanwhile ends the run as lost), then publishing starts. */
static int bc_holding;

static void on_hold_done(uv_timer_t *t)
{
    (void)t;
    run_start();
}

static void bc_go(void)
{
    if (bc_holding)
        return;
    if (B.o.hold_s > 0) {
        bc_holding = 1;
        uv_timer_start(&R.phase_timer, on_hold_done, (uint64_t)(B.o.hold_s * 1000), 0);
        return;
    }
    run_start();
}

static void on_finish_timer(uv_timer_t *t)
{
    finish();
}

static unsigned receivers(void)
{
    return B.o.mode == MODE_BROADCAST ? B.n_sess - 1 : B.n_sess;
}

static void start_more(void)
{
    while (R.phase == PH_CONNECT && R.in_handshake < B.o.concurrency &&
           R.next_start < P.hi) {
        R.in_handshake++;
        sess_start(&B.s[R.next_start++]);
    }
}

static void check_connected(void)
{
    if (R.phase != PH_CONNECT || B.ready + B.failed < P.hi - P.lo)
        return;
    R.t_connected = now_ns();
    R.p_connected = proc_read(B.o.pid);
    if (B.ready == 0 || (B.o.mode != MODE_CONNECT && B.failed > 0)) {
        finish();
        return;
    }
    if (B.o.mode == MODE_CONNECT) {
        R.phase = PH_HOLD;
        uv_timer_start(&R.phase_timer, on_finish_timer, (uint64_t)(B.o.hold_s * 1000), 0);
        return;
    }
    if (B.o.mode == MODE_BROADCAST) {
        R.phase = PH_JOIN;
        for (unsigned i = P.lo; i < P.hi; i++) {
            char pkt[128];
            sess *s = &B.s[i];
            int n = snprintf(pkt, sizeof(pkt), "42%u[\"join\",{\"room\":\"bench\",\"members\":false}]", ++s->next_ack);
            sess_send(s, pkt, (size_t)n);
        }
        return;
    }
    if (P.sh != NULL) {
        /* Echo over several processes: all start together (on_poll). */
        R.phase = PH_JOIN;
        R.joined = B.ready;
        atomic_fetch_add(&P.sh->joined, B.ready);
        return;
    }
    run_start();
}

static void on_ready(sess *s)
{
    R.in_handshake--;
    start_more();
    check_connected();
}

static void on_dead(sess *s)
{
    if (R.phase == PH_CONNECT) {
        R.in_handshake--;
        start_more();
        check_connected();
    } else if (R.phase == PH_RUN || R.phase == PH_JOIN) {
        finish(); /* a session lost in the middle invalidates the figures */
    }
    (void)s;
}

/* ---- echo */

static void echo_send(sess *s)
{
    if (B.stopping || s->state != S_READY)
        return;
    if (B.o.max_messages && B.sent >= B.o.max_messages) {
        B.stopping = 1;
        return;
    }
    char stackbuf[2048];
    size_t cap = (size_t)B.o.size + 96;
    char *pkt = cap <= sizeof(stackbuf) ? stackbuf : malloc(cap);
    if (pkt == NULL)
        return;
    int n = snprintf(pkt, cap, "42[\"message\",\"%llu:%u:%s\"]",
                     (unsigned long long)(now_ns() / 1000), s->idx, B.pad);
    if (n > 0 && (size_t)n < cap) {
        s->outstanding++;
        B.sent++;
        if (P.sh != NULL)
            atomic_store_explicit(&P.sh->live[P.idx].sent, B.sent, memory_order_relaxed);
        sess_send(s, pkt, (size_t)n);
    }
    if (pkt != stackbuf)
        free(pkt);
}

/* Echo over several processes: has every process stopped sending, and every message it sent
 * come back? Then the latest answer anywhere. */
static int procs_drained(uint64_t *t_last)
{
    *t_last = 0;
    for (unsigned k = 0; k < P.n; k++) {
        live_counters *l = &P.sh->live[k];
        if (k != 0 && !atomic_load(&l->halted))
            return 0;
        if (atomic_load(&l->received) < atomic_load(&l->sent))
            return 0;
        uint64_t t = atomic_load(&l->t_last);
        if (t > *t_last)
            *t_last = t;
    }
    return 1;
}

static void drain_check(void)
{
    if (R.phase != PH_DRAIN)
        return;
    if (B.o.mode == MODE_BROADCAST) {
        if (R.outstanding == 0)
            finish();
        return;
    }
    if (P.sh == NULL) {
        if (B.received >= B.sent)
            finish();
        return;
    }
    uint64_t t_last;
    if (P.idx == 0 && procs_drained(&t_last)) {
        if (t_last > R.t_last_recv)
            R.t_last_recv = t_last;
        finish();
    }
}

static void echo_event(sess *s, const char *name, size_t nlen, const char *rest, size_t len)
{
    if (nlen != 12 || memcmp(name, "message-back", 12) != 0)
        return;
    if (len < 3 || rest[0] != ',' || rest[1] != '"')
        return;
    uint64_t t = strtoull(rest + 2, NULL, 10);
    uint64_t now = now_ns();
    if (R.phase != PH_RUN && R.phase != PH_DRAIN)
        return;
    B.received++;
    R.t_last_recv = now;
    if (P.sh != NULL) {
        atomic_store_explicit(&P.sh->live[P.idx].received, B.received, memory_order_relaxed);
        atomic_store_explicit(&P.sh->live[P.idx].t_last, now, memory_order_relaxed);
    }
    if (s->outstanding > 0)
        s->outstanding--;
    sample_add(&B.rt_lat, &B.rt_n, &B.rt_cap, now / 1000 - t);
    if (R.phase == PH_RUN)
        echo_send(s);
    if (B.stopping && R.phase == PH_RUN && B.received >= B.sent && P.sh == NULL) {
        R.phase = PH_DRAIN;
        R.t_run_end = now;
    }
    if (P.sh == NULL || P.idx == 0)
        drain_check();
}

/* ---- broadcast */

static void bc_publish(void)
{
    sess *snd = &B.s[0];
    while (!B.stopping && R.outstanding < B.o.inflight && snd->state == S_READY) {
        if (B.o.max_messages && B.sent >= B.o.max_messages) {
            B.stopping = 1;
            break;
        }
        uint64_t seq = R.next_seq++;
        struct slot *sl = &R.slots[seq % B.o.inflight];
        if (sl->used)
            break;
        sl->used = 1;
        sl->seq = seq;
        sl->count = 0;
        sl->t = now_ns();
        if (P.sh != NULL) {
            atomic_store(&P.sh->slots[seq % B.o.inflight].count, 0);
            atomic_store(&P.sh->slots[seq % B.o.inflight].seq, seq);
        }
        char stackbuf[2048];
        size_t cap = (size_t)B.o.size + 160;
        char *pkt = cap <= sizeof(stackbuf) ? stackbuf : malloc(cap);
        if (pkt == NULL)
            return;
        int n = snprintf(pkt, cap,
                         "42%u[\"publish\",{\"room\":\"bench\",\"event\":\"m\",\"data\":"
                         "\"%llu:%llu:%s\"}]",
                         ++snd->next_ack, (unsigned long long)(sl->t / 1000),
                         (unsigned long long)seq, B.pad);
        R.outstanding++;
        B.sent++;
        sess_send(snd, pkt, (size_t)n);
        if (pkt != stackbuf)
            free(pkt);
    }
}

static void bc_event(sess *s, const char *name, size_t nlen, const char *rest, size_t len)
{
    if (nlen != 1 || name[0] != 'm' || len < 3 || rest[0] != ',' || rest[1] != '"')
        return;
    if (R.phase != PH_RUN && R.phase != PH_DRAIN)
        return;
    char *p;
    strtoull(rest + 2, &p, 10); /* the publish time: the sender's slot has it */
    if (*p != ':')
        return;
    uint64_t seq = strtoull(p + 1, NULL, 10);
    uint64_t now = now_ns();
    B.received++;
    R.t_last_recv = now;
    if (P.sh != NULL) {
        /* Counted across the processes; the one that completes the publish tells process 0. */
        unsigned i = (unsigned)(seq % B.o.inflight);
        if (atomic_load(&P.sh->slots[i].seq) != seq ||
            atomic_fetch_add(&P.sh->slots[i].count, 1) + 1 < receivers())
            return;
        if (P.idx == 0) {
            bc_complete(seq, now);
        } else if (write(P.pipe_fd[1], &seq, sizeof(seq)) != (ssize_t)sizeof(seq)) {
            atomic_store(&P.sh->abort, 1);
        }
        return;
    }
    struct slot *sl = &R.slots[seq % B.o.inflight];
    if (!sl->used || sl->seq != seq)
        return;
    if (++sl->count < receivers())
        return;
    bc_complete(seq, now);
}

/* Every receiver has publish seq. */
static void bc_complete(uint64_t seq, uint64_t now)
{
    struct slot *sl = &R.slots[seq % B.o.inflight];
    if (!sl->used || sl->seq != seq)
        return;
    if (R.phase != PH_RUN && R.phase != PH_DRAIN)
        return;
    sl->used = 0;
    R.outstanding--;
    R.completed++;
    sample_add(&B.rt_lat, &B.rt_n, &B.rt_cap, (now - sl->t) / 1000);
    if (R.phase == PH_RUN) {
        bc_publish();
        if (B.stopping && R.outstanding == 0) {
            R.phase = PH_DRAIN;
            R.t_run_end = now;
        }
    }
    drain_check();
}

static void bc_ack(sess *s, uint32_t id, const char *args, size_t len)
{
    if (R.phase != PH_JOIN || s->joined)
        return;
    s->joined = 1;
    if (++R.joined < P.hi - P.lo)
        return;
    if (P.sh == NULL) {
        bc_go();
        return;
    }
    /* This process's share has joined: the others are counted in the mapping. */
    P.self_cpu0 = self_cpu_ns();
    R.bytes_in0 = B.bytes_in;
    R.bytes_out0 = B.bytes_out;
    R.requests0 = B.requests;
    atomic_fetch_add(&P.sh->joined, R.joined);
    if (P.idx != 0)
        R.phase = PH_RUN; /* count what arrives; process 0 runs the clock */
    (void)id;
    (void)args;
    (void)len;
}

/* ---- several processes */

static void child_exit(int failed)
{
    proc_figures *f = &P.sh->fig[P.idx];
    f->ready = B.ready;
    f->failed = B.failed;
    f->closed_early = B.closed_early;
    f->pings = B.pings;
    f->sent = B.sent;
    f->received = B.received;
    if (P.samples != NULL) {
        f->nsamples = B.rt_n < PROC_SAMPLES ? B.rt_n : PROC_SAMPLES;
        memcpy(P.samples + (size_t)P.idx * PROC_SAMPLES, B.rt_lat, f->nsamples * sizeof(uint32_t));
    }
    f->bytes_in = B.bytes_in - R.bytes_in0;
    f->bytes_out = B.bytes_out - R.bytes_out0;
    f->requests = B.requests - R.requests0;
    f->cpu_run_ns = R.run_cpu_ns ? R.run_cpu_ns : P.self_cpu0 ? self_cpu_ns() - P.self_cpu0 : 0;
    if (failed) {
        if (!P.sh->first_error[0])
            snprintf(P.sh->first_error, sizeof(P.sh->first_error), "process %u: %.200s", P.idx,
                     B.first_error[0] ? B.first_error : "failed");
        atomic_store(&P.sh->abort, 1);
    }
    fflush(stdout);
    _exit(0); /* the kernel closes the connections */
}

static void child_run_start(void);

static void on_poll(uv_timer_t *t)
{
    if (P.idx != 0) {
        if (atomic_load(&P.sh->stop))
            child_exit(0);
        if (B.o.mode != MODE_ECHO)
            return;
        if (R.phase == PH_JOIN && atomic_load(&P.sh->go))
            child_run_start();
        if (R.phase == PH_RUN && atomic_load(&P.sh->halt)) {
            B.stopping = 1;
            R.phase = PH_DRAIN;
            R.run_cpu_ns = self_cpu_ns() - P.self_cpu0;
            atomic_store(&P.sh->live[P.idx].halted, 1);
        }
        return;
    }
    if (atomic_load(&P.sh->abort)) {
        if (!B.first_error[0])
            snprintf(B.first_error, sizeof(B.first_error), "%s", P.sh->first_error);
        B.closed_early++; /* the run is not valid */
        finish();
        return;
    }
    if (R.phase == PH_JOIN && R.joined == P.hi - P.lo && atomic_load(&P.sh->joined) == B.n_sess) {
        /* From now on only for a failed process, and (echo) for the drain. */
        uv_timer_set_repeat(&P.poll, B.o.mode == MODE_ECHO ? 1 : 10);
        if (B.o.mode == MODE_ECHO)
            run_start();
        else
            bc_go();
        return;
    }
    if (B.o.mode == MODE_ECHO)
        drain_check();
}

static void on_notify_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char b[4096];
    buf->base = b;
    buf->len = sizeof(b);
}

/* Publishes completed in another process: 8-byte numbers, in any split. */
static void on_notify(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    if (nread <= 0)
        return;
    uint64_t now = now_ns();
    for (ssize_t i = 0; i < nread; i++) {
        P.carry[P.ncarry++] = buf->base[i];
        if (P.ncarry == sizeof(uint64_t)) {
            uint64_t seq;
            memcpy(&seq, P.carry, sizeof(seq));
            P.ncarry = 0;
            bc_complete(seq, now);
        }
    }
}

/* Wait for the other processes and add their figures to this one's. */
static void collect_children(void)
{
    atomic_store(&P.sh->stop, 1);
    for (unsigned k = 1; k < P.n; k++) {
        int st;
        while (waitpid(P.kids[k], &st, 0) < 0 && errno == EINTR) {
        }
        proc_figures *f = &P.sh->fig[k];
        B.ready += f->ready;
        B.failed += f->failed;
        B.closed_early += f->closed_early;
        B.pings += f->pings;
        B.received += f->received;
        if (B.o.mode == MODE_ECHO) {
            B.sent += f->sent;
            const uint32_t *a = P.samples + (size_t)k * PROC_SAMPLES;
            for (size_t i = 0; i < f->nsamples; i++)
                sample_add(&B.rt_lat, &B.rt_n, &B.rt_cap, a[i]);
        }
        R.bytes_in1 += f->bytes_in;
        R.bytes_out1 += f->bytes_out;
        R.requests1 += f->requests;
        R.kids_cpu_ns += f->cpu_run_ns;
    }
    if (atomic_load(&P.sh->abort) && !B.first_error[0])
        snprintf(B.first_error, sizeof(B.first_error), "%s", P.sh->first_error);
}

/* Fork the other processes; each returns from here with its share of the sessions. */
static int spread(void)
{
    /* Process k has sessions [off + k*S/n, off + (k+1)*S/n): none is empty (n <= S, checked
     * with the flags), shares differ by one at most. Broadcast: session 0, the sender, stays
     * in process 0 besides its share. */
    unsigned off = B.o.mode == MODE_BROADCAST ? 1 : 0;
    uint64_t S = B.o.sessions;
    /* Echo: --messages bounds the whole run, so each process sends its part of it. */
    if (B.o.mode == MODE_ECHO && B.o.max_messages)
        B.o.max_messages = (B.o.max_messages + P.n - 1) / P.n;
    size_t size = sizeof(shared) + B.o.inflight * sizeof(P.sh->slots[0]);
    P.sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (P.sh == MAP_FAILED || pipe(P.pipe_fd) != 0) {
        fprintf(stderr, "ferry-bench: --procs: %s\n", strerror(errno));
        return -1;
    }
    if (B.o.mode == MODE_ECHO) {
        P.samples = mmap(NULL, (size_t)MAX_PROCS * PROC_SAMPLES * sizeof(uint32_t),
                         PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1,
                         0);
        if (P.samples == MAP_FAILED) {
            fprintf(stderr, "ferry-bench: --procs: %s\n", strerror(errno));
            return -1;
        }
    }
    fflush(stdout);
    for (unsigned k = 1; k < P.n; k++) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "ferry-bench: fork: %s\n", strerror(errno));
            return -1;
        }
        if (pid == 0) {
            P.idx = k;
            P.lo = off + (unsigned)(k * S / P.n);
            P.hi = off + (unsigned)((k + 1) * S / P.n);
            close(P.pipe_fd[0]);
            B.o.json_path = NULL;
            B.o.timeout_s += 30; /* process 0 ends the run */
            return 0;
        }
        P.kids[k] = pid;
    }
    P.lo = 0;
    P.hi = off + (unsigned)(S / P.n);
    close(P.pipe_fd[1]);
    return 0;
}

/* ---- phases */

static void on_run_timer(uv_timer_t *t)
{
    if (R.phase != PH_RUN)
        return;
    B.stopping = 1;
    R.phase = PH_DRAIN;
    R.t_run_end = now_ns();
    if (P.sh != NULL && B.o.mode == MODE_ECHO) {
        R.run_cpu_ns = self_cpu_ns() - R.self_cpu_run;
        atomic_store(&P.sh->halt, 1);
    }
    /* What is in flight may arrive for 2 more seconds, then the run ends anyway. */
    uv_timer_start(&R.phase_timer, on_finish_timer, 2000, 0);
    drain_check();
}

static void run_start(void)
{
    R.phase = PH_RUN;
    R.p_run = proc_read(B.o.pid);
    R.self_cpu_run = self_cpu_ns();
    R.bytes_in0 = B.bytes_in;
    R.bytes_out0 = B.bytes_out;
    R.requests0 = B.requests;
    R.t_run = now_ns();
    if (B.o.mode != MODE_WIRE || B.o.max_messages == 0)
        uv_timer_start(&R.phase_timer, on_run_timer, (uint64_t)(B.o.duration_s * 1000), 0);
    else
        uv_timer_start(&R.phase_timer, on_run_timer, (uint64_t)(B.o.timeout_s * 1000), 0);
    if (B.o.mode == MODE_BROADCAST) {
        bc_publish();
        return;
    }
    if (P.sh != NULL)
        atomic_store(&P.sh->go, 1);
    for (unsigned k = 0; k < B.o.inflight; k++)
        for (unsigned i = P.lo; i < P.hi; i++)
            echo_send(&B.s[i]);
}

/* Echo, a process other than 0: its share starts when process 0 says go. */
static void child_run_start(void)
{
    R.phase = PH_RUN;
    P.self_cpu0 = self_cpu_ns();
    R.bytes_in0 = B.bytes_in;
    R.bytes_out0 = B.bytes_out;
    R.requests0 = B.requests;
    for (unsigned k = 0; k < B.o.inflight; k++)
        for (unsigned i = P.lo; i < P.hi; i++)
            echo_send(&B.s[i]);
}

static void on_deadline(uv_timer_t *t)
{
    R.timed_out = 1;
    if (!B.first_error[0])
        snprintf(B.first_error, sizeof(B.first_error), "--timeout reached in phase %d",
                 R.phase);
    finish();
}

/* ---------------------------------------------------------------- output */

static double per(double a, double b)
{
    return b > 0 ? a / b : 0;
}

static void put_num(cJSON *o, const char *k, double v)
{
    cJSON_AddNumberToObject(o, k, round(v * 1000) / 1000);
}

static cJSON *lat_json(uint32_t *a, size_t n)
{
    if (n > 1)
        qsort(a, n, sizeof(*a), cmp_u32);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "count", (double)n);
    put_num(o, "p50_us", quantile(a, n, 0.50));
    put_num(o, "p99_us", quantile(a, n, 0.99));
    put_num(o, "p999_us", quantile(a, n, 0.999));
    put_num(o, "max_us", n ? (double)a[n - 1] : -1.0);
    return o;
}

static void print_row(const char *k, const char *fmt_unit, double v)
{
    printf("  %-34s %14.2f %s\n", k, v, fmt_unit);
}

static void report(void)
{
    cJSON *o = cJSON_CreateObject();
    static const char *modes[] = {"connect", "echo", "broadcast", "wire"};
    cJSON_AddStringToObject(o, "mode", modes[B.o.mode]);
    cJSON_AddStringToObject(o, "transport", transport_name(B.o.transport));
    if (B.o.label)
        cJSON_AddStringToObject(o, "label", B.o.label);
    cJSON_AddNumberToObject(o, "sessions", B.n_sess);
    cJSON_AddNumberToObject(o, "size", B.o.size);
    cJSON_AddNumberToObject(o, "inflight", B.o.inflight);
    cJSON_AddNumberToObject(o, "ready", B.ready);
    cJSON_AddNumberToObject(o, "failed", B.failed);
    cJSON_AddNumberToObject(o, "closed_early", B.closed_early);
    cJSON_AddNumberToObject(o, "pings", (double)B.pings);
    cJSON_AddBoolToObject(o, "ok", !R.timed_out && B.failed == 0 && B.closed_early == 0);
    if (B.first_error[0])
        cJSON_AddStringToObject(o, "error", B.first_error);

    printf("ferry-bench %s over %s: %u sessions (%u ready, %u failed, %u lost)%s%s\n",
           modes[B.o.mode], transport_name(B.o.transport), B.n_sess, B.ready, B.failed,
           B.closed_early, B.first_error[0] ? "; first error: " : "", B.first_error);

    double connect_s = (double)(R.t_connected - R.t0) / 1e9;
    cJSON *c = cJSON_AddObjectToObject(o, "connect");
    put_num(c, "seconds", connect_s);
    put_num(c, "rate_per_s", per(B.ready, connect_s));
    cJSON_AddItemToObject(c, "handshake", lat_json(B.hs_lat, B.hs_n));
    print_row("connections per second", "/s", per(B.ready, connect_s));
    print_row("handshake p50", "us", quantile(B.hs_lat, B.hs_n, 0.5));
    print_row("handshake p99", "us", quantile(B.hs_lat, B.hs_n, 0.99));
    if (R.p_before.ok && R.p_connected.ok && B.ready > 0 && P.n <= 1) {
        double kb = per((double)R.p_connected.rss_kb - (double)R.p_before.rss_kb, B.ready);
        double anon = per((double)R.p_connected.anon_kb - (double)R.p_before.anon_kb, B.ready);
        double cpu = per((double)(R.p_connected.cpu_ns - R.p_before.cpu_ns) / 1000, B.ready);
        put_num(c, "server_rss_before_kb", (double)R.p_before.rss_kb);
        put_num(c, "server_rss_after_kb", (double)R.p_connected.rss_kb);
        put_num(c, "server_kb_per_session", kb);
        put_num(c, "server_anon_before_kb", (double)R.p_before.anon_kb);
        put_num(c, "server_anon_after_kb", (double)R.p_connected.anon_kb);
        put_num(c, "server_anon_kb_per_session", anon);
        put_num(c, "server_cpu_us_per_connection", cpu);
        print_row("server memory per session (VmRSS)", "KB", kb);
        print_row("server memory per session (RssAnon)", "KB", anon);
        print_row("server CPU per connection", "us", cpu);
    }
    if (B.o.mode == MODE_CONNECT && R.p_hold_end.ok && B.o.hold_s > 0) {
        double secs = (double)(R.t_run_end - R.t_connected) / 1e9;
        double w = per((double)(R.p_hold_end.switches - R.p_connected.switches), secs);
        double cpu = per((double)(R.p_hold_end.cpu_ns - R.p_connected.cpu_ns) / 1e6, secs);
        put_num(c, "hold_seconds", secs);
        put_num(c, "server_wakeups_per_s", w);
        put_num(c, "server_idle_cpu_ms_per_s", cpu);
        print_row("server wake-ups while idle", "/s", w);
        print_row("server CPU while idle", "ms/s", cpu);
    }

    if (B.o.mode != MODE_CONNECT && R.t_run) {
        uint64_t end = R.t_run_end ? R.t_run_end : now_ns();
        double secs = (double)(end - R.t_run) / 1e9;
        cJSON *r = cJSON_AddObjectToObject(o, B.o.mode == MODE_BROADCAST ? "broadcast" : "echo");
        put_num(r, "seconds", secs);
        cJSON_AddNumberToObject(r, "sent", (double)B.sent);
        cJSON_AddNumberToObject(r, "received", (double)B.received);
        double cpu_ns = R.p_run_end.ok ? (double)(R.p_run_end.cpu_ns - R.p_run.cpu_ns) : 0;
        double self = (double)((R.run_cpu_ns ? R.run_cpu_ns : self_cpu_ns() - R.self_cpu_run) +
                               R.kids_cpu_ns);
        if (B.o.mode == MODE_BROADCAST) {
            cJSON_AddNumberToObject(r, "receivers", receivers());
            cJSON_AddNumberToObject(r, "completed", (double)R.completed);
            cJSON_AddNumberToObject(r, "expected_deliveries", (double)(B.sent * receivers()));
            put_num(r, "deliveries_per_s", per((double)B.received, secs));
            cJSON_AddItemToObject(r, "last_receiver", lat_json(B.rt_lat, B.rt_n));
            print_row("publishes", "", (double)B.sent);
            print_row("deliveries", "", (double)B.received);
            print_row("deliveries per second", "/s", per((double)B.received, secs));
            print_row("time to last receiver p50", "us", quantile(B.rt_lat, B.rt_n, 0.5));
            print_row("time to last receiver p99", "us", quantile(B.rt_lat, B.rt_n, 0.99));
            if (R.p_run_end.ok) {
                put_num(r, "server_cpu_us_per_delivery", per(cpu_ns / 1000, (double)B.received));
                print_row("server CPU per delivery", "us", per(cpu_ns / 1000, (double)B.received));
                /* The user-space share: what ferry's own code costs, apart from the kernel's
                 * socket work (steadier than the total on a shared machine). */
                double tick_us = 1e6 / (double)sysconf(_SC_CLK_TCK);
                double user = (double)(R.p_run_end.user_ticks - R.p_run.user_ticks) * tick_us;
                double sys = (double)(R.p_run_end.sys_ticks - R.p_run.sys_ticks) * tick_us;
                put_num(r, "server_user_us_per_delivery", per(user, (double)B.received));
                put_num(r, "server_sys_us_per_delivery", per(sys, (double)B.received));
                print_row("server user CPU per delivery", "us", per(user, (double)B.received));
                print_row("server kernel CPU per delivery", "us", per(sys, (double)B.received));
            }
        } else {
            put_num(r, "messages_per_s", per((double)B.received, secs));
            cJSON_AddItemToObject(r, "round_trip", lat_json(B.rt_lat, B.rt_n));
            print_row("messages sent", "", (double)B.sent);
            print_row("messages received", "", (double)B.received);
            print_row("messages per second", "/s", per((double)B.received, secs));
            print_row("round trip p50", "us", quantile(B.rt_lat, B.rt_n, 0.5));
            print_row("round trip p99", "us", quantile(B.rt_lat, B.rt_n, 0.99));
            print_row("round trip p999", "us", quantile(B.rt_lat, B.rt_n, 0.999));
            if (R.p_run_end.ok) {
                put_num(r, "server_cpu_us_per_message", per(cpu_ns / 1000, (double)B.received));
                print_row("server CPU per message", "us", per(cpu_ns / 1000, (double)B.received));
            }
        }
        put_num(r, "client_cpu_us_per_message", per(self / 1000, (double)B.received));
        print_row(B.o.mode == MODE_BROADCAST ? "client CPU per delivery" : "client CPU per message",
                  "us", per(self / 1000, (double)B.received));
        cJSON_AddNumberToObject(r, "client_processes", P.n ? P.n : 1);
        /* Who bounds the rate: the CPU each side used during the run, in cores (1.0: one
         * core busy the whole run). A server near 1.0 (one loop) is the limit; a client near
         * its process count is. */
        put_num(r, "client_cpu_cores", per(self / 1e9, secs));
        print_row("load client CPU used", "cores", per(self / 1e9, secs));
        if (R.p_run_end.ok) {
            put_num(r, "server_cpu_s", cpu_ns / 1e9);
            put_num(r, "server_cpu_cores", per(cpu_ns / 1e9, secs));
            print_row("server CPU used", "cores", per(cpu_ns / 1e9, secs));
        }
        /* The wire: both directions, HTTP headers included, per message (echo: one message
         * each way; broadcast: per delivery). */
        double msgs = (double)B.received;
        cJSON *w = cJSON_AddObjectToObject(o, "wire");
        double up = (double)(R.bytes_out1 - R.bytes_out0), down = (double)(R.bytes_in1 - R.bytes_in0);
        double reqs = (double)(R.requests1 - R.requests0);
        cJSON_AddNumberToObject(w, "messages", msgs);
        cJSON_AddNumberToObject(w, "bytes_up", up);
        cJSON_AddNumberToObject(w, "bytes_down", down);
        cJSON_AddNumberToObject(w, "requests", reqs);
        put_num(w, "up_bytes_per_message", per(up, msgs));
        put_num(w, "down_bytes_per_message", per(down, msgs));
        put_num(w, "requests_per_message", per(reqs, msgs));
        put_num(w, "payload_bytes", B.o.size);
        print_row("wire: bytes up per message", "B", per(up, msgs));
        print_row("wire: bytes down per message", "B", per(down, msgs));
        print_row("wire: HTTP requests per message", "", per(reqs, msgs));
    }

    if (B.o.json_path != NULL) {
        char *text = cJSON_Print(o);
        if (strcmp(B.o.json_path, "-") == 0) {
            printf("%s\n", text);
        } else {
            FILE *f = fopen(B.o.json_path, "w");
            if (f == NULL) {
                fprintf(stderr, "ferry-bench: cannot write %s: %s\n", B.o.json_path,
                        strerror(errno));
            } else {
                fprintf(f, "%s\n", text);
                fclose(f);
            }
        }
        cJSON_free(text);
    }
    cJSON_Delete(o);
}

static void finish(void)
{
    if (P.sh != NULL && P.idx != 0)
        child_exit(1);
    if (R.phase == PH_DONE)
        return;
    int phase = R.phase;
    R.phase = PH_DONE;
    uint64_t now = now_ns();
    if (!R.t_connected)
        R.t_connected = now;
    if (phase == PH_HOLD) {
        R.t_run_end = now;
        R.p_hold_end = proc_read(B.o.pid);
    }
    if (R.t_run) {
        if (!R.t_run_end)
            R.t_run_end = now;
        /* When every reply came, the run ends with the last one. */
        if (phase == PH_DRAIN && R.t_last_recv > R.t_run_end)
            R.t_run_end = R.t_last_recv;
        R.p_run_end = proc_read(B.o.pid);
        R.bytes_in1 = B.bytes_in;
        R.bytes_out1 = B.bytes_out;
        R.requests1 = B.requests;
    }
    if (P.sh != NULL) {
        collect_children();
        uv_close((uv_handle_t *)&P.poll, NULL);
        uv_close((uv_handle_t *)&P.notify, NULL);
    }
    B.finishing = 1;
    report();
    fflush(stdout);
    for (unsigned i = 0; i < B.n_sess; i++) {
        if (B.s[i].state != S_IDLE) {
            B.s[i].state = S_DEAD;
            sess_close(&B.s[i]);
        }
    }
    uv_close((uv_handle_t *)&R.deadline, NULL);
    uv_close((uv_handle_t *)&R.phase_timer, NULL);
}

/* ---------------------------------------------------------------- flags */

static int parse_uint(const char *flag, const char *v, unsigned long long max,
                      unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || end == v || x > max || v[0] == '-') {
        fprintf(stderr, "ferry-bench: %s wants a whole number up to %llu, not '%s'\n", flag, max,
                v);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_seconds(const char *flag, const char *v, double max, double *out)
{
    char *end;
    double x = strtod(v, &end);
    if (*end || end == v || !(x >= 0 && x <= max)) {
        fprintf(stderr, "ferry-bench: %s wants seconds from 0 to %g, not '%s'\n", flag, max, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
    static const unsigned char one[16] = {[15] = 1};
    return memcmp(&in6->sin6_addr, one, 16) == 0;
}

/* --sources into B.src / B.nsrc. Returns 0, or -1 with a message when an entry is not an IP
 * address. */
static int parse_sources(void)
{
    if (B.o.sources == NULL)
        return 0;
    char buf[1024];
    if (strlen(B.o.sources) >= sizeof(buf)) {
        fprintf(stderr, "ferry-bench: --sources: too long\n");
        return -1;
    }
    strcpy(buf, B.o.sources);
    struct sockaddr_storage *list = B.src;
    unsigned n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        if (n == 64 || (uv_ip4_addr(t, 0, (struct sockaddr_in *)&list[n]) != 0 &&
                        uv_ip6_addr(t, 0, (struct sockaddr_in6 *)&list[n]) != 0)) {
            fprintf(stderr, "ferry-bench: --sources takes up to 64 IP addresses, not '%s'\n", t);
            return -1;
        }
        n++;
    }
    if (n == 0) {
        fprintf(stderr, "ferry-bench: --sources: no address\n");
        return -1;
    }
    B.nsrc = n;
    return 0;
}

static int parse_flags(int argc, char **argv)
{
    bench_opts *o = &B.o;
    o->host = "127.0.0.1";
    o->port = 8080;
    o->path = "/socket.io/";
    o->transport = TR_WEBSOCKET;
    o->mode = MODE_ECHO;
    o->concurrency = 100;
    o->size = 32;
    o->duration_s = 5;
    o->timeout_s = 120;
    unsigned long long n_sess = 0, inflight = 0, messages = 0, v;
    int have_messages = 0, allow_remote = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        if (strcmp(a, "--ferry") == 0) {
            o->ferry_ext = 1;
            continue;
        }
        if (strcmp(a, "--browser-headers") == 0) {
            o->browser_headers = 1;
            continue;
        }
        if (strcmp(a, "--allow-remote") == 0) {
            allow_remote = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "ferry-bench: unknown flag or missing value: '%s' (see --help)\n", a);
            return -1;
        }
        const char *val = argv[++i];
        int rc = 0;
        if (strcmp(a, "--host") == 0) {
            o->host = val;
        } else if (strcmp(a, "--port") == 0) {
            rc = parse_uint(a, val, 65535, &v);
            o->port = (int)v;
        } else if (strcmp(a, "--path") == 0) {
            o->path = val;
            if (val[0] != '/' || strlen(val) > 200 || strpbrk(val, " \r\n?#")) {
                fprintf(stderr, "ferry-bench: --path must start with / (at most 200 bytes)\n");
                return -1;
            }
        } else if (strcmp(a, "--transport") == 0) {
            int t = -1;
            for (int k = 0; k < 4; k++)
                if (strcmp(val, transport_name(k)) == 0)
                    t = k;
            if (t < 0) {
                fprintf(stderr, "ferry-bench: --transport: websocket, polling, sse or "
                                "short-polling, not '%s'\n",
                        val);
                return -1;
            }
            o->transport = t;
        } else if (strcmp(a, "--mode") == 0) {
            static const char *modes[] = {"connect", "echo", "broadcast", "wire"};
            int m = -1;
            for (int k = 0; k < 4; k++)
                if (strcmp(val, modes[k]) == 0)
                    m = k;
            if (m < 0) {
                fprintf(stderr, "ferry-bench: --mode: connect, echo, broadcast or wire, not '%s'\n",
                        val);
                return -1;
            }
            o->mode = m;
        } else if (strcmp(a, "-n") == 0 || strcmp(a, "--sessions") == 0) {
            rc = parse_uint(a, val, 1000000, &n_sess);
        } else if (strcmp(a, "--concurrency") == 0) {
            rc = parse_uint(a, val, 100000, &v);
            o->concurrency = (unsigned)v;
        } else if (strcmp(a, "--inflight") == 0) {
            rc = parse_uint(a, val, 100000, &inflight);
        } else if (strcmp(a, "--size") == 0) {
            rc = parse_uint(a, val, 1 << 20, &v);
            o->size = (unsigned)v;
        } else if (strcmp(a, "--procs") == 0) {
            rc = parse_uint(a, val, MAX_PROCS, &v);
            o->procs = (unsigned)v;
        } else if (strcmp(a, "--duration") == 0) {
            rc = parse_seconds(a, val, 3600, &o->duration_s);
        } else if (strcmp(a, "--hold") == 0) {
            rc = parse_seconds(a, val, 3600, &o->hold_s);
        } else if (strcmp(a, "--sources") == 0) {
            o->sources = val;
        } else if (strcmp(a, "--timeout") == 0) {
            rc = parse_seconds(a, val, 86400, &o->timeout_s);
        } else if (strcmp(a, "--messages") == 0) {
            rc = parse_uint(a, val, 1ull << 40, &messages);
            have_messages = 1;
        } else if (strcmp(a, "--poll-interval") == 0) {
            rc = parse_uint(a, val, 600000, &v);
            o->poll_interval_ms = (unsigned)v;
        } else if (strcmp(a, "--pid") == 0) {
            rc = parse_uint(a, val, 1u << 30, &v);
            o->pid = (int)v;
        } else if (strcmp(a, "--json") == 0) {
            o->json_path = val;
        } else if (strcmp(a, "--label") == 0) {
            o->label = val;
        } else {
            fprintf(stderr, "ferry-bench: unknown flag '%s' (see --help)\n", a);
            return -1;
        }
        if (rc != 0)
            return -1;
    }
    if (o->concurrency == 0)
        o->concurrency = 1;
    if (n_sess == 0)
        n_sess = o->mode == MODE_WIRE ? 1 : 100;
    if (inflight == 0)
        inflight = o->mode == MODE_BROADCAST ? 4 : 1;
    o->sessions = (unsigned)n_sess;
    if (o->procs == 0)
        o->procs = 1;
    if (o->procs > 1 && ((o->mode != MODE_BROADCAST && o->mode != MODE_ECHO) ||
                         o->procs > n_sess)) {
        fprintf(stderr, "ferry-bench: --procs is for echo and broadcast, at most one per "
                        "session (receiver)\n");
        return -1;
    }
    o->inflight = (unsigned)inflight;
    o->max_messages = have_messages ? messages : o->mode == MODE_WIRE ? 100 : 0;
    if (o->mode == MODE_WIRE)
        o->duration_s = o->timeout_s;

    int rc = uv_ip4_addr(o->host, o->port, (struct sockaddr_in *)&B.addr);
    if (rc != 0)
        rc = uv_ip6_addr(o->host, o->port, (struct sockaddr_in6 *)&B.addr);
    if (rc != 0) {
        fprintf(stderr, "ferry-bench: --host takes an IP address such as 127.0.0.1, not '%s'\n",
                o->host);
        return -1;
    }
    if (!allow_remote && !is_loopback(&B.addr)) {
        fprintf(stderr, "ferry-bench: %s is not a loopback address; pass --allow-remote to load "
                        "a server on another machine\n",
                o->host);
        return -1;
    }
    if (parse_sources() != 0)
        return -1;
    int v6 = strchr(o->host, ':') != NULL;
    snprintf(B.hostport, sizeof(B.hostport), "%s%s%s:%d", v6 ? "[" : "", o->host, v6 ? "]" : "",
             o->port);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = parse_flags(argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    B.n_sess = B.o.sessions + (B.o.mode == MODE_BROADCAST ? 1 : 0);
    P.n = B.o.procs;
    P.lo = 0;
    P.hi = B.n_sess;
    if (P.n > 1 && spread() != 0)
        return 1;
    srand((unsigned)(time(NULL) ^ getpid()));
    B.loop = uv_default_loop();
    B.s = calloc(B.n_sess, sizeof(*B.s));
    B.pad = malloc((size_t)B.o.size + 1);
    if (B.o.mode == MODE_BROADCAST)
        R.slots = calloc(B.o.inflight, sizeof(*R.slots));
    if (B.s == NULL || B.pad == NULL || (B.o.mode == MODE_BROADCAST && R.slots == NULL)) {
        fprintf(stderr, "ferry-bench: out of memory\n");
        return 1;
    }
    memset(B.pad, 'x', B.o.size);
    B.pad[B.o.size] = '\0';
    for (unsigned i = 0; i < B.n_sess; i++)
        B.s[i].idx = i;
    B.on_ready = on_ready;
    B.on_dead = on_dead;
    B.on_event = B.o.mode == MODE_BROADCAST ? bc_event : echo_event;
    B.on_ack = bc_ack;

    uv_timer_init(B.loop, &R.deadline);
    uv_timer_init(B.loop, &R.phase_timer);
    uv_timer_start(&R.deadline, on_deadline, (uint64_t)(B.o.timeout_s * 1000), 0);
    R.p_before = proc_read(B.o.pid);
    if (B.o.pid && !R.p_before.ok)
        fprintf(stderr, "ferry-bench: cannot read /proc/%d: no server figures\n", B.o.pid);
    if (P.sh != NULL) {
        uv_timer_init(B.loop, &P.poll);
        uv_timer_start(&P.poll, on_poll, 1, P.idx == 0 || B.o.mode == MODE_ECHO ? 1 : 5);
        if (P.idx == 0) {
            uv_pipe_init(B.loop, &P.notify, 0);
            uv_pipe_open(&P.notify, P.pipe_fd[0]);
            uv_read_start((uv_stream_t *)&P.notify, on_notify_alloc, on_notify);
        }
    }
    R.t0 = now_ns();
    R.phase = PH_CONNECT;
    R.next_start = P.lo;
    start_more();

    uv_run(B.loop, UV_RUN_DEFAULT);
    int ok = !R.timed_out && B.failed == 0 && B.closed_early == 0 && B.ready == B.n_sess;
    for (unsigned i = 0; i < B.n_sess; i++)
        ferry_vec_free(&B.s[i].outq);
    free(B.s);
    free(B.pad);
    free(R.slots);
    free(B.hs_lat);
    free(B.rt_lat);
    uv_loop_close(B.loop);
    return ok ? 0 : 1;
}
