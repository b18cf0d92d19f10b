// Binary ops with broadcasting: hand-computed values (size-1 dims, rank differences, scalars),
// shape and dtype errors, finite-difference gradients reduced back to each input's shape, and
// WebGPU-vs-CPU and wasm-vs-CPU parity of values and gradients (integer dtypes on wasm too).

import { deepStrictEqual, throws } from "node:assert/strict";
import type { Tensor } from "../../engine/tensor.ts";
import { tensor } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { add, div, eq, ge, maximum, mul, narrow, sub, transpose } from "../../kernels/mod.ts";
import {
  assertClose,
  cpu,
  freshSeed,
  gpu,
  gradCheck,
  hasWebGPU,
  randnArray,
  t64,
  values,
  wasm,
} from "../util.ts";
import { gpuParity, wasmParity } from "./gpu_helpers.ts";
import { splitSmall } from "./wasm_split.ts";

async function expectValues(f: () => [Tensor, number[], number[]]): Promise<void> {
  const [y, shape, want] = f();
  deepStrictEqual(y.shape, shape);
  assertClose(await values(y), want, { atol: 1e-12, rtol: 1e-12 });
}

Deno.test("binary values with broadcasting: same shape, size-1 dims, rank differences", async () => {
  const a = t64([1, 2, 3, 4, 5, 6], [2, 3]);
  const row = t64([10, 20, 30], [3]);
  const col = t64([100, 200], [2, 1]);
  await expectValues(() => [add(a, row), [2, 3], [11, 22, 33, 14, 25, 36]]);
  await expectValues(() => [sub(a, col), [2, 3], [-99, -98, -97, -196, -195, -194]]);
  await expectValues(() => [mul(col, row), [2, 3], [1000, 2000, 3000, 2000, 4000, 6000]]);
  await expectValues(() => [div(row, a), [2, 3], [10, 10, 10, 2.5, 4, 5]]);
  // [3] against [2, 1, 3] broadcasts to [2, 1, 3]; [2, 1] against [1, 3] to [2, 3].
  const b3 = t64([1, 1, 1, 2, 2, 2], [2, 1, 3]);
  await expectValues(() => [mul(row, b3), [2, 1, 3], [10, 20, 30, 20, 40, 60]]);
  await expectValues(
    () => [add(col, t64([1, 2, 3], [1, 3])), [2, 3], [101, 102, 103, 201, 202, 203]],
  );
  // A [1] tensor and a rank-0 tensor broadcast against anything.
  await expectValues(() => [add(a, t64([0.5], [1])), [2, 3], [1.5, 2.5, 3.5, 4.5, 5.5, 6.5]]);
  await expectValues(() => [mul(t64([2], []), a), [2, 3], [2, 4, 6, 8, 10, 12]]);
});

Deno.test("binary with numbers, maximum with ties, ge and eq", async () => {
  const x = t64([1, -2, 4], [3]);
  await expectValues(() => [add(x, 2), [3], [3, 0, 6]]);
  await expectValues(() => [sub(x, 1), [3], [0, -3, 3]]);
  await expectValues(() => [sub(10, x), [3], [9, 12, 6]]);
  await expectValues(() => [mul(x, -3), [3], [-3, 6, -12]]);
  await expectValues(() => [div(x, 4), [3], [0.25, -0.5, 1]]);
  const y = t64([1, 0, 5], [3]);
  await expectValues(() => [maximum(x, y), [3], [1, 0, 5]]);
  await expectValues(() => [ge(x, y), [3], [1, 0, 0]]);
  await expectValues(() => [eq(x, y), [3], [1, 0, 0]]);
  // maximum's gradient goes to a on ties.
  const a = t64([1, 3], [2], cpu, true);
  const b = t64([1, 2], [2], cpu, true);
  maximum(a, b).backward(t64([1, 1], [2]));
  assertClose(await values(a.grad!), [1, 1]);
  assertClose(await values(b.grad!), [0, 0]);
});

Deno.test("binary shape and dtype errors name the op and both shapes", () => {
  throws(
    () => add(t64([1, 2, 3, 4, 5, 6], [2, 3]), t64([1, 2, 3, 4], [4])),
    /add: shapes \[2, 3\] and \[4\] do not broadcast/,
  );
  throws(
    () => mul(t64([1, 2], [2]), t64([1, 2, 3], [3])),
    /mul: shapes \[2\] and \[3\] do not broadcast/,
  );
  throws(
    () => sub(tensor([1, 2], [2], { dtype: "f32" }), tensor([1, 2], [2], { dtype: "i32" })),
    /sub: dtypes differ: a is f32 \[2\], b is i32 \[2\]/,
  );
});

const OPS: [string, (a: Tensor, b: Tensor) => Tensor][] = [
  ["add", add],
  ["sub", sub],
  ["mul", mul],
  ["div", div],
  ["maximum", maximum],
];

/** Broadcasting pairs: same shape, trailing match, size-1 dims on both sides, rank differences. */
const PAIRS: [number[], number[]][] = [
  [[2, 3], [2, 3]],
  [[2, 3], [3]],
  [[2, 1], [1, 3]],
  [[4, 1, 3], [2, 3]],
  [[3], [2, 2, 1]],
  [[1], [2, 3]],
];

/** Divisors kept away from 0. */
function awayFromZero(n: number, seed: number): number[] {
  return Array.from(randnArray(n, seed), (v) => (v < 0 ? v - 0.5 : v + 0.5));
}

Deno.test("binary gradients by finite differences with broadcasting and views", async () => {
  for (const [name, f] of OPS) {
    for (const [sa, sb] of PAIRS) {
      const seed = freshSeed();
      const nb = sb.reduce((x, y) => x * y, 1);
      await gradCheck(f, [{ shape: sa }, { shape: sb, values: awayFromZero(nb, seed) }], { seed })
        .catch((e) => {
          throw new Error(`${name} ${sa} ${sb}: ${e.message}`);
        });
    }
    // Transposed and narrowed operands.
    await gradCheck((a, b) => f(transpose(a), narrow(b, 1, 1, 3)), [
      { shape: [3, 2] },
      { shape: [2, 4], values: awayFromZero(8, 5) },
    ]);
  }
});

Deno.test({
  name: "binary webgpu parity: values and gradients at odd sizes, broadcasts and views",
  ignore: !hasWebGPU,
  async fn() {
    const shapes: [number[], number[]][] = [
      [[1], [1]],
      [[3], [1]],
      [[17], [17]],
      [[65, 3], [3]],
      [[3, 1], [1, 129]],
      [[2, 1, 17], [3, 1]],
    ];
    for (const [name, f] of OPS) {
      for (const [sa, sb] of shapes) {
        const seed = freshSeed();
        const nb = sb.reduce((x, y) => x * y, 1);
        await gpuParity(`${name} ${sa} ${sb}`, f, [
          { shape: sa },
          { shape: sb, values: awayFromZero(nb, seed) },
        ], { seed });
      }
      await gpuParity(`${name} views`, (a, b) => f(transpose(a), narrow(b, 0, 1, 17)), [
        { shape: [3, 17] },
        { shape: [19, 3], values: awayFromZero(57, 1) },
      ]);
    }
    // Comparisons: exact 0/1 results on values with ties.
    const g = await gpu();
    const ints = (n: number, s: number) => Array.from(randnArray(n, s), (v) => Math.round(v));
    for (const [name, f] of [["ge", ge], ["eq", eq]] as const) {
      const seed = freshSeed();
      const [a, b] = [ints(65 * 3, seed), ints(3, seed + 1)];
      const want = await values(f(t64(a, [65, 3]), t64(b, [3])));
      const got = await values(f(t64(a, [65, 3], g), t64(b, [3], g)));
      deepStrictEqual(got, want, `${name} (seed ${seed})`);
    }
  },
});

Deno.test("binary wasm parity: odd sizes, broadcasts of every rank, views, both threads", () =>
  splitSmall(async () => {
    const shapes: [number[], number[]][] = [
      [[1], [1]],
      [[3], [1]],
      [[7], [7]],
      [[33, 3], [3]],
      [[1001], [1001]],
      [[3, 1], [1, 129]],
      [[2, 1, 17], [3, 1]],
      [[12, 64, 48], [48]], // a bias: broadcast rows, 36864 elements over both threads
      [[5, 1, 3, 1, 7], [4, 1, 2, 7]],
    ];
    for (const [name, f] of OPS) {
      for (const [sa, sb] of shapes) {
        const nb = sb.reduce((x, y) => x * y, 1);
        await wasmParity(`${name} ${sa} ${sb}`, f, [
          { shape: sa },
          { shape: sb, values: awayFromZero(nb, freshSeed()) },
        ]);
      }
      await wasmParity(`${name} views`, (a, b) => f(transpose(a), narrow(b, 0, 1, 17)), [
        { shape: [3, 17] },
        { shape: [19, 3], values: awayFromZero(57, 1) },
      ]);
      await wasmParity(`${name} offset rank 4`, (a, b) => f(narrow(a, 3, 2, 33), b), [
        { shape: [2, 3, 5, 40] },
        { shape: [5, 1], values: awayFromZero(5, 2) },
      ]);
      // Over 1024 elements, transposed inputs are first copied row-major through the transpose
      // tiles (a gradient read as wᵀ); a strided input with no contiguous dim is read lane by
      // lane.
      await wasmParity(`${name} transposed inputs`, (a, b) => f(transpose(a), transpose(b)), [
        { shape: [33, 40] },
        { shape: [33, 40], values: awayFromZero(1320, 3) },
      ]);
      await wasmParity(`${name} strided column`, (a, b) => f(transpose(narrow(a, 1, 1, 1)), b), [
        { shape: [1200, 3] },
        { shape: [1, 1200], values: awayFromZero(1200, 5) },
      ]);
    }
    // One transposed view as both operands: copied once (a·a: its gradient doesn't cancel).
    await wasmParity("mul one view twice", (a) => mul(transpose(a), transpose(a)), [{
      shape: [33, 40],
    }]);
    const be = await wasm();
    const ints = (n: number, s: number) => Array.from(randnArray(n, s), (v) => Math.round(v));
    for (const [name, f] of [["ge", ge], ["eq", eq], ["maximum", maximum]] as const) {
      const seed = freshSeed();
      const [a, b] = [ints(65 * 3, seed), ints(3, seed + 1)];
      const want = await values(f(t64(a, [65, 3]), t64(b, [3])));
      const got = await values(f(t64(a, [65, 3], be), t64(b, [3], be)));
      deepStrictEqual(got, want, `${name} (seed ${seed})`);
    }
    // Integer tensors: the CPU loop on the heap, the CPU's values exactly.
    const i32 = (v: number[]) => tensor(v, [v.length], { dtype: "i32", backend: be });
    const [p, q] = [[7, -3, 2147483647, 0, 5], [2, 4, 1, -9, 5]];
    deepStrictEqual([...await add(i32(p), i32(q)).data()], [9, 1, -2147483648, -9, 10]);
    deepStrictEqual([...await mul(i32(p), i32(q)).data()], [14, -12, 2147483647, 0, 25]);
    deepStrictEqual([...await eq(i32(p), i32(q)).data()], [0, 0, 0, 0, 1]);
  }));

/** A random broadcasting pair from `seed`: a shape, and one with dims set to 1 or dropped. */
function randomPair(seed: number): [number[], number[]] {
  const g = new Generator(seed);
  const u = () => g.uniform(1)[0];
  const a = Array.from({ length: 1 + Math.floor(u() * 3) }, () => 1 + Math.floor(u() * 4));
  let b = a.map((d) => (u() < 0.4 ? 1 : d));
  b = b.slice(Math.floor(u() * b.length)); // drop leading dims
  return u() < 0.5 ? [a, b] : [b, a];
}

Deno.test("binary gradients on random broadcasting shapes", async () => {
  const seed = freshSeed();
  for (let i = 0; i < 12; i++) {
    const [sa, sb] = randomPair(seed + i);
    const nb = sb.reduce((x, y) => x * y, 1);
    for (const [name, f] of OPS) {
      await gradCheck(f, [{ shape: sa }, { shape: sb, values: awayFromZero(nb, seed + i) }], {
        seed: seed + i,
      }).catch((e) => {
        throw new Error(`${name} ${fmt(sa)} ${fmt(sb)}: ${e.message}`);
      });
    }
  }
});

const fmt = (s: number[]) => `[${s.join(", ")}]`;
