/* ferry_server_config_init()'s max_connections follows the process's descriptor limit (soft
 * RLIMIT_NOFILE less 32 kept for listeners, the loop and files), so that a server holds as many
 * sessions as it can and refuses the rest with a log line before accept() runs dry. Each case
 * runs in its own process (ctest): lowering the limit affects nothing else. */
#include "ferry_test.h"

#include <sys/resource.h>

#include "ferry.h"

static void follows_the_descriptor_limit(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 1000000)
        assert_int_equal(cfg.max_connections, rl.rlim_cur - 32);
    rl.rlim_cur = 1000;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    ferry_server_config_init(&cfg);
    assert_int_equal(cfg.max_connections, 968);
    rl.rlim_cur = 40; /* tiny: half of it, never 0 (which would mean no limit) */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    ferry_server_config_init(&cfg);
    assert_int_equal(cfg.max_connections, 20);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(follows_the_descriptor_limit),
};

FERRY_TEST_MAIN(tests)
