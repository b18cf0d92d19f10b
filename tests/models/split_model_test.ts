// Models whose tables are held as row chunks (forced small with `splitTableBytes` on the nano
// preset): same seed gives the same weights as the unsplit model; logits, loss and every
// gradient match; AdamW steps; checkpoints are byte-identical across split/unsplit and load either
// way (optimizer moments too), nanoGPT-named files included; weights that cannot be split are
// refused up front naming the tensor, bytes and limit; the parameter table matches the models.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import { fromArray } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { tidy } from "../../engine/scope.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { loadCheckpoint, saveCheckpoint } from "../../models/checkpoint.ts";
import { type GPTConfig, makeConfig, type ModelKind } from "../../models/config.ts";
import type { LanguageModel } from "../../models/lm.ts";
import { createModel } from "../../models/model.ts";
import {
  checkBindingLimit,
  DeviceLimitError,
  parameterCount,
  parameterSpecs,
} from "../../models/params.ts";
import { getPreset } from "../../models/presets.ts";
import { AdamW } from "../../nn/optim.ts";
import { type NamedArray, readSafetensors, writeSafetensors } from "../../nn/safetensors.ts";
import { joinChunks, RowChunks } from "../../nn/split.ts";
import { assertClose, cpu, gpu, hasWebGPU } from "../util.ts";

const NANO = getPreset("nano").model; // wte [65, 44], wpe [32, 44]
// 4 KiB tables: wte and BitGPT's lm_head in chunks of 22, 22, 21 rows, wpe in 16 + 16.
const SPLIT = 4096;
const KINDS: ModelKind[] = ["gpt", "bitgpt"];

function build(kind: ModelKind, backend: Backend, split: boolean, cfg = NANO): LanguageModel {
  const splitTableBytes = split ? SPLIT : undefined;
  return createModel(kind, cfg, { backend, generator: new Generator(5), splitTableBytes });
}

function batch(backend: Backend, B = 2, T = 8): [Tensor, Tensor] {
  const g = new Generator(11);
  const ids = (a: Int32Array) => fromArray(a, [B, T], { dtype: "i32", backend });
  return [ids(g.integers(B * T, NANO.vocabSize)), ids(g.integers(B * T, NANO.vocabSize))];
}

/** Every parameter's gradient under its whole name (chunk gradients joined). */
async function grads(m: LanguageModel): Promise<Record<string, NamedArray>> {
  const out: Record<string, NamedArray> = {};
  for (const [n, p] of m.namedParameters()) {
    out[n] = { dtype: "F32", shape: [...p.shape], data: await p.grad!.data() as Float32Array };
  }
  return joinChunks(m, out);
}

/** Forward + backward on both models; compare logits, loss and every whole gradient. */
async function compareStep(a: LanguageModel, b: LanguageModel, be: Backend, tol: number) {
  const [x, y] = batch(be);
  const ra = a.forward(x, y);
  const rb = b.forward(x, y);
  ok(ra.logits && rb.logits, "small batches return logits");
  assertClose(await rb.logits.data(), await ra.logits.data(), { atol: tol, rtol: tol });
  assertClose([await rb.loss!.item()], [await ra.loss!.item()], { atol: tol, rtol: tol });
  ra.loss!.backward();
  rb.loss!.backward();
  const [ga, gb] = [await grads(a), await grads(b)];
  deepStrictEqual(Object.keys(gb), Object.keys(ga));
  for (const k of Object.keys(ga)) {
    assertClose(gb[k].data, ga[k].data, { atol: tol, rtol: 10 * tol, msg: k });
  }
}

for (const kind of KINDS) {
  Deno.test(`${kind} split: same weights, logits, loss and every gradient as unsplit (cpu)`, async () => {
    const [a, b] = [build(kind, cpu, false), build(kind, cpu, true)];
    const names = b.namedParameters().map(([n]) => n);
    ok(names.includes("transformer.wte.weight.2") && names.includes("transformer.wpe.weight.1"));
    ok(b.transformer.wte.table instanceof RowChunks);
    if (kind === "bitgpt") ok(names.includes("lm_head.weight.2"));
    else strictEqual(b.lm_head.table, b.transformer.wte.table); // tied chunk by chunk
    strictEqual(b.numParameters(), a.numParameters());
    strictEqual(b.countParameters(), a.countParameters());
    strictEqual(b.numParameters(), parameterCount(kind, NANO));
    deepStrictEqual(await b.readState(), await a.readState()); // chunks drawn in row order
    await compareStep(a, b, cpu, 1e-6);
  });

  Deno.test(`${kind} split: AdamW steps and checkpoints are byte-identical across split/unsplit`, async () => {
    const [a, b] = [build(kind, cpu, false), build(kind, cpu, true)];
    strictEqual(await bytesOf(b), await bytesOf(a)); // untrained, same seed
    const [opt, optA] = [new AdamW(b, { lr: 1e-2 }), new AdamW(a, { lr: 1e-2 })];
    const [x, y] = batch(cpu);
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const loss = tidy(() => {
        for (const [m, o] of [[a, optA], [b, opt]] as const) {
          const { loss } = m.forward(x, y);
          loss!.backward();
          o.step();
          o.zeroGrad();
          if (m === b) return loss!;
        }
      })!;
      losses.push(await loss.item());
      loss.dispose();
    }
    // Adam divides by √v: where a gradient is near 0, ulp-level differences in it (the chunks sum
    // dx in another order) move an update by up to a few percent of lr = 1e-2.
    const [sa, sb] = [await a.readState(), await b.readState()];
    for (const k of Object.keys(sa)) {
      assertClose(sb[k].data, sa[k].data, { atol: 1e-4, rtol: 1e-4, msg: `${k} after 3 steps` });
    }
    const saved = await saveCheckpoint(b, { optimizer: opt, iteration: 3 });
    const { tensors, metadata } = readSafetensors(saved);
    deepStrictEqual(tensors["transformer.wte.weight"].shape, [65, 44]);
    deepStrictEqual(tensors["optimizer.transformer.wte.weight.exp_avg"].shape, [65, 44]);
    ok(!Object.keys(tensors).some((k) => /weight\.\d/.test(k)), "no chunk names in the file");
    if (kind === "gpt") {
      deepStrictEqual(JSON.parse(metadata.tied), { "lm_head.weight": "transformer.wte.weight" });
    }
    // split -> unsplit -> split, optimizer included: every save is the same bytes.
    let bytes = saved;
    for (const splitTableBytes of [undefined, SPLIT]) {
      const ck = loadCheckpoint(bytes, { backend: cpu, model: { splitTableBytes } });
      strictEqual(ck.model.transformer.wte.table instanceof RowChunks, splitTableBytes === SPLIT);
      const o = new AdamW(ck.model, { lr: 1e-2 });
      o.loadStateDict(ck.optimizer!);
      bytes = await saveCheckpoint(ck.model, { optimizer: o, iteration: 3 });
      deepStrictEqual(bytes, saved);
      ck.model.dispose();
      o.dispose();
    }
    // Training went on in the chunks: the loss fell.
    ok(losses[2] < losses[0], `losses ${losses}`);
    for (const d of [a, b, opt, optA]) d.dispose();
  });
}

async function bytesOf(m: LanguageModel): Promise<string> {
  return Array.from(await saveCheckpoint(m)).join(",");
}

Deno.test("a nanoGPT-named file (whole wte, lm_head alias) loads into a split model", async () => {
  const a = build("gpt", cpu, false);
  const tensors: Record<string, NamedArray> = {};
  for (const [n, p] of Object.entries(a.stateDict())) {
    tensors[n] = { dtype: "F32", shape: [...p.shape], data: await p.data() as Float32Array };
  }
  ok("lm_head.weight" in tensors);
  const ck = loadCheckpoint(writeSafetensors(tensors), {
    backend: cpu,
    config: { nHead: 2 },
    model: { splitTableBytes: SPLIT },
  });
  strictEqual(ck.source, "nanogpt");
  ok(ck.model.transformer.wte.table instanceof RowChunks);
  deepStrictEqual(await ck.model.readState(), await a.readState());
  const [x] = batch(cpu);
  deepStrictEqual(await ck.model.forward(x).logits.data(), await a.forward(x).logits.data());
});

Deno.test("weights that cannot be split are refused up front, naming tensor, bytes and limit", () => {
  // c_attn [132, 44] f32 = 23232 bytes; the tables could be split under 20000.
  throws(
    () => createModel("gpt", NANO, { backend: cpu, maxBindingBytes: 20000 }),
    (e: Error) =>
      e instanceof DeviceLimitError &&
      e.message.includes("transformer.h.0.attn.c_attn.weight [132, 44] f32 needs 23232 bytes") &&
      e.message.includes("limit of 20000 bytes"),
  );
  throws(
    () => createModel("bitgpt", NANO, { backend: cpu, maxBindingBytes: 20000 }),
    /transformer\.h\.0\.mlp\.c_fc\.weight \[176, 44\] f32 needs 30976 bytes/,
  );
  throws(
    () => createModel("gpt", NANO, { backend: cpu, maxBindingBytes: 100 }),
    /gpt: one row of transformer\.wte\.weight \[65, 44\] f32 needs 176 bytes/,
  );
  // The scale presets fit llvmpipe's 128 MiB binding; a 4096-wide model does not.
  const MiB128 = 128 * 2 ** 20;
  for (const name of ["gpt2-xl", "1b"]) {
    for (const kind of KINDS) checkBindingLimit(kind, getPreset(name).model, MiB128);
  }
  throws(
    () => checkBindingLimit("gpt", makeConfig({ nEmbd: 4096, nHead: 32 }), MiB128),
    /c_attn\.weight \[12288, 4096\] f32 needs 201326592 bytes \(192\.0 MiB\)/,
  );
});

Deno.test("the parameter table matches the models' parameters (names, shapes, counts)", async () => {
  const base = makeConfig({ vocabSize: 11, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 8 });
  const cfgs: GPTConfig[] = [base, { ...base, pos: "rope", bias: false }];
  for (const kind of KINDS) {
    for (const c of cfgs) {
      const m = createModel(kind, c, { backend: cpu });
      const state = await m.readState();
      deepStrictEqual(
        parameterSpecs(kind, c).map((p) => [p.name, p.shape]),
        Object.entries(state).map(([n, v]) => [n, v.shape]),
        `${kind} ${c.pos} bias=${c.bias}`,
      );
      strictEqual(parameterCount(kind, c), m.numParameters());
      m.dispose();
    }
  }
  // GPT-2 XL at GPT-2's own vocabulary: Hugging Face's published 1,557,611,200 parameters.
  const xl = getPreset("gpt2-xl").model;
  strictEqual(parameterCount("gpt", { ...xl, vocabSize: 50257 }), 1_557_611_200);
});

Deno.test({
  name: "gpt and bitgpt split on webgpu: same logits, loss, gradients; a train step; checkpoints",
  ignore: !hasWebGPU,
  fn: async () => {
    const g = await gpu();
    for (const kind of KINDS) {
      const [a, b] = [build(kind, g, false), build(kind, g, true)];
      ok(b.transformer.wte.table instanceof RowChunks);
      strictEqual(await bytesOf(b), await bytesOf(a));
      await compareStep(a, b, g, 2e-5);
      const opt = new AdamW(b, { lr: 1e-2 });
      opt.step();
      const saved = await saveCheckpoint(b, { optimizer: opt });
      const ck = loadCheckpoint(saved, { backend: g });
      ok(!(ck.model.transformer.wte.table instanceof RowChunks));
      const o = new AdamW(ck.model);
      o.loadStateDict(ck.optimizer!);
      deepStrictEqual(await saveCheckpoint(ck.model, { optimizer: o }), saved);
      // A split model moved from the cpu keeps its chunks and computes the same logits.
      const moved = await build(kind, cpu, true).to(g);
      const [x] = batch(g);
      assertClose(await moved.forward(x).logits.data(), await a.forward(x).logits.data(), {
        atol: 2e-5,
        rtol: 2e-5,
      });
      for (const d of [a, b, ck.model, opt, o, moved]) d.dispose();
    }
  },
});
