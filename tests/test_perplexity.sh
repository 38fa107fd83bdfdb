#!/usr/bin/env bash
# test_perplexity.sh: `vkllm perplexity` and `vkllm bench` as a user runs them.
#   test_perplexity.sh VKLLM DATA_DIR GOLDEN_DIR SCRATCH_DIR
# 1. perplexity of the bundled stories260K on tests/data/perplexity-stories.txt
#    with 128-token windows agrees with llama.cpp's (tests/golden/
#    perplexity-stories260K.tsv) within 0.5%, over the same number of windows;
#    so does the running value after 3 windows decoded in batches of 32.
#    --chunks tokenizes only the prefix it needs, with the whole text's windows.
# 2. Bad input (missing, empty or too short text, bad flags) gives one line
#    starting with "error: " and a non-zero exit ("vkllm: " progress lines
#    before it are allowed).
# 3. bench -o json is a JSON array with llama-bench's field names and positive
#    speeds; bench -o md has a table row for each test. No timing thresholds.
# 4. bench --depth (-d, a comma list): n_depth in JSON and CSV, "@ dN" in md,
#    the depth kept between runs; decode rows' achieved GB/s, --bandwidth's
#    positive copy figure and share; time to first token; -o csv with
#    llama-bench's columns; a bad -d value is one error line.
set -u
vkllm=$1 data=$2 golden=$3 scratch=$4
mkdir -p "$scratch"
failures=0 checks=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

model=$data/stories260K.gguf
text=$data/perplexity-stories.txt
# A value from the golden file: "KEY<tab>VALUE" lines, '#' comments.
want() { awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$golden/perplexity-stories260K.tsv"; }
# Is GOT within REL (relative) of WANT?
close_to() { awk -v g="$1" -v w="$2" -v r="$3" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(d <= r * w) }'; }

# ---- 1. perplexity agrees with llama.cpp's
checks=$((checks + 1))
out=$("$vkllm" perplexity -m "$model" -f "$text" -c "$(want ctx)" 2>"$scratch/ppl.stderr")
status=$?
if [ $status != 0 ]; then
    fail "perplexity exited with $status: $(cat "$scratch/ppl.stderr")"
elif ! [[ $out =~ ^perplexity:\ ([0-9.]+)\ \+/-\ ([0-9.]+)$ ]]; then
    fail "perplexity printed '$out', not 'perplexity: P +/- E'"
else
    ppl=${BASH_REMATCH[1]} err=${BASH_REMATCH[2]}
    close_to "$ppl" "$(want ppl)" 0.005 || fail "perplexity $ppl, llama.cpp $(want ppl) (more than 0.5% apart)"
    # the +/- is a function of the same per-token figures: it agrees as closely
    close_to "$err" "$(want ppl_stderr)" 0.02 ||
        fail "uncertainty $err, llama.cpp $(want ppl_stderr) (more than 2% apart)"
    windows=$(grep -o '\[[0-9]*\][0-9.]*,' "$scratch/ppl.stderr" | wc -l)
    [ "$windows" = "$(want windows)" ] ||
        fail "perplexity scored $windows windows, llama.cpp $(want windows)"
fi

# several decode calls per window, and --chunks
checks=$((checks + 1))
out=$("$vkllm" perplexity -m "$model" -f "$text" -c "$(want ctx)" -b 32 --chunks 3 2>"$scratch/ppl3.stderr")
status=$?
if [ $status != 0 ]; then
    fail "perplexity -b 32 --chunks 3 exited with $status: $(cat "$scratch/ppl3.stderr")"
else
    ppl=$(echo "$out" | awk '{ print $2 }')
    close_to "$ppl" "$(want ppl_3)" 0.005 ||
        fail "perplexity -b 32 --chunks 3 gave $ppl, llama.cpp $(want ppl_3)"
    windows=$(grep -o '\[[0-9]*\][0-9.]*,' "$scratch/ppl3.stderr" | wc -l)
    [ "$windows" = 3 ] || fail "--chunks 3 scored $windows windows"
fi

# --chunks tokenizes only a prefix of a long text (it tokenized all of it: a
# 100 MB text took minutes and gigabytes for two windows), and the windows it
# scores are those of the whole text: here the text repeated 200 times (550
# KB) against the text alone, which is tokenized whole
checks=$((checks + 1))
for i in $(seq 200); do cat "$text"; done >"$scratch/long.txt"
"$vkllm" perplexity -m "$model" -f "$text" -c 16 --chunks 5 2>"$scratch/short5.stderr" >/dev/null
"$vkllm" perplexity -m "$model" -f "$scratch/long.txt" -c 16 --chunks 5 2>"$scratch/long5.stderr" >/dev/null
short5=$(grep -o '^\[1\].*' "$scratch/short5.stderr")
long5=$(grep -o '^\[1\].*' "$scratch/long5.stderr")
[ -n "$short5" ] && [ "$short5" = "$long5" ] ||
    fail "--chunks 5 of the long text gave '$long5', of the text alone '$short5'"
checks=$((checks + 1))
grep -q ": the first 80 tokens, 5 windows of 16" "$scratch/long5.stderr" ||
    fail "--chunks 5 did not tokenize a prefix only: $(grep windows "$scratch/long5.stderr")"

# 17 MB on one line, with a newline only near its end: the prefix was cut at
# that newline, almost the whole text (probe round 4, R-5; over 16 MiB a
# "tokenizing N MiB" line says so)
checks=$((checks + 1))
for i in $(seq 32); do tr '\n' ' ' <"$scratch/long.txt"; done >"$scratch/one-line.txt"
printf '\nThe end.\n' >>"$scratch/one-line.txt"
"$vkllm" perplexity -m "$model" -f "$scratch/one-line.txt" -c 16 --chunks 5 2>"$scratch/one5.stderr" >/dev/null
grep -q ": the first 80 tokens, 5 windows of 16" "$scratch/one5.stderr" &&
    ! grep -q "tokenizing" "$scratch/one5.stderr" ||
    fail "--chunks 5 of a one-line text did not tokenize a prefix only: $(grep -e windows -e tokenizing "$scratch/one5.stderr")"

# ---- 2. bad input: one error line, non-zero exit
expect_error() { # WHAT PATTERN COMMAND...
    local what=$1 pattern=$2
    shift 2
    checks=$((checks + 1))
    "$@" >"$scratch/stdout" 2>"$scratch/stderr"
    local status=$?
    if [ $status = 0 ] || [ $status -ge 128 ]; then
        fail "$what: exit status $status"
    elif [ "$(grep -vc '^vkllm: ' "$scratch/stderr")" != 1 ] ||
        ! grep -q "^error: .*$pattern" "$scratch/stderr"; then
        fail "$what: expected one line 'error: ...$pattern...', got: $(cat "$scratch/stderr")"
    fi
}
: >"$scratch/empty.txt"
printf '\n' >"$scratch/newline.txt"
printf 'Once upon a time, there was a cat.\n' >"$scratch/short.txt"
expect_error "missing text file" "nope.txt: cannot open" \
    "$vkllm" perplexity -m "$model" -f "$scratch/nope.txt"
expect_error "empty text" "empty.txt: the text is empty" \
    "$vkllm" perplexity -m "$model" -f "$scratch/empty.txt"
expect_error "only a newline" "newline.txt: the text is empty" \
    "$vkllm" perplexity -m "$model" -f "$scratch/newline.txt"
expect_error "text shorter than a window" "short.txt: the text is .* tokens, shorter than one window" \
    "$vkllm" perplexity -m "$model" -f "$scratch/short.txt" -c 128
expect_error "a directory as text" "cannot read" "$vkllm" perplexity -m "$model" -f "$scratch"
expect_error "no text" "needs -f" "$vkllm" perplexity -m "$model"
expect_error "bad model" "nope.gguf" "$vkllm" perplexity -m "$scratch/nope.gguf" -f "$text"
expect_error "perplexity unknown flag" "--frobnicate" "$vkllm" perplexity -f "$text" --frobnicate
expect_error "perplexity bad number" "-c" "$vkllm" perplexity -f "$text" -c lots
expect_error "perplexity window too small" "-c" "$vkllm" perplexity -f "$text" -c 2
expect_error "perplexity missing value" "-f" "$vkllm" perplexity -f
expect_error "bench unknown flag" "--frobnicate" "$vkllm" bench --frobnicate
expect_error "bench bad format" "xml" "$vkllm" bench -o xml
expect_error "bench nothing to do" "both 0" "$vkllm" bench -p 0 -n 0
expect_error "bench bad model" "nope.gguf" "$vkllm" bench -m "$scratch/nope.gguf" -p 4 -n 0 -r 1

# ---- 3. bench output that llama-bench's readers accept
checks=$((checks + 1))
if ! "$vkllm" bench -m "$model" -p 16 -n 4 -r 2 -o json >"$scratch/bench.json" 2>"$scratch/bench.stderr"; then
    fail "bench -o json failed: $(cat "$scratch/bench.stderr")"
else
    python3 - "$scratch/bench.json" <<'EOF' || fail "bench -o json: $(cat "$scratch/bench.json")"
import json, sys
tests = json.load(open(sys.argv[1]))
assert isinstance(tests, list) and len(tests) == 2, "want an array of 2 tests"
fields = ["model_filename", "model_type", "model_size", "n_prompt", "n_gen", "avg_ns",
          "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts", "device"]
for t in tests:
    missing = [f for f in fields if f not in t]
    assert not missing, f"missing fields {missing}"
    assert t["avg_ts"] > 0 and t["avg_ns"] > 0 and t["model_size"] > 0, t
    assert len(t["samples_ns"]) == 2 and len(t["samples_ts"]) == 2, t
    assert all(x > 0 for x in t["samples_ts"]), t
assert (tests[0]["n_prompt"], tests[0]["n_gen"]) == (16, 0), tests[0]
assert (tests[1]["n_prompt"], tests[1]["n_gen"]) == (0, 4), tests[1]
EOF
fi
# with -np, samples_ts counts every sequence's tokens, as avg_ts (it
# counted one: its mean was avg_ts / 3)
checks=$((checks + 1))
if ! "$vkllm" bench -m "$model" -p 0 -n 4 -r 2 -np 3 -o json >"$scratch/bench-np.json" 2>"$scratch/bench.stderr"; then
    fail "bench -np 3 -o json failed: $(cat "$scratch/bench.stderr")"
else
    python3 - "$scratch/bench-np.json" <<'EOF' || fail "bench -np 3 -o json: $(cat "$scratch/bench-np.json")"
import json, sys
t = json.load(open(sys.argv[1]))[0]
mean = sum(t["samples_ts"]) / len(t["samples_ts"])
assert t["n_parallel"] == 3 and abs(mean - t["avg_ts"]) < 1e-3 * t["avg_ts"], t
EOF
fi
checks=$((checks + 1))
if ! "$vkllm" bench -m "$model" -p 16 -n 4 -r 2 -o md >"$scratch/bench.md" 2>"$scratch/bench.stderr"; then
    fail "bench -o md failed: $(cat "$scratch/bench.stderr")"
else
    grep -q '^| model  *| *size | *params | backend  *| *test | *t/s | *GB/s |$' "$scratch/bench.md" ||
        fail "bench -o md: no header row: $(cat "$scratch/bench.md")"
    for test in pp16 tg4; do
        grep -Eq "^\| .* \| Vulkan +\| +$test \| +[0-9]+\.[0-9]{2} ± [0-9]+\.[0-9]{2} \|( +[0-9.]* \|)$" \
            "$scratch/bench.md" || fail "bench -o md: no row for $test: $(cat "$scratch/bench.md")"
    done
fi

# ---- 4. depth, bandwidth, time to first token, CSV
expect_error "bench bad depth" "-d" "$vkllm" bench -d lots
expect_error "bench negative depth" "--n-depth" "$vkllm" bench --n-depth -1
expect_error "bench empty depth" "-d" "$vkllm" bench -d 16,
expect_error "bench bad output" "xlsx" "$vkllm" bench -o xlsx
checks=$((checks + 1))
if ! "$vkllm" bench -m "$model" -p 16 -n 4 -r 2 -d 64 -o json >"$scratch/depth.json" 2>"$scratch/bench.stderr"; then
    fail "bench -d 64 -o json failed: $(cat "$scratch/bench.stderr")"
elif ! python3 -m json.tool "$scratch/depth.json" >/dev/null; then
    fail "bench -d 64 -o json is not JSON: $(cat "$scratch/depth.json")"
else
    python3 - "$scratch/depth.json" <<'EOF' || fail "bench -d 64 -o json: $(cat "$scratch/depth.json")"
import json, sys
tests = json.load(open(sys.argv[1]))
assert len(tests) == 2, "want 2 tests"
llama_bench = ["gpu_info", "backends", "model_filename", "model_type", "model_size",
               "model_n_params", "n_batch", "n_ubatch", "n_prompt", "n_gen", "n_depth",
               "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts"]
for t in tests:
    missing = [f for f in llama_bench if f not in t]
    assert not missing, f"missing llama-bench fields {missing}"
    assert t["n_depth"] == 64, t
    assert t["backends"] == "Vulkan" and t["avg_ts"] > 0, t
    assert t["ttft_cold_ms"] > 0 and t["ttft_warm_ms"] > 0, t
    assert t["copy_gbps"] is None and t["copy_share"] is None, "no --bandwidth, yet a figure"
pp, tg = tests
assert (pp["n_prompt"], pp["n_gen"]) == (16, 0) and (tg["n_prompt"], tg["n_gen"]) == (0, 4)
assert pp["avg_gbps"] is None and pp["read_bytes_per_token"] is None, pp
# a decode step reads about every weight (not token_embd's other rows), more at depth
assert tg["read_bytes_per_token"] > 0.5 * tg["model_size"] and tg["avg_gbps"] > 0, tg
EOF
fi
# a list of depths, in llama-bench's order, each test in a context of depth +
# test whose depth is cut back to (or decoded again) for each of the 3 runs
checks=$((checks + 1))
if ! "$vkllm" bench -m "$model" -p 16 -n 4 -r 3 -d 0,64 -o md >"$scratch/depth.md" 2>"$scratch/bench.stderr"; then
    fail "bench -d 0,64 -o md failed: $(cat "$scratch/bench.stderr")"
else
    got=$(grep -Eo '\| +(pp|tg)[0-9]+( @ d[0-9]+)? \|' "$scratch/depth.md" | tr -d '| ' | tr '\n' ' ')
    [ "$got" = "pp16 tg4 pp16@d64 tg4@d64 " ] || fail "bench -d 0,64: tests '$got': $(cat "$scratch/depth.md")"
    grep -Eq '^\| .* \| +tg4 @ d64 \| +[0-9.]+ ± [0-9.]+ \| +[0-9]+\.[0-9]{2} \|$' "$scratch/depth.md" ||
        fail "bench -d 0,64: no GB/s in the tg4 @ d64 row: $(cat "$scratch/depth.md")"
    grep -Eq '^time to first token \([0-9]+-token prompt\): cold [0-9.]+ ms .*, warm [0-9.]+ ms$' \
        "$scratch/depth.md" || fail "bench -o md: no time to first token: $(cat "$scratch/depth.md")"
fi
checks=$((checks + 1))
if ! "$vkllm" bench -m "$model" -p 0 -n 4 -r 1 --bandwidth -o md >"$scratch/bw.md" 2>"$scratch/bench.stderr"; then
    fail "bench --bandwidth failed: $(cat "$scratch/bench.stderr")"
else
    gbps=$(sed -n 's/^copy bandwidth: \([0-9.]*\) GB\/s$/\1/p' "$scratch/bw.md")
    awk -v g="$gbps" 'BEGIN { exit !(g + 0 > 0) }' ||
        fail "bench --bandwidth: no positive copy bandwidth: $(cat "$scratch/bw.md")"
    grep -Eq '^\| .* \| +tg4 \| +[0-9.]+ ± [0-9.]+ \| +[0-9.]+ \| +[0-9.]+% \|$' "$scratch/bw.md" ||
        fail "bench --bandwidth: no share in the tg4 row: $(cat "$scratch/bw.md")"
fi
checks=$((checks + 1))
if ! "$vkllm" bench -m "$model" -p 8 -n 2 -r 1 -d 8 --bandwidth -o csv >"$scratch/bench.csv" 2>"$scratch/bench.stderr"; then
    fail "bench -o csv failed: $(cat "$scratch/bench.stderr")"
else
    python3 - "$scratch/bench.csv" <<'EOF' || fail "bench -o csv: $(cat "$scratch/bench.csv")"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 2, "want 2 rows"
for f in ["gpu_info", "backends", "model_filename", "model_type", "model_size", "model_n_params",
          "n_batch", "n_ubatch", "n_prompt", "n_gen", "n_depth", "test_time", "avg_ns",
          "stddev_ns", "avg_ts", "stddev_ts"]:
    assert all(r.get(f) for r in rows), f"no {f}"
assert [(r["n_prompt"], r["n_gen"], r["n_depth"]) for r in rows] == [("8", "0", "8"), ("0", "2", "8")]
assert rows[0]["avg_gbps"] == "" and float(rows[1]["avg_gbps"]) > 0, rows
assert float(rows[1]["copy_gbps"]) > 0 and float(rows[1]["copy_share"]) > 0, rows
EOF
    # llama-bench quotes every value
    [ "$(grep -cv -e '^gpu_info,' -e '^".*"$' "$scratch/bench.csv")" = 0 ] ||
        fail "bench -o csv: values not quoted as llama-bench's: $(cat "$scratch/bench.csv")"
fi

# -np: tg decodes 3 sequences at once (a session group), t/s counting all;
# the weights are read once a step, so fewer bytes per token than one
# sequence's at the same depth (depth.json above)
expect_error "bench -np 0" "-np" "$vkllm" bench -np 0
checks=$((checks + 1))
if ! "$vkllm" bench -m "$model" -p 8 -n 4 -r 1 -d 64 -np 3 -o json >"$scratch/np.json" 2>"$scratch/bench.stderr"; then
    fail "bench -np 3 -o json failed: $(cat "$scratch/bench.stderr")"
else
    python3 - "$scratch/np.json" "$scratch/depth.json" <<'EOF' || fail "bench -np 3: $(cat "$scratch/np.json")"
import json, sys
pp, tg = json.load(open(sys.argv[1]))
one = json.load(open(sys.argv[2]))[1]
assert pp["n_parallel"] == 1 and tg["n_parallel"] == 3 and tg["n_gen"] == 4, (pp, tg)
assert tg["avg_ts"] > 0 and tg["n_depth"] == 64, tg
assert 0 < tg["read_bytes_per_token"] < one["read_bytes_per_token"], (tg, one)
EOF
fi
checks=$((checks + 1))
"$vkllm" bench -m "$model" -p 0 -n 4 -r 1 -np 2 -d 8 2>/dev/null | grep -Eq '^\| .* \| +tg4 x2 @ d8 \| +[0-9.]+ ± [0-9.]+ \| +[0-9.]+ \|$' ||
    fail "bench -np 2 -o md: no tg4 x2 @ d8 row"

# a bench failing after its first test leaves JSON on stdout all the same
checks=$((checks + 1))
if VKLLM_FAULT=submit:60 "$vkllm" bench -m "$model" -p 8 -n 4 -r 2 -o json >"$scratch/cut.json" 2>"$scratch/bench.stderr"; then
    fail "bench with a lost device exited 0"
elif ! python3 -m json.tool "$scratch/cut.json" >/dev/null; then
    fail "bench -o json failing midway: stdout is not JSON: $(cat "$scratch/cut.json")"
fi

echo "$checks checks, $failures failures" >&2
[ $failures = 0 ]
