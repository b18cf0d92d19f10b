// Embedding lookup: out[..., c] = weight[ids[...], c] (PyTorch's F.embedding), with a
// deterministic scatter-add backward. Shapes (V rows, C channels, N = number of ids):
// weight [V, C] float, ids [...] i32 -> out [..., C]; all row-major (apply copies views).
// Forward: one invocation per output element (workgroup 256). A table larger than one binding
// of the device is looked up in pieces of rows (each writes the outputs of its own ids).
// Backward: dWeight for table rows [start, start + rows) (the whole table, or a piece of it) by
// one workgroup of 64 per row v, which scans the ids in order and, for each k with
// ids[k] = start + v, adds dy[k, :] into its row (each invocation owns channels lid, lid + 64,
// ...). No atomics, and every row is summed in position order, so the result is deterministic
// and in the CPU loop's order. The ids are scanned in passes of `idsPerPass(C)` (the first pass
// zeroes, later ones add): llvmpipe silently stops an invocation after 65,535 loop tests in all,
// and a pass stays under that even when every id is the same. Cost: V·N id comparisons
// (broadcast loads of one id per step) plus N·C adds; for GPT-2 (V = 50257) and N = 8192 tokens
// that is 4e8 comparisons per step (not yet timed on a real GPU); a sort-based CSR build would
// need O(N log N) work but several extra dispatches. Out-of-range ids: the CPU throws naming the
// id and its position; WebGPU cannot throw, so such a position's output row is NaN (the loss
// turns NaN) and adds no gradient.
// wasm (embedding_wasm.ts): the lookup with ids split by thread; the backward with channels
// split by thread and ids in position order (the CPU loop's order); bad ids throw as on the CPU.

import type { ArgInfo, LaunchPiece } from "../engine/backend.ts";
import type { Tensor } from "../engine/tensor.ts";
import { isFloat, wgslType } from "../engine/dtype.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import { apply, defineOp, type KernelOp, launch } from "../engine/op.ts";
import { sizeOf } from "../engine/shape.ts";
import { narrowRows, splitRows } from "../engine/split.ts";
import { grid1d, linearIndex, WORKGROUP_SIZE } from "../engine/webgpu/codegen.ts";
import { ROW_WG, rowGrid } from "./rows/rows.ts";
import { contiguous } from "./elementwise/copy.ts";
import { reshape } from "./shape/view.ts";
import { embeddingBackwardWasm, embeddingWasm } from "./embedding_wasm.ts";

/** Parameters of the embedding kernels: vocabulary size V and embedding width C. */
export interface EmbeddingParams {
  /** Vocabulary size (rows of the table). */
  V: number;
  /** Embedding width (columns of the table). */
  C: number;
  /**
   * The launch holds table rows [start, start + rows) only (a piece of a table larger than one
   * binding): it writes the outputs of ids in that range, and the first piece those of bad ids.
   * Default: the whole table.
   */
  start?: number;
  /** Rows the launch holds (default V). */
  rows?: number;
}

const NAN_BITS = 0x7fc00000;

function uniforms(n: number, { V, C, start = 0, rows = V }: EmbeddingParams): Uint32Array {
  return new Uint32Array([n, V, C, NAN_BITS, start, rows, 0, 0]);
}

const UNIFORM_STRUCT =
  "struct U { n: u32, V: u32, C: u32, nan: u32, start: u32, rows: u32, p0: u32, p1: u32 }";

/** Pieces over rows of the table [V, C], each over pieces of the ids [N] and output [N, C]. */
function tablePieces(
  [w, ids]: ArgInfo[],
  [out]: ArgInfo[],
  p: EmbeddingParams,
  limits: { maxBytes: number; align: number },
): LaunchPiece<EmbeddingParams>[] | null {
  const tables = splitRows([w], [w], p, limits);
  const tokens = splitRows([ids], [out], p, limits, { cut: () => true });
  if (!tables || !tokens) return null;
  return tables.flatMap(({ inputs: [t] }) =>
    tokens.map(({ inputs: [i], outputs: [o] }) => ({
      inputs: [t, i],
      outputs: [o],
      params: { ...p, start: (t.offset - w.offset) / w.strides[0], rows: t.shape[0] },
    }))
  );
}

/** out [N, C] = weight[ids[k]] row by row: inputs weight [V, C], ids [...]. */
export const embeddingOp: KernelOp<EmbeddingParams> = defineOp<EmbeddingParams>({
  name: "embedding",
  shape: ([w, ids]) => [...ids.shape, w.shape[1]],
  cpu([w, ids], [out], { V, C, start = 0, rows = V }) {
    for (let k = 0; k < sizeOf(ids.shape); k++) {
      const id = ids.data[k];
      if (id < 0 || id >= V) {
        throw new RangeError(
          `embedding: id ${id} at position ${k} is out of range [0, ${V}) for weight ` +
            `${fmtShape([V, C])}`,
        );
      }
      if (id < start || id >= start + rows) continue;
      out.set(w.data.subarray((id - start) * C, (id - start + 1) * C), k * C);
    }
  },
  webgpu([w, ids], _out, p) {
    const n = sizeOf(ids.shape) * p.C;
    return {
      source: `${UNIFORM_STRUCT}
@group(0) @binding(0) var<storage, read> w: array<${wgslType(w.dtype)}>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<${wgslType(w.dtype)}>;
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = ${linearIndex()};
  if (i >= u.n) { return; }
  let k = i / u.C;
  let id = ids[k];
  if (id < 0 || u32(id) >= u.V) {
    if (u.start == 0u) { out[i] = bitcast<f32>(u.nan); }
    return;
  }
  let r = u32(id) - u.start; // wraps past the piece's rows below start
  if (r >= u.rows) { return; }
  out[i] = w[r * u.C + (i - k * u.C)];
}`,
      grid: grid1d(n),
      uniforms: uniforms(n, p),
    };
  },
  wasm: embeddingWasm,
  split: tablePieces,
  backward(dy, { inputs: [_w, ids], params: p }) {
    const rows = reshape(dy, [ids.size, p.C]);
    const grad = embeddingRowsGrad(rows, reshape(ids, [ids.size]), { start: 0, rows: p.V, C: p.C });
    return [grad, null];
  },
});

/** Loop iterations an invocation may run on llvmpipe before it silently stops. */
export const SOFTWARE_LOOP_CAP = 65535;

/** Ids one backward pass scans for width C, so no invocation passes SOFTWARE_LOOP_CAP. */
export function idsPerPass(C: number): number {
  // Measured on llvmpipe: each id costs its loop test plus the channel loop's tests (one more
  // than its iterations), so perId + 2; keep a few ids of slack for the zeroing loop.
  const perId = Math.ceil(C / ROW_WG) + 2;
  return Math.max(1, Math.floor((SOFTWARE_LOOP_CAP - 4 * perId) / perId));
}

/** The backward's ids [k0, k1) of one pass; the first pass (accumulate false) zeroes dWeight. */
export interface EmbeddingPass {
  /** First id position of the pass. */
  k0: number;
  /** One past the last id position of the pass. */
  k1: number;
  /** Add into dWeight instead of overwriting it. */
  accumulate: boolean;
}

/** Rows [start, start + rows) of a [V, C] table's gradient: what one backward computes. */
export interface EmbeddingRowsParams {
  /** The first row (of the whole table) this gradient covers. */
  start: number;
  /** Rows covered. */
  rows: number;
  /** Embedding width. */
  C: number;
}

/**
 * dT [rows, C] from dy [N, C] and ids [N]: dT[v] = Σ_{k: ids[k] = start + v} dy[k], over the
 * pass's ids [k0, k1). The whole table is start 0, rows V; a piece of it cut by the split rule
 * (engine/split.ts) is its own range.
 */
export const embeddingBackwardOp: KernelOp<EmbeddingRowsParams & EmbeddingPass> = defineOp<
  EmbeddingRowsParams & EmbeddingPass
>({
  name: "embedding_backward",
  shape: (_inputs, { rows, C }) => [rows, C],
  cpu([dy, ids], [dw], { start, rows, C, k0, k1, accumulate }) {
    if (!accumulate) dw.fill(0);
    for (let k = k0; k < k1; k++) {
      const v = ids.data[k] - start;
      if (v < 0 || v >= rows) continue;
      for (let c = 0; c < C; c++) dw[v * C + c] += dy.data[k * C + c];
    }
  },
  webgpu([dy], _out, p) {
    const t = wgslType(dy.dtype);
    return {
      source: `struct U { k0: u32, k1: u32, start: u32, rows: u32, C: u32, accumulate: u32 }
@group(0) @binding(0) var<storage, read> dy: array<${t}>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> dw: array<${t}>;
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let v = wid.x + wid.y * 65535u;
  if (v >= u.rows) { return; }
  let base = v * u.C;
  let id = i32(v + u.start);
  if (u.accumulate == 0u) {
    for (var c = l.x; c < u.C; c += ${ROW_WG}u) { dw[base + c] = 0.0; }
  }
  for (var k = u.k0; k < u.k1; k++) {
    if (ids[k] != id) { continue; }
    for (var c = l.x; c < u.C; c += ${ROW_WG}u) { dw[base + c] += dy[k * u.C + c]; }
  }
}`,
      grid: rowGrid(p.rows),
      uniforms: new Uint32Array([p.k0, p.k1, p.start, p.rows, p.C, p.accumulate ? 1 : 0, 0, 0]),
    };
  },
  wasm: embeddingBackwardWasm,
  // Pieces over rows of dWeight (each its own row range); dy and ids whole.
  split: gradPieces,
});

/**
 * The backward's pieces: row blocks of dWeight (each its own row range), each over pieces of
 * the pass's ids and dy rows [k0, k1); every piece after a block's first adds in place.
 */
function gradPieces(
  [dy, ids]: ArgInfo[],
  [dw]: ArgInfo[],
  p: EmbeddingRowsParams & EmbeddingPass,
  limits: { maxBytes: number; align: number },
): LaunchPiece<EmbeddingRowsParams & EmbeddingPass>[] | null {
  const span = p.k1 - p.k0;
  const rowsOf = splitRows([], [dw], p, limits);
  const pass = [narrowRows(dy, p.k0, span), narrowRows(ids, p.k0, span)];
  const tokens = splitRows(pass, [pass[1]], p, limits, { cut: () => true });
  if (!rowsOf || !tokens) return null;
  return rowsOf.flatMap(({ outputs: [w] }) => {
    const start = p.start + (w.offset - dw.offset) / dw.strides[0];
    return tokens.map(({ inputs: [d, i] }, j) => ({
      inputs: [d, i],
      outputs: [w],
      params: {
        ...p,
        start,
        rows: w.shape[0],
        k0: 0,
        k1: i.shape[0],
        accumulate: p.accumulate || j > 0,
      },
    }));
  });
}

/**
 * The gradient of table rows [start, start + rows) from dy [N, C] and ids [N], scanning the ids
 * in passes of `idsPerPass(C)` (the first zeroes, the rest add in place, in id order).
 */
export function embeddingRowsGrad(dy: Tensor, ids: Tensor, p: EmbeddingRowsParams): Tensor {
  const N = ids.size;
  const step = idsPerPass(p.C);
  const rows = contiguous(dy);
  const flat = contiguous(ids);
  const out = apply(embeddingBackwardOp, [rows, flat], {
    ...p,
    k0: 0,
    k1: Math.min(N, step),
    accumulate: false,
  });
  for (let k0 = step; k0 < N; k0 += step) {
    launch(embeddingBackwardOp, [rows, flat], [out], {
      ...p,
      k0,
      k1: Math.min(N, k0 + step),
      accumulate: true,
    });
  }
  return out;
}

/** Rows of `weight` [V, C] picked by `ids` [...] (i32): the result is [..., C]. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (weight.ndim !== 2) {
    throw new ShapeError(`embedding: weight must be [V, C], got ${fmtShape(weight.shape)}`);
  }
  if (!isFloat(weight.dtype)) {
    throw new TypeError(`embedding: weight must be float, got ${weight.dtype}`);
  }
  if (ids.dtype !== "i32") {
    throw new TypeError(`embedding: ids must be i32, got ${ids.dtype} ${fmtShape(ids.shape)}`);
  }
  const [V, C] = weight.shape;
  const y = apply(embeddingOp, [weight, reshape(ids, [ids.size])], { V, C }); // (N, C)
  return reshape(y, [...ids.shape, C]);
}
