/* socket.io-client's browser bundle, served by tools/ferry at CLIENTJS_PATH and, as Node's
 * Socket.IO server does, at <engine path>socket.io.js and socket.io.min.js, so that pages on
 * the static folder, or pages written for Node's server, can load it (until ferry's own
 * client exists). Both names get the minified bundle. */
#ifndef FERRY_TOOL_CLIENTJS_H
#define FERRY_TOOL_CLIENTJS_H

#include <ferry.h>

#define CLIENTJS_PATH "/vendor/socket.io.min.js"

typedef struct clientjs clientjs;

/* Read the bundle (file, or NULL to look in node_modules) into memory now, before the loop
 * runs, and route GET CLIENTJS_PATH and the two paths under engine_path (e.g. "/socket.io/")
 * on srv. A missing bundle is not an error: the route then
 * answers 404 with a hint, and *found is 0. */
int clientjs_install(ferry_server *srv, const char *engine_path, const char *file, clientjs **out,
                     int *found);
void clientjs_free(clientjs *c);

#endif
