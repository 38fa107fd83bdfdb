/* number.c: decimal settings read strictly (number.h). */
#include "number.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const expected[] = {
    [NUMBER_COUNT] = "is not a count (decimal digits)",
    [NUMBER_SIZE] = "is not a size in bytes (decimal digits and an optional K, M, G or T: "
                    "e.g. 512M or 4G)",
    [NUMBER_SECONDS] = "is not a number of seconds (decimal digits and an optional fraction: "
                       "e.g. 60 or 2.5)",
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9'; /* isdigit may take other digits in some locales */
}

int number_parse(const char *s, size_t len, enum number_kind kind, uint64_t *out, const char **why)
{
    *out = 0;
    uint64_t v = 0;
    bool big = false; /* past 64 bits: read on, so that a bad suffix says so first */
    size_t i = 0;
    for (; i < len && is_digit(s[i]); i++)
        big |= __builtin_mul_overflow(v, 10, &v) ||
               __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v);
    const size_t digits = i;
    unsigned shift = 0;
    uint64_t ns = 0; /* the fraction of a second */
    if (kind == NUMBER_SIZE && digits && i < len) {
        static const char units[] = "KMGT";
        const char *u = memchr(units, toupper((unsigned char)s[i]), 4);
        if (u) {
            shift = 10 * (unsigned)(u - units + 1);
            i++;
        }
    } else if (kind == NUMBER_SECONDS && digits && i < len && s[i] == '.') {
        const size_t start = ++i;
        for (uint64_t unit = 100000000; i < len && is_digit(s[i]); i++, unit /= 10)
            ns += (uint64_t)(s[i] - '0') * unit;
        if (i == start) i = 0; /* "2.": a fraction needs its digits */
    }
    if (!digits || i != len) {
        *why = expected[kind];
        return VKLLM_E_INVALID;
    }
    if (kind == NUMBER_SIZE) big |= v > UINT64_MAX >> shift;
    if (kind == NUMBER_SECONDS)
        big |= __builtin_mul_overflow(v, 1000000000, &v) || __builtin_add_overflow(v, ns, &v);
    if (big) {
        *why = kind == NUMBER_SECONDS ? "is too large (at most 18446744073 seconds)"
                                      : "is too large for 64 bits";
        return VKLLM_E_INVALID;
    }
    *out = v << shift;
    return VKLLM_OK;
}

/* The length of the digits at S. */
static size_t digits_at(const char *s)
{
    size_t n = 0;
    while (is_digit(s[n]))
        n++;
    return n;
}

int number_int(const char *s, int64_t *out, bool *range)
{
    *out = 0;
    *range = false;
    const bool neg = s[0] == '-';
    const size_t n = digits_at(s + neg);
    if (!n || s[neg + n]) return VKLLM_E_INVALID;
    uint64_t v = 0;
    for (size_t i = 0; i < n && !*range; i++)
        *range = __builtin_mul_overflow(v, 10, &v) ||
                 __builtin_add_overflow(v, (uint64_t)(s[neg + i] - '0'), &v);
    *range |= v > (uint64_t)INT64_MAX + neg;
    if (*range) return VKLLM_E_INVALID;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return VKLLM_OK;
}

int number_float(const char *s, double *out, bool *range)
{
    *out = 0;
    *range = false;
    size_t i = s[0] == '-';
    size_t mantissa = digits_at(s + i);
    i += mantissa;
    if (s[i] == '.') {
        const size_t frac = digits_at(s + i + 1);
        if (!frac) return VKLLM_E_INVALID; /* "2.": a fraction needs its digits */
        mantissa += frac;
        i += 1 + frac;
    }
    if (!mantissa) return VKLLM_E_INVALID;
    if (s[i] == 'e' || s[i] == 'E') {
        const size_t sign = s[i + 1] == '-' || s[i + 1] == '+';
        const size_t exp = digits_at(s + i + 1 + sign);
        if (!exp) return VKLLM_E_INVALID;
        i += 1 + sign + exp;
    }
    if (s[i]) return VKLLM_E_INVALID;
    const double v = strtod(s, NULL); /* the shape is checked: strtod only converts */
    if (isinf(v)) {
        *range = true;
        return VKLLM_E_INVALID;
    }
    *out = v;
    return VKLLM_OK;
}

int number_switch(const char *name, const char *s, bool *on, struct vkllm_error *err)
{
    *on = s && !strcmp(s, "1");
    if (!s || !*s || *on || !strcmp(s, "0")) return VKLLM_OK;
    return vkllm_fail(err, VKLLM_E_INVALID, "%s: '%s' is neither 0 (off) nor 1 (on)", name, s);
}

int number_setting(const char *name, const char *s, enum number_kind kind, uint64_t *out,
                   struct vkllm_error *err)
{
    const char *why;
    int rc = number_parse(s, strlen(s), kind, out, &why);
    return rc ? vkllm_fail(err, rc, "%s: '%s' %s", name, s, why) : VKLLM_OK;
}
