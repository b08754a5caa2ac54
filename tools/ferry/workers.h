/* tools/ferry --workers N: a supervisor process and N worker processes serving one port.
 *
 * The supervisor binds the port with SO_REUSEPORT (keeping it, not listening, so that --port 0
 * picks one port for all and a restarted worker finds it free), then starts N copies of this
 * program with the same flags plus --port PORT and --node-id BASE.wI, and the environment
 * variable FERRY_WORKER_INDEX=I. Each worker opens its own SO_REUSEPORT socket on that port
 * (workers_listen_socket()), so the kernel spreads new connections over the workers, and is a
 * cluster node through --redis. A worker tells the supervisor it listens by writing "ready" on
 * descriptor 3 (workers_ready()). The supervisor restarts a worker that exits (with backoff and
 * a log line), passes SIGTERM, SIGINT and SIGHUP on, and exits 0 once every worker ended with 0
 * after a SIGTERM/SIGINT. */
#ifndef FERRY_TOOL_WORKERS_H
#define FERRY_TOOL_WORKERS_H

#include "config.h"

/* 0 in a process that is no worker, else this worker's index (1..N) from FERRY_WORKER_INDEX. */
int workers_index(void);

/* Run the supervisor of cfg->workers workers until they end: the process's exit status. */
int workers_supervise(const app_config *cfg, int argc, char **argv);

/* A TCP socket bound to host:port with SO_REUSEPORT (not listening yet) in *fd. Returns 0 or a
 * negative errno-style code (UV_E*), with a message on stderr. */
int workers_listen_socket(const char *host, int port, int *fd);

/* In a worker, first thing: receive SIGTERM if the supervisor dies without stopping it. */
void workers_worker_start(void);

/* In a worker: tell the supervisor it listens (descriptor 3). */
void workers_ready(void);

/* In a worker, after its first SIGTERM/SIGINT: ignore the next ones (the supervisor also
 * passes a terminal's Ctrl-C on), so that the clean shutdown under way is not cut short. */
void workers_ignore_signals(void);

#endif
