// make.mjs: regenerates the golden files in this folder (tests/golden/lora)
// from llama.cpp.
//
// Each file names a base model (gen_model arguments) and one or more adapters
// (gen_lora arguments and a scale, applied in order, as llama.cpp's
// --lora-scaled), and holds llama.cpp's greedy continuations of two prompts
// given as token ids, and every position's logits for the longer prompt (20
// tokens: enough for vkllm's batched GEMM path, which starts at 16).
// tests/test_lora.c replays them (a folder of its own: test_generate takes
// every golden/*.txt). Made with
//
//   cd ../shared/oracle && npm install        (once; see its README)
//   cmake --build build --target gen_model gen_lora
//   node tests/golden/lora/make.mjs ../shared/oracle build/tests/gen_model build/tests/gen_lora [REGEX]
//
// The oracle runs llama.cpp on the CPU, one thread, f16 KV cache, greedy. Each
// step's margin (top logit minus the runner-up) is kept, as make_golden.mjs
// does, so that a near tie (below tie_margin) may end the comparison; see that
// file for why 0.01 with float weights and 0.3 with quantized ones.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const [oracleDir, genModel, genLora] = process.argv.slice(2, 5).map((p) => resolve(p));
const only = new RegExp(process.argv[5] ?? "");
if (!oracleDir || !genModel || !genLora) {
  console.error("usage: node make.mjs ORACLE_DIR GEN_MODEL GEN_LORA [REGEX]");
  process.exit(1);
}

const prompts = [
  [1, 259, 82, 273, 262],
  [1, 17, 250, 99, 3, 140, 288, 61, 5, 200, 44, 120, 120, 120, 7, 64, 255, 33, 9, 100],
];
const nGen = 24;
const llama16 = "--arch llama --type f16 --n-embd 64 --n-head 8 --n-head-kv 2 --n-layer 2 --n-ff 96 --n-vocab 300 --seed 1";
const llamaQ4 = "--arch llama --type q4_0 --n-embd 128 --n-head 8 --n-head-kv 4 --n-layer 2 --n-ff 224 --n-vocab 340 --seed 2";
// name, base model, adapters: [scale, gen_lora arguments]
const cases = [
  ["llama-f16", llama16, [[1, "--rank 8 --seed 3"]]],
  ["llama-f16-scaled", llama16, [[0.5, "--rank 16 --alpha 32 --type f16 --targets all --seed 4"]]],
  ["llama-f16-stacked", llama16, [[1, "--rank 8 --seed 3"], [0.7, "--rank 32 --type q8_0 --no-alpha --mag 0.5 --targets q,v,down,output --seed 5"]]],
  ["llama-q4_0", llamaQ4, [[1, "--rank 16 --type f16 --seed 12"]]],
  ["llama-q4_0-stacked", llamaQ4, [[0.8, "--rank 16 --type f16 --targets all --seed 6"], [1.5, "--rank 32 --type q8_0 --alpha 16 --seed 7"]]],
  ["qwen2-f16", "--arch qwen2 --type f16 --n-embd 96 --n-head 6 --n-head-kv 2 --n-layer 2 --n-ff 152 --n-vocab 330 --rope-base 1000000 --seed 2",
    [[1, "--rank 8 --targets all --seed 8"], [-0.5, "--rank 4 --type f16 --seed 9"]]],
  ["phi3-f16", "--arch phi3 --type f16 --n-embd 96 --n-head 6 --n-layer 2 --n-ff 136 --n-vocab 320 --n-rot 8 --seed 4",
    [[1, "--rank 8 --targets all --seed 10"]]],
  ["gemma-q8_0", "--arch gemma --type q8_0 --n-embd 64 --n-head 4 --n-head-kv 1 --n-layer 2 --n-ff 160 --n-vocab 300 --seed 1",
    [[1, "--rank 8 --type f16 --seed 11"]]],
];

const scratch = mkdtempSync(join(tmpdir(), "vkllm-lora-golden-"));
const oracle = (args) =>
  JSON.parse(execFileSync("node", [join(oracleDir, "oracle.mjs"), ...args, "--compact"],
    { encoding: "utf8", maxBuffer: 1 << 28 }));

for (const [name, model, adapters] of cases) {
  if (!only.test(name)) continue;
  const base = join(scratch, name + ".gguf");
  execFileSync(genModel, ["-o", base, ...model.split(" ")]);
  const files = adapters.map(([, args], i) => {
    const out = join(scratch, `${name}-${i}.gguf`);
    execFileSync(genLora, ["-m", base, "-o", out, ...args.split(" ")]);
    return out;
  });
  const lora = ["--lora", adapters.map(([s], i) => `${files[i]}:${s}`).join(",")];
  const quant = /--type q/.test(model);
  const lines = [
    "# llama.cpp's greedy continuations and logits with LoRA adapters (node-llama-cpp 3.22.1, CPU,",
    "# 1 thread, f16 KV cache), made by: node tests/golden/lora/make.mjs (see that file)",
    `model\t${model}`,
    ...adapters.map(([s, args]) => `adapter\t${s}\t${args}`),
    `tie_margin\t${quant ? 0.3 : 0.01}`,
  ];
  for (const prompt of prompts) {
    const r = oracle(["generate", "--model", base, "--tokens", prompt.join(","), "--n", String(nGen),
      "--top", "2", ...lora]);
    lines.push("", `prompt_tokens\t${r.prompt_tokens.join(" ")}`, `tokens\t${r.tokens.join(" ")}`,
      `margins\t${r.step_top.map((t) => (t.length > 1 ? t[0][1] - t[1][1] : 1e9).toFixed(4)).join(" ")}`);
  }
  const l = oracle(["logits", "--model", base, "--tokens", prompts[1].join(","), "--full", ...lora]);
  lines.push("", `logits\t${l.full.shape[0]}\t${l.full.shape[1]}\t${l.full.data}`);
  writeFileSync(join(here, name + ".txt"), lines.join("\n") + "\n");
  console.log(`${name}: done`);
}
