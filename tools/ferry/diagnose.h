/* The diagnosis page of tools/ferry (issue 11): GET /ferry/diagnose serves a page that tries
 * every transport against this server and says in plain words what the network path does
 * (sources in client-js/diagnose/, embedded in the library and mounted with the client by
 * ferry_server_serve_client(); the same checks run from the command line with
 * tools/ferry-diagnose.mjs).
 *
 * GET /ferry/diagnose/seen?id=ID records that a request with that id reached the server and
 * whether it still carried "Upgrade: websocket" (answered 200, never 101); with &ask=1 it
 * answers {"seen":bool,"upgrade":bool} instead. The page opens a WebSocket to it: a proxy that
 * refuses the upgrade never lets it through, one that strips the headers lets it through
 * without them. The last DIAGNOSE_SEEN_MAX ids are kept. */
#ifndef FERRY_TOOL_DIAGNOSE_H
#define FERRY_TOOL_DIAGNOSE_H

#include <ferry.h>

#define DIAGNOSE_PATH "/ferry/diagnose"
#define DIAGNOSE_SEEN_MAX 64

typedef struct diagnose diagnose;

/* Route the helper on srv. Returns 0 or a negative ferry error. */
int diagnose_install(ferry_server *srv, diagnose **out);
void diagnose_free(diagnose *d);

#endif
