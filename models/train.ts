// The training loop as a library function, after the original train.py and nanoGPT's: batches of
// random windows from seeded generators, AdamW with decay on ≥ 2-dim parameters, the LR schedule,
// gradient clipping fused into the update, evaluation every evalInterval iterations over
// evalIters batches per split. Losses stay on the device and are read back only at log and eval
// points; each step's intermediates are freed by `tidy`. Resuming from a checkpoint restores the
// model, optimizer, iteration and every random stream, so the loss trajectory is unchanged, eval
// losses included (an extra or abandoned evaluation leaves the eval streams where they were).

import type { Backend } from "../engine/backend.ts";
import { noGrad } from "../engine/autograd.ts";
import { ConfigError } from "../engine/errors.ts";
import { fromArray } from "../engine/creation.ts";
import { getBackend } from "../engine/device.ts";
import { beginStep, endStep } from "../engine/profile.ts";
import { Generator } from "../engine/random.ts";
import { keep, tidy } from "../engine/scope.ts";
import type { Tensor } from "../engine/tensor.ts";
import { add } from "../kernels/mod.ts";
import { AdamW, clipGradNorm } from "../nn/optim.ts";
import { type LrSchedule, scheduleAt } from "../nn/schedule.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import type { LoadedCheckpoint, RngState } from "./checkpoint.ts";
import {
  DEFAULT_TRAIN,
  type GPTConfig,
  type ModelKind,
  type TrainConfig,
  validateTrainConfig,
} from "./config.ts";
import type { LanguageModel } from "./model.ts";
import { createModel } from "./model.ts";

/** A stream of batches: x and y row-major [B, T] i32, drawn from `gen`. */
export interface BatchSource {
  /** The next batch. */
  next(): { x: Int32Array; y: Int32Array };
  /** The random stream batches are drawn from (saved in checkpoints). */
  readonly gen: Generator;
}

/** What the loop draws batches for: its steps, validation, evaluation on training data. */
export type BatchRole = "train" | "val" | "evalTrain";

/**
 * The loop's data: batch sources per role made from the generators the loop owns (its
 * checkpoints save and restore them), as data/sampler.ts's `splitTokens`, `tokenBatches` and
 * data/batches.ts's `loadDataset` give; or ready sources per role (the caller owns their
 * generators and restores them on resume).
 */
export type TrainData =
  | {
    sources(
      gens: Record<BatchRole, Generator>,
      batchSize: number,
      blockSize: number,
    ): Record<BatchRole, BatchSource>;
  }
  | { batches: Record<BatchRole, BatchSource> };

/** What `onStep` receives at each log point. */
export interface StepInfo {
  /** The iteration number. */
  iter: number;
  /** The training loss of this iteration (read back from the device). */
  loss: number;
  /** The learning rate used at this iteration. */
  lr: number;
  /** Global gradient norm before clipping (read back with the loss), or null without clipping. */
  gradNorm: number | null;
  /** Milliseconds per iteration since the previous log point. */
  msPerIter: number;
  /** Tokens processed per iteration (B·T). */
  tokensPerIter: number;
}

/** What `onEval` receives: the estimates and a way to snapshot the run for a checkpoint. */
export interface EvalInfo {
  /** The iteration number. */
  iter: number;
  /** Mean loss over evalIters training batches. */
  trainLoss: number;
  /** Mean loss over evalIters validation batches. */
  valLoss: number;
  /** The learning rate at this iteration. */
  lr: number;
  /** The val loss beat the best so far (now `bestValLoss`). */
  improved: boolean;
  /** The best validation loss so far. */
  bestValLoss: number;
  /** Checkpoint bytes of the run as of now (resuming skips this evaluation). */
  checkpoint(): Promise<Uint8Array>;
}

/** Options of `train`. */
export interface TrainOptions {
  /** A model to train (default: built from `kind` and `config`, or the resumed checkpoint's). */
  model?: LanguageModel;
  /** Architecture for a new model (default "bitgpt"). */
  kind?: ModelKind;
  /** Config for a new model. */
  config?: GPTConfig;
  /** Training settings (defaults: the original's flag table). */
  train?: Partial<TrainConfig>;
  /** Training data: batch sources (e.g. `splitTokens(ids)` or a loaded dataset). */
  data: TrainData;
  /** Continue this checkpoint's run (model, optimizer, iteration, random streams). */
  resume?: LoadedCheckpoint;
  /** Tokenizer JSON text stored in checkpoints. */
  tokenizer?: string;
  /** Backend for a new model (default: the current backend). */
  backend?: Backend;
  /** Called at every logInterval iteration and at the last one. */
  onStep?(info: StepInfo): void | Promise<void>;
  /** Called at every evalInterval iteration and at the last one. */
  onEval?(info: EvalInfo): void | Promise<void>;
  /**
   * Stop when aborted: after the step in progress, or between the batches of an evaluation
   * (abandoned; a resumed run redoes it). The result can still be checkpointed.
   */
  signal?: AbortSignal;
}

/** The end of a run. */
export interface TrainResult {
  /** The trained model. */
  model: LanguageModel;
  /** The optimizer, with its moments. */
  optimizer: AdamW;
  /** The next iteration to run (maxIters when finished). */
  iteration: number;
  /** The best validation loss seen. */
  bestValLoss: number;
  /** Why the run ended. */
  stopped: "finished" | "aborted";
  /** Checkpoint bytes of the run as it ended (resumable). */
  checkpoint(): Promise<Uint8Array>;
}

/** The run's random streams: model init, training batches, eval batches, dropout masks. */
function streams(seed: number, saved: Record<string, RngState> | null) {
  const restore = (name: string, offset: number) =>
    saved?.[name] ? Generator.fromState(saved[name]) : new Generator(seed + offset);
  return {
    train: restore("train", 1),
    val: restore("val", 2),
    evalTrain: restore("evalTrain", 3),
    dropout: restore("dropout", 4),
  };
}

/** The schedule a training config describes. */
export function scheduleOf(t: TrainConfig): LrSchedule {
  if (!t.decayLr) return { kind: "constant", learningRate: t.learningRate };
  if (t.schedule === "bitnet") {
    return {
      kind: "bitnet",
      learningRate: t.learningRate,
      warmupIters: t.warmupIters,
      totalIters: t.maxIters,
      minLr: t.minLr,
      weightDecay: t.weightDecay,
    };
  }
  return {
    kind: "cosine",
    learningRate: t.learningRate,
    warmupIters: t.warmupIters,
    lrDecayIters: t.lrDecayIters,
    minLr: t.minLr,
  };
}

/**
 * Mean loss over `n` batches of `src`, summed on the device and read back once; null when
 * `signal` aborts between batches (the evaluation is abandoned).
 */
async function estimateLoss(
  model: LanguageModel,
  src: BatchSource,
  n: number,
  be: Backend,
  signal?: AbortSignal,
): Promise<number | null> {
  let total: Tensor | null = null;
  for (let k = 0; k < n; k++) {
    if (signal?.aborted) {
      total?.dispose();
      return null;
    }
    const batch = src.next();
    const next: Tensor = tidy(() =>
      noGrad(() => {
        const { loss } = model.forward(...idsOf(batch, model.config.blockSize, be));
        return total ? add(total, loss!) : loss!;
      })
    );
    total?.dispose();
    total = keep(next);
  }
  const mean = (await total!.item()) / n;
  total!.dispose();
  return mean;
}

/** Upload a batch as (ids, targets) i32 [B, T]. */
function idsOf(batch: { x: Int32Array; y: Int32Array }, T: number, be: Backend): [Tensor, Tensor] {
  const B = batch.x.length / T;
  return [
    fromArray(batch.x, [B, T], { dtype: "i32", backend: be }),
    fromArray(batch.y, [B, T], { dtype: "i32", backend: be }),
  ];
}

/**
 * Train a model: nanoGPT's loop (evaluate at every evalInterval and at the last iteration, then a
 * step). Returns when maxIters is reached or `signal` aborts.
 */
export async function train(opts: TrainOptions): Promise<TrainResult> {
  const r = opts.resume;
  const tc = validateTrainConfig({ ...DEFAULT_TRAIN, ...(r?.trainConfig ?? {}), ...opts.train });
  const rng = streams(tc.seed, r?.rng ?? null);
  if (!opts.model && !r && !opts.config) {
    throw new ConfigError("train: pass a model, a config or resume");
  }
  const model = opts.model ?? r?.model ??
    createModel(opts.kind ?? "bitgpt", opts.config!, {
      backend: opts.backend ?? getBackend(),
      generator: new Generator(tc.seed),
    });
  const be = model.parameters()[0].backend;
  const T = model.config.blockSize;
  const src = "batches" in opts.data ? opts.data.batches : opts.data.sources(
    { train: rng.train, val: rng.val, evalTrain: rng.evalTrain },
    tc.batchSize,
    T,
  );
  model.setDropoutGenerator(rng.dropout);
  model.train();
  const opt = new AdamW(model, {
    lr: tc.learningRate,
    betas: [tc.beta1, tc.beta2],
    weightDecay: tc.weightDecay,
  });
  if (r?.optimizer) opt.loadStateDict(r.optimizer);
  const schedule = scheduleOf(tc);
  const params = model.parameters();
  let iter = r?.iteration ?? 0;
  let bestValLoss = r?.bestValLoss ?? Infinity;
  const skipEval = r?.metadata.eval_done === "1";
  const snapshot = (evalDone: boolean) =>
    saveCheckpoint(model, {
      optimizer: opt,
      iteration: iter,
      bestValLoss,
      trainConfig: tc,
      rng: {
        train: src.train.gen.state(),
        val: src.val.gen.state(),
        evalTrain: src.evalTrain.gen.state(),
        dropout: rng.dropout.state(),
      },
      tokenizer: opts.tokenizer,
      extra: { eval_done: evalDone ? "1" : "0" },
    });
  let lastLog = performance.now();
  let lastLogIter = iter;
  let evalDoneAt = skipEval ? iter : -1; // the iteration whose evaluation has run
  for (; iter < tc.maxIters; iter++) {
    if (opts.signal?.aborted) break;
    const { lr, weightDecay } = scheduleAt(iter, schedule);
    opt.lr = lr;
    if (weightDecay !== undefined) opt.weightDecay = weightDecay;
    if ((iter % tc.evalInterval === 0 || iter === tc.maxIters - 1) && evalDoneAt !== iter) {
      const evalStreams = [src.evalTrain.gen, src.val.gen];
      const before = evalStreams.map((g) => g.offset);
      model.eval();
      const trainLoss = await estimateLoss(model, src.evalTrain, tc.evalIters, be, opts.signal);
      const valLoss = trainLoss === null
        ? null
        : await estimateLoss(model, src.val, tc.evalIters, be, opts.signal);
      model.train();
      // An abandoned evaluation, or the extra one at the last iteration (not on the interval),
      // leaves the eval streams where they were: a run resumed and extended past this point
      // draws the same eval batches as one that never stopped here.
      if (valLoss === null || iter % tc.evalInterval !== 0) {
        evalStreams.forEach((g, i) => (g.offset = before[i]));
      }
      if (trainLoss === null || valLoss === null) break; // aborted mid-evaluation
      evalDoneAt = iter;
      const improved = valLoss < bestValLoss;
      if (improved) bestValLoss = valLoss;
      await opts.onEval?.({
        iter,
        trainLoss,
        valLoss,
        lr,
        improved,
        bestValLoss,
        checkpoint: () => snapshot(true),
      });
      if (opts.signal?.aborted) break; // stopped during the evaluation: skip the step
    }
    const log = iter % tc.logInterval === 0 || iter === tc.maxIters - 1;
    beginStep("iteration"); // a profile's step: this iteration's forward, backward, update, log
    const out = tidy(() => {
      const { loss } = model.forward(...idsOf(src.train.next(), T, be));
      loss!.backward();
      const clip = tc.gradClip > 0 ? clipGradNorm(params, tc.gradClip, { apply: false }) : null;
      opt.step({ gradScale: clip?.scale });
      opt.zeroGrad();
      return log ? { loss: loss!, norm: clip?.norm ?? null } : null;
    });
    if (out && log) {
      const loss = await out.loss.item(); // the one readback of this interval
      const gradNorm = out.norm ? await out.norm.item() : null;
      out.loss.dispose();
      out.norm?.dispose();
      const now = performance.now();
      const msPerIter = (now - lastLog) / Math.max(1, iter + 1 - lastLogIter);
      [lastLog, lastLogIter] = [now, iter + 1];
      await opts.onStep?.({ iter, loss, lr, gradNorm, msPerIter, tokensPerIter: tc.batchSize * T });
    }
    endStep();
  }
  return {
    model,
    optimizer: opt,
    iteration: iter,
    bestValLoss,
    stopped: iter < tc.maxIters ? "aborted" : "finished",
    checkpoint: () => snapshot(evalDoneAt === iter),
  };
}
