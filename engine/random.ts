// Seeded, counter-based random numbers: Threefry-2x32 with 20 rounds (Salmon et al., "Parallel
// random numbers: as easy as 1, 2, 3", SC 2011; the generator JAX uses). Value i of a draw is a
// pure function of (key, counter = offset + i), so the CPU and the WGSL kernels produce the same
// stream: uniforms use the top 24 bits of the first output word, normals use Box-Muller on both.

const PARITY = 0x1bd11bda;

/** Output of the last `threefryInto` call (two u32 words); avoids an allocation per value. */
const OUT = new Uint32Array(2);

/** One Threefry round pair group: four rounds with the given rotations, on (x0, x1). */
function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/**
 * Threefry-2x32-20 of counter (c0, c1) under key (k0, k1) into `OUT`. Unrolled, integer-only
 * (`| 0` keeps V8 on int32 arithmetic): rotations (13, 15, 26, 6) and (17, 29, 16, 24)
 * alternate, a key injection follows every four rounds.
 */
function threefryInto(k0: number, k1: number, c0: number, c1: number): void {
  const k2 = k0 ^ k1 ^ PARITY;
  let x0 = (c0 + k0) | 0;
  let x1 = (c1 + k1) | 0;
  // 1
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 13) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 15) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 26) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 6) ^ x0;
  x0 = (x0 + k1) | 0, x1 = (x1 + k2 + 1) | 0;
  // 2
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 17) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 29) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 16) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 24) ^ x0;
  x0 = (x0 + k2) | 0, x1 = (x1 + k0 + 2) | 0;
  // 3
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 13) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 15) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 26) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 6) ^ x0;
  x0 = (x0 + k0) | 0, x1 = (x1 + k1 + 3) | 0;
  // 4
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 17) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 29) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 16) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 24) ^ x0;
  x0 = (x0 + k1) | 0, x1 = (x1 + k2 + 4) | 0;
  // 5
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 13) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 15) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 26) ^ x0;
  x0 = (x0 + x1) | 0, x1 = rotl(x1, 6) ^ x0;
  x0 = (x0 + k2) | 0, x1 = (x1 + k0 + 5) | 0;
  OUT[0] = x0;
  OUT[1] = x1;
}

/** Threefry-2x32-20 of counter (c0, c1) under key (k0, k1); returns two u32 words. */
export function threefry2x32(k0: number, k1: number, c0: number, c1: number): [number, number] {
  threefryInto(k0, k1, c0, c1);
  return [OUT[0], OUT[1]];
}

/** The same function in WGSL, for kernels that draw random numbers on the device. */
export const THREEFRY_WGSL = /* wgsl */ `
fn tf_rotl(x: u32, r: u32) -> u32 { return (x << r) | (x >> (32u - r)); }
fn tf_round(x: vec2<u32>, r: u32) -> vec2<u32> {
  let a = x.x + x.y;
  return vec2<u32>(a, tf_rotl(x.y, r) ^ a);
}
fn threefry2x32(key: vec2<u32>, ctr: vec2<u32>) -> vec2<u32> {
  let ks = array<u32, 3>(key.x, key.y, key.x ^ key.y ^ 0x1bd11bdau);
  var x = ctr + key;
  for (var i = 1u; i <= 5u; i++) {
    if (i % 2u == 1u) {
      x = tf_round(x, 13u); x = tf_round(x, 15u); x = tf_round(x, 26u); x = tf_round(x, 6u);
    } else {
      x = tf_round(x, 17u); x = tf_round(x, 29u); x = tf_round(x, 16u); x = tf_round(x, 24u);
    }
    x = vec2<u32>(x.x + ks[i % 3u], x.y + ks[(i + 1u) % 3u] + i);
  }
  return x;
}
// Counter for element i of a draw starting at 64-bit offset (lo, hi).
fn tf_counter(lo: u32, hi: u32, i: u32) -> vec2<u32> {
  let c = lo + i;
  return vec2<u32>(c, hi + select(0u, 1u, c < lo));
}
fn tf_uniform(w: u32) -> f32 { return f32(w >> 8u) * 5.9604644775390625e-8; }
fn tf_normal(w: vec2<u32>) -> f32 {
  let u1 = f32((w.x >> 8u) + 1u) * 5.9604644775390625e-8;
  let u2 = f32(w.y >> 8u) * 5.9604644775390625e-8;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
`;

const TWO_32 = 4294967296;
const INV_2_24 = 1 / 16777216;

/** Uniform in [0, 1) from one output word (24 bits of precision, as on the device). */
export function wordToUniform(w: number): number {
  return (w >>> 8) * INV_2_24;
}

/** Standard normal from two output words by Box-Muller (cosine branch). */
export function wordsToNormal(w0: number, w1: number): number {
  const u1 = ((w0 >>> 8) + 1) * INV_2_24; // (0, 1]: log is finite
  const u2 = (w1 >>> 8) * INV_2_24;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** Where a draw lives in the stream: the key and the 64-bit starting counter. */
export interface DrawPosition {
  /** The Threefry key. */
  key: [number, number];
  /** The first counter of the draw. */
  offset: number;
}

/**
 * A seeded random stream. Each draw reserves `n` consecutive counters, so draws are
 * reproducible from (seed, number of values drawn before) and the state is one integer.
 */
export class Generator {
  /** Counters consumed so far. */
  offset = 0;
  /** The Threefry key: the seed's low and high 32-bit words. */
  readonly key: [number, number];

  /** A stream for `seed`, a non-negative safe integer. */
  constructor(readonly seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`Generator: seed must be a non-negative safe integer, got ${seed}`);
    }
    this.key = [seed % TWO_32 >>> 0, Math.floor(seed / TWO_32) >>> 0];
  }

  /** Reserve `n` counters and say where they start (for device kernels). */
  reserve(n: number): DrawPosition {
    const pos = { key: this.key, offset: this.offset };
    this.offset += n;
    return pos;
  }

  /** `n` uniforms in [0, 1) as float64. */
  uniform(n: number): Float64Array {
    const { key, offset } = this.reserve(n);
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      wordInto(key, offset + i);
      out[i] = wordToUniform(OUT[0]);
    }
    return out;
  }

  /** `n` standard normals as float64. */
  normal(n: number): Float64Array {
    const { key, offset } = this.reserve(n);
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      wordInto(key, offset + i);
      out[i] = wordsToNormal(OUT[0], OUT[1]);
    }
    return out;
  }

  /** `n` integers uniform in [0, high) (high < 2^24, exact by rejection-free scaling). */
  integers(n: number, high: number): Int32Array {
    const u = this.uniform(n);
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(u[i] * high);
    return out;
  }

  /** The state to save in a checkpoint. */
  state(): { seed: number; offset: number } {
    return { seed: this.seed, offset: this.offset };
  }

  /** A generator restored from `state()`. */
  static fromState(s: { seed: number; offset: number }): Generator {
    const g = new Generator(s.seed);
    g.offset = s.offset;
    return g;
  }
}

/** The two output words for absolute counter `c` (split into 32-bit halves). */
export function wordAt(key: [number, number], c: number): [number, number] {
  wordInto(key, c);
  return [OUT[0], OUT[1]];
}

function wordInto(key: [number, number], c: number): void {
  const lo = c < TWO_32 ? c | 0 : (c % TWO_32) | 0;
  const hi = c < TWO_32 ? 0 : Math.floor(c / TWO_32) | 0;
  threefryInto(key[0] | 0, key[1] | 0, lo, hi);
}

let globalGenerator = new Generator(1337);

/** Reseed the default generator used by `randn`, `rand`, dropout and init. */
export function manualSeed(seed: number): void {
  globalGenerator = new Generator(seed);
}

/** The default generator. */
export function defaultGenerator(): Generator {
  return globalGenerator;
}

/** Replace the default generator (e.g. restored from a checkpoint). */
export function setDefaultGenerator(g: Generator): void {
  globalGenerator = g;
}
