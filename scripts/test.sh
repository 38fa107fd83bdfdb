#!/usr/bin/env bash
# test.sh: installs what is missing, then builds and runs the whole test suite
# twice: a Release build (build/) and an AddressSanitizer + UndefinedBehavior-
# Sanitizer build (build-asan/). Every test runs with the Khronos validation
# layer on. The sanitizer build runs the unit, gpu and `sanitize` tests
# (tests/CMakeLists.txt says which and why); VKLLM_SANITIZE_ALL=1 runs every
# test there too. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)
for config in "build -DCMAKE_BUILD_TYPE=Release" \
              "build-asan -DCMAKE_BUILD_TYPE=Debug -DVKLLM_SANITIZE=ON"; do
    set -- $config
    dir=$1
    shift
    echo "== $dir" >&2
    cmake -S . -B "$dir" "$@" --log-level=WARNING
    cmake --build "$dir" -j"$jobs"
    share=()
    [ "$dir" = build-asan ] && [ "${VKLLM_SANITIZE_ALL:-0}" != 1 ] && share=(-L 'unit|gpu|sanitize')
    (cd "$dir" && ctest -j"$jobs" --output-on-failure "${share[@]}")
done
