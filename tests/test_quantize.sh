#!/usr/bin/env bash
# test_quantize.sh: vkllm quantize writes the files llama-quantize writes.
#   test_quantize.sh VKLLM GEN_MODEL GOLDEN_FILE SCRATCH_DIR
# 1. For the models and types of tests/golden/quantize.sha256 (made by
#    llama.cpp's llama-quantize, --pure and mixes), `vkllm quantize` gives a
#    file with the same sha256.
# 2. Failures (missing input, unknown type, quantized input, an output
#    directory that cannot be written) give one line "error: FILE: ...", exit
#    status 1, and leave neither OUT nor a temporary file.
# 3. Quantized models run: `vkllm run -n 8 --temp 0` exits 0 for a model of
#    each family (K-quant mixes, IQ4, the 32-blocks, BF16, fallbacks).
# 4. Tensors whose rows are not whole blocks of TYPE: one warning line "N of M
#    tensors fell back to ..." after "wrote" (the fallback was silent, and
#    general.file_type names TYPE, as llama-quantize writes it); none when
#    every row fits.
# 5. Files `vkllm run` refuses (gen_hostile's) are refused by quantize too,
#    before the output is created.
set -u
vkllm=$1 gen_model=$2 golden=$3 scratch=$4
rm -rf "$scratch"
mkdir -p "$scratch"
failures=0 checks=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
hash() { sha256sum <"$1" | cut -c1-64; }
# the outputs the later checks use; the others are removed once hashed
keep=" A-pure-Q4_0 A-pure-Q8_0 A-mix-Q2_K A-mix-Q5_K_S A-pure-IQ4_XS A-pure-Q4_1 A-pure-Q5_1 "
keep+="A-pure-BF16 B-mix-Q3_K_M B-mix-Q4_K_M C-mix-Q4_K_M C-pure-IQ4_XS C-pure-Q5_0 "

# ---- 1. the same bytes as llama-quantize
while read -r first name rest; do
    [ "$first" = model ] || continue
    # shellcheck disable=SC2086 # the arguments are words
    "$gen_model" -o "$scratch/$name.gguf" $rest || fail "gen_model $name $rest"
done <"$golden"
while read -r want name mode type; do
    case $want in \#* | model | "") continue ;; esac
    checks=$((checks + 1))
    in=$scratch/$name.gguf
    if [ "$mode" = input ]; then
        [ "$(hash "$in")" = "$want" ] ||
            fail "gen_model's model $name is not the one the golden hashes were made from"
        continue
    fi
    flags=()
    [ "$mode" = pure ] && flags=(--pure)
    out=$scratch/$name-$mode-$type.gguf
    if ! "$vkllm" quantize "${flags[@]}" "$in" "$out" "$type" 2>"$scratch/stderr"; then
        fail "quantize $name $mode $type: $(tail -1 "$scratch/stderr")"
        continue
    fi
    [ "$(hash "$out")" = "$want" ] || fail "quantize $name $mode $type: not llama-quantize's bytes"
    case $keep in *" $name-$mode-$type "*) ;; *) rm -f "$out" ;; esac
done <"$golden"
[ $checks -ge 90 ] || fail "only $checks golden hashes checked"

# the same bytes with any number of threads
checks=$((checks + 1))
"$vkllm" quantize -t 1 "$scratch/B.gguf" "$scratch/t1.gguf" Q4_K_M 2>/dev/null &&
    "$vkllm" quantize -t 3 "$scratch/B.gguf" "$scratch/t3.gguf" Q4_K_M 2>/dev/null &&
    cmp -s "$scratch/t1.gguf" "$scratch/t3.gguf" || fail "1 and 3 threads wrote different files"

# ---- 2. failures: one error line, exit 1, nothing left behind
expect_error() { # WHAT PATTERN OUT COMMAND...
    local what=$1 pattern=$2 out=$3
    shift 3
    checks=$((checks + 1))
    "$@" >"$scratch/stdout" 2>"$scratch/stderr"
    local status=$?
    if [ $status != 1 ]; then
        fail "$what: exit status $status"
    elif [ "$(grep -vc '^vkllm: ' "$scratch/stderr")" != 1 ] ||
        ! grep -q "^error: .*$pattern" "$scratch/stderr"; then
        fail "$what: expected one line 'error: ...$pattern...', got: $(cat "$scratch/stderr")"
    fi
    local dir
    dir=$(dirname "$out")
    if [ -e "$out" ] || ls -A "$dir" 2>/dev/null | grep -q "^\.vkllm\.tmp-"; then
        fail "$what: left $out or a temporary file behind"
    fi
}
printf 'not a directory' >"$scratch/file"
cp "$scratch/A-pure-Q4_0.gguf" "$scratch/quantized.gguf"
expect_error "missing input" "nope.gguf: No such file" "$scratch/o1.gguf" \
    "$vkllm" quantize "$scratch/nope.gguf" "$scratch/o1.gguf" Q4_0
expect_error "unknown type" "Q9_K: unknown type; choose one of F32, F16, BF16, .*Q4_K_M" \
    "$scratch/o2.gguf" "$vkllm" quantize "$scratch/A.gguf" "$scratch/o2.gguf" Q9_K
expect_error "quantized input" "quantized.gguf: .*already quantized.*F32, F16 or BF16" \
    "$scratch/o3.gguf" "$vkllm" quantize "$scratch/quantized.gguf" "$scratch/o3.gguf" Q8_0
expect_error "output under a file" "file/o4.gguf: Not a directory" "$scratch/file/o4.gguf" \
    "$vkllm" quantize "$scratch/A.gguf" "$scratch/file/o4.gguf" Q4_0
expect_error "output in a missing directory" "nodir/o5.gguf: No such file" \
    "$scratch/nodir/o5.gguf" "$vkllm" quantize "$scratch/A.gguf" "$scratch/nodir/o5.gguf" Q4_0
expect_error "no type" "needs IN.gguf OUT.gguf TYPE" "$scratch/o6.gguf" \
    "$vkllm" quantize "$scratch/A.gguf" "$scratch/o6.gguf"
if [ "$(id -u)" != 0 ]; then # root writes anywhere
    mkdir -p "$scratch/ro" && chmod 555 "$scratch/ro"
    expect_error "read-only directory" "ro/o7.gguf: Permission denied" "$scratch/ro/o7.gguf" \
        "$vkllm" quantize "$scratch/A.gguf" "$scratch/ro/o7.gguf" Q4_0
    chmod 755 "$scratch/ro"
fi
# a failed run over an existing OUT leaves it as it was
checks=$((checks + 1))
cp "$scratch/A-pure-Q8_0.gguf" "$scratch/keep.gguf"
before=$(hash "$scratch/keep.gguf")
"$vkllm" quantize "$scratch/quantized.gguf" "$scratch/keep.gguf" Q4_0 2>/dev/null &&
    fail "quantizing a quantized model succeeded"
[ "$(hash "$scratch/keep.gguf")" = "$before" ] || fail "a failed run changed the existing OUT"

# ---- 3. quantized models run
for model in $keep; do
    case $model in A-pure-Q4_0 | A-pure-Q8_0) continue ;; esac
    checks=$((checks + 1))
    "$vkllm" run -m "$scratch/$model.gguf" -n 8 --temp 0 -p "Once upon a time" \
        >"$scratch/stdout" 2>"$scratch/stderr" ||
        fail "run $model: $(grep -v '^vkllm: ' "$scratch/stderr" | head -3)"
done

# ---- 4. the fallback warning
checks=$((checks + 1))
"$gen_model" -o "$scratch/e520.gguf" --n-embd 520 --n-layer 2 --n-head 4 --n-ff 100 \
    --n-vocab 300 >/dev/null || fail "gen_model e520"
"$vkllm" quantize "$scratch/e520.gguf" "$scratch/e520-q4.gguf" Q4_0 2>"$scratch/stderr" ||
    fail "quantize e520: $(cat "$scratch/stderr")"
want="warning: 16 of 16 tensors fell back to F16: their rows are not whole blocks of the format Q4_0 gives them"
[ "$(grep -v '^vkllm: ' "$scratch/stderr")" = "$want" ] ||
    fail "e520 Q4_0: expected '$want', got: $(grep -v '^vkllm: \[' "$scratch/stderr")"
# Q4_K_M over 96-wide rows: 256-blocks fall back to Q5_0/Q8_0/F16 (C's 80-wide ones)
"$vkllm" quantize "$scratch/C.gguf" "$scratch/c-mix.gguf" Q4_K_M 2>"$scratch/stderr" ||
    fail "quantize C: $(cat "$scratch/stderr")"
grep -Eq '^warning: [0-9]+ of [0-9]+ tensors fell back to [A-Z0-9_/]+: their rows are not whole blocks of the format Q4_K_M gives them$' \
    "$scratch/stderr" || fail "C Q4_K_M: no fallback warning: $(grep -v '^vkllm: \[' "$scratch/stderr")"
"$vkllm" quantize "$scratch/A.gguf" "$scratch/a-q4.gguf" Q4_0 2>"$scratch/stderr" ||
    fail "quantize A: $(cat "$scratch/stderr")"
grep -q '^warning' "$scratch/stderr" && fail "A Q4_0 (every row whole blocks): $(cat "$scratch/stderr")"

# ---- 5. files vkllm cannot run (gen_hostile's: bad hyperparameters, shapes,
# tokenizers, names, a NaN norm) are refused before the output is created,
# with an error naming the input: quantize converted 25 of the 46 with exit 0
# and "wrote", and `run` refused the result only then
gen_hostile=$(dirname "$gen_model")/gen_hostile # built beside gen_model
model=$(dirname "$golden")/../data/stories260K.gguf
mkdir -p "$scratch/hostile"
"$gen_hostile" "$model" "$scratch/hostile" >/dev/null || fail "gen_hostile"
refused=0
for f in "$scratch"/hostile/*.gguf; do
    name=$(basename "$f" .gguf)
    timeout 60 "$vkllm" run -m "$f" -p Once -n 2 --temp 0 >/dev/null 2>&1 && continue
    checks=$((checks + 1)) refused=$((refused + 1))
    out=$scratch/hostile-out/$name.gguf
    rm -rf "$scratch/hostile-out" && mkdir -p "$scratch/hostile-out"
    timeout 60 "$vkllm" quantize "$f" "$out" Q8_0 >/dev/null 2>"$scratch/stderr"
    status=$?
    [ $status = 1 ] && [ "$(grep -vc '^vkllm: ' "$scratch/stderr")" = 1 ] &&
        grep -q "^error: .*hostile/$name.gguf" "$scratch/stderr" ||
        fail "quantize $name (run refuses it): status $status: $(grep -v '^vkllm: \[' "$scratch/stderr" | head -3)"
    [ -z "$(ls -A "$scratch/hostile-out")" ] ||
        fail "quantize $name (run refuses it) left $(ls -A "$scratch/hostile-out")"
    # refused before the conversion (no tensor announced), but for NaN or inf
    # values, seen as their tensor is converted
    grep -q '^vkllm: \[' "$scratch/stderr" && ! grep -q "NaN or inf values" "$scratch/stderr" &&
        fail "quantize $name: refused only after converting"
done
[ $refused -ge 20 ] || fail "only $refused of gen_hostile's files are refused by run"
rm -rf "$scratch/hostile" "$scratch/hostile-out"

# the progress counts to the last tensor: it once ended at "[13/12]", the
# writer's question while it wrote the last tensor (every 4 MiB; this
# ffn_up is 8 MiB as F16) reported as one more
checks=$((checks + 1))
"$gen_model" -o "$scratch/wide.gguf" --n-embd 256 --n-layer 1 --n-ff 16384 --n-vocab 1024 \
    >/dev/null || fail "gen_model (wide)"
"$vkllm" quantize "$scratch/wide.gguf" "$scratch/wide-F16.gguf" F16 2>"$scratch/err" ||
    fail "quantize wide: $(cat "$scratch/err")"
grep '^vkllm: \[' "$scratch/err" | tail -n 1 | grep -q '^vkllm: \[ 12/ 12\] blk.0.ffn_up.weight ' &&
    ! grep -q '^vkllm: \[ 13/' "$scratch/err" || fail "the progress: $(tail -n 3 "$scratch/err")"
rm -f "$scratch/wide.gguf" "$scratch/wide-F16.gguf"

echo "$checks checks, $failures failures"
[ $failures = 0 ]
