/* Socket.IO v5 packet codec (socket.io-parser's format); see packet.h. */
#include "socket/packet.h"

#include <stdio.h>
#include <string.h>

#include "common/assert.h"
#include "common/mem.h"
#include "common/strbuf.h"

static const char *const reserved[] = {"connect",       "connect_error", "disconnect",
                                       "disconnecting", "newListener",   "removeListener"};

int sio_reserved_event(const char *event)
{
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcmp(event, reserved[i]) == 0)
            return 1;
    return 0;
}

void sio_packet_clear(sio_packet *p)
{
    ferry_mem_free(p->nsp);
    cJSON_Delete(p->data);
    memset(p, 0, sizeof(*p));
    p->id = SIO_NO_ID;
}

/* ------------------------------------------------------------------ decoder */

void sio_decoder_init(sio_decoder *d, unsigned max_attachments)
{
    memset(d, 0, sizeof(*d));
    if (max_attachments > SIO_MAX_ATTACHMENTS_CEILING)
        max_attachments = SIO_MAX_ATTACHMENTS_CEILING;
    d->max_attachments = max_attachments;
    d->max_name = FERRY_NAME_MAX;
    d->pending.id = SIO_NO_ID;
}

static void reset_pending(sio_decoder *d)
{
    sio_packet_clear(&d->pending);
    ferry_mem_free(d->slots);
    d->slots = NULL;
    d->got = 0;
    d->waiting = 0;
}

void sio_decoder_free(sio_decoder *d)
{
    reset_pending(d);
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The payload rules of the spec (socket.io-parser's isPayloadValid), stricter where the spec
 * says a payload is mandatory: an EVENT needs a non-empty array, an ACK an array and an id. */
static int payload_valid(const sio_packet *p)
{
    const cJSON *d = p->data;
    switch (p->type) {
    case SIO_CONNECT:
        return d == NULL || cJSON_IsObject(d);
    case SIO_DISCONNECT:
        return d == NULL;
    case SIO_CONNECT_ERROR:
        return d != NULL && (cJSON_IsObject(d) || cJSON_IsString(d));
    case SIO_EVENT:
    case SIO_BINARY_EVENT: {
        if (!cJSON_IsArray(d) || d->child == NULL)
            return 0;
        const cJSON *name = d->child;
        if (cJSON_IsNumber(name))
            return 1;
        return cJSON_IsString(name) && !sio_reserved_event(name->valuestring);
    }
    case SIO_ACK:
    case SIO_BINARY_ACK:
        return cJSON_IsArray(d) && p->id != SIO_NO_ID;
    }
    return 0;
}

/* Find the placeholders {"_placeholder":true,"num":i} of a binary packet. Each index below
 * the announced count may appear once: duplicates would let a client multiply one attachment
 * in memory. Returns 0 or -FERRY_EPROTO. */
static int find_placeholders(cJSON *node, cJSON **slots, unsigned n, unsigned depth)
{
    if (depth > 64)
        return -FERRY_EPROTO;
    if (cJSON_IsObject(node)) {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(node, "_placeholder");
        if (cJSON_IsTrue(ph)) {
            const cJSON *num = cJSON_GetObjectItemCaseSensitive(node, "num");
            if (!cJSON_IsNumber(num) || num->valuedouble < 0 || num->valuedouble >= n ||
                num->valuedouble != (double)(unsigned)num->valuedouble)
                return -FERRY_EPROTO;
            unsigned i = (unsigned)num->valuedouble;
            if (slots[i] != NULL)
                return -FERRY_EPROTO;
            slots[i] = node;
            return 0;
        }
    }
    if (cJSON_IsObject(node) || cJSON_IsArray(node))
        for (cJSON *c = node->child; c != NULL; c = c->next) {
            int rc = find_placeholders(c, slots, n, depth + 1);
            if (rc != 0)
                return rc;
        }
    return 0;
}

static int json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int sio_decode_text(sio_decoder *d, const char *p, size_t len, sio_packet *out)
{
    if (d->waiting)
        return -FERRY_EPROTO; /* text while attachments are due */
    sio_packet pk = {.id = SIO_NO_ID};
    size_t i = 0;
    if (len == 0 || p[0] < '0' || p[0] > '6')
        return -FERRY_EPROTO;
    pk.type = p[0] - '0';
    i = 1;
    if (pk.type == SIO_BINARY_EVENT || pk.type == SIO_BINARY_ACK) {
        size_t start = i;
        uint64_t n = 0;
        while (i < len && is_digit(p[i])) {
            n = n * 10 + (uint64_t)(p[i] - '0');
            if (n > SIO_MAX_ATTACHMENTS_CEILING)
                return -FERRY_ELIMIT;
            i++;
        }
        if (i == start || i >= len || p[i] != '-')
            return -FERRY_EPROTO;
        i++;
        if (n > d->max_attachments)
            return -FERRY_ELIMIT;
        pk.nattach = (unsigned)n;
    }
    if (i < len && p[i] == '/') {
        /* The name runs to a comma, or to the end of the packet ("40/custom"). */
        size_t start = i;
        while (i < len && p[i] != ',')
            i++;
        size_t n = i - start;
        if (n > d->max_name || memchr(p + start, '\0', n) != NULL)
            return -FERRY_EPROTO;
        pk.nsp = ferry_mem_strndup(p + start, n);
        if (i < len)
            i++; /* the comma */
    } else {
        pk.nsp = ferry_mem_strdup("/");
    }
    if (pk.nsp == NULL)
        return -FERRY_ENOMEM;
    if (i < len && is_digit(p[i])) {
        int64_t id = 0;
        size_t start = i;
        while (i < len && is_digit(p[i])) {
            if (i - start >= 16) {
                sio_packet_clear(&pk);
                return -FERRY_EPROTO;
            }
            id = id * 10 + (p[i] - '0');
            i++;
        }
        if (id > SIO_MAX_ID) {
            sio_packet_clear(&pk);
            return -FERRY_EPROTO;
        }
        pk.id = id;
    }
    if (i < len) {
        /* The rest must be exactly one JSON value (JSON.parse allows surrounding spaces). */
        const char *end = NULL;
        pk.data = cJSON_ParseWithLengthOpts(p + i, len - i, &end, 0);
        if (pk.data == NULL) {
            sio_packet_clear(&pk);
            return -FERRY_EPROTO;
        }
        size_t j = (size_t)(end - p);
        while (j < len && json_ws(p[j]))
            j++;
        if (j != len) {
            sio_packet_clear(&pk);
            return -FERRY_EPROTO;
        }
    }
    if (!payload_valid(&pk)) {
        sio_packet_clear(&pk);
        return -FERRY_EPROTO;
    }
    if (pk.nattach == 0) {
        *out = pk;
        return 1;
    }
    d->slots = ferry_mem_calloc(pk.nattach, sizeof(*d->slots));
    if (d->slots == NULL) {
        sio_packet_clear(&pk);
        return -FERRY_ENOMEM;
    }
    int rc = find_placeholders(pk.data, d->slots, pk.nattach, 0);
    if (rc != 0) {
        sio_packet_clear(&pk);
        ferry_mem_free(d->slots);
        d->slots = NULL;
        return rc;
    }
    d->pending = pk;
    d->waiting = 1;
    d->got = 0;
    return 0;
}

/* Turn a placeholder object into a binary argument holding a copy of len bytes at p (the bytes
 * form: no base64; binary.c). */
static int fill_slot(cJSON *slot, const void *p, size_t len)
{
    return sio_binary_fill(slot, p, len);
}

int sio_decode_binary(sio_decoder *d, const void *p, size_t len, sio_packet *out)
{
    if (!d->waiting)
        return -FERRY_EPROTO;
    cJSON *slot = d->slots[d->got];
    if (slot != NULL) {
        int rc = fill_slot(slot, p, len);
        if (rc != 0)
            return rc;
    }
    if (++d->got < d->pending.nattach)
        return 0;
    *out = d->pending;
    memset(&d->pending, 0, sizeof(d->pending));
    d->pending.id = SIO_NO_ID;
    reset_pending(d);
    return 1;
}

/* ------------------------------------------------------------------ encoder */

static unsigned count_binary(const cJSON *node)
{
    if (sio_binary_is(node))
        return 1;
    unsigned n = 0;
    if (cJSON_IsObject(node) || cJSON_IsArray(node))
        for (const cJSON *c = node->child; c != NULL; c = c->next)
            n += count_binary(c);
    return n;
}

/* In the copy (node; orig is the same place in the caller's tree, whose binary arguments
 * still have their bytes: a cJSON_Duplicate copy holds only their stand-in text, binary.c),
 * replace each binary argument (depth first, the order of attachments) by its placeholder,
 * and put its bytes in a binary Engine.IO message: copied, or decoded from base64 for an
 * argument in the text form. */
static int extract_binary(const cJSON *orig, cJSON *node, sio_encoded *e)
{
    if (sio_binary_is(orig)) {
        size_t rawlen;
        const void *raw = sio_binary_raw(orig, &rawlen);
        ferry_buf *b = NULL;
        if (raw != NULL) {
            b = ferry_buf_from(raw, rawlen);
            if (b == NULL)
                return -FERRY_ENOMEM;
        } else {
            long rc = sio_binary_decode(sio_binary_b64(orig), &b);
            if (rc < 0)
                return (int)rc;
        }
        b->flags |= FERRY_BUF_BINARY;
        unsigned num = (unsigned)(e->n - 1);
        e->bufs[e->n++] = b;
        while (node->child != NULL)
            cJSON_Delete(cJSON_DetachItemViaPointer(node, node->child));
        if (cJSON_AddTrueToObject(node, "_placeholder") == NULL ||
            cJSON_AddNumberToObject(node, "num", num) == NULL)
            return -FERRY_ENOMEM;
        return 0;
    }
    if (cJSON_IsObject(node) || cJSON_IsArray(node))
        for (cJSON *c = node->child, *o = orig->child; c != NULL && o != NULL;
             c = c->next, o = o->next) {
            int rc = extract_binary(o, c, e);
            if (rc != 0)
                return rc;
        }
    return 0;
}

void sio_encoded_release(sio_encoded *e)
{
    for (size_t i = 0; i < e->n; i++)
        ferry_buf_release(e->bufs[i]);
    if (e->bufs != e->inline_bufs)
        ferry_mem_free(e->bufs);
    e->n = 0;
    e->bufs = e->inline_bufs;
}

size_t sio_encoded_size(const sio_encoded *e)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++)
        n += e->bufs[i]->len;
    return n;
}

/* The shared core: event (or NULL) is spliced in front of the array data. */
static int encode(int type, const char *nsp, int64_t id, const char *event, const cJSON *data,
                  const char *offset, sio_encoded *out)
{
    out->n = 0;
    out->bufs = out->inline_bufs;
    if (event != NULL && data != NULL && !cJSON_IsArray(data))
        return -FERRY_EINVAL;
    unsigned nbin = data != NULL ? count_binary(data) : 0;
    cJSON *copy = NULL;
    if (nbin > 0) {
        if (type == SIO_EVENT)
            type = SIO_BINARY_EVENT;
        else if (type == SIO_ACK)
            type = SIO_BINARY_ACK;
        else
            return -FERRY_EINVAL;
        if (1 + (size_t)nbin > SIO_ENC_INLINE) {
            out->bufs = ferry_mem_alloc((1 + (size_t)nbin) * sizeof(*out->bufs));
            if (out->bufs == NULL) {
                out->bufs = out->inline_bufs;
                return -FERRY_ENOMEM;
            }
        }
        out->bufs[0] = NULL;
        out->n = 1; /* slot 0 is the text packet, filled below */
        copy = cJSON_Duplicate(data, 1);
        int rc = copy != NULL ? extract_binary(data, copy, out) : -FERRY_ENOMEM;
        if (rc != 0) {
            cJSON_Delete(copy);
            sio_encoded_release(out);
            return rc;
        }
        data = copy;
    }
    /* Printed on the stack when it fits (nearly always): no malloc and no shrinking realloc
     * per packet. The realloc that cJSON_PrintUnformatted ends with gives memory back next to
     * the heap's top, which makes glibc consolidate every small free chunk (a broadcast's
     * thousands of queue entries) at each publish (perf: 1-2% of a broadcast's CPU). */
    char json_stack[2048], ev_stack[256];
    char *json = NULL, *ev = NULL;
    if (data != NULL) {
        json = cJSON_PrintPreallocated((cJSON *)data, json_stack, sizeof(json_stack), 0)
                   ? json_stack
                   : cJSON_PrintUnformatted(data);
        if (json == NULL)
            goto nomem;
    }
    if (event != NULL) {
        cJSON evs = {.type = cJSON_String | cJSON_IsReference, .valuestring = (char *)event};
        ev = cJSON_PrintPreallocated(&evs, ev_stack, sizeof(ev_stack), 0)
                 ? ev_stack
                 : cJSON_PrintUnformatted(&evs);
        if (ev == NULL)
            goto nomem;
    }
    char head[64];
    ferry_strbuf hb;
    ferry_strbuf_init(&hb, head, sizeof(head));
    ferry_strbuf_printf(&hb, "4%d", type);
    if (type == SIO_BINARY_EVENT || type == SIO_BINARY_ACK)
        ferry_strbuf_printf(&hb, "%u-", nbin);
    FERRY_ASSERT(ferry_strbuf_error(&hb) == 0); /* two numbers: at most 14 bytes */
    size_t hn = hb.len;
    size_t nsplen = strcmp(nsp, "/") == 0 ? 0 : strlen(nsp);
    char idbuf[24];
    ferry_strbuf ib;
    ferry_strbuf_init(&ib, idbuf, sizeof(idbuf));
    if (id >= 0)
        ferry_strbuf_printf(&ib, "%lld", (long long)id);
    FERRY_ASSERT(ferry_strbuf_error(&ib) == 0); /* at most 19 digits */
    size_t idn = ib.len;
    size_t jlen = json != NULL ? strlen(json) : 0, evlen = ev != NULL ? strlen(ev) : 0;
    /* With an event: "[" ev ("," args-without-their-"[") or "]". */
    size_t body = event != NULL ? 1 + evlen + (jlen > 2 ? jlen - 1 + 1 : 1) : jlen;
    size_t offlen = offset != NULL ? strlen(offset) : 0;
    if (offset != NULL)
        body += 3 + offlen; /* ,"<offset>" */
    size_t total = (size_t)hn + (nsplen ? nsplen + 1 : 0) + (size_t)idn + body;
    ferry_buf *b = ferry_buf_new(total);
    if (b == NULL)
        goto nomem;
    char *w = b->data;
    memcpy(w, head, (size_t)hn), w += hn;
    if (nsplen) {
        memcpy(w, nsp, nsplen), w += nsplen;
        *w++ = ',';
    }
    memcpy(w, idbuf, (size_t)idn), w += idn;
    if (event != NULL) {
        *w++ = '[';
        memcpy(w, ev, evlen), w += evlen;
        if (jlen > 2) {
            *w++ = ',';
            memcpy(w, json + 1, jlen - 2), w += jlen - 2;
        }
        if (offset != NULL) {
            *w++ = ',';
            *w++ = '"';
            memcpy(w, offset, offlen), w += offlen;
            *w++ = '"';
        }
        *w++ = ']';
    } else if (jlen) {
        memcpy(w, json, jlen), w += jlen;
    }
    b->len = (size_t)(w - b->data);
    if (out->n == 0)
        out->n = 1;
    out->bufs[0] = b;
    if (json != json_stack)
        cJSON_free(json);
    if (ev != ev_stack)
        cJSON_free(ev);
    cJSON_Delete(copy);
    return 0;
nomem:
    if (json != json_stack)
        cJSON_free(json);
    if (ev != ev_stack)
        cJSON_free(ev);
    cJSON_Delete(copy);
    sio_encoded_release(out);
    return -FERRY_ENOMEM;
}

int sio_encode(int type, const char *nsp, int64_t id, const cJSON *data, sio_encoded *out)
{
    return encode(type, nsp, id, NULL, data, NULL, out);
}

int sio_encode_event(const char *nsp, int64_t id, const char *event, const cJSON *args,
                     sio_encoded *out)
{
    return encode(SIO_EVENT, nsp, id, event, args, NULL, out);
}

int sio_encode_event_offset(const char *nsp, const char *event, const cJSON *args,
                            const char *offset, sio_encoded *out)
{
    return encode(SIO_EVENT, nsp, SIO_NO_ID, event, args, offset, out);
}
