# model_test.sh: sourced by the script tests run as `SCRIPT VKLLM DATA_DIR`:
# vkllm and data from those arguments, the bundled model, a scratch
# directory $tmp removed on exit, and the fail/check counters.
vkllm=$1 data=$2
model=$data/stories260K.gguf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 checks=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
check() { # WHAT EXPECTED ACTUAL
    checks=$((checks + 1))
    [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
}
