/* sc_test.h - a minimal unit-test harness: CHECK records failures without
 * stopping, RUN calls one test, sc_test_report() prints the closing line
 * "N passed, N failed" and returns the exit code. */
#ifndef SC_TEST_H
#define SC_TEST_H

#include <stdio.h>

static int sc_test_failed_checks, sc_tests_passed, sc_tests_failed;

#define CHECK(cond) do { if (!(cond)) { sc_test_failed_checks++; \
    fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
    } } while (0)

#define RUN(fn) do { int before_ = sc_test_failed_checks; \
    fprintf(stderr, "%s ...\n", #fn); fn(); \
    if (sc_test_failed_checks == before_) sc_tests_passed++; \
    else { sc_tests_failed++; fprintf(stderr, "%s FAILED\n", #fn); } } while (0)

static int sc_test_report(const char *suite)
{
    printf("%s: %d passed, %d failed\n", suite, sc_tests_passed, sc_tests_failed);
    return sc_tests_failed ? 1 : 0;
}

/* n bytes from 2n hex digits (test vectors); unused in some suites */
static inline void sc_test_from_hex(const char *hex, unsigned char *out, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned int v = 0;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
}

#endif
