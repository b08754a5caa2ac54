/* One transport as a client sees it, on the loop harness with a raw client (tr_util.h): the
 * happy path, a close of the session or of the whole server from inside every callback the
 * transport leads to (open, message, close), handshake heads at and over max_header_bytes and a
 * long Origin, and allocation failure. Under ASan/UBSan every run must end with no leak and a
 * clean loop. Built once per transport (tests/unit/transports/CMakeLists.txt defines which):
 * the same cases, each under its transport's name in ctest. */
#include "tr_util.h"

/* The transport, the upgrades its handshake offers, and how a binary message reaches it. */
#if defined(TR_WEBSOCKET)
static const tr_driver *const D = &tr_websocket;
#define UPGRADES "[]"
#define BINARY "B\x01\x02"
#elif defined(TR_SSE)
static const tr_driver *const D = &tr_sse;
#define UPGRADES "[\"websocket\"]"
#define BINARY "bAQI="
#elif defined(TR_POLLING)
static const tr_driver *const D = &tr_polling;
#define UPGRADES "[\"websocket\"]"
#define BINARY "bAQI="
#elif defined(TR_SHORT_POLLING)
static const tr_driver *const D = &tr_short_polling;
#define UPGRADES "[\"websocket\",\"sse\"]"
#define BINARY "bAQI="
#else
#error "define the transport under test (TR_WEBSOCKET, TR_SSE, TR_POLLING, TR_SHORT_POLLING)"
#endif


static void close_session_in_open(void **state)
{
    (void)state;
    tr_close_in_open(D, ACT_CLOSE_SESSION);
}

static void close_server_in_open(void **state)
{
    (void)state;
    tr_close_in_open(D, ACT_CLOSE_SERVER);
}

static void close_session_in_message(void **state)
{
    (void)state;
    tr_close_in_message(D, ACT_CLOSE_SESSION);
}

static void close_server_in_message(void **state)
{
    (void)state;
    tr_close_in_message(D, ACT_CLOSE_SERVER);
}

static void close_session_in_close(void **state)
{
    (void)state;
    tr_close_in_close(D, ACT_CLOSE_SESSION);
}

static void close_server_in_close(void **state)
{
    (void)state;
    tr_close_in_close(D, ACT_CLOSE_SERVER);
}

static void long_headers(void **state)
{
    (void)state;
    tr_long_headers(D);
}

static void echo_and_close(void **state)
{
    (void)state;
    tr_echo_and_close(D, UPGRADES, BINARY);
}

static void nomem(void **state)
{
    (void)state;
    tr_nomem(D);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(echo_and_close),
    cmocka_unit_test(close_session_in_open),
    cmocka_unit_test(close_server_in_open),
    cmocka_unit_test(close_session_in_message),
    cmocka_unit_test(close_server_in_message),
    cmocka_unit_test(close_session_in_close),
    cmocka_unit_test(close_server_in_close),
    cmocka_unit_test(long_headers),
    cmocka_unit_test(nomem),
};

FERRY_TEST_MAIN(tests)
