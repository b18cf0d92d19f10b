// How much memory a training run needs, from its config alone, so that the CLI can refuse a run
// that cannot fit before it allocates anything (issue 14: `--n-embd 1048576` failed an
// allocation, `--batch-size 100000000` drove the process past 3 GB). Parameters, gradients and
// AdamW's two moments are exact; activations are what backward keeps per token (f32), counted
// fitted to the buffer pool's measured peaks on WebGPU (tests/reliability/memory_calibration.ts;
// the CPU backend's RSS runs up to about twice as high, garbage included).

import type { GPTConfig, ModelKind } from "./config.ts";
import { parameterCount } from "./params.ts";

/** Bytes a training run needs, by part. */
export interface MemoryEstimate {
  /** Weights. */
  params: number;
  /** Their gradients. */
  grads: number;
  /** AdamW's first and second moments. */
  optimizer: number;
  /** What one step's forward keeps for backward (and BitGPT's quantised weight copies). */
  activations: number;
  /** The batch's token ids (inputs and targets), on the host. */
  batch: number;
  /** The peak of a training step: all of the above. */
  total: number;
  /** Host memory while a checkpoint is saved: weights and moments read back, and the file. */
  checkpoint: number;
}

const F32 = 4;

/**
 * The memory of one training step of a `kind` model of config `c` on batches of `batchSize`
 * sequences of `c.blockSize` tokens (float32 everywhere, as both backends train). Logits over
 * `maxLogitsBytes` (the model's limit: a WebGPU binding) are made in blocks, as the model does.
 */
export function estimateTrainingMemory(
  kind: ModelKind,
  c: GPTConfig,
  batchSize: number,
  { maxLogitsBytes = Infinity }: { maxLogitsBytes?: number } = {},
): MemoryEstimate {
  const n = parameterCount(kind, c);
  const params = n * F32;
  const tokens = batchSize * c.blockSize;
  const C = c.nEmbd;
  // Per token and layer (f32 elements alive at the peak of backward, fitted to the measured
  // peaks): the norms, q/k/v and their head-major copies, the MLP's 4C pre- and post-GELU,
  // projections, residuals and their gradients (~56C), attention scores, probabilities and
  // their gradients (~7 × nHead × T).
  let perLayer = 56 * C + 7 * c.nHead * c.blockSize;
  // BitLinear also keeps each input's RMS-normalised and int8-quantised copies.
  if (kind === "bitgpt") perLayer += 14 * C;
  const perToken = c.nLayer * perLayer + 4 * C;
  // The head: logits, their softmax and its gradient, all at once or one block at a time.
  const head = 3 * Math.min(tokens * c.vocabSize * F32, maxLogitsBytes);
  // BitGPT's forward quantises every latent weight (a ternary copy of each matrix).
  const weightCopies = kind === "bitgpt" ? params : 0;
  const activations = tokens * perToken * F32 + head + weightCopies;
  const batch = 2 * tokens * 4; // x and y, i32, on the host
  const optimizer = 2 * params;
  return {
    params,
    grads: params,
    optimizer,
    activations,
    batch,
    total: 2 * params + optimizer + activations + batch,
    // saveCheckpoint reads weights and moments back to the host, then writes the file's bytes
    checkpoint: 2 * (params + optimizer),
  };
}

/** Bytes as "1.2 GB" for messages. */
export function formatBytes(b: number): string {
  if (b >= 1e12) return `${(b / 1e12).toFixed(1)} TB`;
  if (b >= 1e9) return `${(b / 1e9).toFixed(1)} GB`;
  if (b >= 1e6) return `${(b / 1e6).toFixed(1)} MB`;
  return `${Math.ceil(b / 1e3)} kB`;
}
