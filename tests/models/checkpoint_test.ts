// Checkpoints: save -> load is bit-exact for model and optimizer state with every metadata field;
// tied weights are stored once; nanoGPT-named and Hugging Face GPT-2 files (Conv1D weights
// [in, out], mask buffers, no lm_head) load into the same model; version and shape errors.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { fromArray } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { tidy } from "../../engine/scope.ts";
import { CheckpointError, loadCheckpoint, saveCheckpoint } from "../../models/checkpoint.ts";
import { makeConfig } from "../../models/config.ts";
import type { LanguageModel } from "../../models/model.ts";
import { createModel } from "../../models/model.ts";
import { type NamedArray, readSafetensors, writeSafetensors } from "../../nn/safetensors.ts";
import { AdamW } from "../../nn/optim.ts";
import { cpu } from "../util.ts";

const CFG = makeConfig({ vocabSize: 13, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 8 });
const IDS = () =>
  fromArray(Int32Array.from([1, 5, 2, 7, 3, 0, 12, 4]), [2, 4], { dtype: "i32", backend: cpu });

/** A model after two AdamW steps, so weights and moments are all non-trivial. */
function trained(kind: "gpt" | "bitgpt"): { model: LanguageModel; opt: AdamW } {
  const model = createModel(kind, CFG, { backend: cpu, generator: new Generator(5) });
  const opt = new AdamW(model, { lr: 1e-2 });
  for (let i = 0; i < 2; i++) {
    tidy(() => {
      model.forward(IDS(), IDS()).loss!.backward();
      opt.step();
      opt.zeroGrad();
    });
  }
  return { model, opt };
}

async function hostState(m: LanguageModel): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [n, p] of m.namedParameters()) out[n] = Array.from(await p.data());
  return out;
}

for (const kind of ["gpt", "bitgpt"] as const) {
  Deno.test(`${kind}: save -> load is bit-exact for weights, optimizer and metadata`, async () => {
    const { model, opt } = trained(kind);
    const bytes = await saveCheckpoint(model, {
      optimizer: opt,
      iteration: 42,
      bestValLoss: 1.25,
      rng: { train: { seed: 1, offset: 99 } },
      tokenizer: '{"kind":"char","chars":"ab"}',
      extra: { note: "hi" },
    });
    const ck = loadCheckpoint(bytes, { backend: cpu });
    strictEqual(ck.kind, kind);
    strictEqual(ck.source, "bitgpt");
    deepStrictEqual(ck.config, CFG);
    strictEqual(ck.iteration, 42);
    strictEqual(ck.bestValLoss, 1.25);
    deepStrictEqual(ck.rng, { train: { seed: 1, offset: 99 } });
    strictEqual(ck.tokenizer, '{"kind":"char","chars":"ab"}');
    strictEqual(ck.metadata.note, "hi");
    deepStrictEqual(await hostState(ck.model), await hostState(model));
    const opt2 = new AdamW(ck.model);
    opt2.loadStateDict(ck.optimizer!);
    strictEqual(opt2.stepCount, 2);
    const [a, b] = [opt.stateDict(), opt2.stateDict()];
    deepStrictEqual(Object.keys(b.tensors), Object.keys(a.tensors));
    for (const k of Object.keys(a.tensors)) {
      deepStrictEqual(await b.tensors[k].data(), await a.tensors[k].data(), k);
    }
    const { logits } = ck.model.forward(IDS());
    deepStrictEqual(await logits.data(), await model.forward(IDS()).logits.data());
  });
}

Deno.test("tied lm_head is stored once and tied again on load", async () => {
  const { model } = trained("gpt");
  const bytes = await saveCheckpoint(model);
  const { tensors, metadata } = readSafetensors(bytes);
  ok(!("lm_head.weight" in tensors));
  deepStrictEqual(JSON.parse(metadata.tied), { "lm_head.weight": "transformer.wte.weight" });
  const ck = loadCheckpoint(bytes, { backend: cpu });
  strictEqual(ck.model.lm_head.weight, ck.model.transformer.wte.weight);
});

/** The model's weights laid out as Hugging Face's GPT2Model saves them. */
async function hfLayout(m: LanguageModel, prefix = ""): Promise<Record<string, NamedArray>> {
  const out: Record<string, NamedArray> = {};
  const T = CFG.blockSize;
  for (const [name, p] of m.namedParameters()) {
    const data = await p.data() as Float32Array;
    const short = prefix + name.replace(/^transformer\./, "");
    if (/\.(c_attn|c_proj|c_fc)\.weight$/.test(name)) {
      const [rows, cols] = p.shape; // ours [out, in] -> Conv1D [in, out]
      const t = new Float32Array(data.length);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) t[c * rows + r] = data[r * cols + c];
      }
      out[short] = { dtype: "F32", shape: [cols, rows], data: t };
    } else {
      out[short] = { dtype: "F32", shape: [...p.shape], data };
    }
    const blk = /^transformer\.h\.(\d+)\.ln_1\.weight$/.exec(name);
    if (blk) {
      out[`${prefix}h.${blk[1]}.attn.bias`] = {
        dtype: "F32",
        shape: [1, 1, T, T],
        data: new Float32Array(T * T),
      };
      out[`${prefix}h.${blk[1]}.attn.masked_bias`] = {
        dtype: "F32",
        shape: [],
        data: new Float32Array([-1e4]),
      };
    }
  }
  return out;
}

Deno.test("a Hugging Face GPT-2 layout file loads: Conv1D transposed, buffers skipped, lm_head tied", async () => {
  const { model } = trained("gpt");
  const want = await model.forward(IDS()).logits.data();
  for (const prefix of ["", "transformer."]) {
    const tensors = await hfLayout(model, prefix);
    deepStrictEqual(tensors[`${prefix}h.0.attn.c_attn.weight`].shape, [8, 24]); // [in, out]
    const bytes = writeSafetensors(tensors);
    // The shapes of a width-8 GPT fit 1, 2, 4 or 8 heads: refused until nHead is given.
    throws(
      () => loadCheckpoint(bytes, { backend: cpu }),
      (e: Error) =>
        e.message.includes("width 8 fits 4 (nHead 1, 2, 4, 8); give it: --n-head") &&
        e.message.includes("config.nHead"),
    );
    // HF GPT-2 computes the tanh GELU; this model was made with the exact one, so say so.
    const hf = loadCheckpoint(bytes, { backend: cpu, config: { nHead: 2 } });
    deepStrictEqual(hf.config, { ...CFG, activation: "gelu_tanh" });
    hf.model.dispose();
    const ck = loadCheckpoint(bytes, { backend: cpu, config: { nHead: 2, activation: "gelu" } });
    strictEqual(ck.source, "hf-gpt2");
    deepStrictEqual(ck.config, { ...CFG, activation: "gelu" });
    strictEqual(ck.model.lm_head.weight, ck.model.transformer.wte.weight);
    deepStrictEqual(await ck.model.forward(IDS()).logits.data(), want);
  }
});

Deno.test("a nanoGPT-named file without metadata loads (lm_head.weight alias included)", async () => {
  const { model } = trained("gpt");
  const tensors: Record<string, NamedArray> = {};
  for (const [n, p] of Object.entries(model.stateDict())) {
    tensors[n] = { dtype: "F32", shape: [...p.shape], data: await p.data() as Float32Array };
  }
  const ck = loadCheckpoint(writeSafetensors(tensors), { backend: cpu, config: { nHead: 2 } });
  strictEqual(ck.source, "nanogpt");
  deepStrictEqual(
    await ck.model.forward(IDS()).logits.data(),
    await model.forward(IDS()).logits.data(),
  );
});

Deno.test("format version, config and shape problems are one-line CheckpointErrors", async () => {
  const { model } = trained("bitgpt");
  const { tensors, metadata } = readSafetensors(await saveCheckpoint(model));
  const remeta = (m: Record<string, string>) => writeSafetensors(tensors, { ...metadata, ...m });
  throws(
    () => loadCheckpoint(remeta({ format_version: "2" })),
    (e: Error) =>
      e instanceof CheckpointError &&
      /format version 2 is newer than this build reads \(1\); update bitgpt/.test(e.message),
  );
  throws(
    () => loadCheckpoint(remeta({ format_version: "x" })),
    /format_version 'x' is not a version number/,
  );
  throws(() => loadCheckpoint(remeta({ format: "other" })), /unknown format 'other'/);
  throws(
    () => loadCheckpoint(remeta({ model: "llama" })),
    /model must be one of gpt, bitgpt, got 'llama'/,
  );
  throws(() => loadCheckpoint(remeta({ config: "{" })), /metadata 'config' is not valid JSON/);
  throws(
    () => loadCheckpoint(remeta({ config: JSON.stringify({ ...CFG, nHead: 3 }) })),
    /stored config: nEmbd \(8\) must be divisible by nHead \(3\)/,
  );
  const wider = writeSafetensors(tensors, {
    ...metadata,
    config: JSON.stringify({ ...CFG, vocabSize: 14 }),
  });
  throws(
    () => loadCheckpoint(wider, { backend: cpu }),
    (e: Error) =>
      e instanceof CheckpointError &&
      /shape mismatch transformer\.wte\.weight: given \[13, 8\], model has \[14, 8\]/.test(
        e.message,
      ),
  );
  const missing = { ...tensors };
  delete missing["lm_head.bias"];
  throws(
    () => loadCheckpoint(writeSafetensors(missing, metadata), { backend: cpu }),
    /missing lm_head\.bias/,
  );
});
