// LayerNorm (Ba et al., arXiv 1607.06450) and RMSNorm (Zhang & Sennrich, arXiv 1910.07467) over
// the last dim, as PyTorch's F.layer_norm / nn.RMSNorm (biased variance, eps inside the sqrt):
//   layer: y = (x − mean)·rstd·w + b,  rstd = 1/sqrt(var + eps)
//   rms:   y = x·rstd·w,               rstd = 1/sqrt(mean(x²) + eps)
// Shapes (N rows, C channels): x [..., C], weight/bias [C] -> y [..., C]; stats [N, 2] (mean,
// rstd) or [N] (rstd) are saved for backward. Rows row-major (views are copied once).
// Forward: one fused row kernel writing y and stats, in either mode of rows.ts (one
// workgroup of 64 per row with reductions in workgroup memory, or one invocation per row without
// barriers; rowMode picks per device and shape). Backward: dx in one row kernel (same modes),
// with g = dy·w and x̂ = (x − mean)·rstd: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) (rms: without
// the mean(g) term); dweight = Σ_rows dy·x̂ and dbias = Σ_rows dy in two steps, both already
// barrier-free: partial sums over blocks of 64 rows (one invocation per column and block, grid
// C/64 × N/64, so there is parallelism when C is small and N large), then a sum over blocks.
// wasm (norm_wasm.ts): forward and dx over rows split by thread, f32x4 passes; the parameter
// gradients as the same per-block partials (one block per thread item, rows added in order) and
// a block-ordered sum with columns split by thread: independent of the thread count.

import type { ArgInfo, DeviceTraits, LaunchPiece } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { byteSize, wgslType } from "../../engine/dtype.ts";
import { fmtShape, ShapeError } from "../../engine/errors.ts";
import { ceilDiv } from "../../engine/shape.ts";
import { grid1d, linearIndex, WORKGROUP_SIZE } from "../../engine/webgpu/codegen.ts";
import { applyAll, defineOp, type KernelOp } from "../../engine/op.ts";
import { narrowRows, type PieceSpan, splitRows } from "../../engine/split.ts";
import { narrow, reshape } from "../shape/view.ts";
import { sum } from "../reduce.ts";
import { ROW_WG, rowGrid, rowMode, rowsOf, rowWgsl } from "./rows.ts";
import {
  normBackwardWasm,
  normForwardWasm,
  normParamPartialWasm,
  normParamSumWasm,
} from "./norm_wasm.ts";

/** Which normalisation: LayerNorm or RMSNorm. */
export type NormKind = "layer" | "rms";
/** Parameters of the norm kernels: kind, rows, row length, epsilon, whether a bias is added. */
export interface NormParams {
  /** LayerNorm or RMSNorm. */
  kind: NormKind;
  /** Number of rows normalised. */
  rows: number;
  /** Length of each row (the last axis). */
  len: number;
  /** Added to the variance (or mean square) before the root. */
  eps: number;
  /** Whether a bias is added after the weight. */
  hasBias: boolean;
  /** Rows per block of the weight gradient's partial sums (default ROW_BLOCK). */
  rowBlock?: number;
}

/** Rows summed per invocation by the dweight/dbias partial kernel. */
const ROW_BLOCK = 64;

/** Rows per partial-sum block: ROW_BLOCK, fewer where that many rows exceed one binding. */
const blockOf = (p: NormParams) => p.rowBlock ?? ROW_BLOCK;

function uniforms({ rows, len, eps }: NormParams, extra = 0): Uint32Array {
  const u = new Uint32Array([rows, len, 0, extra]);
  new Float32Array(u.buffer).set([eps], 2);
  return u;
}

function bindings(t: string, names: string[], outputs: number): string {
  return names.map((n, i) =>
    `@group(0) @binding(${i}) var<storage, ${
      i < names.length - outputs ? "read" : "read_write"
    }> ${n}: array<${t}>;`
  ).join("\n") + `
struct U { rows: u32, len: u32, eps: f32, blocks: u32 }
@group(0) @binding(${names.length}) var<uniform> u: U;`;
}

/** Row r's mean (0 for rms) and rstd, as a CPU loop. */
function rowStats(x: ArrayLike<number>, base: number, len: number, p: NormParams) {
  let mean = 0;
  if (p.kind === "layer") {
    for (let j = 0; j < len; j++) mean += x[base + j];
    mean /= len;
  }
  let ss = 0;
  for (let j = 0; j < len; j++) ss += (x[base + j] - mean) ** 2;
  return { mean, rstd: 1 / Math.sqrt(ss / len + p.eps) };
}

/** Rows of a launch cut in pieces: the norm params count a piece's own rows. */
const rowPieces = (p: NormParams, { rows }: PieceSpan): NormParams => ({ ...p, rows });

/** y and stats (saved for the backward) from x, weight (and bias). */
export const normForwardOp: KernelOp<NormParams> = defineOp<NormParams>({
  name: "norm_forward",
  outputs: ([x], p) => [
    { shape: x.shape },
    { shape: p.kind === "layer" ? [p.rows, 2] : [p.rows], saved: true },
  ],
  cpu([x, w, b], [y, stats], p) {
    for (let r = 0; r < p.rows; r++) {
      const base = r * p.len;
      const { mean, rstd } = rowStats(x.data, base, p.len, p);
      for (let j = 0; j < p.len; j++) {
        const v = (x.data[base + j] - mean) * rstd * w.data[j];
        y[base + j] = p.hasBias ? v + b.data[j] : v;
      }
      if (p.kind === "layer") stats.set([mean, rstd], 2 * r);
      else stats[r] = rstd;
    }
  },
  webgpu([x], _out, p, device: DeviceTraits) {
    const layer = p.kind === "layer";
    const mode = rowMode(p.rows, p.len, device);
    const names = ["x", "w", ...(p.hasBias ? ["b"] : []), "y", "stats"];
    return {
      source: `${bindings(wgslType(x.dtype), names, 2)}
${rowWgsl(mode)}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let row = row_of(wid, l.x);
  if (row >= u.rows) { return; }
  let lid = lane_of(l.x);
  let base = row * u.len;
  let n = f32(u.len);
  var mean = 0.0;
  ${
        layer
          ? `for (var j = lid; j < u.len; j += LANES) { mean += x[base + j]; }
  mean = wg_sum(mean, lid) / n;`
          : ""
      }
  var ss = 0.0;
  for (var j = lid; j < u.len; j += LANES) { let d = x[base + j] - mean; ss += d * d; }
  let rstd = inverseSqrt(wg_sum(ss, lid) / n + u.eps);
  for (var j = lid; j < u.len; j += LANES) {
    y[base + j] = (x[base + j] - mean) * rstd * w[j]${p.hasBias ? " + b[j]" : ""};
  }
  if (lid == 0u) {
    ${layer ? "stats[2u * row] = mean; stats[2u * row + 1u] = rstd;" : "stats[row] = rstd;"}
  }
}`,
      grid: rowGrid(p.rows, mode),
      uniforms: uniforms(p),
    };
  },
  wasm: normForwardWasm,
  split: (inputs, outputs, p, limits) =>
    splitRows(inputs, outputs, p, limits, { cut: (_a, i) => i === 0, params: rowPieces }),
  backward: (dy, { inputs: [x, w, b], saved: [stats], params: p }) =>
    normGrads(dy, x, w, b ?? null, stats, p),
});

/** dx from dy, x, weight and stats. */
export const normBackwardOp: KernelOp<NormParams> = defineOp<NormParams>({
  name: "norm_backward",
  shape: ([_dy, x]) => x.shape,
  cpu([dy, x, w, stats], [dx], p) {
    const layer = p.kind === "layer";
    for (let r = 0; r < p.rows; r++) {
      const base = r * p.len;
      const mean = layer ? stats.data[2 * r] : 0;
      const rstd = layer ? stats.data[2 * r + 1] : stats.data[r];
      let sg = 0;
      let sgx = 0;
      for (let j = 0; j < p.len; j++) {
        const g = dy.data[base + j] * w.data[j];
        sg += g;
        sgx += g * (x.data[base + j] - mean) * rstd;
      }
      const a = layer ? sg / p.len : 0;
      const c = sgx / p.len;
      for (let j = 0; j < p.len; j++) {
        const xhat = (x.data[base + j] - mean) * rstd;
        dx[base + j] = rstd * (dy.data[base + j] * w.data[j] - a - xhat * c);
      }
    }
  },
  webgpu([dy], _out, p, device: DeviceTraits) {
    const layer = p.kind === "layer";
    const mode = rowMode(p.rows, p.len, device);
    return {
      source: `${bindings(wgslType(dy.dtype), ["dy", "x", "w", "stats", "dx"], 1)}
${rowWgsl(mode)}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let row = row_of(wid, l.x);
  if (row >= u.rows) { return; }
  let lid = lane_of(l.x);
  let base = row * u.len;
  let mean = ${layer ? "stats[2u * row]" : "0.0"};
  let rstd = ${layer ? "stats[2u * row + 1u]" : "stats[row]"};
  var acc = vec2<f32>(0.0, 0.0);
  for (var j = lid; j < u.len; j += LANES) {
    let g = dy[base + j] * w[j];
    acc += vec2<f32>(g, g * (x[base + j] - mean) * rstd);
  }
  acc = wg_sum2(acc, lid) / f32(u.len);
  let a = ${layer ? "acc.x" : "0.0"};
  for (var j = lid; j < u.len; j += LANES) {
    let xhat = (x[base + j] - mean) * rstd;
    dx[base + j] = rstd * (dy[base + j] * w[j] - a - xhat * acc.y);
  }
}`,
      grid: rowGrid(p.rows, mode),
      uniforms: uniforms(p),
    };
  },
  wasm: normBackwardWasm,
  // dy, x, stats and dx in rows; the weight whole.
  split: (inputs, outputs, p, limits) =>
    splitRows(inputs, outputs, p, limits, { cut: (_a, i) => i !== 2, params: rowPieces }),
});

/** part[blk, k, c]: Σ over rows of block blk of dy·x̂ (k = 0) and dy (k = 1, with a bias). */
export const normParamPartialOp: KernelOp<NormParams> = defineOp<NormParams>({
  name: "norm_param_partial",
  shape: (_inputs, p) => [ceilDiv(p.rows, blockOf(p)), p.hasBias ? 2 : 1, p.len],
  cpu([dy, x, stats], [part], p) {
    const layer = p.kind === "layer";
    const k = p.hasBias ? 2 : 1;
    part.fill(0);
    for (let r = 0; r < p.rows; r++) {
      const blk = Math.floor(r / blockOf(p));
      const mean = layer ? stats.data[2 * r] : 0;
      const rstd = layer ? stats.data[2 * r + 1] : stats.data[r];
      for (let c = 0; c < p.len; c++) {
        const i = r * p.len + c;
        part[blk * k * p.len + c] += dy.data[i] * (x.data[i] - mean) * rstd;
        if (p.hasBias) part[(blk * k + 1) * p.len + c] += dy.data[i];
      }
    }
  },
  webgpu([dy], _out, p) {
    const layer = p.kind === "layer";
    const k = p.hasBias ? 2 : 1;
    return {
      source: `${bindings(wgslType(dy.dtype), ["dy", "x", "stats", "part"], 1)}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let blk = gid.y;
  if (c >= u.len) { return; }
  let r1 = min(u.rows, (blk + 1u) * ${blockOf(p)}u);
  var gw = 0.0;
  var gb = 0.0;
  for (var r = blk * ${blockOf(p)}u; r < r1; r++) {
    let i = r * u.len + c;
    let mean = ${layer ? "stats[2u * r]" : "0.0"};
    let rstd = ${layer ? "stats[2u * r + 1u]" : "stats[r]"};
    gw += dy[i] * (x[i] - mean) * rstd;
    gb += dy[i];
  }
  part[blk * ${k}u * u.len + c] = gw;
  ${p.hasBias ? "part[(blk * 2u + 1u) * u.len + c] = gb;" : "_ = gb;"}
}`,
      grid: [ceilDiv(p.len, 64), ceilDiv(p.rows, blockOf(p)), 1],
      uniforms: uniforms(p),
    };
  },
  wasm: normParamPartialWasm,
  split: blockPieces,
});

/**
 * norm_param_partial's pieces: blocks of the partial sums with their ROW_BLOCK rows each of dy,
 * x and stats (the block count per piece a multiple that keeps every start aligned).
 */
function blockPieces(
  inputs: ArgInfo[],
  [part]: ArgInfo[],
  p: NormParams,
  { maxBytes, align }: { maxBytes: number; align: number },
): LaunchPiece<NormParams>[] | null {
  const rowBytes = (a: ArgInfo) => a.strides[0] * byteSize(a.dtype);
  const block = blockOf(p);
  const blockBytes = Math.max(...inputs.map((a) => block * rowBytes(a)), rowBytes(part));
  let per = Math.floor(maxBytes / blockBytes);
  for (const a of [...inputs, part]) {
    const r = (a === part ? 1 : block) * rowBytes(a);
    while (per > 1 && (per * r) % align !== 0) per--;
  }
  if (per < 1) return null;
  const blocks = part.shape[0];
  const pieces: LaunchPiece<NormParams>[] = [];
  for (let b0 = 0; b0 < blocks; b0 += per) {
    const nb = Math.min(per, blocks - b0);
    const rows = Math.min(nb * block, p.rows - b0 * block);
    pieces.push({
      inputs: inputs.map((a) => narrowRows(a, b0 * block, rows)),
      outputs: [narrowRows(part, b0, nb)],
      params: { ...p, rows },
    });
  }
  return pieces;
}

/** dweight (and dbias) [C]: the partial sums summed over blocks. */
export const normParamSumOp: KernelOp<NormParams> = defineOp<NormParams>({
  name: "norm_param_sum",
  outputs: (_inputs, p) => Array(p.hasBias ? 2 : 1).fill({ shape: [p.len] }),
  cpu([part], outs, p) {
    const blocks = ceilDiv(p.rows, blockOf(p));
    outs.forEach((o, k) => {
      for (let c = 0; c < p.len; c++) {
        let s = 0;
        for (let blk = 0; blk < blocks; blk++) s += part.data[(blk * outs.length + k) * p.len + c];
        o[c] = s;
      }
    });
  },
  webgpu([part], outs, p) {
    const k = outs.length;
    const names = ["part", "dw", ...(k === 2 ? ["db"] : [])];
    return {
      source: `${bindings(wgslType(part.dtype), names, k)}
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = ${linearIndex()};
  if (c >= u.len) { return; }
  var sw = 0.0;
  var sb = 0.0;
  for (var blk = 0u; blk < u.blocks; blk++) {
    sw += part[blk * ${k}u * u.len + c];
    ${k === 2 ? "sb += part[(blk * 2u + 1u) * u.len + c];" : ""}
  }
  dw[c] = sw;
  ${k === 2 ? "db[c] = sb;" : ""}
}`,
      grid: grid1d(p.len),
      uniforms: uniforms(p, ceilDiv(p.rows, blockOf(p))),
    };
  },
  wasm: normParamSumWasm,
});

function checkParam(op: string, x: Tensor, t: Tensor | null, what: string): void {
  if (!t) return;
  const C = x.shape[x.ndim - 1];
  if (t.ndim !== 1 || t.shape[0] !== C) {
    throw new ShapeError(
      `${op}: ${what} is ${fmtShape(t.shape)}, expected [${C}] for x ${fmtShape(x.shape)}`,
    );
  }
  if (t.dtype !== x.dtype) {
    throw new TypeError(`${op}: ${what} is ${t.dtype}, x is ${x.dtype}`);
  }
}

/**
 * The gradients of a norm's inputs [x, weight(, bias)] from dy and the forward's stats (mean and
 * rstd per row for "layer", rstd for "rms"); null where the input needs none. Shared with ops
 * that normalise inside a fused forward (BitLinear's activation quantiser).
 */
export function normGrads(
  dy: Tensor,
  x: Tensor,
  w: Tensor,
  b: Tensor | null,
  stats: Tensor,
  p: NormParams,
): (Tensor | null)[] {
  const dx = x.requiresGrad ? applyAll(normBackwardOp, [dy, x, w, stats], p)[0] : null;
  let params: (Tensor | null)[] = [null, null];
  if (w.requiresGrad || b?.requiresGrad) {
    // A block of rows of dy and x must fit one binding (the partial kernel's pieces are blocks).
    const fit = Math.floor(dy.backend.traits.maxBindingBytes / (p.len * byteSize(dy.dtype)));
    const q = fit < ROW_BLOCK ? { ...p, rowBlock: Math.max(1, fit) } : p;
    const [part] = applyAll(normParamPartialOp, [dy, x, stats], q);
    params = part.size * byteSize(part.dtype) <= dy.backend.traits.maxBindingBytes
      ? applyAll(normParamSumOp, [part], q)
      : [0, 1].slice(0, part.shape[1]).map((k) => sum(narrow(part, 1, k, 1), [0, 1])); // over blocks
    part.dispose();
  }
  return [dx, ...params].slice(0, b ? 3 : 2);
}

function norm(op: string, kind: NormKind, x: Tensor, w: Tensor, b: Tensor | null, eps: number) {
  if (x.ndim < 1) throw new ShapeError(`${op}: x must have at least one dim, got []`);
  checkParam(op, x, w, "weight");
  checkParam(op, x, b, "bias");
  const [rows, len] = rowsOf(x.shape);
  const p: NormParams = { kind, rows, len, eps, hasBias: b !== null };
  const x2 = reshape(x, [rows, len]); // (N, C): pieces of a split launch are whole rows
  return reshape(applyAll(normForwardOp, b ? [x2, w, b] : [x2, w], p)[0], x.shape);
}

/** LayerNorm over the last dim: (x − mean)/sqrt(var + eps)·weight + bias (bias may be null). */
export function layerNorm(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  eps = 1e-5,
): Tensor {
  return norm("layerNorm", "layer", x, weight, bias, eps);
}

/** RMSNorm over the last dim: x/sqrt(mean(x²) + eps)·weight. */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  return norm("rmsNorm", "rms", x, weight, null, eps);
}
