// Reductions over axes: sum, mean, max (with keepdim) and argmax. The reduced axes are permuted
// last (a view) so the kernel sees contiguous rows: x [R, L] -> y [R]. WGSL, two forms: one
// workgroup of 64 per row (rows beyond 65,535 use the grid's second dimension), each invocation
// summing a strided part of the row, then a tree reduction in workgroup memory; or, for short
// rows and on software adapters, one invocation per row (64 per workgroup, `grid1d`), reducing
// it in order (see reduceInvocationWgsl). Sums accumulate in f32.
// wasm (reduce_wasm.ts): rows split over threads, long rows in fixed chunks whose partials are
// combined in order (results independent of the thread count); f32 inputs (others run the CPU
// loop on heap views: no model reduces integers on this backend).

import type { Tensor } from "../engine/tensor.ts";
import { apply, defineOp, type KernelOp } from "../engine/op.ts";
import { isGradEnabled, noGrad } from "../engine/autograd.ts";
import { normAxis } from "../engine/shape.ts";
import { splitRows } from "../engine/split.ts";
import { byteSize } from "../engine/dtype.ts";
import { DeviceLimitError } from "../engine/errors.ts";
import { wgslType } from "../engine/dtype.ts";
import { grid1d, linearIndex } from "../engine/webgpu/codegen.ts";
import { add, div, eq, maximum, mul } from "./elementwise/binary.ts";
import { expand, narrow, permute, reshape } from "./shape/view.ts";
import { cpuOnHeap } from "./elementwise/wasm.ts";
import { reduceRowsWasm } from "./reduce_wasm.ts";

/** Which row reduction. */
export type ReduceKind = "sum" | "max" | "argmax";
/** Parameters of `reduceRowsOp`: the reduction and the length of each (last-axis) row. */
export interface ReduceRowsParams {
  /** The reduction. */
  kind: ReduceKind;
  /** Length of each row (the reduced last axis). */
  rowLen: number;
  /** Force one workgroup or one invocation per row (tests); default by adapter and length. */
  mode?: "workgroup" | "invocation";
}

const WG = 64;

/** The bindings of both forms: rows x [R, L] in, y [R] out. */
const io = (t: string, outT: string) => `
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read_write> y: array<${outT}>;`;

/**
 * -inf for the start of max and argmax. A WGSL constant cannot be infinite (const evaluation of
 * bitcast<f32>(0xff800000u) is a shader-creation error), so the bits come from a private var,
 * read at run time; a row of all -inf (or NaN) then has max -inf, as on the CPU.
 */
const NEG_INF = "var<private> NEG_INF_BITS: u32 = 0xff800000u;";

/** The accumulator's start: 0, or -inf for max and argmax. */
const initOf = (kind: ReduceKind, t: string) =>
  kind === "sum" ? `${t}(0)` : "bitcast<f32>(NEG_INF_BITS)";

function reduceWgsl(
  kind: ReduceKind,
  t: string,
  outT: string,
  rows: number,
  rowLen: number,
): string {
  const better = "v > best || (v == best && j < bi)";
  // Where no element beat the start value (all -inf or NaN) argmax is 0, as on the CPU.
  const out = kind === "argmax"
    ? "i32(select(si[0], 0u, si[0] == 0xffffffffu))"
    : kind === "max"
    ? `${outT}(sv[0])`
    : "sv[0]";
  return `${io(t, outT)}
${NEG_INF}
var<workgroup> sv: array<${kind === "sum" ? t : "f32"}, ${WG}>;
var<workgroup> si: array<u32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.x + wid.y * 65535u;
  let inRange = row < ${rows}u;
  let base = row * ${rowLen}u;
  var best = ${initOf(kind, t)};
  var bi = 0xffffffffu;
  if (inRange) {
    for (var j = lid.x; j < ${rowLen}u; j += ${WG}u) {
      let v = ${kind === "sum" ? "x[base + j]" : "f32(x[base + j])"};
      ${kind === "sum" ? "best += v;" : `if (${better}) { best = v; bi = j; }`}
    }
  }
  sv[lid.x] = best;
  si[lid.x] = bi;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      ${
    kind === "sum"
      ? "sv[lid.x] += sv[lid.x + s];"
      : `let v = sv[lid.x + s]; let j = si[lid.x + s]; let best = sv[lid.x]; let bi = si[lid.x];
      if (${better}) { sv[lid.x] = v; si[lid.x] = j; }`
  }
    }
    workgroupBarrier();
  }
  if (lid.x == 0u && inRange) {
    y[row] = ${out};
  }
}`;
}

/**
 * One invocation per row, no workgroup memory or barriers: each row is reduced in order, j =
 * 0..L-1. Taken where barriers cost more than the parallelism within a row buys: on software
 * adapters (llvmpipe runs a workgroup's barriers as coroutine switches: 8192 rows of 12, a
 * position-embedding gradient, took 34 ms in workgroup mode) for rows up to INVOCATION_MAX_LEN,
 * and on GPUs for short rows.
 */
function reduceInvocationWgsl(
  kind: ReduceKind,
  t: string,
  outT: string,
  rows: number,
  rowLen: number,
): string {
  const body = kind === "sum" ? "best += x[base + j];" : `let v = f32(x[base + j]);
    if (v > best) { best = v; bi = j; }`;
  const out = kind === "argmax" ? "i32(bi)" : kind === "max" ? `${outT}(best)` : "best";
  return `${io(t, outT)}
${NEG_INF}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = ${linearIndex(WG)};
  if (row >= ${rows}u) { return; }
  let base = row * ${rowLen}u;
  var best = ${initOf(kind, t)};
  var bi = 0u;
  for (var j = 0u; j < ${rowLen}u; j++) {
    ${body}
  }
  y[row] = ${out};
}`;
}

/** Longest row one invocation reduces on a software adapter (llvmpipe ends an invocation's
 * loops after 65,535 tests; kernels/rows/rows.ts uses the same bound). */
const INVOCATION_MAX_LEN = 16383;
/** Longest row one invocation reduces on a GPU. */
const GPU_INVOCATION_MAX_LEN = 32;

/** Row reduction x [R, L] -> y [R]. */
export const reduceRowsOp: KernelOp<ReduceRowsParams> = defineOp<ReduceRowsParams>({
  name: "reduce_rows",
  shape: ([x]) => [x.shape[0]], // x is [R, L]: R rows even when L is 0
  dtype: ([x], { kind }) => (kind === "argmax" ? "i32" : x.dtype),
  cpu([x], [y], { kind, rowLen }) {
    const d = x.data;
    for (let r = 0; r < y.length; r++) {
      const base = r * rowLen;
      if (kind === "sum") {
        let s = 0;
        for (let j = 0; j < rowLen; j++) s += d[base + j];
        y[r] = s;
      } else {
        let best = -Infinity;
        let bi = 0;
        for (let j = 0; j < rowLen; j++) {
          if (d[base + j] > best) {
            best = d[base + j];
            bi = j;
          }
        }
        y[r] = kind === "max" ? best : bi;
      }
    }
  },
  webgpu([x], [y], { kind, rowLen, mode }, device) {
    const rows = y.shape[0];
    const types = [wgslType(x.dtype), wgslType(y.dtype)] as const;
    const perInvocation = mode
      ? mode === "invocation"
      : device?.isFallback
      ? rowLen <= INVOCATION_MAX_LEN
      : rowLen <= GPU_INVOCATION_MAX_LEN;
    if (perInvocation) {
      return {
        source: reduceInvocationWgsl(kind, ...types, rows, rowLen),
        grid: grid1d(rows, WG),
      };
    }
    return { source: reduceWgsl(kind, ...types, rows, rowLen), grid: grid1d(rows, 1) };
  },
  wasm([x], [y], params, ctx) {
    if (x.dtype !== "f32") return cpuOnHeap(reduceRowsOp, [x], [y], params, ctx);
    reduceRowsWasm(x, y, params.kind, params.rowLen, ctx);
  },
  // Whole rows of x with their outputs (rows too long for one binding: see `reduce`).
  split: (inputs, outputs, p, limits) =>
    splitRows(inputs, outputs, p, limits, { cut: (_a, i) => i === 0 }),
  backward(dy, { inputs: [x], params: { kind } }) {
    if (kind !== "sum") return [null]; // max's gradient is formed in `max` below
    return [expand(reshape(dy, [...dy.shape, 1]), x.shape)]; // d sum = 1 for every element
  },
});

function normAxes(op: string, x: Tensor, axes?: number | number[]): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = (typeof axes === "number" ? [axes] : axes).map((a) => normAxis(op, a, x.ndim));
  return [...new Set(list)].sort((a, b) => a - b);
}

function reduce(kind: ReduceKind, x: Tensor, axes: number[], keepdim: boolean): Tensor {
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const rowLen = axes.reduce((n, a) => n * x.shape[a], 1);
  const rows = permute(x, [...kept, ...axes]);
  const flat = reshape(rows, [kept.reduce((n, a) => n * x.shape[a], 1), rowLen]);
  const y = overRows(kind, flat);
  const shape = keepdim
    ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
    : kept.map((a) => x.shape[a]);
  return reshape(y, shape);
}

/** The row reduction of x [R, L]: one launch, or `longRowsOp` for rows over one binding. */
function overRows(kind: ReduceKind, x: Tensor): Tensor {
  const [, L] = x.shape;
  const most = Math.floor(x.backend.traits.maxBindingBytes / byteSize(x.dtype));
  if (L <= most) return apply(reduceRowsOp, [x], { kind, rowLen: L });
  if (kind === "argmax") {
    throw new DeviceLimitError(
      `argmax: a row of ${L} ${x.dtype} elements is longer than one binding of the device ` +
        `(${x.backend.traits.maxBindingBytes} bytes)`,
    );
  }
  return apply(longRowsOp, [x], { kind, rowLen: L });
}

/**
 * reduce_rows over rows longer than one binding of the device (the engine cuts launches into
 * whole rows, so a single row must fit): chunks of columns that fit, combined by add (sum) or
 * maximum (max). One tape node with reduce_rows' backward.
 */
const longRowsOp = defineOp<ReduceRowsParams>({
  name: "reduce_rows",
  shape: ([x]) => [x.shape[0]],
  compute([x], { kind, rowLen }) {
    const most = Math.floor(x.backend.traits.maxBindingBytes / byteSize(x.dtype));
    return noGrad(() => {
      let y: Tensor | null = null;
      for (let c0 = 0; c0 < rowLen; c0 += most) {
        const n = Math.min(most, rowLen - c0);
        const part = apply(reduceRowsOp, [narrow(x, 1, c0, n)], { kind, rowLen: n });
        const next: Tensor = y ? (kind === "sum" ? add(y, part) : maximum(y, part)) : part;
        if (y) {
          y.dispose();
          part.dispose();
        }
        y = next;
      }
      return [y!];
    });
  },
  backward: (dy, ctx) => reduceRowsOp.backward!(dy, ctx),
});

/** Sum over `axes` (default all). */
export function sum(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  return reduce("sum", x, normAxes("sum", x, axes), keepdim);
}

/** Mean over `axes` (default all). */
export function mean(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  const a = normAxes("mean", x, axes);
  const n = a.reduce((k, i) => k * x.shape[i], 1);
  return div(sum(x, a, keepdim), n);
}

/** Max over `axes` (default all); the gradient is shared equally among tied maxima. */
export function max(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  const a = normAxes("max", x, axes);
  const m = reduce("max", x, a, true);
  let out = m;
  if (x.requiresGrad && isGradEnabled()) {
    // Route the gradient: y = sum(x · mask / count) has value max and the amax gradient.
    const mask = eq(x, expand(m, x.shape));
    const weights = div(mask, expand(reduce("sum", mask, a, true), x.shape));
    out = reduce("sum", mul(x, weights), a, true);
  }
  return keepdim ? out : reshape(out, x.shape.filter((_, i) => !a.includes(i)));
}

/** Index of the (first) maximum along `axis` (i32, no gradient). */
export function argmax(x: Tensor, axis = -1, keepdim = false): Tensor {
  return reduce("argmax", x, [normAxis("argmax", axis, x.ndim)], keepdim);
}
