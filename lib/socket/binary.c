/* Binary arguments in cJSON trees (ferry.h "Binary"): {"_ferry_binary":"<base64>"}. Base64
 * keeps the tree a plain cJSON tree, so cJSON_Duplicate, cJSON_Print and cJSON_Delete need no
 * special case; the bytes are decoded only when a packet is encoded (once per broadcast). */
#include <string.h>

#include "common/base64.h"
#include "common/mem.h"
#include "socket/packet.h"

/* cJSON strings are NUL-terminated; 100 MB is far above any max_payload. */
#define BINARY_MAX (100u * 1000 * 1000)

const char *sio_binary_b64(const cJSON *item)
{
    if (!cJSON_IsObject(item) || item->child == NULL || item->child->next != NULL)
        return NULL;
    const cJSON *c = item->child;
    if (c->string == NULL || strcmp(c->string, SIO_BINARY_KEY) != 0 || !cJSON_IsString(c))
        return NULL;
    return c->valuestring;
}

cJSON *ferry_binary_new(const void *data, size_t len)
{
    if (len > BINARY_MAX || (data == NULL && len > 0))
        return NULL;
    char *b64 = ferry_mem_alloc(FERRY_BASE64_LEN(len) + 1);
    if (b64 == NULL)
        return NULL;
    b64[ferry_base64_encode(b64, data, len)] = '\0';
    cJSON *o = cJSON_CreateObject();
    if (o != NULL && cJSON_AddStringToObject(o, SIO_BINARY_KEY, b64) == NULL) {
        cJSON_Delete(o);
        o = NULL;
    }
    ferry_mem_free(b64);
    return o;
}

int ferry_binary_is(const cJSON *item)
{
    return sio_binary_b64(item) != NULL;
}

int ferry_binary_get(const cJSON *item, void *out, size_t *len)
{
    const char *b64 = sio_binary_b64(item);
    if (b64 == NULL || len == NULL)
        return -FERRY_EINVAL;
    size_t n = strlen(b64);
    /* The exact decoded size from the length and the padding. */
    size_t need = n / 4 * 3;
    if (n % 4 != 0)
        return -FERRY_EINVAL;
    if (n >= 1 && b64[n - 1] == '=')
        need--;
    if (n >= 2 && b64[n - 2] == '=')
        need--;
    if (out == NULL) {
        *len = need;
        return 0;
    }
    if (*len < need) {
        *len = need;
        return -FERRY_ETOOBIG;
    }
    /* The decoder may write a whole last group: decode through a bounce for the tail. */
    uint8_t *tmp = ferry_mem_alloc(3 * ((n + 3) / 4) + 1);
    if (tmp == NULL)
        return -FERRY_ENOMEM;
    long got = ferry_base64_decode(tmp, b64, n);
    if (got < 0 || (size_t)got != need) {
        ferry_mem_free(tmp);
        return -FERRY_EINVAL;
    }
    memcpy(out, tmp, need);
    ferry_mem_free(tmp);
    *len = need;
    return 0;
}

cJSON *sio_binary_from_b64(const char *b64, size_t len)
{
    char *s = ferry_mem_strndup(b64, len);
    if (s == NULL)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    if (o != NULL && cJSON_AddStringToObject(o, SIO_BINARY_KEY, s) == NULL) {
        cJSON_Delete(o);
        o = NULL;
    }
    ferry_mem_free(s);
    return o;
}
