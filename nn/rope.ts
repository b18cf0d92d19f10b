// Rotary position embedding (Su et al., "RoFormer", arXiv 2104.09864) in the rotate-half layout
// of GPT-NeoX and LLaMA: for a head vector x = [x1, x2] (halves of headSize),
// rope(x, t) = x·cos(tθ) + [−x2, x1]·sin(tθ), θ_i = base^(−2i/headSize), tables duplicated over
// both halves. Tables are built once on the host in float64 for blockSize positions.

import type { Backend } from "../engine/backend.ts";
import { fromArray, zeros } from "../engine/creation.ts";
import type { DType } from "../engine/dtype.ts";
import type { Tensor } from "../engine/tensor.ts";
import { add, cat, mul, narrow, neg } from "../kernels/mod.ts";
import { Module } from "./module.ts";

/** Rotary tables for `blockSize` positions of heads of size `headSize` (even). */
export class Rope extends Module {
  /** Tables for positions 0..blockSize-1 and heads of size `headSize`, θ base `base`. */
  constructor(
    readonly blockSize: number,
    readonly headSize: number,
    readonly base = 10000,
    opts: { backend?: Backend; dtype?: DType } = {},
  ) {
    super();
    if (headSize % 2 !== 0) throw new RangeError(`Rope: headSize must be even, got ${headSize}`);
    const half = headSize / 2;
    const dtype = opts.dtype ?? "f32";
    if (opts.backend?.traits.virtual) {
      // Shapes only (the meta backend): no tables to compute.
      this.addBuffer("cos", zeros([blockSize, headSize], { backend: opts.backend, dtype }));
      this.addBuffer("sin", zeros([blockSize, headSize], { backend: opts.backend, dtype }));
      return;
    }
    const cos = new Float64Array(blockSize * headSize);
    const sin = new Float64Array(blockSize * headSize);
    for (let t = 0; t < blockSize; t++) {
      for (let i = 0; i < half; i++) {
        const a = t * Math.pow(base, (-2 * i) / headSize);
        for (const j of [i, i + half]) {
          cos[t * headSize + j] = Math.cos(a);
          sin[t * headSize + j] = Math.sin(a);
        }
      }
    }
    const make = (a: Float64Array) =>
      fromArray(dtype === "f64" ? a : Float32Array.from(a), [blockSize, headSize], {
        backend: opts.backend,
        dtype,
      });
    this.addBuffer("cos", make(cos));
    this.addBuffer("sin", make(sin));
  }

  /** Rotate x (..., T, headSize) whose first position is `offset`. */
  apply(x: Tensor, offset = 0): Tensor {
    const T = x.shape[x.ndim - 2];
    const hs = this.headSize;
    if (offset + T > this.blockSize) {
      throw new RangeError(`rope: positions ${offset}..${offset + T} exceed ${this.blockSize}`);
    }
    const cos = narrow(this.buffer("cos"), 0, offset, T); // (T, hs)
    const sin = narrow(this.buffer("sin"), 0, offset, T);
    const x1 = narrow(x, -1, 0, hs / 2);
    const x2 = narrow(x, -1, hs / 2, hs / 2);
    const rotated = cat([neg(x2), x1], -1); // (..., T, hs)
    return add(mul(x, cos), mul(rotated, sin));
  }
}
