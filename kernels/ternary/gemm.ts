// Ternary × int8 products (formats in format.ts): W u32 [N, K16/16] (2-bit codes) times
// activations xq u32 [T, K16/4] (int8) -> y [T, N] = (Σ q·x_q) / (s_w·s_x[t]) (+ bias), or the
// raw i32 sums. Integer accumulation is exact; the one float multiply comes last.
// `ternaryGemv` (decode, T = 1) and `ternaryGemm` (prompts, batches) share one WGSL generator
// (wgsl.ts): an invocation owns rows × tokens outputs and streams their packed
// rows, so GEMV's one activation row is reused across `gemvRows` rows and each GEMM weight word
// across `gemmTokens` tokens. Grids: GEMV 1-D over row tiles; GEMM (row tiles / `gemmWg`, token
// tiles). dot4I8Packed or the plain-integer fallback, the tiles and whether the GEMM reads W and
// x from staged textures, by `ternaryConfigFor` (the adapter's DeviceTraits) or forced by the
// `dot4` and `config` options. CPU: the same integer
// sums straight from the packed words.

import type { Tensor } from "../../engine/tensor.ts";
import type { Backend, CpuArg, DeviceTraits } from "../../engine/backend.ts";
import { apply, copyOf, defineOp, type KernelOp } from "../../engine/op.ts";
import { cpuContiguous } from "../../engine/tensor.ts";
import { fmtShape, ShapeError } from "../../engine/errors.ts";
import { ceilDiv } from "../../engine/shape.ts";
import { grid1d } from "../../engine/webgpu/codegen.ts";
import { ternaryRowWords } from "./format.ts";
import { ternaryWasm } from "./wasm.ts";
import type { QuantizedActivations } from "./quant.ts";
import { TERNARY_WG, type TernaryShader, ternaryStepWords, ternaryWgsl } from "./wgsl.ts";
import { npot, u32Stage } from "../texture_stage.ts";

export type { TernaryShader } from "./wgsl.ts";

/** Packed ternary weights on a device. */
export interface TernaryWeights {
  /** u32 [N, ceil(K / 16)]: 2-bit codes, layout in format.ts. */
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

/** Which kernel, which output and the shader's specialisation (wgsl.ts). */
export interface GemmParams extends Omit<TernaryShader, "gemv"> {
  /** One token (gemv) or a tile of tokens per invocation (gemm). */
  kind: "gemv" | "gemm";
  /** Output f64 (cpu backend, f64 inputs). */
  f64: boolean;
  /** Output features. */
  N: number;
  /** Input features. */
  K: number;
  /** Tokens. */
  T: number;
  /** Weight scale s_w (outputs are divided by s_w · s_x). */
  scale: number;
}

/** How a backend runs the ternary products: integer path and tile per invocation. */
export interface TernaryConfig {
  /** dot4I8Packed (true) or the pair-multiply fallback (false). */
  dot4: boolean;
  /** Output rows per GEMV invocation. */
  gemvRows: number;
  /** Output rows per GEMM invocation. */
  gemmRows: number;
  /** Tokens per GEMM invocation (at most: fewer tokens get the next power of two above them). */
  gemmTokens: number;
  /** Weight words per GEMV step (1, 2 or 4: u32, vec2 or vec4 loads), fewer where K needs. */
  gemvWords: 1 | 2 | 4;
  /** Weight words per GEMM step, as `gemvWords`. */
  gemmWords: 1 | 2 | 4;
  /** Invocations per GEMM workgroup (the GEMV's is TERNARY_WG). */
  gemmWg: number;
  /** The GEMM reads W and x from textures staged per call (gemmWords 1 or 4; see stages). */
  gemmTextures: boolean;
}

/** `t` when row-major at offset 0 (what the WGSL assumes), else a copy without autograd. */
function plain(t: Tensor): Tensor {
  return t.isContiguous() && t.offset === 0 ? t : copyOf(t);
}

/** Does this backend's WGSL offer `dot4I8Packed` (packed_4x8_integer_dot_product)? */
export function hasDot4I8(backend: Backend): boolean {
  return backend.traits.gpu?.hasDot4I8 ?? false;
}

/**
 * The configuration for an adapter. GPUs: dot4I8Packed where the adapter has it, 4×4 tiles,
 * vec4 weight steps, 64 invocations a workgroup. Software adapters (llvmpipe, SwiftShader, WARP)
 * emulate dot4I8Packed, so they take the pair-multiply path (on llvmpipe it ties or wins, up to
 * ≈ 1.5× for the 32×8 GEMM tile), and tall tiles: there a storage load costs a per-lane loop per
 * 32-bit component while a product costs one instruction per 8 lanes. Where the adapter has
 * read-only storage textures the GEMM stages W and x in textures per call (a copy or fill, about
 * 0.5 ms for a 2048×2048 layer) and reads texels, far cheaper than buffer loads there: 16 rows ×
 * 16 tokens of single words. Otherwise the GEMM takes 32 rows × 8 tokens and vec2 weight steps (≈ 1.5-2× over the former 16 × 4 single-word tiles at
 * 128×2048·2048×2048; single words ≈ 15% slower, taller tiles, more tokens or vec4 steps spill
 * or outgrow the instruction cache and lose), 16 invocations a workgroup so a 2048-row layer
 * still spreads over many workgroups; the GEMV 8 rows and vec4 weights (the earlier sweep: ≈ 1.3×
 * at the decode shapes; unchanged here). Measured with tests/bench/ternary_bench.ts and
 * interleaved per-tile sweeps on llvmpipe (Mesa 22.3, LLVM 15, 256-bit, 2 cores, AVX-512 VNNI).
 */
export function ternaryConfigFor(traits: DeviceTraits): TernaryConfig {
  if (traits.isFallback && traits.textures) {
    // Texel loads are far cheaper than buffer loads there, so smaller, squarer tiles with single
    // words win: 16 rows × 16 tokens ≈ 1.7× the buffer kernel's 32 × 8 at
    // 128×2048·2048×2048 (12.5 vs 21 ms; 32 × 8 on textures 14.3, vec4 words 16-19 ms).
    return {
      dot4: false,
      gemvRows: 8,
      gemmRows: 16,
      gemmTokens: 16,
      gemvWords: 4,
      gemmWords: 1,
      gemmWg: 16,
      gemmTextures: true,
    };
  }
  if (traits.isFallback) {
    return {
      dot4: false,
      gemvRows: 8,
      gemmRows: 32,
      gemmTokens: 8,
      gemvWords: 4,
      gemmWords: 2,
      gemmWg: 16,
      gemmTextures: false,
    };
  }
  return {
    dot4: traits.hasDot4I8,
    gemvRows: 4,
    gemmRows: 4,
    gemmTokens: 4,
    gemvWords: 4,
    gemmWords: 4,
    gemmWg: TERNARY_WG,
    gemmTextures: false,
  };
}

/** The configuration for a backend: its adapter's (`ternaryConfigFor`), a GPU's on the cpu. */
export function ternaryConfig(backend: Backend): TernaryConfig {
  return ternaryConfigFor(backend.traits.gpu ?? { isFallback: false, hasDot4I8: false });
}

// Bit offset of value e (0..15) of a word: 8·(e % 4) + 2·(e / 4), as in format.ts.
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
export const ternaryMatmulOp: KernelOp<GemmParams> = defineOp<GemmParams>({
  name: "ternary_matmul",
  shape: (_inputs, p) => [p.T, p.N],
  dtype: (_inputs, p) => (p.raw ? "i32" : p.f64 ? "f64" : "f32"),
  cpu: (inputs, [y], p) => ternaryCpu(inputs, y as Float32Array | Float64Array | Int32Array, p),
  wasm: ternaryWasm,
  webgpu(_inputs, _outputs, p) {
    const u = new ArrayBuffer(16);
    new Float32Array(u, 0, 1)[0] = p.scale;
    new Uint32Array(u, 4, 3).set([p.T, p.N, ternaryRowWords(p.K)]);
    const gemv = p.kind === "gemv";
    const tiles = ceilDiv(p.N, p.rows);
    const KW = ternaryRowWords(p.K);
    return {
      source: ternaryWgsl({ ...p, gemv }),
      grid: gemv ? grid1d(tiles, p.wg) : [ceilDiv(tiles, p.wg), ceilDiv(p.T, p.tokens), 1],
      uniforms: new Uint8Array(u),
      stages: p.tex
        ? [
          u32Stage(0, p.N, KW, p.words as 1 | 4, "ternary-stage-w"),
          u32Stage(1, p.T, 4 * KW, 4, "ternary-stage-x"),
        ]
        : undefined,
    };
  },
});

/** The least power of two >= n (n >= 1): a short prompt's token tile, not one of duplicates. */
function pow2AtLeast(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}

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
  let config = { ...ternaryConfig(w.packed.backend), ...overrides };
  const backend = w.packed.backend;
  const textures = backend.traits.gpu?.textures;
  if (kind === "gemm" && config.gemmTextures) {
    if (!textures) {
      throw new Error(`${op}: gemmTextures needs a webgpu adapter with read-only storage textures`);
    }
    // The staged textures' sides: W's texels per row and rows, x's texels per row and tokens.
    const words = ternaryStepWords(K, config.gemmWords) === 4 ? 4 : 1;
    if (![KW / words, N, KW, xq.tokens].every((n) => npot(n) <= textures.side)) {
      // Over the device's texture side: the buffer kernel with a software adapter's tiles.
      const { gemmRows, gemmTokens, gemmWords, gemmWg } = ternaryConfigFor({
        isFallback: true,
        hasDot4I8: false,
      });
      config = { ...config, gemmRows, gemmTokens, gemmWords, gemmWg, gemmTextures: false };
    }
  }
  const tex = kind === "gemm" && config.gemmTextures;
  const stepWords = ternaryStepWords(K, kind === "gemv" ? config.gemvWords : config.gemmWords);
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
    tokens: kind === "gemv" ? 1 : Math.min(config.gemmTokens, pow2AtLeast(xq.tokens)),
    // Staged weights come as r32uint or rgba32uint texels: 1 or 4 words a step.
    words: tex && stepWords === 2 ? 1 : stepWords,
    wg: kind === "gemv" ? TERNARY_WG : config.gemmWg,
    tex,
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
