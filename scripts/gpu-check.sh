#!/usr/bin/env bash
# gpu-check.sh: one device-tool run on the GPU machine, from the repository's
# root, with .gpu/ (scripts/gpu-pack.sh) and .gl/ carried: the GPU tests, the
# copy bandwidth, generated models, vkllm against llama.cpp's Vulkan backend
# (scripts/compare-llama.sh) and a per-kernel profile of the 8B decode.
#
#   OUT=/tmp/gpuout bash scripts/gpu-check.sh [--small]
#
# $OUT gets gpu-check.log (everything, time-stamped), compare.md (the tables)
# and compare-llama.log (compare-llama.sh's own log, its last 2 MB). Every
# step runs under `timeout`; a failed step is logged ("FAILED: step (rc)") and
# the next one runs. The full run keeps inside GPU_CHECK_BUDGET seconds (480):
# the steps' timeouts shrink to what is left, the comparison's time kept.
# Seen on an H200 (2026-12-04): test_kernels 145 s with validation, its
# fallback run 23 s without, gen_model --fast 6 s for the 8B file; vkllm's
# prefill at depth 4096 (19 s a run) is what makes the 8B comparison long.
# --small: lavapipe-sized (a dry run on a machine without a GPU): test_devices
# and bench_kernels --quick, a 4-layer model, pp64,tg16 once, no time budget.
# GPU_CHECK_TESTS=kernels: of the GPU tests only test_kernels, without the
# validation layer (25 s instead of 6 min, for a run after shader changes
# whose API use an earlier run validated). GPU_CHECK_8B_TESTS: the 8B
# comparison's tests (pp512,tg128,tg128@4096). Before the comparison,
# `vkllm tune` on the 8B file (1.1B with --small) and its decode alternately
# untuned (VKLLM_TUNE=0) and tuned: the tuning's gain; then prompts with the
# cooperative-matrix GEMM (VKLLM_FORCE=coopmat) and without, in turns.
set -uo pipefail

small=0
case ${1:-} in
    --small) small=1 ;;
    '') ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "gpu-check.sh: unknown option '$1' (--small or nothing)" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
OUT=${OUT:-/tmp/gpuout}
mkdir -p "$OUT"
log=$OUT/gpu-check.log cmp=$OUT/compare.md
: >"$log"
: >"$cmp"
t0=$(date +%s)
if [ "$small" = 1 ]; then budget=${GPU_CHECK_BUDGET:-100000}; else budget=${GPU_CHECK_BUDGET:-480}; fi
models=/tmp/gpumodels ccache=/tmp/gpucompare fakebuild=/tmp/gpubuild
failed=()

el() { echo $(($(date +%s) - t0)); }
say() { printf '%s +%ss %s\n' "$(date -u +%T)" "$(el)" "$*" | tee -a "$log"; }
# cap WANT UNTIL: WANT seconds, or fewer so that the step ends by UNTIL (seconds since the start)
cap() {
    local left=$(($2 - $(el)))
    if [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
}
# step NAME SECONDS CMD...: CMD under timeout, its output into the log and its
# last lines (TAIL, 6) on stdout; never aborts the script
step() {
    local name=$1 secs=$2 s rc from
    shift 2
    if [ "$secs" -lt 5 ]; then
        say "SKIPPED: $name (no time left in the ${budget}s budget)"
        failed+=("$name (skipped)")
        return 1
    fi
    say "== $name (timeout ${secs}s): $*"
    s=$(date +%s) from=$(stat -c %s "$log")
    timeout -k 5 "$secs" "$@" >>"$log" 2>&1 </dev/null
    rc=$?
    tail -c +$((from + 1)) "$log" | tail -n "${TAIL:-6}" | cut -c1-300 | sed 's/^/   | /'
    if [ "$rc" = 0 ]; then
        say "ok: $name ($(($(date +%s) - s))s)"
    else
        [ "$rc" = 124 ] || [ "$rc" = 137 ] && say "  (timed out after ${secs}s)"
        say "FAILED: $name ($rc) after $(($(date +%s) - s))s"
        failed+=("$name ($rc)")
    fi
    return "$rc"
}

say "gpu-check.sh $([ "$small" = 1 ] && echo --small || echo full) in $root, OUT=$OUT, budget ${budget}s"

# ---- a. setup
# (no grep -q after a pipe: under pipefail the writer's SIGPIPE reads as a failure)
if ! ldconfig -p 2>/dev/null | grep libvulkan >/dev/null; then
    if ls .gl/*.deb >/dev/null 2>&1; then
        say "no libvulkan: unpacking .gl/*.deb into /"
        for f in .gl/*.deb; do dpkg -x "$f" / >>"$log" 2>&1 || say "FAILED: dpkg -x $f"; done
        ldconfig >>"$log" 2>&1
    else
        say "no libvulkan and no .gl/*.deb: Vulkan will not load"
    fi
fi
say "libvulkan: $(ldconfig -p 2>/dev/null | grep -m1 'libvulkan.so.1 ' | sed 's/.*=> //')"
if [ -f .gpu/pack.tar.xz ]; then
    tar -xJf .gpu/pack.tar.xz -C .gpu 2>>"$log" || say "FAILED: unpacking .gpu/pack.tar.xz"
else
    say "no .gpu/pack.tar.xz (run scripts/gpu-pack.sh here and carry .gpu)"
fi
bin=$root/.gpu/bin
[ -x "$bin/vkllm" ] || { say "no $bin/vkllm: nothing to run"; exit 1; }
export LD_LIBRARY_PATH=$root/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
have_layer=0
if [ -f .gpu/layer/VkLayer_khronos_validation.json ]; then
    export VK_LAYER_PATH=$root/.gpu/layer
    have_layer=1
fi
# the tests' compiled-in paths: /work/main/tests/data and /work/main/build/tests/gen
# (GPU_CHECK_WORK_MAIN: another path, to try this logic where /work/main exists)
wm=${GPU_CHECK_WORK_MAIN:-/work/main}
if [ "$(cd "$wm" 2>/dev/null && pwd -P)" != "$(pwd -P)" ]; then
    if [ -e "$wm" ] || [ -L "$wm" ]; then
        say "$wm exists and is not this checkout: left alone"
    else
        mkdir -p "$(dirname "$wm")" && ln -sfn "$root" "$wm" && say "linked $wm -> $root"
    fi
fi
mkdir -p "$wm/build/tests/gen" 2>>"$log" || say "could not make $wm/build/tests/gen"
export XDG_CACHE_HOME=/tmp/vkcache
mkdir -p "$XDG_CACHE_HOME" "$models" "$ccache" "$fakebuild/app" "$fakebuild/tests"
ln -sfn "$bin/vkllm" "$fakebuild/app/vkllm"
ln -sfn "$bin/gen_model" "$fakebuild/tests/gen_model"

gpu_listed() { "$bin/vkllm" devices 2>/dev/null | grep -E '^[0-9]+: ' | grep -v '(CPU)' >/dev/null; }
if ! gpu_listed; then
    say "vkllm devices lists no GPU: trying the NVIDIA driver's ICD"
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    if gpu_listed; then
        say "the NVIDIA ICD found a GPU"
    else
        say "still no GPU listed (VK_DRIVER_FILES left set only if its file exists)"
        [ -f "$VK_DRIVER_FILES" ] || unset VK_DRIVER_FILES __EGL_VENDOR_LIBRARY_FILENAMES
    fi
fi
{
    echo "--- uname -a"; uname -a
    echo "--- nvidia-smi -L"; command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi -L || echo "(no nvidia-smi)"
    echo "--- python3: $(command -v python3 || echo none)"
    echo "--- env: LD_LIBRARY_PATH=$LD_LIBRARY_PATH VK_LAYER_PATH=${VK_LAYER_PATH:-} VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
    echo "--- vkllm devices"; timeout 30 "$bin/vkllm" devices 2>&1
    echo "--- vkllm bench --help"; timeout 10 "$bin/vkllm" bench --help 2>&1 | head -20
} >>"$log" 2>&1
say "device: $(timeout 30 "$bin/vkllm" devices 2>/dev/null | grep -m1 -E '^[0-9]+: ' || echo none)"

# the validation layer: on when it loads (a failure that is the layer's
# messages keeps it on: those are what the tests are for)
validate=0
if [ "$have_layer" = 1 ]; then
    probe=$(VKLLM_VALIDATE=1 timeout 60 "$bin/test_devices" 2>&1)
    prc=$?
    echo "--- validation probe (test_devices, VKLLM_VALIDATE=1): rc $prc" >>"$log"
    printf '%s\n' "$probe" | tail -n 20 >>"$log"
    if [ "$prc" = 0 ] || printf '%s\n' "$probe" | grep '^vulkan validation:' >/dev/null; then
        validate=1
    elif VKLLM_VALIDATE=0 timeout 60 "$bin/test_devices" >>"$log" 2>&1; then
        say "the validation layer did not load (probe rc $prc)"
    else
        validate=1 # fails either way: not the layer's doing
    fi
else
    say "no validation layer carried"
fi
say "VKLLM_VALIDATE=$validate for the tests"

# ---- b. the copy bandwidth
step "bench --bandwidth" "$(cap 60 "$budget")" "$bin/vkllm" bench --bandwidth

# ---- d (begun early). models, on the CPU while the GPU tests run
fast=()
if "$bin/gen_model" --help 2>&1 | grep -e --fast >/dev/null; then
    fast=(--fast) kq=Q4_K_M kname=q4_k_m
    say "gen_model: --fast, K-quant files as Q4_K_M"
else
    kq=q4_k kname=q4_k
    say "gen_model has no --fast: K-quant files as q4_k (all Q4_K, no mix), and slow"
fi
# shellcheck disable=SC2034 # read through gen_one's nameref
tl=(--n-vocab 32000 --n-embd 2048 --n-layer 22 --n-head 32 --n-head-kv 4 --n-ff 5632 --n-ctx 8192)
# shellcheck disable=SC2034
l3=(--n-vocab 128256 --n-embd 4096 --n-layer 32 --n-head 32 --n-head-kv 8 --n-ff 14336 --n-ctx 8192 --rope-base 500000)
# shellcheck disable=SC2034
sm=(--n-vocab 32000 --n-embd 256 --n-layer 4 --n-head 8 --n-ff 768)
if [ "$small" = 1 ]; then
    f8b='' f1=$models/small-q4_0.gguf f2=''
    gens=("small-q4_0 Q4_0 sm")
    gen_until=$budget
else
    f8b=$models/llama3-8b-$kname.gguf f1=$models/tinyllama-1.1b-q4_0.gguf f2=$models/tinyllama-1.1b-$kname.gguf
    gens=("llama3-8b-$kname $kq l3" "tinyllama-1.1b-q4_0 Q4_0 tl" "tinyllama-1.1b-$kname $kq tl")
    gen_until=$((budget * 45 / 100)) # by 216 s of 480
fi
gen_one() { # NAME TYPE SHAPE: $models/NAME.gguf; a line in $models/NAME.status
    local name=$1 type=$2 s rc
    s=$(date +%s)
    local -n shape=$3
    local f=$models/$name.gguf
    if [ -s "$f" ]; then
        echo "$name: kept from an earlier run, $(du -h "$f" | cut -f1)" >"$models/$name.status"
        return
    fi
    local secs
    secs=$(cap 600 "$gen_until")
    if [ "$secs" -lt 5 ]; then
        echo "$name: FAILED (no time left)" >"$models/$name.status"
        return
    fi
    timeout -k 5 "$secs" "$bin/gen_model" -o "$f.part" "${fast[@]}" --type "$type" "${shape[@]}" \
        >"$models/$name.log" 2>&1
    rc=$?
    if [ "$rc" = 0 ] && mv "$f.part" "$f"; then
        echo "$name: ok, $(du -h "$f" | cut -f1) ($(stat -c %s "$f") bytes) in $(($(date +%s) - s))s" >"$models/$name.status"
    else
        rm -f "$f.part"
        echo "$name: FAILED ($rc) after $(($(date +%s) - s))s: $(tail -n 3 "$models/$name.log" | tr '\n' ' ')" >"$models/$name.status"
    fi
}
gen_pids=()
for g in "${gens[@]}"; do
    read -r gname gtype gshape <<<"$g"
    rm -f "$models/$gname.status"
    gen_one "$gname" "$gtype" "$gshape" &
    gen_pids+=($!)
    say "gen_model $gname ($gtype) started in the background"
done

# ---- c. GPU tests
testenv=(env "VKLLM_VALIDATE=$validate" SOURCE_DATE_EPOCH=1768435200 XDG_CACHE_HOME=/tmp/vkcache
    VKLLM_TUNE=manual MESA_SHADER_CACHE_DIR=/tmp/vkcache/mesa_shader_cache)
tests_until=$((budget * 45 / 100)) # by 216 s of 480
if [ "$small" = 1 ]; then
    step test_devices "$(cap 150 "$tests_until")" "${testenv[@]}" "$bin/test_devices"
    step bench_kernels_quick "$(cap 300 "$tests_until")" "${testenv[@]}" "$bin/bench_kernels" --quick --formats Q4_0,Q4_K
elif [ "${GPU_CHECK_TESTS:-all}" = kernels ]; then
    step test_kernels_coop "$(cap 60 "$tests_until")" "${testenv[@]}" VKLLM_FORCE=coopmat "$bin/test_kernels" --coop
    step test_kernels "$(cap 150 "$tests_until")" "${testenv[@]}" VKLLM_VALIDATE=0 "$bin/test_kernels"
else
    # the cooperative-matrix GEMM on matrix units (VK_NV_cooperative_matrix):
    # its first run on a GPU decides whether it may be on by default
    step test_kernels_coop "$(cap 60 "$tests_until")" "${testenv[@]}" VKLLM_FORCE=coopmat "$bin/test_kernels" --coop
    step test_kernels "$(cap 150 "$tests_until")" "${testenv[@]}" "$bin/test_kernels"
    step test_kernels_kv_q8 "$(cap 150 "$tests_until")" "${testenv[@]}" "$bin/test_kernels" --kv-q8
    # without the layer: the run above validated the same shaders (7x faster)
    step test_kernels_fallback "$(cap 150 "$tests_until")" "${testenv[@]}" VKLLM_VALIDATE=0 VKLLM_FORCE=shared-reduce,no-gemm "$bin/test_kernels"
    TAIL=30 step bench_kernels_quick "$(cap 150 "$tests_until")" "${testenv[@]}" "$bin/bench_kernels" --quick --formats Q4_0,Q4_K
    step test_bandwidth "$(cap 150 "$tests_until")" "${testenv[@]}" "$bin/test_bandwidth"
    step test_devices "$(cap 150 "$tests_until")" "${testenv[@]}" "$bin/test_devices"
fi

# ---- d. the models: their results
say "waiting for gen_model (at most until +${gen_until}s)"
wait "${gen_pids[@]}" 2>/dev/null
for g in "${gens[@]}"; do
    read -r gname _ <<<"$g"
    st=$(cat "$models/$gname.status" 2>/dev/null || echo "$gname: no status")
    say "model $st"
    case $st in *FAILED* | *"no status"*) failed+=("gen_model $gname") ;; esac
    cat "$models/$gname.log" >>"$log" 2>/dev/null
done

# ---- e0. tuning: vkllm tune, then the decode untuned and tuned in turns
tf=$f8b
have() { [ -n "$1" ] && [ -s "$1" ]; }
have "$tf" || tf=$f1
if have "$tf"; then
    TAIL=12 step "tune $(basename "$tf")" "$(cap 60 $((budget - 200)))" "$bin/vkllm" tune -m "$tf" -r 5
    tune_gain() {
        local i
        for i in 1 2; do
            echo "-- untuned"; VKLLM_TUNE=0 "$bin/vkllm" bench -m "$1" -p 0 -n "$2" -r 3 | grep '| *tg'
            echo "-- tuned"; VKLLM_TUNE=manual "$bin/vkllm" bench -m "$1" -p 0 -n "$2" -r 3 | grep '| *tg'
        done
    }
    export -f tune_gain
    export bin
    gn=128
    [ "$small" = 0 ] || gn=16
    TAIL=12 step "tune gain $(basename "$tf")" "$(cap 90 $((budget - 180)))" bash -c 'tune_gain "$@"' tune_gain "$tf" "$gn"
else say "SKIPPED: tune (no model)"; failed+=("tune (no model)"); fi

# ---- e0b. the packed int8 dot matvecs (default where accelerated) against
# the other path, in turns: on the Q4_0 file integer products one at a time,
# on the Q4_K_M file float activations
int_dot_gain() {
    local i
    for i in 1 2; do
        echo "-- no-int-dot"; VKLLM_FORCE=no-int-dot "$bin/vkllm" bench -m "$1" -p 0 -n "$2" -r 3 | grep '| *tg'
        echo "-- default"; "$bin/vkllm" bench -m "$1" -p 0 -n "$2" -r 3 | grep '| *tg'
    done
}
export -f int_dot_gain
export bin
for idf in "$f1" "$f2"; do
    have "$idf" || continue
    TAIL=12 step "int-dot gain $(basename "$idf")" "$(cap 45 $((budget - 170)))" bash -c 'int_dot_gain "$@"' int_dot_gain "$idf" 128
done

# ---- e0c. prompts through the cooperative-matrix GEMM (VKLLM_FORCE=coopmat,
# off by default until test_kernels_coop has passed on such a device) against
# the default GEMM, in turns
coop_gain() {
    local i
    for i in 1 2; do
        echo "-- default"; "$bin/vkllm" bench -m "$1" -p 512 -n 0 -r 2 | grep '| *pp'
        echo "-- coopmat"; VKLLM_FORCE=coopmat "$bin/vkllm" bench -m "$1" -p 512 -n 0 -r 2 | grep '| *pp'
    done
}
export -f coop_gain
for cf in "$f8b" "$f2"; do
    have "$cf" || continue
    TAIL=12 step "coopmat gain $(basename "$cf")" "$(cap 60 $((budget - 160)))" bash -c 'coop_gain "$@"' coop_gain "$cf"
done

# ---- e. vkllm against llama.cpp
compare() { # TITLE TESTS REPS FILE...: compare-llama.sh's table appended to compare.md
    local title=$1 tests=$2 reps=$3
    shift 3
    set -o pipefail
    { echo; echo "## $title"; echo; } >>"$cmp"
    bash scripts/compare-llama.sh --build "$fakebuild" --cache "$ccache" --llama-bench --no-cpu \
        -r "$reps" -t "$tests" "$@" | tee -a "$cmp"
}
export -f compare # run by `timeout bash -c`
export cmp fakebuild ccache
if [ "$small" = 1 ]; then
    if have "$f1"; then
        TAIL=8 step "compare small" "$(cap 1800 "$budget")" bash -c 'compare "$@"' compare "small model, lavapipe" pp64,tg16 1 "$f1"
    else failed+=("compare small (no model)"); fi
else
    if have "$f8b"; then
        # at least 95 s kept for the 1.1B files, the profile and the copies
        TAIL=8 step "compare 8B" "$(cap 240 $((budget - 95)))" bash -c 'compare "$@"' compare "Llama-3-8B shape, $kq" "${GPU_CHECK_8B_TESTS:-pp512,tg128,tg128@4096}" 3 "$f8b"
    else say "SKIPPED: compare 8B (no model)"; failed+=("compare 8B (no model)"); fi
    tl_files=()
    have "$f1" && tl_files+=("$f1")
    have "$f2" && tl_files+=("$f2")
    if [ ${#tl_files[@]} -gt 0 ]; then
        TAIL=8 step "compare 1.1B" "$(cap 240 $((budget - 45)))" bash -c 'compare "$@"' compare "TinyLlama-1.1B shape" pp512,tg128,tg128@4096 3 "${tl_files[@]}"
    else say "SKIPPED: compare 1.1B (no model)"; failed+=("compare 1.1B (no model)"); fi
fi

# ---- f. where the decode's GPU time goes
pf=$f8b
[ "$small" = 0 ] || pf=$f1
have "$pf" || pf=$f2
if have "$pf"; then
    TAIL=40 step "profile $(basename "$pf")" "$(cap 60 $((budget - 5)))" \
        "$bin/vkllm" bench -m "$pf" -p 0 -n 32 -r 1 --profile --bandwidth
else say "SKIPPED: profile (no model)"; fi

# ---- g. compare-llama.sh's log
[ -f "$ccache/log" ] && tail -c 2M "$ccache/log" >"$OUT/compare-llama.log"
command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi >>"$log" 2>&1

say "done in $(el)s; $(find "$OUT" -type f | wc -l) files in $OUT"
if [ ${#failed[@]} -gt 0 ]; then
    say "failures: ${failed[*]}"
else
    say "no failures"
fi
echo "---- compare.md"
cat "$cmp"
