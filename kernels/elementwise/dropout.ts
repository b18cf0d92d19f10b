// Inverted dropout (Srivastava et al., JMLR 2014; PyTorch's F.dropout): y = x·mask/(1 − p).
// Shapes: any -> same; row-major (apply copies views), one invocation per element, workgroup 256.
// The mask comes from the engine's Threefry stream (engine/random.ts), identical on CPU and GPU:
// element i is kept iff uniform(offset + i) ≥ p, with uniform = (word >> 8)/2^24, decided in
// integers as (word >> 8) ≥ ceil(p·2^24) so float rounding of p cannot make the backends differ.
// Each call reserves x.size counters of the generator. Backward regenerates the same mask from
// (key, offset) instead of saving it: dx = dy·mask/(1 − p). p = 1 drops everything (y = 0).
// wasm: Threefry-2x32-20 on i32x4 lanes (four counters per vector: the lanes' flat indices from
// the elementwise loop of wasm.ts, with the carry into the high word), so the mask is the CPU's
// bit for bit; kept values are x·f32(scale) in f32, as on WebGPU. Compute-bound (~100 integer
// vector ops per 4 elements, 8 vectors interleaved; rotations by 16 and 24 are byte shuffles:
// 393,216 elements in ~1.4 ms on one thread), ranges of elements split over the threads
// from ~100,000 elements.

import type { Tensor } from "../../engine/tensor.ts";
import { isFloat, wgslType } from "../../engine/dtype.ts";
import { apply, defineOp, type KernelOp } from "../../engine/op.ts";
import { defaultGenerator, type Generator, THREEFRY_WGSL, wordAt } from "../../engine/random.ts";
import { sizeOf } from "../../engine/shape.ts";
import { splitRows } from "../../engine/split.ts";
import { grid1d, linearIndex, WORKGROUP_SIZE } from "../../engine/webgpu/codegen.ts";
import { type EwBody, runElementwise } from "./wasm.ts";
import type { V, VecMath } from "./wasm_math.ts";

/** Parameters of `dropoutOp`: where its random words sit in the stream, keep rule, scale. */
export interface DropoutParams {
  /** Threefry key of the draw. */
  key: [number, number];
  /** First counter of the draw (a safe integer, split into 32-bit halves for WGSL). */
  offset: number;
  /** Keep iff (word >> 8) ≥ threshold; threshold = ceil(p·2^24). */
  threshold: number;
  /** Multiplier of kept elements, 1 / (1 - p). */
  scale: number;
}

const TWO_24 = 16777216;
const TWO_32 = 4294967296;

function uniforms(n: number, p: DropoutParams): Uint32Array {
  const u = new Uint32Array(8);
  u.set([n, p.offset % TWO_32, Math.floor(p.offset / TWO_32), p.threshold, p.key[0], p.key[1]]);
  new Float32Array(u.buffer).set([p.scale], 6);
  return u;
}

/** Threefry rotations, four per round group; odd groups use the first four. */
const ROT = [13, 15, 26, 6, 17, 29, 16, 24];
const PARITY = 0x1bd11bda;

/**
 * The wasm scalars: counter (lo, hi), threshold, f32 scale bits, key, then the key injection
 * after each of the five round groups g (x0 += ks[g % 3], x1 += ks[(g + 1) % 3] + g).
 */
function dropoutWords(p: DropoutParams): Uint32Array {
  const [k0, k1] = p.key;
  const ks = [k0, k1, (k0 ^ k1 ^ PARITY) >>> 0];
  const w = new Uint32Array(16);
  w.set([p.offset % TWO_32, Math.floor(p.offset / TWO_32), p.threshold, 0, k0, k1]);
  new Float32Array(w.buffer).set([p.scale], 3);
  for (let g = 1; g <= 5; g++) w.set([ks[g % 3], ks[(g + 1) % 3] + g], 4 + 2 * g);
  return w;
}

/**
 * Rotate each i32 lane left by r: a byte shuffle when r is a multiple of 8 (byte i of a lane
 * takes byte i − r/8 mod 4), else two shifts and an or.
 */
function rotl(m: VecMath, x: V, r: number): V {
  if (r % 8 !== 0) return m.bit("or", m.shift("shl", x, r), m.shift("shrU", x, 32 - r));
  const idx = Array.from({ length: 16 }, (_, b) => (b & ~3) + (((b & 3) - r / 8) & 3));
  return m.map((j) => (m.f.get(x[j]), m.f.get(x[j]), m.f.i8x16.shuffle(idx)));
}

/** y = x·scale where word 0 of Threefry(key, offset + i) keeps lane i (see the header). */
const DROPOUT_WASM: EwBody = {
  index: true,
  cost: 10,
  width: 8,
  emit({ m, ins: [x], index, scalars: w }) {
    const [lo, hi, threshold, scale, k0, k1] = w;
    // Counter: lo + i, and hi plus the carry (lanes where lo + i wrapped below lo: the
    // compare's −1 lanes, subtracted).
    const c0 = m.iop("add", lo, index!);
    let x0 = m.iop("add", c0, k0);
    let x1 = m.iop("add", m.iop("sub", hi, m.iop("ltU", c0, lo)), k1);
    for (let g = 1; g <= 5; g++) {
      for (const r of ROT.slice(g % 2 ? 0 : 4, g % 2 ? 4 : 8)) {
        x0 = m.iop("add", x0, x1);
        x1 = m.bit("xor", rotl(m, x1, r), x0);
      }
      x0 = m.iop("add", x0, w[4 + 2 * g]);
      if (g < 5) x1 = m.iop("add", x1, w[5 + 2 * g]);
    }
    // keep ⇔ (word >> 8) ≥ threshold (both below 2^25: a signed compare is exact)
    const keep = m.iop("geS", m.shift("shrU", x0, 8), threshold);
    return [m.bit("and", m.op("mul", x, scale), keep)];
  },
};

/** y = x·scale where the stream keeps element i, else 0. */
export const dropoutOp: KernelOp<DropoutParams> = defineOp<DropoutParams>({
  name: "dropout",
  shape: ([x]) => [...x.shape],
  cpu([x], [y], p) {
    for (let i = 0; i < y.length; i++) {
      const keep = wordAt(p.key, p.offset + i)[0] >>> 8 >= p.threshold;
      y[i] = keep ? x.data[i] * p.scale : 0;
    }
  },
  webgpu([x], _out, p) {
    const t = wgslType(x.dtype);
    const n = sizeOf(x.shape);
    return {
      source: `${THREEFRY_WGSL}
struct U { n: u32, lo: u32, hi: u32, threshold: u32, key: vec2<u32>, scale: f32, pad: u32 }
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read_write> y: array<${t}>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = ${linearIndex()};
  if (i >= u.n) { return; }
  let w = threefry2x32(u.key, tf_counter(u.lo, u.hi, i)).x;
  y[i] = select(0.0, x[i] * u.scale, (w >> 8u) >= u.threshold);
}`,
      grid: grid1d(n),
      uniforms: uniforms(n, p),
    };
  },
  wasm([x], [y], p, ctx) {
    const operands = [{ arg: x, role: "in" as const }, { arg: y, role: "out" as const }];
    runElementwise(ctx, "dropout", operands, DROPOUT_WASM, dropoutWords(p));
  },
  // Rows of x and y; a piece's counters start at its first element.
  split: (inputs, outputs, p, limits) =>
    splitRows(inputs, outputs, p, limits, {
      params: (q, s) => ({ ...q, offset: q.offset + s.first }),
    }),
  backward: (dy, { params }) => [apply(dropoutOp, [dy], params)], // the same mask and scale
});

/** Options of `dropout`: whether the model is training, and the random stream to draw from. */
export interface DropoutOptions {
  /** Dropout is the identity unless training. */
  training: boolean;
  /** Stream for the mask (default: the engine's default generator). */
  generator?: Generator;
}

/**
 * Inverted dropout: zero each element with probability `p` and scale the rest by 1/(1 − p);
 * the identity (x itself) when not training or p = 0.
 */
export function dropout(x: Tensor, p: number, opts: DropoutOptions): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  if (!isFloat(x.dtype)) throw new TypeError(`dropout: x must be float, got ${x.dtype}`);
  if (!opts.training || p === 0) return x;
  const { key, offset } = (opts.generator ?? defaultGenerator()).reserve(x.size);
  const threshold = Math.ceil(p * TWO_24);
  return apply(dropoutOp, [x], { key, offset, threshold, scale: p === 1 ? 0 : 1 / (1 - p) });
}
