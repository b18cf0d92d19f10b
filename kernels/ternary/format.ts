// Packed formats of the BitNet b1.58 inference path (arXiv 2402.17764) and their CPU source of
// truth. Every ternary kernel (quant.ts, gemm.ts, linear.ts) reads and
// writes exactly these layouts; the functions below define them.
//
// Dims legend: N = out features, K = in features, T = tokens, K16 = ceil(K / 16) · 16 (K padded).
//
// WEIGHTS [N, K] -> u32 [N, K16 / 16] plus one f32 scale per tensor.
//   Absmean quantisation: s_w = f32(1 / max(mean|w|, 1e-5)) (mean in float64, rounded to f32
//   once), q = clamp(roundHalfEven(w · s_w), -1, 1).
//   2-bit offset code c = q + 1: -1 -> 0b00, 0 -> 0b01, +1 -> 0b10 (0b11 never occurs).
//   Row-major along K, 16 values per word; within word j of a row, value k = 16j + 4g + b
//   (group g = 0..3, byte b = 0..3) sits at bits 8b + 2g. So `(word >> 2g) & 0x03030303` is, in
//   one shift and one mask, the four codes of values 16j+4g .. 16j+4g+3 as the four little-endian
//   bytes of an i8x4 word: exactly the lanes `dot4I8Packed` wants, lined up with activation word
//   4j + g. Padding values (k >= K) are q = 0 (code 0b01).
//   Because codes are q + 1 >= 0, Σ_k q_k·x_k = Σ_k c_k·x_k − Σ_k x_k: the kernels dot the raw
//   codes and subtract the token's activation sum once (kept beside its scale, below), so
//   unpacking costs no per-value subtraction.
//
// ACTIVATIONS [T, K] -> u32 [T, K16 / 4] plus f32 scale [T] and i32 sum [T] per token.
//   y = RMSNorm(x) · g (eps 1e-6, g the learnable norm weight), s_x = 127 / max(max|y|, 1e-5),
//   x_q = clamp(roundHalfEven(y · s_x), -128, 127), 4 per word as two's-complement little-endian
//   bytes (value k in byte k % 4 of word k / 4), padding bytes 0. sum = Σ_k x_q[k].
//   Computed in f32 as: p_k = x_k·g_k, m = max|p_k|, r = 1 / sqrt(Σx_k²/K + eps), a = m·r
//   (= max|y|). When a >= 1e-5: x_q = round(p_k · f32(127 / m)) and s_x = 127 / a (the RMS
//   factor cancels, so the bytes do not depend on the order of the sum of squares); otherwise
//   s_x = 127 / 1e-5 and x_q = round((p_k · r) · s_x). The CPU reference rounds every step to
//   f32 and sums squares in the GPU kernel's order (TERNARY_QUANT_WG strided lane partials,
//   then the partials in lane order).
//
// OUTPUT y[t, n] = f32(acc[t, n]) · (1 / (s_w · s_x[t])) (+ bias[n]), acc = Σ_k q[n, k]·x_q[t, k]
//   as an exact i32 (|acc| <= 128·K, so any K < 2^24 is safe).

import { roundHalfEven } from "../elementwise/unary.ts";

/** Ternary values per packed u32 word. */
export const TERNARY_PER_WORD = 16;
/** Int8 activation values per packed u32 word. */
export const INT8_PER_WORD = 4;
/** Clamp of the absmean denominator. */
export const TERNARY_WEIGHT_EPS = 1e-5;
/** Clamp of the absmax denominator. */
export const INT8_ACT_EPS = 1e-5;
/** Default RMSNorm epsilon of BitLinear. */
export const TERNARY_NORM_EPS = 1e-6;
/** Invocations per token of the activation quantiser; fixes the sum-of-squares order. */
export const TERNARY_QUANT_WG = 64;

/** Packed words per weight row for K inputs: ceil(K / 16). */
export function ternaryRowWords(inFeatures: number): number {
  return Math.ceil(inFeatures / TERNARY_PER_WORD);
}

/** Packed words per token of activations for K inputs: ceil(K / 16) · 4. */
export function int8RowWords(inFeatures: number): number {
  return ternaryRowWords(inFeatures) * (TERNARY_PER_WORD / INT8_PER_WORD);
}

/** Bit offset of value k (within its row) inside its word: 8·(k % 4) + 2·((k / 4) % 4). */
function ternaryShift(k: number): number {
  return 8 * (k & 3) + 2 * ((k >> 2) & 3);
}

/** The absmean scale s_w = 1 / max(mean|w|, 1e-5), rounded to f32. */
export function absmeanScale(w: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += Math.abs(w[i]);
  return Math.fround(1 / Math.max(w.length > 0 ? s / w.length : 0, TERNARY_WEIGHT_EPS));
}

/** Absmean-quantise a weight to ternary values q = clamp(round(w · s_w), -1, 1) and s_w. */
export function quantizeTernary(w: ArrayLike<number>): { q: Int8Array; scale: number } {
  const scale = absmeanScale(w);
  const q = new Int8Array(w.length);
  for (let i = 0; i < w.length; i++) {
    q[i] = Math.max(-1, Math.min(1, roundHalfEven(w[i] * scale)));
  }
  return { q, scale };
}

/** Pack ternary values q [N, K] (each -1, 0 or +1) into u32 [N, ceil(K / 16)]. */
export function packTernary(
  q: ArrayLike<number>,
  outFeatures: number,
  inFeatures: number,
): Uint32Array {
  if (q.length !== outFeatures * inFeatures) {
    throw new RangeError(
      `packTernary: ${q.length} values do not fill [${outFeatures}, ${inFeatures}]`,
    );
  }
  const rw = ternaryRowWords(inFeatures);
  const out = new Uint32Array(outFeatures * rw).fill(0x55555555); // every code 0b01: q = 0
  for (let n = 0; n < outFeatures; n++) {
    for (let k = 0; k < inFeatures; k++) {
      const v = q[n * inFeatures + k];
      if (v !== -1 && v !== 0 && v !== 1) {
        throw new RangeError(`packTernary: value ${v} at [${n}, ${k}] is not -1, 0 or +1`);
      }
      const i = n * rw + (k >> 4);
      const s = ternaryShift(k);
      out[i] = (out[i] & ~(3 << s)) | ((v + 1) << s);
    }
  }
  return out;
}

/** Unpack u32 [N, ceil(K / 16)] back to ternary values [N, K]. */
export function unpackTernary(
  packed: Uint32Array,
  outFeatures: number,
  inFeatures: number,
): Int8Array {
  const rw = ternaryRowWords(inFeatures);
  if (packed.length !== outFeatures * rw) {
    throw new RangeError(
      `unpackTernary: ${packed.length} words, expected ${outFeatures}·${rw} for ` +
        `[${outFeatures}, ${inFeatures}]`,
    );
  }
  const q = new Int8Array(outFeatures * inFeatures);
  for (let n = 0; n < outFeatures; n++) {
    for (let k = 0; k < inFeatures; k++) {
      const c = (packed[n * rw + (k >> 4)] >>> ternaryShift(k)) & 3;
      if (c === 3) throw new RangeError(`unpackTernary: invalid code 0b11 at [${n}, ${k}]`);
      q[n * inFeatures + k] = c - 1;
    }
  }
  return q;
}

/** Pack int8 values [T, K] into u32 [T, ceil(K / 16) · 4], little-endian bytes, zero padding. */
export function packInt8(q: ArrayLike<number>, tokens: number, inFeatures: number): Uint32Array {
  if (q.length !== tokens * inFeatures) {
    throw new RangeError(`packInt8: ${q.length} values do not fill [${tokens}, ${inFeatures}]`);
  }
  const rw = int8RowWords(inFeatures);
  const out = new Uint32Array(tokens * rw);
  for (let t = 0; t < tokens; t++) {
    for (let k = 0; k < inFeatures; k++) {
      out[t * rw + (k >> 2)] |= (q[t * inFeatures + k] & 0xff) << (8 * (k & 3));
    }
  }
  return out;
}

/** Unpack u32 [T, ceil(K / 16) · 4] back to int8 values [T, K]. */
export function unpackInt8(packed: Uint32Array, tokens: number, inFeatures: number): Int8Array {
  const rw = int8RowWords(inFeatures);
  if (packed.length !== tokens * rw) {
    throw new RangeError(
      `unpackInt8: ${packed.length} words, expected ${tokens}·${rw} for [${tokens}, ${inFeatures}]`,
    );
  }
  const q = new Int8Array(tokens * inFeatures);
  for (let t = 0; t < tokens; t++) {
    for (let k = 0; k < inFeatures; k++) {
      q[t * inFeatures + k] = (packed[t * rw + (k >> 2)] << (24 - 8 * (k & 3))) >> 24;
    }
  }
  return q;
}

/** Quantised activations on the CPU: packed bytes, per-token scales and per-token sums. */
export interface Int8Activations {
  /** u32 [T, ceil(K / 16) · 4]. */
  packed: Uint32Array;
  /** f32 s_x per token. */
  scale: Float32Array;
  /** Σ x_q per token. */
  sum: Int32Array;
}

/**
 * Σx² of one token in the quantiser kernel's order: lane l of TERNARY_QUANT_WG adds the values
 * of words l, l + TERNARY_QUANT_WG, … (4 values a word, in order), then the lane partials are
 * added in lane order. `f` rounds each step (Math.fround for f32, the identity for f64).
 */
function sumSquares(
  x: ArrayLike<number>,
  base: number,
  inFeatures: number,
  f: (v: number) => number,
): number {
  const words = Math.ceil(inFeatures / 4);
  let total = 0;
  for (let l = 0; l < TERNARY_QUANT_WG; l++) {
    let s = 0;
    for (let w = l; w < words; w += TERNARY_QUANT_WG) {
      for (let k = 4 * w; k < Math.min(4 * w + 4, inFeatures); k++) {
        const v = f(x[base + k]);
        s = f(s + f(v * v));
      }
    }
    total = f(total + s);
  }
  return total;
}

/** Activations quantised to int8 levels, one row per token (before packing). */
export interface Int8Levels {
  /** x_q [T, K], each in [-128, 127]. */
  q: Int8Array;
  /** s_x per token. */
  scale: Float32Array | Float64Array;
  /** The RMSNorm factor r = 1 / sqrt(Σx²/K + eps) per token (what a norm backward needs). */
  rstd: Float32Array | Float64Array;
}

/**
 * The activation quantiser's reference, before packing: RMSNorm with weight g, absmax int8 per
 * token. x [T, K] row-major, g [K]. In f32 (the default) it mirrors the WGSL step by step,
 * rounding every step to f32; with `f64` the same formula runs in float64 (the CPU backend's
 * f64 tensors).
 */
export function quantizeActivationLevels(
  x: ArrayLike<number>,
  normWeight: ArrayLike<number>,
  tokens: number,
  inFeatures: number,
  eps = TERNARY_NORM_EPS,
  f64 = false,
): Int8Levels {
  const f = f64 ? (v: number) => v : Math.fround;
  const q = new Int8Array(tokens * inFeatures);
  const scale = f64 ? new Float64Array(tokens) : new Float32Array(tokens);
  const rstd = f64 ? new Float64Array(tokens) : new Float32Array(tokens);
  const p = f64 ? new Float64Array(inFeatures) : new Float32Array(inFeatures);
  const epsF = f(eps);
  for (let t = 0; t < tokens; t++) {
    const base = t * inFeatures;
    let m = 0;
    for (let k = 0; k < inFeatures; k++) {
      p[k] = f(f(x[base + k]) * f(normWeight[k]));
      m = Math.max(m, Math.abs(p[k]));
    }
    const ss = sumSquares(x, base, inFeatures, f);
    const r = f(1 / f(Math.sqrt(f(f(ss / inFeatures) + epsF))));
    const a = f(m * r);
    const tiny = !(a >= f(INT8_ACT_EPS));
    const sx = tiny ? f(127 / f(INT8_ACT_EPS)) : f(127 / a);
    const k127 = f(127 / m);
    for (let k = 0; k < inFeatures; k++) {
      const v = tiny ? f(f(p[k] * r) * sx) : f(p[k] * k127);
      q[base + k] = Math.max(-128, Math.min(127, roundHalfEven(v)));
    }
    scale[t] = sx;
    rstd[t] = r;
  }
  return { q, scale, rstd };
}

/**
 * The activation quantiser's reference: RMSNorm with weight g, absmax int8 per token, packed.
 * x [T, K] row-major (rounded to f32 first), g [K]. Mirrors the WGSL step by step in f32.
 */
export function quantizeActivationsCpu(
  x: ArrayLike<number>,
  normWeight: ArrayLike<number>,
  tokens: number,
  inFeatures: number,
  eps = TERNARY_NORM_EPS,
): Int8Activations {
  const { q, scale } = quantizeActivationLevels(x, normWeight, tokens, inFeatures, eps);
  const packed = packInt8(q, tokens, inFeatures);
  const sum = new Int32Array(tokens);
  for (let t = 0; t < tokens; t++) {
    let qs = 0;
    for (let k = 0; k < inFeatures; k++) qs += q[t * inFeatures + k];
    sum[t] = qs;
  }
  return { packed, scale: scale as Float32Array, sum };
}
