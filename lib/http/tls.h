/* Private to lib/http: the TLS context (ferry_tls) shared by listeners and connections. The
 * per-connection state (SSL object and memory BIOs) lives in conn.c. */
#ifndef FERRY_HTTP_TLS_H
#define FERRY_HTTP_TLS_H

#include <stdatomic.h>
#include <openssl/ssl.h>

#include "ferry.h"

struct ferry_tls {
    atomic_uint refcnt;
    atomic_int in_use; /* a listener took it: certificates can no longer be added */
    int min_version;
    char *ciphers;      /* NULL: the default list */
    char *ciphersuites; /* NULL: OpenSSL's default */
    /* One SSL_CTX per certificate (the first is the default), with its leaf for SNI. */
    SSL_CTX **ctx;
    X509 **leaf;
    size_t nctx;
};

/* A new reference (any thread). */
ferry_tls *ferry_tls_retain(ferry_tls *tls);
/* The context new connections start from (the default certificate). */
SSL_CTX *ferry_tls_default_ctx(const ferry_tls *tls);
/* OpenSSL's queued reason as one line into out (always NUL-terminated); clears the queue. */
void ferry_tls_error_text(char *out, size_t outlen);

#endif
