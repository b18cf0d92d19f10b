// The fused activation quantiser of the ternary path: RMSNorm (learnable weight), per-token
// absmax int8 quantisation, packing 4 bytes per u32, and the per-token scale and sum (formats in
// kernels/ternary.ts). x [T, K] f32 -> xq u32 [T, K16/4], scale f32 [T], sum i32 [T].
// WGSL: one workgroup of TERNARY_QUANT_WG invocations per token (past 65,535 tokens the grid's
// second dimension): each invocation takes every 64th group of 4 values (vec4 loads when
// K % 4 == 0) for its partial Σx² and max|x·g|, invocation 0 adds the partials in order, then
// every invocation packs whole words and the byte sums meet in a workgroup atomic. Three
// barriers in all. T and K travel in a uniform, so one pipeline serves every shape.

import type { Tensor } from "../engine/tensor.ts";
import type { CpuArg, Kernel } from "../engine/backend.ts";
import { copyOf, cpuContiguous, empty, launch } from "../engine/op.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import { grid1d } from "../engine/webgpu/codegen.ts";
import {
  INT8_ACT_EPS,
  int8RowWords,
  quantizeActivationsCpu,
  TERNARY_NORM_EPS,
  TERNARY_QUANT_WG,
} from "./ternary.ts";

/** Quantised activations on a device: what the ternary GEMV/GEMM consume. */
export interface QuantizedActivations {
  /** u32 [T, ceil(K / 16) · 4]: int8 values, 4 per word. */
  data: Tensor;
  /** f32 [T]: s_x = 127 / max|RMSNorm(x)·g| per token. */
  scale: Tensor;
  /** i32 [T]: Σ x_q per token (undoes the weights' offset code). */
  sum: Tensor;
  /** T. */
  tokens: number;
  /** K (before padding). */
  inFeatures: number;
}

/** Parameters of the activation quantiser. */
export interface QuantParams {
  /** Tokens (rows of x). */
  tokens: number;
  /** Features per token (K). */
  inFeatures: number;
  /** RMSNorm epsilon. */
  eps: number;
}

/** A float as an exact WGSL f32 literal (the shortest decimal of its f32 value). */
function wgslF32(v: number): string {
  const s = String(Math.fround(v));
  return /[.e]/.test(s) ? s : `${s}.0`;
}

const sources = new Map<string, string>();

/** The quantiser's WGSL for an eps and K % 4 (memoised). */
function quantWgsl(p: QuantParams): string {
  const key = `${p.eps} ${p.inFeatures % 4 === 0}`;
  let source = sources.get(key);
  if (!source) sources.set(key, source = generateQuant(p));
  return source;
}

function generateQuant({ eps, inFeatures }: QuantParams): string {
  // vec4 loads when K % 4 == 0; the order of the Σx² terms is the same either way.
  const vec = inFeatures % 4 === 0;
  const type = vec ? "vec4<f32>" : "f32";
  const load = (arr: string, at: string) =>
    vec
      ? `let ${arr}v = ${arr}[${arr === "x" ? "t * KV + " : ""}${at}];`
      : `var ${arr}v = vec4<f32>();
      for (var b = 0u; b < 4u; b++) {
        if (4u * ${at} + b < K) { ${arr}v[b] = ${arr}[${
        arr === "x" ? "t * K + " : ""
      }4u * ${at} + b]; }
      }`;
  return `
@group(0) @binding(0) var<storage, read> x: array<${type}>;
@group(0) @binding(1) var<storage, read> g: array<${type}>;
@group(0) @binding(2) var<storage, read_write> xq: array<u32>;
@group(0) @binding(3) var<storage, read_write> xs: array<f32>;
@group(0) @binding(4) var<storage, read_write> xsum: array<i32>;
@group(0) @binding(5) var<uniform> u: vec4<u32>; // tokens, K, words per token
const WG = ${TERNARY_QUANT_WG}u;
const EPS = ${wgslF32(eps)};
const INT8_ACT_EPS = ${wgslF32(INT8_ACT_EPS)};
const TINY_SCALE = ${wgslF32(127 / Math.fround(INT8_ACT_EPS))};
var<workgroup> wss: array<f32, WG>;
var<workgroup> wm: array<f32, WG>;
var<workgroup> stats: vec2<f32>;
var<workgroup> wsum: atomic<i32>;
@compute @workgroup_size(${TERNARY_QUANT_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = wid.x + wid.y * 65535u;
  let live = t < u.x;
  let K = u.y;
  let KV = (K + 3u) / 4u; // words holding values
  let RW = u.z; // words per token, padded
  let l = lid.x;
  if (l == 0u) { atomicStore(&wsum, 0); }
  var ss = 0.0;
  var m = 0.0;
  if (live) {
    for (var w = l; w < KV; w += WG) {
      ${load("x", "w")}
      ${load("g", "w")}
      for (var b = 0u; b < 4u; b++) {
        ss += xv[b] * xv[b];
        m = max(m, abs(xv[b] * gv[b]));
      }
    }
  }
  wss[l] = ss;
  wm[l] = m;
  workgroupBarrier();
  if (l == 0u) {
    var s = 0.0;
    var mm = 0.0;
    for (var i = 0u; i < WG; i++) {
      s += wss[i];
      mm = max(mm, wm[i]);
    }
    stats = vec2<f32>(s, mm);
  }
  workgroupBarrier();
  let st = stats;
  let mx = st.y;
  let r = 1.0 / sqrt(st.x / f32(K) + EPS);
  let a = mx * r;
  let tiny = !(a >= INT8_ACT_EPS);
  let sx = select(127.0 / a, TINY_SCALE, tiny);
  let k127 = 127.0 / mx;
  var qs = 0i;
  if (live) {
    for (var w = l; w < RW; w += WG) {
      var word = 0u;
      if (w < KV) {
        ${load("x", "w")}
        ${load("g", "w")}
        for (var b = 0u; b < 4u; b++) {
          let p = xv[b] * gv[b];
          let v = select(p * k127, (p * r) * sx, tiny);
          let q = i32(clamp(round(v), -128.0, 127.0));
          word |= (bitcast<u32>(q) & 0xffu) << (8u * b);
          qs += q;
        }
      }
      xq[t * RW + w] = word;
    }
  }
  atomicAdd(&wsum, qs);
  workgroupBarrier();
  let total = atomicLoad(&wsum);
  if (l == 0u && live) {
    xs[t] = sx;
    xsum[t] = total;
  }
}`;
}

/** The fused RMSNorm + int8 quantise + pack kernel: x [T, K], g [K] -> xq, scale, sum. */
export const ternaryQuantKernel: Kernel<QuantParams> = {
  name: "ternary_quant",
  cpu([x, g]: CpuArg[], [xq, xs, xsum], p) {
    const r = quantizeActivationsCpu(
      cpuContiguous(x),
      cpuContiguous(g),
      p.tokens,
      p.inFeatures,
      p.eps,
    );
    xq.set(r.packed);
    xs.set(r.scale);
    xsum.set(r.sum);
  },
  wgsl(_inputs, _outputs, p) {
    return {
      source: quantWgsl(p),
      grid: grid1d(p.tokens, 1),
      uniforms: new Uint32Array([p.tokens, p.inFeatures, int8RowWords(p.inFeatures), 0]),
    };
  },
};

/** `t` when row-major at offset 0 (what the WGSL assumes), else a copy without autograd. */
function plain(t: Tensor): Tensor {
  return t.isContiguous() && t.offset === 0 ? t : copyOf(t);
}

/**
 * Quantise activations x [..., K] for the ternary kernels: RMSNorm with `normWeight` [K] (eps
 * 1e-6 unless given), absmax int8 per token, packed. Inference only: no gradient flows.
 */
export function packActivations(
  x: Tensor,
  normWeight: Tensor,
  { eps = TERNARY_NORM_EPS }: { eps?: number } = {},
): QuantizedActivations {
  const K = x.shape[x.ndim - 1];
  if (x.ndim < 1 || normWeight.ndim !== 1 || normWeight.shape[0] !== K) {
    throw new ShapeError(
      `packActivations: x is ${fmtShape(x.shape)}, normWeight is ${fmtShape(normWeight.shape)}; ` +
        `expected x [..., K] and normWeight [K]`,
    );
  }
  if (x.dtype !== "f32" && x.dtype !== "f64") {
    throw new TypeError(`packActivations: x must be float, got ${x.dtype}`);
  }
  const tokens = K === 0 ? 0 : x.size / K;
  const xc = plain(x);
  const g = plain(normWeight);
  const data = empty(x, [tokens, int8RowWords(K)], "u32");
  const scale = empty(x, [tokens], "f32");
  const sum = empty(x, [tokens], "i32");
  if (tokens > 0) {
    launch(ternaryQuantKernel, [xc, g], [data, scale, sum], { tokens, inFeatures: K, eps });
  }
  if (xc !== x) xc.dispose();
  if (g !== normWeight) g.dispose();
  return { data, scale, sum, tokens, inFeatures: K };
}
