#!/usr/bin/env bash
# run.sh: installs what is missing, builds vkllm (Release, in build/), and runs
# `vkllm run` with the given arguments: without -m, on the bundled stories260K.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release --log-level=WARNING
cmake --build build -j"$(nproc)" --target vkllm
exec build/app/vkllm run "$@"
