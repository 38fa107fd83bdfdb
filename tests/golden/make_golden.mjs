// make_golden.mjs: regenerates the golden files in this folder from llama.cpp.
//
// Each golden file names a model (a file in tests/data, or arguments for the
// gen_model tool) and holds llama.cpp's greedy continuation of several prompts.
// tests/test_generate.c replays them through vkllm and requires the same tokens.
//
//   cd ../shared/oracle && npm install        (once; see its README)
//   cmake --build build --target gen_model
//   node tests/golden/make_golden.mjs ../shared/oracle build/tests/gen_model
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
const [oracleDir, genModel] = process.argv.slice(2).map((p) => resolve(p));
if (!oracleDir || !genModel) {
  console.error("usage: node make_golden.mjs ORACLE_DIR GEN_MODEL");
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

const tieMargin = (model) => (/--type q/.test(model) ? 0.3 : 0.01);
const scratch = mkdtempSync(join(tmpdir(), "vkllm-golden-"));
const escape = (s) => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\t/g, "\\t").replace(/\r/g, "\\r");

for (const [name, model, prompts] of cases) {
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
  ];
  for (const prompt of prompts) {
    const out = execFileSync("node", [join(oracleDir, "oracle.mjs"), "generate", "--model", path,
      "--text", prompt, "--n", "64", "--top", "2", "--compact"], { encoding: "utf8" });
    const r = JSON.parse(out);
    lines.push("", `prompt\t${escape(prompt)}`, `prompt_tokens\t${r.prompt_tokens.join(" ")}`,
      `tokens\t${r.tokens.join(" ")}`,
      `margins\t${r.step_top.map((t) => (t.length > 1 ? t[0][1] - t[1][1] : 1e9).toFixed(4)).join(" ")}`,
      `stop\t${r.stop_reason}`, `text\t${escape(r.text)}`);
  }
  writeFileSync(join(here, name + ".txt"), lines.join("\n") + "\n");
  console.log(`${name}: ${prompts.length} prompts`);
}
