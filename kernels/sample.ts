// Sampling ops (no gradient): topk, multinomial and sampleLogits, the per-token sampler of
// generation. All are row kernels: one workgroup per row of x [N, V] (grid1d(N, 1)).
// - topk: k selection passes, each a workgroup arg-max over the elements ranked after the last
//   pick in the order (value descending, index ascending); O(k·V/64) per invocation.
// - multinomial / sampleLogits draw by inverse CDF: each invocation owns a contiguous chunk of the
//   row; chunk sums are prefix-summed serially, so chunk ranges partition [0, total) exactly in
//   f32; the invocation whose range holds u·total rescans its chunk. u comes from the engine's
//   Threefry stream (counter = reserved offset + row·numSamples + sample): CPU and WebGPU draw
//   the same u and differ only where float rounding moves u·total across a boundary.
// - sampleLogits fuses temperature, top-k, top-p and the draw into one kernel. Thresholds are
//   found by bisection over order-preserving u32 keys of the floats (32 passes each): top-k keeps
//   z >= the k-th largest z (ties kept); top-p keeps token j when the softmax mass of the tokens
//   strictly above z_j is below p (the smallest nucleus whose mass reaches p; ties kept).
// wasm (sample_wasm.ts): rows split by thread; the reference's float64 arithmetic step for step
// (a radix sort for the order, fdlibm's exp), so the draws are the CPU reference's.

import type { WgslLaunch } from "../engine/backend.ts";
import type { Tensor } from "../engine/tensor.ts";
import type { TypedArray } from "../engine/dtype.ts";
import { isFloat, wgslType } from "../engine/dtype.ts";
import { apply, applyAll, defineOp, type KernelOp } from "../engine/op.ts";
import { cpuContiguous } from "../engine/tensor.ts";
import { noGrad } from "../engine/autograd.ts";
import { tidy } from "../engine/scope.ts";
import { normAxis, sizeOf } from "../engine/shape.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import {
  defaultGenerator,
  type Generator,
  THREEFRY_WGSL,
  wordAt,
  wordToUniform,
} from "../engine/random.ts";
import { grid1d } from "../engine/webgpu/codegen.ts";
import { contiguous } from "./elementwise/copy.ts";
import { permute, reshape } from "./shape/view.ts";
import { argmax } from "./reduce.ts";
import { multinomialWasm, sampleLogitsWasm, topkWasm } from "./sample_wasm.ts";

const TOPK_WG = 64;
// Short rows use small workgroups (llvmpipe compiles barrier-heavy 256-wide shaders slowly).
const drawWg = (V: number) => (V >= 4096 ? 256 : 64);
const NONE = 0xffffffff;

/** x [R, L] -> values [R, k], indices [R, k] (i32), each row sorted descending. */
export const topkRowsOp: KernelOp<{ k: number }> = defineOp<{ k: number }>({
  name: "topk",
  outputs: ([x], { k }) => [{ shape: [x.shape[0], k] }, { shape: [x.shape[0], k], dtype: "i32" }],
  cpu([x], [vals, idx], { k }) {
    const d = cpuContiguous(x);
    const [R, L] = x.shape;
    const order = new Array<number>(L);
    for (let r = 0; r < R; r++) {
      for (let j = 0; j < L; j++) order[j] = j;
      const v = (j: number) => d[r * L + j];
      order.sort((a, b) => (v(a) === v(b) ? a - b : v(a) > v(b) ? -1 : 1));
      for (let s = 0; s < k; s++) {
        vals[r * k + s] = v(order[s]);
        idx[r * k + s] = order[s];
      }
    }
  },
  webgpu([x], _outs, { k }): WgslLaunch {
    const [R, L] = x.shape;
    const t = wgslType(x.dtype);
    return {
      source: `
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read_write> vals: array<${t}>;
@group(0) @binding(2) var<storage, read_write> idx: array<i32>;
struct U { rows: u32, L: u32, k: u32, pad: u32 }
@group(0) @binding(3) var<uniform> u: U;
var<workgroup> sv: array<${t}, ${TOPK_WG}>;
var<workgroup> si: array<u32, ${TOPK_WG}>;
// (v, j) ranks before (bv, bi): larger value, or equal value and smaller index; NONE is last.
fn before(v: ${t}, j: u32, bv: ${t}, bi: u32) -> bool {
  return j != ${NONE}u && (bi == ${NONE}u || v > bv || (v == bv && j < bi));
}
@compute @workgroup_size(${TOPK_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let row = wid.x + wid.y * 65535u;
  if (row >= u.rows) { return; }
  let lid = lid3.x;
  let base = row * u.L;
  var pv = ${t}(0);
  var pi = ${NONE}u;
  for (var s = 0u; s < u.k; s++) {
    var bv = ${t}(0);
    var bi = ${NONE}u;
    for (var j = lid; j < u.L; j += ${TOPK_WG}u) {
      let v = x[base + j];
      // Only elements ranked after the previous pick; NaN (v != v) is never picked.
      if (v == v && (s == 0u || before(pv, pi, v, j)) && before(v, j, bv, bi)) { bv = v; bi = j; }
    }
    sv[lid] = bv;
    si[lid] = bi;
    workgroupBarrier();
    for (var h = ${TOPK_WG / 2}u; h > 0u; h >>= 1u) {
      if (lid < h && before(sv[lid + h], si[lid + h], sv[lid], si[lid])) {
        sv[lid] = sv[lid + h];
        si[lid] = si[lid + h];
      }
      workgroupBarrier();
    }
    pv = sv[0];
    pi = si[0];
    workgroupBarrier();
    if (lid == 0u) {
      vals[row * u.k + s] = pv;
      idx[row * u.k + s] = i32(pi);
    }
  }
}`,
      grid: grid1d(R, 1),
      uniforms: new Uint32Array([R, L, k, 0]),
    };
  },
  wasm: topkWasm,
});

/** The k largest entries along `axis` (default last), sorted descending, ties by lower index. */
export function topk(x: Tensor, k: number, axis = -1): { values: Tensor; indices: Tensor } {
  if (!isFloat(x.dtype)) throw new TypeError(`topk: expected a float tensor, got ${x.dtype}`);
  const a = normAxis("topk", axis, x.ndim);
  const L = x.shape[a];
  if (!Number.isInteger(k) || k < 0 || k > L) {
    throw new ShapeError(`topk: k = ${k} out of range for dim ${a} of ${fmtShape(x.shape)}`);
  }
  return noGrad(() =>
    tidy(() => {
      const kept = x.shape.map((_, i) => i).filter((i) => i !== a);
      const lead = kept.map((i) => x.shape[i]);
      const rows = contiguous(reshape(permute(x, [...kept, a]), [sizeOf(lead), L]));
      const [vals, idx] = applyAll(topkRowsOp, [rows], { k });
      // Back from [...lead, k] to x's dim order: k sits where `axis` was.
      const inv = [...kept, a].map((_, i) => i);
      [...kept, a].forEach((d, i) => (inv[d] = i));
      const back = (t: Tensor) => permute(reshape(t, [...lead, k]), inv);
      return { values: back(vals), indices: back(idx) };
    })
  );
}

/** Where one sampling call's uniforms sit in the Threefry stream. */
export interface SampleDrawParams {
  /** Threefry key of the draw. */
  key: [number, number];
  /** First counter of the draw. */
  offset: number;
  /** Samples drawn per row. */
  numSamples: number;
}

/** Uniform u for sample s of row r (identical on CPU and WebGPU). */
function drawUniform(p: SampleDrawParams, r: number, s: number): number {
  return wordToUniform(wordAt(p.key, p.offset + r * p.numSamples + s)[0]);
}

/** Inverse CDF in index order: the first j with w_0 + ... + w_j > target, else the last w > 0. */
function invCdf(w: ArrayLike<number>, target: number): number {
  let c = 0;
  let last = -1;
  for (let j = 0; j < w.length; j++) {
    if (w[j] > 0) last = j;
    c += w[j];
    if (c > target && w[j] > 0) return j;
  }
  return last;
}

/** The uniform block of a row sampler (struct U in `drawWgsl`). */
function drawUniformBlock(
  p: SampleDrawParams,
  rows: number,
  V: number,
  s: { topK?: number; temperature?: number; topP?: number } = {},
): Uint32Array {
  const buf = new Uint32Array(12);
  buf.set([p.key[0], p.key[1], p.offset % 4294967296, Math.floor(p.offset / 4294967296)]);
  buf.set([rows, V, p.numSamples, s.topK ?? 0], 4);
  new Float32Array(buf.buffer).set([s.temperature ?? 1, s.topP ?? 1], 8);
  return buf;
}

/** WGSL of a workgroup reduction `name(v, lid)` over `arr` (every invocation gets the result). */
function reduceFn(name: string, arr: string, t: string, combine: string, wg: number): string {
  return `fn ${name}(v: ${t}, lid: u32) -> ${t} {
  ${arr}[lid] = v;
  workgroupBarrier();
  for (var h = ${wg / 2}u; h > 0u; h >>= 1u) {
    if (lid < h) { let a = ${arr}[lid]; let b = ${arr}[lid + h]; ${arr}[lid] = ${combine}; }
    workgroupBarrier();
  }
  let r = ${arr}[0];
  workgroupBarrier();
  return r;
}`;
}

/**
 * The WGSL of a row sampler with workgroup size `wg`: `prelude` computes what `weight` (an
 * expression in j, >= 0) needs, then the chunked inverse-CDF draw writes u.ns indices per row.
 */
function drawWgsl(wg: number, prelude: string, weight: string): string {
  return `${THREEFRY_WGSL}
struct U {
  key: vec2<u32>, off: vec2<u32>,
  rows: u32, V: u32, ns: u32, topK: u32,
  temperature: f32, topP: f32, p0: u32, p1: u32,
}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<i32>;
@group(0) @binding(2) var<uniform> u: U;
var<workgroup> red_f: array<f32, ${wg}>;
var<workgroup> red_u: array<u32, ${wg}>;
var<workgroup> pre: array<f32, ${wg + 1}>;
var<workgroup> pick: atomic<u32>;
${reduceFn("sum_f32", "red_f", "f32", "a + b", wg)}
${reduceFn("max_f32", "red_f", "f32", "max(a, b)", wg)}
${reduceFn("sum_u32", "red_u", "u32", "a + b", wg)}
${reduceFn("max_u32", "red_u", "u32", "max(a, b)", wg)}
// Order-preserving map of f32 to u32 (for bisection on values); -0 maps to +0's key, as they
// compare equal.
fn key_of(v: f32) -> u32 {
  let b0 = bitcast<u32>(v);
  let b = select(b0, 0u, b0 == 0x80000000u);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let row = wid.x + wid.y * 65535u;
  if (row >= u.rows) { return; }
  let lid = lid3.x;
  let base = row * u.V;
${prelude}
  // Chunk sums and the last index of positive weight (for u·total rounding up to total).
  let chunk = (u.V + ${wg - 1}u) / ${wg}u;
  let c0 = min(lid * chunk, u.V);
  let c1 = min(c0 + chunk, u.V);
  var loc = 0.0;
  var last1 = 0u;
  for (var j = c0; j < c1; j++) {
    let w = ${weight};
    loc += w;
    if (w > 0.0) { last1 = j + 1u; }
  }
  red_f[lid] = loc;
  let lastKept = max_u32(last1, lid) - 1u;
  if (lid == 0u) {
    var acc = 0.0;
    for (var t = 0u; t < ${wg}u; t++) {
      pre[t] = acc;
      acc += red_f[t];
    }
    pre[${wg}u] = acc;
  }
  workgroupBarrier();
  let total = pre[${wg}u];
  for (var s = 0u; s < u.ns; s++) {
    if (lid == 0u) { atomicStore(&pick, ${NONE}u); }
    workgroupBarrier();
    let word = threefry2x32(u.key, tf_counter(u.off.x, u.off.y, row * u.ns + s));
    let goal = tf_uniform(word.x) * total;
    if (pre[lid] <= goal && goal < pre[lid + 1u]) {
      // Same summation order as loc above, so the running sum reaches pre[lid + 1] exactly.
      var run = 0.0;
      for (var j = c0; j < c1; j++) {
        run += ${weight};
        if (pre[lid] + run > goal) {
          atomicMin(&pick, j);
          break;
        }
      }
    }
    workgroupBarrier();
    if (lid == 0u) {
      let p = atomicLoad(&pick);
      y[row * u.ns + s] = bitcast<i32>(select(p, lastKept, p == ${NONE}u));
    }
    workgroupBarrier();
  }
}`;
}

/** probs [N, V] -> i32 [N, numSamples]: inverse-CDF draws with replacement. */
export const multinomialOp: KernelOp<SampleDrawParams> = defineOp<SampleDrawParams>({
  name: "multinomial",
  shape: ([p], { numSamples }) => [p.shape[0], numSamples],
  dtype: () => "i32",
  cpu([p], [y], params) {
    const d = cpuContiguous(p);
    const [N, V] = p.shape;
    const w = new Float64Array(V);
    for (let r = 0; r < N; r++) {
      let total = 0;
      for (let j = 0; j < V; j++) total += w[j] = d[r * V + j] > 0 ? d[r * V + j] : 0;
      for (let s = 0; s < params.numSamples; s++) {
        y[r * params.numSamples + s] = invCdf(w, drawUniform(params, r, s) * total);
      }
    }
  },
  webgpu([p], _outs, params) {
    const [N, V] = p.shape;
    const weight = "select(0.0, x[base + j], x[base + j] > 0.0)";
    return {
      source: drawWgsl(drawWg(V), "", weight),
      grid: grid1d(N, 1),
      uniforms: drawUniformBlock(params, N, V),
    };
  },
  wasm: multinomialWasm,
});

/** Options of multinomial. */
export interface MultinomialOptions {
  /** The random stream (default: the engine's default generator). */
  generator?: Generator;
}

/**
 * Draw `numSamples` indices per row of `probs` [N, V] (or [V]) with replacement, with
 * probability proportional to the row's entries (need not sum to 1; entries <= 0 are never
 * drawn; a row without a positive entry gives -1). Returns i32 [N, numSamples] (or [numSamples]).
 */
export function multinomial(
  probs: Tensor,
  numSamples = 1,
  { generator = defaultGenerator() }: MultinomialOptions = {},
): Tensor {
  if (probs.ndim !== 1 && probs.ndim !== 2) {
    throw new ShapeError(`multinomial: probs must be [N, V] or [V], got ${fmtShape(probs.shape)}`);
  }
  if (!isFloat(probs.dtype)) {
    throw new TypeError(`multinomial: probs must be a float tensor, got ${probs.dtype}`);
  }
  if (!Number.isInteger(numSamples) || numSamples < 1) {
    throw new RangeError(`multinomial: numSamples must be a positive integer, got ${numSamples}`);
  }
  return noGrad(() =>
    tidy(() => {
      const p2 = probs.ndim === 1 ? reshape(probs, [1, probs.shape[0]]) : probs;
      const draw = generator.reserve(p2.shape[0] * numSamples);
      const y = apply(multinomialOp, [p2], { ...draw, numSamples });
      return probs.ndim === 1 ? reshape(y, [numSamples]) : y;
    })
  );
}

/** Parameters of the fused sampler. */
export interface SampleLogitsParams extends SampleDrawParams {
  /** Logits are divided by this before softmax. */
  temperature: number;
  /** Keep only the k most likely tokens (0: all). */
  topK: number;
  /** Keep the smallest set whose probability reaches p (1: all). */
  topP: number;
}

/** Keep mask of temperature-scaled logits z under top-k and top-p (the CPU reference). */
function keepMask(z: Float64Array, topK: number, topP: number): Float64Array {
  const V = z.length;
  const order = Array.from({ length: V }, (_, j) => j).sort((a, b) => z[b] - z[a] || a - b);
  const m = z[order[0]];
  const kth = topK > 0 && topK < V ? z[order[topK - 1]] : -Infinity;
  const e = new Float64Array(V);
  let S = 0;
  for (let j = 0; j < V; j++) S += e[j] = z[j] >= kth ? Math.exp(z[j] - m) : 0;
  let thr = kth;
  if (topP < 1) {
    // Walk groups of equal z from the top; keep a group while the mass above it is < p·S.
    let above = 0;
    for (let i = 0; i < V;) {
      let g = i;
      let mass = 0;
      while (g < V && z[order[g]] === z[order[i]]) mass += e[order[g++]];
      if (above >= topP * S || e[order[i]] === 0) break;
      thr = z[order[i]];
      above += mass;
      i = g;
    }
  }
  for (let j = 0; j < V; j++) e[j] = z[j] >= thr ? e[j] : 0;
  return e;
}

/** logits [N, V] -> i32 [N]: temperature, top-k, top-p and the draw in one row kernel. */
export const sampleLogitsOp: KernelOp<SampleLogitsParams> = defineOp<SampleLogitsParams>({
  name: "sample_logits",
  shape: ([x]) => [x.shape[0]],
  dtype: () => "i32",
  cpu([x], [y], p) {
    const d: TypedArray = cpuContiguous(x);
    const [N, V] = x.shape;
    // The device reads temperature and p as f32: use the same values here.
    const [T, P] = [Math.fround(p.temperature), Math.fround(p.topP)];
    for (let r = 0; r < N; r++) {
      const z = Float64Array.from(d.subarray(r * V, (r + 1) * V), (v) => v / T);
      const w = keepMask(z, p.topK, P);
      let total = 0;
      for (let j = 0; j < V; j++) total += w[j];
      y[r] = invCdf(w, drawUniform(p, r, 0) * total);
    }
  },
  webgpu([x], _outs, p) {
    const [N, V] = x.shape;
    const wg = drawWg(V);
    return {
      source: drawWgsl(wg, samplePrelude(wg), WEIGHT),
      grid: grid1d(N, 1),
      uniforms: drawUniformBlock(p, N, V, p),
    };
  },
  wasm: sampleLogitsWasm,
});

const WEIGHT =
  "select(0.0, exp(x[base + j] / u.temperature - m), key_of(x[base + j] / u.temperature) >= thr)";

/**
 * WGSL computing m (the max of z = x / T) and thr (the smallest kept key) for a row. The filters
 * switch on uniform flags, so one pipeline serves every option (and compiles once).
 */
function samplePrelude(wg: number): string {
  const loop = (body: string) =>
    `for (var j = lid; j < u.V; j += ${wg}u) { let z = x[base + j] / u.temperature; ${body} }`;
  // Bisection over keys: the largest t with pred(t), where pred is monotone decreasing in t.
  const bisect = (acc: string, init: string, test: string, reduce: string) => `
  {
    var t = 0u;
    for (var b = 31i; b >= 0i; b--) {
      let c = t | (1u << u32(b));
      var a = ${init};
      ${loop(`if (key_of(z) >= c && key_of(z) >= thr) { ${acc} }`)}
      if (${reduce}(a, lid) ${test}) { t = c; }
    }
    thr = max(thr, t);
  }`;
  return `
  var mx = -3.402823e38;
  ${loop("mx = max(mx, z);")}
  let m = max_f32(mx, lid);
  var thr = 0u;
  if (u.topK > 0u && u.topK < u.V) {
    ${bisect("a += 1u;", "0u", ">= u.topK", "sum_u32")}
  }
  if (u.topP < 1.0) {
    var sl = 0.0;
    ${loop("if (key_of(z) >= thr) { sl += exp(z - m); }")}
    let pS = u.topP * sum_f32(sl, lid);
    ${bisect("a += exp(z - m);", "0.0", ">= pS", "sum_f32")}
  }`;
}

/** Options of sampleLogits. */
export interface SampleOptions {
  /** Softmax temperature; 0 means greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (0: all). Default 0. */
  topK?: number;
  /** Keep the smallest set of top tokens whose probability reaches p (1: all). Default 1. */
  topP?: number;
  /** The random stream (default: the engine's default generator). */
  generator?: Generator;
}

/**
 * Sample one token per row of `logits` [N, V] -> i32 [N] on the tensor's device: softmax at
 * `temperature`, filtered by top-k then top-p, drawn by inverse CDF (one kernel; greedy argmax
 * when temperature is 0). Nothing is read back to the CPU.
 */
export function sampleLogits(logits: Tensor, opts: SampleOptions = {}): Tensor {
  const { temperature = 1, topK = 0, topP = 1, generator = defaultGenerator() } = opts;
  if (logits.ndim !== 2) {
    throw new ShapeError(`sampleLogits: logits must be [N, V], got ${fmtShape(logits.shape)}`);
  }
  if (!isFloat(logits.dtype)) {
    throw new TypeError(`sampleLogits: logits must be a float tensor, got ${logits.dtype}`);
  }
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`sampleLogits: temperature must be >= 0, got ${temperature}`);
  }
  if (!Number.isInteger(topK) || topK < 0) {
    throw new RangeError(`sampleLogits: topK must be a non-negative integer, got ${topK}`);
  }
  if (!(topP > 0 && topP <= 1)) {
    throw new RangeError(`sampleLogits: topP must be in (0, 1], got ${topP}`);
  }
  return noGrad(() => {
    if (temperature === 0) return argmax(logits, -1);
    const draw = generator.reserve(logits.shape[0]);
    return apply(sampleLogitsOp, [logits], { ...draw, numSamples: 1, temperature, topK, topP });
  });
}
