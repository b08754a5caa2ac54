/* The admin page (issue 19): GET /ferry/admin serves a small page that connects with ferry's own
 * client to the namespace /ferry-admin, whose middleware asks for the admin token (auth.token);
 * once an admin is connected the server pushes a "stats" event every second: the metrics
 * exposition, the rooms of "/" and their sizes, and the slowest sessions by round trip with
 * their transport history. Off (no route, no namespace) without a token. Read-only. */
#ifndef FERRY_TOOL_ADMIN_H
#define FERRY_TOOL_ADMIN_H

#include <ferry.h>

typedef struct admin admin;

/* Install on srv with token (borrowed for the server's life). 0 or a -FERRY_E* code. */
int admin_install(ferry_server *srv, const char *token, admin **out);
/* The server closes: stop the timer (its handle closes on the loop). */
void admin_close(admin *a);
/* After uv_run returned (NULL: nothing). */
void admin_free(admin *a);

#endif
