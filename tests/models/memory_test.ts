// models/memory.ts: the training-memory estimate the CLI checks before allocating. Weights,
// gradients and AdamW moments are exact; activations grow with the batch and the block size;
// logits over the model's limit are counted one block at a time, as the model computes them.

import { ok, strictEqual } from "node:assert/strict";
import { makeConfig } from "../../models/config.ts";
import { estimateTrainingMemory, formatBytes } from "../../models/memory.ts";
import { parameterCount } from "../../models/params.ts";

const CFG = makeConfig({ vocabSize: 65, blockSize: 64, nLayer: 2, nHead: 2, nEmbd: 32 });

Deno.test("memory: exact weights, gradients and moments; activations grow with batch and block", () => {
  for (const kind of ["gpt", "bitgpt"] as const) {
    const e = estimateTrainingMemory(kind, CFG, 4);
    const params = 4 * parameterCount(kind, CFG);
    strictEqual(e.params, params);
    strictEqual(e.grads, params);
    strictEqual(e.optimizer, 2 * params);
    strictEqual(e.batch, 2 * 4 * 64 * 4);
    strictEqual(e.total, e.params + e.grads + e.optimizer + e.activations + e.batch);
    ok(estimateTrainingMemory(kind, CFG, 8).activations > e.activations);
    const longer = estimateTrainingMemory(kind, { ...CFG, blockSize: 128 }, 4);
    ok(longer.activations > 2 * (e.activations - (kind === "bitgpt" ? params : 0)));
  }
  // Logits over the limit are made one block at a time.
  const big = makeConfig({ vocabSize: 50304, blockSize: 256, nLayer: 1, nHead: 1, nEmbd: 8 });
  const whole = estimateTrainingMemory("gpt", big, 64);
  const blocked = estimateTrainingMemory("gpt", big, 64, { maxLogitsBytes: 128 << 20 });
  ok(whole.activations - blocked.activations > 9e9, formatBytes(whole.activations));
  strictEqual(formatBytes(1.5e9), "1.5 GB");
  strictEqual(formatBytes(2e12), "2.0 TB");
});
