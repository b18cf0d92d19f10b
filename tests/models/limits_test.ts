// Device limits are the engine's: the nano models on a backend whose bindings hold 4 KiB (the
// CPU's test option, WebGPU's limitBindings), where wte, lm_head, activations and logits are all
// larger than one binding, give the same logits, loss and gradients as without the limit; the
// loss fused over blocks of tokens (maxLogitsBytes) equals the whole one, returns no logits and
// needs less memory; AdamW steps lower it; generation and the training loop are unaffected;
// nanoGPT files load into a model on such a backend; the meta backend builds a model with no
// memory and the same parameters.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import { CpuBackend } from "../../engine/cpu/backend.ts";
import { fromArray } from "../../engine/creation.ts";
import type { DType } from "../../engine/dtype.ts";
import { meta } from "../../engine/meta.ts";
import { Generator } from "../../engine/random.ts";
import { tidy } from "../../engine/scope.ts";
import type { Tensor } from "../../engine/tensor.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import type { ModelKind } from "../../models/config.ts";
import { generate } from "../../models/generate.ts";
import type { LanguageModel } from "../../models/model.ts";
import { createModel } from "../../models/model.ts";
import { parameterCount } from "../../models/params.ts";
import { DeviceLimitError } from "../../engine/errors.ts";
import { loadCheckpoint, saveCheckpoint } from "../../models/checkpoint.ts";
import { getPreset } from "../../models/presets.ts";
import { train } from "../../models/train.ts";
import { AdamW } from "../../nn/optim.ts";
import { assertClose, cpu, gpu, hasWebGPU } from "../util.ts";
import { tokenBatches } from "../../data/sampler.ts";

const NANO = getPreset("nano").model; // V 65, C 44: wte is 11,440 bytes in f32
const KINDS: ModelKind[] = ["gpt", "bitgpt"];
const [B, T] = [2, 8]; // 16 rows of logits
/**
 * Bindings of 4 KiB (CPU) or 8 KiB (WebGPU, where pieces of the row kernels start on 32-byte
 * boundaries: 8 tokens of 176 floats): the embeddings, MLP weights and activations are over it.
 */
const LIMIT = 4096;
const GPU_LIMIT = 8192;
const smallCpu = new CpuBackend({ maxBindingBytes: LIMIT });

function build(kind: ModelKind, be: Backend, dtype: DType) {
  return createModel(kind, NANO, { backend: be, dtype, generator: new Generator(5) });
}

/** ids and targets [B, T]; two targets are -1 (ignored). */
function batch(be: Backend): [Tensor, Tensor] {
  const g = new Generator(11);
  const y = g.integers(B * T, NANO.vocabSize);
  y[3] = -1;
  y[B * T - 2] = -1;
  const ids = (a: Int32Array) => fromArray(a, [B, T], { dtype: "i32", backend: be });
  return [ids(g.integers(B * T, NANO.vocabSize)), ids(y)];
}

interface Step {
  loss: number;
  logits: Float64Array | null;
  grads: Record<string, Float64Array>;
}

/** Loss, logits (when returned) and every gradient of one forward/backward at `maxLogits`. */
async function step(m: LanguageModel, be: Backend, maxLogits?: number): Promise<Step> {
  const [x, y] = batch(be);
  m.zeroGrad();
  m.maxLogitsBytes = maxLogits;
  const r = tidy(() => {
    const { logits, loss } = m.forward(x, y);
    loss.backward();
    return { loss, logits };
  });
  const grads: Record<string, Float64Array> = {};
  for (const [n, p] of m.namedParameters()) grads[n] = Float64Array.from(await p.grad!.data());
  const out = {
    loss: await r.loss.item(),
    logits: r.logits ? Float64Array.from(await r.logits.data()) : null,
    grads,
  };
  r.loss.dispose();
  r.logits?.dispose();
  x.dispose();
  y.dispose();
  return out;
}

/**
 * BitGPT on small WebGPU bindings: a weight's absmean sums its row in chunks there, so its f32
 * scale may differ in the last bit and flip a quantisation tie (a level 64 becomes 63); values
 * then agree to that, and gradients in norm.
 */
function compareLoose(got: Step, want: Step, what: string): void {
  assertClose([got.loss], [want.loss], { atol: 2e-3, rtol: 2e-3, msg: `${what} loss` });
  if (got.logits && want.logits) {
    assertClose(got.logits, want.logits, { atol: 1e-2, rtol: 1e-2, msg: `${what} logits` });
  }
  for (const [n, g] of Object.entries(want.grads)) {
    const [d, w] = g.reduce(([d, w], v, i) => [d + (got.grads[n][i] - v) ** 2, w + v * v], [0, 0]);
    ok(
      Math.sqrt(d) <= 0.05 * Math.sqrt(w) + 1e-6,
      `${what} ${n}: |Δ| ${Math.sqrt(d)}, |g| ${Math.sqrt(w)}`,
    );
  }
}

/** Same loss, logits and gradients (each to tol of its own largest value). */
function compare(got: Step, want: Step, tol: number, what: string): void {
  assertClose([got.loss], [want.loss], { atol: tol, rtol: tol, msg: `${what} loss` });
  if (got.logits && want.logits) {
    assertClose(got.logits, want.logits, { atol: tol, rtol: tol, msg: `${what} logits` });
  }
  deepStrictEqual(Object.keys(got.grads), Object.keys(want.grads));
  for (const [n, g] of Object.entries(want.grads)) {
    const scale = g.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    assertClose(got.grads[n], g, { atol: tol * scale, rtol: tol, msg: `${what} ${n}` });
  }
}

/** `fn` on the WebGPU backend with its bindings limited to `bytes`, restored afterwards. */
async function withLimit<T>(bytes: number, fn: (be: WebGpuBackend) => Promise<T>): Promise<T> {
  const be = (await gpu()) as WebGpuBackend;
  be.limitBindings(bytes);
  try {
    return await fn(be);
  } finally {
    be.limitBindings(null);
  }
}

for (const kind of KINDS) {
  Deno.test(`${kind} on 4 KiB bindings (cpu f64): same logits, loss, gradients`, async () => {
    const want = await step(build(kind, cpu, "f64"), cpu);
    const got = await step(build(kind, smallCpu, "f64"), smallCpu);
    compare(got, want, 1e-12, `${kind} small bindings`);
  });

  Deno.test(`${kind} loss fused over blocks of tokens (cpu f64): same loss and gradients`, async () => {
    const m = build(kind, cpu, "f64");
    const whole = await step(m, cpu);
    const blocked = await step(m, cpu, 7 * NANO.vocabSize * 8); // blocks of 6, 6, 4 rows
    ok(whole.logits && !blocked.logits, "logits only from the unblocked forward");
    compare(blocked, whole, 1e-12, `${kind} blocked`);
    m.dispose();
  });

  Deno.test({
    name: `${kind} on 8 KiB bindings (webgpu): same logits, loss, gradients; blocked loss too`,
    ignore: !hasWebGPU,
    fn: async () => {
      const be = await gpu();
      const want = await step(build(kind, be, "f32"), be);
      const check = kind === "gpt"
        ? (got: Step, what: string) => compare(got, want, 2e-5, what)
        : (got: Step, what: string) => compareLoose(got, want, what);
      await withLimit(GPU_LIMIT, async (small) => {
        const m = build(kind, small, "f32");
        check(await step(m, small), `${kind} webgpu small bindings`);
        const blocked = await step(m, small, 5 * NANO.vocabSize * 4);
        strictEqual(blocked.logits, null);
        check(blocked, `${kind} webgpu small bindings, blocked`);
        m.dispose();
      });
    },
  });
}

async function adamwLowersLoss(kind: ModelKind, be: Backend) {
  const m = build(kind, be, "f32");
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

Deno.test("AdamW steps on small bindings with the blocked loss lower it (cpu, webgpu)", async () => {
  for (const kind of KINDS) await adamwLowersLoss(kind, smallCpu);
  if (hasWebGPU) {
    await withLimit(GPU_LIMIT, async (be) => {
      for (const kind of KINDS) await adamwLowersLoss(kind, be);
    });
  }
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
  name: "the blocked loss's step no longer holds the whole logits and their gradient on the GPU",
  ignore: !hasWebGPU,
  fn: async () => {
    const be = (await gpu()) as WebGpuBackend;
    // A vocabulary large enough for the logits to dominate memory: [256, 2048] f32 = 2 MiB.
    const wide = { ...NANO, vocabSize: 2048, blockSize: 32, nLayer: 1, nHead: 2, nEmbd: 32 };
    for (const kind of KINDS) {
      const m = createModel(kind, wide, { backend: be, generator: new Generator(5) });
      const g = new Generator(11);
      const ids = (a: Int32Array) => fromArray(a, [8, 32], { dtype: "i32", backend: be });
      const [x, y] = [ids(g.integers(256, 2048)), ids(g.integers(256, 2048))];
      const logitsBytes = 8 * 32 * 2048 * 4;
      const blockBytes = logitsBytes / 16; // 16 blocks of 16 rows
      const whole = await stepPeak(m, be, x, y, Infinity);
      const blocked = await stepPeak(m, be, x, y, blockBytes);
      const msg = `${kind}: peak above start ${whole.peak} B whole, ${blocked.peak} B in ` +
        `blocks of ${blockBytes} B (logits ${logitsBytes} B)`;
      ok(whole.peak >= 2 * logitsBytes, msg); // logits and dlogits live together
      ok(whole.peak - blocked.peak >= 2 * logitsBytes - 4 * blockBytes, msg);
      ok(blocked.peak < 0.5 * whole.peak, msg);
      assertClose([blocked.loss], [whole.loss], { atol: 1e-5, rtol: 1e-5, msg });
      m.dispose();
      x.dispose();
      y.dispose();
    }
  },
});

Deno.test("generation and the training loop run on small bindings with the blocked loss", async () => {
  const m = build("gpt", smallCpu, "f32");
  m.maxLogitsBytes = NANO.vocabSize * 4 * 3;
  const out = await generate(m, [1, 2, 3], { maxNewTokens: 5, temperature: 0, seed: 1 });
  strictEqual(out[0].length, 5);
  const data = Int32Array.from({ length: 400 }, (_, i) => (i * 7) % NANO.vocabSize);
  const r = await train({
    model: m,
    data: tokenBatches({ train: data, val: data }),
    train: { maxIters: 3, batchSize: 2, evalIters: 1, evalInterval: 2, logInterval: 1 },
  });
  strictEqual(r.iteration, 3);
  r.model.dispose();
});

Deno.test("a checkpoint saved on small bindings is the same file and loads there", async () => {
  const whole = build("gpt", cpu, "f32");
  const small = build("gpt", smallCpu, "f32");
  const [a, b] = [await saveCheckpoint(whole), await saveCheckpoint(small)];
  deepStrictEqual(b, a, "the file does not depend on the binding limit");
  const back = loadCheckpoint(a, { backend: smallCpu });
  const want = new Map(whole.namedParameters());
  for (const [n, p] of back.model.namedParameters()) {
    deepStrictEqual(await p.data(), await want.get(n)!.data(), n);
  }
  whole.dispose();
  small.dispose();
  back.model.dispose();
});

Deno.test("a model with a parameter over the backend's largest tensor is refused up front", () => {
  const tiny = new CpuBackend({ maxTensorBytes: 8000 });
  throws(() => createModel("gpt", NANO, { backend: tiny }), (e: Error) => {
    ok(e instanceof DeviceLimitError, `${e}`);
    ok(/gpt: transformer\.wte\.weight \[65, 44\] f32 needs 11440 bytes/.test(e.message), e.message);
    ok(e.message.includes("limit of 8000 bytes"), e.message);
    return true;
  });
  strictEqual(parameterCount("bitgpt", NANO), build("bitgpt", cpu, "f32").numParameters());
});

Deno.test("the meta backend builds a model without memory: same parameter names and shapes", () => {
  for (const kind of KINDS) {
    const real = build(kind, cpu, "f32");
    const shapes = createModel(kind, NANO, { backend: meta }).namedParameters()
      .map(([n, p]) => [n, [...p.shape]]);
    deepStrictEqual(shapes, real.namedParameters().map(([n, p]) => [n, [...p.shape]]));
    real.dispose();
  }
  // A 1.3B model in no time and no memory.
  const big = createModel("gpt", getPreset("1b").model, { backend: meta });
  ok(big.countParameters() > 1.2e9, `${big.countParameters()}`);
});
