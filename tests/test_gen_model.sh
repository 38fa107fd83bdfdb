#!/usr/bin/env bash
# test_gen_model.sh: the test model generator's mixes and --fast.
#   test_gen_model.sh VKLLM GEN_MODEL SCRATCH_DIR
# gen_model --type MIX gives every tensor the format `vkllm quantize` gives it
# for that mix (one rule table, quant_mix.c) and the same general.file_type,
# and --type FORMAT the formats of `vkllm quantize FORMAT --pure`;
# --fast writes the same formats and sizes, the same bytes on 1 or 3 threads
# and run after run, and vkllm runs the result; a bad TYPE, and a mix with
# --from, are one error line and exit status 1.
set -u
vkllm=$1 gen_model=$2 scratch=$3
rm -rf "$scratch"
mkdir -p "$scratch"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# 8 layers (the _M mixes' first and last eighth, every third between), grouped
# KV (the IQ4 mixes' rule), a 64-row attn_k/v
shape=(--n-vocab 1000 --n-embd 256 --n-layer 8 --n-head 8 --n-head-kv 2 --n-ff 512)
# "NAME TYPE" per tensor, and general.file_type
types() {
    "$vkllm" info -m "$1" 2>/dev/null | awk '
        /general.file_type/ { print "file_type", $3 }
        /^tensors:/ { t = 1; next }
        t && NF == 0 { t = 0 }
        t && NF >= 3 && $1 != "name" { print $1, $2 }' | sort
}

"$gen_model" -o "$scratch/f16.gguf" --type f16 "${shape[@]}" || fail "gen_model f16"
for mix in Q4_K_M Q4_K_S Q5_K_M Q5_K_S Q3_K_M Q3_K_L Q2_K IQ4_XS Q8_0; do
    pure=()
    [[ $mix == *_[SML] ]] || pure=(--pure)
    "$vkllm" quantize "$scratch/f16.gguf" "$scratch/q-$mix.gguf" "$mix" "${pure[@]}" >/dev/null 2>&1 ||
        fail "vkllm quantize $mix ${pure[*]}"
    "$gen_model" -o "$scratch/g-$mix.gguf" --type "${mix,,}" "${shape[@]}" || fail "gen_model $mix"
    types "$scratch/q-$mix.gguf" >"$scratch/q-$mix.types"
    types "$scratch/g-$mix.gguf" >"$scratch/g-$mix.types"
    [ "$(wc -l <"$scratch/q-$mix.types")" -gt 70 ] || fail "$mix: vkllm info listed too few tensors"
    diff "$scratch/q-$mix.types" "$scratch/g-$mix.types" >"$scratch/diff" ||
        fail "$mix: gen_model's formats differ from vkllm quantize's: $(head -4 "$scratch/diff")"
done
# the mix is a mix: Q4_K_M has Q6_K tensors among its Q4_K ones
grep -q ' Q6_K$' "$scratch/g-Q4_K_M.types" && grep -q ' Q4_K$' "$scratch/g-Q4_K_M.types" ||
    fail "Q4_K_M: not both Q4_K and Q6_K tensors"

# --fast: same formats and sizes as the drawn file, reproducible on any threads
for t in Q4_K_M q4_0 f16; do
    "$gen_model" -o "$scratch/fast1-$t.gguf" --type "$t" --fast --threads 1 "${shape[@]}" ||
        fail "gen_model --fast $t"
    "$gen_model" -o "$scratch/fast3-$t.gguf" --type "$t" --fast --threads 3 "${shape[@]}" ||
        fail "gen_model --fast --threads 3 $t"
    cmp -s "$scratch/fast1-$t.gguf" "$scratch/fast3-$t.gguf" ||
        fail "--fast $t: 1 and 3 threads wrote different bytes"
    "$gen_model" -o "$scratch/slow-$t.gguf" --type "$t" "${shape[@]}" || fail "gen_model $t"
    [ "$(stat -c %s "$scratch/fast1-$t.gguf")" = "$(stat -c %s "$scratch/slow-$t.gguf")" ] ||
        fail "--fast $t: not the size of the drawn file"
    cmp -s "$scratch/fast1-$t.gguf" "$scratch/slow-$t.gguf" && fail "--fast $t: the drawn file's bytes"
    diff <(types "$scratch/fast1-$t.gguf") <(types "$scratch/slow-$t.gguf") >/dev/null ||
        fail "--fast $t: other formats than the drawn file"
done
out=$("$vkllm" run -m "$scratch/fast1-Q4_K_M.gguf" -p "hello" -n 4 --temp 0 2>"$scratch/err") ||
    fail "vkllm run on the --fast file: $(tail -1 "$scratch/err")"
[ -n "$out" ] || fail "vkllm run on the --fast file printed nothing"

# bad input: one line, status 1
for args in "--type q4_k_x" "--type q4_k_m --from $scratch/f16.gguf"; do
    # shellcheck disable=SC2086 # the words are the arguments
    "$gen_model" -o "$scratch/bad.gguf" $args 2>"$scratch/err"
    rc=$?
    [ "$rc" = 1 ] || fail "gen_model $args: exit status $rc, not 1"
    grep -q '^error: --type' "$scratch/err" || fail "gen_model $args: said $(head -1 "$scratch/err")"
    [ ! -e "$scratch/bad.gguf" ] || fail "gen_model $args: wrote a file"
done

if [ "$failures" -gt 0 ]; then
    echo "test_gen_model: $failures failure(s)" >&2
    exit 1
fi
echo "test_gen_model: ok"
