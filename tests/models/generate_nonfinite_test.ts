// Generation never samples an invalid id (issue 14): NaN or ±Infinity logits (damaged weights,
// loaded with allowNonFinite) stop generation with a GenerationError naming the new token at
// fault, sampled or greedy, on the CPU and WebGPU; a RangeError from the embedding never escapes.

import { ok, rejects } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import { Generator } from "../../engine/random.ts";
import { makeConfig } from "../../models/config.ts";
import { generate, GenerationError } from "../../models/generate.ts";
import type { LanguageModel } from "../../models/model.ts";
import { createModel } from "../../models/model.ts";
import { cpu, gpu, hasWebGPU } from "../util.ts";

const CFG = makeConfig({ vocabSize: 11, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 8 });

/** A model whose parameter `name` holds `v` at row `row` (every column). */
async function poisoned(
  kind: "gpt" | "bitgpt",
  be: Backend,
  name: string,
  row: number,
  v: number,
): Promise<LanguageModel> {
  const model = createModel(kind, CFG, { backend: be, generator: new Generator(1) });
  const p = model.namedParameters().find(([n]) => n === name)![1];
  const data = Float32Array.from(await p.data());
  const cols = p.shape.length > 1 ? p.shape[1] : 1;
  data.fill(v, row * cols, (row + 1) * cols);
  model.loadStateDict({ [name]: { shape: p.shape, data } }, { strict: false });
  return model;
}

function expectStep(step: number) {
  return (e: unknown) => {
    ok(e instanceof GenerationError, `expected GenerationError, got ${(e as Error)?.stack}`);
    ok(
      e.message.startsWith(`generate: the logits of new token ${step} (of 12) are not finite`),
      e.message,
    );
    return true;
  };
}

for (const [label, getBackend] of [["cpu", () => Promise.resolve(cpu)], ["webgpu", gpu]] as const) {
  Deno.test({
    name: `${label}: non-finite logits are a GenerationError naming the step, sampled or greedy`,
    ignore: label === "webgpu" && !hasWebGPU,
    async fn() {
      const be = await getBackend();
      for (const temperature of [1, 0]) {
        const o = { maxNewTokens: 12, temperature, seed: 3, chunkTokens: 4 };
        // NaN in the final norm: every logit of the first step is NaN.
        const lnf = await poisoned("gpt", be, "transformer.ln_f.weight", 0, NaN);
        await rejects(generate(lnf, [1, 2], o), expectStep(1));
        lnf.dispose();
        // +Infinity in the position embedding of position 5: new token 5 is the first bad one.
        const wpe = await poisoned("gpt", be, "transformer.wpe.weight", 5, Infinity);
        await rejects(generate(wpe, [1, 2], o), expectStep(5));
        wpe.dispose();
        // BitGPT: one lm_head bias of +Infinity makes every step's logits non-finite.
        const bias = await poisoned("bitgpt", be, "lm_head.bias", 3, Infinity);
        await rejects(generate(bias, [1, 2], o), expectStep(1));
        bias.dispose();
      }
    },
  });
}
