// The wasm matmul against the CPU reference (kernels/matmul/matmul.ts, float64 accumulation): odd
// sizes around the register block and tile edges, every transpose combination, batched, broadcast
// (batch stride 0) and offset operands, poisoned outputs; tolerance K·2^-23·Σ|a||b| per element.
// Thread counts 1 and 2 give identical bytes, with and without relaxed SIMD.

import { deepStrictEqual, ok } from "node:assert/strict";
import type { CpuArg } from "../../engine/backend.ts";
import { Generator } from "../../engine/random.ts";
import { WasmBackend } from "../../engine/wasm/backend.ts";
import type { WasmArg } from "../../engine/wasm/context.ts";
import { KernelContext } from "../../engine/wasm/context.ts";
import { matmulOp } from "../../kernels/matmul/matmul.ts";
import {
  forceMatmulModes,
  KC,
  type MatmulDims,
  matmulPlan,
  matmulWasm,
  MODES,
  MR,
  NR,
} from "../../kernels/matmul/wasm.ts";

const be = await WasmBackend.create({ threads: 2, idleMs: Infinity });
const seed = Date.now() % 100000;

/** How an operand [batch, R, C] sits in its storage. */
interface Layout {
  /** Stored transposed (column-major rows and columns). */
  t?: boolean;
  /** One matrix for all batches (batch stride 0). */
  bcast?: boolean;
  /** Elements before element [0, 0, 0]. */
  offset?: number;
}

interface Operand {
  arg: WasmArg;
  cpu: CpuArg;
  abs: CpuArg;
}

function operand(gen: Generator, batch: number, R: number, C: number, l: Layout): Operand {
  const mats = l.bcast ? 1 : batch;
  const off = l.offset ?? 0;
  const data = new Float32Array(off + mats * R * C + 5).fill(NaN); // poison outside the view
  data.set(gen.normal(mats * R * C), off);
  const strides = [l.bcast ? 0 : R * C, l.t ? 1 : C, l.t ? R : 1];
  const ptr = be.heap.alloc(4 * data.length, "test operand");
  be.heap.f32(ptr, data.length).set(data);
  const info = { shape: [batch, R, C], strides, offset: off, dtype: "f32" as const };
  return {
    arg: { ...info, ptr },
    cpu: { ...info, data },
    abs: { ...info, data: data.map(Math.abs) },
  };
}

/** Run the wasm kernel into a poisoned output; return its f32 values. */
function run(ctx: KernelContext, a: Operand, b: Operand, d: MatmulDims): Float32Array {
  const n = d.batch * d.M * d.N;
  const ptr = be.heap.alloc(4 * n + 64, "test output");
  be.heap.f32(ptr, n + 16).fill(NaN);
  const c: WasmArg = {
    shape: [d.batch, d.M, d.N],
    strides: [d.M * d.N, d.N, 1],
    offset: 0,
    dtype: "f32",
    ptr,
  };
  ctx.scoped(() => matmulWasm([a.arg, b.arg], [c], d, ctx));
  ok(be.heap.f32(ptr + 4 * n, 16).every(Number.isNaN), "wrote past the output");
  const out = be.heap.f32(ptr, n).slice();
  be.heap.free(ptr);
  return out;
}

function check(la: Layout, lb: Layout, d: MatmulDims, ctx: KernelContext = be.ctx): Float32Array {
  const gen = new Generator(seed + d.M * 7 + d.N * 13 + d.K);
  const a = operand(gen, d.batch, d.M, d.K, la);
  const b = operand(gen, d.batch, d.K, d.N, lb);
  const got = run(ctx, a, b, d);
  const n = d.batch * d.M * d.N;
  const ref = new Float64Array(n);
  const bound = new Float64Array(n);
  matmulOp.cpu([a.cpu, b.cpu], [ref], d);
  matmulOp.cpu([a.abs, b.abs], [bound], d);
  for (let i = 0; i < n; i++) {
    const tol = d.K * 2 ** -23 * bound[i] + 1e-30;
    if (!(Math.abs(got[i] - ref[i]) <= tol)) {
      throw new Error(
        `matmul ${JSON.stringify(d)} a ${JSON.stringify(la)} b ${JSON.stringify(lb)} seed ` +
          `${seed}: element ${i} is ${got[i]}, expected ${ref[i]} ± ${tol}`,
      );
    }
  }
  for (const x of [a, b]) be.heap.free(x.arg.ptr);
  return got;
}

const SIZES = [1, 3, 17, 65, 127, 255];

Deno.test("wasm matmul: odd sizes, all four transpose combinations", () => {
  for (const M of SIZES) {
    for (const N of [1, 7, MR + 1, 2 * NR + 3, 255]) {
      for (const K of [1, 5, 255]) {
        for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]]) {
          check({ t: ta }, { t: tb }, { batch: 1, M, N, K });
        }
      }
    }
  }
});

Deno.test("wasm matmul: k past one cache block, tile edges, larger shapes", () => {
  check({}, {}, { batch: 1, M: 65, N: 33, K: 2 * KC + 17 });
  check({ t: true }, { t: true }, { batch: 1, M: 33, N: 65, K: KC + 1 });
  check({}, { t: true }, { batch: 1, M: 300, N: 1100, K: 40 }); // several row and column tiles
  check({}, {}, { batch: 1, M: 256, N: 256, K: 256 });
});

Deno.test("wasm matmul: batched, broadcast and offset operands", () => {
  check({}, {}, { batch: 3, M: 17, N: 9, K: 31 });
  check({ bcast: true }, { t: true }, { batch: 4, M: 5, N: 65, K: 17 });
  check({ t: true }, { bcast: true, offset: 3 }, { batch: 5, M: 33, N: 7, K: 65 });
  check({ offset: 1 }, { offset: 2, t: true }, { batch: 2, M: 127, N: 3, K: 255 });
  check({}, {}, { batch: 48, M: 64, N: 64, K: 32 }); // attention-like: many small products
});

Deno.test("wasm matmul: K = 0 gives zeros", () => {
  const got = check({}, {}, { batch: 2, M: 3, N: 4, K: 0 });
  deepStrictEqual([...got], new Array(24).fill(0));
});

Deno.test("wasm matmul: 1 and 2 threads give identical bytes, relaxed SIMD or not", () => {
  const shapes: [Layout, Layout, MatmulDims][] = [
    [{}, {}, { batch: 1, M: 255, N: 127, K: 300 }],
    [{ t: true }, { t: true }, { batch: 3, M: 65, N: 129, K: 65 }],
    [{}, { t: true }, { batch: 1, M: 1, N: 5000, K: 64 }], // a matrix-vector product over 2^18
  ];
  const plain = new KernelContext(be.heap, be.pool, { ...be.ctx.features, relaxedSimd: false });
  for (const ctx of [be.ctx, plain]) {
    for (const [la, lb, d] of shapes) {
      ok(matmulPlan(d, 2).threads === 2, "the shape splits over 2 threads");
      ctx.threadLimit = 1;
      const one = check(la, lb, d, ctx);
      ctx.threadLimit = 2;
      const two = check(la, lb, d, ctx);
      deepStrictEqual(new Uint32Array(two.buffer), new Uint32Array(one.buffer));
    }
  }
  plain.dispose();
});

Deno.test("wasm matmul: every operand mode (packed or read in place) gives the same bytes", () => {
  const shapes: MatmulDims[] = [
    { batch: 1, M: 13, N: 21, K: 9 },
    { batch: 3, M: 64, N: 32, K: 64 },
    { batch: 2, M: 7, N: 64, K: KC + 3 },
    { batch: 1, M: 1, N: 17, K: 5 },
  ];
  try {
    for (const d of shapes) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          forceMatmulModes({ a: "packed", b: "packed" });
          const want = new Uint32Array(check({ t: ta }, { t: tb }, d).buffer);
          for (const [a, b] of MODES) {
            // Modes the layout does not allow fall back to packing: every pair is valid.
            forceMatmulModes({ a, b });
            for (const threads of [1, 2]) {
              be.ctx.threadLimit = threads;
              const got = new Uint32Array(check({ t: ta }, { t: tb }, d).buffer);
              deepStrictEqual(got, want, `${a}/${b} ${JSON.stringify(d)} ta ${ta} tb ${tb}`);
            }
          }
        }
      }
    }
  } finally {
    forceMatmulModes({});
    be.ctx.threadLimit = Infinity;
  }
});

Deno.test("wasm matmul: matrix-vector products (M = 1), dot and axpy forms, tails, batches", () => {
  try {
    for (const K of [1, 3, 4, 7, 8, 9, 17, 255, 1000]) {
      for (const N of [1, 3, 4, 5, 31, 32, 33, 70, 300]) {
        for (const [ta, tb] of [[false, true], [false, false], [true, false]]) {
          const d = { batch: 1, M: 1, N, K };
          be.ctx.threadLimit = 1;
          const one = check({ t: ta }, { t: tb }, d);
          be.ctx.threadLimit = 2;
          const two = check({ t: ta }, { t: tb }, d);
          deepStrictEqual(new Uint32Array(two.buffer), new Uint32Array(one.buffer));
        }
      }
    }
    // Decode attention: 4 heads, q·Kᵀ over a cache of 37, then attention·V.
    check({}, { t: true }, { batch: 4, M: 1, N: 37, K: 32 });
    check({}, {}, { batch: 4, M: 1, N: 32, K: 37 });
    check({ bcast: true }, { t: true, offset: 1 }, { batch: 3, M: 1, N: 65, K: 128 });
    check({ offset: 2 }, { bcast: true }, { batch: 3, M: 1, N: 40, K: 9 });
  } finally {
    be.ctx.threadLimit = Infinity;
  }
});

Deno.test({
  name: "wasm matmul: dispose the test backend",
  fn: () => be.dispose(),
});
