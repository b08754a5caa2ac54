/* Binary arguments in cJSON trees (ferry.h "Binary"): {"_ferry_binary":"<base64>"}. Base64
 * keeps the tree a plain cJSON tree, so cJSON_Duplicate, cJSON_Print and cJSON_Delete need no
 * special case.
 *
 * The bytes themselves ride behind the text: the member's string is one allocation (made
 * with cJSON's allocator, so cJSON_Delete frees it whole) holding the NUL-terminated base64,
 * then a trailer and the raw bytes; the string item's valuedouble (unused for strings) holds
 * the string's own address to say the trailer is there. Reading the bytes (ferry_binary_get)
 * and sending them (an attachment of an emit or a broadcast) copy them from the trailer
 * instead of decoding base64. A copy made by cJSON_Duplicate (its string is a strdup: text
 * only; its valuedouble is the original's address, not its own) or a tree parsed from JSON
 * text has no trailer, and is decoded as before. The base64 is written once, when the
 * argument is made (ferry_binary_new, or an attachment received). */
#include <stdint.h>
#include <string.h>

#include "common/base64.h"
#include "common/mem.h"
#include "socket/packet.h"

/* cJSON strings are NUL-terminated; 100 MB is far above any max_payload. */
#define BINARY_MAX (100u * 1000 * 1000)

#define RAW_MAGIC 0x6665727279626e72ull /* "ferrybnr" */

typedef struct raw_trailer {
    uint64_t magic;
    size_t text_len; /* strlen of the base64 in front */
    size_t len;      /* raw bytes after the trailer */
} raw_trailer;

static size_t trailer_offset(size_t text_len)
{
    return (text_len + 1 + 7) & ~(size_t)7;
}

/* The raw bytes of a binary argument's string item, or NULL when it has no trailer. */
static const raw_trailer *trailer_of(const cJSON *str)
{
    if (str->valuestring == NULL || str->valuedouble != (double)(uintptr_t)str->valuestring)
        return NULL;
    size_t n = strlen(str->valuestring);
    const raw_trailer *t = (const raw_trailer *)(str->valuestring + trailer_offset(n));
    /* Checked, not trusted: a string shortened in place keeps its address. */
    return t->magic == RAW_MAGIC && t->text_len == n ? t : NULL;
}

const void *sio_binary_raw(const cJSON *item, size_t *len)
{
    if (sio_binary_b64(item) == NULL)
        return NULL;
    const raw_trailer *t = trailer_of(item->child);
    if (t == NULL)
        return NULL;
    *len = t->len;
    return t + 1;
}

/* The member's string: base64 of len bytes at data, then the trailer and the bytes. */
static cJSON *binary_string(const void *data, size_t len)
{
    size_t tlen = FERRY_BASE64_LEN(len), off = trailer_offset(tlen);
    char *block = cJSON_malloc(off + sizeof(raw_trailer) + len);
    if (block == NULL)
        return NULL;
    block[ferry_base64_encode(block, data, len)] = '\0';
    raw_trailer t = {RAW_MAGIC, strlen(block), len};
    memcpy(block + off, &t, sizeof(t));
    if (len > 0)
        memcpy(block + off + sizeof(t), data, len);
    cJSON *s = cJSON_CreateString("");
    if (s == NULL) {
        cJSON_free(block);
        return NULL;
    }
    cJSON_free(s->valuestring);
    s->valuestring = block;
    s->valuedouble = (double)(uintptr_t)block;
    return s;
}

int sio_binary_fill(cJSON *obj, const void *data, size_t len)
{
    if (len > BINARY_MAX)
        return -FERRY_ETOOBIG;
    cJSON *s = binary_string(data, len);
    if (s == NULL)
        return -FERRY_ENOMEM;
    while (obj->child != NULL)
        cJSON_Delete(cJSON_DetachItemViaPointer(obj, obj->child));
    if (!cJSON_AddItemToObject(obj, SIO_BINARY_KEY, s)) { /* the key's copy failed */
        cJSON_Delete(s);
        return -FERRY_ENOMEM;
    }
    return 0;
}

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
    cJSON *o = cJSON_CreateObject();
    if (o != NULL && sio_binary_fill(o, data, len) != 0) {
        cJSON_Delete(o);
        o = NULL;
    }
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
    size_t rawlen;
    const void *raw = sio_binary_raw(item, &rawlen);
    if (raw != NULL) {
        if (out != NULL && *len < rawlen) {
            *len = rawlen;
            return -FERRY_ETOOBIG;
        }
        if (out != NULL && rawlen > 0)
            memcpy(out, raw, rawlen);
        *len = rawlen;
        return 0;
    }
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
