/* The server's metrics in the Prometheus text exposition format (ferry.h "metrics"): the
 * engine's and the HTTP layer's counters, read at scrape time, plus what only the root can
 * measure (the loop's lag, the process). Owned by the server; created by the first
 * ferry_server_metrics*() call. One loop: no locks. */
#ifndef FERRY_SERVER_METRICS_H
#define FERRY_SERVER_METRICS_H

#include "common/strbuf.h"
#include "ferry.h"

typedef struct ferry_metrics ferry_metrics;

/* The server's metrics object, created on first use (the lag timer starts then); NULL when
 * out of memory. */
ferry_metrics *ferry_metrics_get(ferry_server *srv);
/* Write the exposition into sb (fixed capacity: check ferry_strbuf_error()). */
void ferry_metrics_render(ferry_metrics *m, ferry_strbuf *sb);
/* The server closes: close the lag timer and the metrics listener; done(srv) runs once both
 * are closed (on a later loop turn). */
void ferry_metrics_close(ferry_metrics *m, void (*done)(ferry_server *srv));
/* Free it (after done ran). */
void ferry_metrics_free(ferry_metrics *m);

#endif
