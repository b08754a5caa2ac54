/* The Socket.IO layer as the composition root (lib/server) sees it: created on the engine when
 * the application first asks for a namespace, installed as the engine's session hook, freed
 * with the server. Everything else of the layer is private to lib/socket (socket.h,
 * internal.h). */
#ifndef FERRY_SOCKET_SIO_H
#define FERRY_SOCKET_SIO_H

#include "adapter/adapter.h"
#include "engine/engine.h"
#include "ferry.h"

typedef struct ferry_sio ferry_sio;

/* The layer on eng, with its main namespace "/"; owner is the server handed to callbacks
 * (ferry_namespace_server(), namespace requests); adapters makes each namespace's adapter
 * (borrowed for the layer's life; &ferry_adapter_local for one process). NULL when out of
 * memory. The caller then installs sio_on_session as eng's session hook with the layer as its
 * user data. */
ferry_sio *sio_new(ferry_server *owner, ferry_engine *eng, const ferry_adapter_factory *adapters);
/* The engine's session hook: a new Engine.IO session becomes a Socket.IO client. */
void sio_on_session(ferry_session *s, void *ud);
/* Free the layer once the engine closed every session (the server is being freed). */
void sio_free(ferry_sio *sio);
/* A namespace's full name ("/" first) for what the application passed: name itself or a copy
 * in buf; NULL when name is no valid namespace name. */
const char *sio_full_name(const char *name, char buf[FERRY_NAME_MAX + 2]);
/* The namespace of that full name, created on first use; NULL when out of memory. */
ferry_namespace *sio_of(ferry_sio *sio, const char *full_name);
/* ferry_server_on_namespace_request() */
void sio_on_namespace_request(ferry_sio *sio, ferry_namespace_request_cb cb, void *user_data);

#endif
