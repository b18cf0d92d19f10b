// Fused cross-entropy loss: mean over non-ignored rows of logsumexp(logits[r]) − logits[r, t_r],
// as PyTorch's F.cross_entropy(logits, targets, ignore_index). Probabilities are never stored.
// Shapes (dims legend N rows, V classes): logits [..., V] float, targets [...] i32 -> loss [].
// Forward, two dispatches: (1) a row kernel writing stats[r] = (lse_r, loss_r) [N, 2], in the
// mode rows.ts's rowMode picks: one workgroup of 64 per row with max and Σexp reduced in
// workgroup memory (GPUs, whose 50k-vocabulary rows are long), or one invocation per row with
// no barriers (software adapters; many short rows); (2) one workgroup sums the row losses and
// counts the non-ignored rows into sums [2] = (mean, count); the loss is a view of sums[0].
// Backward, one dispatch, one invocation per logit: dlogits[r, j] = (exp(logits[r, j] − lse_r) −
// [j = t_r])·dy/count, 0 on ignored rows. The three steps are also exported without autograd
// (crossEntropyStats, crossEntropyMean, crossEntropyGrad) for losses over row blocks whose
// logits never exist all at once (linear_cross_entropy.ts).
// All rows ignored: loss 0 and zero gradient (PyTorch returns NaN; a fully padded batch should
// not poison training). Targets outside [0, V) other than ignoreIndex: the CPU throws naming
// the row and target; WebGPU cannot throw, so that row's loss and gradient are NaN, which makes
// the mean NaN.
// wasm (cross_entropy_wasm.ts): rows split over threads with f32x4 passes and the vectorised
// exp/log; the mean sums fixed chunks of rows in float64, the chunks added in order; bad targets
// throw the CPU's RangeError (checked before the launch).

import type { DeviceTraits } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { type DType, isFloat, wgslType } from "../../engine/dtype.ts";
import { zeros } from "../../engine/creation.ts";
import { fmtShape, ShapeError } from "../../engine/errors.ts";
import { sameShape, sizeOf } from "../../engine/shape.ts";
import { grid1d, linearIndex, WORKGROUP_SIZE } from "../../engine/webgpu/codegen.ts";
import { apply, defineOp, type KernelOp } from "../../engine/op.ts";
import { type PieceSpan, splitRows } from "../../engine/split.ts";
import { reshape } from "../shape/view.ts";
import { ROW_MAX_SUM_EXP, ROW_WG, ROW_WGSL, rowGrid, rowMode, rowWgsl } from "./rows.ts";
import {
  crossEntropyBackwardWasm,
  crossEntropyMeanWasm,
  crossEntropyRowsWasm,
} from "./cross_entropy_wasm.ts";

/** Parameters of the cross-entropy kernels: rows, classes per row, the target to skip. */
export interface CrossEntropyParams {
  /** Number of rows (predictions). */
  rows: number;
  /** Classes per row. */
  classes: number;
  /** Rows whose target equals this contribute no loss and no gradient. */
  ignoreIndex: number;
}

const NAN_BITS = 0x7fc00000; // passed in the uniform block: a NaN constant would not compile

function uniforms({ rows, classes, ignoreIndex }: CrossEntropyParams): Uint32Array {
  return new Uint32Array([rows, classes, ignoreIndex >>> 0, NAN_BITS]);
}

const HEADER = (t: string, bindings: string[]) =>
  bindings.map((b, i) => {
    const [mode, decl] = b.split(/ (.*)/);
    return `@group(0) @binding(${i}) var<storage, ${mode}> ${decl};`;
  }).join("\n") + `
struct U { rows: u32, len: u32, ignore: i32, nan: u32 }
@group(0) @binding(${bindings.length}) var<uniform> u: U;
fn bad_target(t: i32) -> bool { return t != u.ignore && (t < 0 || u32(t) >= u.len); }
alias F = ${t};`;

/** A piece of rows [start, start + rows) counts its own rows. */
const rowPieces = (p: CrossEntropyParams, { rows }: PieceSpan) => ({ ...p, rows });

/** stats[r] = (logsumexp of row r, its loss or 0 when ignored): logits [N, V], targets [N]. */
export const crossEntropyRowsOp: KernelOp<CrossEntropyParams> = defineOp<CrossEntropyParams>({
  name: "cross_entropy_rows",
  shape: (_inputs, p) => [p.rows, 2],
  cpu([logits, targets], [stats], { rows, classes: V, ignoreIndex }) {
    const x = logits.data;
    const t = targets.data;
    for (let r = 0; r < rows; r++) {
      const base = r * V;
      let m = -Infinity;
      for (let j = 0; j < V; j++) m = Math.max(m, x[base + j]);
      let s = 0;
      for (let j = 0; j < V; j++) s += Math.exp(x[base + j] - m);
      const lse = m + Math.log(s);
      const target = t[r];
      if (target !== ignoreIndex && (target < 0 || target >= V)) {
        throw new RangeError(
          `crossEntropy: target ${target} at row ${r} is out of range [0, ${V}) ` +
            `(ignoreIndex ${ignoreIndex})`,
        );
      }
      stats[2 * r] = lse;
      stats[2 * r + 1] = target === ignoreIndex ? 0 : lse - x[base + target];
    }
  },
  webgpu([logits], _out, p, device: DeviceTraits) {
    const mode = rowMode(p.rows, p.classes, device);
    return {
      source: `${
        HEADER(wgslType(logits.dtype), [
          "read x: array<F>",
          "read targets: array<i32>",
          "read_write stats: array<F>",
        ])
      }
${rowWgsl(mode)}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let row = row_of(wid, l.x);
  if (row >= u.rows) { return; }
  let lid = lane_of(l.x);
  let base = row * u.len;
  ${ROW_MAX_SUM_EXP}
  if (lid == 0u) {
    let lse = m + log(s);
    let t = targets[row];
    var loss = 0.0;
    if (bad_target(t)) { loss = bitcast<f32>(u.nan); } else if (t != u.ignore) {
      loss = lse - x[base + u32(t)];
    }
    stats[2u * row] = lse;
    stats[2u * row + 1u] = loss;
  }
}`,
      grid: rowGrid(p.rows, mode),
      uniforms: uniforms(p),
    };
  },
  wasm: crossEntropyRowsWasm,
  // logits and targets in rows with their stats.
  split: (inputs, outputs, p, limits) =>
    splitRows(inputs, outputs, p, limits, { cut: () => true, params: rowPieces }),
});

/** sums = (mean loss over non-ignored rows, their count) from stats [N, 2] and targets [N]. */
export const crossEntropyMeanOp: KernelOp<CrossEntropyParams> = defineOp<CrossEntropyParams>({
  name: "cross_entropy_mean",
  shape: () => [2],
  cpu([stats, targets], [sums], { rows, ignoreIndex }) {
    let s = 0;
    let count = 0;
    for (let r = 0; r < rows; r++) {
      if (targets.data[r] === ignoreIndex) continue;
      s += stats.data[2 * r + 1];
      count++;
    }
    sums[0] = s / Math.max(count, 1);
    sums[1] = count;
  },
  webgpu([stats], _out, p) {
    return {
      source: `${
        HEADER(wgslType(stats.dtype), [
          "read stats: array<F>",
          "read targets: array<i32>",
          "read_write sums: array<F>",
        ])
      }
${ROW_WGSL}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(local_invocation_id) l: vec3<u32>) {
  let lid = l.x;
  var acc = vec2<f32>(0.0, 0.0);
  for (var r = lid; r < u.rows; r += WG) {
    if (targets[r] != u.ignore) { acc += vec2<f32>(stats[2u * r + 1u], 1.0); }
  }
  acc = wg_sum2(acc, lid);
  if (lid == 0u) {
    sums[0] = acc.x / max(acc.y, 1.0);
    sums[1] = acc.y;
  }
}`,
      grid: [1, 1, 1],
      uniforms: uniforms(p),
    };
  },
  wasm: crossEntropyMeanWasm,
});

/** dlogits [N, V] from logits, targets, stats, sums (for the count) and dy (a scalar). */
export const crossEntropyBackwardOp: KernelOp<CrossEntropyParams> = defineOp<CrossEntropyParams>({
  name: "cross_entropy_backward",
  shape: ([logits]) => logits.shape,
  cpu([logits, targets, stats, sums, dy], [dx], { rows, classes: V, ignoreIndex }) {
    const g = dy.data[dy.offset] / Math.max(sums.data[1], 1);
    for (let r = 0; r < rows; r++) {
      const t = targets.data[r];
      const lse = stats.data[2 * r];
      for (let j = 0; j < V; j++) {
        const i = r * V + j;
        dx[i] = t === ignoreIndex ? 0 : (Math.exp(logits.data[i] - lse) - (j === t ? 1 : 0)) * g;
      }
    }
  },
  webgpu([logits], _out, p) {
    return {
      source: `${
        HEADER(wgslType(logits.dtype), [
          "read x: array<F>",
          "read targets: array<i32>",
          "read stats: array<F>",
          "read sums: array<F>",
          "read dy: array<F>",
          "read_write dx: array<F>",
        ])
      }
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = ${linearIndex()};
  if (i >= u.rows * u.len) { return; }
  let r = i / u.len;
  let t = targets[r];
  if (t == u.ignore) { dx[i] = 0.0; return; }
  let g = dy[0] / max(sums[1], 1.0);
  let p = exp(x[i] - stats[2u * r]);
  let v = select(p, p - 1.0, i - r * u.len == u32(t));
  dx[i] = select(v * g, bitcast<f32>(u.nan), bad_target(t));
}`,
      grid: grid1d(p.rows * p.classes),
      uniforms: uniforms(p),
    };
  },
  wasm: crossEntropyBackwardWasm,
  // logits, targets, stats and dlogits in rows; sums and dy whole.
  split: (inputs, outputs, p, limits) =>
    splitRows(inputs, outputs, p, limits, { cut: (_a, i) => i < 3, params: rowPieces }),
});

function check(logits: Tensor, targets: Tensor): void {
  const expected = logits.shape.slice(0, -1);
  if (logits.ndim < 1 || logits.shape[logits.ndim - 1] === 0) {
    throw new ShapeError(
      `crossEntropy: logits must be [..., V] with V > 0, got ${fmtShape(logits.shape)}`,
    );
  }
  if (!isFloat(logits.dtype)) {
    throw new TypeError(`crossEntropy: logits must be float, got ${logits.dtype}`);
  }
  if (targets.dtype !== "i32") {
    throw new TypeError(`crossEntropy: targets must be i32 class indices, got ${targets.dtype}`);
  }
  if (!sameShape(targets.shape, expected)) {
    throw new ShapeError(
      `crossEntropy: targets ${fmtShape(targets.shape)} do not match logits ` +
        `${fmtShape(logits.shape)} (expected targets ${fmtShape(expected)})`,
    );
  }
}

/**
 * Cross-entropy's per-row statistics, no autograd: stats [N, 2] = (logsumexp of row r, its loss or
 * 0 when its target is `ignoreIndex`) for logits [..., V] (N rows) and targets [...] (i32). The
 * building block of a loss computed over row blocks (linear_cross_entropy.ts): blocks' stats joined
 * along rows give what one call over all rows gives.
 */
export function crossEntropyStats(logits: Tensor, targets: Tensor, ignoreIndex = -1): Tensor {
  check(logits, targets);
  const p = paramsOf(logits, ignoreIndex);
  return apply(crossEntropyRowsOp, asRows(logits, targets, p), p);
}

/**
 * sums [2] = (mean loss over the rows whose target is not `ignoreIndex`, their count) from
 * `crossEntropyStats`' stats [N, 2] and the targets (N of them, any shape); no autograd.
 */
export function crossEntropyMean(stats: Tensor, targets: Tensor, ignoreIndex = -1): Tensor {
  const rows = targets.size;
  if (stats.ndim !== 2 || stats.shape[0] !== rows || stats.shape[1] !== 2) {
    throw new ShapeError(
      `crossEntropyMean: stats are ${fmtShape(stats.shape)}, expected [${rows}, 2] for targets ` +
        `${fmtShape(targets.shape)}`,
    );
  }
  const p: CrossEntropyParams = { rows, classes: 1, ignoreIndex };
  return apply(crossEntropyMeanOp, [stats, reshape(targets, [rows])], p);
}

/**
 * sums [2] = (0, the number of targets that are not `ignoreIndex`): the divisor of the mean loss
 * before any row is seen (the mean kernel over zero losses); no autograd.
 */
export function crossEntropyCount(targets: Tensor, ignoreIndex = -1, dtype: DType = "f32"): Tensor {
  const zero = zeros([targets.size, 2], { backend: targets.backend, dtype });
  const sums = crossEntropyMean(zero, targets, ignoreIndex);
  zero.dispose();
  return sums;
}

/**
 * The gradient of the mean loss for logits [..., V]: dlogits = (softmax(logits) − onehot(targets))
 * · dy / count, 0 on ignored rows, where stats come from `crossEntropyStats` over these rows,
 * count is sums[1] (of `crossEntropyMean` or `crossEntropyCount`, possibly over more rows than
 * these) and dy is a one-element tensor; no autograd.
 */
export function crossEntropyGrad(
  logits: Tensor,
  targets: Tensor,
  stats: Tensor,
  sums: Tensor,
  dy: Tensor,
  ignoreIndex = -1,
): Tensor {
  check(logits, targets);
  const p = paramsOf(logits, ignoreIndex);
  const [l2, t2] = asRows(logits, targets, p);
  return reshape(apply(crossEntropyBackwardOp, [l2, t2, stats, sums, dy], p), logits.shape);
}

function rowsOf(logits: Tensor): number {
  return sizeOf(logits.shape) / logits.shape[logits.ndim - 1];
}

function paramsOf(logits: Tensor, ignoreIndex: number): CrossEntropyParams {
  return { rows: rowsOf(logits), classes: logits.shape[logits.ndim - 1], ignoreIndex };
}

/** logits as [N, V] and targets as [N]: pieces of a split launch are whole rows. */
function asRows(logits: Tensor, targets: Tensor, p: CrossEntropyParams): [Tensor, Tensor] {
  return [reshape(logits, [p.rows, p.classes]), reshape(targets, [p.rows])];
}

/** The mean cross-entropy [] with its row stats and sums saved for the one-pass backward. */
const crossEntropyOp = defineOp<CrossEntropyParams>({
  name: "crossEntropy",
  outputs: (_inputs, p) => [
    { shape: [] },
    { shape: [p.rows, 2], saved: true },
    { shape: [2], saved: true },
  ],
  compute([logits, targets], p) {
    const stats = apply(crossEntropyRowsOp, [logits, targets], p);
    const sums = apply(crossEntropyMeanOp, [stats, targets], { ...p, classes: 1 });
    return [sums.withLayout([], [], 0), stats, sums]; // the loss is sums[0]
  },
  backward: (dy, { inputs: [logits, targets], saved: [stats, sums], params }) => [
    apply(crossEntropyBackwardOp, [logits, targets, stats, sums, dy], params),
    null,
  ],
});

/**
 * Mean cross-entropy of `logits` [..., V] against class indices `targets` [...] (i32), skipping
 * rows whose target is `ignoreIndex`; one fused op with a one-pass backward kernel.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex = -1): Tensor {
  check(logits, targets);
  const p = paramsOf(logits, ignoreIndex);
  return apply(crossEntropyOp, asRows(logits, targets, p), p);
}
