// make_golden.mjs: regenerates the golden files in this folder from llama.cpp.
//
// Each golden file names a model (a file in tests/data, or arguments for the
// gen_model tool) and holds llama.cpp's greedy continuation of several prompts.
// tests/test_generate.c replays them through vkllm and requires the same tokens.
//
//   cd ../shared/oracle && npm install        (once; see its README)
//   cmake --build build --target gen_model
//   node tests/golden/make_golden.mjs ../shared/oracle build/tests/gen_model [REGEX]
//
// REGEX (a JavaScript regular expression) limits the run to the cases whose
// names it matches, leaving the other files alone. The arch-* files (one
// F16 and one quantized model of each architecture gen_model writes, prompts
// given as token ids, 32 tokens) were made with
//
//   node tests/golden/make_golden.mjs ../shared/oracle build/tests/gen_model '^arch-'
//
// A case whose prompts are token ids (arrays of numbers) passes them to the
// oracle as --tokens, used exactly as given (BOS included), and its golden
// file has prompt_tokens but no prompt line: test_generate then skips the
// tokenizer check and decodes the ids.
//
// The oracle runs llama.cpp on the CPU, one thread, greedy (temperature 0,
// lowest id on ties), 64 tokens or until end of text. Each step's margin (top
// logit minus the runner-up) is recorded too: test_generate accepts a
// divergence only where that margin is below the file's tie_margin.
//
// tie_margin: vkllm computes as llama.cpp's CPU path does (Q8_0 activations for
// quantized weights, half-rounded inputs for F16 weights and attention), but
// llama.cpp's vectorized expf and silu differ in the last bit from any other
// implementation (its own AVX2 and AVX-512 builds disagree). With float weights
// such a difference stays near 1e-6 in the logits: 0.01 is generous. With
// 8-bit activations a last-bit difference can flip one quantum of one
// activation, which moves the logits of these models by up to about 0.3
// (measured: 0.28 on stories260K Q4_0); so 0.3 for quantized models.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const data = resolve(here, "../data");
const [oracleDir, genModel] = process.argv.slice(2, 4).map((p) => resolve(p));
const only = new RegExp(process.argv[4] ?? "");
if (!oracleDir || !genModel) {
  console.error("usage: node make_golden.mjs ORACLE_DIR GEN_MODEL [REGEX]");
  process.exit(1);
}

const stories = ["Once upon a time", "The little dog", "Lily and Tom went to the park.", "Once"];
const random = ["Once upon a time", "Hello world", "abc"];
// name, model ("file NAME" in tests/data or "gen ARGS" for gen_model), prompts
const cases = [
  ["stories260K", "file stories260K.gguf", stories],
  ["stories260K-f16", "gen --from @DATA@/stories260K.gguf --type f16", stories],
  ["stories260K-q8_0", "gen --from @DATA@/stories260K.gguf --type q8_0", stories],
  ["stories260K-q4_0", "gen --from @DATA@/stories260K.gguf --type q4_0", stories],
  ["llama-2-tiny-random", "file llama-2-tiny-random.gguf", random],
  ["gqa-f32", "gen --type f32 --n-embd 64 --n-head 8 --n-head-kv 2 --n-layer 2 --n-ff 96 --n-vocab 300 --seed 1", random],
  ["gqa-f16", "gen --type f16 --n-embd 64 --n-head 8 --n-head-kv 2 --n-layer 2 --n-ff 96 --n-vocab 300 --seed 1", random],
  ["gqa-q8_0", "gen --type q8_0 --n-embd 64 --n-head 8 --n-head-kv 2 --n-layer 2 --n-ff 96 --n-vocab 300 --seed 1", random],
  ["gqa-q4_0", "gen --type q4_0 --n-embd 64 --n-head 8 --n-head-kv 2 --n-layer 2 --n-ff 96 --n-vocab 300 --seed 1", random],
  ["odd-f32", "gen --type f32 --n-embd 36 --n-head 6 --n-head-kv 3 --n-layer 3 --n-ff 50 --n-vocab 263 --seed 7 --tied", random],
];

// The architectures: per family an F16 model and a quantized one (rows a
// multiple of 32, so that no tensor falls back to another type), small and of
// odd shapes, with the family's variations (see gen_model.c): GQA or
// multi-query where the family has it, partial rotary (phi3, gptneox,
// stablelm), fused or separate q/k/v and biases, a sliding window shorter than
// prompt + continuation (gemma2, gemma3; llama and phi3 carry the key, which
// llama.cpp ignores for them), soft-caps, parallel residual. Prompts are token
// ids: BOS (1) and ids below every model's n_vocab; 32 tokens each. Each
// seed is the best of 1..8 for that case: no early end of text, and the first
// step with a margin below tie_margin as late as could be found.
const idPrompts = [
  [1, 259, 82, 273, 262],
  [1, 17, 250, 99, 3, 140, 288, 61, 5, 200, 44],
  [1, 120, 120, 120, 7, 64, 255, 33],
];
const arch = (name, args) => [`arch-${name}`, `gen ${args}`, idPrompts, 32];
cases.push(
  arch("llama-f16", "--arch llama --type f16 --n-embd 80 --n-head 10 --n-head-kv 2 --n-layer 2 --n-ff 136 --n-vocab 310 --fused-qkv --qkv-bias 1 --seed 2"),
  arch("llama-q4_0", "--arch llama --type q4_0 --n-embd 128 --n-head 8 --n-head-kv 4 --n-layer 2 --n-ff 224 --n-vocab 340 --seed 2"),
  arch("llama-yarn-f16", "--arch llama --type f16 --n-embd 64 --n-head 4 --n-head-kv 2 --n-layer 2 --n-ff 128 --n-vocab 300 --rope-scaling yarn --rope-factor 4 --rope-orig-ctx 64 --rope-factors --seed 1"),
  arch("qwen2-f16", "--arch qwen2 --type f16 --n-embd 96 --n-head 6 --n-head-kv 2 --n-layer 2 --n-ff 152 --n-vocab 330 --rope-base 1000000 --seed 2"),
  arch("qwen2-q8_0", "--arch qwen2 --type q8_0 --n-embd 128 --n-head 8 --n-head-kv 2 --n-layer 3 --n-ff 224 --n-vocab 300 --fused-qkv --tied --seed 2"),
  arch("qwen3-f16", "--arch qwen3 --type f16 --n-embd 72 --n-head 6 --n-head-kv 3 --n-layer 3 --n-ff 120 --n-vocab 300 --tied --seed 4"),
  arch("qwen3-q4_0", "--arch qwen3 --type q4_0 --n-embd 128 --n-head 4 --n-head-kv 2 --n-layer 2 --n-ff 256 --n-vocab 350 --seed 8"),
  arch("phi3-f16", "--arch phi3 --type f16 --n-embd 96 --n-head 6 --n-layer 2 --n-ff 136 --n-vocab 320 --n-rot 8 --window 6 --seed 4"),
  arch("phi3-q8_0", "--arch phi3 --type q8_0 --n-embd 128 --n-head 4 --n-head-kv 2 --n-layer 2 --n-ff 192 --n-vocab 300 --split-qkv --seed 6"),
  arch("phi3-longrope-f16", "--arch phi3 --type f16 --n-embd 96 --n-head 6 --n-layer 2 --n-ff 136 --n-vocab 320 --n-rot 8 --rope-scaling longrope --rope-orig-ctx 128 --rope-factors --seed 4"),
  arch("gemma-f16", "--arch gemma --type f16 --n-embd 64 --n-head 4 --n-head-kv 1 --n-layer 2 --n-ff 160 --n-vocab 300 --seed 1"),
  arch("gemma-q4_0", "--arch gemma --type q4_0 --n-embd 96 --n-head 3 --n-layer 3 --n-ff 192 --n-vocab 360 --seed 3"),
  arch("gemma2-f16", "--arch gemma2 --type f16 --n-embd 80 --n-head 4 --n-head-kv 2 --n-layer 3 --n-ff 144 --n-vocab 300 --window 8 --attn-softcap 20 --final-softcap 15 --seed 1"),
  arch("gemma2-q8_0", "--arch gemma2 --type q8_0 --n-embd 128 --n-head 8 --n-head-kv 4 --n-layer 2 --n-ff 192 --n-vocab 330 --window 6 --swa-pattern 2 --rope-base-swa 1000 --seed 8"),
  arch("gemma3-f16", "--arch gemma3 --type f16 --n-embd 64 --n-head 4 --n-head-kv 2 --n-layer 3 --n-ff 128 --n-vocab 300 --window 8 --swa-pattern 3 --rope-base 1000000 --tied --seed 1"),
  arch("gemma3-q4_0", "--arch gemma3 --type q4_0 --n-embd 128 --n-head 4 --n-head-kv 1 --n-layer 2 --n-ff 256 --n-vocab 340 --window 6 --swa-pattern 2 --rope-base-swa 5000 --final-softcap 10 --seed 6"),
  arch("falcon-f16", "--arch falcon --type f16 --n-embd 64 --n-head 4 --n-head-kv 1 --n-layer 2 --n-ff 256 --n-vocab 310 --seed 1"),
  arch("falcon-q8_0", "--arch falcon --type q8_0 --n-embd 128 --n-head 4 --n-head-kv 2 --n-layer 2 --n-ff 256 --n-vocab 300 --falcon-norm2 --tied --seed 5"),
  arch("gptneox-f16", "--arch gptneox --type f16 --n-embd 96 --n-head 6 --n-layer 2 --n-ff 200 --n-vocab 320 --n-rot 4 --seed 2"),
  arch("gptneox-q4_0", "--arch gptneox --type q4_0 --n-embd 128 --n-head 4 --n-layer 2 --n-ff 256 --n-vocab 300 --n-rot 8 --parallel-residual 0 --seed 6"),
  arch("stablelm-f16", "--arch stablelm --type f16 --n-embd 80 --n-head 5 --n-layer 2 --n-ff 136 --n-vocab 300 --n-rot 4 --qkv-bias 1 --seed 2"),
  arch("stablelm-q8_0", "--arch stablelm --type q8_0 --n-embd 128 --n-head 8 --n-head-kv 2 --n-layer 2 --n-ff 224 --n-vocab 340 --n-rot 4 --qk-norm --parallel-residual 1 --seed 7"),
  arch("starcoder2-f16", "--arch starcoder2 --type f16 --n-embd 96 --n-head 6 --n-head-kv 2 --n-layer 2 --n-ff 176 --n-vocab 310 --seed 5"),
  arch("starcoder2-q8_0", "--arch starcoder2 --type q8_0 --n-embd 128 --n-head 4 --n-head-kv 1 --n-layer 2 --n-ff 256 --n-vocab 300 --fused-qkv --seed 2"),
  arch("starcoder-f16", "--arch starcoder --type f16 --n-embd 64 --n-head 4 --n-head-kv 1 --n-layer 2 --n-ff 256 --n-vocab 300 --n-ctx 128 --seed 6"),
  arch("starcoder-q4_0", "--arch starcoder --type q4_0 --n-embd 96 --n-head 3 --n-layer 2 --n-ff 192 --n-vocab 330 --n-ctx 64 --tied --seed 8"),
  arch("bloom-f16", "--arch bloom --type f16 --n-embd 72 --n-head 6 --n-layer 2 --n-ff 288 --n-vocab 300 --tied --seed 4"),
  arch("bloom-q8_0", "--arch bloom --type q8_0 --n-embd 128 --n-head 8 --n-layer 3 --n-ff 256 --n-vocab 310 --seed 3"),
);

const tieMargin = (model) => (/--type q/.test(model) ? 0.3 : 0.01);
// min_compared: tokens of every case that must agree before a near tie may end
// test_generate's comparison (quantized files have near ties from the first
// token, which would let any regression pass as one). 16, or less where
// vkllm on lavapipe meets a genuine near tie earlier (stories260K-q4_0: token
// 9; arch-qwen2-q8_0: token 15).
const minCompared = (name) => ({ "stories260K-q4_0": 8, "arch-qwen2-q8_0": 12 })[name] ?? 16;
const scratch = mkdtempSync(join(tmpdir(), "vkllm-golden-"));
const escape = (s) => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\t/g, "\\t").replace(/\r/g, "\\r");

for (const [name, model, prompts, nGen = 64] of cases) {
  if (!only.test(name)) continue;
  let path;
  if (model.startsWith("file ")) {
    path = join(data, model.slice(5));
  } else {
    path = join(scratch, name + ".gguf");
    const args = model.slice(4).replaceAll("@DATA@", data).split(" ");
    execFileSync(genModel, ["-o", path, ...args]);
  }
  const lines = [
    "# llama.cpp's greedy continuations (node-llama-cpp 3.22.1, CPU, 1 thread, f16 KV cache),",
    "# made by: node tests/golden/make_golden.mjs ORACLE_DIR GEN_MODEL (see that file)",
    `model\t${model}`,
    `tie_margin\t${tieMargin(model)}`,
    `min_compared\t${minCompared(name)}`,
  ];
  for (const prompt of prompts) {
    const ids = Array.isArray(prompt);
    const out = execFileSync("node", [join(oracleDir, "oracle.mjs"), "generate", "--model", path,
      ...(ids ? ["--tokens", prompt.join(",")] : ["--text", prompt]), "--n", String(nGen),
      "--top", "2", "--compact"], { encoding: "utf8" });
    const r = JSON.parse(out);
    lines.push("", ...(ids ? [] : [`prompt\t${escape(prompt)}`]),
      `prompt_tokens\t${r.prompt_tokens.join(" ")}`,
      `tokens\t${r.tokens.join(" ")}`,
      `margins\t${r.step_top.map((t) => (t.length > 1 ? t[0][1] - t[1][1] : 1e9).toFixed(4)).join(" ")}`,
      `stop\t${r.stop_reason}`, `text\t${escape(r.text)}`);
  }
  writeFileSync(join(here, name + ".txt"), lines.join("\n") + "\n");
  console.log(`${name}: ${prompts.length} prompts`);
}
