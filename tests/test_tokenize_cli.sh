#!/usr/bin/env bash
# test_tokenize_cli.sh: `vkllm tokenize` on every vocabulary of llama.cpp's tests.
#   test_tokenize_cli.sh VKLLM DATA_DIR VOCAB_DIR SCRATCH_DIR
# 1. Every case of data/vocab/X.gguf.inp through `vkllm tokenize --cases --no-bos`
#    gives llama.cpp's ids, data/vocab/X.gguf.out, line for line.
# 2. -p, -f (raw bytes, invalid UTF-8 included), --special and BOS as llama.cpp:
#    the expected ids are llama.cpp's (scripts/llama_tokenize.c).
# 3. Bad arguments give one "error: " line and a non-zero exit.
set -u
vkllm=$1 data=$2 vocabs=$3 scratch=$4
mkdir -p "$scratch"
failures=0 checks=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
check() { # WHAT EXPECTED ACTUAL
    checks=$((checks + 1))
    [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
}

# ---- 1. llama.cpp's test vectors
for inp in "$data"/vocab/ggml-vocab-*.gguf.inp; do
    name=$(basename "$inp" .inp)
    model=$vocabs/$name
    [ -f "$model" ] || model=$data/$name
    checks=$((checks + 1))
    if ! "$vkllm" tokenize -m "$model" --no-bos --cases "$inp" >"$scratch/$name.out" 2>"$scratch/$name.err"; then
        fail "$name: $(cat "$scratch/$name.err")"
    elif ! cmp -s "$scratch/$name.out" "${inp%.inp}.out"; then
        fail "$name: ids differ from llama.cpp's ($scratch/$name.out)"
    else
        echo "$name: $(wc -l <"$scratch/$name.out") cases pass"
    fi
done

# ---- 2. the options
ids() { "$vkllm" tokenize "$@" 2>/dev/null | tr '\n' ' ' | sed 's/ $//'; }
l3=$vocabs/ggml-vocab-llama-bpe.gguf qwen=$vocabs/ggml-vocab-qwen2.gguf
check "llama3 BOS" "128000 9906 1917" "$(ids -m "$l3" -p "Hello world")"
check "llama3 --no-bos" "9906 1917" "$(ids -m "$l3" -p "Hello world" --no-bos)"
check "llama3 control text" "27 91 7413 3659 4424 91 29 13347" \
    "$(ids -m "$l3" -p "<|begin_of_text|>Hi" --no-bos)"
check "llama3 --special" "128000 13347" "$(ids -m "$l3" -p "<|begin_of_text|>Hi" --no-bos --special)"
printf 'a\377b\303' >"$scratch/invalid.txt"
check "qwen2 invalid UTF-8" "64 5691 65 5691" "$(ids -m "$qwen" -f "$scratch/invalid.txt")"
check "qwen2 empty" "" "$(ids -m "$qwen" -p "")"
check "spm -p" "1 15043 3186" "$(ids -m "$data/ggml-vocab-llama-spm.gguf" -p "Hello world")"

# ---- 3. bad arguments
for args in "-p x -f y" "-p" "--cases /nonexistent" "-f /nonexistent" "--bogus"; do
    checks=$((checks + 1))
    # shellcheck disable=SC2086
    out=$("$vkllm" tokenize -m "$qwen" $args 2>&1)
    rc=$?
    if [ $rc = 0 ] || [ "$(printf '%s\n' "$out" | grep -c '^error: ')" != 1 ]; then
        fail "tokenize $args: rc $rc, '$out'"
    fi
done
# two sources said it "needs one of" them; it takes only one
for args in "-p x -f y" "-f y --cases z" "-p x --cases z"; do
    checks=$((checks + 1))
    # shellcheck disable=SC2086
    out=$("$vkllm" tokenize -m "$qwen" $args 2>&1)
    [[ $out == "error: vkllm tokenize takes only one of -p TEXT, -f FILE or --cases FILE" ]] ||
        fail "tokenize $args: '$out'"
done
checks=$((checks + 1))
out=$("$vkllm" tokenize -m "$qwen" 2>&1)
[[ $out == "error: vkllm tokenize needs one of -p TEXT, -f FILE or --cases FILE" ]] ||
    fail "tokenize without a text: '$out'"
# --cases files with CR LF line ends (no separator: one case of the whole
# file, silently) and empty ones (nothing printed, status 0)
printf 'hello\r\n__ggml_vocab_test__\r\nworld\r\n__ggml_vocab_test__\r\n' >"$scratch/crlf.inp"
: >"$scratch/empty.inp"
for f in crlf empty; do
    checks=$((checks + 1))
    out=$("$vkllm" tokenize -m "$qwen" --cases "$scratch/$f.inp" 2>&1)
    rc=$?
    want="error: $scratch/$f.inp: "
    [ $rc = 1 ] && [ "${out#"$want"}" != "$out" ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] ||
        fail "tokenize --cases $f.inp: rc $rc, '$out'"
done

echo "$checks checks, $failures failures"
[ $failures = 0 ]
