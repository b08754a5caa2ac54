/* TLS contexts: certificates, protocol versions, cipher lists, ALPN and SNI. One SSL_CTX is
 * built per certificate, all with the same settings; a connection starts on the first and the
 * SNI callback moves it to the certificate whose names match the client's server name. */
#include "http/tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/mem.h"

/* Mozilla's "intermediate" TLS 1.2 list: forward secrecy and AEAD only. */
static const char default_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

void ferry_tls_error_text(char *out, size_t outlen)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0)
        snprintf(out, outlen, "unknown error");
    else
        ERR_error_string_n(e, out, outlen);
    ERR_clear_error();
}

void ferry_tls_config_init(ferry_tls_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->min_version = FERRY_TLS_1_2;
}

ferry_tls *ferry_tls_retain(ferry_tls *tls)
{
    atomic_fetch_add(&tls->refcnt, 1);
    return tls;
}

SSL_CTX *ferry_tls_default_ctx(const ferry_tls *tls)
{
    return tls->nctx > 0 ? tls->ctx[0] : NULL;
}

static void tls_free(ferry_tls *tls)
{
    for (size_t i = 0; i < tls->nctx; i++) {
        SSL_CTX_free(tls->ctx[i]);
        X509_free(tls->leaf[i]);
    }
    ferry_mem_free(tls->ctx);
    ferry_mem_free(tls->leaf);
    ferry_mem_free(tls->ciphers);
    ferry_mem_free(tls->ciphersuites);
    ferry_mem_free(tls);
}

void ferry_tls_release(ferry_tls *tls)
{
    if (tls != NULL && atomic_fetch_sub(&tls->refcnt, 1) == 1)
        tls_free(tls);
}

int ferry_tls_new(const ferry_tls_config *cfg, ferry_tls **out)
{
    ferry_tls_config def;
    if (cfg == NULL) {
        ferry_tls_config_init(&def);
        cfg = &def;
    }
    if (out == NULL || (cfg->min_version != FERRY_TLS_1_2 && cfg->min_version != FERRY_TLS_1_3))
        return -FERRY_EINVAL;
    ferry_tls *tls = ferry_mem_calloc(1, sizeof(*tls));
    if (tls == NULL)
        return -FERRY_ENOMEM;
    atomic_init(&tls->refcnt, 1);
    atomic_init(&tls->in_use, 0);
    tls->min_version = cfg->min_version;
    tls->ciphers = cfg->ciphers ? ferry_mem_strdup(cfg->ciphers) : NULL;
    tls->ciphersuites = cfg->ciphersuites ? ferry_mem_strdup(cfg->ciphersuites) : NULL;
    if ((cfg->ciphers && tls->ciphers == NULL) || (cfg->ciphersuites && !tls->ciphersuites)) {
        tls_free(tls);
        return -FERRY_ENOMEM;
    }
    /* Check the lists now rather than at the first certificate. */
    SSL_CTX *probe = SSL_CTX_new(TLS_server_method());
    if (probe == NULL) {
        tls_free(tls);
        return -FERRY_ENOMEM;
    }
    int ok = SSL_CTX_set_cipher_list(probe, tls->ciphers ? tls->ciphers : default_ciphers) == 1 &&
             (tls->ciphersuites == NULL || SSL_CTX_set_ciphersuites(probe, tls->ciphersuites) == 1);
    SSL_CTX_free(probe);
    if (!ok) {
        char why[256];
        ferry_tls_error_text(why, sizeof(why));
        FERRY_LOG(FERRY_LOG_ERROR, "tls", NULL, "invalid cipher list: %s", why);
        tls_free(tls);
        return -FERRY_EINVAL;
    }
    *out = tls;
    return 0;
}

/* ALPN: HTTP/1.1 is all ferry speaks. A client that offers ALPN without it is refused with a
 * fatal no_application_protocol alert (RFC 7301 3.2); one that offers no ALPN is served. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    (void)ssl, (void)arg;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* SNI: move the connection to the first certificate whose names match; no match (or no name)
 * keeps the default one. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    const ferry_tls *tls = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    (void)alert;
    if (name == NULL || tls->nctx < 2)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < tls->nctx; i++) {
        if (X509_check_host(tls->leaf[i], name, strlen(name), 0, NULL) == 1) {
            if (i > 0 && SSL_set_SSL_CTX(ssl, tls->ctx[i]) == NULL)
                return SSL_TLSEXT_ERR_ALERT_FATAL;
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *new_ctx(ferry_tls *tls)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, tls->min_version);
    SSL_CTX_set_cipher_list(ctx, tls->ciphers ? tls->ciphers : default_ciphers);
    if (tls->ciphersuites != NULL)
        SSL_CTX_set_ciphersuites(ctx, tls->ciphersuites);
    /* No renegotiation (a client-driven CPU cost), no compression (CRIME). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Idle connections give their record buffers back: thousands of quiet WebSockets. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Resumption through stateless tickets only: no server-side session cache, whose memory
     * grows with every client and whose periodic flush walks it all on the loop. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, tls);
    return ctx;
}

int ferry_tls_add_cert(ferry_tls *tls, const char *cert_file, const char *key_file)
{
    if (tls == NULL || cert_file == NULL || key_file == NULL)
        return -FERRY_EINVAL;
    if (atomic_load(&tls->in_use))
        return -FERRY_EBUSY;
    SSL_CTX **cv = ferry_mem_realloc(tls->ctx, (tls->nctx + 1) * sizeof(*cv));
    if (cv == NULL)
        return -FERRY_ENOMEM;
    tls->ctx = cv;
    X509 **lv = ferry_mem_realloc(tls->leaf, (tls->nctx + 1) * sizeof(*lv));
    if (lv == NULL)
        return -FERRY_ENOMEM;
    tls->leaf = lv;
    ERR_clear_error();
    SSL_CTX *ctx = new_ctx(tls);
    if (ctx == NULL)
        return -FERRY_ENOMEM;
    int rc = 0;
    const char *what = "";
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        rc = -FERRY_EIO;
        what = cert_file;
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        /* A key that does not fit the certificate fails here already. */
        unsigned long e = ERR_peek_last_error();
        rc = ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ? -FERRY_EINVAL : -FERRY_EIO;
        what = key_file;
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        rc = -FERRY_EINVAL;
        what = key_file;
    }
    X509 *leaf = rc == 0 ? SSL_CTX_get0_certificate(ctx) : NULL;
    if (rc == 0 && (leaf == NULL || X509_up_ref(leaf) != 1)) {
        rc = -FERRY_EIO;
        what = cert_file;
        leaf = NULL;
    }
    if (rc != 0) {
        char why[256];
        ferry_tls_error_text(why, sizeof(why));
        FERRY_LOG(FERRY_LOG_ERROR, "tls", NULL, "%s: %s", what, why);
        SSL_CTX_free(ctx);
        return rc;
    }
    tls->ctx[tls->nctx] = ctx;
    tls->leaf[tls->nctx] = leaf;
    tls->nctx++;
    return 0;
}
