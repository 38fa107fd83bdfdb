#!/usr/bin/env bash
# test_serve_hostile.sh: vkllm serve with crafted model and adapter files
# (the round-6 probe's findings; curl as the client).
#   test_serve_hostile.sh VKLLM DATA_DIR SCRATCH_DIR CRAFT_GGUF GEN_LORA
# 1. A chat template that renders bytes that are not UTF-8: /apply-template
#    answered 500 "out of memory"; now 200, the bytes as U+FFFD.
# 2. Tokens longer than 256 bytes: /detokenize refused a real one as "not a
#    token id of this model"; now its whole text.
# 3. An adapter holding NaN: the server started, and every generation was a
#    500 blaming the model's file; now it is refused at start, one line.
# 4. (round 7) --host ::1 printed http://::1:PORT; now http://[::1]:PORT.
# 5. (issue 10) chat_template_kwargs and reasoning_effort were ignored, the
#    template rendered without them: now a 400 when the template reads the
#    variable, and passed when it never names it.
# 6. (issue 10) a --host it cannot listen on is refused before the model loads.
# 7. (round 9, B-2) a template that refuses a client's messages (two user turns
#    in a row, as Gemma's) answered 200 with a built-in format's prompt: now a
#    400 with the template's message, and the next request renders as before.
# Exit 77 (skipped) when curl is missing.
set -u
vkllm=$1 data=$2 scratch=$3 craft=$4 gen_lora=$5
rm -rf "$scratch" && mkdir -p "$scratch" || exit 1
failures=0 checks=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
model=$data/stories260K.gguf

if ! command -v curl >/dev/null; then
    echo "skipped: curl is needed" >&2
    exit 77
fi

server_pid=""
cleanup() { [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null; }
trap cleanup EXIT

# Starts a server on MODEL, logging to LOG; sets $url and $server_pid.
start_server() { # LOG MODEL
    : >"$1"
    "$vkllm" serve -m "$2" --port 0 2>"$1" &
    server_pid=$!
    local port=""
    for _ in $(seq 600); do
        port=$(sed -n 's#^serve: listening on http://[^:]*:\([0-9]*\)$#\1#p' "$1")
        [ -n "$port" ] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "FAIL: the server did not start: $(cat "$1")" >&2; exit 1; }
    url=http://127.0.0.1:$port
}

# Stops the server with SIGTERM: it must exit 0 (under ASan: nothing leaked).
stop_server() { # LOG
    checks=$((checks + 1))
    kill -TERM "$server_pid"
    wait "$server_pid"
    local rc=$?
    server_pid=""
    [ $rc = 0 ] || fail "the server exited with $rc on SIGTERM: $(tail -5 "$1")"
}

# post PATH BODY: the status to $status, the body to $scratch/body
post() {
    checks=$((checks + 1))
    status=$(curl -s -o "$scratch/body" -w '%{http_code}' -H "Content-Type: application/json" \
        -d "$2" "$url$1")
}

# json EXPR: python's EXPR over the body parsed as J (fails unless valid JSON)
json() { python3 -c "import json, sys; J = json.load(open(sys.argv[1])); print($1)" "$scratch/body"; }

# ---- 1. a template whose rendering is not UTF-8
"$craft" "$model" "$scratch/tpl.gguf" --str-x tokenizer.chat_template \
    '\xff{% for m in messages %}{{ m.content }}{% endfor %}\xc3' || fail "craft_gguf tpl"
start_server "$scratch/tpl.log" "$scratch/tpl.gguf"
post /apply-template '{"messages":[{"role":"user","content":"h\u00e9llo"}]}'
[ "$status" = 200 ] && [ "$(json 'J["prompt"] == "\ufffdh\u00e9llo\ufffd"')" = True ] ||
    fail "/apply-template, a rendering not UTF-8: $status $(head -c 300 "$scratch/body")"
stop_server "$scratch/tpl.log"

# ---- 2. tokens of 300 bytes and more: every normal token gets 300 x L
long=$(printf 'L%.0s' $(seq 300))
"$craft" "$model" "$scratch/long.gguf" --token-suffix "$long" || fail "craft_gguf long"
start_server "$scratch/long.log" "$scratch/long.gguf"
post /detokenize '{"tokens":[403, 403]}'
[ "$status" = 200 ] && [ "$(json 'len(J["content"]) >= 600 and J["content"].endswith("L" * 300)')" = True ] ||
    fail "/detokenize, a token of 300 bytes and more: $status $(head -c 300 "$scratch/body")"
post /detokenize '{"tokens":[99999999]}'
[ "$status" = 400 ] && grep -q "is not a token id of this model" "$scratch/body" ||
    fail "/detokenize, an id out of range: $status $(head -c 300 "$scratch/body")"
stop_server "$scratch/long.log"

# ---- 3. an adapter holding NaN is refused at start
checks=$((checks + 1))
"$gen_lora" -m "$model" -o "$scratch/nan.gguf" --rank 4 --type f32 --mag nan || fail "gen_lora"
timeout 60 "$vkllm" serve -m "$model" --port 0 --lora "$scratch/nan.gguf" 2>"$scratch/nan.log"
rc=$?
[ $rc = 1 ] && [ "$(grep -c . "$scratch/nan.log")" = 1 ] &&
    grep -q "^error: .*/nan.gguf: blk.0.attn_q.weight.lora_b holds NaN or infinite values$" \
        "$scratch/nan.log" || fail "serve --lora NaN: status $rc: $(cat "$scratch/nan.log")"

# ---- 4. an IPv6 address: the URL brackets it (it printed http://::1:PORT)
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    : >"$scratch/v6.log"
    "$vkllm" serve -m "$model" --port 0 --host ::1 2>"$scratch/v6.log" &
    server_pid=$!
    checks=$((checks + 1))
    for _ in $(seq 600); do
        grep -q 'listening' "$scratch/v6.log" || ! kill -0 "$server_pid" 2>/dev/null && break
        sleep 0.1
    done
    v6url=$(sed -n 's#^serve: listening on \(http://\[::1\]:[0-9]*\)$#\1#p' "$scratch/v6.log")
    [ -n "$v6url" ] && curl -s -g "$v6url/health" | grep -q '"status":"ok"' ||
        fail "--host ::1: $(cat "$scratch/v6.log")"
    stop_server "$scratch/v6.log"
fi

# ---- 5. a template reading enable_thinking, as Qwen3's: the variables a
# request would give it are refused, those it never names pass
"$craft" "$model" "$scratch/think.gguf" --str tokenizer.chat_template \
    '{% for m in messages %}{{ m.content }}{% endfor %}{% if enable_thinking is defined and not enable_thinking %}/no_think{% endif %}' ||
    fail "craft_gguf think"
start_server "$scratch/think.log" "$scratch/think.gguf"
msgs='"messages":[{"role":"user","content":"Hi"}],"max_tokens":1'
for path in /v1/chat/completions /apply-template; do
    for extra in '"chat_template_kwargs":{"enable_thinking":false}' '"reasoning_effort":"none"'; do
        post $path "{$msgs,$extra}"
        [ "$status" = 400 ] && grep -q "the chat template reads 'enable_thinking'" "$scratch/body" ||
            fail "$path with $extra: $status $(head -c 300 "$scratch/body")"
    done
    post $path "{$msgs,\"chat_template_kwargs\":{\"unread\":1},\"reasoning_effort\":\"high\"}"
    [ "$status" = 200 ] || fail "$path, variables the template never names: $status $(head -c 300 "$scratch/body")"
done
stop_server "$scratch/think.log"

# ---- 6. (issue 10, M-3) a --host it cannot listen on loaded the whole model
# first, and ::1 with an unknown interface was taken: now refused before the
# model is opened (a missing one would be the error otherwise)
for host in "" localhost. "[::1]" 1.2.3.4 "::1%99"; do
    checks=$((checks + 1))
    timeout 20 "$vkllm" serve -m "$scratch/none.gguf" --host "$host" --port 0 >/dev/null 2>"$scratch/host.err"
    rc=$?
    [ $rc = 1 ] && [ "$(wc -l <"$scratch/host.err")" = 1 ] && grep -q '^error: --host' "$scratch/host.err" ||
        fail "--host '$host': status $rc, $(head -c 300 "$scratch/host.err")"
done

# ---- 7. (round 9, B-2) a refused conversation is the client's 400, not a
# prompt in a format the model never saw; the next one renders by the template
"$craft" "$model" "$scratch/alt.gguf" --str tokenizer.chat_template \
    "{% for m in messages %}{% if loop.index0 > 0 and m.role == messages[loop.index0 - 1].role %}{{ raise_exception('Conversation roles must alternate') }}{% endif %}<{{ m.role }}>{{ m.content }}{% endfor %}" ||
    fail "craft_gguf alt"
start_server "$scratch/alt.log" "$scratch/alt.gguf"
for path in /v1/chat/completions /apply-template; do
    post $path '{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}],"max_tokens":1}'
    [ "$status" = 400 ] && grep -q "Conversation roles must alternate" "$scratch/body" ||
        fail "$path, two user turns: $status $(head -c 300 "$scratch/body")"
done
post /apply-template '{"messages":[{"role":"user","content":"a"}]}'
[ "$status" = 200 ] && grep -q '<user>a' "$scratch/body" ||
    fail "/apply-template after a refused one: $status $(head -c 300 "$scratch/body")"
grep -q "built-in" "$scratch/alt.log" && fail "the server fell back: $(grep built-in "$scratch/alt.log")"
stop_server "$scratch/alt.log"

echo "test_serve_hostile: $checks checks, $failures failures"
[ $failures = 0 ]
