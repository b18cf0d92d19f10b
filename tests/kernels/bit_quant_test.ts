// BitLinear's exact quantiser ops (kernels/bit_quant.ts): the activation levels equal the packed
// quantiser's bytes in both WGSL modes and on the CPU, bit for bit; ternary levels and the
// dequantising multiply equal the packed GEMM's output exactly; gradients are the straight-
// through estimator's and agree between backends.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import { fromArray } from "../../engine/creation.ts";
import { empty, launch } from "../../engine/op.ts";
import { activationLevels, dequantize, ternaryLevels } from "../../kernels/ternary/bit_quant.ts";
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
import { poisonPool } from "./gpu_helpers.ts";
import { assertClose, cpu, freshSeed, gpu, hasWebGPU, randnArray } from "../util.ts";

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

for (const name of ["cpu", "webgpu"] as const) {
  Deno.test({
    name: `ternaryLevels + dequantize on ${name} equal the packed GEMM's output bit for bit`,
    ignore: name === "webgpu" && !hasWebGPU,
    async fn() {
      const backend: Backend = name === "webgpu" ? await gpu() : cpu;
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

Deno.test({
  name: "BitLinear forward and gradients agree between webgpu and cpu",
  ignore: !hasWebGPU,
  async fn() {
    const backend = await gpu();
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
