/* Files built into the library (client-js's bundles, pages such as /ferry/diagnose), served by
 * ferry_server_serve_client(). The table is generated at build time by cmake/embed.cmake from
 * the embed list in CMakeLists.txt; it ends with an entry whose path is NULL. */
#ifndef FERRY_SERVER_CLIENT_FILES_H
#define FERRY_SERVER_CLIENT_FILES_H

#include <stddef.h>

typedef struct ferry_client_file {
    const char *path;         /* the URL path: "/ferry/ferry.mjs" */
    const char *content_type; /* "text/javascript; charset=utf-8" */
    const char *etag;         /* a quoted strong validator: a hash of the bytes */
    const unsigned char *data;
    size_t len;
} ferry_client_file;

extern const ferry_client_file ferry_client_files[];

#endif
