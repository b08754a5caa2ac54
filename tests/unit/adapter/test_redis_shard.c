/* lib/adapter/redis_shard.c's sans-I/O pieces: the Redis Cluster key slot (CRC16 XMODEM and
 * hash tags, the specification's vectors), MOVED/ASK errors, CLUSTER SLOTS answers and the
 * pushes of a sharded subscription, read from bytes by hiredis's reader split at every point. */
#include "ferry_test.h"

#include <hiredis/hiredis.h>

#include "adapter/redis_shard.h"

#define KS(s) redis_keyslot((s), strlen(s))

static void keyslot_spec_vectors(void **state)
{
    (void)state;
    /* The specification: "the output of CRC16 for the string 123456789 is 0x31C3". */
    assert_int_equal(redis_crc16("123456789", 9), 0x31C3);
    assert_int_equal(KS("123456789"), 0x31C3 & 16383);
    assert_int_equal(KS("foo"), 12182);
    assert_int_equal(KS("bar"), 5061);
    assert_int_equal(KS(""), 0);
    assert_int_equal(redis_crc16("user1000", 8), 0x4D73);
}

static void keyslot_hash_tags(void **state)
{
    (void)state;
    /* The specification's examples. */
    assert_int_equal(KS("{user1000}.following"), KS("user1000"));
    assert_int_equal(KS("{user1000}.followers"), KS("user1000"));
    assert_int_equal(KS("foo{}{bar}"), redis_crc16("foo{}{bar}", 10) & 16383); /* empty tag */
    assert_int_equal(KS("foo{{bar}}zap"), KS("{bar"));
    assert_int_equal(KS("foo{bar}{zap}"), KS("bar"));
    assert_int_equal(KS("{"), redis_crc16("{", 1) & 16383); /* no closing brace */
    assert_int_equal(KS("a}b{c"), redis_crc16("a}b{c", 5) & 16383);
    /* ferry's channels: rooms spread over the slots unless the room names a tag. */
    assert_int_equal(KS("ferry#/#room-0#"), 2715);
    assert_int_equal(KS("ferry#/#{team}-a#"), KS("ferry#/#{team}-b#"));
    /* Bytes, not C strings. */
    assert_int_equal(redis_keyslot("a\0b", 3), redis_crc16("a\0b", 3) & 16383);
}

static void redirect_errors(void **state)
{
    (void)state;
    unsigned slot = 0;
    int port = 0;
    char host[64];
#define RD(s) redis_redirect_parse((s), strlen(s), &slot, host, sizeof(host), &port)
    assert_int_equal(RD("MOVED 3999 127.0.0.1:6381"), 1);
    assert_int_equal(slot, 3999);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6381);
    assert_int_equal(RD("ASK 16383 10.0.0.5:7000"), 2);
    assert_int_equal(slot, 16383);
    assert_string_equal(host, "10.0.0.5");
    assert_int_equal(port, 7000);
    assert_int_equal(RD("MOVED 0 [::1]:7001"), 1);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7001);
    assert_int_equal(RD("MOVED 1 ::1:7002"), 1);
    assert_string_equal(host, "::1");
    const char *bad[] = {"MOVED 16384 127.0.0.1:1",
                         "MOVED x 127.0.0.1:1",
                         "MOVED 1 127.0.0.1",
                         "MOVED 1 127.0.0.1:0",
                         "MOVED 1 127.0.0.1:65536",
                         "MOVED 1 :80",
                         "MOVED 1 h:",
                         "MOVED 1 h:8x",
                         "MOVED  1 h:80",
                         "MOVED 1",
                         "MOVED",
                         "ERR unknown command",
                         "CLUSTERDOWN The cluster is down",
                         "ASK",
                         "MOVED 1234567 h:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(
            redis_redirect_parse(bad[i], strlen(bad[i]), &slot, host, sizeof(host), &port), 0);
    /* A host longer than the buffer is refused, not cut. */
    char small[4];
    assert_int_equal(
        redis_redirect_parse("MOVED 1 127.0.0.1:80", 20, &slot, small, sizeof(small), &port), 0);
#undef RD
}

/* Feed bytes to a fresh reader split at split (and whole when split is 0); one reply. */
static redisReply *read_reply(const char *bytes, size_t len, size_t split)
{
    redisReader *rd = redisReaderCreate();
    assert_non_null(rd);
    void *rep = NULL;
    if (split > 0 && split < len) {
        assert_int_equal(redisReaderFeed(rd, bytes, split), REDIS_OK);
        assert_int_equal(redisReaderGetReply(rd, &rep), REDIS_OK);
        assert_null(rep); /* not whole yet */
        assert_int_equal(redisReaderFeed(rd, bytes + split, len - split), REDIS_OK);
    } else {
        assert_int_equal(redisReaderFeed(rd, bytes, len), REDIS_OK);
    }
    assert_int_equal(redisReaderGetReply(rd, &rep), REDIS_OK);
    assert_non_null(rep);
    redisReaderFree(rd);
    return rep;
}

static void pushes_at_every_split(void **state)
{
    (void)state;
    static const char msg[] = "*3\r\n$8\r\nsmessage\r\n$10\r\nferry#/#a#\r\n$5\r\nhe\0lo\r\n";
    static const char sub[] = "*3\r\n$10\r\nssubscribe\r\n$10\r\nferry#/#a#\r\n:1\r\n";
    static const char unsub[] = "*3\r\n$12\r\nsunsubscribe\r\n$10\r\nferry#/#a#\r\n:0\r\n";
    static const char classic[] = "*3\r\n$7\r\nmessage\r\n$10\r\nferry#/#a#\r\n$1\r\nx\r\n";
    struct {
        const char *bytes;
        size_t len;
        int kind;
    } cases[] = {
        {msg, sizeof(msg) - 1, PUSH_MESSAGE},
        {sub, sizeof(sub) - 1, PUSH_SUBSCRIBED},
        {unsub, sizeof(unsub) - 1, PUSH_UNSUBSCRIBED},
        {classic, sizeof(classic) - 1, PUSH_NONE},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
        for (size_t split = 0; split < cases[c].len; split++) {
            redisReply *rep = read_reply(cases[c].bytes, cases[c].len, split);
            const char *chan = NULL, *data = NULL;
            size_t clen = 0, dlen = 0;
            assert_int_equal(redis_push_parse(rep, &chan, &clen, &data, &dlen), cases[c].kind);
            if (cases[c].kind != PUSH_NONE) {
                assert_int_equal(clen, 10);
                assert_memory_equal(chan, "ferry#/#a#", 10);
            }
            if (cases[c].kind == PUSH_MESSAGE) {
                assert_int_equal(dlen, 5);
                assert_memory_equal(data, "he\0lo", 5);
            } else {
                assert_null(data);
            }
            freeReplyObject(rep);
        }
    /* Not pushes at all: an error, a status, a short array. */
    static const char *others[] = {"-MOVED 1 127.0.0.1:7000\r\n", "+OK\r\n",
                                   "*2\r\n$8\r\nsmessage\r\n$1\r\na\r\n",
                                   "*3\r\n$10\r\nssubscribe\r\n$1\r\na\r\n$1\r\n1\r\n"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        redisReply *rep = read_reply(others[i], strlen(others[i]), 0);
        const char *chan, *data;
        size_t clen, dlen;
        assert_int_equal(redis_push_parse(rep, &chan, &clen, &data, &dlen), PUSH_NONE);
        freeReplyObject(rep);
    }
}

typedef struct ranges {
    unsigned first[8], last[8];
    char host[8][64];
    int port[8];
    int n;
} ranges;

static void on_range(void *ud, unsigned first, unsigned last, const char *host, int port)
{
    ranges *r = ud;
    assert_true(r->n < 8);
    r->first[r->n] = first;
    r->last[r->n] = last;
    snprintf(r->host[r->n], sizeof(r->host[0]), "%s", host);
    r->port[r->n] = port;
    r->n++;
}

static void cluster_slots_answers(void **state)
{
    (void)state;
    /* Three masters (the third with an unknown endpoint "?"), one with a replica, as Redis 7
     * answers (each node: ip, port, id, then a map of hostnames in 7.0). */
    static const char ok[] =
        "*3\r\n"
        "*3\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:30001\r\n$3\r\nabc\r\n*0\r\n"
        "*4\r\n:5461\r\n:10922\r\n*3\r\n$9\r\n127.0.0.1\r\n:30002\r\n$3\r\ndef\r\n"
        "*3\r\n$9\r\n127.0.0.1\r\n:30005\r\n$3\r\nrep\r\n"
        "*3\r\n:10923\r\n:16383\r\n*3\r\n$1\r\n?\r\n:30003\r\n$3\r\nghi\r\n";
    for (size_t split = 0; split < sizeof(ok) - 1; split += 7) {
        redisReply *rep = read_reply(ok, sizeof(ok) - 1, split);
        ranges r = {0};
        assert_int_equal(redis_slots_parse(rep, on_range, &r), 3);
        assert_int_equal(r.n, 3);
        assert_int_equal(r.first[0], 0);
        assert_int_equal(r.last[0], 5460);
        assert_string_equal(r.host[0], "127.0.0.1");
        assert_int_equal(r.port[0], 30001);
        assert_int_equal(r.first[1], 5461);
        assert_int_equal(r.port[1], 30002); /* the master, not the replica */
        assert_int_equal(r.last[2], 16383);
        assert_string_equal(r.host[2], ""); /* "?": the node that was asked */
        freeReplyObject(rep);
    }
    static const char *bad[] = {
        "-ERR This instance has cluster support disabled\r\n",
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",  /* slot out of range */
        "*1\r\n*3\r\n:10\r\n:9\r\n*2\r\n$1\r\nh\r\n:1\r\n",     /* last before first */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n",      /* port 0 */
        "*1\r\n*2\r\n:0\r\n:1\r\n",                             /* no master */
        "*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* slot as a string */
        "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n",            /* master without port */
        ":5\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply *rep = read_reply(bad[i], strlen(bad[i]), 0);
        ranges r = {0};
        assert_int_equal(redis_slots_parse(rep, on_range, &r), -1);
        freeReplyObject(rep);
    }
    /* An empty map (a cluster without slots assigned yet): no range. */
    redisReply *rep = read_reply("*0\r\n", 4, 0);
    ranges r = {0};
    assert_int_equal(redis_slots_parse(rep, on_range, &r), 0);
    freeReplyObject(rep);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(keyslot_spec_vectors),  cmocka_unit_test(keyslot_hash_tags),
    cmocka_unit_test(redirect_errors),       cmocka_unit_test(pushes_at_every_split),
    cmocka_unit_test(cluster_slots_answers),
};

FERRY_TEST_MAIN(tests)
