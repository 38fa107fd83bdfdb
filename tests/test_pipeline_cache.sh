#!/usr/bin/env bash
# test_pipeline_cache.sh: the on-disk pipeline cache through `vkllm run`.
#   test_pipeline_cache.sh VKLLM DATA_DIR
# 1. A first run in an empty $XDG_CACHE_HOME writes vkllm/pipelines-*.bin
#    (our header first, no temporary file left); the second run prints no
#    note and the same text.
# 2. A corrupt cache: the run succeeds with one "note:" line naming the file,
#    and the file is replaced by a valid one, so the next run is note-free.
# 3. Other builds' caches of this device: kept while used, removed when stale.
# 4. A cache home that cannot be written is no error.
set -u
. "$(dirname "$0")/model_test.sh"
export XDG_CACHE_HOME=$tmp/cache
unset VKLLM_PIPELINE_CACHE
run() { "$vkllm" run -m "$model" -p "Once upon a time" -n 4 --temp 0 >"$tmp/out" 2>"$tmp/err"; }

# ---- 1. written by the first run, read by the second
run
check "first run" 0 $?
check "first run's notes" 0 "$(grep -c '^note:' "$tmp/err")"
files=("$XDG_CACHE_HOME"/vkllm/pipelines-*.bin)
check "one cache file" 1 "${#files[@]}"
cache=${files[0]}
check "our header" VKLLMPC "$(head -c 7 "$cache" 2>/dev/null)"
check "no temporary file" 0 "$(find "$XDG_CACHE_HOME" -name '.vkllm.tmp*' | wc -l)"
cp "$tmp/out" "$tmp/out1"
run
check "second run" 0 $?
check "second run's notes" 0 "$(grep -c '^note:' "$tmp/err")"
checks=$((checks + 1))
cmp -s "$tmp/out" "$tmp/out1" || fail "the second run printed other text"

# ---- 2. a corrupt cache: one note, replaced
head -c 4096 /dev/urandom >"$cache"
run
check "run over a corrupt cache" 0 $?
check "notes over a corrupt cache" 1 "$(grep -c '^note:' "$tmp/err")"
check "the note names the file" 1 "$(grep -cF "note: $cache: not a vkllm pipeline cache" "$tmp/err")"
check "replaced" VKLLMPC "$(head -c 7 "$cache" 2>/dev/null)"
run
check "notes after the replacement" 0 "$(grep -c '^note:' "$tmp/err")"
head -c 50 "$cache" >"$tmp/cut" && mv "$tmp/cut" "$cache"
run
check "notes over a truncated cache" 1 "$(grep -c '^note:.*truncated' "$tmp/err")"

# ---- 3. other builds' caches of this device: a recent one is kept (two
# builds used in turn keep a cache each), one unused for 40 days goes when a
# cache is written; one of another device is never touched
base=${cache%-*}
printf x >"$base-0000000000000001.bin"
printf x >"$base-0000000000000002.bin" && touch -d '40 days ago' "$base-0000000000000002.bin"
printf x >"$XDG_CACHE_HOME/vkllm/pipelines-ffff-ffff-0000000000000003.bin"
touch -d '40 days ago' "$XDG_CACHE_HOME/vkllm/pipelines-ffff-ffff-0000000000000003.bin"
rm "$cache"
run
check "run beside other builds' caches" 0 $?
check "its notes" 0 "$(grep -c '^note:' "$tmp/err")"
check "our cache written" VKLLMPC "$(head -c 7 "$cache" 2>/dev/null)"
check "a recent cache of another build kept" x "$(cat "$base-0000000000000001.bin" 2>/dev/null)"
check "a stale cache of another build removed" no "$([ -e "$base-0000000000000002.bin" ] && echo yes || echo no)"
check "another device's cache kept" yes \
    "$([ -e "$XDG_CACHE_HOME/vkllm/pipelines-ffff-ffff-0000000000000003.bin" ] && echo yes || echo no)"
touch -d '40 days ago' "$cache"
run
check "a loaded cache is marked used" yes "$(find "$cache" -mtime -1 | grep -q . && echo yes || echo no)"

# ---- 4. a cache home nobody may write (root writes through permissions: a
# file system it may not write stands in)
if [ "$(id -u)" = 0 ]; then export XDG_CACHE_HOME=/proc/self; else
    mkdir -m 500 "$tmp/ro" && export XDG_CACHE_HOME=$tmp/ro; fi
run
check "run with a read-only cache home" 0 $?
check "its notes" 0 "$(grep -c '^note:' "$tmp/err")"

echo "$checks checks, $failures failures"
[ "$failures" = 0 ]
