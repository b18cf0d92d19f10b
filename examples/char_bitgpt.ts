// Train a character-level BitGPT (ternary weights, int8 activations) on a text and sample from
// it, with the library API only: loadDataset -> train -> generate.
//
//   deno run -A examples/char_bitgpt.ts [dataset] [--preset baby] [--iters 500] [--tokens 300]
//     [--backend auto|webgpu|cpu]
//
// dataset: "shakespeare" (default; looked up in $BITGPT_DATA_DIR and ./data, else downloaded)
// or the path of any UTF-8 text file. The "baby" preset (4 layers, 128 wide) wants a GPU; on the
// CPU backend use `--preset nano` (2 layers, 44 wide: about 50 ms an iteration).

import { parseArgs } from "node:util";
import { type BackendChoice, generate, getPreset, loadDataset, train, useBackend } from "../mod.ts";

const { values: flags, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    preset: { type: "string", default: "baby" },
    iters: { type: "string", default: "500" },
    tokens: { type: "string", default: "300" },
    backend: { type: "string", default: "auto" },
  },
});
await useBackend(flags.backend as BackendChoice);
const data = await loadDataset({ dataset: positionals[0] ?? "shakespeare", tokenizer: "char" });
const preset = getPreset(flags.preset);
const iters = Number(flags.iters);

const { model } = await train({
  kind: "bitgpt",
  config: { ...preset.model, vocabSize: data.tokenizer.vocabSize },
  data,
  // The preset's settings, shortened to `iters` (warmup 10%, cosine decay to the end).
  train: {
    ...preset.train,
    maxIters: iters,
    warmupIters: Math.floor(iters / 10),
    lrDecayIters: iters,
    evalInterval: iters,
  },
  onStep: ({ iter, loss, msPerIter }) =>
    console.log(`step ${iter} | loss ${loss.toFixed(4)} | ${msPerIter.toFixed(0)} ms`),
  onEval: ({ iter, valLoss }) => console.log(`step ${iter} | val loss ${valLoss.toFixed(4)}`),
});

const prompt = data.tokenizer.encode("\n");
const [ids] = await generate(model, prompt, {
  maxNewTokens: Number(flags.tokens),
  temperature: 0.8,
});
console.log(data.tokenizer.decode(ids));
