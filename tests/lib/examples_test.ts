// The examples in examples/ run to the end with small settings on the CPU backend: the char-level
// BitGPT trains on a small text and samples, the GPT-2 example loads a synthetic Hugging Face
// layout file (Conv1D weights [in, out], mask buffers, no lm_head) and prints exactly what the
// library's `generate` gives for the same weights, and the MLP fit's loss falls.

import { ok, strictEqual } from "node:assert/strict";
import { Generator } from "../../engine/random.ts";
import { makeConfig } from "../../models/config.ts";
import { generate } from "../../models/generate.ts";
import { createModel } from "../../models/model.ts";
import type { LanguageModel } from "../../models/model.ts";
import { type NamedArray, writeSafetensors } from "../../nn/safetensors.ts";
import { Gpt2Tokenizer } from "../../data/tokenizer.ts";
import { cpu } from "../util.ts";
import { CONFIG, losses, report, ROOT, runDeno } from "./subprocess.ts";

const example = (name: string) => new URL(`examples/${name}`, ROOT).pathname;

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bitgpt_examples_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("examples/char_bitgpt.ts trains a nano BitGPT on a text file and samples", async () => {
  await withTempDir(async (dir) => {
    const text = `${dir}/verse.txt`;
    const line =
      "Shall I compare thee to a summer's day? Thou art more lovely and more temperate.\n";
    await Deno.writeTextFile(text, line.repeat(40));
    const r = await runDeno([
      "run",
      "--config",
      CONFIG,
      "--allow-read",
      `--allow-write=${dir}`,
      example("char_bitgpt.ts"),
      text,
      "--preset",
      "nano",
      "--iters",
      "3",
      "--tokens",
      "20",
      "--backend",
      "cpu",
    ], { cwd: dir });
    strictEqual(r.code, 0, report(r));
    const ls = losses(r.stdout);
    ok(ls.length >= 2 && ls.every(Number.isFinite), `expected finite losses\n${report(r)}`);
    ok(/step 2 \| loss /.test(r.stdout), `expected the last step's loss\n${report(r)}`);
    const sample = r.stdout.slice(r.stdout.lastIndexOf(" ms\n") + 4);
    ok(sample.trim().length > 0, `expected generated text after training\n${report(r)}`);
  });
});

/**
 * The model's weights as Hugging Face's GPT-2 `model.safetensors` holds them: no `transformer.`
 * prefix, Conv1D weights [in, out], a causal-mask buffer per block, no lm_head (tied), and the
 * metadata `{"format": "pt"}` that safetensors' torch writer records.
 */
async function hfGpt2File(model: LanguageModel): Promise<Uint8Array> {
  const T = model.config.blockSize;
  const out: Record<string, NamedArray> = {};
  for (const [name, p] of model.namedParameters()) {
    if (name === "lm_head.weight") continue;
    const key = name.replace(/^transformer\./, "");
    const data = await p.data() as Float32Array;
    if (/\.(c_attn|c_proj|c_fc)\.weight$/.test(name)) {
      const [rows, cols] = p.shape; // ours [out, in] -> Conv1D [in, out]
      const t = new Float32Array(data.length);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) t[c * rows + r] = data[r * cols + c];
      }
      out[key] = { dtype: "F32", shape: [cols, rows], data: t };
    } else {
      out[key] = { dtype: "F32", shape: [...p.shape], data };
    }
    const blk = /^h\.(\d+)\.ln_1\.weight$/.exec(key);
    if (blk) {
      const mask = Float32Array.from({ length: T * T }, (_, i) => (i % T <= i / T ? 1 : 0));
      out[`h.${blk[1]}.attn.bias`] = { dtype: "F32", shape: [1, 1, T, T], data: mask };
    }
  }
  return writeSafetensors(out, { format: "pt" });
}

Deno.test("examples/gpt2_generate.ts loads a Hugging Face GPT-2 file and generates", async () => {
  // GPT-2's vocabulary, its tanh GELU and 64-wide heads, one small layer: quick on the CPU. The
  // head count and activation come from the config.json next to the file, as HF keeps them.
  const config = makeConfig({
    vocabSize: 50257,
    blockSize: 32,
    nLayer: 1,
    nHead: 1,
    nEmbd: 64,
    activation: "gelu_tanh",
  });
  const model = createModel("gpt", config, { backend: cpu, generator: new Generator(7) });
  const prompt = "The quick brown fox";
  const tokenizer = new Gpt2Tokenizer(config.vocabSize);
  const opts = { maxNewTokens: 12, temperature: 0.8, topK: 40, seed: 3 };
  const [want] = await generate(model, tokenizer.encode(prompt), opts);
  await withTempDir(async (dir) => {
    const file = `${dir}/gpt2.safetensors`;
    await Deno.writeFile(file, await hfGpt2File(model));
    const hfConfig = { model_type: "gpt2", n_head: 1, n_embd: 64, activation_function: "gelu_new" };
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(hfConfig));
    const r = await runDeno([
      "run",
      "--config",
      CONFIG,
      `--allow-read=${dir}`,
      example("gpt2_generate.ts"),
      file,
      prompt,
      "--tokens",
      String(opts.maxNewTokens),
      "--temperature",
      String(opts.temperature),
      "--top-k",
      String(opts.topK),
      "--seed",
      String(opts.seed),
      "--backend",
      "cpu",
    ], { cwd: dir });
    strictEqual(r.code, 0, report(r));
    ok(r.stderr.includes("hf-gpt2 gpt: 1 layers, 1 heads, 64 wide"), report(r));
    strictEqual(r.stdout, prompt + tokenizer.decode(want) + "\n");
  });
  model.dispose();
});

Deno.test("examples/mlp_fit.ts fits sin(x): the loss is finite and falls", async () => {
  const r = await runDeno(["run", "--config", CONFIG, example("mlp_fit.ts"), "--steps", "300"]);
  strictEqual(r.code, 0, report(r));
  const ls = losses(r.stdout);
  ok(ls.length >= 3 && ls.every(Number.isFinite), `expected finite losses\n${report(r)}`);
  ok(ls[ls.length - 1] < ls[0] / 10, `expected the loss to fall tenfold\n${report(r)}`);
  ok(/final loss /.test(r.stdout), report(r));
});
