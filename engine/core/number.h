/* number.h: the numbers that settings take (VKLLM_MAX_MEMORY, VKLLM_MAX_BINDING,
 * VKLLM_TIMEOUT, VKLLM_FAULT's counts), read strictly. Internal to the engine.
 *
 * strtoull and strtod read more than a setting should mean: a sign, leading
 * spaces, hex ("0x10"), exponents, "inf" and "nan", and they saturate or wrap
 * past 2^64 unless errno is checked. A setting read wrong is worse than one
 * refused (a test believes it capped memory that it did not), so these accept
 * decimal digits and the one suffix or fraction their kind allows, and refuse
 * anything else, a value past 64 bits included. */
#ifndef VKLLM_NUMBER_H
#define VKLLM_NUMBER_H

#include "error.h"

#include <stdbool.h>
#include <stdint.h>

enum number_kind {
    NUMBER_COUNT,   /* digits: "12" */
    NUMBER_SIZE,    /* bytes: digits and an optional K, M, G or T (any case), times 2^10..2^40 */
    NUMBER_SECONDS, /* digits and an optional fraction ("2.5"), read in nanoseconds; digits
                     * past the ninth decimal are checked and dropped */
};

/* Reads the LEN bytes at S as KIND into *OUT. Returns VKLLM_OK, or
 * VKLLM_E_INVALID with *WHY saying what is wrong ("is not a size in bytes
 * (...)", "is too large for 64 bits"), to follow the value in a message. */
int number_parse(const char *s, size_t len, enum number_kind kind, uint64_t *out, const char **why);

/* number_parse for the setting NAME (an environment variable or a flag) whose
 * value is the string S; the error is "NAME: 'S' WHY". */
int number_setting(const char *name, const char *s, enum number_kind kind, uint64_t *out,
                   struct vkllm_error *err);

/* The on/off setting NAME (VKLLM_VALIDATE, VKLLM_PROFILE) whose value is S:
 * NULL or "" (unset) and "0" are off, "1" is on; anything else is
 * VKLLM_E_INVALID, "NAME: 'S' is neither 0 (off) nor 1 (on)" (a "false" or
 * "off" read as on, probe 7 M1). */
int number_switch(const char *name, const char *s, bool *on, struct vkllm_error *err);

/* The command line's numbers, as strict: S (NUL-terminated) is an optional
 * '-' and decimal digits (number_int), with an optional fraction and exponent
 * (number_float: "0.5", "-2", "1e-3"); no blanks, '+', hex, "inf" or "nan".
 * VKLLM_OK with *OUT set; VKLLM_E_INVALID with *OUT 0 and *RANGE false when S
 * is not such a number, with *RANGE true when it is one that an int64_t (or a
 * finite double) cannot hold. */
int number_int(const char *s, int64_t *out, bool *range);
int number_float(const char *s, double *out, bool *range);

#endif
