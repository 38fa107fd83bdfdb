/* testhelp.h: the two assertion macros every test uses (after Redis' testhelp.h).
 * CHECK records a failure and goes on; REQUIRE stops the test. Each prints the
 * condition, file and line, and an optional printf-style explanation. */
#ifndef VKLLM_TESTHELP_H
#define VKLLM_TESTHELP_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int test_failures;
static int test_checks;

/* The optional explanation; not a format-checked function so that CHECK(x)
 * with no message compiles without a zero-length-format warning. */
static inline void test_explain(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Each evaluates COND exactly once. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);               \
            test_explain("" __VA_ARGS__);                                                          \
        }                                                                                          \
    } while (0)

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: REQUIRE(%s) failed: ", __FILE__, __LINE__, #cond);             \
            test_explain("" __VA_ARGS__);                                                          \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* REQUIRE for a call that returns a vkllm status: it must be VKLLM_OK. */
#define REQUIRE_OK(call, ...)                                                                      \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        REQUIRE(rc_ == VKLLM_OK, __VA_ARGS__);                                                     \
    } while (0)

/* Ends main: prints a summary and returns the exit status for ctest. */
/* Whitespace-separated integers of S into OUT (at most CAP): a golden file's
 * token-id lists. Returns how many. */
static inline int test_parse_ids(const char *s, int32_t *out, int cap)
{
    int n = 0;
    char *end;
    for (long v = strtol(s, &end, 10); end != s && n < cap; v = strtol(s, &end, 10)) {
        out[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

#define TEST_REPORT()                                                                              \
    (fprintf(stderr, "%d checks, %d failures\n", test_checks, test_failures), test_failures ? 1 : 0)

#endif
