#!/usr/bin/env bash
# test_tune.sh: `vkllm tune` and the tuning every later context reads.
#   test_tune.sh VKLLM DATA_DIR
# 1. tune writes one file beside the pipeline cache (no temporary left) with
#    a line per shape it printed, and prints each shape's variants and the gain.
# 2. A run reads it: its paths line says so, and the greedy text is the
#    untuned one's, with every shape forced to 1 and to 2 threads per row and
#    1, 2 and 8 rows per group, and to the words lanes (each variant computes
#    the same sums in another order; test_tune_table checks the words variant's
#    sums on Q4_K).
# 3. A corrupt or foreign file is ignored with one note; VKLLM_TUNE=0 ignores
#    a good one; bad VKLLM_TUNE values, -r values and a missing cache
#    directory are one error line each.
set -u
. "$(dirname "$0")/model_test.sh"
export XDG_CACHE_HOME=$tmp/cache
unset VKLLM_PIPELINE_CACHE
export VKLLM_TUNE=manual # the file as vkllm tune leaves it (test_autotune.sh: the automatic kind)
run() { "$vkllm" run -m "$model" -p "Once upon a time" -n 24 --temp 0 >"$tmp/out" 2>"$tmp/err"; }

# ---- 1. tune
"$vkllm" tune -m "$model" -r 2 >"$tmp/tune.out" 2>"$tmp/tune.err"
check "tune's status" 0 $?
check "tune's stderr" "" "$(cat "$tmp/tune.err")"
files=("$XDG_CACHE_HOME"/vkllm/tune-*.txt)
check "one tune file" 1 "${#files[@]}"
file=${files[0]}
check "tune names its file" "saved $file" "$(tail -1 "$tmp/tune.out")"
check "the file's first line" "vkllm tune 3" "$(head -1 "$file" 2>/dev/null)"
check "no temporary file" 0 "$(find "$XDG_CACHE_HOME" -name '.vkllm.tmp*' | wc -l)"
shapes=$(grep -c ' x[0-9]' "$tmp/tune.out")
checks=$((checks + 1))
[ "$shapes" -ge 3 ] || fail "tune printed $shapes shapes"
check "each shape has one choice" "$shapes" "$(grep ' x[0-9]' "$tmp/tune.out" | grep -c ' -> tpr [0-9]* rows [0-9]*\( words\)\? (')"
check "the gain line" 1 "$(grep -c '^decode matvecs per token: .* ms with the defaults, .* ms tuned (.*x)$' "$tmp/tune.out")"
check "a line per shape, the default's too" "$shapes" "$(grep -c '^matvec ' "$file")"

# a second tune keeps the shapes of other models in the file
echo "matvec Q4_0 256 99 1 2 blocks" >>"$file"
"$vkllm" tune -m "$model" -r 1 >"$tmp/tune2.out" 2>"$tmp/tune.err"
check "a second tune" 0 $?
check "another model's shape kept" 1 "$(grep -c '^matvec Q4_0 256 99 1 2 blocks$' "$file")"
# issue 10, T-1: also under VKLLM_TUNE=0, which reads no file at start
VKLLM_TUNE=0 "$vkllm" tune -m "$model" -r 1 >/dev/null 2>"$tmp/tune.err"
check "a tune under VKLLM_TUNE=0" 0 $?
check "another model's shape kept by it" 1 "$(grep -c '^matvec Q4_0 256 99 1 2 blocks$' "$file")"
# issue 10, T-2: a save made while another process saves (it holds the lock on
# the directory, read the file before, writes it with a shape of its own
# after) waits for it, then merges: all three models' shapes are there
printf 'vkllm tune 3\n%s\nmatvec Q4_0 256 99 1 2 blocks\n' "$(sed -n 2p "$file")" >"$file"
cp "$file" "$tmp/before"
flock "$XDG_CACHE_HOME/vkllm" sh -c 'sleep 4; { cat "$1"; echo "matvec Q4_0 256 98 1 2 blocks"; } >"$2.new" && mv "$2.new" "$2"' \
    sh "$tmp/before" "$file" &
holder=$!
sleep 0.5
"$vkllm" tune -m "$model" -r 1 >/dev/null 2>"$tmp/tune.err"
check "a tune during another's save" 0 $?
wait $holder
check "the other's shape" 1 "$(grep -c '^matvec Q4_0 256 98 1 2 blocks$' "$file")"
check "the first's shape" 1 "$(grep -c '^matvec Q4_0 256 99 1 2 blocks$' "$file")"
check "this model's shapes" "$((shapes + 2))" "$(grep -c '^matvec ' "$file")"

# ---- 2. read by a run: forced variants give the untuned text
VKLLM_TUNE=0 run
check "untuned run" 0 $?
check "untuned paths" 0 "$(grep -c 'matvec tuned' "$tmp/err")"
cp "$tmp/out" "$tmp/out.untuned"
key=$(sed -n 2p "$file")
for variant in "1 2 blocks" "2 2 blocks" "2 1 blocks" "2 8 blocks" "2 2 words"; do
    { echo "vkllm tune 3"; echo "$key"
      grep ' x[0-9]' "$tmp/tune.out" | awk -v v="$variant" '{print "matvec", $2, $3, $5, v}'; } >"$file"
    run
    check "run with every shape at $variant" 0 $?
    check "its paths line" 1 "$(grep -c "matvec tuned for $shapes shapes" "$tmp/err")"
    check "its notes" 0 "$(grep -c '^note:' "$tmp/err")"
    checks=$((checks + 1))
    cmp -s "$tmp/out" "$tmp/out.untuned" ||
        fail "at $variant threads per row and rows per group the text differs: $(cat "$tmp/out")"
done
VKLLM_TUNE=0 run
check "VKLLM_TUNE=0 ignores it" 0 "$(grep -c 'matvec tuned' "$tmp/err")"

# ---- 3. bad files and settings
printf 'vkllm tune 3\n%s\nmatvec Q4_0 256 256 3 2 blocks\n' "$key" >"$file"
run
check "run over a bad line" 0 $?
check "its note" 1 "$(grep -c "^note: $file: line 3 is not 'matvec TYPE K N TPR ROWS blocks|words'; tuning ignored" "$tmp/err")"
check "nothing tuned" 0 "$(grep -c 'matvec tuned' "$tmp/err")"
printf 'vkllm tune 3\nkey 0 0 0 0 0\n' >"$file"
run
check "run over a foreign file" 0 $?
check "its note" 1 "$(grep -c "^note: $file: made for another device, driver or build of the shaders; tuning ignored" "$tmp/err")"
head -c 3000 /dev/urandom >"$file"
run
check "run over garbage" 0 $?
check "its notes" 1 "$(grep -c '^note:.*tuning ignored' "$tmp/err")"
cmp -s "$tmp/out" "$tmp/out.untuned" || fail "the text over a bad file differs"
# issue 10, M-1: the note came at the end, after the error line (a model that
# fails once the device is up: a missing one is refused before it)
"$vkllm" run -m "$data/ggml-vocab-llama-spm.gguf" -p x >/dev/null 2>"$tmp/err"
check "a model without weights over a bad file" 1 $?
check "its note, then its error" "note error" "$(cut -d: -f1 "$tmp/err" | tr '\n' ' ' | sed 's/ $//')"
VKLLM_TUNE=2 run
check "VKLLM_TUNE=2" 1 $?
check "its error" "error: VKLLM_TUNE: '2' is neither 0 (off), 1 (on) nor manual (no automatic tuning)" "$(cat "$tmp/err")"
"$vkllm" tune -m "$model" -r 0 >/dev/null 2>"$tmp/err"
check "-r 0" 1 $?
check "its error lines" 1 "$(grep -c '^error: ' "$tmp/err")"
VKLLM_PIPELINE_CACHE=0 "$vkllm" tune -m "$model" -r 1 >/dev/null 2>"$tmp/err"
check "tune without a cache directory" 1 $?
check "its error" 1 "$(grep -c '^error: no cache directory to keep the tuning in' "$tmp/err")"

echo "test_tune: $checks checks, $failures failures"
[ "$failures" = 0 ]
