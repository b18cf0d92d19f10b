// The loss over row blocks (models/head_loss.ts), forced with a tiny `maxLogitsBytes` on the nano
// preset: loss and every gradient equal the unblocked computation (float64 on the CPU, f32 on
// WebGPU), with ignored targets, split tables and BitGPT's biased head; `logits` is null then;
// AdamW steps lower the loss; the pool's peak live bytes of a blocked step stay far below an
// unblocked one's; logits wanted whole over a binding are refused, generation and the training
// loop are unaffected; block sizes as planned for GPT-2 on llvmpipe and an H100.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import { fromArray } from "../../engine/creation.ts";
import type { DType } from "../../engine/dtype.ts";
import { Generator } from "../../engine/random.ts";
import { tidy } from "../../engine/scope.ts";
import type { Tensor } from "../../engine/tensor.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { type GPTConfig, makeConfig, type ModelKind } from "../../models/config.ts";
import { generate } from "../../models/generate.ts";
import type { LanguageModel } from "../../models/lm.ts";
import { createModel } from "../../models/model.ts";
import { DeviceLimitError, logitsBlockRows } from "../../models/params.ts";
import { getPreset } from "../../models/presets.ts";
import { train } from "../../models/train.ts";
import { AdamW } from "../../nn/optim.ts";
import { joinChunks } from "../../nn/split.ts";
import { assertClose, cpu, gpu, hasWebGPU } from "../util.ts";

const NANO = getPreset("nano").model; // V 65, C 44
const KINDS: ModelKind[] = ["gpt", "bitgpt"];
const [B, T] = [2, 8]; // 16 rows of logits

function build(kind: ModelKind, be: Backend, dtype: DType, split: boolean, cfg = NANO) {
  // 4 KiB tables: wte (and BitGPT's lm_head) in several row chunks.
  const splitTableBytes = split ? 4096 : undefined;
  return createModel(kind, cfg, {
    backend: be,
    dtype,
    generator: new Generator(5),
    splitTableBytes,
  });
}

/** ids and targets [B, T]; two targets are -1 (ignored). */
function batch(be: Backend, V = NANO.vocabSize, b = B, t = T): [Tensor, Tensor] {
  const g = new Generator(11);
  const y = g.integers(b * t, V);
  y[3] = -1;
  y[b * t - 2] = -1;
  const ids = (a: Int32Array) => fromArray(a, [b, t], { dtype: "i32", backend: be });
  return [ids(g.integers(b * t, V)), ids(y)];
}

/** Loss, whether logits came back, and every gradient under its whole name, at `limit`. */
async function step(m: LanguageModel, x: Tensor, y: Tensor, limit: number) {
  m.zeroGrad();
  m.maxLogitsBytes = limit;
  const r = tidy(() => {
    const { logits, loss } = m.forward(x, y);
    loss.backward();
    return { loss, hasLogits: logits !== null };
  });
  const grads: Record<string, { shape: number[]; data: Float64Array }> = {};
  for (const [n, p] of m.namedParameters()) {
    grads[n] = { shape: [...p.shape], data: Float64Array.from(await p.grad!.data()) };
  }
  const loss = await r.loss.item();
  r.loss.dispose();
  return { loss, hasLogits: r.hasLogits, grads: joinChunks(m, grads) };
}

/** Compare a blocked step (blocks of 6, 6, 4 rows) with the unblocked one on the same model. */
async function compareBlocked(kind: ModelKind, be: Backend, dtype: DType, split: boolean) {
  const tol = dtype === "f64" ? 1e-12 : 2e-5;
  const m = build(kind, be, dtype, split);
  const [x, y] = batch(be);
  const whole = await step(m, x, y, Infinity);
  const rowBytes = NANO.vocabSize * (dtype === "f64" ? 8 : 4);
  const blocked = await step(m, x, y, 7 * rowBytes); // ⌈16 / ⌈16/7⌉⌉ = 6 rows per block
  const what = `${kind} ${be.name} ${dtype}${split ? " split" : ""}`;
  ok(whole.hasLogits && !blocked.hasLogits, `${what}: logits only from the unblocked forward`);
  assertClose([blocked.loss], [whole.loss], { atol: tol, rtol: tol, msg: `${what} loss` });
  deepStrictEqual(Object.keys(blocked.grads), Object.keys(whole.grads));
  for (const [n, g] of Object.entries(whole.grads)) {
    // Per tensor: |Δ| ≤ tol·max|g| + tol·|g| (dW sums its rows in blocks: rounding only).
    const scale = g.data.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    assertClose(blocked.grads[n].data, g.data, {
      atol: tol * scale,
      rtol: tol,
      msg: `${what} ${n}`,
    });
  }
  m.dispose();
  x.dispose();
  y.dispose();
}

for (const kind of KINDS) {
  Deno.test(`blocked loss, ${kind}, cpu f64: loss and all gradients equal the unblocked ones`, async () => {
    for (const split of [false, true]) await compareBlocked(kind, cpu, "f64", split);
  });
  Deno.test({
    name: `blocked loss, ${kind}, webgpu f32: loss and all gradients equal the unblocked ones`,
    ignore: !hasWebGPU,
    fn: async () => {
      for (const split of [false, true]) await compareBlocked(kind, await gpu(), "f32", split);
    },
  });
}

async function adamwLowersLoss(kind: ModelKind, be: Backend) {
  const m = build(kind, be, "f32", true);
  m.maxLogitsBytes = 5 * NANO.vocabSize * 4; // blocks of 4 rows
  const [x, y] = batch(be);
  const opt = new AdamW(m, { lr: 3e-3 });
  const losses: number[] = [];
  for (let i = 0; i < 6; i++) {
    const loss = tidy(() => {
      const r = m.forward(x, y);
      strictEqual(r.logits, null);
      r.loss.backward();
      opt.step();
      opt.zeroGrad();
      return r.loss;
    });
    losses.push(await loss.item());
    loss.dispose();
  }
  ok(losses[5] < losses[0] - 0.05, `${kind} ${be.name}: losses ${losses.map((l) => l.toFixed(4))}`);
  m.dispose();
}

Deno.test("blocked loss: AdamW steps lower the loss (cpu and webgpu, both models)", async () => {
  for (const kind of KINDS) {
    await adamwLowersLoss(kind, cpu);
    if (hasWebGPU) await adamwLowersLoss(kind, await gpu());
  }
});

// A vocabulary large enough for the logits to dominate memory: [128, 2048] f32 = 1 MiB.
const WIDE: GPTConfig = makeConfig({
  vocabSize: 2048,
  blockSize: 32,
  nLayer: 1,
  nHead: 2,
  nEmbd: 32,
  dropout: 0,
});

/** Pool peak live bytes above the start of one forward + backward at `limit` (grads zeroed). */
async function stepPeak(m: LanguageModel, be: WebGpuBackend, x: Tensor, y: Tensor, limit: number) {
  m.zeroGrad();
  m.maxLogitsBytes = limit;
  await be.sync();
  const base = be.stats().liveBytes;
  be.pool.resetPeak();
  const loss = tidy(() => {
    const { loss } = m.forward(x, y);
    loss.backward();
    return loss;
  });
  const value = await loss.item();
  loss.dispose();
  return { peak: be.stats().peakLiveBytes - base, loss: value };
}

Deno.test({
  name: "blocked loss: a step's peak live GPU memory no longer holds the logits and their gradient",
  ignore: !hasWebGPU,
  fn: async () => {
    const be = await gpu() as WebGpuBackend;
    for (const kind of KINDS) {
      const m = build(kind, be, "f32", false, WIDE);
      const [x, y] = batch(be, WIDE.vocabSize, 8, 32);
      const logitsBytes = 8 * 32 * WIDE.vocabSize * 4; // 2 MiB
      const blockBytes = logitsBytes / 16; // 16 blocks of 16 rows
      const whole = await stepPeak(m, be, x, y, Infinity);
      const blocked = await stepPeak(m, be, x, y, blockBytes);
      const msg = `${kind}: peak above start ${whole.peak} B unblocked, ${blocked.peak} B in ` +
        `blocks of ${blockBytes} B (logits ${logitsBytes} B)`;
      // Unblocked, the logits and dlogits [256, 2048] are live together (BitGPT: + pre-bias).
      ok(whole.peak >= 2 * logitsBytes, msg);
      // Blocked saves both but for a couple of blocks; the rest is the model's activations and
      // the head's weight gradient, which both paths hold.
      ok(whole.peak - blocked.peak >= 2 * logitsBytes - 4 * blockBytes, msg);
      ok(blocked.peak < 0.5 * whole.peak, msg);
      assertClose([blocked.loss], [whole.loss], { atol: 1e-5, rtol: 1e-5, msg });
      m.dispose();
      x.dispose();
      y.dispose();
    }
  },
});

Deno.test("logits wanted whole over the binding limit are refused; with targets the loss is blocked", async () => {
  // 32 KiB: every nano weight fits (c_fc is 30,976 B), the logits of 4 × 32 tokens (33,280 B) not.
  const m = createModel("gpt", NANO, {
    backend: cpu,
    generator: new Generator(5),
    maxBindingBytes: 32768,
  });
  const [x, y] = batch(cpu, NANO.vocabSize, 4, 32);
  throws(
    () => m.forward(x),
    (e: Error) =>
      e instanceof DeviceLimitError &&
      /gpt: the logits \[128, 65\] f32 of 128 tokens need 33280 bytes .* limit of 32768 bytes .* by 512; forward at most 126 tokens/
        .test(e.message),
  );
  const r = m.forward(x, y);
  strictEqual(r.logits, null);
  ok(Number.isFinite(await r.loss.item()));
  deepStrictEqual([...m.forward(x, null, { lastOnly: true }).logits.shape], [4, 1, 65]);
  m.dispose();
});

Deno.test("blocked loss: generation (last position only) and the training loop are unaffected", async () => {
  const m = build("gpt", cpu, "f32", false);
  const want = await generate(m, [1, 2, 3], { maxNewTokens: 6, temperature: 0 });
  m.maxLogitsBytes = NANO.vocabSize * 4; // one row per block
  deepStrictEqual(await generate(m, [1, 2, 3], { maxNewTokens: 6, temperature: 0 }), want);
  // train() evaluates and steps on losses alone.
  const tokens = new Generator(3).integers(400, NANO.vocabSize);
  const evals: number[] = [];
  const res = await train({
    model: m,
    data: { train: tokens.subarray(0, 300), val: tokens.subarray(300) },
    train: { maxIters: 2, batchSize: 2, evalIters: 1, evalInterval: 1, logInterval: 1 },
    onEval: (e) => void evals.push(e.trainLoss, e.valLoss),
  });
  strictEqual(res.iteration, 2);
  ok(evals.length === 4 && evals.every(Number.isFinite), `eval losses ${evals}`);
  m.dispose();
});

Deno.test("logitsBlockRows: GPT-2's vocabulary on llvmpipe (128 MiB) and an H100 (2 GiB)", () => {
  const V = 50257;
  const lim = (maxBytes: number, withLoss = true) => ({
    withLoss,
    maxLogitsBytes: maxBytes,
    maxBindingBytes: maxBytes,
  });
  strictEqual(logitsBlockRows("gpt", 667, V, "f32", lim(2 ** 27)), null); // 134 MB fits
  strictEqual(logitsBlockRows("gpt", 1024, V, "f32", lim(2 ** 27)), 512); // 206 MB: 2 blocks
  strictEqual(logitsBlockRows("gpt", 12 * 1024, V, "f32", lim(2 ** 27)), 647); // 19 blocks
  strictEqual(logitsBlockRows("gpt", 12 * 1024, V, "f32", lim(2 ** 31)), 6144); // 2 blocks
  throws(
    () => logitsBlockRows("gpt", 1024, V, "f32", lim(2 ** 27, false)),
    /logits \[1024, 50257\] f32 of 1024 tokens need 205852672 bytes .* at most 667 tokens/,
  );
  throws(() => logitsBlockRows("gpt", 4, V, "f32", lim(1000)), /one token's logits/);
});
