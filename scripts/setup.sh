#!/usr/bin/env bash
# setup.sh: installs the Debian/Ubuntu packages vkllm needs that are missing.
# Uses sudo when not root. Installs nothing when everything is there.
set -euo pipefail
packages=(
    cmake make gcc libc6-dev          # build
    libvulkan-dev libvulkan-volk-dev  # Vulkan headers; volk loads libvulkan at run time
    glslang-tools spirv-tools         # shader compiler, validator, optimizer
    libvulkan1 mesa-vulkan-drivers    # the loader and Mesa's drivers, lavapipe among them
    vulkan-validationlayers           # the tests run with the Khronos validation layer
    pkg-config libpcre2-dev libutf8proc-dev  # pre-tokenizer regexes, Unicode categories
    libjansson-dev                    # JSON: template contexts, saved chats, requests
    libsdl2-dev libsdl2-ttf-dev       # the chat window: SDL2, and SDL2_ttf with HarfBuzz shaping
    libmd4c-dev                       # Markdown (CommonMark) in the chat window
    libfontconfig-dev fonts-dejavu-core fonts-noto-color-emoji  # fonts and where to find them
    xvfb xauth                        # the window's end-to-end test runs on a virtual display
    libpng-dev                        # the window's screenshots (vkllm-chat --script)
    libmicrohttpd-dev curl            # vkllm serve: HTTP; its test's error paths
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# vkllm serve's test runs the openai npm client: Node and npm, by command, so
# that a Node from elsewhere (nodesource bundles npm) is never shadowed by
# Debian's packages
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
