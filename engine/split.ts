// The split rule most kernels declare (Kernel.split) for launches whose arguments exceed one
// binding of the device (engine/op.ts `launch`): cut every argument in step with the first
// output along its leading dims. Pieces are boxes of the output: whole rows of dim 0 while a
// row fits; else, within one index of dim 0, rows of dim 1, and so on. Kernels that read rows at
// offset 0 get pieces of whole dim-0 rows starting on multiples of the binding alignment;
// kernels that address every argument (`anyStart`, the strided elementwise ones) take any box.

import type { ArgInfo, LaunchPiece } from "./backend.ts";
import { byteSize } from "./dtype.ts";

/** Greatest common divisor. */
function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** Where a piece sits in the first output. */
export interface PieceSpan {
  /** Its first index along dim 0 (rows when cut along dim 0). */
  start: number;
  /** Its length along the cut dim. */
  rows: number;
  /** Its first element in the output's row-major order. */
  first: number;
}

/** Options of `splitRows`. */
export interface SplitRowsOptions<P> {
  /** Which inputs are cut with the output (default: those with the output's shape). */
  cut?(a: ArgInfo, index: number): boolean;
  /** The params of a piece (default: unchanged). */
  params?(p: P, span: PieceSpan): P;
  /** The kernel addresses every argument through its offset: pieces need not be aligned. */
  anyStart?: boolean;
  /**
   * Cut no deeper than this dim (default: any dim with anyStart, else dim 0: a row kernel's
   * rows are its leading dim). Deeper cuts of aligned kernels need every cut argument's strides
   * before the cut dim to keep starts aligned.
   */
  maxDepth?: number;
}

/** Bytes an argument spans with `n` indices along dim `d` and one along dims before it. */
function spanAt(a: ArgInfo, d: number, n: number): number {
  if (a.shape.length === 0) return byteSize(a.dtype);
  let span = 1;
  for (let k = 0; k < a.shape.length; k++) {
    const len = k < d ? 1 : k === d ? n : a.shape[k];
    if (len === 0) return 0;
    span += (len - 1) * Math.abs(a.strides[k]);
  }
  return span * byteSize(a.dtype);
}

/** Indices [i_0, .., i_{d-1}] of the `k`-th prefix in row-major order over `shape`'s first d dims. */
function prefixOf(shape: readonly number[], d: number, k: number): number[] {
  const idx = new Array<number>(d);
  for (let j = d - 1; j >= 0; j--) {
    idx[j] = k % shape[j];
    k = Math.floor(k / shape[j]);
  }
  return idx;
}

/** The box of `a` at prefix `idx` (one index along dims before d) and [r0, r0 + n) along d. */
function box(a: ArgInfo, idx: number[], d: number, r0: number, n: number): ArgInfo {
  let offset = a.offset + r0 * a.strides[d];
  for (let j = 0; j < d; j++) offset += idx[j] * a.strides[j];
  const shape = [...a.shape];
  for (let j = 0; j < d; j++) shape[j] = 1;
  shape[d] = n;
  return { ...a, shape, offset };
}

/**
 * Pieces of a launch along the leading dims of the first output: every output and every cut
 * input (by default the inputs of the output's shape; others go whole and must fit) is cut to
 * the same box. Null where no box of at least one element along the cut dim fits.
 */
export function splitRows<P>(
  inputs: ArgInfo[],
  outputs: ArgInfo[],
  params: P,
  { maxBytes, align }: { maxBytes: number; align: number },
  o: SplitRowsOptions<P> = {},
): LaunchPiece<P>[] | null {
  const lead = outputs[0];
  if (!lead || lead.shape.length === 0) return null;
  const shape = lead.shape;
  const sameShape = (a: ArgInfo) =>
    a.shape.length === shape.length && a.shape.every((n, i) => n === shape[i]);
  const cutIn = inputs.map((a, i) => (o.cut ? o.cut(a, i) : sameShape(a)));
  const whole = inputs.filter((_, i) => !cutIn[i]);
  if (whole.some((a) => spanAt(a, 0, a.shape[0] ?? 1) > maxBytes)) return null;
  const cut = [...inputs.filter((_, i) => cutIn[i]), ...outputs];
  // The cut dim: the first d at which one index fits.
  const deepest = Math.min(o.maxDepth ?? (o.anyStart ? shape.length - 1 : 0), shape.length - 1);
  let d = 0;
  while (d <= deepest && cut.some((a) => spanAt(a, d, 1) > maxBytes)) {
    const misaligned = (a: ArgInfo) => (Math.abs(a.strides[d]) * byteSize(a.dtype)) % align !== 0;
    if (!o.anyStart && cut.some(misaligned)) return null;
    d++;
  }
  if (d > deepest) return null;
  let most = shape[d];
  let step = 1;
  for (const a of cut) {
    const rowBytes = Math.abs(a.strides[d]) * byteSize(a.dtype);
    if (rowBytes > 0) {
      most = Math.min(most, Math.floor((maxBytes - spanAt(a, d, 1)) / rowBytes) + 1);
    }
    if (!o.anyStart) {
      const s = rowBytes === 0 ? 1 : align / gcd(align, rowBytes);
      step = (step * s) / gcd(step, s);
    }
  }
  // Without anyStart every cut argument must start aligned: whole steps of rows, or no split.
  const per = Math.floor(most / step) * step;
  if (per < 1) return null;
  const prefixes = shape.slice(0, d).reduce((a, n) => a * n, 1);
  const inner = shape.slice(d + 1).reduce((a, n) => a * n, 1);
  const pieces: LaunchPiece<P>[] = [];
  for (let k = 0; k < prefixes; k++) {
    const idx = prefixOf(shape, d, k);
    for (let r0 = 0; r0 < shape[d]; r0 += per) {
      const n = Math.min(per, shape[d] - r0);
      const first = (k * shape[d] + r0) * inner;
      pieces.push({
        inputs: inputs.map((a, i) => (cutIn[i] ? box(a, idx, d, r0, n) : a)),
        outputs: outputs.map((a) => box(a, idx, d, r0, n)),
        params: o.params
          ? o.params(params, { start: d === 0 ? r0 : idx[0], rows: n, first })
          : params,
      });
    }
  }
  return pieces;
}

/** Rows [start, start + n) of an argument along dim 0 (a view). */
export function narrowRows(a: ArgInfo, start: number, n: number): ArgInfo {
  return box(a, [], 0, start, n);
}
