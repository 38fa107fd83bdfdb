/* test_number.c: the strict reader of numeric settings (engine/core/number.h).
 *
 * It replaced strtoull and strtod, which took values they should have refused:
 * VKLLM_MAX_MEMORY and VKLLM_FAULT's counts saturated past 2^64 without a
 * suffix ("99999999999999999999" was 2^64 - 1), VKLLM_TIMEOUT read hex
 * ("0x10" was 16 s), "inf", "nan" and "1e3". Each value below is what a
 * setting of that kind reads, or the start of the reason it is refused. */
#include "core/number.h"
#include "testhelp.h"

#include <string.h>

#define BAD 0 /* refused: the case has a WHY */

static const struct {
    enum number_kind kind;
    const char *s;
    uint64_t want;
    const char *why; /* NULL: accepted as WANT; else the start of the reason */
} cases[] = {
    {NUMBER_COUNT, "0", 0, NULL},
    {NUMBER_COUNT, "007", 7, NULL},
    {NUMBER_COUNT, "18446744073709551615", UINT64_MAX, NULL},
    {NUMBER_COUNT, "18446744073709551616", BAD, "is too large"},
    {NUMBER_COUNT, "99999999999999999999", BAD, "is too large"},
    {NUMBER_COUNT, "", BAD, "is not a count"},
    {NUMBER_COUNT, "-1", BAD, "is not a count"},
    {NUMBER_COUNT, "+1", BAD, "is not a count"},
    {NUMBER_COUNT, " 1", BAD, "is not a count"},
    {NUMBER_COUNT, "1 ", BAD, "is not a count"},
    {NUMBER_COUNT, "0x10", BAD, "is not a count"},
    {NUMBER_COUNT, "1e3", BAD, "is not a count"},
    {NUMBER_COUNT, "1K", BAD, "is not a count"},
    {NUMBER_SIZE, "4096", 4096, NULL},
    {NUMBER_SIZE, "8k", 8192, NULL},
    {NUMBER_SIZE, "3M", 3u << 20, NULL},
    {NUMBER_SIZE, "2g", 2ull << 30, NULL},
    {NUMBER_SIZE, "1T", 1ull << 40, NULL},
    {NUMBER_SIZE, "16777215T", 16777215ull << 40, NULL},
    {NUMBER_SIZE, "16777216T", BAD, "is too large"},
    {NUMBER_SIZE, "17179869184G", BAD, "is too large"},
    {NUMBER_SIZE, "18446744073709551616", BAD, "is too large"},
    {NUMBER_SIZE, "99999999999999999999G", BAD, "is too large"},
    {NUMBER_SIZE, "99999999999999999999X", BAD, "is not a size"}, /* the syntax first */
    {NUMBER_SIZE, "G", BAD, "is not a size"},
    {NUMBER_SIZE, "4GB", BAD, "is not a size"},
    {NUMBER_SIZE, "4KiB", BAD, "is not a size"},
    {NUMBER_SIZE, "1.5G", BAD, "is not a size"},
    {NUMBER_SIZE, "1P", BAD, "is not a size"},
    {NUMBER_SIZE, "0x1000", BAD, "is not a size"},
    {NUMBER_SIZE, "inf", BAD, "is not a size"},
    {NUMBER_SECONDS, "60", 60000000000, NULL},
    {NUMBER_SECONDS, "2.5", 2500000000, NULL},
    {NUMBER_SECONDS, "0.000000001", 1, NULL},
    {NUMBER_SECONDS, "0.0000000019", 1, NULL}, /* past nanoseconds: dropped */
    {NUMBER_SECONDS, "18446744073", 18446744073000000000u, NULL},
    {NUMBER_SECONDS, "18446744074", BAD, "is too large"},
    {NUMBER_SECONDS, "99999999999999999999", BAD, "is too large"},
    {NUMBER_SECONDS, "0x10", BAD, "is not a number of seconds"},
    {NUMBER_SECONDS, "1e3", BAD, "is not a number of seconds"},
    {NUMBER_SECONDS, "inf", BAD, "is not a number of seconds"},
    {NUMBER_SECONDS, "nan", BAD, "is not a number of seconds"},
    {NUMBER_SECONDS, "2.", BAD, "is not a number of seconds"},
    {NUMBER_SECONDS, ".5", BAD, "is not a number of seconds"},
    {NUMBER_SECONDS, "5s", BAD, "is not a number of seconds"},
    {NUMBER_SECONDS, "-1", BAD, "is not a number of seconds"},
    {NUMBER_SECONDS, "1.2.3", BAD, "is not a number of seconds"},
};

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint64_t v;
        const char *why = "";
        int rc = number_parse(cases[i].s, strlen(cases[i].s), cases[i].kind, &v, &why);
        if (cases[i].why)
            CHECK(rc == VKLLM_E_INVALID && !strncmp(why, cases[i].why, strlen(cases[i].why)),
                  "'%s': rc %d, %llu, '%s'", cases[i].s, rc, (unsigned long long)v, why);
        else
            CHECK(rc == VKLLM_OK && v == cases[i].want, "'%s': rc %d, %llu (%s)", cases[i].s, rc,
                  (unsigned long long)v, rc ? why : "");
    }
    /* only LEN bytes are read: a count inside "KIND:N,..." */
    uint64_t v;
    const char *why;
    CHECK(number_parse("12,x", 2, NUMBER_COUNT, &v, &why) == VKLLM_OK && v == 12);
    /* the message names the setting and shows its value escaped */
    struct vkllm_error err = {0};
    CHECK(number_setting("VKLLM_X", "4\x1b]0;t\x07", NUMBER_SIZE, &v, &err) == VKLLM_E_INVALID &&
              !strcmp(err.msg, "VKLLM_X: '4\\x1b]0;t\\x07' is not a size in bytes (decimal digits "
                               "and an optional K, M, G or T: e.g. 512M or 4G)"),
          "%s", err.msg);
    CHECK(number_setting("VKLLM_X", "99999999999999999999", NUMBER_SIZE, &v, &err) ==
                  VKLLM_E_INVALID &&
              !strcmp(err.msg, "VKLLM_X: '99999999999999999999' is too large for 64 bits"),
          "%s", err.msg);

    /* the command line's integers: 2^64 - 1 is out of range, not "not an
     * integer" (what strtoll's overflow was reported as) */
    static const struct {
        const char *s;
        int rc;
        bool range;
        int64_t want;
    } ints[] = {
        {"0", VKLLM_OK, false, 0},
        {"-1", VKLLM_OK, false, -1},
        {"9223372036854775807", VKLLM_OK, false, INT64_MAX},
        {"-9223372036854775808", VKLLM_OK, false, INT64_MIN},
        {"9223372036854775808", VKLLM_E_INVALID, true, 0},
        {"-9223372036854775809", VKLLM_E_INVALID, true, 0},
        {"18446744073709551615", VKLLM_E_INVALID, true, 0},
        {"99999999999999999999999", VKLLM_E_INVALID, true, 0},
        {"", VKLLM_E_INVALID, false, 0},
        {"-", VKLLM_E_INVALID, false, 0},
        {" 1", VKLLM_E_INVALID, false, 0},
        {"1 ", VKLLM_E_INVALID, false, 0},
        {"+1", VKLLM_E_INVALID, false, 0},
        {"0x2", VKLLM_E_INVALID, false, 0},
        {"1e3", VKLLM_E_INVALID, false, 0},
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        int64_t got;
        bool range;
        int rc = number_int(ints[i].s, &got, &range);
        CHECK(rc == ints[i].rc && range == ints[i].range && got == ints[i].want,
              "int '%s': rc %d, range %d, %lld", ints[i].s, rc, range, (long long)got);
    }
    /* and floats as strictly: strtod took hex, leading blanks, inf and nan */
    static const struct {
        const char *s;
        int rc;
        bool range;
        double want;
    } floats[] = {
        {"0", VKLLM_OK, false, 0},           {"0.5", VKLLM_OK, false, 0.5},
        {".5", VKLLM_OK, false, 0.5},        {"-2", VKLLM_OK, false, -2},
        {"1e-3", VKLLM_OK, false, 1e-3},     {"2.5E+2", VKLLM_OK, false, 250},
        {"1e999", VKLLM_E_INVALID, true, 0}, {"0x1p-1", VKLLM_E_INVALID, false, 0},
        {"0x.8", VKLLM_E_INVALID, false, 0}, {" 1", VKLLM_E_INVALID, false, 0},
        {"1 ", VKLLM_E_INVALID, false, 0},   {"+1", VKLLM_E_INVALID, false, 0},
        {"inf", VKLLM_E_INVALID, false, 0},  {"nan", VKLLM_E_INVALID, false, 0},
        {"2.", VKLLM_E_INVALID, false, 0},   {".", VKLLM_E_INVALID, false, 0},
        {"1e", VKLLM_E_INVALID, false, 0},   {"-", VKLLM_E_INVALID, false, 0},
        {"", VKLLM_E_INVALID, false, 0},
    };
    for (size_t i = 0; i < sizeof floats / sizeof *floats; i++) {
        double got;
        bool range;
        int rc = number_float(floats[i].s, &got, &range);
        CHECK(rc == floats[i].rc && range == floats[i].range && got == floats[i].want,
              "float '%s': rc %d, range %d, %g", floats[i].s, rc, range, got);
    }
    return TEST_REPORT();
}
