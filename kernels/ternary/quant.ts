// The fused activation quantiser of the ternary path: RMSNorm (learnable weight), per-token
// absmax int8 quantisation, and either packing 4 bytes per u32 with the per-token scale and sum
// (formats in format.ts; x [T, K] f32 -> xq u32 [T, K16/4], scale f32 [T], sum i32 [T])
// or, for BitLinear's training forward, the int8 levels as floats with the scale and the RMSNorm
// factor (x [T, K] -> q [T, K], scale [T], rstd [T]). Both outputs come from one generator, so
// the levels training sees are exactly the bytes inference packs.
// WGSL, two modes with bit-identical results:
// - "workgroup" (real GPUs): one workgroup of TERNARY_QUANT_WG invocations per token (past
//   65,535 tokens the grid's second dimension); invocation l takes words l, l + 64, … (vec4
//   loads when K % 4 == 0) for its partial Σx² and max|x·g|, invocation 0 adds the partials in
//   lane order, then every invocation quantises whole words (byte sums meet in a workgroup
//   atomic). Three barriers in all.
// - "invocation" (software adapters, where barriers are expensive): one invocation per token,
//   walking the same lane partials one after another; no barriers.
// T and K travel in a uniform, so one pipeline serves every shape.
// wasm (quant_wasm.ts): tokens split by thread, three f32x4 passes per token with the sum of
// squares in the same lane order, so codes, scales, sums and rstd equal the CPU reference's.

import { cpuContiguous, type Tensor } from "../../engine/tensor.ts";
import type { CpuArg, DeviceTraits, Kernel } from "../../engine/backend.ts";
import { applyAll, defineOp, type KernelOp } from "../../engine/op.ts";
import { splitRows } from "../../engine/split.ts";
import { reshape } from "../shape/view.ts";
import { fmtShape, ShapeError } from "../../engine/errors.ts";
import { grid1d, linearIndex } from "../../engine/webgpu/codegen.ts";
import {
  INT8_ACT_EPS,
  int8RowWords,
  quantizeActivationLevels,
  quantizeActivationsCpu,
  TERNARY_NORM_EPS,
  TERNARY_QUANT_WG,
} from "./format.ts";
import { activationLevelsWasm, ternaryQuantWasm } from "./quant_wasm.ts";

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
  /** Force a WGSL mode (tests); default: per invocation on software adapters. */
  mode?: QuantMode;
}

/** A float as an exact WGSL f32 literal (the shortest decimal of its f32 value). */
function wgslF32(v: number): string {
  const s = String(Math.fround(v));
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** Where the quantiser writes: packed words with sums, or int8 levels as floats with rstd. */
export type QuantOutput = "packed" | "levels";
/** One workgroup per token (barriers) or one invocation per token (none); same results. */
export type QuantMode = "workgroup" | "invocation";

interface QuantShape {
  eps: number;
  vec: boolean;
  mode: QuantMode;
  out: QuantOutput;
  dtype: "f32";
}

const sources = new Map<string, string>();

/** The quantiser's WGSL for a variant (memoised). */
function quantWgsl(v: QuantShape): string {
  const key = `${v.eps} ${v.vec} ${v.mode} ${v.out}`;
  let source = sources.get(key);
  if (!source) sources.set(key, source = generateQuant(v));
  return source;
}

/**
 * Both modes sum squares in the same f32 order (lane l of WG takes words l, l + WG, …; then the
 * lane partials in lane order): "invocation" walks the lanes one after another itself. So the
 * levels and scales are bit-identical across modes, and to the CPU reference.
 */
function generateQuant({ eps, vec, mode, out }: QuantShape): string {
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
  const packed = out === "packed";
  const wg = mode === "workgroup";
  const outputs = packed
    ? `@group(0) @binding(2) var<storage, read_write> xq: array<u32>;
@group(0) @binding(3) var<storage, read_write> xs: array<f32>;
@group(0) @binding(4) var<storage, read_write> xsum: array<i32>;
@group(0) @binding(5) var<uniform> u: vec4<u32>; // tokens, K, words per token`
    : `@group(0) @binding(2) var<storage, read_write> q: array<${type}>;
@group(0) @binding(3) var<storage, read_write> xs: array<f32>;
@group(0) @binding(4) var<storage, read_write> rs: array<f32>;
@group(0) @binding(5) var<uniform> u: vec4<u32>; // tokens, K, words per token`;
  // Phase 1: this invocation's Σx² partial(s) and max|x·g|.
  const partial = `for (var w = l; w < KV; w += WG) {
      ${load("x", "w")}
      ${load("g", "w")}
      for (var b = 0u; b < 4u; b++) {
        ss += xv[b] * xv[b];
        m = max(m, abs(xv[b] * gv[b]));
      }
    }`;
  const stats = wg
    ? `var ss = 0.0;
  var m = 0.0;
  if (live) {
    ${partial}
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
  let st = stats;`
    : `var total = 0.0;
  var m = 0.0;
  for (var l = 0u; l < WG; l++) {
    var ss = 0.0;
    ${partial}
    total += ss;
  }
  let st = vec2<f32>(total, m);`;
  // Phase 2: quantise word w's four values into qv.
  const quant = `${load("x", "w")}
        ${load("g", "w")}
        var qv = vec4<i32>();
        for (var b = 0u; b < 4u; b++) {
          let p = xv[b] * gv[b];
          let v = select(p * k127, (p * r) * sx, tiny);
          qv[b] = i32(clamp(round(v), -128.0, 127.0));
        }`;
  const write = packed
    ? `var word = 0u;
      if (w < KV) {
        ${quant}
        for (var b = 0u; b < 4u; b++) {
          word |= (bitcast<u32>(qv[b]) & 0xffu) << (8u * b);
          qs += qv[b];
        }
      }
      xq[t * RW + w] = word;`
    : vec
    ? `${quant}
      q[t * KV + w] = vec4<f32>(qv);`
    : `${quant}
      for (var b = 0u; b < 4u; b++) {
        if (4u * w + b < K) { q[t * K + 4u * w + b] = f32(qv[b]); }
      }`;
  const words = packed ? "RW" : "KV";
  const finish = packed
    ? (wg
      ? `atomicAdd(&wsum, qs);
  workgroupBarrier();
  let total = atomicLoad(&wsum);
  if (l == 0u && live) {
    xs[t] = sx;
    xsum[t] = total;
  }`
      : `xs[t] = sx;
  xsum[t] = qs;`)
    : (wg ? `if (l == 0u && live) { xs[t] = sx; rs[t] = r; }` : `xs[t] = sx;
  rs[t] = r;`);
  const head = wg
    ? `var<workgroup> wss: array<f32, WG>;
var<workgroup> wm: array<f32, WG>;
var<workgroup> stats: vec2<f32>;
${packed ? "var<workgroup> wsum: atomic<i32>;" : ""}
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = wid.x + wid.y * 65535u;
  let live = t < u.x;
  let l = lid.x;
  ${packed ? "if (l == 0u) { atomicStore(&wsum, 0); }" : ""}`
    : `@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = ${linearIndex(TERNARY_QUANT_WG)};
  if (t >= u.x) { return; }
  let live = true;`;
  return `
@group(0) @binding(0) var<storage, read> x: array<${type}>;
@group(0) @binding(1) var<storage, read> g: array<${type}>;
${outputs}
const WG = ${TERNARY_QUANT_WG}u;
const EPS = ${wgslF32(eps)};
const INT8_ACT_EPS = ${wgslF32(INT8_ACT_EPS)};
const TINY_SCALE = ${wgslF32(127 / Math.fround(INT8_ACT_EPS))};
${head}
  let K = u.y;
  let KV = (K + 3u) / 4u; // words holding values
  let RW = u.z; // words per token, padded
  ${stats}
  let mx = st.y;
  let r = 1.0 / sqrt(st.x / f32(K) + EPS);
  let a = mx * r;
  let tiny = !(a >= INT8_ACT_EPS);
  let sx = select(127.0 / a, TINY_SCALE, tiny);
  let k127 = 127.0 / mx;
  var qs = 0i;
  if (live) {
    for (var w = ${wg ? "l" : "0u"}; w < ${words}; w += ${wg ? "WG" : "1u"}) {
      ${write}
    }
  }
  ${finish}
}`;
}

/** The quantiser's launch: grid and uniforms by mode. */
function quantLaunch(p: QuantParams, out: QuantOutput, device: DeviceTraits) {
  const mode: QuantMode = p.mode ?? (device?.isFallback ? "invocation" : "workgroup");
  const vec = p.inFeatures % 4 === 0;
  return {
    source: quantWgsl({ eps: p.eps, vec, mode, out, dtype: "f32" }),
    grid: mode === "workgroup" ? grid1d(p.tokens, 1) : grid1d(p.tokens, TERNARY_QUANT_WG),
    uniforms: new Uint32Array([p.tokens, p.inFeatures, int8RowWords(p.inFeatures), 0]),
  };
}

/** Pieces of a split launch: whole tokens of x and of every output; g whole. */
function splitTokens(
  inputs: Parameters<NonNullable<Kernel<QuantParams>["split"]>>[0],
  outputs: Parameters<NonNullable<Kernel<QuantParams>["split"]>>[1],
  p: QuantParams,
  limits: { maxBytes: number; align: number },
) {
  return splitRows(inputs, outputs, p, limits, {
    cut: (_a, i) => i === 0,
    params: (q, { rows }) => ({ ...q, tokens: rows }),
  });
}

/** The fused RMSNorm + int8 quantise + pack kernel: x [T, K], g [K] -> xq, scale, sum. */
export const ternaryQuantOp: KernelOp<QuantParams> = defineOp<QuantParams>({
  name: "ternary_quant",
  outputs: (_inputs, p) => [
    { shape: [p.tokens, int8RowWords(p.inFeatures)], dtype: "u32" },
    { shape: [p.tokens], dtype: "f32" },
    { shape: [p.tokens], dtype: "i32" },
  ],
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
  webgpu(_inputs, _outputs, p, device) {
    return quantLaunch(p, "packed", device);
  },
  wasm: ternaryQuantWasm,
  split: splitTokens,
});

/**
 * The same quantiser writing int8 levels as floats: x [T, K], g [K] -> q [T, K] (integers in
 * [-128, 127]), scale [T], rstd [T]. BitLinear's training forward runs on these, so its values
 * are bit-identical to the packed path's. f64 tensors (cpu backend) quantise in float64.
 */
export const activationLevelsKernel: Kernel<QuantParams> = {
  name: "activation_levels",
  cpu([x, g]: CpuArg[], [q, xs, rs], p) {
    const r = quantizeActivationLevels(
      cpuContiguous(x),
      cpuContiguous(g),
      p.tokens,
      p.inFeatures,
      p.eps,
      q instanceof Float64Array,
    );
    q.set(r.q);
    xs.set(r.scale);
    rs.set(r.rstd);
  },
  webgpu(_inputs, _outputs, p, device) {
    return quantLaunch(p, "levels", device);
  },
  wasm: activationLevelsWasm,
  split: splitTokens,
};

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
  const p = { tokens, inFeatures: K, eps };
  const [data, scale, sum] = applyAll(ternaryQuantOp, [reshape(x, [tokens, K]), normWeight], p);
  return { data, scale, sum, tokens, inFeatures: K };
}
