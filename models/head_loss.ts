// The lm_head and its mean cross-entropy over row blocks of the final hidden state, for batches
// whose logits [N, V] (N = B·T) exceed one storage binding: GPT-2's 50257 classes allow 667 tokens
// per binding on llvmpipe (128 MiB), about 10,600 with 2 GiB. Dims: N rows, C nEmbd, V vocabSize.
// Per block of rows, logits_b = lm_head(x_b) feed cross-entropy's row statistics; when a gradient
// is wanted, dlogits_b = (softmax − onehot)/count is made at once (the fused linear cross-entropy
// of Liger-Kernel, arXiv 2410.10989) and turned into dX_b = dlogits_b·W, dW += dlogits_bᵀ·x_b,
// db += Σ_rows dlogits_b before the block's logits and dlogits are freed. So peak memory is about
// two blocks' logits instead of N·V, and no matmul is recomputed; the backward only scales the
// stored gradients by dy. The loss is the mean over non-ignored rows, reduced from the blocks'
// joined row statistics exactly as crossEntropy over all rows reduces them.

import { isGradEnabled, noGrad } from "../engine/autograd.ts";
import { full } from "../engine/creation.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import { tidy } from "../engine/scope.ts";
import type { Tensor } from "../engine/tensor.ts";
import {
  add,
  cat,
  crossEntropyCount,
  crossEntropyGrad,
  crossEntropyMean,
  crossEntropyStats,
  matmul,
  mul,
  narrow,
  sum,
  transpose,
} from "../kernels/mod.ts";
import { withGrad } from "../kernels/row_kernel.ts";
import type { Linear } from "../nn/layers.ts";
import { RowChunks } from "../nn/split.ts";

/** The head's weight pieces: one [V, C] Parameter, or its row chunks with their first rows. */
function weightPieces(head: Linear): { parts: Tensor[]; starts: number[] } {
  const t = head.table;
  return t instanceof RowChunks
    ? { parts: t.parts, starts: t.starts }
    : { parts: [t], starts: [0, head.outFeatures] };
}

/** The tensors a block's gradients are for: x, the weight pieces (first rows), the bias. */
interface Wrt {
  x: Tensor;
  parts: Tensor[];
  starts: number[];
  bias: Tensor | null;
}

/** What the blocks have summed so far: dX pieces in row order, dW per weight piece, db. */
interface Grads {
  dx: Tensor[];
  dw: (Tensor | null)[];
  db: Tensor | null;
}

/**
 * Mean cross-entropy of `head`(x) against `targets`, computed over consecutive row blocks of
 * `blockRows` (the last may be shorter): x [N, C] float, targets [N] i32, rows whose target is
 * `ignoreIndex` skipped. Returns the loss [], differentiable in x, the head's weight (or its row
 * chunks) and its bias; its value and gradients equal `crossEntropy(head.forward(x), targets)` to
 * float rounding, while no tensor larger than one block's logits [blockRows, V] is made. When a
 * gradient can flow, it is computed during this call and held (dX, dW: the size of x and of the
 * weight) until backward, as every op's saved tensors are: call backward in the scope of the
 * forward; evaluate under noGrad, which skips that work.
 */
export function blockedHeadLoss(
  head: Linear,
  x: Tensor,
  targets: Tensor,
  blockRows: number,
  ignoreIndex = -1,
): Tensor {
  const [N, C] = x.shape;
  if (x.ndim !== 2 || C !== head.inFeatures || targets.ndim !== 1 || targets.shape[0] !== N) {
    throw new ShapeError(
      `blockedHeadLoss: x is ${fmtShape(x.shape)}, targets ${fmtShape(targets.shape)}; expected ` +
        `x [N, ${head.inFeatures}] and targets [N]`,
    );
  }
  if (!(Number.isInteger(blockRows) && blockRows >= 1)) {
    throw new RangeError(`blockedHeadLoss: blockRows must be a positive integer, got ${blockRows}`);
  }
  const { parts, starts } = weightPieces(head);
  const bias = head.bias;
  const wrt: Wrt = { x, parts, starts, bias };
  const inputs = bias ? [x, ...parts, bias] : [x, ...parts];
  const grads: Grads | null = isGradEnabled() && inputs.some((t) => t.requiresGrad)
    ? { dx: [], dw: parts.map(() => null), db: null }
    : null;
  const sums = noGrad(() => {
    const stats = runBlocks(head, targets, blockRows, ignoreIndex, wrt, grads);
    const all = stats.length === 1 ? stats[0] : cat(stats, 0); // (N, 2)
    const s = crossEntropyMean(all, targets, ignoreIndex); // (mean, count)
    for (const t of new Set([all, ...stats])) t.dispose();
    return s;
  });
  const loss = sums.withLayout([], [], 0);
  sums.dispose();
  if (!grads) return loss;
  const dX = grads.dx.length === 0 ? null : noGrad(() => joinRows(grads.dx));
  const stored = [dX, ...grads.dw, ...(bias ? [grads.db] : [])];
  return withGrad(loss, "blockedHeadLoss", inputs, (dy) => {
    // d(dy·L)/dθ = dy·dL/dθ; each stored gradient is freed once scaled (one extra copy at most).
    return stored.map((g) => {
      if (!g) return null;
      const scaled = mul(g, dy);
      g.dispose();
      return scaled;
    });
  });
}

/**
 * The blocks' cross-entropy row stats [rows, 2], in row order; with `grads`, each block's
 * gradients are added into it. Runs under noGrad.
 */
function runBlocks(
  head: Linear,
  targets: Tensor,
  blockRows: number,
  ignoreIndex: number,
  wrt: Wrt,
  grads: Grads | null,
): Tensor[] {
  const { x } = wrt;
  const N = x.shape[0];
  // The divisor of the mean, known before any block: each block's dlogits are final.
  const count = grads ? crossEntropyCount(targets, ignoreIndex, x.dtype) : null;
  const one = grads ? full([], 1, { backend: x.backend, dtype: x.dtype }) : null;
  const stats: Tensor[] = [];
  for (let start = 0; start < N; start += blockRows) {
    const rows = Math.min(blockRows, N - start);
    const xb = narrow(x, 0, start, rows); // (rows, C)
    const tb = narrow(targets, 0, start, rows); // (rows)
    const logits = tidy(() => head.forward(xb)); // (rows, V); chunk outputs freed
    const st = crossEntropyStats(logits, tb, ignoreIndex); // (rows, 2)
    stats.push(st);
    if (grads && count && one) {
      const dlogits = crossEntropyGrad(logits, tb, st, count, one, ignoreIndex); // (rows, V)
      logits.dispose();
      accumulate(grads, dlogits, xb, wrt);
      dlogits.dispose();
    }
    for (const t of [logits, tb, xb]) t.dispose();
  }
  count?.dispose();
  one?.dispose();
  return stats;
}

/** dX rows of all blocks as one [N, C] tensor (the pieces freed). */
function joinRows(dx: Tensor[]): Tensor {
  if (dx.length === 1) return dx[0];
  const out = cat(dx, 0);
  for (const d of dx) d.dispose();
  return out;
}

/** Add one block's gradients into `g` from its dlogits (rows, V) and input rows xb (rows, C). */
function accumulate(g: Grads, dlogits: Tensor, xb: Tensor, { x, parts, starts, bias }: Wrt): void {
  // Columns of chunk j: (rows, V_j), a view.
  const cols = (j: number) => narrow(dlogits, 1, starts[j], starts[j + 1] - starts[j]);
  if (x.requiresGrad) {
    // dX_b = Σ_j dlogits_b[:, V_j]·W_j: (rows, V_j)·(V_j, C) -> (rows, C)
    g.dx.push(tidy(() => parts.map((w, j) => matmul(cols(j), w)).reduce((a, b) => add(a, b))));
  }
  parts.forEach((w, j) => {
    if (!w.requiresGrad) return;
    const dw = tidy(() => matmul(transpose(cols(j)), xb)); // (V_j, rows)·(rows, C) -> (V_j, C)
    g.dw[j] = sumInto(g.dw[j], dw);
  });
  if (bias?.requiresGrad) g.db = sumInto(g.db, tidy(() => sum(dlogits, 0))); // (V)
}

/** prev + next (both freed), or next when there is no prev. */
function sumInto(prev: Tensor | null, next: Tensor): Tensor {
  if (!prev) return next;
  const s = add(prev, next);
  prev.dispose();
  next.dispose();
  return s;
}
