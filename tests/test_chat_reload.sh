#!/usr/bin/env bash
# test_chat_reload.sh: a conversation taken back with /load (issue 10) is
# tokenized as a fresh process tokenizes it, so its replies are the same.
#   test_chat_reload.sh VKLLM SCRATCH_DIR
# The bug it guards: /load kept the cache's tokens by text, the sampled tokens
# of the replies and the prompts tokenized up to a message join included,
# where the file's text tokenizes otherwise; after /save, /reset, /load the
# next turn's prompt was 120 tokens, 118 in a fresh process, and the replies
# could differ. Greedy, the bundled model (its built-in llama2 format).
set -u
vkllm=$1 scratch=$2
mkdir -p "$scratch"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

save=$scratch/saved.json
rm -f "$save"
chat() { # NAME LINE...: the chat's replies in NAME.out, its stderr in NAME.err
    local name=$1
    shift
    printf '%s\n' "$@" | timeout 300 "$vkllm" chat --system "You are terse." --temp 0 -n 8 \
        --ignore-eos >"$scratch/$name.out" 2>"$scratch/$name.err" ||
        fail "$name: chat exited with $?: $(tail -3 "$scratch/$name.err")"
    grep -q '^error' "$scratch/$name.err" && fail "$name: $(grep '^error' "$scratch/$name.err")"
}
chat same "Hello there" "How are you today?" "/save $save" "/reset" "/load $save" \
    "Tell me more" "And then?" "/exit"
chat fresh "/load $save" "Tell me more" "And then?" "/exit"

# the turns after the /load: prompt tokens (new + cached), tokens in the cache
turns() { # NAME
    awk '/^vkllm: turn [0-9]+: [0-9]+ new prompt tokens/ { sub(/\(/, "", $8); print $3, "prompt", $4 + $8 }
         /^vkllm: turn [0-9]+: replied/ { sub(/\(/, "", $7); print $3, "replied", $5, "cache", $7 }' \
        "$scratch/$1.err" | tail -4
}
same=$(turns same) fresh=$(turns fresh)
echo "after /save, /reset, /load:"
echo "$same"
echo "fresh process:"
echo "$fresh"
[ "$(echo "$fresh" | wc -l)" = 4 ] || fail "fresh: expected 2 turns: $(cat "$scratch/fresh.err")"
[ "$same" = "$fresh" ] || fail "token counts differ after /save, /reset, /load from a fresh /load"
# the replies after the /load: the last two lines of each
[ "$(tail -2 "$scratch/same.out")" = "$(tail -2 "$scratch/fresh.out")" ] ||
    fail "replies differ: '$(tail -2 "$scratch/same.out")' against '$(tail -2 "$scratch/fresh.out")'"
[ "$(tail -2 "$scratch/same.out" | tr -d '\n')" != "" ] || fail "no replies"

[ $failures = 0 ] && echo "test_chat_reload.sh: all passed" || echo "test_chat_reload.sh: $failures failures"
[ $failures = 0 ]
