// The training loop: resuming from an eval-time or an aborted checkpoint reproduces the loss
// trajectory of an uninterrupted run exactly (CPU, fixed seed, dropout on); losses are read
// back only at log and eval points; the loss falls; live GPU memory is flat across steps.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Generator } from "../../engine/random.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { loadCheckpoint } from "../../models/checkpoint.ts";
import { makeConfig, type ModelKind, type TrainConfig } from "../../models/config.ts";
import { type BatchSource, type EvalInfo, type StepInfo, train } from "../../models/train.ts";
import { cpu, gpu, hasWebGPU, settleGarbage, wasm } from "../util.ts";
import { tokenBatches } from "../../data/sampler.ts";

const CFG = makeConfig({
  vocabSize: 17,
  blockSize: 8,
  nLayer: 1,
  nHead: 2,
  nEmbd: 16,
  dropout: 0.1,
});
const TC: Partial<TrainConfig> = {
  batchSize: 3,
  maxIters: 8,
  evalInterval: 4,
  evalIters: 2,
  logInterval: 1,
  warmupIters: 2,
  lrDecayIters: 8,
  learningRate: 1e-2,
  minLr: 1e-3,
  seed: 5,
};

/** Text-like ids: a noisy repeating pattern. */
function tokens(n: number, seed: number): Int32Array {
  const noise = new Generator(seed).integers(n, 4);
  return Int32Array.from({ length: n }, (_, i) => ((i % 13) + noise[i]) % 17);
}
const DATA = tokenBatches({ train: tokens(600, 1), val: tokens(200, 2) });

interface Trace {
  steps: Map<number, number>;
  evals: Map<number, [number, number]>;
}

function tracer(t: Trace, extra?: (s: StepInfo) => void) {
  return {
    onStep: (s: StepInfo) => {
      t.steps.set(s.iter, s.loss);
      extra?.(s);
    },
    onEval: (e: EvalInfo) => void t.evals.set(e.iter, [e.trainLoss, e.valLoss]),
  };
}
const newTrace = (): Trace => ({ steps: new Map(), evals: new Map() });

for (const kind of ["gpt", "bitgpt"] as ModelKind[]) {
  Deno.test(`${kind}: resuming reproduces the uninterrupted loss trajectory exactly`, async () => {
    const full = newTrace();
    await train({ kind, config: CFG, train: TC, data: DATA, backend: cpu, ...tracer(full) });
    strictEqual(full.steps.size, 8);
    deepStrictEqual([...full.evals.keys()], [0, 4, 7]);

    // Stop right after the eval at iteration 4 and resume from that eval's checkpoint.
    let saved: Uint8Array | null = null;
    const first = newTrace();
    const stop = new AbortController();
    await train({
      kind,
      config: CFG,
      train: TC,
      data: DATA,
      backend: cpu,
      signal: stop.signal,
      onStep: (s) => void first.steps.set(s.iter, s.loss),
      onEval: async (e) => {
        if (e.iter === 4) {
          saved = await e.checkpoint();
          stop.abort();
        }
      },
    });
    const resumed = newTrace();
    const ck = loadCheckpoint(saved!, { backend: cpu });
    strictEqual(ck.iteration, 4);
    await train({ resume: ck, data: DATA, ...tracer(resumed) });
    deepStrictEqual([...resumed.steps.keys()], [4, 5, 6, 7]);
    for (const it of [4, 5, 6, 7]) {
      strictEqual(resumed.steps.get(it), full.steps.get(it), `iter ${it}`);
    }
    deepStrictEqual([...resumed.evals.keys()], [7]); // the eval at 4 is not repeated
    deepStrictEqual(resumed.evals.get(7), full.evals.get(7));

    // Abort mid-interval (as Ctrl-C would) and resume from the end-of-run checkpoint.
    const ctl = new AbortController();
    const r = await train({
      kind,
      config: CFG,
      train: TC,
      data: DATA,
      backend: cpu,
      signal: ctl.signal,
      onStep: (s) => void (s.iter === 5 && ctl.abort()),
    });
    strictEqual(r.stopped, "aborted");
    strictEqual(r.iteration, 6);
    const tail = newTrace();
    await train({
      resume: loadCheckpoint(await r.checkpoint(), { backend: cpu }),
      data: DATA,
      ...tracer(tail),
    });
    deepStrictEqual([...tail.steps.keys()], [6, 7]);
    for (const it of [6, 7]) strictEqual(tail.steps.get(it), full.steps.get(it), `iter ${it}`);
  });
}

Deno.test("reads back only at log and eval points; the loss falls", async () => {
  let reads = 0;
  const realRead = cpu.read.bind(cpu);
  cpu.read = (s) => (reads++, realRead(s));
  const t = newTrace();
  try {
    await train({
      kind: "gpt",
      config: { ...CFG, dropout: 0 },
      train: {
        ...TC,
        maxIters: 40,
        lrDecayIters: 40,
        evalInterval: 100,
        logInterval: 10,
        evalIters: 3,
      },
      data: DATA,
      backend: cpu,
      ...tracer(t),
    });
  } finally {
    cpu.read = realRead;
  }
  deepStrictEqual([...t.steps.keys()], [0, 10, 20, 30, 39]);
  // Per log point: the loss and the gradient norm; per eval (iterations 0 and 39): one per split.
  strictEqual(reads, 5 * 2 + 2 * 2);
  ok(t.steps.get(39)! < t.steps.get(0)! - 0.4, `loss ${t.steps.get(0)} -> ${t.steps.get(39)}`);
});

/** A minimal batch source (fixed-stride windows) for runs that bring their own batches. */
function windows(seed: number): BatchSource {
  const gen = new Generator(seed);
  const [B, T] = [TC.batchSize!, CFG.blockSize];
  return {
    gen,
    next() {
      const starts = gen.integers(B, DATA.train.length - T - 1);
      const x = new Int32Array(B * T);
      const y = new Int32Array(B * T);
      starts.forEach((s, b) => {
        x.set(DATA.train.subarray(s, s + T), b * T);
        y.set(DATA.train.subarray(s + 1, s + T + 1), b * T);
      });
      return { x, y };
    },
  };
}

Deno.test({
  name: "webgpu: live GPU memory is flat from step 3 to step 12",
  ignore: !hasWebGPU,
  fn: async () => {
    const g = await gpu() as WebGpuBackend;
    const live = new Map<number, number>();
    await train({
      kind: "bitgpt",
      config: CFG,
      train: { ...TC, maxIters: 13, evalInterval: 100, evalIters: 1 },
      data: { batches: { train: windows(1), val: windows(2), evalTrain: windows(3) } },
      backend: g,
      onStep: async (s) => {
        await settleGarbage();
        live.set(s.iter, g.stats().liveBuffers);
      },
    });
    strictEqual(live.get(12), live.get(3), `live buffers ${[...live.entries()]}`);
  },
});

for (const kind of ["gpt", "bitgpt"] as ModelKind[]) {
  Deno.test(`${kind}: training on wasm tracks the CPU reference's losses`, async () => {
    const run = async (backend: typeof cpu) => {
      const t = newTrace();
      const tc = { ...TC, maxIters: 16, evalInterval: 8 };
      await train({ kind, config: CFG, train: tc, data: DATA, backend, ...tracer(t) });
      return t;
    };
    const [ref, got] = [await run(cpu), await run(await wasm())];
    deepStrictEqual([...got.steps.keys()], [...ref.steps.keys()]);
    for (const [iter, loss] of ref.steps) {
      const d = Math.abs(got.steps.get(iter)! - loss);
      ok(
        d <= 2e-3 * Math.max(1, loss),
        `iteration ${iter}: wasm ${got.steps.get(iter)}, cpu ${loss}`,
      );
    }
    for (const [iter, [tr, va]] of ref.evals) {
      const [gt, gv] = got.evals.get(iter)!;
      ok(
        Math.abs(gt - tr) <= 2e-3 && Math.abs(gv - va) <= 2e-3,
        `eval ${iter}: ${gt}/${gv} vs ${tr}/${va}`,
      );
    }
  });
}
