// Fused linear + cross-entropy: the mean cross-entropy of logits = x·Wᵀ (+ b) against targets,
// computed over blocks of tokens so that no more than one block's logits [rows, V] ever exist
// (the fused linear cross-entropy of Liger-Kernel, arXiv 2410.10989). Dims: N tokens, C
// features, V classes. x [N, C] float, W [V, C], b [V] or none, targets [N] i32 -> loss [].
// Per block of rows: logits_b = x_b·Wᵀ (+ b) feed cross-entropy's row statistics; when a
// gradient is wanted, dlogits_b = (softmax − onehot)/count is made at once and turned into
// dX_b = dlogits_b·W, dW += dlogits_bᵀ·x_b, db += Σ_rows dlogits_b before the block's logits are
// freed, so peak memory is about two blocks' logits and no matmul is recomputed; the backward
// only scales the stored gradients by dy. The loss is the mean over non-ignored rows, reduced
// from the blocks' joined row statistics exactly as crossEntropy over all rows reduces them, so
// value and gradients equal crossEntropy(linear(x, W, b), targets) to float rounding. Blocks
// hold at most `maxLogitsBytes` of logits (default: one storage binding of the device).
// Its pieces are the matmul and cross-entropy kernels (wasm included: wasm.ts's products, the
// row kernels of cross_entropy_wasm.ts); the backend's elementwise add, sum and cat join them.

import { isGradEnabled, noGrad } from "../../engine/autograd.ts";
import { full } from "../../engine/creation.ts";
import { byteSize } from "../../engine/dtype.ts";
import { DeviceLimitError, fmtShape, ShapeError } from "../../engine/errors.ts";
import { apply, defineOp } from "../../engine/op.ts";
import { tidy } from "../../engine/scope.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { add, mul } from "../elementwise/binary.ts";
import { matmul } from "../matmul/matmul.ts";
import { sum } from "../reduce.ts";
import { cat } from "../shape/concat.ts";
import { narrow, transpose } from "../shape/view.ts";
import {
  crossEntropyCount,
  crossEntropyGrad,
  crossEntropyMean,
  crossEntropyStats,
} from "./cross_entropy.ts";

/** Parameters of the fused op: blocks, the ignored target, which inputs want a gradient. */
interface LinearCrossEntropyParams {
  /** Rows per block (the last may be shorter). */
  blockRows: number;
  /** Rows whose target equals this contribute no loss and no gradient. */
  ignoreIndex: number;
  /** Gradients to compute and save for x, W and b (in that order; b only when given). */
  want: boolean[];
}

/** The op: inputs [x, W, (b,) targets]; outputs the loss and, saved, the wanted gradients. */
const linearCrossEntropyOp = defineOp<LinearCrossEntropyParams>({
  name: "linearCrossEntropy",
  outputs: (inputs, p) => [
    { shape: [] },
    ...p.want.flatMap((w, i) => (w ? [{ shape: inputs[i].shape, saved: true }] : [])),
  ],
  compute: (inputs, p) => noGrad(() => blocks(inputs, p)),
  backward(dy, { inputs, saved, params }) {
    // d(dy·L)/dθ = dy·dL/dθ for each stored gradient.
    let k = 0;
    return inputs.map((_, i) => (params.want[i] ? mul(saved[k++], dy) : null));
  },
});

/** The forward over blocks: [loss, then dX, dW, db where wanted]. */
function blocks(inputs: Tensor[], p: LinearCrossEntropyParams): Tensor[] {
  const [x, w] = inputs;
  const b = inputs.length === 4 ? inputs[2] : null;
  const targets = inputs[inputs.length - 1];
  const N = x.shape[0];
  const grads = p.want.some((v) => v);
  // The divisor of the mean, known before any block: each block's dlogits are final.
  const count = grads ? crossEntropyCount(targets, p.ignoreIndex, x.dtype) : null;
  const one = grads ? full([], 1, { backend: x.backend, dtype: x.dtype }) : null;
  const stats: Tensor[] = [];
  const dx: Tensor[] = [];
  let dw: Tensor | null = null;
  let db: Tensor | null = null;
  for (let start = 0; start < N; start += p.blockRows) {
    const rows = Math.min(p.blockRows, N - start);
    // One block; everything but its stats and gradient terms is freed when it ends.
    const r = tidy(() => {
      const xb = narrow(x, 0, start, rows); // (rows, C)
      const tb = narrow(targets, 0, start, rows); // (rows)
      const mm = matmul(xb, transpose(w)); // (rows, C)·(C, V) -> (rows, V)
      const logits = b ? add(mm, b) : mm;
      const st = crossEntropyStats(logits, tb, p.ignoreIndex); // (rows, 2)
      if (!count || !one) return { st };
      const dlogits = crossEntropyGrad(logits, tb, st, count, one, p.ignoreIndex); // (rows, V)
      return {
        st,
        dxb: p.want[0] ? matmul(dlogits, w) : undefined, // (rows, V)·(V, C) -> (rows, C)
        dwb: p.want[1] ? matmul(transpose(dlogits), xb) : undefined, // (V, C)
        dbb: b && p.want[2] ? sum(dlogits, 0) : undefined, // (V)
      };
    });
    stats.push(r.st);
    if (r.dxb) dx.push(r.dxb);
    if (r.dwb) dw = sumInto(dw, r.dwb);
    if (r.dbb) db = sumInto(db, r.dbb);
  }
  count?.dispose();
  one?.dispose();
  const all = stats.length === 1 ? stats[0] : cat(stats, 0); // (N, 2)
  const sums = crossEntropyMean(all, targets, p.ignoreIndex); // (mean, count)
  for (const t of new Set([all, ...stats])) t.dispose();
  const loss = sums.withLayout([], [], 0);
  sums.dispose();
  const dX = dx.length > 1 ? cat(dx, 0) : dx[0];
  if (dx.length > 1) { for (const d of dx) d.dispose(); }
  const saved = [dX, dw, db].filter((_, i) => p.want[i]) as Tensor[];
  return [loss, ...saved];
}

/** prev + next (both freed), or next when there is no prev. */
function sumInto(prev: Tensor | null, next: Tensor): Tensor {
  if (!prev) return next;
  const s = add(prev, next);
  prev.dispose();
  next.dispose();
  return s;
}

/** Options of `linearCrossEntropy`. */
export interface LinearCrossEntropyOptions {
  /** Rows whose target equals this are skipped (default -1). */
  ignoreIndex?: number;
  /** The most bytes of logits one block may hold (default: one binding of the device). */
  maxLogitsBytes?: number;
}

/**
 * Mean cross-entropy of x·Wᵀ (+ b) against `targets`, over blocks of tokens that never hold
 * more than `maxLogitsBytes` of logits: x [N, C], weight [V, C], bias [V] or null, targets [N]
 * i32. Differentiable in x, weight and bias; when a gradient can flow it is computed during
 * this call and held until backward (the size of x, W and b), so call backward in the scope of
 * the forward, and evaluate under noGrad, which skips that work.
 */
export function linearCrossEntropy(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  targets: Tensor,
  { ignoreIndex = -1, maxLogitsBytes }: LinearCrossEntropyOptions = {},
): Tensor {
  const [N, C] = x.shape;
  const V = weight.shape[0];
  if (
    x.ndim !== 2 || weight.ndim !== 2 || weight.shape[1] !== C || targets.ndim !== 1 ||
    targets.shape[0] !== N || (bias && (bias.ndim !== 1 || bias.shape[0] !== V))
  ) {
    throw new ShapeError(
      `linearCrossEntropy: x ${fmtShape(x.shape)}, weight ${fmtShape(weight.shape)}, bias ` +
        `${bias ? fmtShape(bias.shape) : "none"}, targets ${fmtShape(targets.shape)}; expected ` +
        `x [N, C], weight [V, C], bias [V] and targets [N]`,
    );
  }
  const rowBytes = V * byteSize(x.dtype);
  const limit = maxLogitsBytes ?? x.backend.traits.maxBindingBytes;
  const most = Math.floor(limit / rowBytes);
  if (most < 1) {
    throw new DeviceLimitError(
      `linearCrossEntropy: one token's logits [${V}] ${x.dtype} need ${rowBytes} bytes, over ` +
        `the block limit of ${limit} bytes (maxLogitsBytes)`,
    );
  }
  const blockRows = N === 0 ? 1 : Math.ceil(N / Math.ceil(N / Math.min(most, N)));
  const params = bias ? [x, weight, bias] : [x, weight];
  const want = params.map((t) => isGradEnabled() && t.requiresGrad);
  return apply(linearCrossEntropyOp, [...params, targets], { blockRows, ignoreIndex, want });
}
