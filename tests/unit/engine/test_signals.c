/* What ferry_server_new() does with SIGPIPE (ferry.h, "Signals"): the default disposition,
 * which ends the process on a write to a reset connection, becomes SIG_IGN; anything the
 * application chose stays. Each case runs in its own process (ctest), so the process-wide
 * disposition starts from what the case sets. */
#include "ferry_test.h"

#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "ferry.h"

static void set_disposition(void (*h)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = h;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGPIPE, &sa, NULL), 0);
}

static void (*disposition(void))(int)
{
    struct sigaction sa;
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    return sa.sa_handler;
}

static void make_and_close(void)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    ferry_server *srv;
    assert_int_equal(ferry_server_new(&loop, NULL, &srv), 0);
    assert_int_equal(ferry_server_close(srv, NULL, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void sigpipe_default_becomes_ignored(void **state)
{
    (void)state;
    set_disposition(SIG_DFL);
    make_and_close();
    assert_ptr_equal(disposition(), SIG_IGN);
    /* A write to a socket whose peer is gone now fails with EPIPE instead of ending us. */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    assert_int_equal(write(sv[0], "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    close(sv[0]);
}

static int handled;
static void on_sigpipe(int sig)
{
    (void)sig;
    handled++;
}

static void sigpipe_app_handler_is_kept(void **state)
{
    (void)state;
    set_disposition(on_sigpipe);
    make_and_close();
    assert_ptr_equal(disposition(), on_sigpipe);
    raise(SIGPIPE);
    assert_int_equal(handled, 1);
}

static void sigpipe_bad_config_changes_nothing(void **state)
{
    (void)state;
    set_disposition(SIG_DFL);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    ferry_server_config cfg;
    ferry_server_config_init(&cfg);
    cfg.path = "no-slash";
    ferry_server *srv;
    assert_int_equal(ferry_server_new(&loop, &cfg, &srv), -FERRY_EINVAL);
    assert_ptr_equal(disposition(), SIG_DFL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main_tests(int argc, char **argv);

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(sigpipe_default_becomes_ignored),
    cmocka_unit_test(sigpipe_app_handler_is_kept),
    cmocka_unit_test(sigpipe_bad_config_changes_nothing),
};

FERRY_TEST_MAIN(tests)
