#!/usr/bin/env bash
# test_formats.sh: files quantized by llama.cpp's own llama-quantize load and run.
#   test_formats.sh VKLLM DATA_DIR GOLDEN_TSV FORMATS_H SCRATCH_DIR [ONLY]
# DATA_DIR/formats holds llama-quantize's output for every format of
# engine/core/formats.h and the common mixes (provenance in tests/data/README.md;
# real-width K-quants need rows of 256, so those come from a 256-wide gen_model
# model, the rest from stories260K). For each file of GOLDEN_TSV
# (tests/golden/perplexity-formats.tsv):
# 1. `vkllm perplexity` over the first 6 windows of 128 tokens of
#    perplexity-stories.txt is within 0.5% of llama.cpp's. llama.cpp's CPU
#    rounds the activations of most matrix products to 8 bits (Q8_0, Q8_1 or
#    Q8_K, by weight format) where vkllm keeps floats for all but Q4_0 and
#    Q8_0: on these files that moves perplexity by up to 0.3%.
# 2. `vkllm run --temp 0 -n 8` exits 0 and prints the prompt.
# 3. Together the files hold a tensor of every format in FORMATS_H, and every
#    file in DATA_DIR/formats is checked.
# With ONLY (a regular expression), 1 and 2 for the files it matches, not 3:
# a path that VKLLM_FORCE takes, checked on files that reach its formats.
# What this does not catch: small errors in one sub-block's scale barely move a
# random-weight model's perplexity (test_quant and test_kernels check the
# decoders against ggml's bits and the CPU reference).
set -u
vkllm=$1 data=$2 golden=$3 formats_h=$4 scratch=$5 only=${6:-}
mkdir -p "$scratch"
failures=0 checks=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
close_to() { awk -v g="$1" -v w="$2" -v r="$3" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(d <= r * w) }'; }

text=$data/perplexity-stories.txt
: >"$scratch/types"
while IFS=$'\t' read -r file _ want; do
    case $file in '#'* | '') continue ;; esac
    [ -n "$only" ] && ! [[ $file =~ $only ]] && continue
    model=$data/formats/$file
    checks=$((checks + 1))
    if [ ! -f "$model" ]; then
        fail "$file: listed in $golden but missing"
        continue
    fi

    # ---- 1. perplexity agrees with llama.cpp's
    out=$("$vkllm" perplexity -m "$model" -f "$text" -c 128 --chunks 6 2>"$scratch/ppl.stderr")
    status=$?
    if [ $status != 0 ]; then
        fail "$file: perplexity exited with $status: $(tail -n 3 "$scratch/ppl.stderr")"
    elif ! [[ $out =~ ^perplexity:\ ([0-9.]+)\  ]]; then
        fail "$file: perplexity printed '$out'"
    else
        ppl=${BASH_REMATCH[1]}
        echo "$file: perplexity $ppl, llama.cpp $want" >&2
        close_to "$ppl" "$want" 0.005 || fail "$file: perplexity $ppl, llama.cpp $want (more than 0.5% apart)"
    fi

    # ---- 2. greedy generation runs
    got=$("$vkllm" run -m "$model" -p "Once upon a time" -n 8 --temp 0 2>"$scratch/run.stderr")
    status=$?
    [ $status = 0 ] || fail "$file: run exited with $status: $(tail -n 3 "$scratch/run.stderr")"
    [[ $got == "Once upon a time"* ]] || fail "$file: run printed '$got'"

    "$vkllm" info "$model" 2>/dev/null | awk '$1 ~ /\.weight$/ { print $2 }' >>"$scratch/types"
done <"$golden"

# ---- 3. every format is covered, every file is checked
if [ -n "$only" ]; then
    echo "$checks checks, $failures failures" >&2
    [ $checks -gt 0 ] && [ $failures = 0 ]
    exit
fi
checks=$((checks + 1))
for format in $(sed -n 's/^ *FORMAT(\([A-Z0-9_]*\),.*/\1/p' "$formats_h"); do
    grep -qx "$format" "$scratch/types" || fail "no file of $data/formats has a tensor of type $format"
done
for model in "$data"/formats/*.gguf; do
    cut -f1 "$golden" | grep -qx "$(basename "$model")" || fail "$model is not in $golden"
done

echo "$checks checks, $failures failures" >&2
[ $failures = 0 ]
