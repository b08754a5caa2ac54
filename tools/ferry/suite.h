/* tools/ferry --suite: the server that socketio/socket.io-protocol's test-suite expects
 * (PROTOCOL.md): namespaces / and /custom; on connect emit "auth" with the CONNECT payload;
 * in /, "message" is answered by "message-back" with the same arguments and
 * "message-with-ack" is acknowledged with the same arguments. */
#ifndef FERRY_TOOL_SUITE_H
#define FERRY_TOOL_SUITE_H

#include <ferry.h>

int suite_install(ferry_server *srv);

#endif
