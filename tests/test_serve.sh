#!/usr/bin/env bash
# test_serve.sh: vkllm serve with real clients.
#   test_serve.sh VKLLM DATA_DIR MJS_DIR NPM_DIR SCRATCH_DIR GEN_LORA
# 1. The official `openai` npm client (installed into NPM_DIR at the first
#    run) drives tests/serve/openai.mjs: chat completions and completions,
#    streaming and not, equal to `vkllm run`; a burst of 4 clients x 5
#    streaming requests; a resent conversation reusing its cached prefix.
#    tests/serve/fuzz.mjs then sends 400 hostile bodies: each gets 200, 400
#    or 413, and nothing stays busy.
# 2. curl: every error path answers with its status and an OpenAI-style
#    error object (401, 413, 400 malformed / wrong type / too long /
#    unsupported, 404, 405); CORS headers only with --cors. Hostile
#    clients (tests/serve/rawhttp.py): 401 before an 8 MB body is read, 403
#    for a foreign Host, 415 for a non-JSON body, 400 for a body framed twice
#    or no Host, a request trickling in cut at --request-timeout (a kept-alive
#    connection idle longer is not), 32 connections per address. Known
#    fields that change the answer (echo, best_of, suffix, top_logprobs,
#    tool_choice, llama-server's grammar, mirostat...), a float that rounds
#    to 0, NUL in a role or stop, an empty body: 400 (a stream's before its
#    200); NUL in content, n_predict, a BOM, logit_bias {}, `bearer` any case: fine;
#    405's Allow names the route's methods.
# 3. A one-slot server with a queue of one: a third request gets 503; a
#    client that disconnects (streaming or not) frees its slot; one that
#    stalls mid-request is timed out (logged 408); one that half-closes after
#    its request gets its answer; a stream queued longer than --timeout is
#    not cut.
# 4. SIGTERM with a reply in progress: the stream is cut (logged 503, not
#    499), the server exits 0 (under ASan: nothing leaked), and the log has
#    one line per request.
# 5. A device lost mid-way: 500 for the request, 503 from /health, exit 0.
# 6. A model file name that is not UTF-8 (its id escaped), with a LoRA adapter:
#    greedy text equal to `vkllm run --lora`; -np too large names a set that fits.
# 7. Under ulimit -n 40 the connection limit leaves room for the engine's files.
# Exit 77 (skipped) when node or npm is missing.
set -u
vkllm=$1 data=$2 mjs=$3 npm_dir=$4 scratch=$5 gen_lora=$6
mkdir -p "$scratch"
failures=0 checks=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
model=$data/stories260K.gguf
key=test-key-123

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "skipped: node and npm are needed (scripts/setup.sh installs them)" >&2
    exit 77
fi
if [ ! -f "$npm_dir/node_modules/openai/package.json" ]; then
    npm install --prefix "$npm_dir" openai@4 --no-audit --no-fund --loglevel=error >&2 ||
        { echo "FAIL: npm install openai@4" >&2; exit 1; }
fi
# ES modules resolve packages from their own folder: the script runs from there
cp "$mjs"/*.mjs "$npm_dir/"

pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT

# Starts a server with ARGS, logging to LOG; sets $port and $server_pid.
start_server() { # LOG ARGS...
    local log=$1
    shift
    # emptied here: the background job truncates it only once it runs, and
    # the loop below could read the port of an earlier run's server
    : >"$log"
    "$vkllm" serve -m "$model" --port 0 "$@" 2>"$log" &
    server_pid=$!
    pids+=("$server_pid")
    port=""
    for _ in $(seq 600); do
        port=$(sed -n 's#^serve: listening on http://[^:]*:\([0-9]*\)$#\1#p' "$log")
        [ -n "$port" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "FAIL: the server did not start:" >&2
    cat "$log" >&2
    exit 1
}

# Stops the server with SIGTERM and checks it exits 0 within 30 s.
stop_server() { # LOG
    checks=$((checks + 1))
    kill -TERM "$server_pid"
    for _ in $(seq 300); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        fail "the server did not exit on SIGTERM"
        kill -9 "$server_pid"
    fi
    wait "$server_pid"
    local rc=$?
    [ $rc = 0 ] || { fail "the server exited with $rc on SIGTERM:"; tail -20 "$1" >&2; }
    grep -q "^serve: SIGTERM: stopping$" "$1" || fail "no stop line in $1"
}

# curl STATUS check: expect() { WANT_STATUS WANT_IN_BODY curl-args... }
expect() {
    local want=$1 grep_for=$2
    shift 2
    checks=$((checks + 1))
    local got args="$*"
    args=${args:0:200} # a hostile body stays short in the message
    got=$(curl -s -o "$scratch/body" -w '%{http_code}' -H "Content-Type: ${ctype:-application/json}" "$@")
    if [ "$got" != "$want" ]; then
        fail "curl $args: status $got, wanted $want: $(head -c 300 "$scratch/body")"
    elif ! grep -q -- "$grep_for" "$scratch/body"; then
        fail "curl $args: body lacks '$grep_for': $(head -c 300 "$scratch/body")"
    fi
}

cj=(-H "Content-Type: application/json") # the server takes only JSON bodies

# rawhttp.py send with stdin: the bytes of a request
raw() { python3 "$mjs/rawhttp.py" send "$port" "$@"; }

metric() { # NAME: its value on $port
    curl -s -H "Authorization: Bearer $key" "http://127.0.0.1:$port/metrics" |
        sed -n "s/^vkllm_$1 //p"
}

# Waits up to 20 s for metric NAME to equal VALUE.
wait_metric() { # NAME VALUE WHAT
    checks=$((checks + 1))
    for _ in $(seq 200); do
        [ "$(metric "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    fail "$3: vkllm_$1 is $(metric "$1"), not $2"
}

# ---- 1. the openai client, on 4 slots of 1024 tokens; -b 16: the prompts
# (28-76 tokens) go in chunks over several steps, and must still give run's text
log_a=$scratch/server-a.log
start_server "$log_a" -np 4 -c 4096 -b 16 --api-key "$key" --max-body 65536 --request-timeout 2
checks=$((checks + 1))
node "$npm_dir/openai.mjs" "http://127.0.0.1:$port/v1" "$key" "$vkllm" || fail "openai.mjs"
checks=$((checks + 1))
node "$npm_dir/fuzz.mjs" "http://127.0.0.1:$port" "$key" 400 || fail "fuzz.mjs"

# ---- 2. error paths
url=http://127.0.0.1:$port
auth=(-H "Authorization: Bearer $key")
chat='{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4}'
expect 200 '"status":"ok"' "$url/health" # no key needed
expect 401 '"code":"invalid_api_key"' "$url/v1/models"
expect 401 '"type":"authentication_error"' -H "Authorization: Bearer wrong" "$url/v1/models"
expect 401 'invalid_api_key' -H "Authorization: Bearer ${key}x" -d "$chat" "$url/v1/chat/completions"
expect 200 '"object":"list"' "${auth[@]}" "$url/v1/models"
head -c 70000 /dev/zero | tr '\0' 'a' >"$scratch/big"
expect 413 '"error"' "${auth[@]}" --data-binary @"$scratch/big" "$url/v1/completions"
expect 413 '"error"' "${auth[@]}" -H "Transfer-Encoding: chunked" --data-binary @"$scratch/big" \
    "$url/v1/completions"
expect 400 '"message":"malformed JSON' "${auth[@]}" -d '{"prompt": "x",' "$url/v1/completions"
expect 400 'must be a JSON object' "${auth[@]}" -d '[1,2]' "$url/v1/completions"
expect 400 '"param":"max_tokens"' "${auth[@]}" -d '{"prompt":"x","max_tokens":"4"}' "$url/v1/completions"
expect 400 '"param":"temperature"' "${auth[@]}" -d '{"prompt":"x","temperature":5}' "$url/v1/completions"
expect 400 '"param":"prompt"' "${auth[@]}" -d '{"prompt":7}' "$url/v1/completions"
expect 400 '"param":"messages"' "${auth[@]}" -d '{"messages":"Hi"}' "$url/v1/chat/completions"
expect 400 '"param":"messages\[0\].content"' "${auth[@]}" \
    -d '{"messages":[{"role":"user","content":5}]}' "$url/v1/chat/completions"
expect 400 '"param":"stream"' "${auth[@]}" -d '{"prompt":"x","stream":"yes"}' "$url/v1/completions"
expect 400 '"param":"n"' "${auth[@]}" -d '{"prompt":"x","n":3}' "$url/v1/completions"
expect 400 '"param":"tools"' "${auth[@]}" \
    -d '{"messages":[{"role":"user","content":"Hi"}],"tools":[{"type":"function"}]}' "$url/v1/chat/completions"
# a resent conversation holding tool calls (its template would not see them),
# a completion's logprobs of 0 (the chosen tokens' log probabilities), and
# llama-server's per-request adapters: refused, not ignored
expect 400 '"param":"messages\[1\].tool_calls"' "${auth[@]}" -d '{"messages":[{"role":"user",
    "content":"Hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function",
    "function":{"name":"f","arguments":"{}"}}]},{"role":"tool","content":"42","tool_call_id":"1"}]}' \
    "$url/v1/chat/completions"
expect 200 '"finish_reason"' "${auth[@]}" -d '{"messages":[{"role":"user","content":"Hi",
    "tool_calls":[]}],"max_tokens":1}' "$url/v1/chat/completions"
expect 400 '"param":"logprobs"' "${auth[@]}" -d '{"prompt":"x","logprobs":0}' "$url/v1/completions"
expect 200 '"finish_reason"' "${auth[@]}" -d '{"messages":[{"role":"user","content":"Hi"}],
    "logprobs":false,"max_tokens":1}' "$url/v1/chat/completions"
expect 400 '"param":"lora"' "${auth[@]}" -d '{"prompt":"x","lora":[{"id":0,"scale":0}]}' \
    "$url/v1/completions"
expect 400 '"param":"presence_penalty"' "${auth[@]}" -d '{"prompt":"x","presence_penalty":2.5}' \
    "$url/v1/completions"
# OpenAI's additive penalties: the text `vkllm run` gives with the same ones
checks=$((checks + 1))
curl -s "${auth[@]}" "${cj[@]}" -o "$scratch/penalties" -d '{"prompt":"Once upon a time",
    "max_tokens":40,"temperature":0,"frequency_penalty":1.5,"presence_penalty":0.5}' \
    "$url/v1/completions"
got=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["choices"][0]["text"], end="")' \
    "$scratch/penalties")
want=$("$vkllm" run -p "Once upon a time" -n 40 --temp 0 --frequency-penalty 1.5 \
    --presence-penalty 0.5 2>/dev/null)
plain=$("$vkllm" run -p "Once upon a time" -n 40 --temp 0 2>/dev/null)
[ "Once upon a time$got" = "$want" ] || fail "penalties: '$got' is not run's '${want#Once upon a time}'"
[ "$want" != "$plain" ] || fail "the penalties change nothing: the check proves nothing"
long=$(for _ in $(seq 1200); do printf 'the dog ran. '; done)
expect 400 '"code":"context_length_exceeded"' "${auth[@]}" -d "{\"prompt\":\"$long\"}" "$url/v1/completions"
expect 200 '"finish_reason":"length"' "${auth[@]}" \
    -d '{"prompt":"x","max_tokens":2,"unknown_field":{"a":1}}' "$url/v1/completions"
expect 404 '"code":"not_found"' "${auth[@]}" "$url/v2/nothing"
expect 405 '"error"' "${auth[@]}" -X DELETE "$url/v1/chat/completions"
expect 405 '"error"' "${auth[@]}" "$url/v1/completions"
expect 200 '"tokens":\[1,' "${auth[@]}" -d '{"content":"Once","add_special":true}' "$url/tokenize"
expect 200 '"content":"<s> Once"' "${auth[@]}" -d '{"tokens":[1,403]}' "$url/detokenize"
expect 400 '"param":"tokens"' "${auth[@]}" -d '{"tokens":[1,99999999]}' "$url/detokenize"
# hostile bodies: each a 400 (or a reply), never a crash
deep=$(head -c 20000 /dev/zero | tr '\0' '[')
expect 400 'malformed JSON' "${auth[@]}" -d "$deep" "$url/v1/completions"
printf '{"prompt":"\xff\xfe"}' >"$scratch/bad-utf8"
expect 400 'malformed JSON' "${auth[@]}" --data-binary @"$scratch/bad-utf8" "$url/v1/completions"
expect 400 'malformed JSON' "${auth[@]}" --data-binary $'{"prompt":"a\x00b"}' "$url/v1/completions"
# U+0000, which the model may generate: a client resending its answer is
# served; where the server would cut a C string (a role, a stop), a 400
expect 200 '"finish_reason"' "${auth[@]}" -d '{"prompt":"a\u0000b","max_tokens":1}' "$url/v1/completions"
expect 200 '"finish_reason"' "${auth[@]}" -d '{"messages":[{"role":"user","content":"Once"},
    {"role":"assistant","content":". Every dayx\u0000y"},{"role":"user","content":"more"}],"max_tokens":2}' \
    "$url/v1/chat/completions"
expect 200 '"prompt":"\[INST\] a\\u0000b \[/INST\]"' "${auth[@]}" \
    -d '{"messages":[{"role":"user","content":[{"type":"text","text":"a\u0000b"}]}]}' "$url/apply-template"
expect 400 '"param":"messages\[0\].role"' "${auth[@]}" \
    -d '{"messages":[{"role":"us\u0000er","content":"Hi"}]}' "$url/v1/chat/completions"
expect 400 '"param":"stop"' "${auth[@]}" -d '{"prompt":"a","stop":["x\u0000"]}' "$url/v1/completions"
expect 400 'real number overflow' "${auth[@]}" -d '{"prompt":"a","max_tokens":1e400}' "$url/v1/completions"
expect 400 '"param":"max_tokens"' "${auth[@]}" -d '{"prompt":"a","max_tokens":1.5}' "$url/v1/completions"
expect 400 '"param":"max_tokens"' "${auth[@]}" -d '{"prompt":"a","max_tokens":-5}' "$url/v1/completions"
expect 400 '"param":"messages\[0\].role"' "${auth[@]}" -d '{"messages":[{"content":"x"}]}' "$url/v1/chat/completions"
# a message without its text (it was rendered as an empty one); an assistant
# turn that called tools has none
expect 400 "'messages\[1\].content' is missing: a user message" "${auth[@]}" \
    -d '{"messages":[{"role":"system","content":"x"},{"role":"user"}]}' "$url/v1/chat/completions"
expect 400 '"param":"messages\[0\].content"' "${auth[@]}" \
    -d '{"messages":[{"role":"user","content":null}]}' "$url/v1/chat/completions"
expect 200 '"finish_reason"' "${auth[@]}" -d '{"messages":[{"role":"user","content":"Hi"},
    {"role":"assistant","content":null},{"role":"user","content":"Go on"}],"max_tokens":1}' \
    "$url/v1/chat/completions"
expect 400 '"param":"messages\[0\].content"' "${auth[@]}" \
    -d '{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}' "$url/v1/chat/completions"
expect 400 '"param":"stream_options"' "${auth[@]}" -d '{"prompt":"a","stream_options":3}' "$url/v1/completions"
expect 400 'the request body is empty' "${auth[@]}" -d '' "$url/v1/completions"
printf '\xef\xbb\xbf{"prompt":"x","max_tokens":1}' >"$scratch/bom"
expect 200 '"finish_reason"' "${auth[@]}" --data-binary @"$scratch/bom" "$url/v1/completions"
# a value that passes as a double but is 0 as the sampler's float: a 400
# before a stream's 200 (it was a 200 and then an error event)
expect 400 '"param":"top_p"' "${auth[@]}" -d '{"prompt":"a","top_p":1e-320,"stream":true}' "$url/v1/completions"
expect 400 '"param":"min_p"' "${auth[@]}" -d '{"prompt":"a","min_p":1e-320}' "$url/v1/completions"
# known fields that would change the answer are refused, not ignored
expect 400 '"param":"echo"' "${auth[@]}" -d '{"prompt":"a","echo":true}' "$url/v1/completions"
expect 400 '"param":"best_of"' "${auth[@]}" -d '{"prompt":"a","best_of":3}' "$url/v1/completions"
expect 400 '"param":"suffix"' "${auth[@]}" -d '{"prompt":"a","suffix":"zzz"}' "$url/v1/completions"
expect 400 '"param":"top_logprobs"' "${auth[@]}" -d '{"prompt":"a","top_logprobs":5}' "$url/v1/completions"
expect 400 '"param":"tool_choice"' "${auth[@]}" \
    -d '{"messages":[{"role":"user","content":"Hi"}],"tool_choice":"required"}' "$url/v1/chat/completions"
expect 200 '"finish_reason"' "${auth[@]}" \
    -d '{"prompt":"a","max_tokens":1,"echo":false,"best_of":1,"suffix":"","logit_bias":{},"tool_choice":"none"}' \
    "$url/v1/completions"
# llama-server's fields that change the answer: refused, or done (n_predict,
# repeat_last_n); their neutral values (what its web UI sends) are fine
for field in '"grammar":"root ::= \"yes\""' '"json_schema":{}' '"n_probs":3' '"mirostat":2' \
    '"typical_p":0.1' '"dry_multiplier":0.8' '"dry_whatever":1' '"samplers":["top_k"]'; do
    name=${field%%\":*}
    expect 400 "\"param\":\"${name#\"}\"" "${auth[@]}" -d "{\"prompt\":\"a\",$field}" "$url/v1/completions"
done
expect 200 '"completion_tokens":3,' "${auth[@]}" -d '{"prompt":"Once","n_predict":3}' "$url/v1/completions"
expect 200 '"finish_reason"' "${auth[@]}" -d '{"prompt":"a","max_tokens":1,"mirostat":0,"typical_p":1,
    "n_probs":0,"dry_multiplier":0,"dry_base":1.75,"dry_allowed_length":2,"samplers":[],"repeat_last_n":-1}' \
    "$url/v1/completions"
expect 400 '"param":"repeat_last_n"' "${auth[@]}" -d '{"prompt":"a","repeat_last_n":-2}' "$url/v1/completions"
# more of llama-server's that were answered 200 and ignored (issue 10); an
# id_slot that is not one of the 4 slots is refused
for field in '"top_n_sigma":1' '"t_max_predict_ms":1' '"return_tokens":true' '"post_sampling_probs":true' \
    '"response_fields":["x"]' '"min_keep":5' '"n_cmpl":2' '"n_indent":4' '"adaptive_target":0.5' \
    '"thinking_budget_tokens":0' '"reasoning_format":"auto"' '"parse_tool_calls":true' '"id_slot":4' \
    '"id_slot":-2' '"n_keep":"all"'; do
    name=${field%%\":*}
    expect 400 "\"param\":\"${name#\"}\"" "${auth[@]}" \
        -d "{\"prompt\":\"Once\",\"max_tokens\":2,\"temperature\":0,$field}" "$url/v1/completions"
done
expect 200 '"finish_reason"' "${auth[@]}" -d '{"prompt":"Once","max_tokens":2,"temperature":0,
    "top_n_sigma":-1,"t_max_predict_ms":0,"return_tokens":false,"post_sampling_probs":false,
    "response_fields":[],"min_keep":0,"n_keep":-1,"n_discard":0,"id_slot":3,"n_cmpl":1,
    "adaptive_target":-1,"thinking_budget_tokens":-1,"reasoning_format":"none","cache_prompt":false}' \
    "$url/v1/completions"
# how the template renders: the generation prompt is always added, a last
# message never continued; this model has no template, so no variable of
# chat_template_kwargs is read (test_serve_hostile: one that is)
for field in '"add_generation_prompt":false' '"continue_final_message":true' '"chat_template_kwargs":3'; do
    name=${field%%\":*}
    for path in /v1/chat/completions /apply-template; do
        expect 400 "\"param\":\"${name#\"}\"" "${auth[@]}" \
            -d "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":1,$field}" "$url$path"
    done
done
expect 200 '"finish_reason"' "${auth[@]}" -d '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":1,
    "add_generation_prompt":true,"chat_template_kwargs":{"enable_thinking":false},"reasoning_effort":"none"}' \
    "$url/v1/chat/completions"
# repeat_last_n 0 turns the penalty off: the text of no penalty at all
checks=$((checks + 1))
for rln in 0 64; do
    curl -s "${auth[@]}" "${cj[@]}" -o "$scratch/rln-$rln" -d '{"prompt":"Once upon a time",
        "max_tokens":40,"temperature":0,"frequency_penalty":1.5,"repeat_last_n":'$rln'}' "$url/v1/completions"
done
curl -s "${auth[@]}" "${cj[@]}" -o "$scratch/rln-none" -d '{"prompt":"Once upon a time",
    "max_tokens":40,"temperature":0}' "$url/v1/completions"
text() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["choices"][0]["text"])' "$1"; }
[ "$(text "$scratch/rln-0")" = "$(text "$scratch/rln-none")" ] &&
    [ "$(text "$scratch/rln-64")" != "$(text "$scratch/rln-none")" ] ||
    fail "repeat_last_n 0 did not turn the penalty off: $(text "$scratch/rln-0")"
# a value just past a limit is shown as it is, not rounded onto the limit
expect 400 'between -2 and 2 (got 2.000001)' "${auth[@]}" -d '{"prompt":"a","frequency_penalty":2.000001}' \
    "$url/v1/completions"
# the scheme is any case, and spaces around the key do not count
expect 200 '"object":"list"' -H "Authorization: bearer $key" "$url/v1/models"
expect 200 '"object":"list"' -H "Authorization: BEARER $(printf '\t')$key  " "$url/v1/models"
expect 401 'invalid_api_key' -H "Authorization: Bearer${key}" "$url/v1/models"
# a 405 names the route's own methods
checks=$((checks + 1))
curl -s -D - -o /dev/null "${auth[@]}" -X DELETE "$url/v1/chat/completions" | tr -d '\r' |
    grep -q '^Allow: POST$' || fail "405 for a POST route: no 'Allow: POST'"
checks=$((checks + 1))
curl -s -D - -o /dev/null "${auth[@]}" "${cj[@]}" -d '{}' "$url/v1/models" | tr -d '\r' |
    grep -q '^Allow: GET, HEAD$' || fail "405 for a GET route: no 'Allow: GET, HEAD'"
# what the headers alone decide is answered before the body is read: an
# 8 MB upload without the key gets its 401 at once, nothing buffered
checks=$((checks + 1))
printf 'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 8000000\r\n\r\n' |
    raw --head | grep -q '^HTTP/1.1 401 ' || fail "no 401 before the body"
# a loopback server answers only local Host names (DNS rebinding), and only
# JSON bodies (a page may POST text/plain across origins unasked)
expect 403 '"code":"forbidden_host"' -H "Host: attacker.example" "$url/health"
expect 403 'forbidden_host' "${auth[@]}" -H "Host: localhost.attacker.example:$port" "$url/v1/models"
expect 200 '"object":"list"' "${auth[@]}" -H "Host: localhost:$port" "$url/v1/models"
expect 200 '"object":"list"' "${auth[@]}" -H "Host: [::1]" "$url/v1/models"
ctype=text/plain expect 415 '"code":"unsupported_media_type"' "${auth[@]}" -d '{"prompt":"x"}' \
    "$url/v1/completions"
ctype="application/json; charset=utf-8" expect 200 '"finish_reason"' "${auth[@]}" \
    -d '{"prompt":"x","max_tokens":1}' "$url/v1/completions"
# a body framed twice, no Host in HTTP/1.1, or two: 400 (request smuggling)
checks=$((checks + 1))
printf 'POST /tokenize HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{}' "$key" |
    raw | grep -q 'length is given more than once' || fail "two Content-Lengths were accepted"
checks=$((checks + 1))
printf 'POST /tokenize HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n' "$key" |
    raw | grep -q 'length is given more than once' || fail "Content-Length with chunked was accepted"
checks=$((checks + 1))
printf 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n' | raw | grep -q '^HTTP/1.1 400 ' ||
    fail "HTTP/1.1 without Host was accepted"
checks=$((checks + 1))
printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nConnection: close\r\n\r\n' |
    raw | grep -q 'the Host header is given more than once' || fail "two Host headers were accepted"
# a request must be in within --request-timeout (2 s), however steadily it
# trickles in (slowloris); a kept-alive connection may idle longer
checks=$((checks + 1))
got=$(python3 "$mjs/rawhttp.py" trickle "$port" 8)
[ "$got" != open ] && [ "${got%.*}" -ge 2 ] && [ "${got%.*}" -le 4 ] ||
    fail "a request trickling in for 8 s: closed after $got s, wanted 2-4"
checks=$((checks + 1))
got=$(python3 "$mjs/rawhttp.py" idle "$port" 3)
[ "$got" = "HTTP/1.1 200 OK / HTTP/1.1 200 OK" ] || fail "a kept-alive connection idle 3 s: $got"
# one client address holds at most 32 connections
checks=$((checks + 1))
got=$(python3 "$mjs/rawhttp.py" conns "$port" 40)
[ "$got" = 8 ] || fail "40 connections from one address: $got closed, wanted 8"
checks=$((checks + 1))
curl -s -D - -o /dev/null "$url/health" | grep -qi '^Access-Control' && fail "CORS headers without --cors"
expect 200 'vkllm_requests_total' "${auth[@]}" "$url/metrics"
# still serving after all that
expect 200 '"status":"ok"' "$url/health"
stop_server "$log_a"
checks=$((checks + 1))
n_log=$(grep -c '^serve: 127.0.0.1 ' "$log_a")
[ "$n_log" -ge 60 ] || fail "server A logged $n_log request lines"
grep -q '^serve: 127.0.0.1 - /health 400 ' "$log_a" || fail "the request MHD refused was not logged"
grep -q '^serve: 127.0.0.1 - /health 408 ' "$log_a" ||
    fail "the trickling request was not logged"
line='prompt [0-9]* tokens ([0-9]* processed, [0-9]* cached), [0-9]* generated; queued [0-9]* ms, '
grep -q "$line"'first token at [0-9]* ms$' "$log_a" || fail "no token counts in the log"

# ---- 3. one slot, a queue of one: 503, and disconnects free the slot
log_b=$scratch/server-b.log
start_server "$log_b" -np 1 -c 2048 --queue 1 --cors https://example.org --timeout 1 --alias "my model"
url=http://127.0.0.1:$port
expect 200 '"id":"my model"' "$url/v1/models"
# the one slot is 0: another id_slot is refused, not ignored (issue 10)
expect 400 '"param":"id_slot"' -d '{"prompt":"Once","max_tokens":2,"id_slot":1}' "$url/v1/completions"
expect 200 '"finish_reason"' -d '{"prompt":"Once","max_tokens":2,"id_slot":0}' "$url/v1/completions"
# a client that stalls halfway through its request is cut off (--timeout 1)
checks=$((checks + 1))
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"pro' >&3
timeout 10 cat <&3 >/dev/null
[ $? = 124 ] && fail "a stalled client was not timed out"
exec 3<&-
checks=$((checks + 1))
grep -q 'POST /v1/completions 408 ' "$log_b" || fail "the stalled request was not logged as 408"
long_req='{"prompt":"Once upon a time","max_tokens":2000,"ignore_eos":true,"temperature":0,"stream":true}'
curl "${cj[@]}" -sN -d "$long_req" "$url/v1/completions" >"$scratch/long1" &
curl_a=$!
for _ in $(seq 200); do grep -q '^data: ' "$scratch/long1" && break; sleep 0.1; done
curl "${cj[@]}" -s -d '{"prompt":"The dog","max_tokens":4,"temperature":0}' "$url/v1/completions" \
    >"$scratch/queued" &
curl_b=$!
wait_metric queue_length 1 "a second request"
expect 503 '"code":"queue_full"' -d '{"prompt":"x","max_tokens":2}' "$url/v1/completions"
kill "$curl_a" # a streaming client goes away: its slot goes to the queued request
wait "$curl_a" 2>/dev/null
checks=$((checks + 1))
wait "$curl_b" || fail "the queued request failed"
grep -q '"finish_reason":"length"' "$scratch/queued" || fail "queued request: $(cat "$scratch/queued")"
wait_metric slots_busy 0 "a disconnected stream"
# a non-streaming client that gives up: its slot is freed when its answer is
# written (600 tokens: a few seconds, where 2000 could outlast the wait
# below on a loaded machine under the sanitizers)
curl "${cj[@]}" -s -m 0.5 -d '{"prompt":"Once","max_tokens":600,"ignore_eos":true}' "$url/v1/completions" >/dev/null
wait_metric slots_busy 0 "a disconnected request"
checks=$((checks + 1))
curl -s -D - -o /dev/null -X OPTIONS "$url/v1/chat/completions" | tr -d '\r' |
    grep -q '^Access-Control-Allow-Origin: https://example.org$' || fail "no CORS preflight answer"

# a client that half-closes after its request (nc -N) still gets its answer
req='{"prompt":"Once","max_tokens":8,"temperature":0}'
checks=$((checks + 1))
printf 'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' ${#req} "$req" |
    raw --shut | grep -q '"finish_reason":"length"' || fail "a half-closed client got no answer"
req='{"prompt":"Once","max_tokens":8,"temperature":0,"stream":true}'
checks=$((checks + 1))
printf 'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' ${#req} "$req" |
    raw --shut | grep -q '^data: \[DONE\]' || fail "a half-closed client's stream was cut"
# a stream that waits for its slot longer than --timeout (1 s) is not cut:
# only the client's own silence counts
curl "${cj[@]}" -sN -d '{"prompt":"Once","max_tokens":700,"ignore_eos":true,"stream":true}' "$url/v1/completions" \
    >/dev/null &
curl_d=$!
for _ in $(seq 50); do [ "$(metric slots_busy)" = 1 ] && break; sleep 0.1; done
curl "${cj[@]}" -sN -d '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"stream":true}' \
    "$url/v1/chat/completions" >"$scratch/queued-stream"
checks=$((checks + 1))
grep -q '^data: \[DONE\]' "$scratch/queued-stream" ||
    fail "a stream queued past --timeout was cut: $(tail -c 300 "$scratch/queued-stream")"
checks=$((checks + 1))
grep -q 'chat/completions 200 .*queued [1-9][0-9][0-9][0-9]* ms' "$log_b" ||
    fail "the stream did not wait over 1 s in the queue: $(grep chat/completions "$log_b")"
wait "$curl_d"

# ---- 4. SIGTERM while a reply streams
curl "${cj[@]}" -sN -d "$long_req" "$url/v1/completions" >"$scratch/long2" &
curl_c=$!
for _ in $(seq 200); do grep -q '^data: ' "$scratch/long2" && break; sleep 0.1; done
stop_server "$log_b"
wait "$curl_c" 2>/dev/null
checks=$((checks + 1))
grep -q '^data: ' "$scratch/long2" || fail "the stream never started"
grep -q '^data: \[DONE\]' "$scratch/long2" && fail "a stream cut by SIGTERM ended with [DONE]"
# the server cut it, not the client: 503 in the log (the stream whose
# client left in section 3 stays 499)
checks=$((checks + 1))
grep 'POST /v1/completions' "$log_b" | tail -1 | grep -q ' 503 .* slot 0' ||
    fail "a stream cut by SIGTERM was logged as $(grep 'POST /v1/completions' "$log_b" | tail -1)"
grep -q 'POST /v1/completions 499 .* slot 0' "$log_b" || fail "the stream whose client left is not logged 499"

# ---- 5. a device lost mid-way (VKLLM_FAULT): requests get 500, /health 503,
# and the server still stops cleanly
log_c=$scratch/server-c.log
VKLLM_FAULT=wait:200 start_server "$log_c"
url=http://127.0.0.1:$port
checks=$((checks + 1))
got=""
for _ in $(seq 100); do
    got=$(curl "${cj[@]}" -s -o "$scratch/body" -w '%{http_code}' -d '{"prompt":"Once","max_tokens":8}' \
        "$url/v1/completions")
    [ "$got" = 200 ] || break
done
[ "$got" = 500 ] && grep -q 'VKLLM_FAULT=wait:200' "$scratch/body" ||
    fail "device loss: status $got, $(head -c 300 "$scratch/body")"
expect 503 '"code":"device_lost"' "$url/health"
# a stream's 200 goes out before its error event: the log says 500 all the same
checks=$((checks + 1))
curl "${cj[@]}" -sN -d '{"prompt":"Once","max_tokens":8,"stream":true}' "$url/v1/completions" \
    >"$scratch/lost-stream"
grep -q '^data: {"error"' "$scratch/lost-stream" || fail "lost device, stream: $(head -c 300 "$scratch/lost-stream")"
checks=$((checks + 1))
grep 'POST /v1/completions' "$log_c" | tail -1 | grep -q ' 500 ' ||
    fail "a stream that ended in an error was logged as $(grep 'POST /v1/completions' "$log_c" | tail -1)"
stop_server "$log_c"

# ---- 6. a Latin-1 file name (every answer was a 500), and a LoRA adapter
# applied to every slot: greedy text as `vkllm run --lora` gives
log_e=$scratch/server-e.log
latin=$scratch/mod$(printf '\xe9')l.gguf
ln -sf "$model" "$latin"
"$gen_lora" -m "$model" -o "$scratch/adapter.gguf" --rank 4 >/dev/null || fail "gen_lora"
model=$latin start_server "$log_e" -np 2 --lora-scaled "$scratch/adapter.gguf" 0.7
url=http://127.0.0.1:$port
expect 200 '"id":"mod\\\\xe9l.gguf"' "$url/v1/models"
expect 200 '"adapters":\[{"id":"adapter.gguf","scale":0.69999' "$url/v1/models"
prompt="Once upon a time"
for stream in false true; do
    checks=$((checks + 1))
    curl "${cj[@]}" -sN -d "{\"prompt\":\"$prompt\",\"max_tokens\":24,\"temperature\":0,\"stream\":$stream}" \
        "$url/v1/completions" >"$scratch/lora-$stream"
    got=$(python3 -c '
import json, sys
raw = open(sys.argv[1], encoding="utf-8").read()
if sys.argv[2] == "true":
    print("".join(json.loads(l[6:])["choices"][0]["text"] for l in raw.splitlines()
                  if l.startswith("data: {")), end="")
else:
    print(json.loads(raw)["choices"][0]["text"], end="")' "$scratch/lora-$stream" "$stream")
    want=$("$vkllm" run -m "$latin" --lora-scaled "$scratch/adapter.gguf" 0.7 -p "$prompt" -n 24 --temp 0 2>/dev/null)
    plain=$("$vkllm" run -m "$model" -p "$prompt" -n 24 --temp 0 2>/dev/null)
    [ "$prompt$got" = "$want" ] || fail "--lora, stream $stream: '$got' is not run's '${want#"$prompt"}'"
    [ "$want" != "$plain" ] || fail "the adapter changes nothing: the check proves nothing"
done
stop_server "$log_e"
# more slots than fit: the advice is a -c for all the slots together (as -c
# is), and the server starts with it
checks=$((checks + 1))
VKLLM_MAX_MEMORY=50M "$vkllm" serve -m "$model" --port 0 -np 64 -c 65536 >"$scratch/np.log" 2>&1 &
np_pid=$!
pids+=("$np_pid")
for _ in $(seq 300); do grep -q 'listening\|^error' "$scratch/np.log" && break; sleep 0.1; done
kill -9 "$np_pid" 2>/dev/null
fits=$(sed -n 's/^error: .*KV cache .* for 64 sequences of 1024 tokens.*: try -c \([0-9]*\) or .*/\1/p' "$scratch/np.log")
if [ -z "$fits" ]; then
    fail "-np 64 -c 65536 in 50 MiB: $(cat "$scratch/np.log")"
else
    VKLLM_MAX_MEMORY=50M start_server "$scratch/np-fits.log" -np 64 -c "$fits"
    stop_server "$scratch/np-fits.log"
fi

# ---- 7. few file descriptors (ulimit -n 40): the connection limit leaves
# room for the engine's, so that accept() never fails (MHD would spin on it)
log_d=$scratch/server-d.log
ulimit -n 40 # the last section: the script needs no more either
start_server "$log_d"
checks=$((checks + 1))
grep -q '^serve: at most 8 connections, 8 from one address$' "$log_d" || fail "fd limit: $(head -3 "$log_d")"
checks=$((checks + 1))
got=$(python3 "$mjs/rawhttp.py" conns "$port" 20)
[ "$got" = 12 ] || fail "20 connections under ulimit -n 40: $got closed, wanted 12"
expect 200 '"status":"ok"' "http://127.0.0.1:$port/health"
stop_server "$log_d"

echo "test_serve: $((checks - failures))/$checks checks passed"
[ $failures = 0 ]
