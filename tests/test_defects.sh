#!/usr/bin/env bash
# test_defects.sh: regressions for the user-facing defects of the hardening
# issue, each found by probing the vkllm program as a user (or a file from a
# stranger) can. Every command runs under `timeout`, so a hang fails the test
# instead of blocking it.
#   test_defects.sh VKLLM CRAFT_GGUF DATA_DIR SCRATCH_DIR
# 1. A FIFO, a device or a directory as the model is refused at once (it was
#    opened before it was checked: run, info and tokenize blocked forever).
# 2. A failed write to stdout (/dev/full, closed, a reader that quit) is an
#    error line and exit 1 (it was exit 0) for run, tokenize, info, devices
#    and --help.
# 3. Key names, values, tensor names and the architecture name from a file
#    reach the terminal escaped (they were raw: title, colours, forged lines).
# 4. A token longer than 256 bytes is printed by run (it was dropped).
# 5. A long path keeps the reason in its message (cut at 511 bytes, it lost
#    "File name too long").
# 6. VKLLM_MAX_BINDING: an unreadable value is an error (it was ignored), and
#    README's values work.
# 7. -c above the trained context warns once; --device -1 and blank names, -m ''
#    and a file with context_length 0 each get one clear error line.
set -u
vkllm=$1 craft=$2 data=$3 scratch=$4
mkdir -p "$scratch"
failures=0 checks=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
model=$data/stories260K.gguf
t() { timeout 120 "$@"; } # a hang is a failure, status 124

# WHAT PATTERN COMMAND...: one line "error: ...PATTERN..." on stderr (the
# "vkllm: " progress lines allowed), exit status 1..123, no hang, no crash.
expect_error() {
    local what=$1 pattern=$2
    shift 2
    checks=$((checks + 1))
    t "$@" >"$scratch/stdout" 2>"$scratch/stderr"
    local status=$?
    if [ $status = 0 ] || [ $status -ge 124 ]; then
        fail "$what: exit status $status ($(head -c 300 "$scratch/stderr"))"
    elif [ "$(grep -vc '^vkllm: ' "$scratch/stderr")" != 1 ] ||
        ! grep -q "^error: .*$pattern" "$scratch/stderr"; then
        fail "$what: expected one line 'error: ...$pattern...', got: $(head -c 600 "$scratch/stderr")"
    fi
}

# WHAT FILE: FILE holds no control character but newlines (no ESC, BEL, CR, C1).
expect_printable() {
    checks=$((checks + 1))
    if tr -d '\n' <"$2" | LC_ALL=C grep -q '[[:cntrl:]]' ||
        LC_ALL=C grep -q $'\xc2[\x80-\x9f]' "$2"; then
        fail "$1: control characters reached the terminal: $(tr -d '\n' <"$2" | od -c | head -5)"
    fi
}

# ---- 1. not a regular file as the model
rm -f "$scratch/fifo.gguf"
mkfifo "$scratch/fifo.gguf"
expect_error "info of a FIFO" "fifo.gguf: is a FIFO" "$vkllm" info "$scratch/fifo.gguf"
expect_error "tokenize with a FIFO" "is a FIFO" "$vkllm" tokenize -m "$scratch/fifo.gguf" -p hi
expect_error "run with a FIFO" "is a FIFO" "$vkllm" run -m "$scratch/fifo.gguf" -p hi -n 1
expect_error "info of a directory" "is a directory" "$vkllm" info "$scratch"
expect_error "info of /dev/zero" "is a character device" "$vkllm" info /dev/zero
# -f reads pipes as cat does, but an endless source ends in an error
expect_error "tokenize -f /dev/zero" "larger than 256 MiB" "$vkllm" tokenize -m "$model" -f /dev/zero

# ---- 2. failed writes to stdout
# (without the device, `>/dev/full` would create a regular file in /dev)
[ -c /dev/full ] || echo "no /dev/full device here: the full-disk checks are skipped"
# (bench: its writes' errno was lost, "write error" said instead: issue 10, M-5)
for cmd in "run -n 2 -p hi" "tokenize -p hi" "info $model" "devices" "--help" "run --help" \
    "bench -p 8 -n 2 -r 1 -o csv"; do
    read -r -a args <<<"$cmd"
    if [ -c /dev/full ]; then
        checks=$((checks + 1))
        t "$vkllm" "${args[@]}" >/dev/full 2>"$scratch/stderr"
        status=$?
        [ $status = 1 ] && grep -q "^error: stdout: No space left on device$" "$scratch/stderr" ||
            fail "vkllm $cmd >/dev/full: status $status, $(head -c 300 "$scratch/stderr")"
    fi
    checks=$((checks + 1))
    t "$vkllm" "${args[@]}" 2>"$scratch/stderr" >&-
    status=$?
    [ $status = 1 ] && grep -q "^error: stdout: Bad file descriptor$" "$scratch/stderr" ||
        fail "vkllm $cmd >&-: status $status, $(head -c 300 "$scratch/stderr")"
done
# a reader that quits: EPIPE is reported (not a silent SIGPIPE death), and
# generation stops there rather than running all 2000 tokens
checks=$((checks + 1))
t "$vkllm" run -n 2000 --ignore-eos -p hi 2>"$scratch/stderr" | head -c 1 >/dev/null
status=${PIPESTATUS[0]}
[ "$status" = 1 ] && grep -q "^error: stdout: Broken pipe$" "$scratch/stderr" &&
    ! grep -q "generated 2000 tokens" "$scratch/stderr" ||
    fail "run | head -c 1: status $status, $(head -c 300 "$scratch/stderr")"

# ---- 3. file text on the terminal
esc=$'\e' bel=$'\a' c1=$'\xc2\x9b'
"$craft" "$model" "$scratch/evil-arch.gguf" \
    --str general.architecture "ll${esc}]0;PWNED${bel}ama${c1}2J" || fail "craft_gguf evil-arch"
expect_error "run with a hostile architecture" "is not supported" \
    "$vkllm" run -m "$scratch/evil-arch.gguf" -n 1
expect_printable "run's error about the architecture" "$scratch/stderr"
checks=$((checks + 1))
grep -q 'll\\x1b\]0;PWNED\\x07ama\\xc2\\x9b2J' "$scratch/stderr" ||
    fail "the architecture is not shown escaped: $(cat "$scratch/stderr")"
t "$vkllm" info "$scratch/evil-arch.gguf" >"$scratch/info" 2>&1
expect_printable "info of a hostile architecture" "$scratch/info"

"$craft" "$model" "$scratch/evil-names.gguf" \
    --str "evil.${esc}[31mkey" "${esc}]0;title${bel}x"$'\r'"forged"$'\n'"error: forged line" \
    --str evil.utf8 "café 中文" \
    --str evil.bidi $'abc\xe2\x80\xaedef' \
    --rename output_norm.weight "norm${esc}[2J"$'\n'"fake" || fail "craft_gguf evil-names"
checks=$((checks + 1))
t "$vkllm" info "$scratch/evil-names.gguf" >"$scratch/info" 2>&1 || fail "info of hostile names failed"
expect_printable "info of hostile names" "$scratch/info"
for want in 'evil.\x1b[31mkey ' '"\x1b]0;title\x07x\x0dforged\x0aerror: forged line"' \
    '"café 中文"' '"abc\xe2\x80\xaedef"' ' norm\x1b[2J\x0afake '; do
    checks=$((checks + 1))
    grep -qF -- "$want" "$scratch/info" || fail "info does not show '$want' ($(grep evil "$scratch/info"))"
done
checks=$((checks + 1))
! grep -q "^error: forged" "$scratch/info" || fail "a value forged a line of info's output"

# ---- 4. a token longer than 256 bytes is printed
long=$(printf 'x%.0s' {1..300})
"$craft" "$model" "$scratch/long-tokens.gguf" --token-suffix "$long" || fail "craft_gguf long-tokens"
checks=$((checks + 1))
out=$(t "$vkllm" run -m "$scratch/long-tokens.gguf" -n 3 --temp 0 2>"$scratch/stderr")
[[ $out == *"$long"* ]] || fail "run dropped a token of 300 bytes: '${out:0:80}' $(cat "$scratch/stderr")"

# ---- 5. a long path keeps the reason
path=/$(printf 'a%.0s' {1..5000}).gguf
expect_error "info of a 5000-byte path" "aaa\.\.\.aaa.*: File name too long" "$vkllm" info "$path"
expect_error "run with a 5000-byte path" ": File name too long" "$vkllm" run -m "$path" -n 1
expect_error "tokenize -f a 5000-byte path" ": File name too long" \
    "$vkllm" tokenize -m "$model" -f "$path"

# ---- 6. VKLLM_MAX_BINDING
expect_error "VKLLM_MAX_BINDING=abc" "VKLLM_MAX_BINDING: 'abc' is not a size" \
    env VKLLM_MAX_BINDING=abc "$vkllm" run -n 1
expect_error "VKLLM_MAX_BINDING=16X" "'16X' is not a size" env VKLLM_MAX_BINDING=16X "$vkllm" run -n 1
expect_error "VKLLM_MAX_BINDING=100" "100 is less than 4K" env VKLLM_MAX_BINDING=100 "$vkllm" run -n 1
# README: 128K runs the bundled model's default context, 16K needs -c 256
for setting in "128K" "16K -c 256"; do
    read -r size ctx <<<"$setting"
    checks=$((checks + 1))
    VKLLM_MAX_BINDING=$size t "$vkllm" run ${ctx:+$ctx} -n 4 --temp 0 -p "Once upon" \
        >"$scratch/stdout" 2>"$scratch/stderr" && grep -q "Once upon ." "$scratch/stdout" ||
        fail "VKLLM_MAX_BINDING=$setting: $(cat "$scratch/stderr")"
done

# ---- 7. the smaller ones
checks=$((checks + 1))
t "$vkllm" run -c 4096 -n 1 >/dev/null 2>"$scratch/stderr"
[ "$(grep -c '^warning: ' "$scratch/stderr")" = 1 ] &&
    grep -q "^warning: the context of 4096 tokens exceeds the 2048" "$scratch/stderr" ||
    fail "-c 4096 (trained for 2048) gave no warning: $(cat "$scratch/stderr")"
checks=$((checks + 1))
t "$vkllm" run -c 2048 -n 1 >/dev/null 2>"$scratch/stderr"
! grep -q '^warning: ' "$scratch/stderr" || fail "-c 2048 warned: $(cat "$scratch/stderr")"
expect_error "--device -1" "device -1 does not exist" "$vkllm" run --device -1 -n 1
checks=$((checks + 1))
! grep -q 18446744073709551615 "$scratch/stderr" || fail "--device -1 wrapped around"
expect_error "--device ' '" "device ' ' is blank" "$vkllm" run --device ' ' -n 1
expect_error "--device ''" "device '' is blank" "$vkllm" run --device '' -n 1
expect_error "run -m ''" "-m: empty file name$" "$vkllm" run -m '' -n 1
expect_error "tokenize -m ''" "-m: empty file name$" "$vkllm" tokenize -m '' -p hi
# probe round 4, R-10.4: an empty VKLLM_MODEL said "error: empty file name"
for args in "run -p hi" "chat" "tokenize -p hi" "perplexity -f /dev/null" "bench"; do
    # shellcheck disable=SC2086
    expect_error "VKLLM_MODEL= $args" "VKLLM_MODEL: empty file name" env VKLLM_MODEL= "$vkllm" $args
done
expect_error "info ''" "empty file name$" "$vkllm" info ''
# a newline in a file name is shown escaped (it was a space: another file's name)
expect_error "VKLLM_MODEL with a newline" 'no\\x0aline.gguf: No such file' \
    env VKLLM_MODEL=$'no\nline.gguf' "$vkllm" run -n 1
expect_error "tokenize -f ''" "empty file name$" "$vkllm" tokenize -m "$model" -f ''
"$craft" "$model" "$scratch/ctx0.gguf" --u32 llama.context_length 0 || fail "craft_gguf ctx0"
expect_error "context_length 0" "llama.context_length is 0" "$vkllm" run -m "$scratch/ctx0.gguf" -n 1
checks=$((checks + 1))
t "$vkllm" info "$scratch/ctx0.gguf" 2>&1 | grep -q "cannot run this file: .*context_length is 0" ||
    fail "info does not say context_length 0 is wrong"

# ---- 8. hostile files, second round: each message names the real problem
# (one was blamed on the output, one on a family vkllm runs, three were not
# noticed at all) and odd token types are warned about
gen_model=$(dirname "$craft")/gen_model # built beside craft_gguf
crafted() { # NAME CRAFT_ARGS...: $scratch/NAME.gguf from the bundled model
    local name=$1
    shift
    "$craft" "$model" "$scratch/$name.gguf" "$@" || fail "craft_gguf $name $*"
}
crafted dim0 --shape token_embd.weight 64,0
expect_error "quantize of a 0-length dimension" \
    "dim0.gguf: tensor token_embd.weight has shape .64, 0." \
    "$vkllm" quantize "$scratch/dim0.gguf" "$scratch/dim0-q.gguf" Q4_K_M
crafted arch-nul --str-x general.architecture 'llama\x00evil'
expect_error "a NUL in the architecture" "architecture 'llama\\\\x00evil' is not supported" \
    "$vkllm" run -m "$scratch/arch-nul.gguf" -n 1
crafted value5 --u32 llama.attention.value_length 5
expect_error "value_length 5, key_length absent" \
    "llama.attention.value_length is 5 but the keys' head size is 8" \
    "$vkllm" run -m "$scratch/value5.gguf" -n 1
crafted value5-key8 --u32 llama.attention.key_length 8 --u32 llama.attention.value_length 5
expect_error "value_length 5, key_length 8" "value_length is 5 but key_length is 8" \
    "$vkllm" run -m "$scratch/value5-key8.gguf" -n 1
crafted key0 --u32 llama.attention.key_length 0
expect_error "key_length 0" "llama.attention.key_length is 0" "$vkllm" run -m "$scratch/key0.gguf" -n 1
crafted embd32 --u32 llama.embedding_length 32
expect_error "embedding_length 32 of 64" \
    "llama.embedding_length is 32, but token_embd.weight has rows of 64 elements" \
    "$vkllm" run -m "$scratch/embd32.gguf" -n 1
# the head size said again is fine
crafted value8 --u32 llama.attention.key_length 8 --u32 llama.attention.value_length 8
checks=$((checks + 1))
t "$vkllm" run -m "$scratch/value8.gguf" -n 1 >/dev/null 2>"$scratch/stderr" ||
    fail "key_length = value_length = 8 refused: $(cat "$scratch/stderr")"
"$gen_model" -o "$scratch/gemma2.gguf" --arch gemma2 --n-embd 64 --n-layer 2 --n-head 2 --n-ff 64 \
    --n-vocab 300 || fail "gen_model gemma2"
"$craft" "$scratch/gemma2.gguf" "$scratch/gemma2-w0.gguf" --u32 gemma2.attention.sliding_window 0 ||
    fail "craft_gguf gemma2-w0"
expect_error "gemma2 sliding_window 0" "gemma2.attention.sliding_window is 0" \
    "$vkllm" run -m "$scratch/gemma2-w0.gguf" -n 1
# token types 99 and -5: one warning for the file, with the count
crafted types --token-type 300 99 --token-type 301 -5
checks=$((checks + 1))
t "$vkllm" run -m "$scratch/types.gguf" -n 1 -p Once >/dev/null 2>"$scratch/stderr"
[ "$(grep -c '^warning: ' "$scratch/stderr")" = 1 ] &&
    grep -q "^warning: .*types.gguf: 2 tokens of tokenizer.ggml.token_type are not a type 0..6 (token 300: 99)" \
        "$scratch/stderr" || fail "token types 99 and -5: expected one warning, got: $(cat "$scratch/stderr")"

# ---- generated and rendered text on a terminal (probe round 2, P-5 and P-8)
# A token (or a chat template) from the file carrying ESC ] 52 (clipboard
# write) and BEL reached a terminal raw from run, chat and template -m; on a
# terminal it is escaped now (newlines and tabs kept), to a pipe it stays
# exact. A pseudo-terminal from script(1) stands in for the user's terminal.
on_tty() { # FILE COMMAND: COMMAND's stdout, seen through a terminal, into FILE
    local file=$1
    shift
    t script -qec "$* 2>/dev/null" /dev/null </dev/null >"$file" 2>/dev/null
}
esc=$'\e' bel=$'\a'
"$craft" "$model" "$scratch/esc-token.gguf" --token-suffix "${esc}]52;c;cHduZWQ=${bel}" ||
    fail "craft_gguf esc-token"
"$craft" "$model" "$scratch/esc-tpl.gguf" --str tokenizer.chat_template \
    "A${esc}]52;c;eA==${bel}"$'\t'"B"$'\n'"C{% for m in messages %}{{ m.content }}{% endfor %}" ||
    fail "craft_gguf esc-tpl"
printf '{%% for m in messages %%}{{ m.content }}{%% endfor %%}' >"$scratch/content.jinja"
printf '{"messages":[{"role":"user","content":"hi"}]}' >"$scratch/ctx.json"
run_esc="$vkllm run -m $scratch/esc-token.gguf -p Once -n 3 --temp 0"
chat_esc="printf 'Once\n' | $vkllm chat -m $scratch/esc-token.gguf --chat-template-file \
$scratch/content.jinja -n 3 --temp 0"
tpl_esc="$vkllm template -m $scratch/esc-tpl.gguf --context $scratch/ctx.json"
for c in run_esc chat_esc tpl_esc; do
    on_tty "$scratch/tty" "${!c}"
    checks=$((checks + 1))
    grep -qF '\x1b]52;c;' "$scratch/tty" && grep -qF '\x07' "$scratch/tty" ||
        fail "$c: no escaped sequence on the terminal: $(od -c "$scratch/tty" | head -3)"
    # script turns each newline into CR LF: the CRs are the terminal's own;
    # tabs are kept (checked below)
    tr -d '\r' <"$scratch/tty" >"$scratch/tty.txt"
    tr -d '\t' <"$scratch/tty.txt" >"$scratch/tty-notab.txt"
    expect_printable "$c on a terminal" "$scratch/tty-notab.txt"
    checks=$((checks + 1))
    t bash -c "${!c}" 2>/dev/null | grep -qF "${esc}]52;c;" ||
        fail "$c: the text to a pipe is not exact"
done
checks=$((checks + 1))
grep -q $'^A\\\\x1b]52;c;eA==\\\\x07\tB$' "$scratch/tty.txt" ||
    fail "template -m on a terminal: the tab or the newline was escaped: $(od -c "$scratch/tty.txt" | head)"
# probe round 3, Q-12.2: quantize's progress bar redraws its line with
# "ESC [K", which a dumb terminal shows as text: TERM=dumb gets plain lines
for term in dumb xterm; do
    checks=$((checks + 1))
    t script -qec "TERM=$term $vkllm quantize $model $scratch/bar-$term.gguf Q8_0" /dev/null \
        </dev/null >"$scratch/bar-$term.txt" 2>/dev/null
    if [ $term = dumb ]; then
        ! grep -q "$esc" "$scratch/bar-$term.txt" && grep -q '^vkllm: \[ *1/' "$scratch/bar-$term.txt" ||
            fail "quantize with TERM=dumb: $(od -c "$scratch/bar-$term.txt" | head -3)"
    else # the bar itself, so that the check above can fail
        grep -q "$esc\[K\[#*" "$scratch/bar-$term.txt" ||
            fail "quantize with TERM=xterm: no bar: $(od -c "$scratch/bar-$term.txt" | head -3)"
    fi
done
# P-8.8: an invalid UTF-8 prompt was echoed raw; refused now, as chat refuses it
expect_error "run -p invalid UTF-8" "-p: the prompt is not valid UTF-8" "$vkllm" run -p $'\xff\xfe' -n 1
# P-8.1: an empty stop string was accepted and never acted
expect_error "run --stop ''" "--stop: an empty stop string can never act" "$vkllm" run --stop '' -n 1
expect_error "chat --stop ''" "--stop: an empty stop string can never act" "$vkllm" chat --stop '' </dev/null
# P-4.3: a prompt as long as the context said it "holds 5"
expect_error "run -c 5 with a 5-token prompt" "the prompt is 5 tokens, so the context needs at least 6" \
    "$vkllm" run -c 5 -p "Once upon a time" -n 1
# P-8.6: the first token comes from the prompt's logits: n tokens are n-1 decodes
for n in 1 3; do
    checks=$((checks + 1))
    t "$vkllm" run -p Once -n $n --temp 0 --ignore-eos >/dev/null 2>"$scratch/stderr"
    grep -q "generated $n tokens, $((n - 1)) decodes in" "$scratch/stderr" ||
        fail "run -n $n: the speed line does not count $((n - 1)) decodes: $(tail -1 "$scratch/stderr")"
done

echo "$checks checks, $failures failures"
[ $failures = 0 ]
