/* socket.io-client's browser bundle, served by tools/ferry at CLIENTJS_PATH so that pages on
 * the static folder can load it (until ferry's own client exists). */
#ifndef FERRY_TOOL_CLIENTJS_H
#define FERRY_TOOL_CLIENTJS_H

#include <ferry.h>

#define CLIENTJS_PATH "/vendor/socket.io.min.js"

typedef struct clientjs clientjs;

/* Read the bundle (file, or NULL to look in node_modules) into memory now, before the loop
 * runs, and route GET CLIENTJS_PATH on srv. A missing bundle is not an error: the route then
 * answers 404 with a hint, and *found is 0. */
int clientjs_install(ferry_server *srv, const char *file, clientjs **out, int *found);
void clientjs_free(clientjs *c);

#endif
