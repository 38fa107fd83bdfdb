#!/usr/bin/env bash
# test_window.sh: the chat window (app/chat) end to end, on a virtual display
# (Xvfb, SDL's software renderer), driven by --script with the bundled model.
#   test_window.sh VKLLM_CHAT DATA_DIR SCRATCH_DIR GEN_MODEL GEN_LORA VKLLM
# The script sends two messages (the second in three scripts and with a line
# break, typed as SDL text events), stops the second reply with Esc, regenerates
# it, edits the first message (a branch), switches back to the first branch,
# drops a file that is not a model on the window (an error in the window, the
# app goes on with its model) and sends once more; then changes settings
# (sampling, the system prompt, the light theme), shows the settings panel and
# the help, and starts a second chat. A second run with the same data and
# config directories (and a corrupt file among the chats) searches the saved
# chats, reopens the first and replies in it, renames, exports and deletes.
# Two more (the "models" section) open models from the Models panel: a good
# one, one that is not a model, and one too big for the device. Run L (the
# "LoRA" section) adds LoRA adapters in the panel, by a drop and by the file
# dialog, switches and rescales them, and compares replies with vkllm run's.
# Checked: the exit statuses, the conversation trees dumped through
# history_save (branches, which one is active, how each reply ended), the
# sidebar's lists, the settings file, the corrupt file reported once and set
# aside, the export, the error line, and the screenshots (PNG of the window's
# size with more than a few colours: a blank window has one or two; light
# where the light theme is on, dark before).
set -u
chat=$1 data=$2 scratch=$3 gen_model=$4 gen_lora=$5 vkllm=$6
rm -rf "$scratch"
mkdir -p "$scratch"
cd "$scratch" || exit 1
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
command -v xvfb-run >/dev/null || { echo "FAIL: xvfb-run is missing (scripts/setup.sh installs it)" >&2; exit 1; }

echo "this is not a model" > not-a-model.txt
cat > run.script <<EOF
# first turn
send Hello there
wait-reply
screenshot $scratch/first.png
send Tell me a story\nabout Привет 👋 مرحبا
wait-tokens 3
stop
wait-reply
regenerate
wait-reply
screenshot $scratch/regenerated.png
edit 0 Once upon a time
wait-reply
switch 0 -1
screenshot $scratch/branches.png
load $scratch/not-a-model.txt
expect-error not-a-model.txt
screenshot $scratch/error.png
wait-reply
send After the error
wait-reply
screenshot $scratch/after-error.png
dump-state $scratch/state.json
settings temperature 0.5
settings system_prompt You tell short stories.
open-settings
screenshot $scratch/settings.png
close
help
screenshot $scratch/help.png
close
new-chat
send A second chat about cats
wait-reply
theme light
screenshot $scratch/light.png
open-sidebar
dump-list $scratch/list1.txt
screenshot $scratch/sidebar.png
quit
EOF
cat > run2.script <<EOF
open-sidebar
dump-list $scratch/list2.txt
search upon a TIME
dump-list $scratch/search.txt
search Hello there
reopen 0
send One more line
wait-reply
dump-state $scratch/state2.json
rename 0 Story time
export 0 $scratch/export.md
search cats
delete 0
search
dump-list $scratch/list3.txt
screenshot $scratch/reopened.png
quit
EOF

# SDL's hint variables: X11 through Xvfb, the software renderer (no GL);
# chats and settings in the scratch directory, never the user's
window() {
    SDL_VIDEODRIVER=x11 SDL_RENDER_DRIVER=software XDG_DATA_HOME="$scratch/data" \
        XDG_CONFIG_HOME="$scratch/config" timeout 600 xvfb-run -a -s "-screen 0 1280x1024x24" \
        "$chat" -m "$data/stories260K.gguf" -n 40 --seed 7 --size 1000x720 "$@"
}
window --script run.script >out.txt 2>err.txt
status=$?
[ $status = 0 ] || fail "exit status $status: $(tail -5 err.txt)"
chats=$scratch/data/vkllm/chats
echo '{"version": 1, "messages": [' > "$chats/20200101-000000-c0ffee.json"
window --script run2.script >out2.txt 2>err2.txt
status=$?
[ $status = 0 ] || fail "second run: exit status $status: $(tail -5 err2.txt)"
[ "$(grep -c 'c0ffee.json: .*moved aside to 20200101-000000-c0ffee.json.corrupt-1' err2.txt)" = 1 ] ||
    fail "the corrupt chat is not reported once: $(grep c0ffee err2.txt)"
[ -f "$chats/20200101-000000-c0ffee.json.corrupt-1" ] || fail "the corrupt chat was not set aside"
head -1 export.md 2>/dev/null | grep -qx '# Story time' || fail "export.md: $(head -3 export.md)"
grep -qx '## User' export.md && grep -qx 'One more line' export.md || fail "export.md lacks the turns"
grep -q "^vkllm-chat: error: .*not-a-model.txt" err.txt ||
    fail "no error line for the file that is not a model: $(grep error err.txt)"
grep -q "^vkllm-chat: first frame [0-9]* ms after launch, model loaded [0-9]* ms" err.txt ||
    fail "no timing line"

# ---- models: the Models panel (app/chat/panel_models.c) with a models folder
# holding a link to the bundled model, a file that is not a model and a
# sub-folder. Run 3 (the in-window browser: VKLLM_FILE_DIALOG=builtin) chooses
# the model with the keyboard (it loads, a reply comes), then picks the bad
# file (an error, the model kept, a reply still comes). Run 4 gives the device
# 60 MiB (VKLLM_MAX_MEMORY): the bundled model (36 MiB with its session) loads,
# and a second copy, chosen with Ctrl+O in a fake zenity, does not fit beside
# it: the error says the sizes before anything is uploaded, and the first
# model goes on replying.
# Own data and config directories: the settings of the runs above stay apart.
models=$scratch/models
mkdir -p "$models/sub"
ln -s "$data/stories260K.gguf" "$models/stories.gguf"
echo "this is not a model either" > "$models/not-a-model.gguf"
cat > models.script <<EOF
settings models_dir $models
open-models
screenshot $scratch/models.png
# the first model (not-a-model.gguf) is chosen; Down moves to stories.gguf
key Down
key Return
wait-reply
send Hello from the models folder
wait-reply
open-models
pick not-a-model.gguf
expect-error not-a-model.gguf
wait-reply
send Still the same model
wait-reply
dump-state $scratch/models-state.json
quit
EOF
mkdir -p bin
printf '#!/bin/sh\nprintf "%%s\\n" "$@" > "%s/zenity-args"\necho "%s/stories.gguf"\n' \
    "$scratch" "$models" > bin/zenity
chmod +x bin/zenity
cat > too-big.script <<EOF
wait-reply
key ctrl+o
expect-error needs
screenshot $scratch/too-big.png
wait-reply
send After the refusal
wait-reply
dump-state $scratch/too-big-state.json
quit
EOF
models_window() {
    SDL_VIDEODRIVER=x11 SDL_RENDER_DRIVER=software XDG_DATA_HOME="$scratch/models-data" \
        XDG_CONFIG_HOME="$scratch/models-config" timeout 600 \
        xvfb-run -a -s "-screen 0 1280x1024x24" "$chat" -m "$data/stories260K.gguf" -n 20 --seed 7 --size 1000x720 "$@"
}
VKLLM_FILE_DIALOG=builtin models_window --script models.script >out3.txt 2>err3.txt
status=$?
[ $status = 0 ] || fail "models run: exit status $status: $(tail -5 err3.txt)"
grep -qx "vkllm-chat: model loaded: $models/stories.gguf" err3.txt ||
    fail "the model picked in the Models panel did not load: $(grep -v script: err3.txt)"
grep -q "^vkllm-chat: error: $models/not-a-model.gguf: not a GGUF file" err3.txt ||
    fail "no error for the file that is not a model: $(grep error err3.txt)"
! grep -q "model loaded: .*not-a-model" err3.txt || fail "the file that is not a model loaded"
VKLLM_MAX_MEMORY=60M VKLLM_FILE_DIALOG=zenity PATH="$scratch/bin:$PATH" \
    models_window --script too-big.script >out4.txt 2>err4.txt
status=$?
[ $status = 0 ] || fail "too-big run: exit status $status: $(tail -5 err4.txt)"
grep -Eq "^vkllm-chat: error: $models/stories.gguf: needs [0-9.]+ MiB \(weights [0-9.]+ MiB.* but .* has [0-9.]+ MiB free" err4.txt ||
    fail "no too-big error with the sizes: $(grep error err4.txt)"
grep -qx -- --file-selection zenity-args || fail "Ctrl+O did not run the file dialog"
python3 - "$scratch" <<'EOF' || fail "see above"
import json, os, sys
bad = 0
# each run's conversation: every user message answered, after the errors too
for name, users in (("models-state.json", ["Hello from the models folder", "Still the same model"]),
                    ("too-big-state.json", ["After the refusal"])):
    try:
        msgs = json.load(open(os.path.join(sys.argv[1], name)))["messages"]
    except Exception as e:
        print(f"FAIL: {name}: {e!r}", file=sys.stderr)
        bad += 1
        continue
    got = [m["content"] for m in msgs if m["role"] == "user"]
    replies = [m for m in msgs if m["role"] == "assistant"]
    if got != users or len(replies) != len(users) or \
            not all(m.get("stats", {}).get("tokens", 0) > 0 for m in replies):
        print(f"FAIL: {name}: not every message has a reply: {msgs}", file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
EOF

# ---- LoRA adapters (app/chat/panel_lora.c, worker.c). Run L, own data and
# config directories: greedy replies to one prompt, each in a new chat, with
# no adapter; with adapter a, added in the LoRA panel's path field; with a at
# scale 2; with a switched off (the plain reply again: it stayed loaded);
# then an adapter made for another model dropped on the window (its error,
# the app goes on), adapter b dropped (its reply), adapter c through the
# panel's Add adapter… (a fake zenity), d picked in the Models panel (added,
# not loaded as a model); then another model dropped: the
# adapters go (a note), and that model's own adapter loads. Each reply with
# adapters equals `vkllm run --lora` on the prompt the window rendered (the
# llama2 format: the bundled model has no template) and records its set, which
# the chat's file keeps (reopened from the sidebar at the end).
"$gen_lora" -m "$data/stories260K.gguf" -o lora-a.gguf --rank 8 --seed 3 >/dev/null &&
    "$gen_lora" -m "$data/stories260K.gguf" -o lora-b.gguf --rank 4 --alpha 8 --type f16 \
        --seed 5 >/dev/null &&
    "$gen_lora" -m "$data/stories260K.gguf" -o lora-c.gguf --rank 2 --seed 6 >/dev/null &&
    mkdir -p lora-models &&
    "$gen_lora" -m "$data/stories260K.gguf" -o lora-models/lora-d.gguf --rank 2 --seed 7 \
        >/dev/null &&
    "$gen_model" -o lora-model.gguf --type f16 --n-embd 96 --n-head 8 --n-head-kv 2 --n-layer 2 \
        --n-ff 96 --n-vocab 300 --seed 1 >/dev/null &&
    "$gen_lora" -m lora-model.gguf -o lora-other.gguf --rank 8 >/dev/null || fail "gen_lora"
mkdir -p lora-bin
printf '#!/bin/sh\necho "%s/lora-c.gguf"\n' "$scratch" > lora-bin/zenity
chmod +x lora-bin/zenity
p="Once upon a time"
cat > lora.script <<EOF
settings temperature 0
send $p
wait-reply
dump-state $scratch/lora-plain.json
new-chat
open-lora
lora-add $scratch/lora-a.gguf
wait-reply
close
send $p
wait-reply
dump-state $scratch/lora-a.json
dump-worker $scratch/lora-w1.json
new-chat
lora-scale 1 2
send $p
wait-reply
dump-state $scratch/lora-a2.json
new-chat
lora-toggle 1
send $p
wait-reply
dump-state $scratch/lora-off.json
load $scratch/lora-other.gguf
expect-error lora-other.gguf: blk.0.attn_q.weight.lora_a is 96x8
wait-reply
load $scratch/lora-b.gguf
expect-note LoRA adapter 2 added: lora-b.gguf
new-chat
send $p
wait-reply
dump-state $scratch/lora-b.json
open-lora
lora-dialog
expect-note LoRA adapter 3 added: lora-c.gguf
dump-worker $scratch/lora-w2.json
screenshot $scratch/lora.png
close
settings models_dir $scratch/lora-models
open-models
pick lora-d.gguf
expect-note LoRA adapter 4 added: lora-d.gguf
load $scratch/lora-model.gguf
expect-note adapters of the previous model were unloaded
wait-reply
dump-worker $scratch/lora-w3.json
lora-add $scratch/lora-other.gguf
wait-reply
send Hello
wait-reply
dump-worker $scratch/lora-w4.json
open-sidebar
reopen 0
dump-state $scratch/lora-reopened.json
quit
EOF
SDL_VIDEODRIVER=x11 SDL_RENDER_DRIVER=software XDG_DATA_HOME="$scratch/lora-data" \
    XDG_CONFIG_HOME="$scratch/lora-config" VKLLM_FILE_DIALOG=zenity PATH="$scratch/lora-bin:$PATH" \
    timeout 600 xvfb-run -a -s "-screen 0 1280x1024x24" "$chat" -m "$data/stories260K.gguf" \
    -n 16 --seed 7 --size 1000x720 --script lora.script >out-lora.txt 2>err-lora.txt
status=$?
[ $status = 0 ] || fail "lora run: exit status $status: $(tail -5 err-lora.txt)"
lora_run() {
    "$vkllm" run -m "$data/stories260K.gguf" -p "[INST] $p [/INST]" -n 16 --temp 0 "$@" \
        2>/dev/null || fail "vkllm run $*"
}
lora_run >lora-run-plain.txt
lora_run --lora lora-a.gguf >lora-run-a.txt
lora_run --lora-scaled lora-a.gguf 2 >lora-run-a2.txt
lora_run --lora lora-b.gguf >lora-run-b.txt
python3 - "$scratch" "[INST] $p [/INST]" <<'EOF' || fail "see above"
import json, os, sys
scratch, prompt = sys.argv[1], sys.argv[2]
bad = 0
def check(cond, msg):
    global bad
    if not cond:
        print("FAIL: lora:", msg, file=sys.stderr)
        bad += 1
def load(name):
    try:
        return json.load(open(os.path.join(scratch, name)))
    except Exception as e:
        check(False, f"{name}: {e!r}")
        return None
def reply(name):
    d = load(name)
    if not d:
        return None, None
    m = d["messages"][-1]
    return m["content"], m.get("stats", {}).get("adapters")
def run(name):
    out = open(os.path.join(scratch, f"lora-run-{name}.txt")).read()
    check(out.startswith(prompt), f"run {name} does not echo the prompt: {out!r}")
    return out[len(prompt):].rstrip()
plain, none = reply("lora-plain.json")
check(none is None, f"the plain reply records adapters: {none}")
check(plain and plain.rstrip() == run("plain"), f"the plain reply {plain!r} is not run's")
for name, file, want in (("a", "lora-a.json", "lora-a.gguf at 1"),
                         ("a2", "lora-a2.json", "lora-a.gguf at 2"),
                         ("b", "lora-b.json", "lora-b.gguf at 1")):
    text, adapters = reply(file)
    check(text != plain, f"{file}: the adapter changed nothing: {text!r}")
    check(text is not None and text.rstrip() == run(name),
          f"{file}: {text!r} is not run --lora's {run(name)!r}")
    check(adapters == want, f"{file}: its stats record adapters {adapters!r}, not {want!r}")
text, adapters = reply("lora-off.json")
check(text == plain and adapters is None,
      f"switched off, the reply is not the plain one: {text!r} ({adapters})")
w1 = load("lora-w1.json")
if w1:
    check(w1["prompt_head"] == "<s> " + prompt, f"the prompt rendered: {w1['prompt_head']!r}")
    ad = w1["adapters"]
    check(len(ad) == 1 and ad[0]["name"] == "lora-a.gguf" and ad[0]["on"] and ad[0]["on_now"]
          and ad[0]["rank_max"] == 8 and ad[0]["matrices"] > 0 and ad[0]["scale"] == 1,
          f"lora-w1.json: {ad}")
w2 = load("lora-w2.json")
if w2:
    got = [(l["name"], l["on"], l["on_now"], l["scale"], l["rank_max"], l["alpha"])
           for l in w2["adapters"]]
    # a off at 2; b on since its reply; c on from the next reply
    check(got == [("lora-a.gguf", False, False, 2, 8, 8), ("lora-b.gguf", True, True, 1, 4, 8),
                  ("lora-c.gguf", True, False, 1, 2, 2)], f"lora-w2.json: {got}")
w3 = load("lora-w3.json")
check(w3 is not None and w3["adapters"] == [],
      f"the adapters outlived their model: {w3 and w3['adapters']}")
w4 = load("lora-w4.json")
check(w4 is not None and [(l["name"], l["on_now"]) for l in w4["adapters"]] ==
      [("lora-other.gguf", True)], f"the other model's adapter: {w4 and w4['adapters']}")
# the last chat (b's, then a turn with the other model's adapter) read back from its file
d = load("lora-reopened.json")
got = d and [m.get("stats", {}).get("adapters") for m in d["messages"] if m["role"] == "assistant"]
check(got == ["lora-b.gguf at 1", "lora-other.gguf at 1"], f"reopened, the replies record {got}")
sys.exit(1 if bad else 0)
EOF
grep -q "^vkllm-chat: error: $scratch/lora-other.gguf: blk.0.attn_q.weight.lora_a is 96x8, the model's blk.0.attn_q.weight needs 64 x rank" err-lora.txt ||
    fail "no error line for the adapter of another model: $(grep error err-lora.txt)"

# ---- status bar, context full, loading, Markdown (app/chat/status_bar.c,
# worker.c, view_chat.c). Run 5: a context of 80 tokens and three turns with a
# system prompt (a longer one, which leaves no room, is refused when set): each
# turn after the first drops the oldest turns, with a note
# in the window each time; the prompt the worker sent last still opens with
# the system prompt and no longer holds the first message; the status bar's
# speeds and GB/s are set. Run 6: a saved conversation written by hand (a
# code block, lists, a heading, inline styles: the bundled model writes no
# Markdown) reopened from the sidebar, then a generated 65 MB model dropped on
# the window and shot while it uploads; a screenshot with a 250-byte name (a
# temporary file beside it named NAME.tmp-PID would pass the 255-byte limit).
# Run 7: files limited to 1 KiB (ulimit -f; the window ignores SIGXFSZ: EFBIG), so saving
# the chat after each reply fails on the saver's thread: the error reaches the
# window, no temporary file stays, and the next reply comes all the same.
# Own data and config directories.
"$gen_model" -o "$scratch/upload.gguf" --type f16 --n-vocab 4096 --n-embd 1024 --n-layer 2 \
    --n-head 8 --n-head-kv 8 --n-ff 2816 >/dev/null || fail "gen_model"
cat > ctx.script <<EOF
settings system_prompt You tell short stories.
send Once upon a time there was a cat
wait-reply
settings-refused system_prompt $(printf 'The cat sat on the mat. %.0s' {1..12})
send The cat liked to play with a ball
wait-reply
send One day the ball rolled away
wait-reply
expect-note dropped the oldest
dump-worker $scratch/ctx-worker.json
screenshot $scratch/context-full.png
quit
EOF
long_name=$(printf 'w%.0s' {1..246}).png
cat > md.script <<EOF
wait-reply
open-sidebar
reopen 0
close-sidebar
screenshot $scratch/markdown.png
screenshot $scratch/$long_name
dump-state $scratch/md-state.json
load $scratch/upload.gguf
wait-loading
screenshot $scratch/loading.png
wait-reply
quit
EOF
own_window() { # NAME, then the app's options
    local name=$1
    shift
    SDL_VIDEODRIVER=x11 SDL_RENDER_DRIVER=software XDG_DATA_HOME="$scratch/$name-data" \
        XDG_CONFIG_HOME="$scratch/$name-config" VKLLM_SCRIPT_TIMEOUT=60 timeout "${window_limit:-600}" \
        xvfb-run -a -s "-screen 0 1280x1024x24" "$chat" -m "$data/stories260K.gguf" --seed 7 \
        --size 1000x720 "$@"
}
own_window ctx -c 80 -n 16 --script ctx.script >out5.txt 2>err5.txt
status=$?
[ $status = 0 ] || fail "context-full run: exit status $status: $(tail -5 err5.txt)"
[ "$(grep -c '^vkllm-chat: context full: dropped the oldest' err5.txt)" = 2 ] ||
    fail "not one note for each turn that dropped others: $(grep -v script: err5.txt)"
# a system prompt that leaves no room is refused when set (issue 10: it was
# taken, and every message failed), and the chat goes on with the old one
grep -q '^vkllm-chat: error: System prompt: .* the context holds 80: no message can be answered: raise Context length or shorten the system prompt$' err5.txt &&
    ! grep -q 'error: the conversation is' err5.txt &&
    grep -q '"system_prompt": "You tell short stories."' "$scratch/ctx-config/vkllm/settings.json" ||
    fail "a system prompt too long for the context: not refused: $(grep -v script: err5.txt)"
mkdir -p "$scratch/md-data/vkllm/chats"
cp "$data/window/markdown-chat.json" "$scratch/md-data/vkllm/chats/20260101-100000-d0c5ad.json"
own_window md -n 16 --script md.script >out6.txt 2>err6.txt
status=$?
[ $status = 0 ] || fail "Markdown and loading run: exit status $status: $(tail -5 err6.txt)"
[ "$(head -c 4 "$scratch/$long_name" 2>/dev/null | tail -c 3)" = PNG ] ||
    fail "no screenshot with a 250-byte name: $(grep error err6.txt)"
cat > save-fails.script <<EOF
send $(printf 'the cat sat %.0s' {1..60})
wait-reply
expect-error File too large
send And again
wait-reply
quit
EOF
# the limit for the app alone (Xvfb writes its keymaps), its output through a
# pipe to a file without one
SDL_VIDEODRIVER=x11 SDL_RENDER_DRIVER=software XDG_DATA_HOME="$scratch/save-fails-data" \
    XDG_CONFIG_HOME="$scratch/save-fails-config" VKLLM_SCRIPT_TIMEOUT=60 timeout 600 \
    xvfb-run -a -s "-screen 0 1280x1024x24" \
    bash -c 'set -o pipefail; (ulimit -f 1; exec "$@") 2>&1 | cat' sh \
    "$chat" -m "$data/stories260K.gguf" --seed 7 -n 24 --script save-fails.script >err7.txt 2>&1
status=$?
[ $status = 0 ] || fail "failing-save run: exit status $status: $(tail -5 err7.txt)"
[ "$(grep -c '^vkllm-chat: error: .*/chats/.*\.json: cannot write: File too large' err7.txt)" = 2 ] ||
    fail "a failed save is not one error a reply: $(grep error err7.txt)"
[ -z "$(ls -A "$scratch/save-fails-data/vkllm/chats")" ] || fail "a failed save left a file"
python3 - "$scratch" "$data/window/markdown-chat.json" <<'EOF' || fail "see above"
import json, os, sys
scratch, fixture = sys.argv[1:]
bad = 0
try:
    w = json.load(open(os.path.join(scratch, "ctx-worker.json")))
    head = w["prompt_head"]
    sys_at, kept_at = head.find("You tell short stories."), head.find("One day the ball rolled away")
    if not (0 <= sys_at < kept_at) or "Once upon a time" in head or w["n_dropped"] < 2:
        print(f"FAIL: the last prompt does not open with the system prompt, or holds a dropped "
              f"turn: {w}", file=sys.stderr)
        bad += 1
    if not (w["n_gen"] == 16 and w["gen_tps"] > 0 and w["gen_gbps"] > 0 and w["ttft_ms"] > 0):
        print(f"FAIL: the status bar's numbers: {w}", file=sys.stderr)
        bad += 1
    saved = [m["content"] for m in json.load(open(fixture))["messages"]]
    got = [m["content"] for m in json.load(open(os.path.join(scratch, "md-state.json")))["messages"]]
    if got != saved:
        print(f"FAIL: the reopened Markdown chat is not the saved one: {got}", file=sys.stderr)
        bad += 1
except Exception as e:
    print(f"FAIL: {e!r}", file=sys.stderr)
    bad += 1
sys.exit(1 if bad else 0)
EOF

# ---- hostile input (probe 3). Run 8 (own directories, a second or two):
# settings.json is a FIFO (refused at once, not waited on: Q-2); the saved
# chats hold a reply of 1000 asterisks each side (md4c nests 1000 spans: the
# window crashed drawing it, Q-0), a time past year 9999 and a speed of 1e308
# tokens/s (both refused and set aside, Q-4), and a letter with 120,000
# accents and a chain of 20,000 ZWJ-joined emoji (HarfBuzz shaped each as one
# piece, in time quadratic in its length: Q-0b); a message longer than the
# context of 64 tokens fails its turn, and Regenerate fails it again: no empty
# reply may stay in the tree (Q-12.9), nor one stopped before its first word
# (while queued behind a model's load, or just started); the last line, an unknown command with
# a terminal escape in it, must reach stderr escaped, in the echo and in the
# error (Q-5). Run 9: stderr a pipe whose reader has gone: the window keeps
# running (SIGPIPE ignored) and its script completes (Q-10). Then the
# window's refusals before it opens (no display needed): scripts that are a
# FIFO, a device, hold a NUL byte or invalid UTF-8 (Q-6, Q-11), and --size,
# --seed and VKLLM_UI_SCALE values the strict number parser refuses (Q-12.5).
mkdir -p "$scratch/hostile-config/vkllm" "$scratch/hostile-data/vkllm/chats"
mkfifo "$scratch/hostile-config/vkllm/settings.json"
python3 - "$scratch/hostile-data/vkllm/chats" <<'EOF'
import json, os, sys
def chat(name, updated, msgs):
    d = {"format": "vkllm-chat", "version": 1, "title": name, "renamed": True, "created": 1,
         "updated": updated, "active": 0, "messages": msgs}
    open(os.path.join(sys.argv[1], name + ".json"), "w").write(json.dumps(d))
def msg(role, text, parent, **extra):
    return dict(role=role, content=text, created=1, parent=parent, active=0, **extra)
chat("stars", 1796288653, [msg("user", "Stars", -1), msg("assistant", "*" * 1000 + "a" + "*" * 1000, 0)])
chat("accents", 1796288652, [msg("user", "a" + "\u0301" * 120000, -1),
                             msg("assistant", "\U0001F468" + "\u200d\U0001F468" * 20000, 0)])
chat("far-future", 9223372036854775807, [msg("user", "later", -1)])
chat("fast", 100, [msg("user", "x", -1, stats={"tokens": 1, "tokens_per_s": 1e308, "model": None,
                                              "end": "model"})])
EOF
{
    echo "expect-error not a regular file"
    echo "open-sidebar"
    echo "dump-list $scratch/hostile-list.txt"
    echo "reopen 0"
    echo "screenshot $scratch/hostile-stars.png"
    echo "reopen 1"
    echo "screenshot $scratch/hostile-accents.png"
    echo "new-chat"
    echo "send $(printf 'the cat sat on the mat %.0s' {1..30})"
    echo "wait-reply"
    echo "expect-error the context holds 64"
    echo "regenerate"
    echo "wait-reply"
    echo "dump-state $scratch/hostile-state.json"
    echo "new-chat"
    echo "load $data/stories260K.gguf"
    echo "send Hello again"
    echo "stop"
    echo "wait-reply"
    echo "dump-state $scratch/hostile-stop.json"
    printf 'frob \033]0;x\007\n'
} > hostile.script
# 60 s: a window that waits on the FIFO never draws a frame
SECONDS=0
window_limit=60 own_window hostile -c 64 -n 8 --script hostile.script >out8.txt 2>err8.txt
status=$? took=$SECONDS
[ $took -lt 20 ] || fail "the hostile run took $took s (80,000 accents on a letter took 26 s to shape)"
[ $status = 1 ] || fail "hostile run: exit status $status, not 1 (the unknown command): $(tail -5 err8.txt)"
grep -q "settings.json: is not a regular file; defaults used" err8.txt ||
    fail "a FIFO as settings.json: $(grep error err8.txt)"
grep -q 'far-future.json: no "created" or "updated" time' err8.txt &&
    grep -q 'fast.json: message 1: bad "stats"' err8.txt ||
    fail "a time past 9999 or a speed of 1e308 was not refused: $(grep error err8.txt)"
[ "$(cut -f2 hostile-list.txt 2>/dev/null | tr '\n' ' ')" = "stars accents " ] ||
    fail "hostile-list.txt: $(cat hostile-list.txt)"
grep -qF 'script: frob \x1b]0;x\x07' err8.txt &&
    grep -qF "hostile.script:21: unknown command 'frob \\x1b]0;x\\x07'" err8.txt &&
    ! grep -q $'\033' err8.txt || fail "a script line reached stderr unescaped: $(grep frob err8.txt | od -c | head)"
python3 - "$scratch/hostile-state.json" <<'EOF' || fail "see above"
import json, sys
try:
    msgs = json.load(open(sys.argv[1]))["messages"]
except Exception as e:
    sys.exit(f"FAIL: hostile-state.json: {e!r}")
if [m["role"] for m in msgs] != ["user"]:
    sys.exit(f"FAIL: a failed turn left replies behind: {[(m['role'], m['content'][:20]) for m in msgs]}")
msgs = json.load(open(sys.argv[1].replace("-state", "-stop")))["messages"]
if any(m["role"] == "assistant" and ("stats" not in m or not m["content"]) for m in msgs):
    sys.exit(f"FAIL: a reply stopped before its first word stayed: {msgs}")
EOF
printf 'send Hi\nwait-reply\ndump-state %s\nquit\n' "$scratch/pipe-state.json" > pipe.script
own_window pipe -n 8 --script pipe.script 2> >(head -c 1 >/dev/null) >out9.txt
status=$?
[ $status = 0 ] && [ -s pipe-state.json ] ||
    fail "stderr a closed pipe: exit status $status, state dumped: $([ -s pipe-state.json ] && echo yes || echo no)"
mkfifo fifo.script
printf 'send a\000b\nquit\n' > nul.script
printf 'send a\nsend \xc3\x28\nquit\n' > utf8.script
refused() { # WHAT, the error expected, then the app's arguments
    local what=$1 want=$2 got
    shift 2
    got=$(timeout 20 "$chat" "$@" 2>&1 >/dev/null)
    [ $? = 1 ] && grep -qF -- "$want" <<<"$got" || fail "$what: $got"
}
refused "a FIFO script" "fifo.script: is not a regular file" --script fifo.script
refused "a device script" "/dev/zero: is not a regular file" --script /dev/zero
refused "a NUL byte" "nul.script:1: holds a NUL byte" --script nul.script
refused "invalid UTF-8" "utf8.script:2: not valid UTF-8" --script utf8.script
refused "--size 800x600x3" "--size height: '600x3' is not a whole number from 150 to 16384" --size 800x600x3
refused "--size 1x1" "--size width: '1' is not a whole number from 200 to 16384" --size 1x1
refused "--seed past 64 bits" "--seed: '99999999999999999999' is not a whole number" --seed 99999999999999999999
VKLLM_UI_SCALE=2x refused "VKLLM_UI_SCALE=2x" "VKLLM_UI_SCALE: '2x' is not a number from 1 to 4"
# Run 10: another process rewrites the saved chat this window has open (as a
# second window would, Q-9): this window's next save must not replace it, but
# save the conversation as a new chat "TITLE (copy)", with a note.
mkdir -p "$scratch/conflict-data/vkllm/chats"
shared=$scratch/conflict-data/vkllm/chats/20260101-000000-5a5a5a.json
python3 - "$shared" <<'EOF'
import json, sys
msgs = [dict(role="user", content="Hello", created=1, parent=-1, active=0),
        dict(role="assistant", content="Hi there", created=2, parent=0, active=0)]
json.dump({"format": "vkllm-chat", "version": 1, "title": "shared", "renamed": True, "created": 1,
           "updated": 2, "active": 0, "messages": msgs}, open(sys.argv[1], "w"))
EOF
cat > conflict.script <<EOF
open-sidebar
reopen 0
dump-state $scratch/conflict-opened.json
wait-file $scratch/conflict-go
send From this window
wait-reply
expect-note changed by another window
dump-list $scratch/conflict-list.txt
quit
EOF
window_limit=60 own_window conflict -n 8 --script conflict.script >out10.txt 2>err10.txt &
window_pid=$!
for _ in $(seq 600); do [ -e conflict-opened.json ] && break; sleep 0.1; done
python3 - "$shared" <<'EOF'
import json, os, sys
d = json.load(open(sys.argv[1]))
d["messages"].append(dict(role="user", content="From the other window", created=3, parent=1, active=0))
d["messages"][1]["active"] = 0
json.dump(d, open(sys.argv[1] + ".tmp", "w"))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
EOF
touch conflict-go
wait $window_pid
status=$?
[ $status = 0 ] || fail "conflict run: exit status $status: $(tail -5 err10.txt)"
python3 - "$scratch" "$shared" <<'EOF' || fail "see above"
import glob, json, os, sys
scratch, shared = sys.argv[1:]
bad = 0
other = [m["content"] for m in json.load(open(shared))["messages"]]
if "From this window" in other or "From the other window" not in other:
    print(f"FAIL: the other writer's file was replaced: {other}", file=sys.stderr)
    bad += 1
copies = [f for f in glob.glob(os.path.dirname(shared) + "/*.json") if f != shared]
if len(copies) != 1:
    sys.exit(f"FAIL: not one copy beside the shared chat: {copies}")
c = json.load(open(copies[0]))
texts = [m["content"] for m in c["messages"]]
if c["title"] != "shared (copy)" or texts[:3] != ["Hello", "Hi there", "From this window"] or \
        "From the other window" in texts:
    print(f"FAIL: the copy: {c['title']}: {texts}", file=sys.stderr)
    bad += 1
listed = open(os.path.join(scratch, "conflict-list.txt")).read().split("\n")
if sorted(l.split("\t")[1] for l in listed if l) != ["shared", "shared (copy)"]:
    print(f"FAIL: the list after the copy: {listed}", file=sys.stderr)
    bad += 1
sys.exit(1 if bad else 0)
EOF
# Run 10b: another window deletes the saved chat this one has open (probe 4,
# R-16): the next reply must not bring it back under its old name; the
# conversation is saved as a new chat, with a note.
mkdir -p "$scratch/gone-data/vkllm/chats"
gone=$scratch/gone-data/vkllm/chats/20260101-000000-6a6a6a.json
python3 - "$gone" <<'EOF'
import json, sys
msgs = [dict(role="user", content="Hello", created=1, parent=-1, active=0),
        dict(role="assistant", content="Hi there", created=2, parent=0, active=0)]
json.dump({"format": "vkllm-chat", "version": 1, "title": "doomed", "renamed": True, "created": 1,
           "updated": 2, "active": 0, "messages": msgs}, open(sys.argv[1], "w"))
EOF
cat > gone.script <<EOF
open-sidebar
reopen 0
dump-state $scratch/gone-opened.json
wait-file $scratch/gone-go
send After the delete
wait-reply
expect-note deleted by another window
dump-list $scratch/gone-list.txt
quit
EOF
window_limit=60 own_window gone -n 8 --script gone.script >out10b.txt 2>err10b.txt &
window_pid=$!
for _ in $(seq 600); do [ -e gone-opened.json ] && break; sleep 0.1; done
rm -f "$gone"
touch gone-go
wait $window_pid
status=$?
[ $status = 0 ] || fail "deleted-chat run: exit status $status: $(tail -5 err10b.txt)"
[ -e "$gone" ] && fail "the deleted chat came back under its old name"
python3 - "$scratch" "$gone" <<'EOF' || fail "see above"
import glob, json, os, sys
scratch, gone = sys.argv[1:]
files = glob.glob(os.path.dirname(gone) + "/*.json")
if len(files) != 1:
    sys.exit(f"FAIL: not one new chat for the deleted one: {files}")
c = json.load(open(files[0]))
texts = [m["content"] for m in c["messages"]]
listed = [l.split("\t")[1] for l in open(os.path.join(scratch, "gone-list.txt")).read().splitlines()]
if c["title"] != "doomed" or texts[:3] != ["Hello", "Hi there", "After the delete"] or \
        listed != ["doomed"]:
    sys.exit(f"FAIL: the new chat: {c['title']}: {texts}; listed {listed}")
EOF
# Run 10c (probe 4, R-18): the in-window browser in a folder deleted while
# shown: Backspace climbs to the nearest folder that still exists (it was a
# dead end, no ".." row once the listing failed). With a configuration
# directory that is a file, a setting applies for this run (the script's
# "settings" is not refused, as with HOME unset); a VKLLM_PEAK_GBPS of 1e-7
# is refused with its range (it showed "78811848% of 0").
mkdir -p "$scratch/tree/keep" "$scratch/tree/del/sub"
echo "a file" > "$scratch/tree-config"
cat > tree.script <<EOF
browse $scratch/tree/del/sub
dump-state $scratch/tree-shown.json
wait-file $scratch/tree-go
key Backspace
pick keep
settings top_k 7
quit
EOF
VKLLM_PEAK_GBPS=1e-7 window_limit=60 own_window tree --script tree.script >out10c.txt 2>err10c.txt &
window_pid=$!
for _ in $(seq 600); do [ -e tree-shown.json ] && break; sleep 0.1; done
rm -rf "$scratch/tree/del"
touch tree-go
wait $window_pid
status=$?
[ $status = 0 ] || fail "deleted-folder run: exit status $status: $(grep -v script: err10c.txt | tail -5)"
grep -q "the settings apply to this run only" err10c.txt ||
    fail "a setting with nowhere to save it: $(grep -v script: err10c.txt)"
grep -q "VKLLM_PEAK_GBPS: '1e-7' is not a bandwidth in GB/s from 0.001 to 100000" err10c.txt ||
    fail "VKLLM_PEAK_GBPS=1e-7: $(grep PEAK err10c.txt)"
VKLLM_UI_SCALE=0.5 refused "VKLLM_UI_SCALE=0.5" "VKLLM_UI_SCALE: '0.5' is out of the range 1 to 4"
# Run 11: 100 saved chats of 2 MB each (Q-13): opening the sidebar lists them
# from their header lines; parsing them all (200 MB) held the first frame for
# seconds. The timing line's first frame must come within 2 s (it took 3 s
# here; test_history checks that the list reads only the header line).
mkdir -p "$scratch/many-data/vkllm/chats"
python3 - "$scratch/many-data/vkllm/chats" <<'EOF'
import json, os, sys
body = json.dumps("word " * 400000)
for i in range(100):
    head = json.dumps({"format": "vkllm-chat", "version": 1, "title": f"long chat {i}",
                       "renamed": True, "created": 1, "updated": 1000 + i, "active": 0})
    with open(os.path.join(sys.argv[1], f"20260101-000000-{i:06x}.json"), "w") as f:
        f.write(head[:-1] + ', "messages": [\n{"role": "user", "content": ' + body +
                ', "created": 1, "parent": -1, "active": 0}]}\n')
EOF
printf 'open-sidebar\ndump-list %s\nquit\n' "$scratch/many-list.txt" > many.script
window_limit=60 own_window many -n 8 --script many.script >out11.txt 2>err11.txt
status=$?
first=$(sed -n 's/^vkllm-chat: first frame \([0-9]*\) ms.*/\1/p' err11.txt)
[ $status = 0 ] && [ -n "$first" ] && [ "$first" -lt 2000 ] ||
    fail "100 chats of 2 MB: exit status $status, first frame after ${first:-?} ms: $(tail -3 err11.txt)"
[ "$(wc -l < many-list.txt)" = 100 ] && [ "$(head -1 many-list.txt | cut -f2)" = "long chat 99" ] ||
    fail "the list of 100 chats: $(head -3 many-list.txt)"
rm -rf "$scratch/many-data" # 200 MB

# ---- settings that can never work (probe 6, M1) and the context's notes
# (M2). Run 12: the saved settings name device 99, which is not there: the
# default device serves instead, with a note naming the devices, and a reply
# comes; then device 42 and contexts of 7 and 1 are refused when set, the old
# values kept in the file. Run 13: the pipeline cache that run 12 wrote
# replaced by garbage: the window shows the context's note that it ignored it.
mkdir -p w6-config/vkllm
echo '{"device": "99"}' > w6-config/vkllm/settings.json
cat > w6.script <<EOF
wait-reply
send Hello on the default device
wait-reply
dump-state $scratch/w6-state.json
settings-refused device 42
settings-refused context 7
settings-refused context 1
quit
EOF
printf 'wait-reply\nquit\n' > w6b.script
w6_window() {
    SDL_VIDEODRIVER=x11 SDL_RENDER_DRIVER=software XDG_DATA_HOME="$scratch/w6-data" \
        XDG_CONFIG_HOME="$scratch/w6-config" XDG_CACHE_HOME="$scratch/w6-cache" timeout 600 \
        xvfb-run -a -s "-screen 0 1280x1024x24" "$chat" -m "$data/stories260K.gguf" -n 8 --seed 7 --size 1000x720 "$@"
}
w6_window --script w6.script >out12.txt 2>err12.txt
status=$?
[ $status = 0 ] || fail "device-99 run: exit status $status: $(tail -5 err12.txt)"
grep -q "^vkllm-chat: Device: '99' is none of the devices here (0: .*): the default device is used" err12.txt ||
    fail "no note for the saved device that is not there: $(grep -i device err12.txt)"
grep -q "^vkllm-chat: first frame .*, model loaded [0-9]* ms after launch" err12.txt ||
    fail "no model loaded on the default device: $(grep -v script: err12.txt | tail -3)"
grep -q "^vkllm-chat: error: Device: '42' is none of the devices here (0: " err12.txt ||
    fail "device 42 not refused when set: $(grep error err12.txt)"
[ "$(grep -c "^vkllm-chat: error: Context length: '[17]' is not 0 (the model's) or a whole number from 8" err12.txt)" = 2 ] ||
    fail "contexts of 7 and 1 not refused when set: $(grep error err12.txt)"
! grep -q "see vkllm devices\|no model is loaded" err12.txt || fail "$(grep -m1 'vkllm devices\|no model' err12.txt)"
python3 - "$scratch" <<'EOF' || fail "see above"
import json, os, sys
d = sys.argv[1]
msgs = json.load(open(os.path.join(d, "w6-state.json")))["messages"]
ok = len(msgs) == 2 and msgs[1]["role"] == "assistant" and msgs[1]["content"]
st = json.load(open(os.path.join(d, "w6-config", "vkllm", "settings.json")))
ok = ok and st["device"] == "99" and st.get("context", 0) == 0
if not ok:
    print(f"FAIL: device-99 run: reply {msgs[1:]}, settings {st}", file=sys.stderr)
    sys.exit(1)
EOF
caches=(w6-cache/vkllm/pipelines-*.bin)
if [ -f "${caches[0]}" ]; then
    printf 'not a pipeline cache' > "${caches[0]}"
    w6_window --script w6b.script >out13.txt 2>err13.txt
    status=$?
    [ $status = 0 ] || fail "garbage-cache run: exit status $status: $(tail -5 err13.txt)"
    grep -q "^vkllm-chat: .*${caches[0]##*/}: .*ignored" err13.txt ||
        fail "no note for the garbage pipeline cache: $(grep -v script: err13.txt | tail -3)"
else
    fail "run 12 wrote no pipeline cache under w6-cache"
fi

python3 - "$scratch" <<'EOF' || fail "see above"
import json, os, struct, sys, zlib

scratch = sys.argv[1]
bad = 0
def check(cond, msg):
    global bad
    if not cond:
        print("FAIL:", msg, file=sys.stderr)
        bad += 1

# ---- the screenshots: whole PNGs of the window, not blank
def png_colours(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype == 6, "not 8-bit RGBA"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, bpp, stride = zlib.decompress(idat), 4, w * 4
    prev, colours, bright = bytearray(stride), set(), []
    for y in range(h):
        f, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: row[i] = (row[i] + a) & 255
            elif f == 2: row[i] = (row[i] + b) & 255
            elif f == 3: row[i] = (row[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        colours.update(bytes(row[i:i + 4]) for i in range(0, stride, 4 * 3))
        prev = row
        sample = range(0, stride, 4 * 7)
        bright.append(sum(row[i] + row[i + 1] + row[i + 2] for i in sample) / (3 * len(sample)))
    return w, h, len(colours), sum(bright) / len(bright)

for name in ["first", "regenerated", "branches", "error", "after-error", "settings", "help",
             "light", "sidebar", "reopened", "models", "too-big", "context-full", "markdown",
             "loading", "lora"]:
    path = os.path.join(scratch, name + ".png")
    if not os.path.exists(path):
        check(False, f"{name}.png is missing")
        continue
    try:
        w, h, n, mean = png_colours(path)
    except Exception as e:
        check(False, f"{name}.png: {e}")
        continue
    check((w, h) == (1000, 720), f"{name}.png is {w}x{h}, not the window's 1000x720")
    check(n > 16, f"{name}.png has {n} colours: blank")
    # the light theme, and the second run that starts with it saved
    light = name in ("light", "sidebar", "reopened")
    check((mean > 160) == light,
          f"{name}.png: mean brightness {mean:.0f}, not the {'light' if light else 'dark'} theme")

# ---- the conversation tree
try:
    d = json.load(open(os.path.join(scratch, "state.json")))
except Exception as e:
    print("FAIL: state.json:", e, file=sys.stderr)
    sys.exit(1)
msgs = d["messages"]
def children(p):
    return [i for i, m in enumerate(msgs) if m["parent"] == p]
roots = children(-1)
check([msgs[i]["content"] for i in roots] == ["Hello there", "Once upon a time"],
      f"the first message and its edit are not siblings: {[msgs[i]['content'] for i in roots]}")
path, kids = [], roots
act = d["active"]
while kids:
    i = kids[act if act < len(kids) else 0]
    path.append(i)
    kids = children(i)
    act = msgs[i]["active"]
texts = [msgs[i]["content"] for i in path]
check(len(path) == 6 and texts[0] == "Hello there" and texts[2] == "Tell me a story\nabout Привет 👋 مرحبا"
      and texts[4] == "After the error",
      f"the active path after switching back and sending again: {texts}")
if len(path) == 6:
    replies = children(path[2])
    check(len(replies) == 2, f"regenerate: the second message has {len(replies)} replies, not 2")
    stopped, again = (msgs[i] for i in replies[:2])
    check(stopped.get("stats", {}).get("end") == "user" and 3 <= stopped["stats"]["tokens"] < 40,
          f"the stopped reply: {stopped.get('stats')}")
    check(path[3] == replies[1] and again["stats"]["end"] in ("length", "model") and again["content"],
          f"the regenerated reply is not the active one, or empty: {again}")
    last = msgs[path[5]]
    check(last["role"] == "assistant" and last["content"] and last["stats"]["tokens"] > 0,
          f"no reply after the error: {last}")
    for i in path[1:4:2]:
        check(msgs[i]["content"].strip() != "", f"reply {i} is empty")
edited = children(roots[1])
check(len(edited) == 1 and msgs[edited[0]]["content"], "the edited branch has no reply")

# ---- saved chats and settings across the two runs
def entries(name):
    try:
        return [l.split("\t", 1) for l in open(os.path.join(scratch, name)).read().splitlines()]
    except OSError as e:
        check(False, f"{name}: {e}")
        return []
l1, l2, found, l3 = (entries(n) for n in ("list1.txt", "list2.txt", "search.txt", "list3.txt"))
check([t for _, t in l1] == ["A second chat about cats", "Hello there"],
      f"the first run's list (newest first): {l1}")
check(l2 == l1, f"the second run lists other chats: {l2} (first run: {l1})")
check([t for _, t in found] == ["Hello there"], f"searching an edited branch's words: {found}")
check(len(l3) == 1 and l3[0][1] == "Story time" and len(l1) == 2 and l3[0][0] == l1[1][0],
      f"after rename and delete: {l3}")
try:
    m2 = json.load(open(os.path.join(scratch, "state2.json")))["messages"]
    check(len(m2) == len(msgs) + 2 and
          [m["content"] for m in m2[:len(msgs)]] == [m["content"] for m in msgs],
          "the reopened chat is not the saved tree and one more turn")
    check(m2[-2]["content"] == "One more line" and len(path) == 6 and m2[-2]["parent"] == path[5]
          and m2[-1]["role"] == "assistant" and m2[-1]["stats"]["tokens"] > 0,
          f"the turn after reopening: {m2[-2:]}")
except Exception as e:
    check(False, f"state2.json: {e!r}")
try:
    st = json.load(open(os.path.join(scratch, "config", "vkllm", "settings.json")))
    check(st["temperature"] == 0.5 and st["theme"] == "light" and
          st["system_prompt"] == "You tell short stories." and st["max_tokens"] == -1,
          f"settings.json: {st} (-n 40 on the command line is for one run, not saved)")
except Exception as e:
    check(False, f"settings.json: {e!r}")
sys.exit(1 if bad else 0)
EOF

# ---- probe 7. Run P: greedy replies with a repetition penalty, in a chat,
# regenerated, and in a new chat, are all `vkllm chat`'s reply to the same
# message: the window's sampler kept its penalty history across replies and
# chats, and never saw the prompt (C-1). Then a context the chat format cannot
# fit (16 tokens) is refused with what to do, and the model loaded before
# answers on, no message left unanswered (M5). Run N: a model whose tokens
# all hold a NUL byte: the reply goes on to its end, the NULs shown (and
# saved) as U+FFFD, with no error and no "stopped by the user" (W-2). Run C:
# stderr closed: its log lines went into the X connection (descriptor 2),
# and the window froze for good (W-1).
cat > pen.script <<EOF
wait-reply
settings temperature 0
settings repeat_penalty 1.5
settings max_tokens 20
send Once upon a time
wait-reply
regenerate
wait-reply
dump-state $scratch/pen1.json
new-chat
send Once upon a time
wait-reply
dump-state $scratch/pen2.json
settings context 16
expect-error raise Context length
send Once upon a time
wait-reply
dump-state $scratch/pen3.json
quit
EOF
own_window pen --script pen.script >out-pen.txt 2>err-pen.txt
status=$?
[ $status = 0 ] || fail "penalty run: exit status $status: $(tail -5 err-pen.txt)"
printf 'Once upon a time\n' | "$vkllm" chat -m "$data/stories260K.gguf" --temp 0 --repeat-penalty 1.5 \
    -n 20 2>/dev/null >pen-cli.txt || fail "vkllm chat with a penalty"
"$(dirname "$gen_model")/craft_gguf" "$data/stories260K.gguf" nul.gguf --token-suffix 'x\x00y' ||
    fail "craft_gguf nul.gguf"
printf 'wait-reply\nsettings temperature 0\nsettings max_tokens 8\nsend Once upon a time
wait-reply\ndump-state %s\nquit\n' "$scratch/nul.json" >nul.script
own_window nul -m nul.gguf --script nul.script >out-nul.txt 2>err-nul.txt
status=$?
[ $status = 0 ] || fail "NUL run: exit status $status: $(tail -5 err-nul.txt)"
grep -q "error" err-nul.txt && fail "NUL run: $(grep error err-nul.txt)"
printf 'wait-reply\nsend hi\nwait-reply\ndump-state %s\nquit\n' "$scratch/closed.json" >closed.script
window_limit=180 own_window closed --script closed.script >out-closed.txt 2>&-
status=$?
[ $status = 0 ] && [ -s closed.json ] || fail "stderr closed: exit status $status, no dump"
python3 - "$scratch" <<'EOF' || fail "see above"
import json, os, sys
scratch = sys.argv[1]
bad = 0
def check(cond, msg):
    global bad
    if not cond:
        print("FAIL: probe 7:", msg, file=sys.stderr)
        bad += 1
def msgs(name):
    try:
        return json.load(open(os.path.join(scratch, name)))["messages"]
    except Exception as e:
        check(False, f"{name}: {e!r}")
        return []
cli = open(os.path.join(scratch, "pen-cli.txt")).read().rstrip("\n")
m1, m2, m3 = msgs("pen1.json"), msgs("pen2.json"), msgs("pen3.json")
replies = [m["content"] for m in m1 if m["role"] == "assistant"]
check(len(replies) == 2 and replies[0] == replies[1] == cli,
      f"a reply and its regeneration are not vkllm chat's {cli!r}: {replies}")
check([m["content"] for m in m2][-1:] == [cli], f"the new chat's reply: {m2[-1:]}")
check([m["role"] for m in m3] == ["user", "assistant"] * 2 and m3[-1]["content"],
      f"after context 16 was refused: {[(m['role'], m['content']) for m in m3]}")
n = msgs("nul.json")
stats = n[1].get("stats", {}) if len(n) == 2 else {}
check(stats.get("end") == "length" and stats.get("tokens") == 8 and
      n[1]["content"].count("x\ufffdy") == 8, f"the reply of NUL tokens: {n[1:]}")
c = msgs("closed.json")
check(len(c) == 2 and c[1]["content"], f"stderr closed: {c}")
sys.exit(1 if bad else 0)
EOF

[ $failures = 0 ] && echo "test_window: ok"
[ $failures = 0 ]
