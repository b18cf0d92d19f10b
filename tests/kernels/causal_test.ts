// causalMask / causalFill: the triangle by hand, the KV-cache offset, agreement with maskedFill
// of the mask, float64 gradient checks and WebGPU-vs-CPU parity.

import { deepStrictEqual, throws } from "node:assert/strict";
import { causalFill, causalMask, maskedFill, softmax, sub, transpose } from "../../kernels/mod.ts";
import {
  assertClose,
  cpu,
  gpu,
  gradCheck,
  hasWebGPU,
  randnArray,
  t64,
  values,
  wasm,
} from "../util.ts";
import { gpuParity, poisonPool, wasmParity } from "./gpu_helpers.ts";
import { splitSmall } from "./wasm_split.ts";

Deno.test("causalMask is lower-triangular", async () => {
  deepStrictEqual(await causalMask(3).toArray(), [[1, 0, 0], [1, 1, 0], [1, 1, 1]]);
  deepStrictEqual(causalMask(0).shape, [0, 0]);
  deepStrictEqual(causalMask(2, { dtype: "f64", backend: cpu }).dtype, "f64");
  throws(() => causalMask(-1), /causalMask: T must be a non-negative integer, got -1/);
});

Deno.test("causalFill masks future keys; offset defaults to S - T", async () => {
  const x = t64([1, 2, 3, 4, 5, 6], [2, 3]);
  // T = 2 queries over S = 3 keys: offset 1, so query 0 sees keys 0..1 and query 1 all.
  deepStrictEqual(Array.from(await values(causalFill(x, -9))), [1, 2, -9, 4, 5, 6]);
  deepStrictEqual(Array.from(await values(causalFill(x, -9, 0))), [1, -9, -9, 4, 5, -9]);
  deepStrictEqual(Array.from(await values(causalFill(x, 0, -1))), [0, 0, 0, 4, 0, 0]);
  // Square scores with -inf then softmax: row i is uniform over keys 0..i.
  const p = await values(softmax(causalFill(t64(new Array(9).fill(0), [3, 3]), -Infinity)));
  assertClose(p, [1, 0, 0, 0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3], { atol: 1e-15 });
  throws(
    () => causalFill(t64([1, 2], [2]), 0),
    /causalFill: scores must be \[\.\.\., T, S\], got \[2\]/,
  );
});

Deno.test("causalFill equals maskedFill with the inverted causal mask", async () => {
  const x = t64(randnArray(2 * 4 * 4, 3), [2, 4, 4]);
  const future = sub(1, causalMask(4, { dtype: "f64", backend: cpu }));
  deepStrictEqual(
    Array.from(await values(causalFill(x, -5, 0))),
    Array.from(await values(maskedFill(x, future, -5))),
  );
});

Deno.test("causalFill gradcheck (float64, views, offsets)", async () => {
  await gradCheck((x) => causalFill(x, -4), [{ shape: [2, 3, 3] }]);
  await gradCheck((x) => causalFill(x, 0), [{ shape: [1, 2, 5] }]);
  await gradCheck((x) => causalFill(transpose(x), 7, 0), [{ shape: [4, 3] }]);
  await gradCheck((x) => causalFill(x, 1, -1), [{ shape: [1, 1] }]);
});

Deno.test({
  name: "causalFill webgpu matches cpu (T, S in 1..129, KV-cache offsets)",
  ignore: !hasWebGPU,
  fn: async () => {
    for (const [b, t, s] of [[1, 1, 1], [2, 3, 3], [1, 17, 17], [2, 1, 65], [1, 5, 129]]) {
      await gpuParity(`causalFill [${b}, ${t}, ${s}]`, (x) => causalFill(x, -3), [{
        shape: [b, t, s],
      }]);
    }
    await gpuParity("causalFill transposed", (x) => causalFill(transpose(x), 0, 2), [{
      shape: [9, 7],
    }]);
    const g = await gpu();
    const x = t64(new Array(12).fill(1), [3, 4], g);
    poisonPool(g, 48);
    deepStrictEqual(Array.from(await values(causalFill(x, -Infinity, 0))), [
      ...[1, -Infinity, -Infinity, -Infinity],
      ...[1, 1, -Infinity, -Infinity],
      ...[1, 1, 1, -Infinity],
    ]);
  },
});

Deno.test("causalFill wasm matches cpu (T, S odd, KV-cache offsets, negative offsets, threads)", () =>
  splitSmall(async () => {
    // [48, 64, 64]: the scores of 12 sequences × 4 heads, split over both threads.
    const shapes = [[1, 1, 1], [2, 3, 3], [1, 7, 7], [2, 1, 65], [1, 5, 129], [3, 33, 33]];
    for (const [b, t, s] of [...shapes, [48, 64, 64]]) {
      await wasmParity(`causalFill [${b}, ${t}, ${s}]`, (x) => causalFill(x, -3), [{
        shape: [b, t, s],
      }]);
    }
    for (const offset of [0, 2, -2, 40]) {
      await wasmParity(`causalFill offset ${offset}`, (x) => causalFill(x, 0.5, offset), [{
        shape: [2, 7, 9],
      }]);
    }
    await wasmParity("causalFill transposed", (x) => causalFill(transpose(x), 0, 2), [{
      shape: [9, 7],
    }]);
    const be = await wasm();
    const x = t64(new Array(12).fill(1), [3, 4], be);
    poisonPool(be, 48);
    deepStrictEqual(Array.from(await values(causalFill(x, -Infinity, 0))), [
      ...[1, -Infinity, -Infinity, -Infinity],
      ...[1, 1, -Infinity, -Infinity],
      ...[1, 1, 1, -Infinity],
    ]);
  }));
