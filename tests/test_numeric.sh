#!/usr/bin/env bash
# test_numeric.sh: a model whose logits are not finite, as the programs report it.
#   test_numeric.sh VKLLM DATA_DIR SCRATCH_DIR
# The bundled model with output_norm.weight[0] = NaN (every logit NaN), and
# with output_norm = (1, 0, ...) and output.weight[7][0] = inf (logit 7
# infinite): run, chat, perplexity and bench must each print one line
# "error: FILE: logits at position P are not finite ..." and exit non-zero.
# Before the check they printed a story of token 0 and exited 0.
set -u
vkllm=$1 data=$2 scratch=$3
mkdir -p "$scratch"
failures=0 checks=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# Byte offset of tensor NAME's data in FILE, from vkllm info's table.
offset() { "$vkllm" info "$1" 2>/dev/null | awk -v n="$2" '$1 == n { print $NF }'; }
# Writes the bytes of printf FORMAT at OFFSET of FILE.
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

nan=$scratch/nan.gguf inf=$scratch/inf.gguf
cp "$data/stories260K.gguf" "$nan" && cp "$data/stories260K.gguf" "$inf" || fail "copy"
norm=$(offset "$nan" output_norm.weight) out=$(offset "$nan" output.weight)
[ -n "$norm" ] && [ -n "$out" ] || fail "no offsets from vkllm info"
poke "$nan" "$norm" '\x00\x00\xc0\x7f'
head -c 256 /dev/zero | dd of="$inf" bs=1 seek="$norm" conv=notrunc status=none
poke "$inf" "$norm" '\x00\x00\x80\x3f'
poke "$inf" $((out + 7 * 64 * 4)) '\x00\x00\x80\x7f'

# WHAT: the command must fail with one error line that contains WANT.
expect() { # WHAT WANT COMMAND...
    local what=$1 want=$2
    shift 2
    checks=$((checks + 1))
    "$@" >"$scratch/out" 2>"$scratch/err" </dev/null
    local status=$?
    local errors
    errors=$(grep -c '^error: ' "$scratch/err")
    [ $status -ne 0 ] || fail "$what: exit status 0"
    [ "$errors" = 1 ] || fail "$what: $errors error lines"
    grep -q "^error: .*$want" "$scratch/err" || fail "$what: no '$want' in: $(cat "$scratch/err")"
}

suffix="are not finite (NaN at token 0): the file's weights are broken or a kernel failed"
# the prompt is BOS and 4 tokens: the last one's logits, at position 4, are read first
expect "run" "$nan: logits at position 4 $suffix" \
    "$vkllm" run -m "$nan" -p "Once upon a time" -n 8 --temp 0
expect "run, infinity" "$inf: logits at position 4 are not finite (infinity at token 7)" \
    "$vkllm" run -m "$inf" -p "Once upon a time" -n 8 --temp 0
# perplexity reads every row: the first window's first
expect "perplexity" "$nan: logits at position 0 $suffix" \
    "$vkllm" perplexity -m "$nan" -f "$data/perplexity-stories.txt" -c 64
# bench's first decode is its time to first token: a 10-token prompt
expect "bench" "$nan: logits at position 9 $suffix" \
    "$vkllm" bench -m "$nan" -p 8 -n 4 -r 1
checks=$((checks + 1))
echo "Hello" | "$vkllm" chat -m "$nan" -n 8 >"$scratch/out" 2>"$scratch/err"
status=$?
[ $status -ne 0 ] || fail "chat: exit status 0"
[ "$(grep -c '^error: ' "$scratch/err")" = 1 ] || fail "chat: not one error line: $(cat "$scratch/err")"
grep -q "^error: $nan: logits at position [0-9]* $suffix" "$scratch/err" ||
    fail "chat: $(cat "$scratch/err")"

echo "$checks checks, $failures failures" >&2
[ $failures -eq 0 ]
