// The MLP activation in the config: absent means each model's own (GPT exact GELU, BitGPT ReLU)
// and leaves the checkpoint's config JSON as it was; set, it picks the kernel, is validated, and
// survives a checkpoint round trip.

import { deepStrictEqual, notDeepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { fromArray } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { loadCheckpoint, saveCheckpoint } from "../../models/checkpoint.ts";
import { type Activation, makeConfig } from "../../models/config.ts";
import type { GPT, MLP } from "../../models/gpt.ts";
import type { BitMLP } from "../../models/bitgpt.ts";
import { createModel, type ModelKind } from "../../models/model.ts";
import { readSafetensors } from "../../nn/safetensors.ts";
import { cpu } from "../util.ts";

const BASE = { vocabSize: 11, blockSize: 6, nLayer: 1, nHead: 2, nEmbd: 8 };
const IDS = () =>
  fromArray(Int32Array.from([1, 5, 2, 7, 3, 0]), [1, 6], { dtype: "i32", backend: cpu });

function build(kind: ModelKind, activation?: Activation): GPT {
  const config = makeConfig(activation ? { ...BASE, activation } : BASE);
  return createModel(kind, config, { backend: cpu, generator: new Generator(9) });
}

const mlpOf = (m: GPT) => (m.transformer.h.items[0] as unknown as { mlp: MLP | BitMLP }).mlp;

Deno.test("absent activation: GPT's exact GELU, BitGPT's ReLU; the config JSON has no field", async () => {
  const gpt = build("gpt");
  strictEqual(mlpOf(gpt).activation, "gelu");
  strictEqual(mlpOf(build("bitgpt")).activation, "relu");
  const meta = readSafetensors(await saveCheckpoint(gpt)).metadata;
  deepStrictEqual(Object.keys(JSON.parse(meta.config)), [
    "vocabSize",
    "blockSize",
    "nLayer",
    "nHead",
    "nEmbd",
    "dropout",
    "bias",
    "pos",
  ]);
  // Same logits as the same weights with "gelu" spelled out.
  const explicit = build("gpt", "gelu");
  deepStrictEqual(
    await gpt.forward(IDS()).logits.data(),
    await explicit.forward(IDS()).logits.data(),
  );
});

Deno.test("each activation changes the logits and round-trips through a checkpoint", async () => {
  for (const kind of ["gpt", "bitgpt"] as const) {
    const seen: Float32Array[] = [];
    for (const act of ["gelu", "gelu_tanh", "relu"] as const) {
      const m = build(kind, act);
      strictEqual(mlpOf(m).activation, act);
      const logits = await m.forward(IDS()).logits.data() as Float32Array;
      for (const other of seen) notDeepStrictEqual(logits, other);
      seen.push(logits);
      const ck = loadCheckpoint(await saveCheckpoint(m), { backend: cpu });
      strictEqual(ck.config.activation, act);
      deepStrictEqual(await ck.model.forward(IDS()).logits.data(), logits);
    }
  }
});

Deno.test("activation is validated", () => {
  throws(
    () => makeConfig({ ...BASE, activation: "swish" as Activation }),
    /config: activation must be one of "gelu", "gelu_tanh", "relu", got "swish"/,
  );
  throws(() => makeConfig({ ...BASE, act: "gelu" } as never), /unknown key 'act'.*activation/);
});
