// Learning-rate schedules. `cosineLr` is nanoGPT's get_lr (train.py): linear warmup, cosine decay
// to a floor, then the floor. `bitnetSchedule` is the two-stage recipe of the BitNet b1.58 reports
// ("The Era of 1-bit LLMs: Training Tips, Code and FAQ"; BitNet b1.58 2B4T, arXiv 2504.12285):
// a high peak decayed linearly, a sharp drop at the midpoint, a second linear decay, and weight
// decay 0.1 in stage one and 0 in stage two (ternary weights need larger updates to flip).

/** nanoGPT's cosine schedule (`decay_lr = True`). */
export interface CosineSchedule {
  /** Selects this schedule. */
  kind: "cosine";
  /** Peak learning rate (nanoGPT's learning_rate). */
  learningRate: number;
  /** Linear warmup length in iterations. */
  warmupIters: number;
  /** Iteration where the cosine reaches `minLr` (≈ max_iters per Chinchilla). */
  lrDecayIters: number;
  /** The floor (≈ learningRate / 10). */
  minLr: number;
}

/** A constant learning rate (nanoGPT's `decay_lr = False`). */
export interface ConstantSchedule {
  /** Selects this schedule. */
  kind: "constant";
  /** The learning rate of every step. */
  learningRate: number;
}

/** The BitNet b1.58 two-stage schedule; defaults follow 2B4T's 1.5e-3 → 8e-4, 5e-4 → 0. */
export interface BitNetSchedule {
  /** Selects this schedule. */
  kind: "bitnet";
  /** Stage-one peak, reached after warmup. */
  learningRate: number;
  /** Linear warmup length in iterations. */
  warmupIters: number;
  /** Total iterations; stage two starts at floor(totalIters / 2). */
  totalIters: number;
  /** Where stage one's linear decay ends at the midpoint (default learningRate · 8/15). */
  stage1EndLr?: number;
  /** Where stage two starts after the drop (default learningRate / 3). */
  stage2Lr?: number;
  /** Where stage two's linear decay ends at totalIters (default 0). */
  minLr?: number;
  /** Weight decay in stage one (default 0.1); stage two uses 0. */
  weightDecay?: number;
}

/** Any learning-rate schedule. */
export type LrSchedule = CosineSchedule | ConstantSchedule | BitNetSchedule;

/** nanoGPT's get_lr(it): warmup (it+1)/(warmup+1), cosine to minLr at lrDecayIters, then minLr. */
export function cosineLr(it: number, s: Omit<CosineSchedule, "kind">): number {
  if (it < s.warmupIters) return s.learningRate * (it + 1) / (s.warmupIters + 1);
  if (it > s.lrDecayIters) return s.minLr;
  const decayRatio = (it - s.warmupIters) / (s.lrDecayIters - s.warmupIters);
  if (!(decayRatio >= 0 && decayRatio <= 1)) {
    throw new RangeError(
      `cosineLr: decay ratio ${decayRatio} at iteration ${it}; need warmupIters ` +
        `(${s.warmupIters}) < lrDecayIters (${s.lrDecayIters})`,
    );
  }
  const coeff = 0.5 * (1 + Math.cos(Math.PI * decayRatio)); // 1 → 0
  return s.minLr + coeff * (s.learningRate - s.minLr);
}

/** The BitNet b1.58 two-stage learning rate and weight decay at iteration `it`. */
export function bitnetSchedule(
  it: number,
  s: Omit<BitNetSchedule, "kind">,
): { lr: number; weightDecay: number } {
  const peak = s.learningRate;
  const end1 = s.stage1EndLr ?? peak * 8 / 15;
  const start2 = s.stage2Lr ?? peak / 3;
  const end2 = s.minLr ?? 0;
  const mid = Math.floor(s.totalIters / 2);
  const wd = s.weightDecay ?? 0.1;
  if (it < s.warmupIters) return { lr: peak * (it + 1) / (s.warmupIters + 1), weightDecay: wd };
  if (it < mid) {
    const r = (it - s.warmupIters) / Math.max(1, mid - s.warmupIters);
    return { lr: peak + r * (end1 - peak), weightDecay: wd };
  }
  const r = Math.min(1, (it - mid) / Math.max(1, s.totalIters - mid));
  return { lr: start2 + r * (end2 - start2), weightDecay: 0 };
}

/**
 * Learning rate (and, for the BitNet schedule, weight decay) at iteration `it`; `weightDecay`
 * is undefined when the schedule leaves it to the optimizer's setting.
 */
export function scheduleAt(it: number, s: LrSchedule): { lr: number; weightDecay?: number } {
  switch (s.kind) {
    case "cosine":
      return { lr: cosineLr(it, s) };
    case "constant":
      return { lr: s.learningRate };
    case "bitnet":
      return bitnetSchedule(it, s);
    default:
      return s satisfies never;
  }
}
