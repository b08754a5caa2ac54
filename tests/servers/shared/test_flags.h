/* Command-line flags shared by the test servers: the engine settings a Node test sets per
 * server. Each server handles its own flags and passes the rest here. */
#ifndef FERRY_TEST_FLAGS_H
#define FERRY_TEST_FLAGS_H

#include <ferry.h>

/* A comma-separated list of transport names ("polling,websocket,sse,short-polling") as the
 * library's bits (ferry_transport_bit()); an unknown name stops the server (exit 2) with a line
 * on stderr, so a test cannot run on a server it did not ask for. */
unsigned test_parse_transports(const char *list);

/* Apply flag with its value v to cfg. Returns 1 when the flag is one of the engine flags
 * (--path --ping-interval --ping-timeout --max-payload --max-header-bytes --header-timeout
 * --idle-timeout --max-connections --queue-bytes --transports --static --cors
 * --short-poll-interval --sse-keepalive --sse-padding --sse-recycle --ws-deflate
 * --transport-option TRANSPORT.OPTION=VALUE, --log-level error|warn|info|debug), else 0. cfg keeps pointers into v (argv). The
 * transport settings (--sse-*, --ws-deflate, --transport-option) are kept for
 * test_transport_options(). */
int test_engine_flag(ferry_server_config *cfg, const char *flag, const char *v);

/* Set the transport options the flags named on srv (after ferry_server_new(), before
 * listening): ferry_server_transport_option(). Returns 0 or its error, after a line on
 * stderr. */
int test_transport_options(ferry_server *srv);

#endif
