/* Checks on the room and event names that clients and publishers send. */
#include "relay.h"

#include <string.h>

static const char *check_name(const char *s, const char *empty, const char *too_long,
                              const char *control)
{
    size_t n = strlen(s);
    if (n == 0)
        return empty;
    if (n > APP_NAME_MAX)
        return too_long;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return control;
    return NULL;
}

const char *relay_check_room(const char *room)
{
    return check_name(room, "'room' is empty", "'room' is longer than 128 bytes",
                      "'room' holds a control character");
}

const char *relay_check_event(const char *event)
{
    /* Socket.IO's reserved names: a client would never see them as events. */
    static const char *reserved[] = {"connect",       "connect_error", "disconnect",
                                     "disconnecting", "newListener",   "removeListener"};
    const char *why = check_name(event, "'event' is empty", "'event' is longer than 128 bytes",
                                 "'event' holds a control character");
    if (why != NULL)
        return why;
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcmp(event, reserved[i]) == 0)
            return "'event' is a name Socket.IO reserves";
    return NULL;
}
