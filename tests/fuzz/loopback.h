/* A ferry server on a private libuv loop in the fuzzing process, reached over real loopback TCP,
 * for the targets that drive the whole request path (lib/http, the router, lib/engine,
 * transports): the input goes in as a client's bytes, in pieces chosen by the input, and the
 * loop runs between pieces so that every piece is parsed as a read of its own.
 *
 * The server lives for the whole process (libFuzzer calls the target many times); sessions die
 * by their own short ping timeouts. Client sockets are closed with a reset (SO_LINGER 0) so
 * that tens of thousands of runs leave no TIME_WAIT behind. */
#ifndef FERRY_TESTS_FUZZ_LOOPBACK_H
#define FERRY_TESTS_FUZZ_LOOPBACK_H

#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

typedef struct lb_bytes {
    char *data;
    size_t len, cap;
} lb_bytes;

void lb_bytes_put(lb_bytes *b, const void *p, size_t n);
void lb_bytes_free(lb_bytes *b);

/* The server, started on first use with the given transports; every session echoes messages
 * back and, if set, on_session sees each new one. */
ferry_server *lb_server(void (*on_session)(ferry_session *s));
/* A connected client socket (non-blocking) or abort. */
int lb_connect(void);
/* Write all of p (running the loop while the socket is full), then run the loop. */
void lb_send(int fd, const void *p, size_t n);
/* Run the loop and read what the server wrote, until rounds pass with nothing new (at least
 * min_rounds). Returns 0, or -1 once the server closed the connection. */
int lb_pump(int fd, lb_bytes *out, int rounds);
/* Reset the connection and let the server see it. */
void lb_close(int fd);
/* Open a session on transport ("polling", "sse", "short-polling"): the handshake on its own
 * connection, answered with a sid copied to sid (at least 32 bytes). For sse, *stream is the
 * connection that carries the stream (else -1 and the connection is closed). Returns 0, or -1
 * when the handshake did not succeed. */
int lb_open_session(const char *transport, char *sid, int *stream);
/* Copy in to out replacing every "SID" by sid. */
void lb_subst_sid(const uint8_t *in, size_t n, const char *sid, lb_bytes *out);
/* Every response on a connection starts with a status line "HTTP/1.1 NNN ". Abort if not. */
void lb_check_response(const lb_bytes *b);

#endif
