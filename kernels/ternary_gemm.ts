// Ternary × int8 products (formats in kernels/ternary.ts): W u32 [N, K16/16] (2-bit codes) times
// activations xq u32 [T, K16/4] (int8) -> y [T, N] = (Σ q·x_q) / (s_w·s_x[t]) (+ bias), or the
// raw i32 sums. Integer accumulation is exact; the one float multiply comes last.
// `ternaryGemv` (decode, T = 1) and `ternaryGemm` (prompts, batches) share one WGSL generator
// (kernels/ternary_wgsl.ts): an invocation owns rows × tokens outputs and streams their packed
// rows, so GEMV's one activation row is reused across `gemvRows` rows and each GEMM weight word
// across `gemmTokens` tokens. Grids: GEMV 1-D over row tiles; GEMM (row tiles / 64, token tiles).
// dot4I8Packed or the plain-integer fallback, by `ternaryConfig` (feature and adapter detection)
// or forced by the `dot4` option. CPU: the same integer sums straight from the packed words.

import type { Tensor } from "../engine/tensor.ts";
import type { Backend, CpuArg } from "../engine/backend.ts";
import { apply, copyOf, cpuContiguous, defineOp, type OpDef } from "../engine/op.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import { ceilDiv } from "../engine/shape.ts";
import { grid1d } from "../engine/webgpu/codegen.ts";
import { WebGpuBackend } from "../engine/webgpu/backend.ts";
import { ternaryRowWords } from "./ternary.ts";
import type { QuantizedActivations } from "./ternary_quant.ts";
import { TERNARY_WG, ternaryUsesVec4, ternaryWgsl } from "./ternary_wgsl.ts";

/** Packed ternary weights on a device. */
export interface TernaryWeights {
  /** u32 [N, ceil(K / 16)]: 2-bit codes, layout in kernels/ternary.ts. */
  packed: Tensor;
  /** s_w = 1 / max(mean|w|, 1e-5) as f32. */
  scale: number;
  /** N. */
  outFeatures: number;
  /** K (before padding). */
  inFeatures: number;
}

/** Options of the ternary products. */
export interface TernaryOptions {
  /** f32 [N] added to every output row. */
  bias?: Tensor;
  /** Use `dot4I8Packed` (true) or the integer fallback (false); default: `ternaryConfig`. */
  dot4?: boolean;
  /** Output dtype (default f32); f64 exists only on the cpu backend. */
  dtype?: "f32" | "f64";
  /** Overrides of `ternaryConfig(backend)` (tile sizes), for tests and benchmarks. */
  config?: Partial<TernaryConfig>;
}

/** Which kernel and which output. */
export interface GemmParams {
  /** One token (gemv) or a tile of tokens per invocation (gemm). */
  kind: "gemv" | "gemm";
  /** Return the raw i32 sums instead of dequantised floats. */
  raw: boolean;
  /** Output f64 (cpu backend, f64 inputs). */
  f64: boolean;
  /** A bias is bound and added. */
  bias: boolean;
  /** Use dot4I8Packed (else the integer fallback). */
  dot4: boolean;
  /** Output features. */
  N: number;
  /** Input features. */
  K: number;
  /** Tokens. */
  T: number;
  /** Weight scale s_w (outputs are divided by s_w · s_x). */
  scale: number;
  /** Output rows per invocation. */
  rows: number;
  /** Tokens per invocation. */
  tokens: number;
  /** Load 4 weight words at once. */
  vec4: boolean;
}

/** How a backend runs the ternary products: integer path and tile per invocation. */
export interface TernaryConfig {
  /** dot4I8Packed (true) or the pair-multiply fallback (false). */
  dot4: boolean;
  /** Output rows per GEMV invocation. */
  gemvRows: number;
  /** Output rows × tokens per GEMM invocation. */
  gemmRows: number;
  /** Tokens per GEMM invocation. */
  gemmTokens: number;
  /** Load 4 weight words at once where K allows (GEMV). */
  gemvVec4: boolean;
  /** Load 4 weight words at once where K allows (GEMM). */
  gemmVec4: boolean;
}

/** `t` when row-major at offset 0 (what the WGSL assumes), else a copy without autograd. */
function plain(t: Tensor): Tensor {
  return t.isContiguous() && t.offset === 0 ? t : copyOf(t);
}

/** Does this backend's WGSL offer `dot4I8Packed` (packed_4x8_integer_dot_product)? */
export function hasDot4I8(backend: Backend): boolean {
  return backend instanceof WebGpuBackend && backend.ctx.hasDot4I8;
}

/**
 * The configuration for a backend. GPUs: dot4I8Packed where the adapter has it, small tiles.
 * Software adapters (llvmpipe, SwiftShader, WARP) emulate dot4I8Packed with shifts and four
 * multiplies, so they get the pair-multiply path (on llvmpipe ≈ 1.2× faster at the decode
 * shapes, even at the prefill shape) and tall tiles that reuse each activation word across more
 * rows; their GEMM reads one weight word at a time (fewer live registers beat fewer loads there:
 * ≈ 1.3× at the prefill shape), their GEMV four (≈ 1.3× at the decode shapes). Measured with
 * tests/bench/ternary_bench.ts and per-tile sweeps on llvmpipe (LLVM 15, 256-bit, 2 cores).
 */
export function ternaryConfig(backend: Backend): TernaryConfig {
  if (backend instanceof WebGpuBackend && backend.ctx.isFallback) {
    return {
      dot4: false,
      gemvRows: 8,
      gemmRows: 16,
      gemmTokens: 4,
      gemvVec4: true,
      gemmVec4: false,
    };
  }
  return {
    dot4: hasDot4I8(backend),
    gemvRows: 4,
    gemmRows: 4,
    gemmTokens: 4,
    gemvVec4: true,
    gemmVec4: true,
  };
}

// Bit offset of value e (0..15) of a word: 8·(e % 4) + 2·(e / 4), as in kernels/ternary.ts.
const SHIFTS = Array.from({ length: 16 }, (_, e) => 8 * (e & 3) + 2 * (e >> 2));

/** The CPU kernel: the same integer sums from the packed words, one token row at a time. */
function ternaryCpu(
  inputs: CpuArg[],
  y: Float32Array | Float64Array | Int32Array,
  p: GemmParams,
): void {
  const [w, x] = inputs.map(cpuContiguous);
  const xs = p.raw ? null : cpuContiguous(inputs[2]);
  const xsum = cpuContiguous(inputs[p.raw ? 2 : 3]);
  const bias = p.bias ? cpuContiguous(inputs[4]) : null;
  const KW = ternaryRowWords(p.K);
  const xr = new Int32Array(KW * 16);
  const f = p.f64 ? (v: number) => v : Math.fround;
  for (let t = 0; t < p.T; t++) {
    for (let i = 0; i < KW * 16; i++) {
      xr[i] = (x[t * KW * 4 + (i >> 2)] << (24 - 8 * (i & 3))) >> 24;
    }
    const inv = xs ? f(1 / f(p.scale * xs[t])) : 0;
    for (let n = 0; n < p.N; n++) {
      let acc = 0;
      for (let j = 0; j < KW; j++) {
        const word = w[n * KW + j];
        for (let e = 0; e < 16; e++) acc += ((word >>> SHIFTS[e]) & 3) * xr[j * 16 + e];
      }
      acc -= xsum[t];
      y[t * p.N + n] = p.raw ? acc : f(f(acc) * inv) + (bias ? bias[n] : 0);
    }
  }
}

/** The ternary product kernel (GEMV or GEMM, dequantised or raw). */
export const ternaryMatmulOp: OpDef<GemmParams> = defineOp<GemmParams>({
  name: "ternary_matmul",
  shape: (_inputs, p) => [p.T, p.N],
  dtype: (_inputs, p) => (p.raw ? "i32" : p.f64 ? "f64" : "f32"),
  cpu: (inputs, [y], p) => ternaryCpu(inputs, y as Float32Array | Float64Array | Int32Array, p),
  wgsl(_inputs, _outputs, p) {
    const u = new ArrayBuffer(16);
    new Float32Array(u, 0, 1)[0] = p.scale;
    new Uint32Array(u, 4, 3).set([p.T, p.N, ternaryRowWords(p.K)]);
    const gemv = p.kind === "gemv";
    const tiles = ceilDiv(p.N, p.rows);
    return {
      source: ternaryWgsl({ ...p, gemv }),
      grid: gemv
        ? grid1d(tiles, TERNARY_WG)
        : [ceilDiv(tiles, TERNARY_WG), ceilDiv(p.T, p.tokens), 1],
      uniforms: new Uint8Array(u),
    };
  },
});

function run(
  op: string,
  kind: "gemv" | "gemm",
  raw: boolean,
  w: TernaryWeights,
  xq: QuantizedActivations,
  { bias, dot4, dtype = "f32", config: overrides }: TernaryOptions,
): Tensor {
  const N = w.outFeatures;
  const K = w.inFeatures;
  const KW = ternaryRowWords(K);
  const ws = w.packed.shape;
  if (ws.length !== 2 || ws[0] !== N || ws[1] !== KW || w.packed.dtype !== "u32") {
    throw new ShapeError(
      `${op}: packed weight is ${w.packed.dtype} ${fmtShape(ws)}, expected u32 [${N}, ${KW}] ` +
        `for a [${N}, ${K}] weight`,
    );
  }
  if (xq.inFeatures !== K) {
    throw new ShapeError(`${op}: activations have ${xq.inFeatures} features, weight [${N}, ${K}]`);
  }
  if (kind === "gemv" && xq.tokens !== 1) {
    throw new ShapeError(`${op}: GEMV takes one token, got ${xq.tokens}; use ternaryGemm`);
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== N)) {
    throw new ShapeError(`${op}: bias is ${fmtShape(bias.shape)}, expected [${N}]`);
  }
  if (dtype === "f64" && w.packed.backend.name !== "cpu") {
    throw new TypeError(`${op}: f64 output exists only on the cpu backend`);
  }
  const config = { ...ternaryConfig(w.packed.backend), ...overrides };
  const useDot4 = dot4 ?? config.dot4;
  if (useDot4 && w.packed.backend.name === "webgpu" && !hasDot4I8(w.packed.backend)) {
    throw new Error(`${op}: dot4 requested but this adapter lacks packed_4x8_integer_dot_product`);
  }
  const b = bias && !raw ? plain(bias) : null;
  const inputs = [w.packed, xq.data, ...(raw ? [] : [xq.scale]), xq.sum, ...(b ? [b] : [])];
  const params: GemmParams = {
    kind,
    raw,
    f64: dtype === "f64" && !raw,
    bias: !!bias && !raw,
    dot4: useDot4,
    N,
    K,
    T: xq.tokens,
    scale: w.scale,
    rows: kind === "gemv" ? config.gemvRows : config.gemmRows,
    tokens: kind === "gemv" ? 1 : config.gemmTokens,
    vec4: (kind === "gemv" ? config.gemvVec4 : config.gemmVec4) && ternaryUsesVec4(K),
  };
  const y = apply(ternaryMatmulOp, inputs, params);
  if (b && b !== bias) b.dispose();
  return y;
}

/** Decode product: one token's activations × ternary weights -> f32 [1, N] (+ bias). */
export function ternaryGemv(
  w: TernaryWeights,
  xq: QuantizedActivations,
  opts: TernaryOptions = {},
): Tensor {
  return run("ternaryGemv", "gemv", false, w, xq, opts);
}

/** Prompt/batch product: T tokens' activations × ternary weights -> f32 [T, N] (+ bias). */
export function ternaryGemm(
  w: TernaryWeights,
  xq: QuantizedActivations,
  opts: TernaryOptions = {},
): Tensor {
  return run("ternaryGemm", "gemm", false, w, xq, opts);
}

/** `ternaryGemv` for one token, else `ternaryGemm`. */
export function ternaryMatmul(
  w: TernaryWeights,
  xq: QuantizedActivations,
  opts: TernaryOptions = {},
): Tensor {
  return xq.tokens === 1 ? ternaryGemv(w, xq, opts) : ternaryGemm(w, xq, opts);
}

/**
 * The exact integer sums Σ_k q[n, k]·x_q[t, k] as i32 [T, N], from the GEMV (T = 1) or GEMM
 * kernel: what tests compare bit for bit against the CPU.
 */
export function ternaryAccumulate(
  w: TernaryWeights,
  xq: QuantizedActivations,
  { kernel = xq.tokens === 1 ? "gemv" : "gemm", dot4, config }: {
    kernel?: "gemv" | "gemm";
    dot4?: boolean;
    config?: Partial<TernaryConfig>;
  } = {},
): Tensor {
  return run("ternaryAccumulate", kernel, true, w, xq, { dot4, config });
}
