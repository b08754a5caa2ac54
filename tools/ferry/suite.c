/* The server that socketio/socket.io-protocol's test-suite expects (PROTOCOL.md): namespaces /
 * and /custom; on connect each emits "auth" with the CONNECT payload ({} when there was none);
 * in /, "message" is answered by "message-back" and "message-with-ack" is acknowledged, both
 * with the very arguments received (binary attachments stay binary). */
#include "suite.h"

#include <cjson/cJSON.h>

static void on_connection(ferry_socket *s, void *ud)
{
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_Duplicate(ferry_socket_auth(s), 1));
    ferry_socket_emit(s, "auth", args);
    cJSON_Delete(args);
}

static void on_message(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack, void *ud)
{
    ferry_socket_emit(s, "message-back", args);
}

static void on_message_with_ack(ferry_socket *s, const char *event, cJSON *args, ferry_ack *ack,
                                void *ud)
{
    if (ack != NULL)
        ferry_ack_send(ack, args);
}

int suite_install(ferry_server *srv)
{
    ferry_namespace *main_nsp = ferry_of(srv, "/");
    ferry_namespace *custom = ferry_of(srv, "/custom");
    if (main_nsp == NULL || custom == NULL)
        return -FERRY_ENOMEM;
    ferry_namespace_on_connection(main_nsp, on_connection, NULL);
    ferry_namespace_on_connection(custom, on_connection, NULL);
    int rc = ferry_namespace_on(main_nsp, "message", on_message, NULL);
    if (rc == 0)
        rc = ferry_namespace_on(main_nsp, "message-with-ack", on_message_with_ack, NULL);
    return rc;
}
