#!/usr/bin/env bash
# chat.sh: installs what is missing, builds vkllm (Release, in build/), and
# opens the chat window with the given arguments: without -m, on the bundled
# stories260K.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release --log-level=WARNING
cmake --build build -j"$(nproc)" --target vkllm-chat
exec build/app/chat/vkllm-chat "$@"
