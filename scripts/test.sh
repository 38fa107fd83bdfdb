#!/usr/bin/env bash
# test.sh: installs what is missing, then builds and runs the whole test suite
# twice: a Release build (build/) and an AddressSanitizer + UndefinedBehavior-
# Sanitizer build (build-asan/). Every test runs with the Khronos validation
# layer on. Exits non-zero if anything fails.
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
    (cd "$dir" && ctest -j"$jobs" --output-on-failure)
done
