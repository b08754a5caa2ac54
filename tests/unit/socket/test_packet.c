/* lib/socket/packet.c: every encoding example of the Socket.IO v5 specification
 * (socket.io-protocol README, "Packet encoding"), both ways, and every invalid form the spec
 * and its test suite list: the decoder must refuse each, which makes the socket layer close
 * the connection (tests/interop/socketio-bad-input.test.mjs checks that end to end). */
#include "ferry_test.h"

#include <stdlib.h>

#include "socket/packet.h"

static const unsigned char b1234[] = {1, 2, 3, 4};

/* Encode and compare the text packet (with its Engine.IO "4") and the attachments. */
static void expect_encoded(int type, const char *nsp, int64_t id, const char *json,
                           const char *want, int nbin, const void *const *bins,
                           const size_t *lens)
{
    cJSON *data = json != NULL ? cJSON_Parse(json) : NULL;
    if (json != NULL)
        assert_non_null(data);
    sio_encoded e;
    assert_int_equal(sio_encode(type, nsp, id, data, &e), 0);
    assert_int_equal(e.n, 1 + (size_t)nbin);
    assert_int_equal(e.bufs[0]->len, strlen(want));
    assert_memory_equal(e.bufs[0]->data, want, strlen(want));
    for (int i = 0; i < nbin; i++) {
        assert_true(e.bufs[1 + i]->flags & FERRY_BUF_BINARY);
        assert_int_equal(e.bufs[1 + i]->len, lens[i]);
        assert_memory_equal(e.bufs[1 + i]->data, bins[i], lens[i]);
    }
    sio_encoded_release(&e);
    cJSON_Delete(data);
}

/* A cJSON array from JSON text where "$0", "$1" stand for binary arguments. */
static cJSON *with_binary(const char *json, int nbin, const void *const *bins,
                          const size_t *lens)
{
    cJSON *a = cJSON_Parse(json);
    assert_non_null(a);
    for (cJSON *c = a->child; c != NULL; c = c->next)
        if (cJSON_IsString(c) && c->valuestring[0] == '$') {
            int i = c->valuestring[1] - '0';
            assert_true(i < nbin);
            cJSON *b = ferry_binary_new(bins[i], lens[i]);
            assert_non_null(b);
            assert_true(cJSON_ReplaceItemViaPointer(a, c, b));
            c = b;
        }
    return a;
}

static void spec_encode_connect(void **state)
{
    (void)state;
    expect_encoded(SIO_CONNECT, "/", SIO_NO_ID, NULL, "40", 0, NULL, NULL);
    expect_encoded(SIO_CONNECT, "/", SIO_NO_ID, "{\"sid\":\"wZX3oN0bSVIhsaknAAAI\"}",
                   "40{\"sid\":\"wZX3oN0bSVIhsaknAAAI\"}", 0, NULL, NULL);
    expect_encoded(SIO_CONNECT, "/admin", SIO_NO_ID, NULL, "40/admin,", 0, NULL, NULL);
    expect_encoded(SIO_CONNECT, "/admin", SIO_NO_ID, "{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}",
                   "40/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}", 0, NULL, NULL);
    expect_encoded(SIO_CONNECT_ERROR, "/", SIO_NO_ID, "{\"message\":\"Not authorized\"}",
                   "44{\"message\":\"Not authorized\"}", 0, NULL, NULL);
}

static void spec_encode_events(void **state)
{
    (void)state;
    expect_encoded(SIO_EVENT, "/", SIO_NO_ID, "[\"foo\"]", "42[\"foo\"]", 0, NULL, NULL);
    expect_encoded(SIO_EVENT, "/admin", SIO_NO_ID, "[\"bar\"]", "42/admin,[\"bar\"]", 0, NULL,
                   NULL);
    expect_encoded(SIO_EVENT, "/", 12, "[\"foo\"]", "4212[\"foo\"]", 0, NULL, NULL);
    expect_encoded(SIO_ACK, "/", 12, "[]", "4312[]", 0, NULL, NULL);
    expect_encoded(SIO_EVENT, "/admin", 13, "[\"foo\"]", "42/admin,13[\"foo\"]", 0, NULL, NULL);
    expect_encoded(SIO_ACK, "/admin", 13, "[\"bar\"]", "43/admin,13[\"bar\"]", 0, NULL, NULL);
    expect_encoded(SIO_ACK, "/", 14, "[\"bar\"]", "4314[\"bar\"]", 0, NULL, NULL);
    expect_encoded(SIO_EVENT, "/", 15, "[\"foo\"]", "4215[\"foo\"]", 0, NULL, NULL);
    expect_encoded(SIO_DISCONNECT, "/", SIO_NO_ID, NULL, "41", 0, NULL, NULL);
    expect_encoded(SIO_DISCONNECT, "/admin", SIO_NO_ID, NULL, "41/admin,", 0, NULL, NULL);
}

static void encode_binary(int type, const char *nsp, int64_t id, const char *json,
                          const char *want, int nbin, const void *const *bins,
                          const size_t *lens)
{
    cJSON *a = with_binary(json, nbin, bins, lens);
    char *before = cJSON_PrintUnformatted(a);
    sio_encoded e;
    assert_int_equal(sio_encode(type, nsp, id, a, &e), 0);
    assert_int_equal(e.n, 1 + (size_t)nbin);
    assert_int_equal(e.bufs[0]->len, strlen(want));
    assert_memory_equal(e.bufs[0]->data, want, strlen(want));
    for (int i = 0; i < nbin; i++) {
        assert_true(e.bufs[1 + i]->flags & FERRY_BUF_BINARY);
        assert_int_equal(e.bufs[1 + i]->len, lens[i]);
        assert_memory_equal(e.bufs[1 + i]->data, bins[i], lens[i]);
    }
    /* The caller's arguments are borrowed: unchanged by the encoding. */
    char *after = cJSON_PrintUnformatted(a);
    assert_string_equal(before, after);
    free(before);
    free(after);
    sio_encoded_release(&e);
    cJSON_Delete(a);
}

static void spec_encode_binary(void **state)
{
    (void)state;
    const void *one[] = {b1234};
    const size_t onel[] = {4};
    encode_binary(SIO_EVENT, "/", SIO_NO_ID, "[\"baz\",\"$0\"]",
                  "451-[\"baz\",{\"_placeholder\":true,\"num\":0}]", 1, one, onel);
    const void *two[] = {b1234, b1234 + 2};
    const size_t twol[] = {2, 2};
    encode_binary(SIO_EVENT, "/admin", SIO_NO_ID, "[\"baz\",\"$0\",\"$1\"]",
                  "452-/admin,[\"baz\",{\"_placeholder\":true,\"num\":0},"
                  "{\"_placeholder\":true,\"num\":1}]",
                  2, two, twol);
    encode_binary(SIO_EVENT, "/", 14, "[\"foo\",\"$0\"]",
                  "451-14[\"foo\",{\"_placeholder\":true,\"num\":0}]", 1, one, onel);
    encode_binary(SIO_ACK, "/", 15, "[\"bar\",\"$0\"]",
                  "461-15[\"bar\",{\"_placeholder\":true,\"num\":0}]", 1, one, onel);
}

static void encode_event_splices_the_name(void **state)
{
    (void)state;
    sio_encoded e;
    cJSON *args = cJSON_Parse("[1,\"2\",{\"3\":[true]}]");
    assert_int_equal(sio_encode_event("/", SIO_NO_ID, "message-back", args, &e), 0);
    const char *want = "42[\"message-back\",1,\"2\",{\"3\":[true]}]";
    assert_int_equal(e.bufs[0]->len, strlen(want));
    assert_memory_equal(e.bufs[0]->data, want, strlen(want));
    sio_encoded_release(&e);
    cJSON_Delete(args);
    assert_int_equal(sio_encode_event("/chat", 7, "a\"b", NULL, &e), 0);
    want = "42/chat,7[\"a\\\"b\"]";
    assert_int_equal(e.bufs[0]->len, strlen(want));
    assert_memory_equal(e.bufs[0]->data, want, strlen(want));
    sio_encoded_release(&e);
    cJSON *notarray = cJSON_CreateObject();
    assert_int_equal(sio_encode_event("/", SIO_NO_ID, "x", notarray, &e), -FERRY_EINVAL);
    cJSON_Delete(notarray);
}

/* ---- decoding */

static void expect_decoded(const char *text, int type, const char *nsp, int64_t id,
                           const char *json)
{
    sio_decoder d;
    sio_decoder_init(&d, 10);
    sio_packet p;
    assert_int_equal(sio_decode_text(&d, text, strlen(text), &p), 1);
    assert_int_equal(p.type, type);
    assert_string_equal(p.nsp, nsp);
    assert_int_equal(p.id, id);
    if (json == NULL) {
        assert_null(p.data);
    } else {
        char *s = cJSON_PrintUnformatted(p.data);
        assert_string_equal(s, json);
        free(s);
    }
    sio_packet_clear(&p);
    sio_decoder_free(&d);
}

static void spec_decode_examples(void **state)
{
    (void)state;
    expect_decoded("0", SIO_CONNECT, "/", SIO_NO_ID, NULL);
    expect_decoded("0{\"sid\":\"wZX3oN0bSVIhsaknAAAI\"}", SIO_CONNECT, "/", SIO_NO_ID,
                   "{\"sid\":\"wZX3oN0bSVIhsaknAAAI\"}");
    expect_decoded("0/admin,", SIO_CONNECT, "/admin", SIO_NO_ID, NULL);
    expect_decoded("0/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}", SIO_CONNECT, "/admin",
                   SIO_NO_ID, "{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}");
    expect_decoded("0/admin,{\"token\":\"123\"}", SIO_CONNECT, "/admin", SIO_NO_ID,
                   "{\"token\":\"123\"}");
    expect_decoded("4{\"message\":\"Not authorized\"}", SIO_CONNECT_ERROR, "/", SIO_NO_ID,
                   "{\"message\":\"Not authorized\"}");
    expect_decoded("2[\"foo\"]", SIO_EVENT, "/", SIO_NO_ID, "[\"foo\"]");
    expect_decoded("2/admin,[\"bar\"]", SIO_EVENT, "/admin", SIO_NO_ID, "[\"bar\"]");
    expect_decoded("212[\"foo\"]", SIO_EVENT, "/", 12, "[\"foo\"]");
    expect_decoded("312[]", SIO_ACK, "/", 12, "[]");
    expect_decoded("2/admin,13[\"foo\"]", SIO_EVENT, "/admin", 13, "[\"foo\"]");
    expect_decoded("3/admin,13[\"bar\"]", SIO_ACK, "/admin", 13, "[\"bar\"]");
    expect_decoded("314[\"bar\"]", SIO_ACK, "/", 14, "[\"bar\"]");
    expect_decoded("215[\"foo\"]", SIO_EVENT, "/", 15, "[\"foo\"]");
    expect_decoded("1", SIO_DISCONNECT, "/", SIO_NO_ID, NULL);
    expect_decoded("1/admin,", SIO_DISCONNECT, "/admin", SIO_NO_ID, NULL);
    /* The suite's forms without the comma, a number as event name, a v4 string error. */
    expect_decoded("0/custom", SIO_CONNECT, "/custom", SIO_NO_ID, NULL);
    expect_decoded("1/custom", SIO_DISCONNECT, "/custom", SIO_NO_ID, NULL);
    expect_decoded("2[42,\"x\"]", SIO_EVENT, "/", SIO_NO_ID, "[42,\"x\"]");
    expect_decoded("4\"old style\"", SIO_CONNECT_ERROR, "/", SIO_NO_ID, "\"old style\"");
    expect_decoded("2456[\"message-with-ack\",1,\"2\",{\"3\":[false]}]", SIO_EVENT, "/",
                   456, "[\"message-with-ack\",1,\"2\",{\"3\":[false]}]");
    expect_decoded("2 [\"spaces\"] ", SIO_EVENT, "/", SIO_NO_ID, "[\"spaces\"]");
}

/* Decode a binary packet and its attachments; check the binary arguments' bytes. */
static void spec_decode_binary(void **state)
{
    (void)state;
    sio_decoder d;
    sio_decoder_init(&d, 10);
    sio_packet p;
    const char *t = "452-/admin,789[\"baz\",{\"_placeholder\":true,\"num\":0},"
                    "{\"_placeholder\":true,\"num\":1}]";
    assert_int_equal(sio_decode_text(&d, t + 1, strlen(t) - 1, &p), 0);
    assert_int_equal(sio_decode_binary(&d, b1234, 2, &p), 0);
    assert_int_equal(sio_decode_binary(&d, b1234 + 2, 2, &p), 1);
    assert_int_equal(p.type, SIO_BINARY_EVENT);
    assert_string_equal(p.nsp, "/admin");
    assert_int_equal(p.id, 789);
    assert_int_equal(cJSON_GetArraySize(p.data), 3);
    unsigned char out[8];
    size_t n = sizeof(out);
    assert_true(ferry_binary_is(cJSON_GetArrayItem(p.data, 1)));
    assert_int_equal(ferry_binary_get(cJSON_GetArrayItem(p.data, 1), out, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "\x01\x02", 2);
    n = sizeof(out);
    assert_int_equal(ferry_binary_get(cJSON_GetArrayItem(p.data, 2), out, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "\x03\x04", 2);

    /* Re-encoding gives the suite's echo: the same placeholders and attachments. */
    sio_encoded e;
    cJSON *args = cJSON_DetachItemFromArray(p.data, 0);
    cJSON_Delete(args);
    assert_int_equal(sio_encode(SIO_ACK, "/", 789, p.data, &e), 0);
    const char *want =
        "462-789[{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]";
    assert_int_equal(e.n, 3);
    assert_int_equal(e.bufs[0]->len, strlen(want));
    assert_memory_equal(e.bufs[0]->data, want, strlen(want));
    assert_memory_equal(e.bufs[2]->data, "\x03\x04", 2);
    sio_encoded_release(&e);
    sio_packet_clear(&p);

    /* A binary packet with no attachments is complete at once; the decoder is reusable. */
    assert_int_equal(sio_decode_text(&d, "50-[\"x\"]", 8, &p), 1);
    assert_int_equal(p.type, SIO_BINARY_EVENT);
    sio_packet_clear(&p);
    sio_decoder_free(&d);
}

static void expect_invalid(const char *text, int err)
{
    sio_decoder d;
    sio_decoder_init(&d, 10);
    sio_packet p;
    int rc = sio_decode_text(&d, text, strlen(text), &p);
    if (rc != err)
        fail_msg("\"%s\": got %d, want %d", text, rc, err);
    sio_decoder_free(&d);
}

static void invalid_forms(void **state)
{
    (void)state;
    /* The spec's test suite: unknown type ("4abc"), payload not valid for its type ("42{}"),
     * a non-numeric ack id ("42abc[...]"). */
    expect_invalid("abc", -FERRY_EPROTO);
    expect_invalid("2{}", -FERRY_EPROTO);
    expect_invalid("2abc[\"message-with-ack\",1,\"2\",{\"3\":[false]}]", -FERRY_EPROTO);
    /* Types. */
    expect_invalid("", -FERRY_EPROTO);
    expect_invalid("7", -FERRY_EPROTO);
    expect_invalid("9[\"a\"]", -FERRY_EPROTO);
    expect_invalid("/2[\"a\"]", -FERRY_EPROTO);
    /* EVENT: "The payload is mandatory and MUST be a non-empty array". */
    expect_invalid("2", -FERRY_EPROTO);
    expect_invalid("2[]", -FERRY_EPROTO);
    expect_invalid("2\"foo\"", -FERRY_EPROTO);
    expect_invalid("2[{}]", -FERRY_EPROTO);
    expect_invalid("2[null]", -FERRY_EPROTO);
    expect_invalid("2[true]", -FERRY_EPROTO);
    /* Reserved event names. */
    expect_invalid("2[\"connect\"]", -FERRY_EPROTO);
    expect_invalid("2[\"connect_error\"]", -FERRY_EPROTO);
    expect_invalid("2[\"disconnect\"]", -FERRY_EPROTO);
    expect_invalid("2[\"disconnecting\"]", -FERRY_EPROTO);
    expect_invalid("2[\"newListener\"]", -FERRY_EPROTO);
    expect_invalid("2[\"removeListener\"]", -FERRY_EPROTO);
    /* ACK: "The payload is mandatory and MUST be an array (possibly empty)", with an id. */
    expect_invalid("3[]", -FERRY_EPROTO);
    expect_invalid("312", -FERRY_EPROTO);
    expect_invalid("312{}", -FERRY_EPROTO);
    expect_invalid("312\"x\"", -FERRY_EPROTO);
    /* CONNECT: an object or nothing; DISCONNECT: nothing; CONNECT_ERROR: object or string. */
    expect_invalid("0[]", -FERRY_EPROTO);
    expect_invalid("0\"token\"", -FERRY_EPROTO);
    expect_invalid("1{}", -FERRY_EPROTO);
    expect_invalid("1[]", -FERRY_EPROTO);
    expect_invalid("4", -FERRY_EPROTO);
    expect_invalid("4[]", -FERRY_EPROTO);
    expect_invalid("4123", -FERRY_EPROTO);
    /* JSON that is not exactly one value. */
    expect_invalid("2[\"a\"]x", -FERRY_EPROTO);
    expect_invalid("2[\"a\"][\"b\"]", -FERRY_EPROTO);
    expect_invalid("2[\"a\"", -FERRY_EPROTO);
    expect_invalid("2/admin,[\"a\",]", -FERRY_EPROTO);
    /* Ack ids: digits only, at most 2^53 - 1 (JavaScript's exact integers). */
    expect_invalid("29007199254740992[\"a\"]", -FERRY_EPROTO);
    expect_invalid("212345678901234567[\"a\"]", -FERRY_EPROTO);
    /* Attachments: "<n>-" required for binary types, at most max_attachments. */
    expect_invalid("5[\"a\"]", -FERRY_EPROTO);
    expect_invalid("5-[\"a\"]", -FERRY_EPROTO);
    expect_invalid("51[\"a\"]", -FERRY_EPROTO);
    expect_invalid("5a-[\"a\"]", -FERRY_EPROTO);
    expect_invalid("511-[\"a\"]", -FERRY_ELIMIT);
    expect_invalid("599999999999-[\"a\"]", -FERRY_ELIMIT);
    /* Placeholders: an index below the count, an integer, each once. */
    expect_invalid("51-[\"a\",{\"_placeholder\":true,\"num\":1}]", -FERRY_EPROTO);
    expect_invalid("51-[\"a\",{\"_placeholder\":true,\"num\":-1}]", -FERRY_EPROTO);
    expect_invalid("51-[\"a\",{\"_placeholder\":true,\"num\":0.5}]", -FERRY_EPROTO);
    expect_invalid("51-[\"a\",{\"_placeholder\":true,\"num\":\"0\"}]", -FERRY_EPROTO);
    expect_invalid("52-[\"a\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":0}]",
                   -FERRY_EPROTO);
    expect_invalid("61-[\"a\"]", -FERRY_EPROTO); /* BINARY_ACK without an id */
}

static void invalid_namespace_names(void **state)
{
    (void)state;
    char text[FERRY_NAME_MAX + 16];
    text[0] = '2';
    text[1] = '/';
    memset(text + 2, 'n', FERRY_NAME_MAX - 1);
    strcpy(text + 1 + FERRY_NAME_MAX, ",[\"a\"]");
    /* Exactly FERRY_NAME_MAX bytes: fine. */
    sio_decoder d;
    sio_decoder_init(&d, 10);
    sio_packet p;
    assert_int_equal(sio_decode_text(&d, text, strlen(text), &p), 1);
    assert_int_equal(strlen(p.nsp), FERRY_NAME_MAX);
    sio_packet_clear(&p);
    /* One more: refused. */
    text[0] = '2';
    text[1] = '/';
    memset(text + 2, 'n', FERRY_NAME_MAX);
    strcpy(text + 2 + FERRY_NAME_MAX, ",[\"a\"]");
    assert_int_equal(sio_decode_text(&d, text, strlen(text), &p), -FERRY_EPROTO);
    sio_decoder_free(&d);
    /* A NUL inside a name. */
    sio_decoder_init(&d, 10);
    assert_int_equal(sio_decode_text(&d, "2/a\0b,[\"a\"]", 11, &p), -FERRY_EPROTO);
    sio_decoder_free(&d);
}

static void attachments_at_the_limit(void **state)
{
    (void)state;
    char text[1024];
    int n = snprintf(text, sizeof(text), "5%d-[\"a\"", 10);
    for (int i = 0; i < 10; i++)
        n += snprintf(text + n, sizeof(text) - (size_t)n, ",{\"_placeholder\":true,\"num\":%d}",
                      i);
    strcat(text, "]");
    sio_decoder d;
    sio_decoder_init(&d, 10);
    sio_packet p;
    assert_int_equal(sio_decode_text(&d, text, strlen(text), &p), 0);
    for (int i = 0; i < 9; i++)
        assert_int_equal(sio_decode_binary(&d, b1234, 4, &p), 0);
    assert_int_equal(sio_decode_binary(&d, b1234, 4, &p), 1);
    assert_int_equal(cJSON_GetArraySize(p.data), 11);
    sio_packet_clear(&p);
    sio_decoder_free(&d);
    /* The limit is the configuration's: 2 allowed, 3 refused. */
    sio_decoder_init(&d, 2);
    assert_int_equal(sio_decode_text(&d, "53-[\"a\"]", 8, &p), -FERRY_ELIMIT);
    sio_decoder_free(&d);
}

static void binary_out_of_turn(void **state)
{
    (void)state;
    sio_decoder d;
    sio_packet p;
    /* An attachment with no packet waiting for it. */
    sio_decoder_init(&d, 10);
    assert_int_equal(sio_decode_binary(&d, b1234, 4, &p), -FERRY_EPROTO);
    sio_decoder_free(&d);
    /* Text while attachments are still due. */
    sio_decoder_init(&d, 10);
    const char *t = "51-[\"a\",{\"_placeholder\":true,\"num\":0}]";
    assert_int_equal(sio_decode_text(&d, t, strlen(t), &p), 0);
    assert_int_equal(sio_decode_text(&d, "2[\"b\"]", 6, &p), -FERRY_EPROTO);
    sio_decoder_free(&d); /* frees the waiting packet: no leak */
}

static void binary_helpers(void **state)
{
    (void)state;
    unsigned char bytes[256];
    for (int i = 0; i < 256; i++)
        bytes[i] = (unsigned char)i;
    for (size_t len = 0; len <= 256; len += 37) {
        cJSON *b = ferry_binary_new(bytes, len);
        assert_non_null(b);
        assert_true(ferry_binary_is(b));
        size_t n = 0;
        assert_int_equal(ferry_binary_get(b, NULL, &n), 0);
        assert_int_equal(n, len);
        unsigned char out[256];
        if (len > 0) {
            n = len - 1;
            assert_int_equal(ferry_binary_get(b, out, &n), -FERRY_ETOOBIG);
            assert_int_equal(n, len);
        }
        n = sizeof(out);
        assert_int_equal(ferry_binary_get(b, out, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(out, bytes, len);
        /* Borrowed, no copy: the same bytes. */
        size_t dn = 99;
        const void *view = ferry_binary_data(b, &dn);
        assert_non_null(view);
        assert_int_equal(dn, len);
        assert_memory_equal(view, bytes, len);
        /* ferry_json_dup keeps it a binary argument with its bytes. */
        cJSON *dup = ferry_json_dup(b, 0);
        assert_true(ferry_binary_is(dup));
        assert_non_null(ferry_binary_data(dup, &dn));
        assert_int_equal(dn, len);
        assert_ptr_not_equal(ferry_binary_data(dup, &dn), view);
        cJSON_Delete(b);
        n = sizeof(out);
        assert_int_equal(ferry_binary_get(dup, out, &n), 0); /* outlives its original */
        assert_int_equal(n, len);
        assert_memory_equal(out, bytes, len);
        cJSON_Delete(dup);
    }
    cJSON *s = cJSON_CreateString("x");
    assert_false(ferry_binary_is(s));
    size_t n = 1;
    assert_int_equal(ferry_binary_get(s, NULL, &n), -FERRY_EINVAL);
    assert_null(ferry_binary_data(s, &n));
    assert_int_equal(n, 0);
    cJSON_Delete(s);
    assert_false(ferry_binary_is(NULL));
    assert_null(ferry_binary_data(NULL, NULL));
    assert_null(ferry_json_dup(NULL, 0));
    assert_null(ferry_binary_new(NULL, 1));

    /* Written in place by the caller. */
    void *w = NULL;
    cJSON *a = ferry_binary_alloc(5, &w);
    assert_non_null(a);
    assert_non_null(w);
    memcpy(w, "hello", 5);
    n = 0;
    assert_memory_equal(ferry_binary_data(a, &n), "hello", 5);
    assert_int_equal(n, 5);
    cJSON_Delete(a);
    assert_null(ferry_binary_alloc(5, NULL));
    w = (void *)1;
    assert_null(ferry_binary_alloc((size_t)200 * 1000 * 1000, &w));
    assert_null(w);
}

/* The bytes form (binary.c): a binary argument ferry makes carries its bytes, never base64;
 * cJSON's own copies see the stand-in text only and are refused when sent (never silently
 * wrong bytes); the text form (parsed JSON, ferry_json_dup with FERRY_JSON_BASE64) is decoded. */
static void binary_bytes_form(void **state)
{
    (void)state;
    unsigned char bytes[300];
    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (unsigned char)(i * 7);
    cJSON *b = ferry_binary_new(bytes, sizeof(bytes));
    assert_non_null(b);
    size_t n = 0;
    const void *raw = sio_binary_raw(b, &n);
    assert_non_null(raw);
    assert_int_equal(n, sizeof(bytes));
    assert_memory_equal(raw, bytes, sizeof(bytes));
    assert_null(sio_binary_b64(b)); /* no base64 anywhere */

    /* cJSON_Print shows the stand-in; a cJSON_Duplicate copy has no bytes and says so. */
    char *text = cJSON_PrintUnformatted(b);
    assert_string_equal(text, "{\"_ferry_binary\":\"(300 bytes)\"}");
    cJSON_free(text);
    cJSON *dup = cJSON_Duplicate(b, 1);
    assert_null(sio_binary_raw(dup, &n));
    unsigned char out[300];
    n = sizeof(out);
    assert_int_equal(ferry_binary_get(dup, out, &n), -FERRY_EINVAL);
    assert_int_equal(ferry_binary_get(dup, NULL, &n), -FERRY_EINVAL); /* the size too */
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, dup);
    sio_encoded e;
    assert_int_equal(sio_encode_event("/", SIO_NO_ID, "up", args, &e), -FERRY_EINVAL);
    cJSON_Delete(args);

    /* A string reference to the text (not the member itself) is no binary member either. */
    cJSON *ref = cJSON_CreateObject();
    cJSON_AddItemToObject(ref, "_ferry_binary", cJSON_CreateStringReference(b->child->valuestring));
    assert_null(sio_binary_raw(ref, &n));
    cJSON_Delete(ref);

    /* The text form: printed, parsed again, still a binary argument. */
    cJSON *t64 = ferry_json_dup(b, FERRY_JSON_BASE64);
    assert_non_null(sio_binary_b64(t64));
    assert_null(sio_binary_raw(t64, &n));
    text = cJSON_PrintUnformatted(t64);
    cJSON *parsed = cJSON_Parse(text);
    cJSON_free(text);
    assert_true(ferry_binary_is(parsed));
    n = sizeof(out);
    assert_int_equal(ferry_binary_get(parsed, out, &n), 0);
    assert_int_equal(n, sizeof(bytes));
    assert_memory_equal(out, bytes, sizeof(bytes));
    /* ferry_json_dup of the text form copies the text. */
    cJSON *d2 = ferry_json_dup(parsed, 0);
    assert_string_equal(sio_binary_b64(d2), sio_binary_b64(parsed));
    cJSON_Delete(d2);
    cJSON_Delete(parsed);
    cJSON_Delete(t64);

    /* Moved (detached, added elsewhere): the bytes go with it. */
    cJSON *holder = cJSON_CreateArray();
    cJSON_AddItemToArray(holder, b);
    cJSON *moved = cJSON_DetachItemFromArray(holder, 0);
    cJSON_Delete(holder);
    assert_ptr_equal(sio_binary_raw(moved, &n), raw);
    b = moved;

    /* Emitting: the attachment holds the bytes, from the bytes form, from ferry_json_dup, from
     * the text form; nested arguments too; a reference to the argument works as itself. */
    for (int form = 0; form < 4; form++) {
        args = cJSON_CreateArray();
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddItemToObject(obj, "file", ferry_binary_new(bytes, sizeof(bytes)));
        cJSON_AddItemToArray(args, obj);
        if (form == 3)
            cJSON_AddItemReferenceToArray(args, b);
        cJSON *use = form == 1 ? ferry_json_dup(args, 0)
                     : form == 2 ? ferry_json_dup(args, FERRY_JSON_BASE64)
                                 : args;
        assert_int_equal(sio_encode_event("/", SIO_NO_ID, "up", use, &e), 0);
        assert_int_equal(e.n, form == 3 ? 3 : 2);
        for (size_t i = 1; i < e.n; i++) {
            assert_int_equal(e.bufs[i]->len, sizeof(bytes));
            assert_memory_equal(e.bufs[i]->data, bytes, sizeof(bytes));
            assert_true((e.bufs[i]->flags & FERRY_BUF_BINARY) != 0);
        }
        assert_memory_equal(e.bufs[0]->data, form == 3 ? "452-" : "451-", 4);
        static const char ph[] = "[\"up\",{\"file\":{\"_placeholder\":true,\"num\":0}}";
        assert_memory_equal(e.bufs[0]->data + 4, ph, sizeof(ph) - 1);
        sio_encoded_release(&e);
        if (use != args)
            cJSON_Delete(use);
        cJSON_Delete(args);
    }
    cJSON_Delete(b);

    /* Received: an attachment's bytes are kept as they came, in the bytes form. */
    sio_decoder d;
    sio_decoder_init(&d, 10);
    sio_packet p;
    const char *t = "51-[\"x\",{\"_placeholder\":true,\"num\":0}]";
    assert_int_equal(sio_decode_text(&d, t, strlen(t), &p), 0);
    assert_int_equal(sio_decode_binary(&d, bytes, sizeof(bytes), &p), 1);
    raw = ferry_binary_data(cJSON_GetArrayItem(p.data, 1), &n);
    assert_non_null(raw);
    assert_int_equal(n, sizeof(bytes));
    assert_memory_equal(raw, bytes, sizeof(bytes));
    assert_null(sio_binary_b64(cJSON_GetArrayItem(p.data, 1)));
    sio_packet_clear(&p);
    sio_decoder_free(&d);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(binary_bytes_form),
    cmocka_unit_test(spec_encode_connect),
    cmocka_unit_test(spec_encode_events),
    cmocka_unit_test(spec_encode_binary),
    cmocka_unit_test(encode_event_splices_the_name),
    cmocka_unit_test(spec_decode_examples),
    cmocka_unit_test(spec_decode_binary),
    cmocka_unit_test(invalid_forms),
    cmocka_unit_test(invalid_namespace_names),
    cmocka_unit_test(attachments_at_the_limit),
    cmocka_unit_test(binary_out_of_turn),
    cmocka_unit_test(binary_helpers),
};

FERRY_TEST_MAIN(tests)
