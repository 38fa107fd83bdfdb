#!/usr/bin/env bash
# test_budget.sh: the memory budget through the vkllm program.
#   test_budget.sh VKLLM DATA_DIR
# 1. `vkllm info -m MODEL -c N` prints the breakdown: its parts make its
#    total, the KV cache grows with N as the model's shape says, it works
#    without a Vulkan driver, and `vkllm info MODEL` (no -m) still works.
# 2. VKLLM_MAX_MEMORY set to info's total runs; one byte less is refused by
#    `vkllm run` before any upload, one error line carrying the numbers, exit 1; the
#    context it suggests runs (test_budget checks the totals against the pools'
#    allocation counters).
# 3. Weight uploads that fail part-way (VKLLM_FAULT) free everything, in one line.
# 4. Weights that do not fit, and bad values, are one error line too.
# 5. VKLLM_FORCE=no-memory-budget counts free memory as a driver without
#    VK_EXT_memory_budget does.
set -u
. "$(dirname "$0")/model_test.sh"
# the bytes of a breakdown line: "  NAME  BYTES bytes  MIB MiB"
field() { awk -v k="$1" '$0 ~ "^  "k" " { for (i = 1; i < NF; i++) if ($(i+1) == "bytes") { print $i; exit } }'; }

# ---- 1. the breakdown
out=$("$vkllm" info -m "$model" -c 256) || fail "info -c 256 failed"
for part in weights "KV cache" activations "host buffers" staging total; do
    checks=$((checks + 1))
    [ -n "$(field "$part" <<<"$out")" ] || fail "info prints no '$part' line"
done
w=$(field weights <<<"$out") kv=$(field "KV cache" <<<"$out") act=$(field activations <<<"$out")
host=$(field "host buffers" <<<"$out") stg=$(field staging <<<"$out") tot=$(field total <<<"$out")
session=$((kv + act + host))
check "the total: the weights, then staging or the session" "$tot" "$((w + (stg > session ? stg : session)))"
check "context line" "1" "$(grep -c '^memory: a context of 256 tokens' <<<"$out")"
check "fits" "1" "$(grep -c '^  fits: yes$' <<<"$out")"
# stories260K: 5 layers, 4 KV heads of 8: K and V in half floats, 16-byte aligned
check "KV cache for 256 tokens" "$((5 * 2 * 256 * 4 * 8 * 2))" "$kv"
kv512=$("$vkllm" info -m "$model" -c 512 | field "KV cache")
check "KV cache for 512 tokens" "$((2 * kv))" "$kv512"
check "info MODEL" "$w" "$("$vkllm" info "$model" | field weights)"
"$vkllm" info -m "$model" -c 0 >/dev/null 2>&1 && fail "info -c 0 was accepted"
checks=$((checks + 1))
# without a Vulkan driver: the sizes for a typical GPU (64-byte alignment)
out=$(VK_ICD_FILENAMES=/nonexistent VK_DRIVER_FILES=/nonexistent VKLLM_VALIDATE=0 \
    "$vkllm" info -m "$model" -c 256) || fail "info without Vulkan failed"
check "no Vulkan: the device" 1 "$(grep -c '^  device: none (no Vulkan' <<<"$out")"
check "no Vulkan: the KV cache" "$kv" "$(field "KV cache" <<<"$out")"

# ---- 2. the exact total runs, one byte less is refused with a context that fits
check "info: one byte less" 1 "$(VKLLM_MAX_MEMORY=$((tot - 1)) "$vkllm" info -m "$model" -c 256 |
    grep -c "^  fits: no: $model: needs .* for 256 tokens, .* free (VKLLM_MAX_MEMORY): try -c [0-9]* or a smaller quantization$")"
run() { "$vkllm" run -m "$model" -p "Once upon a time" -n 4 --temp 0 "$@"; }
VKLLM_MAX_MEMORY=$tot run -c 256 >/dev/null 2>"$tmp/err" || fail "the exact total: $(cat "$tmp/err")"
checks=$((checks + 1))
VKLLM_MAX_MEMORY=$((tot - 1)) run -c 256 >"$tmp/out" 2>"$tmp/err"
check "one byte less: exit" 1 $?
check "one byte less: stdout" "" "$(cat "$tmp/out")"
check "one byte less: one line" 1 "$(grep -c . "$tmp/err")"
err=$(cat "$tmp/err")
case $err in
"error: $model: needs "*" (weights "*", KV cache "*" for 256 tokens, activations "*"; staging "*") but "*" free (VKLLM_MAX_MEMORY): try -c "*" or a smaller quantization") ;;
*) fail "the refusal: $err" ;;
esac
checks=$((checks + 1))
n=${err##*try -c }
n=${n%% *}
VKLLM_MAX_MEMORY=$((tot - 1)) run -c "$n" >/dev/null 2>"$tmp/err" || fail "-c $n: $(cat "$tmp/err")"
checks=$((checks + 1))

# ---- 3. uploads that fail part-way (VKLLM_FAULT, vk_fault.h) free everything
# and say how far they got: one line (the validation layer would report any
# object left at vkDestroyDevice, the sanitizer build any leak)
for fault in alloc:1 alloc:3 submit:3 wait:2; do
    VKLLM_FAULT=$fault run >/dev/null 2>"$tmp/err"
    check "VKLLM_FAULT=$fault: exit" 1 $?
    check "VKLLM_FAULT=$fault: one line" 1 "$(grep -c . "$tmp/err")"
    case $fault in alloc:1) want="error: $model: the staging buffer: *" ;;
    *) want="error: $model: *weight: * (after * of 1.1 MiB of weights; all of it freed)" ;;
    esac
    # shellcheck disable=SC2053
    [[ $(cat "$tmp/err") == $want ]] || fail "VKLLM_FAULT=$fault: $(cat "$tmp/err")"
    checks=$((checks + 1))
done

# ---- 4. weights that do not fit; bad values
VKLLM_MAX_MEMORY=$w run >/dev/null 2>"$tmp/err"
check "weights: exit" 1 $?
check "weights: one line" 1 "$(grep -c . "$tmp/err")"
check "weights: the numbers" 1 \
    "$(grep -c "^error: $model: needs .* (weights .*; staging .*) but .* free (VKLLM_MAX_MEMORY): try a smaller quantization$" "$tmp/err")"
for bad in 12X 1.5G 0x100000; do
    VKLLM_MAX_MEMORY=$bad "$vkllm" info -m "$model" >/dev/null 2>"$tmp/err"
    check "info with VKLLM_MAX_MEMORY=$bad: exit" 1 $?
    check "VKLLM_MAX_MEMORY=$bad" "error: VKLLM_MAX_MEMORY: '$bad' is not a size in bytes (decimal digits and an optional K, M, G or T: e.g. 512M or 4G)" "$(cat "$tmp/err")"
done
VKLLM_MAX_MEMORY=0 "$vkllm" info -m "$model" >/dev/null 2>"$tmp/err"
check "VKLLM_MAX_MEMORY=0" "error: VKLLM_MAX_MEMORY: '0' is not above 0 bytes" "$(cat "$tmp/err")"
# past 2^64 without a suffix: it was read as 2^64 - 1 (no limit at all)
VKLLM_MAX_MEMORY=99999999999999999999 "$vkllm" info -m "$model" >/dev/null 2>"$tmp/err"
check "VKLLM_MAX_MEMORY past 2^64" "error: VKLLM_MAX_MEMORY: '99999999999999999999' is too large for 64 bits" "$(cat "$tmp/err")"
VKLLM_MAX_MEMORY=1G "$vkllm" devices >"$tmp/out" 2>&1 || fail "devices: $(cat "$tmp/out")"
check "devices: the budget" 1 "$(grep -c -m1 'budget 1024 MiB' "$tmp/out")"

# ---- 5. free memory without VK_EXT_memory_budget, forced where the driver
# has it (lavapipe has not: then both runs take that path)
VKLLM_FORCE=no-memory-budget "$vkllm" info -m "$model" -c 256 >"$tmp/out" 2>"$tmp/err" ||
    fail "info, no-memory-budget: $(cat "$tmp/err")"
check "no-memory-budget: the device line" 1 \
    "$(grep -c '^  device: .* MiB free (heap size; the driver reports no budget)$' "$tmp/out")"
check "no-memory-budget: fits" 1 "$(grep -c '^  fits: yes$' "$tmp/out")"
VKLLM_FORCE=no-memory-budget VKLLM_MAX_MEMORY=$((tot - 1)) run -c 256 >/dev/null 2>"$tmp/err"
check "no-memory-budget: one byte less is refused" 1 \
    "$(grep -c "^error: $model: needs .* free (VKLLM_MAX_MEMORY): try -c" "$tmp/err")"

echo "$checks checks, $failures failures"
[ "$failures" -eq 0 ]
