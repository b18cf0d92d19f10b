// LR schedules: nanoGPT's get_lr at warmup, mid-decay and floor; the BitNet two-stage recipe.

import { strictEqual, throws } from "node:assert/strict";
import { bitnetSchedule, cosineLr, scheduleAt } from "../../nn/schedule.ts";
import { assertClose } from "../util.ts";

const S = { learningRate: 6e-4, warmupIters: 200, lrDecayIters: 5000, minLr: 6e-5 };

/** nanoGPT's train.py get_lr, transcribed. */
function getLr(it: number): number {
  if (it < S.warmupIters) return S.learningRate * (it + 1) / (S.warmupIters + 1);
  if (it > S.lrDecayIters) return S.minLr;
  const decayRatio = (it - S.warmupIters) / (S.lrDecayIters - S.warmupIters);
  const coeff = 0.5 * (1.0 + Math.cos(Math.PI * decayRatio));
  return S.minLr + coeff * (S.learningRate - S.minLr);
}

Deno.test("cosineLr equals nanoGPT's get_lr at warmup, mid-decay and floor", () => {
  for (const it of [0, 1, 99, 199, 200, 201, 2600, 4999, 5000, 5001, 10000]) {
    assertClose([cosineLr(it, S)], [getLr(it)], { atol: 0, rtol: 1e-15, msg: `it ${it}` });
  }
  strictEqual(cosineLr(0, S), 6e-4 / 201); // warmup starts above zero
  assertClose([cosineLr(2600, S)], [(6e-4 + 6e-5) / 2], { rtol: 1e-12 }); // halfway: the mean
  strictEqual(cosineLr(7000, S), 6e-5);
  strictEqual(scheduleAt(7000, { kind: "cosine", ...S }).lr, 6e-5);
  strictEqual(scheduleAt(7, { kind: "constant", learningRate: 1e-3 }).lr, 1e-3);
  throws(() => cosineLr(200, { ...S, lrDecayIters: 200 }), /warmupIters \(200\) < lrDecayIters/);
});

Deno.test("bitnetSchedule: warmup, linear stage one, sharp drop at the midpoint, wd 0.1 -> 0", () => {
  const s = { learningRate: 1.5e-3, warmupIters: 10, totalIters: 1000 };
  assertClose([bitnetSchedule(0, s).lr], [1.5e-3 / 11], { rtol: 1e-12 });
  assertClose([bitnetSchedule(10, s).lr], [1.5e-3], { rtol: 1e-12 });
  assertClose([bitnetSchedule(255, s).lr], [(1.5e-3 + 8e-4) / 2], { rtol: 1e-12 });
  assertClose([bitnetSchedule(499, s).lr], [1.5e-3 + (489 / 490) * (8e-4 - 1.5e-3)], {
    rtol: 1e-12,
  });
  assertClose([bitnetSchedule(500, s).lr], [5e-4], { rtol: 1e-12 }); // the drop
  assertClose([bitnetSchedule(750, s).lr], [2.5e-4], { rtol: 1e-12 });
  strictEqual(bitnetSchedule(1000, s).lr, 0);
  strictEqual(bitnetSchedule(499, s).weightDecay, 0.1);
  strictEqual(bitnetSchedule(500, s).weightDecay, 0);
  strictEqual(scheduleAt(600, { kind: "bitnet", ...s }).weightDecay, 0);
});
