// where / maskedFill: values by hand with broadcasting and integer conditions, errors, masked
// gradients (float64 gradcheck, views), and WebGPU-vs-CPU parity.

import { deepStrictEqual, throws } from "node:assert/strict";
import { tensor } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { maskedFill, transpose, where } from "../../kernels/mod.ts";
import { cpu, freshSeed, gpu, gradCheck, hasWebGPU, t64, values, wasm } from "../util.ts";
import { gpuParity, poisonPool, wasmParity } from "./gpu_helpers.ts";
import { splitSmall } from "./wasm_split.ts";

const bits = (n: number, seed: number) =>
  Array.from(new Generator(seed).uniform(n), (u) => (u < 0.5 ? 0 : 1));

Deno.test("where picks a where cond is nonzero, with broadcasting", async () => {
  const y = where(t64([1, 0, 2], [3]), t64([1, 2, 3], [3]), t64([10, 20, 30], [3]));
  deepStrictEqual(Array.from(await values(y)), [1, 20, 3]);
  // cond [2, 1], a [3], b a number: [2, 3]
  const z = where(t64([0, 1], [2, 1]), t64([1, 2, 3], [3]), -1);
  deepStrictEqual(z.shape, [2, 3]);
  deepStrictEqual(Array.from(await values(z)), [-1, -1, -1, 1, 2, 3]);
  const c = tensor(Int32Array.from([0, 7, -1]), [3], { backend: cpu });
  deepStrictEqual(Array.from(await values(where(c, 5, t64([1, 2, 3], [3])))), [1, 5, 5]);
  deepStrictEqual(Array.from(await values(where(t64([NaN, 0], [2]), 1, 0))), [1, 0]);
});

Deno.test("where and maskedFill errors name the op and shapes", () => {
  const a = t64([1, 2, 3], [3]);
  throws(() => where(t64([1, 0], [2]), a, a), /where: shapes \[2\] and \[3\] do not broadcast/);
  const i = tensor(Int32Array.from([1, 2, 3]), [3], { backend: cpu });
  throws(() => where(a, a, i), /where: a is f64 \[3\], b is i32 \[3\]/);
  throws(
    () => maskedFill(a, t64([1, 0, 1, 0, 1, 0], [2, 3]), 0),
    /maskedFill: mask \[2, 3\] does not broadcast to x \[3\]/,
  );
  throws(() => maskedFill(i, a, 0), /maskedFill: x must be float, got i32/);
});

Deno.test("maskedFill fills where the mask is nonzero", async () => {
  const x = t64([1, 2, 3, 4, 5, 6], [2, 3], cpu, true);
  const y = maskedFill(x, t64([1, 0, 1], [3]), -Infinity);
  deepStrictEqual(Array.from(await values(y)), [-Infinity, 2, -Infinity, -Infinity, 5, -Infinity]);
  y.backward(t64([1, 2, 3, 4, 5, 6], [2, 3]));
  deepStrictEqual(Array.from(await values(x.grad!)), [0, 2, 0, 0, 5, 0]);
});

Deno.test("where gradients are masked and summed over broadcast dims", async () => {
  const a = t64([1, 2, 3], [3], cpu, true);
  const b = t64([7], [1], cpu, true);
  where(t64([1, 0, 0, 1, 1, 0], [2, 3]), a, b).backward(t64([1, 2, 3, 4, 5, 6], [2, 3]));
  deepStrictEqual(Array.from(await values(a.grad!)), [5, 5, 0]);
  deepStrictEqual(Array.from(await values(b.grad!)), [2 + 3 + 6]);
});

Deno.test("where / maskedFill gradcheck (float64, broadcasting, views, size-1 dims)", async () => {
  const seed = freshSeed();
  const cond = t64(bits(12, seed), [3, 4]);
  await gradCheck((a, b) => where(cond, a, b), [{ shape: [3, 4] }, { shape: [3, 4] }]);
  await gradCheck((a, b) => where(cond, a, b), [{ shape: [1, 4] }, { shape: [3, 1] }]);
  await gradCheck((a, b) => where(cond, transpose(a), b), [{ shape: [4, 3] }, { shape: [] }]);
  await gradCheck((x) => maskedFill(x, t64([0, 1, 1, 0], [4]), 2.5), [{ shape: [3, 4] }]);
  await gradCheck((x) => maskedFill(transpose(x), cond, -3), [{ shape: [4, 3] }]);
});

Deno.test({
  name: "where / maskedFill webgpu match cpu (sizes 1..129, broadcasting, views)",
  ignore: !hasWebGPU,
  fn: async () => {
    for (const n of [1, 3, 17, 65, 129]) {
      const c = { shape: [n], values: bits(n, freshSeed()), grad: false };
      await gpuParity(`where n=${n}`, (m, a, b) => where(m, a, b), [c, { shape: [n] }, {
        shape: [n],
      }]);
      await gpuParity(`maskedFill n=${n}`, (x, m) => maskedFill(x, m, -2.5), [{ shape: [n] }, c]);
    }
    const cond = { shape: [5, 1, 7], values: bits(35, freshSeed()), grad: false };
    await gpuParity("where broadcast", (m, a, b) => where(m, a, b), [cond, { shape: [3, 1] }, {
      shape: [7],
    }]);
    await gpuParity("maskedFill transposed", (x, m) => maskedFill(transpose(x), m, 0), [
      { shape: [7, 6] },
      { shape: [7], values: bits(7, freshSeed()), grad: false },
    ]);
  },
});

Deno.test({
  name: "maskedFill webgpu writes -Infinity and integer conditions work",
  ignore: !hasWebGPU,
  fn: async () => {
    const g = await gpu();
    const x = t64([1, 2, 3, 4], [4], g);
    const m = tensor(Int32Array.from([0, 3, 0, -1]), [4], { backend: g });
    poisonPool(g, 16);
    deepStrictEqual(Array.from(await values(maskedFill(x, m, -Infinity))), [
      1,
      -Infinity,
      3,
      -Infinity,
    ]);
    deepStrictEqual(Array.from(await values(where(m, x, 0))), [0, 2, 0, 4]);
  },
});

Deno.test("where / maskedFill wasm match cpu (odd sizes, broadcasting, views, both threads)", () =>
  splitSmall(async () => {
    for (const n of [1, 3, 7, 33, 1000, 40001]) {
      const c = { shape: [n], values: bits(n, freshSeed()), grad: false };
      await wasmParity(`where n=${n}`, (m, a, b) => where(m, a, b), [c, { shape: [n] }, {
        shape: [n],
      }]);
      await wasmParity(`maskedFill n=${n}`, (x, m) => maskedFill(x, m, -2.5), [{ shape: [n] }, c]);
    }
    const cond = { shape: [5, 1, 7], values: bits(35, freshSeed()), grad: false };
    await wasmParity("where broadcast", (m, a, b) => where(m, a, b), [cond, { shape: [3, 1] }, {
      shape: [7],
    }]);
    await wasmParity("maskedFill transposed", (x, m) => maskedFill(transpose(x), m, 0), [
      { shape: [7, 6] },
      { shape: [7], values: bits(7, freshSeed()), grad: false },
    ]);
    // Attention-style: scores [12, 4, 33, 33] with a [33, 33] mask (stride-0 over the batch).
    await wasmParity("maskedFill scores", (x, m) => maskedFill(x, m, -1e9), [
      { shape: [12, 4, 33, 33] },
      { shape: [33, 33], values: bits(33 * 33, freshSeed()), grad: false },
    ]);
  }));

Deno.test("maskedFill wasm writes -Infinity; i32 and NaN conditions; i32 where", async () => {
  const be = await wasm();
  const x = t64([1, 2, 3, 4], [4], be);
  const m = tensor(Int32Array.from([0, 3, 0, -1]), [4], { backend: be });
  poisonPool(be, 16);
  deepStrictEqual(Array.from(await values(maskedFill(x, m, -Infinity))), [
    1,
    -Infinity,
    3,
    -Infinity,
  ]);
  deepStrictEqual(Array.from(await values(where(m, x, 0))), [0, 2, 0, 4]);
  // NaN counts as nonzero, −0 as zero (as the CPU's !== 0).
  const f = t64([NaN, -0, 0, 2], [4], be);
  deepStrictEqual(Array.from(await values(where(f, x, 9))), [1, 9, 9, 4]);
  // Integer operands are moved bit for bit.
  const big = tensor(Int32Array.from([2147483647, -5, 7, -2147483648]), [4], { backend: be });
  const other = tensor(Int32Array.from([1, 2, 3, 4]), [4], { backend: be });
  deepStrictEqual([...await where(m, big, other).data()], [1, -5, 3, -2147483648]);
});
