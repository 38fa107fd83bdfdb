#!/usr/bin/env bash
# test_template_cli.sh VKLLM TEST_TEMPLATE DATA WORKDIR
# vkllm template: every reference case of DATA/templates through the program,
# byte for byte (the two that must raise: their message, a non-zero exit and no
# output), then -m with a model's own template and BOS/EOS, and the errors.
set -u
vkllm=$1 test_template=$2 data=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }

"$test_template" --write-cases "$work" > "$work/cases.txt" || { echo "cannot write cases" >&2; exit 1; }
n=0 ok=0
while read -r tmpl ctx expected expect; do
    n=$((n + 1))
    "$vkllm" template --template "$data/templates/$tmpl" --context "$ctx" > "$work/out" 2> "$work/err"
    rc=$?
    if [ "$expect" = output ]; then
        if [ $rc -eq 0 ] && cmp -s "$work/out" "$data/templates/$expected"; then ok=$((ok + 1)); else bad "$expected (exit $rc: $(cat "$work/err"))"; fi
    else
        want="error: $data/templates/$tmpl: $(cat "$data/templates/$expected")"
        if [ $rc -ne 0 ] && [ ! -s "$work/out" ] && [ "$(cat "$work/err")" = "$want" ]; then ok=$((ok + 1)); else bad "$expected: got exit $rc, '$(cat "$work/err")'"; fi
    fi
done < "$work/cases.txt"
echo "vkllm template: $ok of $n reference cases match" >&2
[ "$n" -eq 64 ] || bad "expected 64 cases, found $n"

# -m: the model's template, and its BOS/EOS texts where the JSON has none
"$test_template" --write-gguf "$work/model.gguf" || bad "cannot write the model"
printf '{"messages": [{"role": "user", "content": "hi"}]}' > "$work/ctx.json"
out=$("$vkllm" template -m "$work/model.gguf" --context "$work/ctx.json") || bad "-m failed"
[ "$out" = "<|bos|><user>hi<|eos|>" ] || bad "-m rendered '$out'"
printf '{"messages": [{"role": "user", "content": "hi"}], "bos_token": "B"}' > "$work/ctx2.json"
out=$("$vkllm" template -m "$work/model.gguf" --context "$work/ctx2.json") || bad "-m failed"
[ "$out" = "B<user>hi<|eos|>" ] || bad "-m with bos_token rendered '$out'"

# a context nested 600 deep renders, as with Jinja2 (it failed, naming the
# template); one deeper than JSON files are read is an error naming the context
deep() { printf '{"messages": [{"role": "user", "content": "hi", "x": '; printf "%${1}s" | tr ' ' '['; printf "%${1}s" | tr ' ' ']'; printf '}]}'; }
deep 600 > "$work/deep600.json"
deep 3000 > "$work/deep3000.json"
out=$("$vkllm" template -m "$work/model.gguf" --context "$work/deep600.json") || bad "a context 600 deep failed"
[ "$out" = "<|bos|><user>hi<|eos|>" ] || bad "a context 600 deep rendered '$out'"

# errors: one line, non-zero exit
expect_error() { # WHAT PATTERN ARGS...
    local what=$1 pattern=$2
    shift 2
    "$vkllm" template "$@" > "$work/out" 2> "$work/err"
    local rc=$?
    if [ $rc -eq 0 ] || [ -s "$work/out" ] || [ "$(wc -l < "$work/err")" -ne 1 ] || ! grep -q -- "$pattern" "$work/err"; then
        bad "$what: exit $rc, stderr '$(cat "$work/err")'"
    fi
}
printf '{bad' > "$work/bad.json"
printf '{{ 1 +' > "$work/bad.jinja"
expect_error "missing template" "cannot open" --template "$work/none.jinja" --context "$work/ctx.json"
expect_error "missing context" "none.json" --template "$work/bad.jinja" --context "$work/none.json"
expect_error "bad JSON" "bad.json" --template "$work/bad.jinja" --context "$work/bad.json"
expect_error "syntax error" "bad.jinja: line 1" --template "$work/bad.jinja" --context "$work/ctx.json"
expect_error "context too deep" "^error: $work/deep3000.json: " -m "$work/model.gguf" --context "$work/deep3000.json"
# a context of a million values is refused before it is parsed, naming the file
# (30 MB of "[]," took 15 s and 2.95 GB, then blamed the template)
{ printf '{"messages": [], "x": ['; yes '[],' | head -n 500001 | tr -d '\n'; printf '[]]}'; } > "$work/values.json"
expect_error "a million values" "^error: $work/values.json: more than 1000000 JSON values" -m "$work/model.gguf" --context "$work/values.json"
expect_error "no template in the model" "no chat template" -m "$data/stories260K.gguf" --context "$work/ctx.json"
expect_error "no source" "needs -m MODEL or --template" --context "$work/ctx.json"
expect_error "no context" "needs --context" --template "$work/bad.jinja"
exit $fail
