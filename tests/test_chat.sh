#!/usr/bin/env bash
# test_chat.sh: `vkllm chat` as a user runs it, on two tiny generated models
# (random weights) that speak through real tokenizers and templates: Llama 3's
# vocabulary with Llama 3.1's template, and Qwen 2's with Qwen 2.5's (ChatML).
#   test_chat.sh VKLLM GEN_MODEL VOCAB_DIR TEMPLATE_DIR SCRATCH_DIR GEN_LORA
# 1. A multi-turn conversation through a pipe (greedy, a few tokens a reply):
#    replies come; turn 2 decodes only what is new: the whole of turn 1's
#    prompt comes from the cache, and turn 1's reply too where the template
#    keeps it verbatim (ChatML); where it rewrites it (Llama 3.1 trims), the
#    count still adds up to the tokens of the rendered conversation
#    (`vkllm template` + `vkllm tokenize`); /save, /reset, /load, /exit.
# 2. Ctrl+C in a terminal (a pty) during a reply stops the reply, not the
#    program: the next line is answered; Ctrl+C at the prompt exits (130).
#    A model without a template gets a built-in format, with a note.
# 3. `vkllm run --stop` (the bundled model) ends before the stop string.
# 4. A long saved conversation (8,000 messages) loaded into a small context:
#    one note for the turns dropped, in seconds (it once took minutes and a
#    note per turn); a message that cannot fit, a bad command or file: one
#    error line each, and the chat goes on with its history.
#    -n 0 replies nothing; a reader that quits ends the chat.
# 5. A system prompt or template that leaves no room: one error at the start;
#    /load of special files and past 256 MiB, blanks after a file name,
#    arguments to /exit and /reset, /save past `ulimit -f`; the repetition
#    penalty sees the prompt; --stop that is not UTF-8 is refused; SIGTERM,
#    SIGHUP and Ctrl+C during /save.
# 6. LoRA adapters: --lora, --lora-scaled and /lora in one session give the
#    replies of a fresh process started with those flags.
set -u
vkllm=$1 gen_model=$2 vocabs=$3 templates=$4 scratch=$5 gen_lora=$6
mkdir -p "$scratch"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# the number in "vkllm: turn N: X new prompt tokens (Y cached)" etc.
field() { # FILE SED-EXPRESSION (the Nth matching line: pass N as $3)
    sed -n "$2" "$1" | sed -n "${3:-1}p"
}

for family in llama3 qwen2; do
    case $family in
    llama3) vocab=ggml-vocab-llama-bpe.gguf tmpl=meta-llama-Llama-3.1-8B-Instruct.jinja ;;
    qwen2) vocab=ggml-vocab-qwen2.gguf tmpl=Qwen-Qwen2.5-7B-Instruct.jinja ;;
    esac
    model=$scratch/$family.gguf
    "$gen_model" -o "$model" --vocab-from "$vocabs/$vocab" --chat-template-file "$templates/$tmpl" \
        --n-embd 64 --n-layer 1 --n-ff 64 --tied --n-ctx 2048 || {
        fail "$family: gen_model"
        continue
    }

    # ---- 1. a conversation through a pipe
    save=$scratch/$family-saved.json save2=$scratch/$family-saved2.json
    rm -f "$save" "$save2"
    printf '%s\n' "Hello there" "How are you today?" "/save $save" "/reset" "Hi" "/load $save" \
        "Tell me more" "/save $save2" "/exit" "never read" |
        timeout 300 "$vkllm" chat -m "$model" --system "You are terse." --temp 0 -n 8 --ignore-eos \
            >"$scratch/$family.out" 2>"$scratch/$family.err"
    status=$?
    [ $status = 0 ] || fail "$family: chat exited with $status: $(tail -3 "$scratch/$family.err")"
    grep -q '^error' "$scratch/$family.err" && fail "$family: $(grep '^error' "$scratch/$family.err")"
    new='s/^vkllm: turn [0-9]*: \([0-9]*\) new prompt tokens (\([0-9]*\) cached)$/\1/p'
    cached='s/^vkllm: turn [0-9]*: \([0-9]*\) new prompt tokens (\([0-9]*\) cached)$/\2/p'
    in_cache='s/^vkllm: turn [0-9]*: replied \([0-9]*\) tokens (\([0-9]*\) in the cache)$/\2/p'
    replied='s/^vkllm: turn [0-9]*: replied \([0-9]*\) tokens .*/\1/p'
    [ "$(sed -n "$replied" "$scratch/$family.err" | tr '\n' ' ')" = "8 8 8 8 " ] ||
        fail "$family: expected 4 replies of 8 tokens: $(cat "$scratch/$family.err")"
    [ -s "$scratch/$family.out" ] || fail "$family: no reply printed"
    n1=$(field "$scratch/$family.err" "$new" 1) c1=$(field "$scratch/$family.err" "$cached" 1)
    n2=$(field "$scratch/$family.err" "$new" 2) c2=$(field "$scratch/$family.err" "$cached" 2)
    k1=$(field "$scratch/$family.err" "$in_cache" 1)
    echo "$family: turn 1: $n1 new, $c1 cached, $k1 after the reply; turn 2: $n2 new, $c2 cached"
    if [ -z "$n1" ] || [ -z "$n2" ] || [ -z "$k1" ]; then
        fail "$family: no turn counts on stderr: $(cat "$scratch/$family.err")"
        continue
    fi
    [ "$c1" = 0 ] || fail "$family: turn 1 found $c1 tokens cached"
    [ "$c2" -ge "$n1" ] || fail "$family: turn 2 reused $c2 tokens, less than turn 1's prompt ($n1)"
    [ "$n2" -gt 0 ] && [ "$n2" -lt $((n2 + c2)) ] || fail "$family: turn 2 decoded $n2 of $((n2 + c2))"
    if [ $family = qwen2 ]; then
        # ChatML keeps the reply verbatim: everything cached is reused
        [ "$c2" = "$k1" ] || fail "$family: turn 2 reused $c2 tokens; turn 1 left $k1 in the cache"
    else
        # Llama 3.1's template trims the reply: the cache holds it untrimmed,
        # so that part is decoded again; the total is the rendering's length
        python3 - "$save" "$scratch/ctx.json" <<'EOF' || fail "$family: cannot read $save"
import json, sys
m = json.load(open(sys.argv[1]))["messages"]
json.dump({"messages": m[:4], "add_generation_prompt": True, "tools": None, "documents": None},
          open(sys.argv[2], "w"))
EOF
        "$vkllm" template -m "$model" --context "$scratch/ctx.json" >"$scratch/render.txt" &&
            total=$("$vkllm" tokenize -m "$model" -f "$scratch/render.txt" --no-bos --special | wc -l)
        [ "${total:-x}" = $((n2 + c2)) ] ||
            fail "$family: turn 2 has $((n2 + c2)) prompt tokens; the rendering has ${total:-?}"
    fi
    # /save wrote turn 1 and 2; /reset started over (turn 1 again, fewer
    # tokens cached than turn 2 had); /load brought them back
    python3 - "$save" "$save2" <<'EOF' || fail "$family: saved conversations: see above"
import json, sys
a = json.load(open(sys.argv[1]))["messages"]
b = json.load(open(sys.argv[2]))["messages"]
roles = ["system", "user", "assistant", "user", "assistant"]
assert [m["role"] for m in a] == roles, a
assert all(m["content"] for m in a), "an empty message"
assert a[1]["content"] == "Hello there" and a[3]["content"] == "How are you today?"
assert b[:5] == a, "/load did not restore the saved conversation"
assert [m["role"] for m in b[5:]] == ["user", "assistant"] and b[5]["content"] == "Tell me more", b
EOF
    [ "$(grep -c '^vkllm: turn 1: .* new prompt tokens' "$scratch/$family.err")" = 2 ] ||
        fail "$family: /reset did not start over at turn 1"
    n3=$(field "$scratch/$family.err" "$new" 3) c3=$(field "$scratch/$family.err" "$cached" 3)
    [ "${c3:-0}" -lt "$k1" ] || fail "$family: after /reset $c3 tokens still matched"
    grep -q "^vkllm: loaded 5 messages" "$scratch/$family.err" || fail "$family: /load"
    grep -q "never read" "$scratch/$family.out" && fail "$family: /exit did not exit"
done

# ---- 2. Ctrl+C in a terminal
python3 - "$vkllm" "$scratch/qwen2.gguf" <<'EOF' || fail "Ctrl+C: see above"
import os, pty, select, signal, sys, time

vkllm, model = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(vkllm, [vkllm, "chat", "-m", model, "--temp", "0", "-n", "40", "--ignore-eos"])
seen = b""
def read_some(timeout):
    global seen
    if not select.select([fd], [], [], timeout)[0]:
        sys.exit(f"Ctrl+C: nothing within {timeout} s; the terminal showed:\n{seen[-2000:]!r}")
    try:
        data = os.read(fd, 4096)
    except OSError:
        data = b""
    if not data:
        sys.exit(f"Ctrl+C: the program ended early; the terminal showed:\n{seen[-2000:]!r}")
    seen += data
mark = 0  # where the next wait_for starts looking
def wait_for(what, timeout):
    """Reads the terminal until WHAT appears after the last match; returns the text up to it."""
    global seen, mark
    deadline = time.time() + timeout
    while what not in seen[mark:]:
        left = deadline - time.time()
        if left <= 0:
            sys.exit(f"Ctrl+C: no {what!r} within {timeout} s; the terminal showed:\n{seen[-2000:]!r}")
        read_some(left)
    end = seen.index(what, mark) + len(what)
    text, mark = seen[mark:end], end
    return text

try:
    wait_for(b"> ", 120)
    os.write(fd, b"Tell me a long story\r")
    wait_for(b"new prompt tokens", 120)
    start = mark
    while len(seen) - start < 8:  # some of the reply (40 tokens take seconds), then Ctrl+C
        read_some(60)
    os.write(fd, b"\x03")
    wait_for(b"vkllm: interrupted", 60)
    if b"turn 1: replied 40 tokens" in wait_for(b"> ", 60):
        sys.exit("Ctrl+C: the first reply was not cut short")
    os.write(fd, b"And then?\r")
    wait_for(b"turn 2: replied 40 tokens", 300)  # the next line is answered in full
    wait_for(b"> ", 60)
    os.write(fd, b"\x03")  # at the prompt: the program ends
    deadline = time.time() + 60
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if select.select([fd], [], [], 1)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                pass
    else:
        sys.exit("Ctrl+C at the prompt did not end the program")
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 130:  # the shell's convention
        sys.exit(f"Ctrl+C: exit status {status}, expected 130; the terminal showed:\n{seen[-2000:]!r}")
    if b"error" in seen:
        sys.exit(f"Ctrl+C: an error:\n{seen[-2000:]!r}")
    print("Ctrl+C: the reply stopped, the next line was answered, Ctrl+C at the prompt exited")
finally:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
EOF

# a file without a chat template (the bundled model) gets a built-in format, and says so
printf 'hi\n' | timeout 120 "$vkllm" chat --temp 0 -n 4 >"$scratch/fallback.out" 2>"$scratch/fallback.err" ||
    fail "chat without a template exited with $?: $(cat "$scratch/fallback.err")"
grep -q "no chat template; using the built-in llama2 format" "$scratch/fallback.err" ||
    fail "chat without a template: no note: $(cat "$scratch/fallback.err")"

# ---- 3. `vkllm run --stop`: the text up to the first stop string, none of it
python3 - "$vkllm" <<'EOF' || fail "run --stop: see above"
import subprocess, sys
vkllm, prompt = sys.argv[1], "Once upon a time"
def run(*extra):
    r = subprocess.run([vkllm, "run", "-p", prompt, "-n", "48", "--temp", "0", *extra],
                       capture_output=True, timeout=120)
    if r.returncode:
        sys.exit(f"run {extra} exited with {r.returncode}: {r.stderr[-500:]!r}")
    return r.stdout
full = run()[len(prompt):-1]
for a, b in ((20, 26), (5, 9), (31, 32)):  # across token boundaries, and one character
    stop = full[a:b]
    want = prompt.encode() + full[:full.index(stop)] + b"\n"
    got = run("--stop", stop.decode(), "--stop", "never appears")
    if got != want:
        sys.exit(f"run --stop {stop!r} printed {got!r}, expected {want!r}")
EOF

# ---- 4. long conversations, messages that do not fit, failed commands
model=$scratch/qwen2.gguf
python3 - "$scratch/long.json" <<'EOF'
import json, sys
m = [{"role": "system", "content": "You are terse."}]
for i in range(4000):
    m += [{"role": "user", "content": f"question {i} about the park"},
          {"role": "assistant", "content": f"answer {i}"}]
json.dump({"messages": m}, open(sys.argv[1], "w"))
EOF
too_long=$(for i in $(seq 400); do printf 'hi '; done)
printf '%s\n' "/load $scratch/long.json" "Hello" "$too_long" "And then?" "/save" "/frob" \
    "/load $scratch/nope.json" "Bye" |
    timeout 120 "$vkllm" chat -m "$model" -c 256 --temp 0 -n 4 --ignore-eos \
        >"$scratch/long.out" 2>"$scratch/long.err"
status=$?
err=$scratch/long.err
# the errors carried over: the status says so at the end of the input
[ $status = 1 ] || fail "long: exit status $status, expected 1: $(tail -5 "$err")"
grep -q "^vkllm: loaded 8001 messages" "$err" || fail "long: /load: $(head -5 "$err")"
[ "$(sed -n "$replied" "$err" | tr '\n' ' ')" = "4 4 4 " ] || fail "long: not 3 replies: $(cat "$err")"
# a note per turn at most (the first drops 3,991 turns at once), none before
notes=$(grep -c "^vkllm: context full: dropped" "$err")
[ "$notes" -ge 1 ] && [ "$notes" -le 3 ] && [ "$(wc -l <"$err")" -lt 20 ] ||
    fail "long: $notes notes on dropped turns: $(head -20 "$err")"
grep -A1 "^vkllm: context full: dropped the oldest 3991 turns after the system prompt (7982 messages no longer seen)" "$err" |
    grep -q "^vkllm: turn 1: " || fail "long: the first note: $(head -5 "$err")"
[ "$(grep -c '^error: ' "$err")" = 4 ] ||
    fail "long: expected 4 error lines: $(grep -v '^vkllm: turn' "$err")"
grep -q "^error: the conversation is [0-9]* tokens; the context holds 256; try a larger -c" "$err" ||
    fail "long: the message that does not fit: $(grep '^error' "$err")"
grep -q "^error: /save needs a file name" "$err" || fail "long: /save without a file"
grep -q "^error: unknown command '/frob'" "$err" || fail "long: /frob"
grep -q "^error: .*nope.json: cannot open: " "$err" || fail "long: /load of a missing file"
# the refused message dropped no history: the next turn still sees the
# conversation's last turns (it once saw the system prompt alone)
n=$(field "$err" "$new" 2) c=$(field "$err" "$cached" 2)
[ $((${n:-0} + ${c:-0})) -gt 150 ] || fail "long: the turn after the refused message has $n + $c tokens"

printf 'hi\nthere\n' | timeout 120 "$vkllm" chat -m "$model" -n 0 >"$scratch/n0.out" 2>"$scratch/n0.err" ||
    fail "-n 0: exit status $?"
[ "$(sed -n "$replied" "$scratch/n0.err" | tr '\n' ' ')" = "0 0 " ] || fail "-n 0: $(cat "$scratch/n0.err")"

# stdout closed by its reader after one byte: the chat stops rather than
# answering the other 19 messages to no one
for i in $(seq 20); do echo "message $i"; done |
    timeout 300 "$vkllm" chat -m "$model" -n 16 --ignore-eos --temp 0 2>"$scratch/pipe.err" |
    head -c 1 >/dev/null
status=${PIPESTATUS[1]}
[ "$status" = 1 ] && grep -q "^error: stdout: " "$scratch/pipe.err" &&
    [ "$(grep -c "replied" "$scratch/pipe.err")" -lt 20 ] ||
    fail "a reader that quit: status $status, $(grep -c replied "$scratch/pipe.err") replies: $(tail -3 "$scratch/pipe.err")"

# ---- 5. text that can never fit, odd /load and /save targets, arguments to
# commands that take none, `ulimit -f`, the prompt under the repetition
# penalty, --stop that is not UTF-8
# a system prompt (or a template's own text) that leaves no room for any
# message: one error line at the start and exit 1 (every turn used to fail
# and the chat exit 0; the template's 4.5M tokens took 12 s a turn)
sys20k=$(for i in $(seq 4000); do printf 'word '; done)
printf 'hi\n' | timeout 60 "$vkllm" chat -c 64 -n 1 --system "$sys20k" >/dev/null 2>"$scratch/sys.err"
status=$?
[ $status = 1 ] && [ "$(grep -c '^error: ' "$scratch/sys.err")" = 1 ] &&
    grep -q "^error: [^ ]*stories260K.gguf: the system prompt and the chat template make .* tokens with a one-character message; the context holds 64: no message can be answered; try a larger -c or a shorter --system$" "$scratch/sys.err" &&
    ! grep -q "turn 1" "$scratch/sys.err" ||
    fail "a system prompt longer than the context: status $status: $(cat "$scratch/sys.err")"
printf "{{ 'once upon a time ' * 900000 }}{%% for m in messages %%}{{ m.content }}{%% endfor %%}" >"$scratch/big.jinja"
printf 'hi\n' | timeout 60 "$vkllm" chat -n 1 --chat-template-file "$scratch/big.jinja" >/dev/null 2>"$scratch/bigtmpl.err"
status=$?
[ $status = 1 ] && [ "$(grep -c '^error: ' "$scratch/bigtmpl.err")" = 1 ] &&
    grep -q "^error: [^ ]*big.jinja: the chat template makes at least [0-9]* tokens with a one-character message; the context holds 2048: no message can be answered; try a larger -c$" "$scratch/bigtmpl.err" ||
    fail "a template longer than the context: status $status: $(tail -3 "$scratch/bigtmpl.err")"

# /load of a directory, /proc/self/mem, a FIFO whose writer closes at once and
# a file past the size limit: an error line each that says why; blanks after
# a file name are not part of it; /exit, /quit and /reset take no argument
mkdir -p "$scratch/adir"
rm -f "$scratch/fifo" "$scratch/out.json"*
mkfifo "$scratch/fifo"
truncate -s 300M "$scratch/huge.json"
timeout 60 bash -c ': >"$1"' _ "$scratch/fifo" &
writer=$!
printf '%s\n' "/load $scratch/adir" "/load /proc/self/mem" "/load $scratch/fifo" "/load $scratch/huge.json" \
    "/save $scratch/out.json   " "/exit now" "/reset extra" "/quit please" "hi" "/exit	 " "never read" |
    timeout 120 "$vkllm" chat -m "$model" --temp 0 -n 2 >"$scratch/cmds.out" 2>"$scratch/cmds.err"
status=$?
kill $writer 2>/dev/null
wait $writer 2>/dev/null
err=$scratch/cmds.err
[ $status = 1 ] || fail "commands: exit status $status, expected 1: $(tail -3 "$err")"
for want in "adir: cannot read: Is a directory" "/proc/self/mem: cannot read: " "fifo: the file is empty" \
    "huge.json: larger than 256 MiB, more than vkllm reads" "/exit takes no argument (got 'now')" \
    "/reset takes no argument (got 'extra')" "/quit takes no argument (got 'please')"; do
    grep -qF "$want" "$err" || fail "commands: no error line '$want': $(grep '^error' "$err")"
done
[ "$(grep -c '^error: ' "$err")" = 7 ] || fail "commands: expected 7 error lines: $(grep '^error' "$err")"
[ -f "$scratch/out.json" ] && ! compgen -G "$scratch/out.json?*" >/dev/null ||
    fail "/save with blanks after the name: $(ls "$scratch" | grep out.json | cat -A)"
grep -q "^vkllm: turn 1: replied 2 tokens" "$err" || fail "commands: 'hi' was not answered: $(cat "$err")"
grep -q "never read" "$scratch/cmds.out" && fail "commands: '/exit' with blanks did not exit"

# past `ulimit -f`, /save is an error line (SIGXFSZ killed the chat and left
# its temporary file) and the chat goes on
rm -f "$scratch/fsize.json"*
(
    ulimit -f 64
    printf '%s\n' "/load $scratch/long.json" "/save $scratch/fsize.json" "hi" |
        exec timeout 120 "$vkllm" chat -m "$model" -c 256 --temp 0 -n 2 >/dev/null 2>"$scratch/fsize.err"
)
status=$?
[ $status = 1 ] && grep -q "^error: .*fsize.json: cannot write: File too large$" "$scratch/fsize.err" &&
    grep -q "^vkllm: turn 1: replied 2 tokens" "$scratch/fsize.err" ||
    fail "/save past ulimit -f: status $status: $(grep -v '^vkllm: context full' "$scratch/fsize.err")"
compgen -G "$scratch/fsize.json*" >/dev/null && fail "/save past ulimit -f left $(ls "$scratch"/fsize.json*)"

# signals during /save (a 30 MB conversation takes a moment to write): stopped
# (SIGSTOP) while its temporary file exists, so that the signal lands mid-save.
# SIGTERM and SIGHUP end the chat by that signal (128+N) after the save, with
# no temporary file left (they killed it and left one); Ctrl+C (SIGINT) lets
# the save finish and the next line is answered (it ended the chat, status
# 0); Ctrl+C at the prompt ends it with status 130 (it was 0)
python3 -c "
import json, sys
json.dump({'messages': [{'role': 'user', 'content': 'word ' * (6 << 20)}]}, open(sys.argv[1], 'w'))
" "$scratch/big.json"
sig_dir=$scratch/sig
set -m # else a background job starts with SIGINT ignored, and an ignored signal stays ignored
for sig in TERM HUP INT; do
    rm -rf "$sig_dir" && mkdir -p "$sig_dir" && mkfifo "$sig_dir/in"
    "$vkllm" chat -m "$model" -c 256 --temp 0 -n 2 <"$sig_dir/in" >/dev/null 2>"$sig_dir/err" &
    pid=$!
    exec 3>"$sig_dir/in"
    printf '%s\n' "/load $scratch/big.json" "/save $sig_dir/out.json" "hi" >&3
    for ((i = 0; i < 3000; i++)); do
        compgen -G "$sig_dir/.vkllm.tmp-*" >/dev/null && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.01
    done
    kill -STOP $pid
    compgen -G "$sig_dir/.vkllm.tmp-*" >/dev/null || fail "SIG$sig: /save made no temporary file"
    kill -s $sig $pid
    kill -CONT $pid
    if [ $sig = INT ]; then
        for ((i = 0; i < 600; i++)); do
            grep -q "turn 1: replied" "$sig_dir/err" && break
            kill -0 $pid 2>/dev/null || break
            sleep 0.1
        done
        kill -s INT $pid # at the prompt: the end
    fi
    # with job control, wait also returns when the job stops: the SIGSTOP
    # above, if bash saw it only now (then the process is still saving)
    while wait $pid; status=$?; [ $status = $((128 + $(kill -l STOP))) ]; do :; done
    exec 3>&-
    want=$((128 + $(kill -l $sig)))
    [ $status = $want ] || fail "SIG$sig during /save: exit status $status, expected $want: $(cat "$sig_dir/err")"
    grep -q "^vkllm: saved 1 message " "$sig_dir/err" && grep -q '"messages"' "$sig_dir/out.json" ||
        fail "SIG$sig during /save: not saved: $(cat "$sig_dir/err")"
    compgen -G "$sig_dir/.vkllm.tmp-*" >/dev/null && fail "SIG$sig during /save left $(ls -A "$sig_dir")"
    if [ $sig = INT ]; then
        grep -q "^vkllm: turn 1: replied 2 tokens" "$sig_dir/err" ||
            fail "Ctrl+C during /save: the next line was not answered: $(cat "$sig_dir/err")"
    fi
done
set +m
rm -rf "$sig_dir" "$scratch/big.json"

# the repetition penalty sees the prompt, as llama.cpp's: greedy, the bundled
# model's first token after "The cat sat." is ".", which that prompt holds, and
# after "hi" too, which it does not: the penalty changes the first reply only
first() { printf '%s\n' "$1" | timeout 60 "$vkllm" chat --temp 0 -n 1 "${@:2}" 2>/dev/null; }
[ "$(first "The cat sat.")" = . ] && [ "$(first hi)" = . ] ||
    fail "greedy first tokens: '$(first "The cat sat.")', '$(first hi)'"
[ "$(first "The cat sat." --repeat-penalty 3)" != . ] ||
    fail "--repeat-penalty 3 did not see the '.' of the prompt"
[ "$(first hi --repeat-penalty 3)" = . ] || fail "--repeat-penalty 3 changed the reply to 'hi'"

# ... and only this conversation's (probe 7, C-1): the sampler lived across
# /reset and /load, so a message after /reset got another greedy reply than
# in a fresh chat, and one after /load depended on what came before it (a
# reply may hold line breaks: the fresh output must end the other)
pen() { printf "$1" | timeout 120 "$vkllm" chat --temp 0 -n 24 "${@:2}" 2>/dev/null; }
pen "Tim had a red ball\n/save $scratch/pen.json\n" >/dev/null
for flag in "--presence-penalty 2" "--repeat-penalty 1.3"; do
    replies=$(pen 'Once upon a time\n/reset\nOnce upon a time\n' $flag)
    twice=$(pen 'Once upon a time\n' $flag && pen 'Once upon a time\n' $flag)
    [ -n "$twice" ] && [ "$replies" = "$twice" ] ||
        fail "$flag: the same message after /reset got another reply: $replies"
    # a window longer than the loaded conversation, else it hides the old one
    after=$(pen "Once upon a time\n/load $scratch/pen.json\nand then\n" $flag --repeat-last-n 256)
    fresh=$(pen "/load $scratch/pen.json\nand then\n" $flag --repeat-last-n 256)
    [ -n "$fresh" ] && [[ "$after" == *$'\n'"$fresh" ]] ||
        fail "$flag: a turn after /load differs from a fresh chat's: '$after' vs '$fresh'"
done

# a stop string that is not UTF-8 (a lone lead byte, a surrogate, an
# overlong) could never match the output: refused
for stop in $'\xe2' $'a\xff' $'\xed\xa0\x80' $'\xc0\xae'; do
    for cmd in run chat; do
        "$vkllm" $cmd --stop "$stop" -n 1 </dev/null >/dev/null 2>"$scratch/stop.err"
        status=$?
        [ $status = 1 ] && [ "$(wc -l <"$scratch/stop.err")" = 1 ] &&
            grep -q "^error: --stop: '.*' is not valid UTF-8" "$scratch/stop.err" ||
            fail "$cmd --stop $(printf %q "$stop"): status $status: $(cat "$scratch/stop.err")"
    done
done
printf 'hi\n' | "$vkllm" chat --stop 'é' --stop '→' -n 1 >/dev/null 2>"$scratch/stop.err" ||
    fail "chat --stop with UTF-8: $(cat "$scratch/stop.err")"

# ---- 6. LoRA adapters: --lora and --lora-scaled, /lora FILE [SCALE], off, on, scale
# A greedy turn after an adapter changes mid-session equals that turn in a
# fresh process started with the adapter (the same conversation, /load'ed):
# the change emptied the KV cache, and the conversation knows it (the turn
# says 0 cached; had it believed its tokens cached, it would have decoded
# only the new message over a stale cache, or nothing at all). /lora off
# gives the model's own reply back; each bad /lora is one error line, the
# chat goes on, and the piped exit status is 1.
lora=$scratch/lora lora_model=$scratch/qwen2.gguf
rm -rf "$lora" && mkdir -p "$lora"
"$gen_lora" -m "$lora_model" -o "$lora/a.gguf" --rank 8 --seed 3 || fail "gen_lora"
"$gen_model" -o "$lora/other.gguf" --n-embd 96 --n-layer 1 --n-ff 64 --n-vocab 300 &&
    "$gen_lora" -m "$lora/other.gguf" -o "$lora/other-lora.gguf" --rank 8 || fail "gen_lora (other)"
chat_lora() { # NAME [OPTIONS...] (lines on stdin): NAME.err, NAME.status
    timeout 300 "$vkllm" chat -m "$lora_model" --system "You are terse." --temp 0 -n 8 \
        --ignore-eos "${@:2}" >/dev/null 2>"$lora/$1.err"
    echo $? >"$lora/$1.status"
}
# the last reply saved in FILE
last_reply() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["messages"][-1]["content"])' "$1"; }
printf '%s\n' "Hello there" "/save $lora/s1.json" "/lora $lora/a.gguf" "/lora" "How are you today?" \
    "/save $lora/s2.json" "/lora off 1" "Tell me more" "/save $lora/s3.json" "/lora scale 1 0.5" \
    "/lora on 1" "Once more" "/save $lora/s4.json" | chat_lora mid
printf '%s\n' "/load $lora/s1.json" "How are you today?" "/save $lora/flag.json" |
    chat_lora flag --lora "$lora/a.gguf"
printf '%s\n' "/load $lora/s3.json" "Once more" "/save $lora/scaled.json" |
    chat_lora scaled --lora-scaled "$lora/a.gguf" 0.5
printf '%s\n' "/load $lora/s1.json" "How are you today?" "/save $lora/base.json" \
    "/load $lora/s2.json" "Tell me more" "/save $lora/base-off.json" | chat_lora base
for run in mid flag scaled base; do
    [ "$(cat "$lora/$run.status")" = 0 ] && ! grep -q '^error' "$lora/$run.err" ||
        fail "lora $run: status $(cat "$lora/$run.status"): $(cat "$lora/$run.err")"
done
grep -q "^vkllm: lora: added .*/a.gguf at scale 1 (1 adapter on)$" "$lora/mid.err" &&
    grep -q "^vkllm: lora 1: .*/a.gguf at scale 1, on (7 matrices, rank 8, alpha 8)$" "$lora/mid.err" &&
    grep -q "^vkllm: lora: adapter 1 (.*/a.gguf) off at scale 1 (0 adapters on)$" "$lora/mid.err" &&
    grep -q "^vkllm: adapter .*/a.gguf at scale 0.5: 7 matrices, rank 8, alpha 8$" "$lora/scaled.err" ||
    fail "lora: the lines saying what changed: $(cat "$lora/mid.err" "$lora/scaled.err")"
[ "$(sed -n "$cached" "$lora/mid.err" | tr '\n' ' ')" = "0 0 0 0 " ] ||
    fail "lora: turns after a change reused a cache computed without it: $(cat "$lora/mid.err")"
r2=$(last_reply "$lora/s2.json") r3=$(last_reply "$lora/s3.json") r4=$(last_reply "$lora/s4.json")
[ -n "$r2" ] && [ "$r2" = "$(last_reply "$lora/flag.json")" ] ||
    fail "lora: the reply after /lora FILE, '$r2', is not --lora's: '$(last_reply "$lora/flag.json")'"
[ "$r2" != "$(last_reply "$lora/base.json")" ] || fail "lora: the adapter did not change the reply '$r2'"
[ -n "$r3" ] && [ "$r3" = "$(last_reply "$lora/base-off.json")" ] ||
    fail "lora: the reply after /lora off 1, '$r3', is not the model's: '$(last_reply "$lora/base-off.json")'"
[ -n "$r4" ] && [ "$r4" = "$(last_reply "$lora/scaled.json")" ] ||
    fail "lora: the reply at /lora scale 1 0.5, '$r4', is not --lora-scaled's: '$(last_reply "$lora/scaled.json")'"
# bad /lora lines: a missing file, a model, an adapter of another model, an
# adapter number out of range or not a number, a bad scale, a missing number
printf '%s\n' "/lora $lora/missing.gguf" "/lora $lora_model" "/lora $lora/other-lora.gguf" \
    "/lora off 2" "/lora on x" "/lora scale 1 abc" "/lora $lora/a.gguf 1e9" "/lora on" \
    "Hello there" "/lora" | chat_lora bad --lora "$lora/a.gguf"
[ "$(cat "$lora/bad.status")" = 1 ] && [ "$(grep -c '^error: ' "$lora/bad.err")" = 8 ] &&
    grep -q "^error: .*other-lora.gguf: .*" "$lora/bad.err" &&
    grep -q "^error: /lora off: there is no adapter 2 (1 loaded; /lora lists them)$" "$lora/bad.err" &&
    grep -q "^vkllm: turn 1: replied 8 tokens" "$lora/bad.err" &&
    [ "$(grep -c "^vkllm: lora [0-9]*: " "$lora/bad.err")" = 1 ] ||
    fail "lora: bad /lora lines: status $(cat "$lora/bad.status"): $(cat "$lora/bad.err")"
# an adapter holding NaN is refused by /lora; one whose scale makes the
# logits overflow used to end the chat (and the conversation) at the next
# turn: now that turn is one error line naming the adapter, its message is
# left out, and after /lora off the conversation goes on
"$gen_lora" -m "$lora_model" -o "$lora/nan.gguf" --rank 8 --type f32 --mag nan --seed 4 &&
    "$gen_lora" -m "$lora_model" -o "$lora/huge.gguf" --rank 8 --mag 1e4 --alpha 8192 \
        --seed 5 || fail "gen_lora (nan, huge)"
printf '%s\n' "Hello there" "/lora $lora/nan.gguf" "/lora $lora/huge.gguf 1e6" "Tell me more" \
    "/lora off 1" "How are you today?" "/save $lora/numeric.json" | chat_lora numeric
[ "$(cat "$lora/numeric.status")" = 1 ] && [ "$(grep -c '^error: ' "$lora/numeric.err")" = 2 ] &&
    grep -q "^error: .*/nan.gguf: blk.0.attn_q.weight.lora_b holds NaN or infinite values$" \
        "$lora/numeric.err" &&
    grep -q "^error: .* are not finite .*with 1 LoRA adapter applied (the first: .*/huge.gguf at \
scale 1e+06).*(the message is left out: /lora off N or /lora scale N S mends it)$" "$lora/numeric.err" &&
    grep -q "^vkllm: turn 2: replied 8 tokens" "$lora/numeric.err" &&
    [ "$(grep -c '"role": *"user"' "$lora/numeric.json")" = 2 ] &&
    grep -q '"How are you today?"' "$lora/numeric.json" && ! grep -q '"Tell me more"' "$lora/numeric.json" ||
    fail "lora: NaN logits with an adapter: status $(cat "$lora/numeric.status"): $(cat "$lora/numeric.err")"
# and a bad --lora: one error line before any turn
printf 'hi\n' | "$vkllm" chat -m "$lora_model" --lora "$lora/other-lora.gguf" >/dev/null \
    2>"$lora/flag-bad.err"
status=$?
[ $status = 1 ] && [ "$(grep -c '^error' "$lora/flag-bad.err")" = 1 ] &&
    ! grep -q "turn 1" "$lora/flag-bad.err" &&
    grep -q "^error: .*other-lora.gguf: blk.0.attn_q.weight.lora_a is 96x8" "$lora/flag-bad.err" ||
    fail "lora: chat --lora with another model's adapter: status $status: $(cat "$lora/flag-bad.err")"
"$vkllm" chat --help | grep -q -- "--lora-scaled FILE S" && "$vkllm" chat --help | grep -q "/lora off N" &&
    printf '/help\n' | "$vkllm" chat 2>&1 >/dev/null | grep -q "/lora scale N S" ||
    fail "lora: --help or /help does not list the LoRA flags and commands"

[ $failures = 0 ] && echo "test_chat.sh: all passed" || echo "test_chat.sh: $failures failures"
[ $failures = 0 ]
