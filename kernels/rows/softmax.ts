// Softmax and log-softmax along one axis, max-subtracted (exp never overflows), with fused
// backward kernels: softmax dx = y·(dy − Σ dy·y), log-softmax dx = dy − exp(y)·Σ dy.
// Shapes: x [..., L] -> y [..., L]; another axis is permuted last (a view) and back.
// Layout: rows of length L, row-major (apply copies views). WGSL in one of rows.ts's two
// modes, chosen per device and shape: one workgroup of 64 per row for long rows on a GPU
// (attention over T up to 1024 keys, vocabularies of 50k): each invocation strides over the row
// (j = lid, lid + 64, ...), partial max/sums meet in a tree reduction in workgroup memory; or
// one invocation per row (software adapters, many short rows): a plain loop, no barriers.
// L and the row count come from a uniform block, so a KV-cached decode step whose row length
// grows each token reuses one pipeline (per mode). -inf entries (masked attention scores) give
// 0; a row that is all -inf gives NaN, as in PyTorch.
// wasm (softmax_wasm.ts): rows claimed in chunks by the threads, each row walked in
// f32x4 vectors with a vectorised exp (<= 1 ulp); compute bound, no cross-thread reduction.

import type { Tensor } from "../../engine/tensor.ts";
import type { TypedArray } from "../../engine/dtype.ts";
import { wgslType } from "../../engine/dtype.ts";
import { apply, defineOp, type KernelOp } from "../../engine/op.ts";
import { normAxis } from "../../engine/shape.ts";
import { splitRows } from "../../engine/split.ts";
import { permute, reshape } from "../shape/view.ts";
import type { DeviceTraits } from "../../engine/backend.ts";
import {
  ROW_MAX_SUM_EXP,
  ROW_WG,
  rowGrid,
  type RowMode,
  rowMode,
  rowsOf,
  rowWgsl,
} from "./rows.ts";
import { softmaxBackwardWasm, softmaxWasm } from "./softmax_wasm.ts";

/** Which row function: softmax or log-softmax. */
export type SoftmaxKind = "softmax" | "log_softmax";
/** Parameters of the softmax kernels. */
export interface SoftmaxParams {
  /** Softmax or log-softmax. */
  kind: SoftmaxKind;
}

function uniforms(shape: readonly number[]): Uint32Array {
  const [rows, len] = rowsOf(shape);
  return new Uint32Array([rows, len, 0, 0]);
}

function forwardWgsl(t: string, kind: SoftmaxKind, mode: RowMode): string {
  const write = kind === "softmax" ? "exp(x[base + j] - m) / s" : "x[base + j] - m - log(s)";
  return `
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read_write> y: array<${t}>;
struct U { rows: u32, len: u32, p0: u32, p1: u32 }
@group(0) @binding(2) var<uniform> u: U;
${rowWgsl(mode)}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let row = row_of(wid, l.x);
  if (row >= u.rows) { return; }
  let lid = lane_of(l.x);
  let base = row * u.len;
  ${ROW_MAX_SUM_EXP}
  for (var j = lid; j < u.len; j += LANES) { y[base + j] = ${write}; }
}`;
}

/** Softmax or log-softmax over the last dim of a row-major x. */
export const softmaxOp: KernelOp<SoftmaxParams> = defineOp<SoftmaxParams>({
  name: "softmax",
  shape: ([x]) => [...x.shape],
  cpu([x], [y], { kind }) {
    const [rows, len] = rowsOf(x.shape);
    const d = x.data;
    for (let r = 0; r < rows; r++) {
      const base = r * len;
      let m = -Infinity;
      for (let j = 0; j < len; j++) m = Math.max(m, d[base + j]);
      let s = 0;
      for (let j = 0; j < len; j++) s += Math.exp(d[base + j] - m);
      for (let j = 0; j < len; j++) {
        y[base + j] = kind === "softmax"
          ? Math.exp(d[base + j] - m) / s
          : d[base + j] - m - Math.log(s);
      }
    }
  },
  webgpu([x], _out, { kind }, device: DeviceTraits) {
    const [rows, len] = rowsOf(x.shape);
    const mode = rowMode(rows, len, device);
    return {
      source: forwardWgsl(wgslType(x.dtype), kind, mode),
      grid: rowGrid(rows, mode),
      uniforms: uniforms(x.shape),
    };
  },
  wasm: softmaxWasm,
  split: (inputs, outputs, p, limits) => splitRows(inputs, outputs, p, limits),
  backward: (dy, { out: y, params }) => [apply(softmaxBackwardOp, [dy, y], params)],
});

function backwardWgsl(t: string, kind: SoftmaxKind, mode: RowMode): string {
  // softmax: c = Σ dy·y, dx = y·(dy − c); log-softmax: c = Σ dy, dx = dy − exp(y)·c.
  const term = kind === "softmax" ? "dy[base + j] * y[base + j]" : "dy[base + j]";
  const write = kind === "softmax"
    ? "y[base + j] * (dy[base + j] - c)"
    : "dy[base + j] - exp(y[base + j]) * c";
  return `
@group(0) @binding(0) var<storage, read> dy: array<${t}>;
@group(0) @binding(1) var<storage, read> y: array<${t}>;
@group(0) @binding(2) var<storage, read_write> dx: array<${t}>;
struct U { rows: u32, len: u32, p0: u32, p1: u32 }
@group(0) @binding(3) var<uniform> u: U;
${rowWgsl(mode)}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let row = row_of(wid, l.x);
  if (row >= u.rows) { return; }
  let lid = lane_of(l.x);
  let base = row * u.len;
  var c = 0.0;
  for (var j = lid; j < u.len; j += LANES) { c += ${term}; }
  c = wg_sum(c, lid);
  for (var j = lid; j < u.len; j += LANES) { dx[base + j] = ${write}; }
}`;
}

function cpuBackward(
  dy: TypedArray,
  y: TypedArray,
  dx: TypedArray,
  len: number,
  kind: SoftmaxKind,
) {
  for (let base = 0; base < dx.length; base += len) {
    let c = 0;
    for (let j = 0; j < len; j++) {
      c += kind === "softmax" ? dy[base + j] * y[base + j] : dy[base + j];
    }
    for (let j = 0; j < len; j++) {
      dx[base + j] = kind === "softmax"
        ? y[base + j] * (dy[base + j] - c)
        : dy[base + j] - Math.exp(y[base + j]) * c;
    }
  }
}

/** dx of softmax / log-softmax from dy and the forward output y (both [..., L]). */
export const softmaxBackwardOp: KernelOp<SoftmaxParams> = defineOp<SoftmaxParams>({
  name: "softmax_backward",
  shape: ([dy]) => [...dy.shape],
  cpu([dy, y], [dx], { kind }) {
    cpuBackward(dy.data, y.data, dx, rowsOf(dy.shape)[1], kind);
  },
  webgpu([dy], _out, { kind }, device: DeviceTraits) {
    const [rows, len] = rowsOf(dy.shape);
    const mode = rowMode(rows, len, device);
    return {
      source: backwardWgsl(wgslType(dy.dtype), kind, mode),
      grid: rowGrid(rows, mode),
      uniforms: uniforms(dy.shape),
    };
  },
  wasm: softmaxBackwardWasm,
  split: (inputs, outputs, p, limits) => splitRows(inputs, outputs, p, limits),
});

function alongAxis(op: string, x: Tensor, axis: number, kind: SoftmaxKind): Tensor {
  if (x.ndim === 0) return reshape(alongAxis(op, reshape(x, [1]), 0, kind), []);
  const a = normAxis(op, axis, x.ndim);
  if (a === x.ndim - 1) return overRows(x, kind);
  // Move `a` last (a view; copied into rows), run, and move it back.
  const perm = x.shape.map((_, i) => i).filter((i) => i !== a).concat(a);
  const inv = perm.map((_, i) => perm.indexOf(i));
  return permute(overRows(permute(x, perm), kind), inv);
}

/** The op over x seen as rows [N, L] (pieces of a split launch are whole rows). */
function overRows(x: Tensor, kind: SoftmaxKind): Tensor {
  const [rows, len] = rowsOf(x.shape);
  return reshape(apply(softmaxOp, [reshape(x, [rows, len])], { kind }), x.shape);
}

/** Softmax along `axis` (default last): exp(x − max) / Σ exp(x − max). */
export function softmax(x: Tensor, axis = -1): Tensor {
  return alongAxis("softmax", x, axis, "softmax");
}

/** Log-softmax along `axis` (default last): x − max − log Σ exp(x − max). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return alongAxis("logSoftmax", x, axis, "log_softmax");
}
