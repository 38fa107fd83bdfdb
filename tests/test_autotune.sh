#!/usr/bin/env bash
# test_autotune.sh: the automatic tuning of a model's first run on a device
# (vkllm_tune_auto, through cli_autotune), which the rest of the suite turns
# off (VKLLM_TUNE=manual in its environment).
#   test_autotune.sh VKLLM DATA_DIR
# 1. A first run in an empty cache prints the tuning line once and writes the
#    file with a line for each of the model's shapes; its text is the
#    untuned one's; a second run does not tune and reads the file.
# 2. A run tunes only the shapes missing from the file, and keeps another
#    model's lines.
# 3. VKLLM_TUNE_SECONDS=0 measures and records nothing (a later run tunes);
#    VKLLM_TUNE=manual and VKLLM_TUNE=0 do not tune; bad values are errors.
# 4. A cache directory that cannot be written: the model runs, with one note
#    and nothing measured.
# 5. SIGINT during the tuning ends the run, leaving no temporary file and no
#    partial file; the next run completes the tuning.
set -u
. "$(dirname "$0")/model_test.sh"
unset VKLLM_PIPELINE_CACHE VKLLM_TUNE VKLLM_TUNE_SECONDS
run() { "$vkllm" run -m "$model" -p "Once upon a time" -n 24 --temp 0 >"$tmp/out" 2>"$tmp/err"; }
tuning_lines() { grep -c '^vkllm: tuning the mat-vec for this device (once, about 3 s; VKLLM_TUNE=manual skips)\.\.\. ' "$tmp/err"; }
# the model's matvec shapes, as vkllm tune lists them
shapes=$(XDG_CACHE_HOME=$tmp/manual "$vkllm" tune -m "$model" -r 1 | grep -c ' x[0-9]')
checks=$((checks + 1))
[ "$shapes" -ge 3 ] || fail "vkllm tune listed $shapes shapes"
XDG_CACHE_HOME=$tmp/untuned VKLLM_TUNE=0 run
cp "$tmp/out" "$tmp/out.untuned"

# ---- 1. the first run tunes, the second reads
export XDG_CACHE_HOME=$tmp/cache
run
check "first run" 0 $?
check "its tuning line" 1 "$(tuning_lines)"
check "its outcome" 1 "$(grep -c "\.\.\. $shapes shapes in [0-9.]* s" "$tmp/err")"
check "no error or note" 0 "$(grep -c 'error\|note' "$tmp/err")"
files=("$XDG_CACHE_HOME"/vkllm/tune-*.txt)
check "one tune file" 1 "${#files[@]}"
file=${files[0]}
check "a line per shape" "$shapes" "$(grep -c '^matvec ' "$file" 2>/dev/null)"
check "no temporary file" 0 "$(find "$XDG_CACHE_HOME" -name '.vkllm.tmp*' | wc -l)"
check "its paths line" 1 "$(grep -c "matvec tuned for $shapes shapes" "$tmp/err")"
checks=$((checks + 1))
cmp -s "$tmp/out" "$tmp/out.untuned" || fail "the tuned text differs: $(cat "$tmp/out")"
cp "$file" "$tmp/tuned.txt"
run
check "second run" 0 $?
check "no tuning the second time" 0 "$(tuning_lines)"
check "the file unchanged" "" "$(cmp "$file" "$tmp/tuned.txt" 2>&1)"

# ---- 2. only what is missing; other models' shapes kept
{ head -n -1 "$tmp/tuned.txt"; echo "matvec Q4_0 256 99 1 2 blocks"; } >"$file"
run
check "a run with one shape missing" 0 $?
check "it tunes one" 1 "$(grep -c '\.\.\. 1 shape in' "$tmp/err")"
check "the shape back" "$shapes" "$(grep '^matvec ' "$file" | grep -vc ' 256 99 1 2 blocks$')"
check "another model's shape kept" 1 "$(grep -c '^matvec Q4_0 256 99 1 2 blocks$' "$file")"

# a shape whose line holds the default (when no variant beat it) is measured
default=$(grep -o 'matvec: [0-9]* threads per row' "$tmp/err" | grep -o '[0-9]*')
sed -i "s/^\(matvec .*\) [0-9]* [0-9]* [a-z]*$/\1 $default 2 blocks/" "$file"
run
check "a run over defaults" 0 $?
check "it does not tune" 0 "$(tuning_lines)"
check "its paths line" 1 "$(grep -c "matvec tuned for $((shapes + 1)) shapes" "$tmp/err")"

# ---- 3. a budget of 0, and the switches
export XDG_CACHE_HOME=$tmp/zero
VKLLM_TUNE_SECONDS=0 run
check "a run with no budget" 0 $?
check "its line" 1 "$(grep -c "\.\.\. 0 shapes in [0-9.]* s; $shapes left for the next run$" "$tmp/err")"
check "nothing recorded" 0 "$(find "$XDG_CACHE_HOME" -name 'tune-*' | wc -l)"
VKLLM_TUNE=manual run
check "VKLLM_TUNE=manual" 0 $?
check "it does not tune" 0 "$(grep -c 'tuning' "$tmp/err")"
VKLLM_TUNE=0 run
check "VKLLM_TUNE=0 does not tune" 0 "$(grep -c 'tuning' "$tmp/err")"
check "nothing recorded yet" 0 "$(find "$XDG_CACHE_HOME" -name 'tune-*' | wc -l)"
VKLLM_TUNE_SECONDS=0.5 run
check "then a budget" 1 "$(grep -c '\.\.\. [1-9][0-9]* shapes\? in' "$tmp/err")"
VKLLM_TUNE_SECONDS=-1 run
check "VKLLM_TUNE_SECONDS=-1" 1 $?
check "its error" 1 "$(grep -c "^error: VKLLM_TUNE_SECONDS: '-1' " "$tmp/err")"
VKLLM_TUNE=auto run
check "VKLLM_TUNE=auto" 1 $?
check "its error" "error: VKLLM_TUNE: 'auto' is neither 0 (off), 1 (on) nor manual (no automatic tuning)" \
    "$(cat "$tmp/err")"

# ---- 4. a cache home nobody may write (root writes through permissions: a
# file system it may not write stands in)
if [ "$(id -u)" = 0 ]; then export XDG_CACHE_HOME=/proc/self; else
    mkdir -m 500 "$tmp/ro" && export XDG_CACHE_HOME=$tmp/ro; fi
run
check "run with a read-only cache home" 0 $?
check "its tuning line" 1 "$(grep -c '^vkllm: tuning the mat-vec.*\.\.\. not done$' "$tmp/err")"
check "its note" 1 "$(grep -c '^vkllm: note: .*: cannot ' "$tmp/err")"
check "no other note" 1 "$(grep -c 'note' "$tmp/err")"
checks=$((checks + 1))
cmp -s "$tmp/out" "$tmp/out.untuned" || fail "the text differs: $(cat "$tmp/out")"

# ---- 5. SIGINT while tuning
export XDG_CACHE_HOME=$tmp/signal
set -m # else bash starts it with SIGINT ignored
"$vkllm" run -m "$model" -p "Once upon a time" -n 400 --ignore-eos >/dev/null 2>"$tmp/err" &
pid=$!
set +m
for _ in $(seq 600); do grep -q 'tuning the mat-vec' "$tmp/err" && break; sleep 0.05; done
kill -INT "$pid"
wait "$pid"
check "ended by SIGINT" 130 $?
check "no temporary file" 0 "$(find "$XDG_CACHE_HOME" -name '.vkllm.tmp*' | wc -l)"
for f in "$XDG_CACHE_HOME"/vkllm/tune-*.txt; do
    [ -e "$f" ] || continue # killed before the save: nothing written
    check "a whole file or none" "$shapes" "$(grep -c '^matvec ' "$f")"
done
run
check "the next run" 0 $?
check "the file complete" "$shapes" "$(cat "$XDG_CACHE_HOME"/vkllm/tune-*.txt | grep -c '^matvec ')"

echo "test_autotune: $checks checks, $failures failures"
[ "$failures" = 0 ]
