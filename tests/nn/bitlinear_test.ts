// BitLinear: the forward equals an independent float64 composition of RMSNorm and both
// quantisers; the straight-through estimator passes the gradients of the unquantised path; the
// inference seam replaces the forward in eval mode only.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Generator } from "../../engine/random.ts";
import { fromArray } from "../../engine/creation.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { matmul, mul, rmsNorm, sum, transpose } from "../../kernels/mod.ts";
import { roundHalfEven } from "../../kernels/elementwise/unary.ts";
import { activationQuant, BitLinear, weightQuant } from "../../nn/bitlinear.ts";
import { assertClose, cpu, randnArray, t64, values } from "../util.ts";

const [N, IN, OUT] = [6, 8, 5];

/** The quantisers written out on plain arrays (the original's PyTorch code, float64). */
function refForward(x: Float64Array, g: Float64Array, w: Float64Array) {
  const xq = new Float64Array(N * IN);
  for (let n = 0; n < N; n++) {
    const row = x.subarray(n * IN, (n + 1) * IN);
    const rms = Math.sqrt(row.reduce((s, v) => s + v * v, 0) / IN + 1e-6);
    const xn = Array.from(row, (v, i) => (v / rms) * g[i]);
    const s = 127 / Math.max(Math.max(...xn.map(Math.abs)), 1e-5);
    xn.forEach((
      v,
      i,
    ) => (xq[n * IN + i] = Math.min(127, Math.max(-128, roundHalfEven(v * s))) / s));
  }
  const ws = 1 / Math.max(w.reduce((s, v) => s + Math.abs(v), 0) / w.length, 1e-5);
  const wq = w.map((v) => Math.min(1, Math.max(-1, roundHalfEven(v * ws))) / ws);
  const y = new Float64Array(N * OUT);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OUT; o++) {
      let acc = 0;
      for (let i = 0; i < IN; i++) acc += xq[n * IN + i] * wq[o * IN + i];
      y[n * OUT + o] = acc;
    }
  }
  return { xq, wq, y, ws };
}

function layer(seed: number): { bl: BitLinear; w: Float64Array; g: Float64Array } {
  const bl = new BitLinear(IN, OUT, { backend: cpu, dtype: "f64", generator: new Generator(seed) });
  const w = Float64Array.from(randnArray(OUT * IN, seed + 1), (v) => v * 0.05);
  const g = Float64Array.from(randnArray(IN, seed + 2), (v) => 1 + 0.3 * v);
  bl.loadStateDict({
    weight: { shape: [OUT, IN], data: w },
    "norm.weight": { shape: [IN], data: g },
  });
  return { bl, w, g };
}

Deno.test("BitLinear: parameter names and shapes", () => {
  const bl = new BitLinear(IN, OUT, { backend: cpu });
  deepStrictEqual(bl.namedParameters().map(([n, p]) => [n, [...p.shape]]), [
    ["weight", [OUT, IN]],
    ["norm.weight", [IN]],
  ]);
  strictEqual(bl.norm.eps, 1e-6);
});

Deno.test("BitLinear forward equals RMSNorm + int8 absmax + ternary absmean, composed by hand", async () => {
  const { bl, w, g } = layer(11);
  const x = Float64Array.from(randnArray(N * IN, 12), (v, i) => v * (1 + (i % 3))); // varied rows
  const y = bl.forward(t64(x, [2, 3, IN]));
  deepStrictEqual([...y.shape], [2, 3, OUT]);
  const ref = refForward(x, g, w);
  assertClose(await values(y), ref.y, { atol: 1e-12, rtol: 1e-10 });
  // The quantisers on their own: integer levels times the scale.
  const wq = await values(weightQuant(t64(w, [OUT, IN])));
  assertClose(wq, ref.wq, { atol: 1e-15, rtol: 1e-12 });
  ok(wq.every((v) => [-1, 0, 1].includes(Math.round(v * ref.ws))));
  const aq = await values(activationQuant(t64(x, [N, IN])));
  for (let n = 0; n < N; n++) {
    const row = x.subarray(n * IN, (n + 1) * IN);
    const s = 127 / Math.max(...Array.from(row, Math.abs));
    const levels = Array.from(aq.subarray(n * IN, (n + 1) * IN), (v) => v * s);
    assertClose(levels, levels.map(Math.round), { atol: 1e-9, rtol: 0 });
    strictEqual(Math.max(...levels.map(Math.abs)).toFixed(6), "127.000000");
  }
});

Deno.test("BitLinear backward: straight-through gradients of the unquantised path", async () => {
  const { bl, w, g } = layer(21);
  const xv = randnArray(N * IN, 22);
  const G = randnArray(N * OUT, 23); // upstream gradient
  const x = t64(xv, [N, IN], cpu, true);
  sum(mul(bl.forward(x), t64(G, [N, OUT]))).backward();
  const ref = refForward(xv, g, w);
  // dW = Gᵀ · x_q: the weight quantiser passes the gradient through unchanged.
  const dW = new Float64Array(OUT * IN);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OUT; o++) {
      for (let i = 0; i < IN; i++) dW[o * IN + i] += G[n * OUT + o] * ref.xq[n * IN + i];
    }
  }
  assertClose(await values(bl.weight.grad!), dW, { atol: 1e-12, rtol: 1e-10 });
  // dx and d(norm.weight): as if y = rmsNorm(x)·w_qᵀ with w_q a constant.
  const x2 = t64(xv, [N, IN], cpu, true);
  const g2 = t64(g, [IN], cpu, true);
  const wq = t64(ref.wq, [OUT, IN]);
  sum(mul(matmul(rmsNorm(x2, g2, 1e-6), transpose(wq)), t64(G, [N, OUT]))).backward();
  assertClose(await values(x.grad!), await values(x2.grad!), { atol: 1e-12, rtol: 1e-10 });
  assertClose(await values(bl.norm.weight.grad!), await values(g2.grad!), {
    atol: 1e-12,
    rtol: 1e-10,
  });
});

Deno.test("BitLinear inference seam: used in eval mode, ignored in training", async () => {
  const bl = new BitLinear(IN, OUT, { backend: cpu, dtype: "f64" });
  const calls: Tensor[] = [];
  bl.setInference((x, layer) => {
    calls.push(x);
    strictEqual(layer, bl);
    return fromArray(new Float64Array(OUT).fill(42), [1, OUT], { backend: cpu });
  });
  const x = t64(randnArray(IN, 5), [1, IN]);
  bl.train();
  ok(!(await values(bl.forward(x))).every((v) => v === 42));
  bl.eval();
  deepStrictEqual(Array.from(await values(bl.forward(x))), new Array(OUT).fill(42));
  strictEqual(calls.length, 1);
  bl.setInference(null);
  ok(!(await values(bl.forward(x))).every((v) => v === 42));
});
