// BitLinear's exact quantiser ops (kernels/ternary/bit_quant.ts): the activation levels equal the
// packed quantiser's bytes in both WGSL modes and on the CPU, bit for bit; ternary levels and the
// dequantising multiply equal the packed GEMM's output exactly; gradients are the straight-through
// estimator's and agree between backends; on wasm the quantisers' codes, scales and rstd equal the
// CPU reference's to the bit on 1 and 2 threads (special values included).

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import { fromArray } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { apply, empty, launch } from "../../engine/op.ts";
import { expand } from "../../kernels/shape/view.ts";
import {
  activationLevels,
  dequantize,
  dequantizeOp,
  reciprocalOp,
  ternaryLevels,
  ternaryLevelsOp,
} from "../../kernels/ternary/bit_quant.ts";
import { roundHalfEven } from "../../kernels/elementwise/unary.ts";
import {
  int8RowWords,
  quantizeActivationLevels,
  quantizeActivationsCpu,
  unpackInt8,
} from "../../kernels/ternary/format.ts";
import {
  activationLevelsKernel,
  type QuantMode,
  ternaryQuantOp,
} from "../../kernels/ternary/quant.ts";
import { packBitLinear } from "../../kernels/ternary/linear.ts";
import { BitLinear } from "../../nn/bitlinear.ts";
import { matmul, mul, sum, transpose } from "../../kernels/mod.ts";
import { poisonPool, wasmParity } from "./gpu_helpers.ts";
import { countWasmCalls } from "./wasm_helpers.ts";
import { assertClose, cpu, freshSeed, gpu, hasWebGPU, randnArray, wasm } from "../util.ts";

const SHAPES = [[1, 1], [3, 3], [2, 17], [5, 64], [70, 100], [2, 129]];

function inputs(T: number, K: number, seed: number) {
  const x = Float32Array.from(randnArray(T * K, seed + K), (v, i) => (i % 5 === 0 ? 4 * v : v));
  const g = Float32Array.from(randnArray(K, seed + 2 * K + 1), (v) => 1 + v / 3);
  return { x, g };
}

Deno.test("activationLevels on cpu: levels and scales of the packed quantiser's reference", async () => {
  const seed = freshSeed();
  for (const [T, K] of SHAPES) {
    const { x, g } = inputs(T, K, seed);
    const ref = quantizeActivationLevels(x, g, T, K);
    const packed = quantizeActivationsCpu(x, g, T, K);
    deepStrictEqual(unpackInt8(packed.packed, T, K), ref.q, `[${T}, ${K}] seed ${seed}`);
    const a = activationLevels(
      fromArray(x, [T, K], { backend: cpu }),
      fromArray(g, [K], { backend: cpu }),
    );
    deepStrictEqual(a.scale.shape, [T, 1]);
    deepStrictEqual(await a.q.data(), Float32Array.from(ref.q), `[${T}, ${K}] seed ${seed}`);
    deepStrictEqual(await a.scale.data(), ref.scale);
  }
  throws(
    () =>
      activationLevels(fromArray(new Float32Array(6), [2, 3]), fromArray(new Float32Array(2), [2])),
    /activationLevels: x is \[2, 3\], g is \[2\]/,
  );
});

Deno.test({
  name: "quantiser WGSL, both modes, both outputs: bit-identical to the CPU reference",
  ignore: !hasWebGPU,
  async fn() {
    const backend = await gpu();
    const seed = freshSeed();
    for (const [T, K] of SHAPES) {
      const { x, g } = inputs(T, K, seed);
      const ref = quantizeActivationLevels(x, g, T, K);
      const refPacked = quantizeActivationsCpu(x, g, T, K);
      const xt = fromArray(x, [T, K], { backend });
      const gt = fromArray(g, [K], { backend });
      for (const mode of ["workgroup", "invocation"] as QuantMode[]) {
        const msg = `${mode} [${T}, ${K}] seed ${seed}`;
        const p = { tokens: T, inFeatures: K, eps: 1e-6, mode };
        poisonPool(backend, [4 * T * K, 4 * T]);
        const [q, s, r] = [empty(xt, [T, K]), empty(xt, [T]), empty(xt, [T])];
        launch(activationLevelsKernel, [xt, gt], [q, s, r], p);
        // + 0: a level of zero may come back as -0 (the compiler may skip the i32 round trip).
        const levels = Float32Array.from(await q.data(), (v) => v + 0);
        deepStrictEqual(levels, Float32Array.from(ref.q), `${msg} levels`);
        deepStrictEqual(await s.data(), ref.scale, `${msg} scales`);
        deepStrictEqual(await r.data(), ref.rstd, `${msg} rstd`);
        const [w, ws, wsum] = [
          empty(xt, [T, int8RowWords(K)], "u32"),
          empty(xt, [T]),
          empty(xt, [T], "i32"),
        ];
        launch(ternaryQuantOp, [xt, gt], [w, ws, wsum], p);
        deepStrictEqual(await w.data(), refPacked.packed, `${msg} bytes`);
        deepStrictEqual(await ws.data(), refPacked.scale, `${msg} packed scales`);
        deepStrictEqual(await wsum.data(), refPacked.sum, `${msg} sums`);
        for (const t of [q, s, r, w, ws, wsum]) t.dispose();
      }
    }
  },
});

for (const name of ["cpu", "webgpu", "wasm"] as const) {
  Deno.test({
    name: `ternaryLevels + dequantize on ${name} equal the packed GEMM's output bit for bit`,
    ignore: name === "webgpu" && !hasWebGPU,
    async fn() {
      const backend: Backend = name === "webgpu"
        ? await gpu()
        : name === "wasm"
        ? await wasm()
        : cpu;
      const seed = freshSeed();
      for (const [T, K, N] of [[1, 33, 7], [9, 64, 20], [4, 100, 3]]) {
        const { x, g } = inputs(T, K, seed);
        const w = fromArray(
          Float32Array.from(randnArray(N * K, seed + 3), (v) => v / 10),
          [N, K],
          { backend },
        );
        const gt = fromArray(g, [K], { backend });
        const xt = fromArray(x, [T, K], { backend });
        const { q, scale } = ternaryLevels(w);
        const qv = await q.data();
        ok(qv.every((v) => v === -1 || v === 0 || v === 1), "levels are ternary");
        ok(qv.some((v) => v !== 0), "some levels are non-zero");
        const a = activationLevels(xt, gt);
        const y = dequantize(matmul(a.q, transpose(q)), a.scale, scale);
        const packed = await packBitLinear(w, gt, null, { backend });
        strictEqual(packed.weights.scale, (await scale.data())[0]);
        const yp = packed.forward(xt);
        deepStrictEqual(await y.data(), await yp.data(), `[${T}, ${K}, ${N}] seed ${seed}`);
        packed.dispose();
      }
      throws(
        () =>
          dequantize(
            fromArray(new Float32Array(6), [2, 3]),
            fromArray(new Float32Array(2), [2]),
            fromArray(new Float32Array(1), [1]),
          ),
        /dequantize: acc \[2, 3\], x scale \[2\], w scale \[1\]/,
      );
    },
  });
}

Deno.test("ternaryLevels gradient is the straight-through one: dw = dq · s_w", async () => {
  const seed = freshSeed();
  const wv = Float32Array.from(randnArray(4 * 6, seed), (v) => v / 10);
  const w = fromArray(wv, [4, 6], { backend: cpu, requiresGrad: true });
  const G = randnArray(4 * 6, seed + 1);
  const { q, scale } = ternaryLevels(w);
  sum(mul(q, fromArray(Float32Array.from(G), [4, 6], { backend: cpu }))).backward();
  const s = (await scale.data())[0];
  let mean = 0;
  for (const v of wv) mean += Math.abs(v) / wv.length;
  assertClose([s], [1 / mean], { atol: 0, rtol: 1e-6 });
  assertClose(await w.grad!.data(), Float32Array.from(G, (v) => v * s), {
    atol: 0,
    rtol: 1e-6,
  });
});

for (const name of ["webgpu", "wasm"] as const) {
  Deno.test({
    name: `BitLinear forward and gradients agree between ${name} and cpu`,
    ignore: name === "webgpu" && !hasWebGPU,
    async fn() {
      const backend = name === "webgpu" ? await gpu() : await wasm();
      const seed = freshSeed();
      const [T, K, N] = [6, 40, 24];
      const state = {
        weight: { shape: [N, K], data: Float32Array.from(randnArray(N * K, seed), (v) => v / 20) },
        "norm.weight": {
          shape: [K],
          data: Float32Array.from(randnArray(K, seed + 1), (v) => 1 + v / 4),
        },
      };
      const x = Float32Array.from(randnArray(T * K, seed + 2));
      const G = Float32Array.from(randnArray(T * N, seed + 3));
      const results = [];
      for (const b of [cpu, backend]) {
        const bl = new BitLinear(K, N, { backend: b });
        bl.loadStateDict(state);
        const xt = fromArray(x, [T, K], { backend: b, requiresGrad: true });
        const y = bl.forward(xt);
        sum(mul(y, fromArray(G, [T, N], { backend: b }))).backward();
        results.push({
          y: await y.data(),
          dx: await xt.grad!.data(),
          dw: await bl.weight.grad!.data(),
          dg: await bl.norm.weight.grad!.data(),
        });
      }
      const [c, w] = results;
      for (const k of ["y", "dx", "dw", "dg"] as const) {
        assertClose(w[k], c[k], { atol: 1e-5, rtol: 1e-4, msg: `${k} seed ${seed}` });
      }
    },
  });
}

/** x with special tokens: NaN in x, NaN weight column, ±inf, all zeros, tiny, huge. */
function specialInputs(K: number) {
  const rows = [
    (k: number) => (k === 1 ? NaN : k / K - 0.5),
    (k: number) => (k === 0 ? Infinity : 1),
    (k: number) => (k % 2 ? -Infinity : 2),
    () => 0,
    (k: number) => 1e-12 * (k - K / 2),
    (k: number) => 3e37 * Math.sin(k + 1),
  ];
  const x = Float32Array.from(
    { length: rows.length * K },
    (_, i) => rows[Math.floor(i / K)](i % K),
  );
  const g = Float32Array.from({ length: K }, (_, k) => 1 + k / K);
  return { x, g, T: rows.length };
}

Deno.test("quantiser wasm, both outputs: bit-identical to the CPU reference, 1 and 2 threads", async () => {
  const be = await wasm();
  const seed = freshSeed();
  const shapes = [...SHAPES, [7, 1001], [33, 65], [768, 128], [3, 300], [2, 1030]];
  const counts = await countWasmCalls([activationLevelsKernel, ternaryQuantOp], async () => {
    for (const threads of [2, 1]) {
      be.ctx.threadLimit = threads;
      const cases = [
        ...shapes.map(([T, K]) => ({ T, K, ...inputs(T, K, seed) })),
        ...[5, 17, 300].map((K) => ({ K, ...specialInputs(K) })),
      ];
      for (const { T, K, x, g } of cases) {
        const ref = quantizeActivationLevels(x, g, T, K);
        const refPacked = quantizeActivationsCpu(x, g, T, K);
        const xt = fromArray(x, [T, K], { backend: be });
        const gt = fromArray(g, [K], { backend: be });
        const msg = `[${T}, ${K}] seed ${seed}, ${threads} thread(s)`;
        const p = { tokens: T, inFeatures: K, eps: 1e-6 };
        poisonPool(be, [4 * T * K, 4 * T]);
        const [q, s, r] = [empty(xt, [T, K]), empty(xt, [T]), empty(xt, [T])];
        launch(activationLevelsKernel, [xt, gt], [q, s, r], p);
        deepStrictEqual(await q.data(), Float32Array.from(ref.q), `${msg} levels`);
        deepStrictEqual(await s.data(), ref.scale, `${msg} scales`);
        deepStrictEqual(await r.data(), ref.rstd, `${msg} rstd`);
        poisonPool(be, [4 * T * int8RowWords(K), 4 * T]);
        const [w, ws, wsum] = [
          empty(xt, [T, int8RowWords(K)], "u32"),
          empty(xt, [T]),
          empty(xt, [T], "i32"),
        ];
        launch(ternaryQuantOp, [xt, gt], [w, ws, wsum], p);
        deepStrictEqual(await w.data(), refPacked.packed, `${msg} bytes`);
        deepStrictEqual(await ws.data(), refPacked.scale, `${msg} packed scales`);
        deepStrictEqual(await wsum.data(), refPacked.sum, `${msg} sums`);
        for (const t of [xt, gt, q, s, r, w, ws, wsum]) t.dispose();
      }
    }
  }).finally(() => (be.ctx.threadLimit = Infinity));
  ok(counts.every((c) => c === 2 * (shapes.length + 3)), `wasm kernels ran ${counts} times`);
});

Deno.test("ternaryLevels on wasm: the levels of clamp(round(w·s)) exactly, ties and signs included", async () => {
  const be = await wasm();
  const seed = freshSeed();
  const [levels] = await countWasmCalls([ternaryLevelsOp], async () => {
    for (const n of [1, 3, 7, 33, 65, 1001, 128 * 384]) {
      // Values at the rounding boundaries (±0.5·mean|w|, ±1.5·mean|w|) and NaN.
      const wv = Float32Array.from(randnArray(n, seed + n), (v, i) => (i % 11 === 0 ? 0 : v / 10));
      if (n > 3) wv.set([NaN, -0, 0.5, -0.5], n - 4);
      const w = fromArray(wv, [n], { backend: be });
      const { q, scale } = ternaryLevels(w);
      const s = (await scale.data())[0];
      const want = Float32Array.from(wv, (v) => Math.max(-1, Math.min(1, roundHalfEven(v * s))));
      const got = await q.data();
      for (let i = 0; i < n; i++) {
        ok(
          Object.is(got[i], want[i]),
          `[${i}] of ${n}: ${got[i]} vs ${want[i]} (w ${wv[i]}, s ${s})`,
        );
      }
    }
  });
  ok(levels >= 7, `ternary_levels ran its wasm ${levels} times`);
});

Deno.test("ternary_levels on wasm at products within an ulp of ±0.5 and ±1.5 (float64 product)", async () => {
  const be = await wasm();
  const s = Math.fround(1 / 0.0731);
  const near: number[] = [];
  const f32 = new Float32Array(1);
  const i32 = new Int32Array(f32.buffer);
  for (const t of [0.5, -0.5, 1.5, -1.5]) {
    f32[0] = t / s;
    for (let d = -3; d <= 3; d++) {
      const v = new Int32Array([i32[0] + d]);
      near.push(new Float32Array(v.buffer)[0]);
    }
  }
  const w = fromArray(Float32Array.from(near), [near.length], { backend: be });
  const st = fromArray(Float32Array.from([s]), [], { backend: be });
  const q = await apply(ternaryLevelsOp, [w, expand(st, w.shape)], undefined).data();
  const want = near.map((v) => Math.max(-1, Math.min(1, roundHalfEven(v * s))));
  // The f32 product would round some of these onto the tie itself and differ.
  ok(near.some((v) => Math.fround(v * s) === 0.5 && v * s !== 0.5), "the cases include f32 ties");
  deepStrictEqual([...q].map((v) => v + 0), want.map((v) => v + 0));
  ok(q.every((v, i) => Object.is(v, Math.fround(want[i]))), `${[...q]} vs ${want}`);
});

Deno.test("dequantize and reciprocal on wasm match cpu (odd shapes, leading dims, other layouts)", async () => {
  const counts = await countWasmCalls([dequantizeOp, reciprocalOp], async () => {
    for (const [rows, n] of [[1, 1], [3, 7], [33, 65], [768, 384], [5, 1001]]) {
      await wasmParity(`dequantize [${rows}, ${n}]`, (acc, sx, sw) => dequantize(acc, sx, sw), [
        { shape: [rows, n] },
        { shape: [rows, 1], grad: false },
        { shape: [], grad: false },
      ]);
    }
    await wasmParity("dequantize leading dims", (acc, sx, sw) => dequantize(acc, sx, sw), [
      { shape: [2, 3, 5] },
      { shape: [2, 3, 1], grad: false },
      { shape: [1], grad: false },
    ]);
    // A transposed acc and a scale view that does not fold: the strided elementwise loop.
    await wasmParity(
      "dequantize transposed",
      (acc, sx, sw) => dequantize(transpose(acc), transpose(sx), sw),
      [{ shape: [5, 3] }, { shape: [1, 3], grad: false }, { shape: [], grad: false }],
    );
    for (const n of [1, 3, 7, 65, 1001]) {
      await wasmParity(`reciprocal [${n}]`, (a) => apply(reciprocalOp, [a], undefined), [
        { shape: [n], grad: false },
      ]);
    }
  });
  ok(counts[0] >= 2 * 7 && counts[1] >= 2 * 5, `wasm kernels ran ${counts} times`);
});

Deno.test("dequantize on wasm, any layout, equals the f32 CPU reference bit for bit", async () => {
  const be = await wasm();
  const g = new Generator(11);
  const acc = Float32Array.from(g.integers(37 * 29, 41), (v) => v - 20);
  const sx = Float32Array.from(g.uniform(37), (v) => 0.5 + v);
  const on = async (backend: Backend) => {
    const a = fromArray(acc, [29, 37], { backend });
    const x = fromArray(sx, [1, 37], { backend });
    const w = fromArray(Float32Array.of(0.731), [], { backend });
    return Array.from(await dequantize(transpose(a), transpose(x), w).data());
  };
  const [got, want] = [await on(be), await on(cpu)];
  ok(got.every((v, i) => Object.is(v, want[i])), "transposed acc and scales differ from the CPU");
});
