/* TEMPORARY: stubs of the Socket.IO API until lib/socket lands (sio). */
#include "ferry.h"

ferry_namespace *ferry_of(ferry_server *srv, const char *name)
{
    (void)srv;
    (void)name;
    return NULL;
}

const char *ferry_namespace_name(const ferry_namespace *nsp)
{
    (void)nsp;
    return NULL;
}

ferry_server *ferry_namespace_server(const ferry_namespace *nsp)
{
    (void)nsp;
    return NULL;
}

void ferry_namespace_set_data(ferry_namespace *nsp, void *data)
{
    (void)nsp;
    (void)data;
}

void *ferry_namespace_get_data(const ferry_namespace *nsp)
{
    (void)nsp;
    return NULL;
}

int ferry_server_on_namespace_request(ferry_server *srv, ferry_namespace_request_cb cb, void *user_data)
{
    (void)srv;
    (void)cb;
    (void)user_data;
    return -FERRY_EUNSUPPORTED;
}

void ferry_namespace_on_connection(ferry_namespace *nsp, ferry_connection_cb cb, void *user_data)
{
    (void)nsp;
    (void)cb;
    (void)user_data;
}

int ferry_namespace_use(ferry_namespace *nsp, ferry_middleware_cb cb, void *user_data)
{
    (void)nsp;
    (void)cb;
    (void)user_data;
    return -FERRY_EUNSUPPORTED;
}

int ferry_middleware_next(ferry_socket *s, const char *error_message, const cJSON *error_data)
{
    (void)s;
    (void)error_message;
    (void)error_data;
    return -FERRY_EUNSUPPORTED;
}

int ferry_namespace_on(ferry_namespace *nsp, const char *event, ferry_event_cb cb, void *user_data)
{
    (void)nsp;
    (void)event;
    (void)cb;
    (void)user_data;
    return -FERRY_EUNSUPPORTED;
}

int ferry_namespace_emit(ferry_namespace *nsp, const char *event, const cJSON *args)
{
    (void)nsp;
    (void)event;
    (void)args;
    return -FERRY_EUNSUPPORTED;
}

size_t ferry_namespace_sockets(ferry_namespace *nsp, const char *room, ferry_socket **out, size_t max)
{
    (void)nsp;
    (void)room;
    (void)out;
    (void)max;
    return 0;
}

ferry_socket *ferry_namespace_socket(ferry_namespace *nsp, const char *id)
{
    (void)nsp;
    (void)id;
    return NULL;
}

const char *ferry_socket_id(const ferry_socket *s)
{
    (void)s;
    return NULL;
}

ferry_namespace *ferry_socket_namespace(const ferry_socket *s)
{
    (void)s;
    return NULL;
}

ferry_session *ferry_socket_session(const ferry_socket *s)
{
    (void)s;
    return NULL;
}

void ferry_socket_set_data(ferry_socket *s, void *data)
{
    (void)s;
    (void)data;
}

void *ferry_socket_get_data(const ferry_socket *s)
{
    (void)s;
    return NULL;
}

const cJSON *ferry_socket_auth(const ferry_socket *s)
{
    (void)s;
    return NULL;
}

const char *ferry_socket_query(const ferry_socket *s, const char *name)
{
    (void)s;
    (void)name;
    return NULL;
}

const char *ferry_socket_header(const ferry_socket *s, const char *name)
{
    (void)s;
    (void)name;
    return NULL;
}

int ferry_socket_on(ferry_socket *s, const char *event, ferry_event_cb cb, void *user_data)
{
    (void)s;
    (void)event;
    (void)cb;
    (void)user_data;
    return -FERRY_EUNSUPPORTED;
}

void ferry_socket_on_any(ferry_socket *s, ferry_event_cb cb, void *user_data)
{
    (void)s;
    (void)cb;
    (void)user_data;
}

void ferry_socket_on_disconnect(ferry_socket *s, ferry_disconnect_cb cb, void *user_data)
{
    (void)s;
    (void)cb;
    (void)user_data;
}

int ferry_socket_emit(ferry_socket *s, const char *event, const cJSON *args)
{
    (void)s;
    (void)event;
    (void)args;
    return -FERRY_EUNSUPPORTED;
}

int ferry_socket_emit_volatile(ferry_socket *s, const char *event, const cJSON *args)
{
    (void)s;
    (void)event;
    (void)args;
    return -FERRY_EUNSUPPORTED;
}

int ferry_socket_emit_ack(ferry_socket *s, const char *event, const cJSON *args, uint32_t timeout_ms, ferry_ack_cb cb, void *user_data)
{
    (void)s;
    (void)event;
    (void)args;
    (void)timeout_ms;
    (void)cb;
    (void)user_data;
    return -FERRY_EUNSUPPORTED;
}

int ferry_ack_send(ferry_ack *ack, const cJSON *args)
{
    (void)ack;
    (void)args;
    return -FERRY_EUNSUPPORTED;
}

ferry_socket *ferry_ack_socket(const ferry_ack *ack)
{
    (void)ack;
    return NULL;
}

int ferry_socket_join(ferry_socket *s, const char *room)
{
    (void)s;
    (void)room;
    return -FERRY_EUNSUPPORTED;
}

int ferry_socket_leave(ferry_socket *s, const char *room)
{
    (void)s;
    (void)room;
    return -FERRY_EUNSUPPORTED;
}

int ferry_socket_in(const ferry_socket *s, const char *room)
{
    (void)s;
    (void)room;
    return -FERRY_EUNSUPPORTED;
}

size_t ferry_socket_rooms(const ferry_socket *s, const char **out, size_t max)
{
    (void)s;
    (void)out;
    (void)max;
    return 0;
}

void ferry_socket_disconnect(ferry_socket *s, int close_session)
{
    (void)s;
    (void)close_session;
}

int ferry_socket_connected(const ferry_socket *s)
{
    (void)s;
    return -FERRY_EUNSUPPORTED;
}

void ferry_bcast_init(ferry_bcast *b, ferry_namespace *nsp)
{
    (void)b;
    (void)nsp;
}

void ferry_bcast_from(ferry_bcast *b, const ferry_socket *s)
{
    (void)b;
    (void)s;
}

int ferry_bcast_to(ferry_bcast *b, const char *room)
{
    (void)b;
    (void)room;
    return -FERRY_EUNSUPPORTED;
}

int ferry_bcast_except(ferry_bcast *b, const char *room)
{
    (void)b;
    (void)room;
    return -FERRY_EUNSUPPORTED;
}

void ferry_bcast_volatile(ferry_bcast *b)
{
    (void)b;
}

int ferry_bcast_emit(const ferry_bcast *b, const char *event, const cJSON *args)
{
    (void)b;
    (void)event;
    (void)args;
    return -FERRY_EUNSUPPORTED;
}

cJSON *ferry_binary_new(const void *data, size_t len)
{
    (void)data;
    (void)len;
    return NULL;
}

int ferry_binary_is(const cJSON *item)
{
    (void)item;
    return -FERRY_EUNSUPPORTED;
}

int ferry_binary_get(const cJSON *item, void *out, size_t *len)
{
    (void)item;
    (void)out;
    (void)len;
    return -FERRY_EUNSUPPORTED;
}
