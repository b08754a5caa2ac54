/* tools/ferry --workers N: the supervisor, and the workers' listen socket (workers.h).
 *
 * Debian's libuv (1.44) has no UV_TCP_REUSEPORT, so the socket is made here: socket(),
 * SO_REUSEPORT, bind(), then handed to the server (ferry_server_listen_fd()), which listens.
 * Linux spreads the connections of a SO_REUSEPORT group over its listening sockets by a hash
 * of the connection's addresses: each worker gets its share, and a worker that dies takes only
 * its own accept queue with it. */
#include "workers.h"
#include "say.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netinet/in.h>

#include <uv.h>

#define READY_FD 3
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 10000
#define STABLE_MS 30000    /* a worker that ran this long restarts after BACKOFF_FIRST_MS */
#define STOP_GRACE_MS 30000 /* after SIGTERM, a worker still running then gets SIGKILL */

extern char **environ;

#define say(level, ...) tool_say("workers", level, __VA_ARGS__)

int workers_index(void)
{
    const char *v = getenv("FERRY_WORKER_INDEX");
    if (v == NULL)
        return 0;
    char *end;
    long i = strtol(v, &end, 10);
    return *end == '\0' && i >= 1 && i <= APP_WORKERS_MAX ? (int)i : 0;
}

void workers_worker_start(void)
{
    /* The supervisor may have died before this line: then the parent is no longer the one
     * that started us, and no signal will come. */
    const char *pp = getenv("FERRY_WORKER_SUPERVISOR");
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (pp != NULL && (long)getppid() != strtol(pp, NULL, 10))
        raise(SIGTERM);
}

void workers_ready(void)
{
    static const char ready[] = "ready\n";
    ssize_t n;
    do
        n = write(READY_FD, ready, sizeof(ready) - 1);
    while (n < 0 && errno == EINTR);
    close(READY_FD);
}

void workers_ignore_signals(void)
{
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
}

int workers_listen_socket(const char *host, int port, int *fd_out)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        fprintf(stderr, "ferry: --host takes an IPv4 or IPv6 address such as 127.0.0.1 or ::1, "
                        "not '%s'\n", host);
        return UV_EINVAL;
    }
    socklen_t len = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                             : sizeof(struct sockaddr_in);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        fprintf(stderr, "ferry: socket(): %s\n", strerror(e));
        return -e;
    }
    int on = 1;
    const char *step = "SO_REUSEPORT";
    int rc = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
    if (rc == 0) {
        step = "SO_REUSEADDR"; /* as libuv's own bind: a restart is not held by TIME_WAIT */
        rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    }
    if (rc == 0) {
        step = "bind";
        rc = bind(fd, (struct sockaddr *)&ss, len);
    }
    if (rc != 0) {
        int e = errno;
        fprintf(stderr, "ferry: cannot %s %s port %d: %s\n", step,
                strcmp(step, "bind") == 0 ? "to" : "for", port, strerror(e));
        close(fd);
        return -e;
    }
    *fd_out = fd;
    return 0;
}

/* ---------------------------------------------------------------- the supervisor */

typedef struct supervisor supervisor;

typedef struct worker {
    supervisor *sup;
    int index;            /* 1..N */
    uv_process_t proc;
    uv_pipe_t ready_pipe; /* its descriptor 3: "ready" once it listens */
    uv_timer_t restart;
    int open_handles;     /* proc and ready_pipe, until their close callbacks */
    int running;          /* started and not yet exited */
    int ready;            /* said ready since its last start */
    int ever_ready;
    int last_status;      /* exit status of its last run, 128 + signal when killed */
    uint64_t started_ms;
    uint32_t backoff_ms;
    unsigned restarts;
    char buf[16];
} worker;

struct supervisor {
    uv_loop_t *loop;
    const app_config *cfg;
    int argc;
    char **argv;
    char exe[4096];
    char node_base[64];
    int port;
    int reserve_fd; /* bound with SO_REUSEPORT, never listening: holds the port */
    worker *w;
    unsigned n;
    unsigned nready;
    int announced;
    int closing;
    int failed; /* a worker could not start: the exit status is 1 */
    uv_signal_t sig[3];
    uv_timer_t grace;
};

static void on_handle_closed(uv_handle_t *h)
{
    worker *w = h->data;
    w->open_handles--;
}

static int spawn_worker(worker *w);

static void announce(supervisor *s)
{
    const app_config *cfg = s->cfg;
    int v6 = strchr(cfg->host, ':') != NULL;
    printf("ferry: listening on %s://%s%s%s:%d (Socket.IO path %s) with %u worker processes "
           "(--workers, SO_REUSEPORT)\n",
           cfg->ntls_cert > 0 ? "https" : "http", v6 ? "[" : "", cfg->host, v6 ? "]" : "",
           s->port, cfg->path, s->n);
    printf("ferry: workers are cluster nodes %s.w1 to %s.w%u through Redis (--redis); "
           "supervisor pid %ld\n",
           s->node_base, s->node_base, s->n, (long)getpid());
    fflush(stdout);
}

static void close_worker_handles(worker *w)
{
    if (!uv_is_closing((uv_handle_t *)&w->ready_pipe))
        uv_close((uv_handle_t *)&w->ready_pipe, on_handle_closed);
}

static void on_ready_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    worker *w = st->data;
    supervisor *s = w->sup;
    (void)buf;
    if (nread > 0 && memchr(w->buf, '\n', (size_t)nread) != NULL && !w->ready) {
        w->ready = 1;
        w->ever_ready = 1;
        s->nready++;
        if (!s->announced && s->nready == s->n && !s->closing) {
            s->announced = 1;
            announce(s);
        } else if (s->announced) {
            say(FERRY_LOG_INFO, "worker %d (pid %d) is back", w->index, w->proc.pid);
        }
    }
    if (nread != 0) {
        uv_read_stop(st);
        close_worker_handles(w);
    }
}

static void alloc_ready(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    worker *w = h->data;
    (void)size;
    *buf = uv_buf_init(w->buf, sizeof(w->buf));
}

static void maybe_done(supervisor *s)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->w[i].running)
            return;
    /* Every worker has ended: close what is left, and uv_run returns. */
    for (int i = 0; i < 3; i++)
        if (!uv_is_closing((uv_handle_t *)&s->sig[i]))
            uv_close((uv_handle_t *)&s->sig[i], NULL);
    if (!uv_is_closing((uv_handle_t *)&s->grace))
        uv_close((uv_handle_t *)&s->grace, NULL);
    for (unsigned i = 0; i < s->n; i++)
        if (!uv_is_closing((uv_handle_t *)&s->w[i].restart))
            uv_close((uv_handle_t *)&s->w[i].restart, NULL);
}

static void stop_all(supervisor *s, int signum)
{
    if (s->closing)
        return;
    s->closing = 1;
    for (unsigned i = 0; i < s->n; i++) {
        worker *w = &s->w[i];
        uv_timer_stop(&w->restart);
        if (w->running)
            uv_process_kill(&w->proc, signum);
    }
    maybe_done(s);
}

static void on_grace(uv_timer_t *t)
{
    supervisor *s = t->data;
    for (unsigned i = 0; i < s->n; i++)
        if (s->w[i].running) {
            say(FERRY_LOG_ERROR, "worker %d (pid %d) did not end %d s after SIGTERM: SIGKILL",
                s->w[i].index, s->w[i].proc.pid, STOP_GRACE_MS / 1000);
            uv_process_kill(&s->w[i].proc, SIGKILL);
        }
}

static void on_restart(uv_timer_t *t)
{
    worker *w = t->data;
    if (w->sup->closing)
        return;
    if (w->open_handles > 0) { /* its last run's handles are still closing */
        uv_timer_start(&w->restart, on_restart, 10, 0);
        return;
    }
    if (spawn_worker(w) != 0) {
        w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff_ms * 2;
        uv_timer_start(&w->restart, on_restart, w->backoff_ms, 0);
    }
}

static void on_worker_exit(uv_process_t *p, int64_t status, int term_signal)
{
    worker *w = p->data;
    supervisor *s = w->sup;
    w->running = 0;
    w->last_status = term_signal != 0 ? 128 + term_signal : (int)status;
    if (w->ready)
        s->nready--;
    int was_ready = w->ready;
    w->ready = 0;
    uv_close((uv_handle_t *)p, on_handle_closed);
    close_worker_handles(w);
    uint64_t ran_ms = uv_now(s->loop) - w->started_ms;
    if (s->closing) {
        if (w->last_status != 0)
            say(FERRY_LOG_ERROR, "worker %d (pid %d) ended with status %d", w->index, p->pid,
                w->last_status);
        maybe_done(s);
        return;
    }
    char how[64];
    if (term_signal != 0)
        snprintf(how, sizeof(how), "was killed by signal %d (%s)", term_signal,
                 strsignal(term_signal));
    else
        snprintf(how, sizeof(how), "exited with status %d", (int)status);
    if (!w->ever_ready && !was_ready && w->restarts == 0) {
        /* Its first start failed (it printed why): the others would fail alike. */
        say(FERRY_LOG_ERROR, "worker %d (pid %d) %s before it listened: stopping", w->index,
            p->pid, how);
        s->failed = 1;
        stop_all(s, SIGTERM);
        return;
    }
    if (ran_ms >= STABLE_MS)
        w->backoff_ms = BACKOFF_FIRST_MS;
    w->restarts++;
    say(FERRY_LOG_WARN, "worker %d (pid %d, node %s.w%d) %s after %.1f s; restarting it in "
        "%u ms (restart %u)", w->index, p->pid, s->node_base, w->index, how,
        (double)ran_ms / 1000.0, (unsigned)w->backoff_ms, w->restarts);
    uv_timer_start(&w->restart, on_restart, w->backoff_ms, 0);
    w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff_ms * 2;
}

static int spawn_worker(worker *w)
{
    supervisor *s = w->sup;
    /* argv: this program's flags, then the ones that make it worker I (later flags win). */
    char port[16], node[80], index_env[40], sup_env[48], metrics[96];
    snprintf(port, sizeof(port), "%d", s->port);
    snprintf(node, sizeof(node), "%s.w%d", s->node_base, w->index);
    snprintf(index_env, sizeof(index_env), "FERRY_WORKER_INDEX=%d", w->index);
    snprintf(sup_env, sizeof(sup_env), "FERRY_WORKER_SUPERVISOR=%ld", (long)getpid());
    size_t nargs = (size_t)s->argc + 8;
    char **args = calloc(nargs, sizeof(*args));
    size_t nenv = 0;
    while (environ[nenv] != NULL)
        nenv++;
    char **env = calloc(nenv + 3, sizeof(*env));
    if (args == NULL || env == NULL) {
        free(args);
        free(env);
        say(FERRY_LOG_ERROR, "worker %d: out of memory", w->index);
        return -1;
    }
    size_t a = 0;
    args[a++] = s->exe;
    for (int i = 1; i < s->argc; i++)
        args[a++] = s->argv[i];
    args[a++] = "--port";
    args[a++] = port;
    args[a++] = "--node-id";
    args[a++] = node;
    if (s->cfg->metrics_port > 0) {
        /* Each worker has its own metrics: worker I at the given port + I - 1. */
        int v6 = strchr(s->cfg->metrics_host, ':') != NULL;
        snprintf(metrics, sizeof(metrics), "%s%s%s:%d", v6 ? "[" : "", s->cfg->metrics_host,
                 v6 ? "]" : "", s->cfg->metrics_port + w->index - 1);
        args[a++] = "--metrics-listen";
        args[a++] = metrics;
    }
    size_t e = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "FERRY_WORKER_INDEX=", 19) != 0 &&
            strncmp(environ[i], "FERRY_WORKER_SUPERVISOR=", 24) != 0)
            env[e++] = environ[i];
    env[e++] = index_env;
    env[e++] = sup_env;

    uv_stdio_container_t stdio[4];
    stdio[0].flags = UV_INHERIT_FD;
    stdio[0].data.fd = 0;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 1;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    uv_pipe_init(s->loop, &w->ready_pipe, 0);
    w->ready_pipe.data = w;
    w->open_handles++;
    stdio[3].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[3].data.stream = (uv_stream_t *)&w->ready_pipe;

    uv_process_options_t po;
    memset(&po, 0, sizeof(po));
    po.file = s->exe;
    po.args = args;
    po.env = env;
    po.exit_cb = on_worker_exit;
    po.stdio = stdio;
    po.stdio_count = 4;
    /* A session of its own: a terminal's Ctrl-C reaches the supervisor only, which passes it
     * on once (workers_ignore_signals() covers a signal sent to the group anyway). */
    po.flags = UV_PROCESS_DETACHED;
    w->proc.data = w;
    fflush(stdout);
    int rc = uv_spawn(s->loop, &w->proc, &po);
    free(args);
    free(env);
    if (rc != 0) {
        say(FERRY_LOG_ERROR, "cannot start worker %d (%s): %s", w->index, s->exe,
            uv_strerror(rc));
        /* A failed uv_spawn still initialised the handle: close it like the pipe. */
        w->open_handles++;
        uv_close((uv_handle_t *)&w->proc, on_handle_closed);
        close_worker_handles(w);
        return -1;
    }
    w->open_handles++;
    w->running = 1;
    w->started_ms = uv_now(s->loop);
    uv_read_start((uv_stream_t *)&w->ready_pipe, alloc_ready, on_ready_read);
    return 0;
}

static void on_signal(uv_signal_t *sig, int signum)
{
    supervisor *s = sig->data;
    if (signum == SIGHUP) {
        for (unsigned i = 0; i < s->n; i++)
            if (s->w[i].running)
                uv_process_kill(&s->w[i].proc, SIGHUP);
        return;
    }
    if (s->closing)
        return;
    say(FERRY_LOG_INFO, "%s, stopping %u workers", signum == SIGTERM ? "SIGTERM" : "SIGINT",
        s->n);
    stop_all(s, SIGTERM);
    if (!uv_is_closing((uv_handle_t *)&s->grace)) /* workers still ending */
        uv_timer_start(&s->grace, on_grace, STOP_GRACE_MS, 0);
}

static void random_base(char *out, size_t size)
{
    unsigned char r[4] = {0};
    uint64_t t = uv_hrtime() ^ ((uint64_t)getpid() << 32);
    if (uv_random(NULL, NULL, r, sizeof(r), 0, NULL) != 0)
        memcpy(r, &t, sizeof(r));
    snprintf(out, size, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
}

int workers_supervise(const app_config *cfg, int argc, char **argv)
{
    supervisor s;
    memset(&s, 0, sizeof(s));
    tool_say_json(cfg->log_json);
    s.cfg = cfg;
    s.argc = argc;
    s.argv = argv;
    s.n = cfg->workers;
    s.reserve_fd = -1;
    size_t size = sizeof(s.exe);
    if (uv_exepath(s.exe, &size) != 0) {
        say(FERRY_LOG_ERROR, "--workers: cannot find this program's path");
        return 1;
    }
    if (cfg->node_id != NULL)
        snprintf(s.node_base, sizeof(s.node_base), "%s", cfg->node_id);
    else
        random_base(s.node_base, sizeof(s.node_base));
    if (cfg->metrics_port > 0 && cfg->metrics_port + (int)s.n - 1 > 65535) {
        say(FERRY_LOG_ERROR, "--metrics-listen: worker %u would need port %d", s.n,
            cfg->metrics_port + (int)s.n - 1);
        return 2;
    }
    /* The port, held for the supervisor's life: --port 0 picks it here. */
    if (workers_listen_socket(cfg->host, cfg->port, &s.reserve_fd) != 0)
        return 1;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(s.reserve_fd, (struct sockaddr *)&bound, &blen) != 0) {
        say(FERRY_LOG_ERROR, "getsockname: %s", strerror(errno));
        close(s.reserve_fd);
        return 1;
    }
    s.port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (cfg->metrics_port == 0)
        say(FERRY_LOG_INFO, "--metrics-listen port 0: each worker picks its own metrics port");

    s.w = calloc(s.n, sizeof(*s.w));
    if (s.w == NULL) {
        close(s.reserve_fd);
        return 1;
    }
    uv_loop_t *loop = uv_default_loop();
    s.loop = loop;
    static const int signums[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(loop, &s.sig[i]);
        s.sig[i].data = &s;
        uv_signal_start(&s.sig[i], on_signal, signums[i]);
    }
    uv_timer_init(loop, &s.grace);
    s.grace.data = &s;
    for (unsigned i = 0; i < s.n; i++) {
        worker *w = &s.w[i];
        w->sup = &s;
        w->index = (int)i + 1;
        w->backoff_ms = BACKOFF_FIRST_MS;
        uv_timer_init(loop, &w->restart);
        w->restart.data = w;
    }
    for (unsigned i = 0; i < s.n && !s.closing; i++)
        if (spawn_worker(&s.w[i]) != 0) {
            s.failed = 1;
            stop_all(&s, SIGTERM);
        }
    if (s.closing)
        maybe_done(&s);
    uv_run(loop, UV_RUN_DEFAULT);
    int status = s.failed ? 1 : 0;
    for (unsigned i = 0; i < s.n; i++)
        if (s.w[i].last_status != 0 && status == 0)
            status = 1;
    free(s.w);
    close(s.reserve_fd);
    if (uv_loop_close(loop) != 0)
        status = status != 0 ? status : 1;
    return status;
}
