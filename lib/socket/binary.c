/* Binary arguments (ferry.h "Binary arguments"): the cJSON object {"_ferry_binary": member}.
 *
 * The bytes form (what ferry makes: ferry_binary_new/_alloc, a received attachment,
 * ferry_json_dup): the member is one allocation, made with cJSON's allocator so that
 * cJSON_Delete frees it whole, holding the member's cJSON item, a small header and the bytes.
 * The item is a string reference (cJSON_String | cJSON_IsReference: cJSON_Delete frees no
 * valuestring) whose text is a stand-in inside the same block, "(N bytes)". The member is
 * recognised by that text's address: it is the member's own block, which no other item can
 * point at (a cJSON_Duplicate copy strdups the text and drops the reference flag: it holds the
 * stand-in only, not the bytes, and sending it is -FERRY_EINVAL). No base64 is written, ever.
 *
 * The text form: the member is a string of base64 (a tree parsed from JSON, or ferry_json_dup
 * with FERRY_JSON_BASE64). Still binary; decoded when it is read or sent. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/base64.h"
#include "common/mem.h"
#include "socket/packet.h"

/* 100 MB is far above any max_payload. */
#define BINARY_MAX (100u * 1000 * 1000)

#define BIN_MAGIC 0x6665727279626e32ull /* "ferrybn2" */

typedef struct bin_member {
    cJSON item; /* first: cJSON_Delete frees the block through it */
    uint64_t magic;
    size_t len;
    char text[32]; /* the stand-in cJSON_Print shows: "(N bytes)" */
    unsigned char bytes[];
} bin_member;

static const bin_member *bin_of(const cJSON *c)
{
    const int want = cJSON_String | cJSON_IsReference;
    if ((c->type & (0xFF | cJSON_IsReference)) != want)
        return NULL;
    /* Only the block's own item points at its text: compared (as integers: c may be a plain
     * item, smaller than a block) before anything past the item is read. */
    if ((uintptr_t)c->valuestring != (uintptr_t)c + offsetof(bin_member, text))
        return NULL;
    const bin_member *b = (const bin_member *)(const void *)c;
    return b->magic == BIN_MAGIC ? b : NULL;
}

/* The member of a binary argument, or NULL when item is not one. */
static const cJSON *member_of(const cJSON *item)
{
    if (!cJSON_IsObject(item) || item->child == NULL || item->child->next != NULL)
        return NULL;
    const cJSON *c = item->child;
    if (c->string == NULL || strcmp(c->string, SIO_BINARY_KEY) != 0 || !cJSON_IsString(c) ||
        c->valuestring == NULL)
        return NULL;
    return c;
}

int sio_binary_is(const cJSON *item)
{
    return member_of(item) != NULL;
}

const void *sio_binary_raw(const cJSON *item, size_t *len)
{
    const cJSON *m = member_of(item);
    const bin_member *b = m != NULL ? bin_of(m) : NULL;
    if (b == NULL)
        return NULL;
    *len = b->len;
    return b->bytes;
}

const char *sio_binary_b64(const cJSON *item)
{
    const cJSON *m = member_of(item);
    return m != NULL && bin_of(m) == NULL ? m->valuestring : NULL;
}

/* A member of len bytes, not yet filled. */
static bin_member *member_new(size_t len)
{
    if (len > BINARY_MAX)
        return NULL;
    bin_member *b = cJSON_malloc(sizeof(*b) + len);
    if (b == NULL)
        return NULL;
    memset(b, 0, sizeof(*b));
    b->magic = BIN_MAGIC;
    b->len = len;
    /* "(N bytes)", written by hand: one per binary argument made or received. */
    char digits[24];
    size_t nd = 0, v = len;
    do
        digits[nd++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    char *w = b->text;
    *w++ = '(';
    while (nd > 0)
        *w++ = digits[--nd];
    memcpy(w, " bytes)", sizeof(" bytes)")); /* at most 1 + 20 + 8 <= sizeof(b->text) */
    b->item.type = cJSON_String | cJSON_IsReference;
    b->item.valuestring = b->text;
    return b;
}

/* Make obj (its members are replaced) hold m as its one member. */
static int set_member(cJSON *obj, cJSON *m)
{
    while (obj->child != NULL)
        cJSON_Delete(cJSON_DetachItemViaPointer(obj, obj->child));
    /* A constant key: nothing to allocate, nothing to fail. */
    if (!cJSON_AddItemToObjectCS(obj, SIO_BINARY_KEY, m)) {
        cJSON_Delete(m);
        return -FERRY_EINVAL;
    }
    return 0;
}

static int fill(cJSON *obj, const void *data, size_t len, void **bytes)
{
    if (len > BINARY_MAX)
        return -FERRY_ETOOBIG;
    bin_member *b = member_new(len);
    if (b == NULL)
        return -FERRY_ENOMEM;
    if (data != NULL && len > 0)
        memcpy(b->bytes, data, len);
    if (bytes != NULL)
        *bytes = b->bytes;
    return set_member(obj, &b->item);
}

int sio_binary_fill(cJSON *obj, const void *data, size_t len)
{
    return fill(obj, data, len, NULL);
}

/* Make obj (its members are replaced) the text form of len bytes at data. */
static int fill_base64(cJSON *obj, const void *data, size_t len)
{
    if (len > BINARY_MAX)
        return -FERRY_ETOOBIG;
    char *text = cJSON_malloc(FERRY_BASE64_LEN(len) + 1);
    if (text == NULL)
        return -FERRY_ENOMEM;
    text[ferry_base64_encode(text, data, len)] = '\0';
    cJSON *s = cJSON_CreateStringReference(text);
    if (s == NULL) {
        cJSON_free(text);
        return -FERRY_ENOMEM;
    }
    s->type &= ~cJSON_IsReference; /* the item owns text (cJSON's allocator) */
    return set_member(obj, s);
}

static cJSON *binary_alloc(const void *data, size_t len, void **bytes)
{
    if (len > BINARY_MAX)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    if (o != NULL && fill(o, data, len, bytes) != 0) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

cJSON *ferry_binary_new(const void *data, size_t len)
{
    if (data == NULL && len > 0)
        return NULL;
    return binary_alloc(data, len, NULL);
}

cJSON *ferry_binary_alloc(size_t len, void **data)
{
    if (data == NULL)
        return NULL;
    cJSON *o = binary_alloc(NULL, len, data);
    if (o == NULL)
        *data = NULL;
    return o;
}

int ferry_binary_is(const cJSON *item)
{
    return item != NULL && sio_binary_is(item);
}

const void *ferry_binary_data(const cJSON *item, size_t *len)
{
    size_t n = 0;
    const void *p = item != NULL ? sio_binary_raw(item, &n) : NULL;
    if (len != NULL)
        *len = p != NULL ? n : 0;
    return p;
}

static int b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

/* The decoded size of base64 text b64 (n characters), or -1 when it is not base64 (whole
 * groups, the alphabet, padding only at the end): a cJSON_Duplicate copy's stand-in text
 * "(N bytes)" is refused here already. */
static long b64_size(const char *b64, size_t n)
{
    if (n % 4 != 0)
        return -1;
    size_t pad = n >= 1 && b64[n - 1] == '=' ? (n >= 2 && b64[n - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < n - pad; i++)
        if (!b64_char(b64[i]))
            return -1;
    return (long)(n / 4 * 3 - pad);
}

long sio_binary_decode(const char *b64, ferry_buf **out)
{
    size_t n = strlen(b64);
    if (b64_size(b64, n) < 0)
        return -FERRY_EINVAL; /* also before any allocation */
    /* The decoder may write a whole last group. */
    ferry_buf *b = ferry_buf_new(3 * ((n + 3) / 4) + 1);
    if (b == NULL)
        return -FERRY_ENOMEM;
    long got = ferry_base64_decode((uint8_t *)b->data, b64, n);
    if (got < 0) {
        ferry_buf_release(b);
        return -FERRY_EINVAL;
    }
    b->len = (size_t)got;
    *out = b;
    return got;
}

int ferry_binary_get(const cJSON *item, void *out, size_t *len)
{
    if (item == NULL || len == NULL || !sio_binary_is(item))
        return -FERRY_EINVAL;
    size_t rawlen;
    const void *raw = sio_binary_raw(item, &rawlen);
    ferry_buf *tmp = NULL;
    if (raw == NULL) {
        const char *b64 = sio_binary_b64(item);
        long need = b64_size(b64, strlen(b64));
        if (need < 0)
            return -FERRY_EINVAL;
        if (out == NULL) {
            *len = (size_t)need;
            return 0;
        }
        if (*len < (size_t)need) {
            *len = (size_t)need;
            return -FERRY_ETOOBIG;
        }
        long got = sio_binary_decode(b64, &tmp);
        if (got < 0)
            return (int)got;
        if (got != need) {
            ferry_buf_release(tmp);
            return -FERRY_EINVAL;
        }
        raw = tmp->data;
        rawlen = tmp->len;
    }
    int rc = 0;
    if (out != NULL && *len < rawlen)
        rc = -FERRY_ETOOBIG;
    else if (out != NULL && rawlen > 0)
        memcpy(out, raw, rawlen);
    *len = rawlen;
    if (tmp != NULL)
        ferry_buf_release(tmp);
    return rc;
}

/* copy is cJSON_Duplicate(orig): give its binary arguments their bytes back (or, with
 * FERRY_JSON_BASE64, their text form). */
static int fix_copy(const cJSON *orig, cJSON *copy, unsigned flags)
{
    if (sio_binary_is(orig)) {
        size_t len;
        const void *raw = sio_binary_raw(orig, &len);
        if (raw == NULL)
            return 0; /* the text form: the copy's text is the same base64 */
        return (flags & FERRY_JSON_BASE64) ? fill_base64(copy, raw, len)
                                           : sio_binary_fill(copy, raw, len);
    }
    if (cJSON_IsObject(orig) || cJSON_IsArray(orig)) {
        cJSON *c = copy->child;
        for (const cJSON *o = orig->child; o != NULL && c != NULL; o = o->next, c = c->next) {
            int rc = fix_copy(o, c, flags);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

cJSON *ferry_json_dup(const cJSON *item, unsigned flags)
{
    if (item == NULL)
        return NULL;
    cJSON *copy = cJSON_Duplicate(item, 1);
    if (copy != NULL && fix_copy(item, copy, flags) != 0) {
        cJSON_Delete(copy);
        copy = NULL;
    }
    return copy;
}
