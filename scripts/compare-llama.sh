#!/usr/bin/env bash
# compare-llama.sh: vkllm against llama.cpp on the same files and device, as
# docs/PERFORMANCE.md's comparison table: pp, tg and tg at depth, the median
# of -r runs each, the runs of vkllm, llama.cpp's Vulkan backend and its CPU
# backend alternating (a disturbance on a shared machine meets all three).
#
# llama.cpp runs through ../shared/oracle (node; its bench has no depth) or,
# where that is missing (the GPU machine) or --llama-bench is given, through
# llama-bench from ../shared/llama-vulkan (unpacked into the cache directory).
# The default files are generated with the repository's tools (tests/gen_model,
# vkllm quantize) into the cache directory, once.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/compare-llama.sh [options] [FILE.gguf | NAME]...

Files: paths, or the names of the generated ones (default: all of them):
  tl-q4_0 tl-q4_k_m tl-q8_0  TinyLlama 1.1B's dimensions, random weights (from F16)
  small-q4_0                 4 layers, 256 wide, 32k vocabulary, Q4_0
  stories260K                ../shared/models/stories260K.gguf

  -r N               runs of each test per program, medians taken (default 3)
  -t, --tests LIST   pp512,tg128,tg128@4096 (default): ppN, tgN, tgN@DEPTH
  --quick            small-q4_0 and stories260K, pp64,tg16, 1 run: a smoke test
  --build DIR        vkllm's build directory (default: build)
  --cache DIR        generated files and tools (default: $XDG_CACHE_HOME/vkllm-compare)
  --llama-bench [P]  llama.cpp through llama-bench (P: its path; default: unpacked
                     from ../shared/llama-vulkan or .bench/) instead of the oracle
  --cpu-threads N    the CPU backend's threads (default 1, the oracle's advice for tg)
  --no-cpu           leave llama.cpp's CPU backend out
  --untuned          vkllm with its defaults (VKLLM_TUNE=0), not `vkllm tune`d first
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
shared=${VKLLM_SHARED:-$root/../shared}
build=$root/build
cache=${XDG_CACHE_HOME:-$HOME/.cache}/vkllm-compare
reps=3 tests=pp512,tg128,tg128@4096 quick=0 cpu=1 cpu_threads=1 tune=1
bench_bin='' use_bench=0
files=()
die() { echo "error: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        -r) [ $# -ge 2 ] || die "-r needs a number"; reps=$2; shift ;;
        -t | --tests) [ $# -ge 2 ] || die "$1 needs a list"; tests=$2; shift ;;
        --quick) quick=1 ;;
        --build) [ $# -ge 2 ] || die "--build needs a directory"; build=$2; shift ;;
        --cache) [ $# -ge 2 ] || die "--cache needs a directory"; cache=$2; shift ;;
        --llama-bench)
            use_bench=1
            if [ $# -ge 2 ] && [ -x "$2" ] && [ -f "$2" ]; then bench_bin=$2; shift; fi ;;
        --cpu-threads) [ $# -ge 2 ] || die "--cpu-threads needs a number"; cpu_threads=$2; shift ;;
        --no-cpu) cpu=0 ;;
        --untuned) tune=0; export VKLLM_TUNE=0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) files+=("$1") ;;
    esac
    shift
done
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "-r: '$reps' is not a positive whole number"
[[ $cpu_threads =~ ^[1-9][0-9]*$ ]] || die "--cpu-threads: '$cpu_threads' is not a positive whole number"
if [ "$quick" = 1 ]; then
    reps=1 tests=pp64,tg16
    [ ${#files[@]} -gt 0 ] || files=(small-q4_0 stories260K)
fi
[ ${#files[@]} -gt 0 ] || files=(tl-q4_0 tl-q4_k_m tl-q8_0 small-q4_0 stories260K)
IFS=, read -r -a test_list <<<"$tests"
for t in "${test_list[@]}"; do
    [[ $t =~ ^(pp|tg)[1-9][0-9]*(@[0-9]+)?$ ]] || die "--tests: '$t' is not ppN, tgN or tgN@DEPTH"
done
vkllm=$build/app/vkllm gen_model=$build/tests/gen_model
{ [ -x "$vkllm" ] && [ -x "$gen_model" ]; } || die "$build: no vkllm or tests/gen_model (build first, or --build DIR)"
command -v python3 >/dev/null || die "python3 is needed to read the programs' JSON"
mkdir -p "$cache"

# ---- llama.cpp: the oracle, else llama-bench
oracle=$shared/oracle/oracle.mjs
if [ "$use_bench" = 0 ] && ! { command -v node >/dev/null && [ -d "$shared/oracle/node_modules" ]; }; then
    use_bench=1
fi
if [ "$use_bench" = 1 ] && [ -z "$bench_bin" ]; then
    bench_bin=$cache/llama-vulkan/llama-bench
    if [ ! -x "$bench_bin" ]; then
        tarball=$(find "$shared/llama-vulkan" "$root/.bench" "$root/.gpu" -maxdepth 1 -name 'llama-vulkan-*.tar.xz' 2>/dev/null | head -1 || true)
        [ -n "$tarball" ] || die "no llama.cpp: neither the oracle (node, and npm install in $shared/oracle) nor a llama-vulkan archive"
        tar -xJf "$tarball" -C "$cache"
    fi
fi
if [ "$use_bench" = 1 ]; then llama_how="llama-bench ($bench_bin)"; else llama_how="the oracle ($oracle)"; fi

# ---- the files
gen_tl_f16() { # TinyLlama 1.1B's dimensions, as docs/PERFORMANCE.md made /work/fa-models
    [ -e "$cache/tl-f16.gguf" ] && return
    echo "generating $cache/tl-f16.gguf" >&2
    "$gen_model" -o "$cache/tl-f16.gguf.part" --type f16 --n-vocab 32000 --n-embd 2048 --n-layer 22 \
        --n-head 32 --n-head-kv 4 --n-ff 5632 --n-ctx 2048 >&2
    mv "$cache/tl-f16.gguf.part" "$cache/tl-f16.gguf"
}
file_of() { # NAME or PATH -> a path, made if it is a generated one
    local name=$1 out=$cache/$1.gguf
    case $name in
        tl-q4_0 | tl-q4_k_m | tl-q8_0)
            if [ ! -e "$out" ]; then
                gen_tl_f16
                local type=${name#tl-}
                echo "quantizing $out" >&2
                "$vkllm" quantize "$cache/tl-f16.gguf" "$out" "${type^^}" >&2
            fi ;;
        small-q4_0)
            if [ ! -e "$out" ]; then
                echo "generating $out" >&2
                "$gen_model" -o "$out.part" --type q4_0 --n-vocab 32000 --n-embd 256 --n-layer 4 \
                    --n-head 8 --n-ff 768 >&2
                mv "$out.part" "$out"
            fi ;;
        stories260K)
            out=$shared/models/stories260K.gguf
            [ -e "$out" ] || out=$root/tests/data/stories260K.gguf ;;
        *)
            out=$name
            [ -f "$out" ] || die "$name: no such file, nor a generated file's name" ;;
    esac
    echo "$out"
}

# ---- one run of one test: tokens/s on stdout, "" when the program cannot
median_of() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:] if x]; print("%.2f" % statistics.median(v) if v else "")' "$@"; }
run_vkllm() { # FILE KIND N DEPTH
    local p=0 n=0
    if [ "$2" = pp ]; then p=$3; else n=$3; fi
    "$vkllm" bench -m "$1" -p "$p" -n "$n" -d "$4" -r 1 -o json 2>>"$cache/log" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0]["avg_ts"] if r else "")'
}
run_llama() { # FILE KIND N DEPTH vulkan|cpu
    local p=0 n=0
    if [ "$2" = pp ]; then p=$3; else n=$3; fi
    if [ "$use_bench" = 1 ]; then
        # flash attention off and on, the faster kept (it changes llama.cpp's figures a lot)
        local args=(-m "$1" -p "$p" -n "$n" -d "$4" -r 1 -fa "0,1" -o json)
        if [ "$5" = vulkan ]; then
            GGML_VK_VISIBLE_DEVICES=0 "$bench_bin" "${args[@]}" -t 1 2>>"$cache/log"
        else
            "$bench_bin" "${args[@]}" -ngl 0 -t "$cpu_threads" 2>>"$cache/log"
        fi | python3 -c 'import json,sys; r=json.load(sys.stdin); print(max(x["avg_ts"] for x in r) if r else "")'
    else
        [ "$4" = 0 ] || { echo ""; return; } # the oracle's bench starts from an empty context
        local gpu=(--gpu false --threads "$cpu_threads")
        [ "$5" = cpu ] || gpu=(--gpu vulkan --vk-device 0)
        # tps_llama: llama.cpp's own timer, as llama-bench's (without node's
        # dispatch, which on lavapipe's tiny models is most of tps_wall)
        node "$oracle" bench --model "$1" "${gpu[@]}" --pp "$p" --tg "$n" --reps 1 --compact 2>>"$cache/log" |
            python3 -c 'import json,sys; r=json.load(sys.stdin)["results"]; v=next(iter(x for x in r.values() if x)); print(v["tps_llama_median"] or v["tps_wall_median"])'
    fi
}
ratio() { python3 -c 'import sys; a,b=sys.argv[1:]; print("%.2fx" % (float(a)/float(b)) if a and b and float(b) > 0 else "n/a")' "$1" "$2"; }

# ---- the table
programs=(vkllm vulkan)
[ "$cpu" = 0 ] || programs+=(cpu)
echo "vkllm: $vkllm; llama.cpp: $llama_how; device: $("$vkllm" devices 2>/dev/null | grep -m1 '\[default\]' || true)" >&2
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $reps run(s) each, medians; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
if [ "$cpu" = 1 ]; then
    echo "| file | test | vkllm t/s | llama.cpp Vulkan t/s | llama.cpp CPU t/s | vkllm / Vulkan | vkllm / CPU |"
    echo "|---|---|---|---|---|---|---|"
else
    echo "| file | test | vkllm t/s | llama.cpp Vulkan t/s | vkllm / Vulkan |"
    echo "|---|---|---|---|---|"
fi
for f in "${files[@]}"; do
    path=$(file_of "$f")
    # every shape tuned first, as a user's later runs find it (a first run
    # tunes only what about 3 s allow)
    [ "$tune" = 0 ] || "$vkllm" tune -m "$path" -r 3 >>"$cache/log" 2>&1 || die "vkllm tune -m $path failed (see $cache/log)"
    for t in "${test_list[@]}"; do
        kind=${t:0:2} rest=${t:2}
        n=${rest%@*} depth=0
        [ "$rest" = "$n" ] || depth=${rest#*@}
        declare -A got=([vkllm]="" [vulkan]="" [cpu]="")
        for ((r = 0; r < reps; r++)); do
            # each repetition in another order: none always runs first
            for ((i = 0; i < ${#programs[@]}; i++)); do
                prog=${programs[$(((i + r) % ${#programs[@]}))]}
                if [ "$prog" = vkllm ]; then v=$(run_vkllm "$path" "$kind" "$n" "$depth" || true)
                else v=$(run_llama "$path" "$kind" "$n" "$depth" "$prog" || true); fi
                got[$prog]+=" $v"
            done
        done
        # shellcheck disable=SC2086 # the samples are words
        vk=$(median_of ${got[vkllm]}) lv=$(median_of ${got[vulkan]}) lc=$(median_of ${got[cpu]})
        note=""
        [ "$depth" = 0 ] || [ "$use_bench" = 1 ] || note=" (oracle: no depth)"
        name=$(basename "$path" .gguf)
        if [ "$cpu" = 1 ]; then
            echo "| $name | $t | ${vk:-failed} | ${lv:-n/a}$note | ${lc:-n/a}$note | $(ratio "$vk" "$lv") | $(ratio "$vk" "$lc") |"
        else
            echo "| $name | $t | ${vk:-failed} | ${lv:-n/a}$note | $(ratio "$vk" "$lv") |"
        fi
    done
done
