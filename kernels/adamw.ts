// Fused AdamW update (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019),
// in place, one dispatch per parameter, as PyTorch's torch.optim.AdamW computes it:
//   g = grad · s            (s: a 1-element device tensor, the gradient-clipping factor)
//   p ← p − lr·wd·p         (decoupled weight decay)
//   m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
//   p ← p − (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 − β_i^step
// Inputs [grad (any strides), s], outputs (read and written) [p, m, v], row-major, same shape.
// WGSL: one invocation per element, workgroup 256, scalars in a uniform block (lr changes every
// step, so it must not be baked into the source).
// wasm: one pass of the elementwise loop (elementwise/wasm.ts) over five operands: grad (read
// through its strides), the scale (a stride-0 splat), and p, m, v read and written in place;
// f32 arithmetic in the reference's order, scalars in the launch's descriptor. Memory-bound
// (five streams); a launch of under PARALLEL_WORK units (elements × 3, × 4 more when the
// gradient is a strided view read lane by lane) stays on one thread.

import type { Kernel } from "../engine/backend.ts";
import { wgslType } from "../engine/dtype.ts";
import { launch } from "../engine/op.ts";
import { splitRows } from "../engine/split.ts";
import { cpuContiguous } from "../engine/tensor.ts";
import { sameShape, sizeOf } from "../engine/shape.ts";
import type { Tensor } from "../engine/tensor.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import {
  grid1d,
  isPlain,
  linearIndex,
  stridedRank,
  stridedStruct,
  stridedUniforms,
  WORKGROUP_SIZE,
} from "../engine/webgpu/codegen.ts";
import { type EwBody, runElementwise } from "./elementwise/wasm.ts";

/** The update on f32x4 lanes; scalars: β1, 1 − β1, β2, 1 − β2, 1 − lr·wd, lr/bc1, √bc2, eps. */
const ADAMW_WASM: EwBody = {
  cost: 3,
  emit({ m, ins: [g, s, p, mo, vo], scalars }) {
    const [b1, c1, b2, c2, decay, stepSize, sbc2, eps] = scalars;
    const gi = m.op("mul", g, s);
    const mn = m.madd(b1, mo, m.op("mul", c1, gi));
    const vn = m.madd(b2, vo, m.op("mul", m.op("mul", c2, gi), gi));
    const denom = m.op("add", m.op("div", m.un("sqrt", vn), sbc2), eps);
    const pn = m.op("sub", m.op("mul", p, decay), m.op("div", m.op("mul", stepSize, mn), denom));
    return [pn, mn, vn];
  },
};

/** Hyperparameters of one AdamW update; `step` counts from 1. */
export interface AdamWParams {
  /** Learning rate. */
  lr: number;
  /** Decay of the first-moment average. */
  beta1: number;
  /** Decay of the second-moment average. */
  beta2: number;
  /** Added to the root of the second moment. */
  eps: number;
  /** Decoupled weight decay (multiplied by lr). */
  weightDecay: number;
  /** Update number, from 1 (for bias correction). */
  step: number;
}

// The gradient is read through its strides (a weight used as transpose(w) gets a transposed
// gradient view); the strided uniform block of codegen.ts gains a second vec4 of scalars.
function wgsl(t: string, plainGrad: boolean, rank: number): string {
  const struct = stridedStruct(1, rank).replace(
    "  f: vec4<f32>,\n}",
    "  f: vec4<f32>,\n  h: vec4<f32>,\n}",
  );
  return `${struct}
@group(0) @binding(0) var<storage, read> g: array<${t}>;
@group(0) @binding(1) var<storage, read> s: array<${t}>;
@group(0) @binding(2) var<storage, read_write> p: array<${t}>;
@group(0) @binding(3) var<storage, read_write> m: array<${t}>;
@group(0) @binding(4) var<storage, read_write> v: array<${t}>;
@group(0) @binding(5) var<uniform> u: U;
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = ${linearIndex()};
  if (i >= u.n) { return; }
  let lr = u.f.x; let b1 = u.f.y; let b2 = u.f.z; let eps = u.f.w;
  let wd = u.h.x; let bc1 = u.h.y; let sbc2 = u.h.z;
  let gi = g[${plainGrad ? "i" : "addr_0(i)"}] * s[0];
  let j = u.yo + i; // p, m and v share one layout (and a piece of them one offset)
  let mi = b1 * m[j] + (1.0 - b1) * gi;
  let vi = b2 * v[j] + (1.0 - b2) * gi * gi;
  m[j] = mi;
  v[j] = vi;
  let pi = p[j] * (1.0 - lr * wd);
  p[j] = pi - (lr / bc1) * mi / (sqrt(vi) / sbc2 + eps);
}`;
}

/** The in-place AdamW kernel: inputs [grad, scale], outputs [param, m, v]. */
export const adamwKernel: Kernel<AdamWParams> = {
  name: "adamw",
  cpu([g, s], [p, m, v], { lr, beta1, beta2, eps, weightDecay, step }) {
    const bc1 = 1 - beta1 ** step;
    const sbc2 = Math.sqrt(1 - beta2 ** step);
    const k = s.data[s.offset];
    const gd = cpuContiguous(g);
    for (let i = 0; i < gd.length; i++) {
      const gi = gd[i] * k;
      m[i] = beta1 * m[i] + (1 - beta1) * gi;
      v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
      const pi = p[i] * (1 - lr * weightDecay);
      p[i] = pi - (lr / bc1) * m[i] / (Math.sqrt(v[i]) / sbc2 + eps);
    }
  },
  webgpu([g], outs, { lr, beta1, beta2, eps, weightDecay, step }) {
    const base = stridedUniforms(g.shape, [g], [lr, beta1, beta2, eps], outs[0].offset);
    const u = new Uint32Array(base.length + 4);
    u.set(base);
    new Float32Array(u.buffer, base.length * 4, 4).set([
      weightDecay,
      1 - beta1 ** step,
      Math.sqrt(1 - beta2 ** step),
      0,
    ]);
    const plain = isPlain(g, g.shape);
    const source = wgsl(wgslType(g.dtype), plain, stridedRank(g.shape, [g]));
    return { source, grid: grid1d(sizeOf(g.shape)), uniforms: u };
  },
  wasm([g, s], [p, m, v], { lr, beta1, beta2, eps, weightDecay, step }, ctx) {
    const scale = { ...s, shape: g.shape, strides: g.shape.map(() => 0) };
    const operands = [
      { arg: g, role: "in" as const },
      { arg: scale, role: "in" as const },
      ...[p, m, v].map((arg) => ({ arg, role: "inout" as const })),
    ];
    runElementwise(ctx, "adamw", operands, ADAMW_WASM, [
      ...[beta1, 1 - beta1, beta2, 1 - beta2],
      ...[1 - lr * weightDecay, lr / (1 - beta1 ** step), Math.sqrt(1 - beta2 ** step), eps],
    ]);
  },
  // Rows of the gradient, parameter and moments; the scale whole.
  split: (inputs, outputs, p, limits) =>
    splitRows(inputs, outputs, p, limits, { cut: (_a, i) => i === 0, anyStart: true }),
};

/**
 * One AdamW update of `param` in place from `grad` (times the 1-element `scale`), updating the
 * moment buffers `m` and `v` in place. All four tensors share shape, dtype and backend.
 */
export function adamwUpdate(
  param: Tensor,
  grad: Tensor,
  m: Tensor,
  v: Tensor,
  scale: Tensor,
  params: AdamWParams,
): void {
  for (const [name, t] of [["grad", grad], ["m", m], ["v", v]] as const) {
    if (t.size !== param.size || t.dtype !== param.dtype) {
      throw new ShapeError(
        `adamw: ${name} is ${t.dtype} ${fmtShape(t.shape)}, param is ${param.dtype} ${
          fmtShape(param.shape)
        }`,
      );
    }
  }
  if (scale.size !== 1 || scale.dtype !== param.dtype) {
    throw new ShapeError(`adamw: scale must be one ${param.dtype} element, got ${scale}`);
  }
  if (!(params.step >= 1)) throw new RangeError(`adamw: step must be >= 1, got ${params.step}`);
  if (!sameShape(grad.shape, param.shape)) {
    throw new ShapeError(
      `adamw: grad is ${fmtShape(grad.shape)}, param is ${fmtShape(param.shape)}`,
    );
  }
  launch(adamwKernel, [grad, scale], [param, m, v], params);
}
