#!/usr/bin/env bash
# test_fault_sweep.sh: every device fault a short run can meet ends cleanly.
#   test_fault_sweep.sh VKLLM SCRATCH_DIR [SAMPLE]
# For each kind of VKLLM_FAULT (engine/vk/vk_fault.h) it finds how many calls
# of that kind `vkllm run -n 4 --temp 0 -p Once` makes (the smallest N whose
# run succeeds, found by doubling and halving), then runs it with
# VKLLM_FAULT=KIND:N for every N (SAMPLE 0) or for SAMPLE of them, spread
# evenly, first and last included (neighbouring calls of a kind are mostly the
# same code). Each run must exit with status 1 within its timeout, print
# exactly one "error: " line that names the injected fault, and nothing else
# but "vkllm: " progress lines: no validation message, no AddressSanitizer,
# UBSan or LeakSanitizer report. The runs past the last call must print the
# fault-free text. Bad VKLLM_FAULT and VKLLM_TIMEOUT values are one error line
# too.
set -u
vkllm=$1 scratch=$2 sample=${3:-0}
mkdir -p "$scratch"
failures=0 runs=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
args=(run -n 4 --temp 0 -p "Once")
limit=120 # seconds for one run: a hang is a failure, not a stuck suite

# Lines of FILE other than "vkllm: " progress and "error: " lines.
noise() { grep -v -e '^vkllm: ' -e '^error: ' "$1"; }

want=$(timeout $limit "$vkllm" "${args[@]}" 2>"$scratch/stderr")
status=$?
if [ $status != 0 ] || [ -z "$want" ] || noise "$scratch/stderr" >/dev/null ||
    grep -q '^error: ' "$scratch/stderr"; then
    fail "the run without faults"
    cat "$scratch/stderr" >&2
    exit 1
fi

declare -A done_runs
# Runs with KIND:N; succeeds (status 0) when the run made fewer than N calls
# of KIND, and checks what it printed either way.
run_fault() { # KIND N
    local spec=$1:$2 out status
    runs=$((runs + 1))
    done_runs[$spec]=1
    out=$(VKLLM_FAULT=$spec timeout $limit "$vkllm" "${args[@]}" 2>"$scratch/stderr")
    status=$?
    if noise "$scratch/stderr" >/dev/null; then
        fail "$spec: unexpected output on stderr:"
        noise "$scratch/stderr" | head -20 >&2
    fi
    if [ $status = 0 ]; then
        grep -q '^error: ' "$scratch/stderr" && fail "$spec: an error line, but status 0"
        [ "$out" = "$want" ] || fail "$spec: printed '$out', not '$want'"
        return 0
    fi
    if [ $status = 124 ]; then
        fail "$spec: no exit within $limit s"
    elif [ $status != 1 ]; then
        fail "$spec: exit status $status, not 1"
    fi
    local n_errors
    n_errors=$(grep -c '^error: ' "$scratch/stderr")
    if [ "$n_errors" != 1 ]; then
        fail "$spec: $n_errors error lines, not one"
    elif ! grep -q "^error: .*injected by VKLLM_FAULT=$spec\b" "$scratch/stderr"; then
        fail "$spec: the error does not name the fault: $(grep '^error: ' "$scratch/stderr")"
    fi
    return 1
}

total=0
for kind in device alloc map pipeline object submit wait timeout; do
    # the calls of KIND: the last N that fails; N = 1, 2, 4... until a run
    # succeeds, then halving the gap
    hi=1
    while ! run_fault $kind $hi; do
        hi=$((hi * 2))
        [ $hi -le 4096 ] || break
    done
    if [ $hi -gt 4096 ]; then
        fail "$kind: still failing at N=4096"
        continue
    fi
    lo=$((hi / 2))
    while [ $((hi - lo)) -gt 1 ]; do
        mid=$(((lo + hi) / 2))
        if run_fault $kind $mid; then hi=$mid; else lo=$mid; fi
    done
    count=$lo
    if [ "$count" = 0 ]; then
        fail "$kind: the run makes no such call"
        continue
    fi
    total=$((total + count))
    if [ "$sample" = 0 ] || [ "$count" -le "$sample" ]; then
        picks=$(seq 1 "$count")
    else
        picks=$(for ((i = 0; i < sample; i++)); do echo $((1 + i * (count - 1) / (sample - 1))); done)
    fi
    for n in $picks; do
        [ -n "${done_runs[$kind:$n]:-}" ] && continue
        run_fault $kind "$n" && fail "$kind:$n: succeeded, but the run makes $count such calls"
    done
    echo "$kind: $count calls"
done

# bad values: one error line naming the variable
for bad in "VKLLM_FAULT=alloc" "VKLLM_FAULT=alloc:0" "VKLLM_FAULT=submit:1,nothing:2" \
    "VKLLM_TIMEOUT=soon" "VKLLM_TIMEOUT=0"; do
    env "$bad" timeout $limit "$vkllm" "${args[@]}" >/dev/null 2>"$scratch/stderr"
    status=$?
    name=${bad%%=*}
    if [ $status != 1 ] || [ "$(grep -c "^error: $name: " "$scratch/stderr")" != 1 ] ||
        noise "$scratch/stderr" >/dev/null; then
        fail "$bad: status $status, stderr: $(head -3 "$scratch/stderr")"
    fi
done

echo "$runs runs over $total calls that can fail, $failures failures"
[ $failures = 0 ]
