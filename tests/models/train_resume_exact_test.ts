// Resume exactness of the eval streams (issue 14): a run stopped at maxIters and resumed with a
// larger maxIters evaluates exactly as the uninterrupted run (the extra evaluation at the first
// leg's last iteration must not advance the eval streams), and an evaluation abandoned by the
// signal is redone on resume with the same batches. CPU, bit for bit.

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { Generator } from "../../engine/random.ts";
import { loadCheckpoint } from "../../models/checkpoint.ts";
import { makeConfig, type TrainConfig } from "../../models/config.ts";
import { type BatchSource, type EvalInfo, train } from "../../models/train.ts";
import { BatchSampler, tokenBatches } from "../../data/sampler.ts";
import { cpu } from "../util.ts";

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
  maxIters: 12,
  evalInterval: 4,
  evalIters: 3,
  logInterval: 1,
  warmupIters: 2,
  lrDecayIters: 12,
  learningRate: 1e-2,
  minLr: 1e-3,
  seed: 5,
};

function tokens(n: number, seed: number): Int32Array {
  const noise = new Generator(seed).integers(n, 4);
  return Int32Array.from({ length: n }, (_, i) => ((i % 13) + noise[i]) % 17);
}
const DATA = tokenBatches({ train: tokens(600, 1), val: tokens(200, 2) });

type Evals = Map<number, [number, number]>;
const recorder = (evals: Evals) => (e: EvalInfo) =>
  void evals.set(e.iter, [e.trainLoss, e.valLoss]);

for (const kind of ["gpt", "bitgpt"] as const) {
  Deno.test(`${kind}: eval losses after resuming with a larger maxIters equal the uninterrupted run's`, async () => {
    const full: Evals = new Map();
    await train({ kind, config: CFG, train: TC, data: DATA, backend: cpu, onEval: recorder(full) });
    deepStrictEqual([...full.keys()], [0, 4, 8, 11]);
    // First leg to 6 (its last-iteration eval at 5 is extra), then resume to 12.
    const leg1: Evals = new Map();
    const r = await train({
      kind,
      config: CFG,
      train: { ...TC, maxIters: 6 },
      data: DATA,
      backend: cpu,
      onEval: recorder(leg1),
    });
    deepStrictEqual([...leg1.keys()], [0, 4, 5]);
    const leg2: Evals = new Map();
    await train({
      resume: loadCheckpoint(await r.checkpoint(), { backend: cpu }),
      train: { maxIters: 12 },
      data: DATA,
      onEval: recorder(leg2),
    });
    deepStrictEqual([...leg2.keys()], [8, 11]);
    for (const it of [8, 11]) deepStrictEqual(leg2.get(it), full.get(it), `eval at ${it}`);
    // Same from the rolling checkpoint taken at the extra evaluation (iteration 5).
    let rolling: Uint8Array | null = null;
    await train({
      kind,
      config: CFG,
      train: { ...TC, maxIters: 6 },
      data: DATA,
      backend: cpu,
      onEval: async (e) => void (e.iter === 5 && (rolling = await e.checkpoint())),
    });
    const leg3: Evals = new Map();
    await train({
      resume: loadCheckpoint(rolling!, { backend: cpu }),
      train: { maxIters: 12 },
      data: DATA,
      onEval: recorder(leg3),
    });
    deepStrictEqual([...leg3.keys()], [8, 11]);
    for (const it of [8, 11]) deepStrictEqual(leg3.get(it), full.get(it), `eval at ${it}`);
  });
}

Deno.test("an evaluation abandoned by the signal is redone on resume with the same batches", async () => {
  const full: Evals = new Map();
  await train({
    kind: "gpt",
    config: CFG,
    train: TC,
    data: DATA,
    backend: cpu,
    onEval: recorder(full),
  });
  // Abort while the evaluation at iteration 4 draws its second val batch.
  const stop = new AbortController();
  const gens = { train: new Generator(6), val: new Generator(7), evalTrain: new Generator(8) };
  const sampler = (split: "train" | "val", g: Generator) =>
    new BatchSampler(DATA[split], CFG.blockSize, TC.batchSize!, g, split);
  let iterNow = 0;
  let valDraws = 0;
  const val = sampler("val", gens.val);
  const batches: Record<"train" | "val" | "evalTrain", BatchSource> = {
    train: sampler("train", gens.train),
    evalTrain: sampler("train", gens.evalTrain),
    val: {
      gen: gens.val,
      next() {
        if (iterNow === 4 && ++valDraws === 2) stop.abort();
        return val.next();
      },
    },
  };
  const seen: Evals = new Map();
  const r = await train({
    kind: "gpt",
    config: CFG,
    train: TC,
    data: { batches },
    backend: cpu,
    signal: stop.signal,
    onStep: (s) => void (iterNow = s.iter + 1),
    onEval: recorder(seen),
  });
  strictEqual(r.stopped, "aborted");
  strictEqual(r.iteration, 4);
  deepStrictEqual([...seen.keys()], [0]); // the eval at 4 was abandoned, not reported
  const ck = loadCheckpoint(await r.checkpoint(), { backend: cpu });
  strictEqual(ck.metadata.eval_done, "0");
  // Resume with the same custom sources restored from the checkpoint's states.
  const from = (k: "train" | "val" | "evalTrain") =>
    sampler(k === "val" ? "val" : "train", Generator.fromState(ck.rng![k]));
  const restored = { train: from("train"), val: from("val"), evalTrain: from("evalTrain") };
  const rest: Evals = new Map();
  await train({ resume: ck, data: { batches: restored }, onEval: recorder(rest) });
  // Compare against an uninterrupted run over the same custom sources.
  const ref: Evals = new Map();
  const fresh = {
    train: sampler("train", new Generator(6)),
    val: sampler("val", new Generator(7)),
    evalTrain: sampler("train", new Generator(8)),
  };
  await train({
    kind: "gpt",
    config: CFG,
    train: TC,
    data: { batches: fresh },
    backend: cpu,
    onEval: recorder(ref),
  });
  deepStrictEqual([...rest.keys()], [4, 8, 11]);
  for (const it of [4, 8, 11]) deepStrictEqual(rest.get(it), ref.get(it), `eval at ${it}`);
  strictEqual(full.size, 4);
});
