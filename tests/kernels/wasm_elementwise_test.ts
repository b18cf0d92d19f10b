// The wasm elementwise machinery (kernels/elementwise/wasm.ts, wasm_math.ts, wasm_copy.ts):
// collapsing of launch shapes, every kernel of the family running its wasm implementation (not
// the CPU fallback), writes confined to the output's own elements (tails, strided slots), and
// the vector transcendentals' accuracy against float64 with and without fused multiply-add.

import { deepStrictEqual, ok } from "node:assert/strict";
import type { Kernel } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { fromArray, full } from "../../engine/creation.ts";
import { apply, empty, launch } from "../../engine/op.ts";
import { wasmArg } from "../../engine/wasm/backend.ts";
import { ModuleBuilder } from "../../engine/wasm/builder.ts";
import * as K from "../../kernels/mod.ts";
import { clampBackwardOp, reluBackwardOp } from "../../kernels/elementwise/unary.ts";
import { maskGradOp } from "../../kernels/elementwise/where.ts";
import { copyIntoSlotKernel, padAxisOp } from "../../kernels/shape/concat.ts";
import { reduceRowsOp } from "../../kernels/reduce.ts";
import { adamwKernel } from "../../kernels/adamw.ts";
import {
  collapse,
  forceParallelWork,
  PARALLEL_WORK,
  runElementwise,
  threadsFor,
  vexpr,
} from "../../kernels/elementwise/wasm.ts";
import { type V, VecMath } from "../../kernels/elementwise/wasm_math.ts";
import { erfc64 } from "../../kernels/elementwise/gelu.ts";
import { randnArray, wasm } from "../util.ts";
import { splitSmall } from "./wasm_split.ts";

Deno.test("collapse merges contiguous neighbours, drops size-1 dims, keeps broadcasts", () => {
  // Row-major [2, 3, 4] with its output: one run of 24.
  deepStrictEqual(collapse([2, 3, 4], [[12, 4, 1], [12, 4, 1]]), {
    dims: [24],
    strides: [[1], [1]],
  });
  // A bias broadcast over rows: rows stay apart for the bias (stride 0), the rest merges.
  deepStrictEqual(collapse([2, 3, 4], [[12, 4, 1], [0, 0, 1]]), {
    dims: [6, 4],
    strides: [[4, 1], [0, 1]],
  });
  // Heads permute [B, T, nh, hs] → [B, nh, T, hs] read from a [B, T, 3C] buffer.
  deepStrictEqual(collapse([2, 4, 5, 8], [[480, 8, 96, 1], [160, 40, 8, 1]]), {
    dims: [2, 4, 5, 8],
    strides: [[480, 8, 96, 1], [160, 40, 8, 1]],
  });
  // Size-1 dims vanish whatever their strides; a scalar is one element.
  deepStrictEqual(collapse([1, 5, 1], [[99, 1, 7], [5, 1, 1]]), { dims: [5], strides: [[1], [1]] });
  deepStrictEqual(collapse([], [[], []]), { dims: [1], strides: [[1], [1]] });
});

/** `kernel` with a CPU reference that throws: running it proves the wasm one ran. */
function wasmOnly<P>(kernel: Kernel<P>): Kernel<P> {
  ok(kernel.wasm, `${kernel.name} has no wasm implementation`);
  return {
    ...kernel,
    cpu: () => {
      throw new Error(`${kernel.name}: the CPU reference ran on the wasm backend`);
    },
  };
}

Deno.test("every kernel of the elementwise family runs its wasm implementation", async () => {
  const be = await wasm();
  const x = fromArray(Float32Array.from(randnArray(40, 1)), [5, 8], { backend: be });
  const y = fromArray(Float32Array.from(randnArray(40, 2), Math.abs), [5, 8], { backend: be });
  const i32 = fromArray(Int32Array.from({ length: 40 }, (_, i) => i % 3), [5, 8], { backend: be });
  const none = { a: 0, b: 0 };
  const run = <P>(k: Kernel<P>, ins: Tensor[], params: P, outs = [empty(ins[0], [5, 8])]) => {
    launch(wasmOnly(k), ins, outs, params);
    return outs;
  };
  for (const op of [K.negOp, K.expOp, K.absOp, K.signOp, K.roundOp, K.reluOp, K.tanhOp]) {
    run(op, [x], none);
  }
  for (const op of [K.logOp, K.sqrtOp, K.rsqrtOp, K.sigmoidOp]) run(op, [y], none);
  for (const a of [0, 3, -1, 0.5, 1.5]) run(K.powOp, [y], { a, b: 0 });
  run(K.clampOp, [x], { a: -0.5, b: 0.5 });
  run(K.affineOp, [x], { a: 2, b: 1 });
  run(clampBackwardOp, [y, x], { a: -0.5, b: 0.5 });
  run(reluBackwardOp, [y, x], none);
  for (const op of [K.addOp, K.subOp, K.mulOp, K.divOp, K.maximumOp, K.geOp, K.eqOp]) {
    run(op, [x, y], undefined);
  }
  for (const op of [K.geluOp, K.geluTanhOp]) run(op, [x], undefined);
  for (const op of [K.geluBackwardOp, K.geluTanhBackwardOp]) run(op, [y, x], undefined);
  for (const cond of [x, i32]) run(K.whereOp, [cond, x, y], undefined);
  run(maskGradOp, [x, i32], { keepNonzero: true });
  run(K.maskedFillOp, [x, i32], { value: -Infinity });
  run(K.causalFillOp, [x], { T: 5, S: 8, offset: 0, value: -1 });
  const drop: K.DropoutParams = { key: [1, 2], offset: 0, threshold: 1 << 22, scale: 4 / 3 };
  run(K.dropoutOp, [x], drop);
  run(K.copyOp, [K.transpose(fromArray(new Float32Array(40), [8, 5], { backend: be }))], undefined);
  run(K.copyOp, [i32], undefined, [empty(i32, [5, 8])]);
  const joined = empty(x, [5, 16]);
  run(copyIntoSlotKernel, [x], undefined, [joined.withLayout([5, 8], [16, 1], 8)]);
  run(padAxisOp, [x], { axis: 1, start: 3, total: 13 }, [empty(x, [5, 13])]);
  for (const kind of ["sum", "max", "argmax"] as const) {
    const out = empty(x, [5], kind === "argmax" ? "i32" : "f32");
    run(reduceRowsOp, [x], { kind, rowLen: 8 }, [out]);
  }
  const state = [0, 1, 2].map(() => full([5, 8], 0.1, { backend: be }));
  const scale = full([1], 1, { backend: be });
  const hp = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 1 };
  run(adamwKernel, [x, scale], hp, state);
});

Deno.test("elementwise wasm writes only its output's elements (tails, strided slots)", () =>
  splitSmall(async () => {
    const be = await wasm();
    const body = vexpr(({ m }, a) => m.op("add", a, m.k(1)));
    for (const threads of [1, 2]) {
      be.ctx.threadLimit = threads;
      try {
        // Runs of 1..37 elements into the middle of a canary buffer, then a [rows, 5] slot of a
        // [rows, 9] buffer (strided rows: a tail of 1 in every run).
        for (const n of [1, 2, 3, 4, 5, 7, 9, 16, 17, 37, 40000]) {
          const src = be.heap.alloc(4 * n);
          const dst = be.heap.alloc(4 * (n + 16));
          be.heap.f32(src, n).set(Float32Array.from({ length: n }, (_, i) => i));
          be.heap.f32(dst, n + 16).fill(-7);
          be.ctx.scoped(() =>
            runElementwise(be.ctx, "test-add1", [
              { arg: wasmArg(src, [n]), role: "in" },
              { arg: { ...wasmArg(dst, [n]), offset: 8 }, role: "out" },
            ], body)
          );
          const got = Array.from(be.heap.f32(dst, n + 16));
          const want = [...new Array(8).fill(-7), ...Array.from({ length: n }, (_, i) => i + 1)];
          deepStrictEqual(got, [...want, ...new Array(8).fill(-7)], `n=${n}, ${threads} thread(s)`);
          be.heap.free(src);
          be.heap.free(dst);
        }
        const rows = 7000;
        const src = be.heap.alloc(4 * rows * 5);
        const dst = be.heap.alloc(4 * rows * 9);
        be.heap.f32(src, rows * 5).fill(2);
        be.heap.f32(dst, rows * 9).fill(-7);
        be.ctx.scoped(() =>
          runElementwise(be.ctx, "test-add1", [
            { arg: wasmArg(src, [rows, 5]), role: "in" },
            { arg: { ...wasmArg(dst, [rows, 5]), strides: [9, 1], offset: 2 }, role: "out" },
          ], body)
        );
        const d = be.heap.f32(dst, rows * 9);
        for (let i = 0; i < rows * 9; i++) {
          const inSlot = i % 9 >= 2 && i % 9 < 7;
          if (d[i] !== (inSlot ? 3 : -7)) throw new Error(`slot element ${i}: ${d[i]}`);
        }
        be.heap.free(src);
        be.heap.free(dst);
      } finally {
        be.ctx.threadLimit = Infinity;
      }
    }
  }));

/** f over `xs` through a standalone module (fused or not), one vector at a time. */
function vectorMath(xs: Float32Array, fused: boolean, f: (m: VecMath, x: V) => V): Float32Array {
  const b = new ModuleBuilder();
  const pages = Math.ceil((8 * xs.length + 64) / 65536);
  b.importMemory({ min: pages });
  b.export("run", ["i32"], [], (fb) => {
    const [n] = fb.params;
    const i = fb.local("i32");
    fb.for(i, 0, n, 16, () => {
      const m = new VecMath(fb, fused);
      const x = m.map(() => (fb.get(i), fb.v128.load()));
      const y = f(m, x);
      (fb.add(i, n), fb.get(y[0]), fb.v128.store());
    });
  });
  const memory = new WebAssembly.Memory({ initial: pages });
  const inst = new WebAssembly.Instance(new WebAssembly.Module(b.bytes()), { env: { memory } });
  new Float32Array(memory.buffer, 0, xs.length).set(xs);
  (inst.exports.run as (n: number) => void)(4 * xs.length);
  return new Float32Array(memory.buffer, 4 * xs.length, xs.length).slice();
}

/** Largest error in ulps of f32 results against float64 values (normal results only). */
function maxUlps(got: Float32Array, want: (i: number) => number): number {
  const bits = new Float32Array(1);
  const word = new Uint32Array(bits.buffer);
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const w = want(i);
    if (!(Math.abs(w) >= 1.2e-38) || !Number.isFinite(w)) continue;
    bits[0] = Math.abs(w);
    word[0]++;
    worst = Math.max(worst, Math.abs(got[i] - w) / (bits[0] - Math.fround(Math.abs(w))));
  }
  return worst;
}

Deno.test("wasm exp, log, tanh, sigmoid and erfc: ulp bounds, fused and unfused", () => {
  const sweep = (lo: number, hi: number, n = 1 << 16) =>
    Float32Array.from({ length: n }, (_, i) => lo + (hi - lo) * (i + 0.5) / n);
  const logSweep = Float32Array.from(
    { length: 1 << 16 },
    (_, i) => Math.exp(-69 + 138 * i / 65536),
  );
  const cases: [string, Float32Array, (m: VecMath, x: V) => V, (x: number) => number, number][] = [
    ["exp", sweep(-87, 88), (m, x) => m.exp(x), Math.exp, 1.5],
    ["log", logSweep, (m, x) => m.log(x), Math.log, 1.5],
    ["log near 1", sweep(0.5, 2), (m, x) => m.log(x), Math.log, 1.5],
    ["tanh", sweep(-10, 10), (m, x) => m.tanh(x), Math.tanh, 2],
    ["sigmoid", sweep(-30, 30), (m, x) => m.sigmoid(x), (x) => 1 / (1 + Math.exp(-x)), 3],
    // erfc: the fit's 1.2e-7, plus −z² rounded to f32 (2^-24·z² relative: 9 ulp at z = 3)
    ["erfc", sweep(0, 3), (m, x) => m.erfcPos(x)[0], erfc64, 24],
  ];
  for (const fused of [true, false]) {
    for (const [name, xs, f, ref, bound] of cases) {
      const got = vectorMath(xs, fused, f);
      const ulps = maxUlps(got, (i) => ref(xs[i]));
      ok(ulps <= bound, `${name} (fused ${fused}): ${ulps.toFixed(2)} ulp, over ${bound}`);
    }
  }
});

Deno.test("wasm GELU forms and their backwards: absolute error against float64", async () => {
  const be = await wasm();
  const n = 1 << 16;
  const xs = Float32Array.from({ length: n }, (_, i) => -10 + 20 * (i + 0.5) / n);
  const cdf = (
    x: number,
  ) => (x > 0 ? 1 - 0.5 * erfc64(x / Math.SQRT2) : 0.5 * erfc64(-x / Math.SQRT2));
  const pdf = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
  const x = fromArray(xs, [n], { backend: be });
  const ones = full([n], 1, { backend: be });
  const grad = (op: typeof K.geluBackwardOp) => apply(op, [ones, x], undefined);
  const cases: [string, Tensor, (x: number) => number, number][] = [
    ["gelu", K.gelu(x), (v) => v * cdf(v), 5e-7],
    ["gelu backward", grad(K.geluBackwardOp), (v) => cdf(v) + v * pdf(v), 3e-7],
    ["gelu_tanh", K.geluTanh(x), K.geluTanh64, 6e-7],
    ["gelu_tanh backward", grad(K.geluTanhBackwardOp), K.geluTanhGrad64, 3e-7],
  ];
  for (const [name, y, ref, bound] of cases) {
    const got = await y.data();
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(got[i] - ref(xs[i])));
    ok(worst <= bound, `${name}: max abs error ${worst}, over ${bound}`);
  }
});

Deno.test("launches under PARALLEL_WORK units stay on the calling thread", async () => {
  const be = await wasm();
  const ctx = be.ctx;
  deepStrictEqual([threadsFor(ctx, PARALLEL_WORK - 1), threadsFor(ctx, PARALLEL_WORK)], [1, 2]);
  forceParallelWork(10);
  try {
    deepStrictEqual([threadsFor(ctx, 9), threadsFor(ctx, 10)], [1, 2]);
  } finally {
    forceParallelWork(null);
  }
  deepStrictEqual(threadsFor(ctx, 10), 1);
});
