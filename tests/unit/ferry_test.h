/* Shared glue for the cmocka unit tests. */
#ifndef FERRY_TEST_H
#define FERRY_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

/* main() for a test program: with one argument, run only the case of that exact name (ctest
 * registers every case on its own); a name that matches no case fails instead of passing
 * vacuously. */
#define FERRY_TEST_MAIN(tests)                                                                 \
    int main(int argc, char **argv)                                                            \
    {                                                                                          \
        if (argc > 1) {                                                                        \
            size_t i_, n_ = sizeof(tests) / sizeof((tests)[0]);                                \
            for (i_ = 0; i_ < n_; i_++)                                                        \
                if (strcmp((tests)[i_].name, argv[1]) == 0)                                    \
                    break;                                                                     \
            if (i_ == n_) {                                                                    \
                fprintf(stderr, "no test case named %s\n", argv[1]);                           \
                return 2;                                                                      \
            }                                                                                  \
            cmocka_set_test_filter(argv[1]);                                                   \
        }                                                                                      \
        return cmocka_run_group_tests(tests, NULL, NULL);                                      \
    }

#endif
