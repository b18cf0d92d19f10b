// Inverted dropout (Srivastava et al., JMLR 2014; PyTorch's F.dropout): y = x·mask/(1 − p).
// Shapes: any -> same; row-major (apply copies views), one invocation per element, workgroup 256.
// The mask comes from the engine's Threefry stream (engine/random.ts), identical on CPU and GPU:
// element i is kept iff uniform(offset + i) ≥ p, with uniform = (word >> 8)/2^24, decided in
// integers as (word >> 8) ≥ ceil(p·2^24) so float rounding of p cannot make the backends differ.
// Each call reserves x.size counters of the generator. Backward regenerates the same mask from
// (key, offset) instead of saving it: dx = dy·mask/(1 − p). p = 1 drops everything (y = 0).

import type { Tensor } from "../../engine/tensor.ts";
import { isFloat, wgslType } from "../../engine/dtype.ts";
import { apply, defineOp, type KernelOp } from "../../engine/op.ts";
import { defaultGenerator, type Generator, THREEFRY_WGSL, wordAt } from "../../engine/random.ts";
import { sizeOf } from "../../engine/shape.ts";
import { splitRows } from "../../engine/split.ts";
import { grid1d, linearIndex, WORKGROUP_SIZE } from "../../engine/webgpu/codegen.ts";

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
