// Causal masking for attention. causalMask(T): [T, T] with 1 where key j ≤ query i. causalFill:
// the fused masked fill of attention scores [..., T, S] where query i (of the T new positions)
// may see key j ≤ i + offset and every other score becomes `value` (typically -Infinity before
// softmax). offset defaults to S − T, so a KV-cached decode step (S = past + T keys) uses the
// same op; offset 0 with S = T is the plain causal mask. Scores row-major (apply copies views);
// one invocation per score, workgroup 256; T, S, offset and value in a uniform block, so a
// growing cache reuses one pipeline. Backward: dx = dy where visible, else 0 (causalFill of dy
// with value 0).
// wasm: one module; the score rows (batch · T of them) are split into contiguous ranges, one per
// thread (under PARALLEL_WORK scores of elementwise/wasm_layout.ts: one thread); a row copies its
// visible prefix and fills the rest with `value`, both as v128 loops with a scalar remainder.
// Memory-bound ([12, 4, 64, 64]: ~45 µs on one thread).

import type { Tensor } from "../../engine/tensor.ts";
import { type CreateOptions, fromArray } from "../../engine/creation.ts";
import { allocArray, isFloat, wgslType } from "../../engine/dtype.ts";
import { fmtShape, ShapeError } from "../../engine/errors.ts";
import { apply, defineOp, type KernelOp } from "../../engine/op.ts";
import { sizeOf } from "../../engine/shape.ts";
import { splitRows } from "../../engine/split.ts";
import { grid1d, linearIndex, WORKGROUP_SIZE } from "../../engine/webgpu/codegen.ts";
import type { FunctionBuilder, Local, ModuleBuilder } from "../../engine/wasm/builder.ts";
import { requireSimd, threadsFor } from "./wasm.ts";

/** n f32 from src (or `value` splat/scalar when src is null) to dst; dst and src advance. */
function stream(f: FunctionBuilder, dst: Local, src: Local | null, n: Local, v: [Local, Local]) {
  const k = f.local("i32");
  f.repeat(() => (f.get(n), f.i32.const(2), f.i32.shrU()), () => {
    f.get(dst);
    if (src) (f.get(src), f.v128.load(0, 0), f.inc(src, 16));
    else f.get(v[1]);
    f.v128.store(0, 0);
    f.inc(dst, 16);
  });
  f.for(k, 0, () => (f.get(n), f.i32.const(3), f.i32.and()), 1, () => {
    f.get(dst);
    if (src) (f.get(src), f.f32.load(0, 0), f.inc(src, 4));
    else f.get(v[0]);
    f.f32.store(0, 0);
    f.inc(dst, 4);
  });
}

/** causal(tid, n, x, y, rows, T, S, offset, value): see the header. */
function buildCausal(b: ModuleBuilder): void {
  const params = ["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "f32"] as const;
  b.export("causal", [...params], [], (f) => {
    const [tid, nth, x, y, rows, T, S, offset, value] = f.params;
    const [r, end, vis, rest] = [0, 1, 2, 3].map(() => f.local("i32"));
    const splat = f.local("v128");
    f.get(value);
    f.f32x4.splat();
    f.set(splat);
    f.set(r, () => f.mulDiv(rows, tid, nth));
    f.set(end, () => f.mulDiv(rows, () => f.add(tid, 1), nth));
    f.inc(x, () => f.mul(() => f.mul(r, S), 4));
    f.inc(y, () => f.mul(() => f.mul(r, S), 4));
    f.for(r, r, end, 1, () => {
      // Query i = r % T sees keys j ≤ i + offset: the first clamp(i + offset + 1, 0, S).
      const seen = () => f.add(() => f.add(() => (f.get(r), f.get(T), f.i32.remU()), offset), 1);
      f.set(
        vis,
        () =>
          f.min(S, () => (f.i32.const(0), seen(), f.i32.const(0), seen(), f.i32.gtS(), f.select())),
      );
      f.set(rest, () => f.sub(S, vis));
      stream(f, y, x, vis, [value, splat]);
      f.inc(x, () => f.mul(rest, 4));
      stream(f, y, null, rest, [value, splat]);
    });
  });
}

/** Parameters of `causalFillOp`: query/key lengths, key offset of query 0, fill value. */
export interface CausalParams {
  /** Query positions (rows of the score matrix). */
  T: number;
  /** Key positions (columns of the score matrix). */
  S: number;
  /** Key index of query 0 (the tokens already cached before this call). */
  offset: number;
  /** What masked scores become (usually -Infinity). */
  value: number;
}

/** Scores [..., T, S] with those of key j > query i + offset replaced by `value`. */
export const causalFillOp: KernelOp<CausalParams> = defineOp<CausalParams>({
  name: "causal_fill",
  shape: ([x]) => [...x.shape],
  cpu([x], [y], { T, S, offset, value }) {
    for (let i = 0; i < y.length; i++) {
      const j = i % S;
      const row = Math.floor(i / S) % T;
      y[i] = j <= row + offset ? x.data[i] : value;
    }
  },
  webgpu([x], _out, p) {
    const n = sizeOf(x.shape);
    const u = new Uint32Array([n, p.T, p.S, p.offset >>> 0, 0, 0, 0, 0]);
    new Float32Array(u.buffer).set([p.value], 4);
    const t = wgslType(x.dtype);
    return {
      source: `struct U { n: u32, T: u32, S: u32, offset: i32, value: f32 }
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read_write> y: array<${t}>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = ${linearIndex()};
  if (i >= u.n) { return; }
  let j = i % u.S;
  let row = (i / u.S) % u.T;
  y[i] = select(u.value, x[i], i32(j) <= i32(row) + u.offset);
}`,
      grid: grid1d(n),
      uniforms: u,
    };
  },
  wasm([x], [y], { T, S, offset, value }, ctx) {
    const n = sizeOf(x.shape);
    if (n === 0) return;
    requireSimd(ctx, "causal_fill");
    const mod = ctx.module("causal_fill", buildCausal);
    const args = [x.ptr + 4 * x.offset, y.ptr + 4 * y.offset, n / S, T, S, offset, value];
    ctx.run(mod, "causal", args, threadsFor(ctx, n));
  },
  // Whole [T, S] score matrices (any leading index): each piece starts on a multiple of T·S.
  split: (inputs, outputs, p, limits) =>
    splitRows(inputs, outputs, p, limits, { maxDepth: outputs[0].shape.length - 3 }),
  backward: (dy, { params }) => [apply(causalFillOp, [dy], { ...params, value: 0 })],
});

/**
 * Causal fill of attention scores [..., T, S]: query i sees keys j ≤ i + offset (default
 * offset S − T, right-aligning the queries with the keys, as in a KV-cached step); the rest
 * become `value` (e.g. -Infinity).
 */
export function causalFill(scores: Tensor, value: number, offset?: number): Tensor {
  if (scores.ndim < 2) {
    throw new ShapeError(
      `causalFill: scores must be [..., T, S], got ${fmtShape(scores.shape)}`,
    );
  }
  if (!isFloat(scores.dtype)) {
    throw new TypeError(`causalFill: scores must be float, got ${scores.dtype}`);
  }
  const [T, S] = scores.shape.slice(-2);
  const off = offset ?? S - T;
  if (!Number.isInteger(off)) throw new RangeError(`causalFill: offset must be an integer`);
  return apply(causalFillOp, [scores], { T, S, offset: off, value });
}

/** [T, T] lower-triangular mask: 1 where j ≤ i, else 0 (f32 unless `opts.dtype` says so). */
export function causalMask(T: number, opts: CreateOptions = {}): Tensor {
  if (!Number.isInteger(T) || T < 0) {
    throw new RangeError(`causalMask: T must be a non-negative integer, got ${T}`);
  }
  const m = allocArray(opts.dtype ?? "f32", T * T);
  for (let i = 0; i < T; i++) for (let j = 0; j <= i; j++) m[i * T + j] = 1;
  return fromArray(m, [T, T], opts);
}
