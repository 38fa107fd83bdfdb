#!/usr/bin/env bash
# test_lora.sh: the LoRA flags of the programs, and broken adapter files.
#   test_lora.sh VKLLM GEN_MODEL GEN_LORA SCRATCH_DIR
# vkllm info on an adapter shows its rank, alpha and matrices; run, perplexity
# and bench take --lora FILE and --lora-scaled FILE SCALE (repeatable); an
# adapter changes run's greedy text and a scale of 0 gives the model's own;
# a bad adapter is one "error:" line and exit status 1; and 60 randomly
# corrupted adapter files (bytes overwritten, or the file cut short, as
# test_hostile.sh does to models) never crash run: each exits 0 or 1, with
# at most one error line. info says why an adapter would be refused; a
# wrong --lora is refused before the model's upload; adapters count in the
# memory budget (run, serve, chat's /lora).
set -u
vkllm=$1 gen_model=$2 gen_lora=$3 scratch=$4
mkdir -p "$scratch"
failures=0 checks=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

base=$scratch/base.gguf other=$scratch/other.gguf
"$gen_model" -o "$base" --type f16 --n-embd 64 --n-head 8 --n-head-kv 2 --n-layer 2 --n-ff 96 \
    --n-vocab 300 --seed 1 || fail "gen_model"
"$gen_model" -o "$other" --type f16 --n-embd 96 --n-head 8 --n-head-kv 2 --n-layer 2 --n-ff 96 \
    --n-vocab 300 --seed 1 || fail "gen_model"
"$gen_lora" -m "$base" -o "$scratch/a.gguf" --rank 8 --alpha 16 --seed 3 || fail "gen_lora"
"$gen_lora" -m "$base" -o "$scratch/b.gguf" --rank 16 --type f16 --targets all --seed 4 ||
    fail "gen_lora"
"$gen_lora" -m "$other" -o "$scratch/other-lora.gguf" --rank 8 || fail "gen_lora"

# ---- vkllm info on an adapter
checks=$((checks + 1))
info=$("$vkllm" info "$scratch/a.gguf" 2>&1)
grep -q "^adapter: lora for llama, alpha 16$" <<<"$info" &&
    grep -q "14 matrices, rank 8; at scale 1 the side path is multiplied by alpha / rank = 2" \
        <<<"$info" &&
    grep -q "blk.0.attn_q.weight  *rank 8 *A 64 x 8 F32, B 8 x 64 F32" <<<"$info" ||
    fail "info: $info"

# ---- run: the adapter changes the text, scale 0 does not, stacking works
gen() { "$vkllm" run -m "$base" -p "Hello world" -n 16 --temp 0 "$@" 2>"$scratch/err"; }
plain=$(gen) || fail "run: $(cat "$scratch/err")"
with=$(gen --lora "$scratch/a.gguf") || fail "run --lora: $(cat "$scratch/err")"
grep -q "vkllm: adapter .*a.gguf at scale 1: 14 matrices, rank 8, alpha 16" "$scratch/err" ||
    fail "run --lora: no adapter line in $(cat "$scratch/err")"
zero=$(gen --lora-scaled "$scratch/a.gguf" 0) || fail "run --lora-scaled 0: $(cat "$scratch/err")"
both=$(gen --lora "$scratch/a.gguf" --lora-scaled "$scratch/b.gguf" 0.5) ||
    fail "run, two adapters: $(cat "$scratch/err")"
checks=$((checks + 3))
[ "$plain" != "$with" ] || fail "the adapter did not change the text: $with"
[ "$plain" = "$zero" ] || fail "scale 0 changed the text: '$plain' vs '$zero'"
[ "$both" != "$with" ] || fail "the second adapter changed nothing"

# ---- perplexity and bench take the flags
text=$scratch/text.txt
for i in $(seq 40); do echo "the cat sat on the mat and the dog ran to the park $i"; done >"$text"
ppl() { "$vkllm" perplexity -m "$base" -f "$text" -c 64 --chunks 2 "$@" 2>"$scratch/err"; }
p0=$(ppl) || fail "perplexity: $(cat "$scratch/err")"
p1=$(ppl --lora-scaled "$scratch/a.gguf" 0.5) || fail "perplexity --lora: $(cat "$scratch/err")"
checks=$((checks + 1))
[ -n "$p1" ] && [ "$p0" != "$p1" ] || fail "perplexity: '$p0' with and without the adapter"
"$vkllm" bench -m "$base" -p 16 -n 4 -r 1 --lora "$scratch/a.gguf" >"$scratch/out" \
    2>"$scratch/err" || fail "bench --lora: $(cat "$scratch/err")"
checks=$((checks + 1))
grep -q "tg4" "$scratch/out" || fail "bench --lora: $(cat "$scratch/out")"

# ---- refusals: one error line, exit status 1
expect() { # WHAT WANT COMMAND...
    local what=$1 want=$2
    shift 2
    checks=$((checks + 1))
    "$@" >"$scratch/out" 2>"$scratch/err" </dev/null
    local status=$?
    [ $status -eq 1 ] || fail "$what: exit status $status"
    [ "$(grep -c '^error: ' "$scratch/err")" = 1 ] || fail "$what: not one error line"
    grep -q "^error: .*$want" "$scratch/err" || fail "$what: no '$want' in: $(cat "$scratch/err")"
}
expect "other base" "other-lora.gguf: blk.0.attn_q.weight.lora_a is 96x8, the model's" \
    "$vkllm" run -m "$base" -n 1 --lora "$scratch/other-lora.gguf"
expect "a model as adapter" "not a LoRA adapter (no general.type key)" \
    "$vkllm" run -m "$base" -n 1 --lora "$base"
expect "missing file" "nope.gguf" "$vkllm" run -m "$base" -n 1 --lora "$scratch/nope.gguf"
expect "no scale" "--lora-scaled needs a file and a scale" \
    "$vkllm" run -m "$base" --lora-scaled "$scratch/a.gguf"
expect "bad scale" "--lora-scaled: 'x' is not a number" \
    "$vkllm" run -m "$base" --lora-scaled "$scratch/a.gguf" x
expect "perplexity, other base" "is 96x8" \
    "$vkllm" perplexity -m "$base" -f "$text" -c 64 --lora "$scratch/other-lora.gguf"
expect "bench, other base" "is 96x8" \
    "$vkllm" bench -m "$base" -p 16 -n 4 -r 1 --lora "$scratch/other-lora.gguf"

# ---- info names what every loader refuses, with or without a model: it
# described such adapters as usable (a lora_b of another rank than its lora_a
# as "rank 4", an alpha of NaN as "alpha / rank = nan"); exit status 0, as
# for a model file vkllm cannot run
"$gen_lora" -m "$base" -o "$scratch/rank-b.gguf" --rank 8 --rank-b 4 --targets q --seed 5 &&
    "$gen_lora" -m "$base" -o "$scratch/alpha-nan.gguf" --alpha nan --targets q --seed 5 ||
    fail "gen_lora (info refusals)"
for want in "rank-b.gguf: blk.0.attn_q.weight.lora_a has rank 8 but blk.0.attn_q.weight.lora_b has 4" \
    "alpha-nan.gguf: adapter.lora.alpha is nan, must be a number of magnitude under 1e30"; do
    checks=$((checks + 1))
    out=$("$vkllm" info "$scratch/${want%%:*}" 2>&1) || fail "info ${want%%:*}: exit status $?"
    grep -q "^adapter: vkllm cannot use this file: .*$want" <<<"$out" ||
        fail "info ${want%%:*}: no refusal in: $(tail -n 3 <<<"$out")"
done
checks=$((checks + 1))
"$vkllm" info "$scratch/a.gguf" | grep -q "cannot use" && fail "info refuses a good adapter"

# ---- a wrong adapter is found before the model is uploaded (it took a whole
# load first, minutes for a big model): with too little memory for the model
# the adapter's error comes first, in every command that takes --lora
wrong=(--lora "$scratch/other-lora.gguf")
first() { # WHAT COMMAND...: the adapter's error, not the memory's
    local what=$1
    shift
    VKLLM_MAX_MEMORY=64K expect "$what, before the upload" \
        "other-lora.gguf: blk.0.attn_q.weight.lora_a is 96x8, the model's" "$@"
}
first run "$vkllm" run -m "$base" -n 1 "${wrong[@]}"
first perplexity "$vkllm" perplexity -m "$base" -f "$text" -c 64 "${wrong[@]}"
first bench "$vkllm" bench -m "$base" -p 16 -n 4 -r 1 "${wrong[@]}"
first chat "$vkllm" chat -m "$base" "${wrong[@]}"
first serve "$vkllm" serve -m "$base" --port 0 "${wrong[@]}"
VKLLM_MAX_MEMORY=64K expect "a typo, before the upload" "nope.gguf" \
    "$vkllm" run -m "$base" -n 1 --lora "$scratch/nope.gguf"

# ---- adapters count in the memory budget (they were uploaded unchecked):
# with the device holding exactly the model and its context, an adapter is
# refused before any upload, in numbers that name it; chat's /lora (the
# window's panel loads through the same call) refuses it and goes on (the
# error makes a script's exit status 1)
tot=$("$vkllm" info -m "$base" -c 256 | awk '$1 == "total" { print $2 }')
VKLLM_MAX_MEMORY=$tot expect "run: no room for the adapter" \
    "base.gguf: needs .* (weights .*, adapter .*, KV cache .*) but .* free (VKLLM_MAX_MEMORY)" \
    "$vkllm" run -m "$base" -c 256 -n 1 --lora "$scratch/b.gguf"
VKLLM_MAX_MEMORY=$tot expect "serve: no room for the adapters" \
    "base.gguf: needs .* (weights .*, adapters .*, KV cache" \
    "$vkllm" serve -m "$base" -c 256 --port 0 --lora "$scratch/a.gguf" --lora "$scratch/b.gguf"
room=$((tot + 2 * $(stat -c %s "$scratch/b.gguf")))
checks=$((checks + 1))
VKLLM_MAX_MEMORY=$room "$vkllm" run -m "$base" -c 256 -p Hi -n 2 --lora "$scratch/b.gguf" \
    >/dev/null 2>"$scratch/err" || fail "run with room for the adapter: $(cat "$scratch/err")"
checks=$((checks + 1))
printf '/lora %s\n/lora\nHi\n' "$scratch/b.gguf" |
    VKLLM_MAX_MEMORY=$tot "$vkllm" chat -m "$base" -c 256 -n 2 >"$scratch/out" 2>"$scratch/err"
status=$?
[ $status -eq 1 ] && grep -q "^error: .*b.gguf: the adapter needs .* free beside the model, its \
sessions and the adapters already loaded (VKLLM_MAX_MEMORY)$" "$scratch/err" &&
    grep -q "no LoRA adapters" "$scratch/err" && grep -q "replied 2 tokens" "$scratch/err" ||
    fail "chat /lora without room: status $status: $(cat "$scratch/err")"

# ---- corrupted adapters: never a crash. A fixed seed makes it repeatable.
RANDOM=11
size=$(stat -c %s "$scratch/b.gguf")
refused=0
for i in $(seq 60); do
    bad=$scratch/bad.gguf
    cp "$scratch/b.gguf" "$bad"
    if [ $((i % 5)) -eq 0 ]; then
        truncate -s $(((RANDOM * 32768 + RANDOM) % size)) "$bad"
    else
        # a byte anywhere, and 0 to 2 in the header and tensor infos (the first 2 KiB)
        for j in $(seq 0 $((i % 3))); do
            off=$(((RANDOM * 32768 + RANDOM) % (j == 0 ? size : 2048)))
            printf "\\x$(printf %02x $((RANDOM % 256)))" |
                dd of="$bad" bs=1 seek="$off" conv=notrunc status=none
        done
    fi
    "$vkllm" run -m "$base" -p "Hi" -n 2 --temp 0 --lora "$bad" >/dev/null 2>"$scratch/err" </dev/null
    status=$?
    checks=$((checks + 1))
    [ $status -eq 1 ] && refused=$((refused + 1))
    if [ $status -gt 1 ] || [ "$(grep -c '^error: ' "$scratch/err")" -gt 1 ]; then
        cp "$bad" "$scratch/crash-$i.gguf"
        fail "corrupted adapter $i (kept as crash-$i.gguf): status $status: $(head -c 300 "$scratch/err")"
    fi
done

echo "corrupted adapters: $refused of 60 refused, the others ran"
echo "$checks checks, $failures failed"
[ $failures -eq 0 ]
