#!/usr/bin/env bash
# gpu-pack.sh: what a device (GPU machine) run needs beside the repository,
# packed here into the git-ignored folders .gpu/ and .gl/ for the device
# tool's `carry` (see scripts/gpu-check.sh, which runs there):
#   .gpu/pack.tar.xz   bin/ (vkllm and the GPU tests), lib/ (their shared
#                      libraries but glibc's), layer/ (the Khronos validation
#                      layer, with a manifest that points beside itself)
#   .gpu/llama-vulkan-*.tar.xz  llama.cpp's llama-bench (from ../shared)
#   .gl/*.deb          the Vulkan loader and GL/EGL libraries (the device
#                      image has none), as the device tool's README says
# Usage: scripts/gpu-pack.sh [--build DIR] [--no-layer]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build layer=1
while [ $# -gt 0 ]; do
    case $1 in
        --build) build=$2; shift ;;
        --no-layer) layer=0 ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "gpu-pack.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done
cd "$root"
limit=$((64 * 1024 * 1024))

# ---- ignored folders
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
touch "$exclude"
for p in /.gpu/ /.gl/; do grep -qxF "$p" "$exclude" || echo "$p" >>"$exclude"; done

# ---- the pack
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$stage/layer"
bins=()
for b in app/vkllm tests/gen_model tests/test_kernels tests/bench_kernels tests/test_bandwidth tests/test_devices; do
    if [ -x "$build/$b" ]; then
        cp -L "$build/$b" "$stage/bin/"
        bins+=("$build/$b")
    else
        echo "gpu-pack: no $build/$b (left out)" >&2
    fi
done
[ ${#bins[@]} -gt 0 ] || { echo "gpu-pack: no binaries in $build (build first)" >&2; exit 1; }
# shared libraries the binaries need, but glibc's own (the device has its own glibc)
ldd "${bins[@]}" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
    while read -r soname path; do
        case $soname in
            libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | ld-linux* | linux-vdso* | \
                libresolv.so.* | libutil.so.* | libmvec.so.*) continue ;;
        esac
        cp -L "$path" "$stage/lib/$soname"
    done
if [ -x "$stage/bin/gen_model" ] && ! "$stage/bin/gen_model" --help 2>&1 | grep -e --fast >/dev/null; then
    echo "gpu-pack: warning: this gen_model has no --fast: the 8B file will not be made in time there" >&2
fi
echo "gpu-pack: libraries: $(cd "$stage/lib" && echo *)"
# the validation layer, its manifest pointing at the library beside it
vl=/usr/lib/x86_64-linux-gnu/libVkLayer_khronos_validation.so
vj=/usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json
if [ "$layer" = 1 ] && [ -f "$vl" ] && [ -f "$vj" ]; then
    cp -L "$vl" "$stage/layer/"
    sed 's|"library_path": *"[^"]*"|"library_path": "./libVkLayer_khronos_validation.so"|' "$vj" \
        >"$stage/layer/VkLayer_khronos_validation.json"
    grep -q '"library_path": "./libVkLayer_khronos_validation.so"' "$stage/layer/VkLayer_khronos_validation.json" ||
        { echo "gpu-pack: could not rewrite the layer manifest's library_path" >&2; exit 1; }
else
    echo "gpu-pack: validation layer left out" >&2
    rmdir "$stage/layer"
fi
mkdir -p .gpu
# what gpu-check.sh unpacked here before would travel too
rm -rf .gpu/pack.tar.xz .gpu/bin .gpu/lib .gpu/layer
tar -C "$stage" -cf - . | xz -6 -T0 >.gpu/pack.tar.xz
echo "gpu-pack: unpacked sizes:"
du -sh "$stage"/* | sed 's|'"$stage"'/|  |'
[ -d "$stage/layer" ] && du -h "$stage/layer/libVkLayer_khronos_validation.so" | sed 's|'"$stage"'/|  |'
echo "gpu-pack: .gpu/pack.tar.xz $(du -h .gpu/pack.tar.xz | cut -f1)"

# ---- llama.cpp's llama-bench
shared=${VKLLM_SHARED:-$root/../shared}
llama=$(find "$shared/llama-vulkan" -maxdepth 1 -name 'llama-vulkan-*.tar.xz' 2>/dev/null | head -1 || true)
if [ -n "$llama" ]; then
    [ -f ".gpu/$(basename "$llama")" ] || cp "$llama" .gpu/
else
    echo "gpu-pack: no $shared/llama-vulkan/llama-vulkan-*.tar.xz: the comparison will have no llama.cpp" >&2
fi

# ---- the Vulkan loader's packages (the device tool's README)
if ! ls .gl/*.deb >/dev/null 2>&1; then
    mkdir -p .gl /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    # shellcheck disable=SC2086 # the options are words
    apt-get $o update >/dev/null
    # shellcheck disable=SC2086
    (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
echo "gpu-pack: .gl: $(cd .gl && echo *.deb)"

# ---- what travels: tracked, untracked-not-ignored, and the carried .gpu and .gl
tracked=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s -- 2>/dev/null | awk '{s += $1} END {print s + 0}')
carried=$(du -sb .gpu .gl | awk '{s += $1} END {print s + 0}')
total=$((tracked + carried))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "gpu-pack: travels: tree $(mib "$tracked") + .gpu/.gl $(mib "$carried") = $(mib "$total") (limit 64 MiB)"
[ -d shared ] && echo "gpu-pack: note: shared/ travels too: $(du -sh shared | cut -f1)"
if [ "$total" -ge "$limit" ]; then
    echo "gpu-pack: over the 64 MiB limit (try --no-layer)" >&2
    exit 1
fi
