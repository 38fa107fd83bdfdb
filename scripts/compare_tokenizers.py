#!/usr/bin/env python3
"""vkllm's tokenizers against llama.cpp's, on random texts.

    scripts/compare_tokenizers.py --vkllm-tool BUILD/tests/test_vocabs \\
        --llama-tool /tmp/llama_tokenize --vocabs ../shared/vocab \\
        [--oracle ../shared/oracle] [--count 10000] [--seed 7] [--golden tests/data/vocab/random --golden-count 1000]

For every ggml-vocab-*.gguf in --vocabs, tokenizes the texts of
scripts/tokenizer_random_texts.py (add_special off; parse_special off unless
--special) with
  - vkllm:      test_vocabs --tokenize MODEL TEXTS.hex
  - llama.cpp:  scripts/llama_tokenize.c (libllama of the oracle's release, raw bytes)
  - the oracle: node oracle.mjs tokenize --texts-json (valid UTF-8 texts only: JSON
                strings cannot carry other bytes), when --oracle is given and node runs
and prints how many texts agree. --pre-variants BASE.gguf adds BASE's vocabulary
rewritten with each pre-tokenizer name of PRE_VARIANTS (test_vocabs --with-pre).
--golden writes the first --golden-count texts (texts.hex) and llama.cpp's ids for
them (NAME.ids; pre/NAME.ids for the first --golden-pre-count), the files
test_vocabs checks.
Exits non-zero if any text differs.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# One name per row of engine/text/pretok.c's table that llama.cpp can run on a
# byte-level vocabulary (gemma4, sarvam-moe and whitespace expect U+2581-escaped
# text; with GPT-2's merges llama.cpp asserts). tests/test_vocabs.c has the same list.
PRE_VARIANTS = [
    "default", "llama3", "minicpm5", "jais-2", "dbrx", "glm4", "deepseek-llm", "deepseek-coder",
    "deepseek-v3", "spark2_5", "youtu", "falcon", "starcoder", "command-r", "gpt-2", "trillion",
    "qwen2", "stablelm2", "qwen35", "poro-chat", "bloom", "viking", "tekken", "chameleon", "gpt-4o",
    "granite-embed-multi-97m", "tiny_aya", "kimi-k2", "superbpe", "bailingmoe", "seed-coder",
    "ufakzeka", "afmoe", "laguna", "exaone-moe",
]


def run_lines(cmd):
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout.decode()
    return out.split("\n")[:-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkllm-tool", required=True)
    ap.add_argument("--llama-tool", required=True)
    ap.add_argument("--vocabs", required=True)
    ap.add_argument("--oracle")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--golden")
    ap.add_argument("--golden-count", type=int, default=1000)
    ap.add_argument("--special", action="store_true", help="parse_special on (no oracle cross-check)")
    ap.add_argument("--pre-variants", metavar="BASE.gguf",
                    help="also BASE's vocabulary under each pre-tokenizer of PRE_VARIANTS")
    ap.add_argument("--golden-pre-count", type=int, default=300)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="vkllm-tok-")
    texts_path = os.path.join(tmp, "texts.hex")
    with open(texts_path, "w") as f:
        subprocess.run([sys.executable, os.path.join(HERE, "tokenizer_random_texts.py"),
                        "--seed", str(args.seed), "--count", str(args.count)], check=True, stdout=f)
    texts = [bytes.fromhex(l) for l in open(texts_path).read().split("\n")[:-1]]
    valid = []
    for i, t in enumerate(texts):
        try:
            valid.append((i, t.decode("utf-8")))
        except UnicodeDecodeError:
            pass
    json_path = os.path.join(tmp, "texts.json")
    json.dump([s for _, s in valid], open(json_path, "w"))
    print(f"{len(texts)} texts (seed {args.seed}), {len(valid)} of them valid UTF-8")

    if args.golden:
        os.makedirs(args.golden, exist_ok=True)
        with open(os.path.join(args.golden, "texts.hex"), "w") as f:
            for t in texts[:args.golden_count]:
                f.write(t.hex() + "\n")

    models = [(os.path.basename(m)[len("ggml-vocab-"):-len(".gguf")], m, args.golden_count)
              for m in sorted(glob.glob(os.path.join(args.vocabs, "ggml-vocab-*.gguf")))]
    if args.pre_variants:
        os.makedirs(os.path.join(args.golden or tmp, "pre"), exist_ok=True)
        for pre in PRE_VARIANTS:
            path = os.path.join(tmp, f"pre-{pre}.gguf")
            subprocess.run([args.vkllm_tool, "--with-pre", args.pre_variants, path, pre], check=True)
            models.append(("pre/" + pre, path, args.golden_pre_count))
    failed = False
    for name, model, golden_count in models:
        special = ["--special"] if args.special else []
        ours = run_lines([args.vkllm_tool, "--tokenize", model, texts_path] + special)
        ref = run_lines([args.llama_tool, model, texts_path] + special)
        assert len(ours) == len(ref) == len(texts), (name, len(ours), len(ref))
        diff = [i for i in range(len(texts)) if ours[i] != ref[i]]
        line = f"{name:13s} vkllm = llama.cpp: {len(texts) - len(diff)}/{len(texts)}"
        if args.oracle and not args.special:
            res = subprocess.run(["node", os.path.join(args.oracle, "oracle.mjs"), "tokenize",
                                  "--model", os.path.abspath(model), "--texts-json", json_path,
                                  "--compact"], check=True, stdout=subprocess.PIPE, cwd=args.oracle)
            items = json.loads(res.stdout)["items"]
            agree = sum(" ".join(map(str, it["tokens"])) == ref[i] for (i, _), it in zip(valid, items))
            ours_agree = sum(" ".join(map(str, it["tokens"])) == ours[i] for (i, _), it in zip(valid, items))
            line += f"; oracle (valid UTF-8) = llama_tokenize: {agree}/{len(valid)}, = vkllm: {ours_agree}/{len(valid)}"
        print(line)
        for i in diff[:5]:
            print(f"  text {i}: {texts[i]!r}\n    llama.cpp: {ref[i]}\n    vkllm:     {ours[i]}")
        failed |= bool(diff)
        if args.golden:
            with open(os.path.join(args.golden, name + ".ids"), "w") as f:
                for l in ref[:golden_count]:
                    f.write(l + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
