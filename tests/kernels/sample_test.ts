// Sampling: topk (sorted, ties by lower index), multinomial and sampleLogits (temperature,
// top-k, top-p, greedy): hand cases and draw frequencies on every backend, the same draws on
// CPU and WebGPU for the same seed, exactly the CPU's draws on wasm (1 and 2 threads), the
// wide-workgroup path for long rows, and argument errors.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { Generator } from "../../engine/random.ts";
import { tensor } from "../../engine/creation.ts";
import { multinomial, sampleLogits, topk, transpose } from "../../kernels/mod.ts";
import { cpu, freshSeed, gpu, hasWebGPU, randnArray, t64, values, wasm } from "../util.ts";
import { poisonPool } from "./gpu_helpers.ts";
import { countWasmCalls } from "./wasm_helpers.ts";
import { multinomialOp, sampleLogitsOp, topkRowsOp } from "../../kernels/sample.ts";
import { sampleModule } from "../../kernels/sample_wasm.ts";

async function backends(): Promise<Backend[]> {
  return [cpu, ...(hasWebGPU ? [await gpu()] : []), await wasm()];
}

async function ints(t: Tensor): Promise<number[]> {
  strictEqual(t.dtype, "i32");
  return Array.from(await t.data());
}

Deno.test("topk: sorted descending, ties by lower index, any axis", async () => {
  for (const b of await backends()) {
    const x = t64([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8], [2, 6], b);
    const r = topk(x, 4);
    deepStrictEqual(r.values.shape, [2, 4]);
    deepStrictEqual(Array.from(await values(r.values)), [9, 5, 4, 3, 8, 6, 5, 5], b.name);
    deepStrictEqual(await ints(r.indices), [5, 4, 2, 0, 5, 1, 2, 4], b.name);
    const all = topk(t64([1, 1, 1], [3], b), 3);
    deepStrictEqual(await ints(all.indices), [0, 1, 2], `${b.name} all tied`);
    const col = topk(x, 1, 0); // along axis 0: [1, 6]
    deepStrictEqual(col.values.shape, [1, 6]);
    deepStrictEqual(Array.from(await values(col.values)), [3, 6, 5, 3, 5, 9]);
    deepStrictEqual(await ints(col.indices), [0, 1, 1, 1, 0, 0]);
    const mid = topk(t64(Array.from({ length: 24 }, (_, i) => (i * 7) % 24), [2, 3, 4], b), 2, 1);
    deepStrictEqual(mid.values.shape, [2, 2, 4]);
    // x[0][j][k] = (7(4j + k)) % 24: column k=0 holds 0, 4, 8 -> top 2 are 8 (j=2), 4 (j=1).
    deepStrictEqual((await values(mid.values))[0], 8);
    deepStrictEqual((await ints(mid.indices)).slice(0, 1), [2]);
    deepStrictEqual(topk(x, 0).values.shape, [2, 0]);
  }
  throws(() => topk(t64([1, 2], [1, 2]), 3), /topk: k = 3 out of range for dim 1 of \[1, 2\]/);
  throws(() => topk(tensor([1, 2], [2], { dtype: "i32" }), 1), /topk: expected a float tensor/);
});

Deno.test({
  name: "topk webgpu parity at odd sizes, with ties and a transposed input",
  ignore: !hasWebGPU,
  async fn() {
    const g = await gpu();
    const cases: [number[], number, number][] = [
      [[1, 1], 1, -1],
      [[3, 17], 3, -1],
      [[2, 65], 17, 1],
      [[1, 129], 129, -1],
      [[17, 3], 5, 0],
    ];
    for (const [shape, k, axis] of cases) {
      const seed = freshSeed();
      const v = Array.from(randnArray(shape[0] * shape[1], seed), (x) => Math.round(3 * x) / 2);
      const want = topk(t64(v, shape), k, axis);
      const xg = t64(v, shape, g);
      poisonPool(g, [k * shape[0] * 4, k * shape[1] * 4]);
      const got = topk(xg, k, axis);
      const msg = `topk ${shape} k=${k} axis ${axis} (seed ${seed})`;
      deepStrictEqual(await values(got.values), await values(want.values), msg);
      deepStrictEqual(await ints(got.indices), await ints(want.indices), msg);
    }
    const x = t64(randnArray(5 * 7, 1), [5, 7]);
    const want = topk(transpose(x), 2);
    const got = topk(transpose(t64(await values(x), [5, 7], g)), 2);
    deepStrictEqual(await ints(got.indices), await ints(want.indices));
  },
});

/** Fraction of each index in `draws` (for V categories). */
function freqs(draws: number[], V: number): number[] {
  const c = new Array(V).fill(0);
  for (const d of draws) c[d]++;
  return c.map((n) => n / draws.length);
}

/** Frequencies within 5 standard errors of `p`. */
function assertFreqs(got: number[], p: number[], n: number, msg: string): void {
  p.forEach((pi, i) => {
    const tol = 5 * Math.sqrt((pi * (1 - pi)) / n) + 1e-9;
    ok(Math.abs(got[i] - pi) <= tol, `${msg}: index ${i} drawn ${got[i]}, expected ${pi} ± ${tol}`);
  });
}

Deno.test("multinomial: hand cases, frequencies, reproducible by seed", async () => {
  for (const b of await backends()) {
    const p = t64([0, 0, 1, 0, 2, 0, 0, 2, 0, 0, 0, 0], [3, 4], b); // unnormalized weights
    const y = multinomial(p, 50, { generator: new Generator(1) });
    deepStrictEqual(y.shape, [3, 50]);
    const d = await ints(y);
    ok(d.slice(0, 50).every((v) => v === 2), `${b.name}: one-hot row`);
    ok(d.slice(50, 100).every((v) => v === 0 || v === 3), `${b.name}: zero weights never drawn`);
    ok(d.slice(100).every((v) => v === -1), `${b.name}: a row without weight gives -1`);
    deepStrictEqual(multinomial(t64([1, 2], [2], b), 3).shape, [3]);
    // Frequencies: 4000 draws from one row.
    const probs = [0.1, 0.2, 0.3, 0.4];
    const draws = await ints(
      multinomial(t64(probs, [1, 4], b), 4000, { generator: new Generator(freshSeed()) }),
    );
    assertFreqs(freqs(draws, 4), probs, 4000, `${b.name} multinomial`);
  }
  const gen = new Generator(7);
  const a = await ints(multinomial(t64([1, 2, 3], [1, 3]), 20, { generator: gen }));
  strictEqual(gen.offset, 20, "each draw reserves one counter");
  deepStrictEqual(
    await ints(multinomial(t64([1, 2, 3], [1, 3]), 20, { generator: new Generator(7) })),
    a,
  );
  throws(
    () => multinomial(t64([1], [1, 1, 1])),
    /multinomial: probs must be \[N, V\] or \[V\], got \[1, 1, 1\]/,
  );
  throws(() => multinomial(t64([1], [1]), 0), /multinomial: numSamples must be a positive integer/);
});

/** Draws that differ between CPU and WebGPU; at most one is allowed (a float tie). */
function assertSameDraws(got: number[], want: number[], msg: string): void {
  const diff = got.filter((v, i) => v !== want[i]).length;
  ok(diff <= 1, `${msg}: ${diff}/${got.length} draws differ\n got ${got}\nwant ${want}`);
}

Deno.test({
  name: "multinomial draws the same on cpu and webgpu for the same seed",
  ignore: !hasWebGPU,
  async fn() {
    const g = await gpu();
    for (const [N, V, ns] of [[1, 1, 3], [2, 3, 17], [3, 17, 5], [1, 65, 40], [4, 129, 9]]) {
      const seed = freshSeed();
      const p = Array.from(randnArray(N * V, seed), (x) => Math.exp(x));
      const want = await ints(multinomial(t64(p, [N, V]), ns, { generator: new Generator(seed) }));
      const pg = t64(p, [N, V], g);
      poisonPool(g, N * ns * 4);
      const got = await ints(multinomial(pg, ns, { generator: new Generator(seed) }));
      assertSameDraws(got, want, `multinomial [${N}, ${V}] x${ns} (seed ${seed})`);
    }
  },
});

const LOG_P = [0.15, 0.5, 0.05, 0.3].map(Math.log); // ranks: 1, 3, 0, 2

/** `rows` copies of the LOG_P row: one call draws once per row. */
function repeated(rows: number, b: Backend): Tensor {
  return t64(Array.from({ length: rows }, () => LOG_P).flat(), [rows, 4], b);
}

Deno.test("sampleLogits: greedy, top-k, top-p and temperature on both backends", async () => {
  for (const b of await backends()) {
    const x = t64([0, 3, 1, 3, -1, 2, 2, 0], [2, 4], b);
    deepStrictEqual(await ints(sampleLogits(x, { temperature: 0 })), [1, 1], `${b.name} greedy`);
    // Top-k and top-p keep ties with the threshold: use distinct maxima here.
    const distinct = t64([0, 3, 1, 2.5, -1, 2, 1.5, 0], [2, 4], b);
    const gen = new Generator(freshSeed());
    for (let i = 0; i < 5; i++) {
      deepStrictEqual(await ints(sampleLogits(distinct, { topK: 1, generator: gen })), [1, 1]);
      deepStrictEqual(await ints(sampleLogits(distinct, { topP: 1e-6, generator: gen })), [1, 1]);
    }
    strictEqual(gen.offset, 20, "one counter per row and call");
    const n = 2000;
    const draw = async (o: object) =>
      freqs(
        await ints(sampleLogits(repeated(n, b), { ...o, generator: new Generator(freshSeed()) })),
        4,
      );
    const msg = (s: string) => `${b.name} ${s}`;
    assertFreqs(await draw({}), [0.15, 0.5, 0.05, 0.3], n, msg("full softmax"));
    assertFreqs(await draw({ topK: 2 }), [0, 0.625, 0, 0.375], n, msg("topK 2"));
    // Nucleus: the mass above 0.3 is 0.5 < 0.7 (kept), above 0.15 it is 0.8 >= 0.7 (dropped).
    assertFreqs(await draw({ topP: 0.7 }), [0, 0.625, 0, 0.375], n, msg("topP 0.7"));
    assertFreqs(
      await draw({ topP: 0.81 }),
      [0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95],
      n,
      msg("topP .81"),
    );
    // Top-p applies to the top-k distribution renormalized: 0.5, 0.3, 0.15 over 0.95 puts
    // 0.842 above index 0, so p = 0.81 drops it and p = 0.85 keeps it.
    assertFreqs(await draw({ topK: 3, topP: 0.81 }), [0, 0.625, 0, 0.375], n, msg("k3 p.81"));
    const kept = [0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95];
    assertFreqs(await draw({ topK: 3, topP: 0.85 }), kept, n, msg("k3 p.85"));
    const sq = [0.15, 0.5, 0.05, 0.3].map(Math.sqrt);
    const z = sq.reduce((s, v) => s + v, 0);
    assertFreqs(await draw({ temperature: 2 }), sq.map((v) => v / z), n, msg("temperature 2"));
  }
});

Deno.test({
  name: "sampleLogits draws the same on cpu and webgpu for the same seed",
  ignore: !hasWebGPU,
  async fn() {
    const g = await gpu();
    const configs = [
      {},
      { temperature: 0.7, topK: 5 },
      { topP: 0.9 },
      { temperature: 1.3, topK: 10, topP: 0.8 },
    ];
    // [N, V, ties]: with ties, logits are small integers, so thresholds fall on tied values.
    const shapes = [[1, 1], [3, 3], [2, 17], [5, 65], [4, 33, 1], [3, 129], [2, 4099]];
    for (const [N, V, ties] of shapes) {
      const seed = freshSeed();
      const logits = Array.from(randnArray(N * V, seed), (x) => (ties ? Math.round(x) : 2 * x));
      const xc = t64(logits, [N, V]);
      const xg = t64(logits, [N, V], g);
      for (const o of V > 129 ? [configs[3]] : configs) {
        const [gc, gg] = [new Generator(seed), new Generator(seed)];
        const want: number[] = [];
        const got: number[] = [];
        for (let i = 0; i < 4; i++) {
          want.push(...await ints(sampleLogits(xc, { ...o, generator: gc })));
          poisonPool(g, N * 4);
          got.push(...await ints(sampleLogits(xg, { ...o, generator: gg })));
        }
        assertSameDraws(got, want, `sampleLogits [${N}, ${V}] ${JSON.stringify(o)} (seed ${seed})`);
      }
    }
  },
});

Deno.test({
  name: "sampleLogits on webgpu ranks -0 and +0 as the tie they are (regression)",
  ignore: !hasWebGPU,
  async fn() {
    // top-k 1 keeps every logit equal to the max: indices 0, 1 and 2. The device used to order
    // -0 below +0 and keep index 1 alone.
    const logits = [-0, 0, -0, -1];
    const [gc, gg] = [new Generator(3), new Generator(3)];
    const xc = t64(logits, [1, 4]);
    const xg = t64(logits, [1, 4], await gpu());
    const want: number[] = [];
    const got: number[] = [];
    for (let i = 0; i < 16; i++) {
      want.push(...await ints(sampleLogits(xc, { topK: 1, generator: gc })));
      got.push(...await ints(sampleLogits(xg, { topK: 1, generator: gg })));
    }
    deepStrictEqual(new Set(want), new Set([0, 1, 2]));
    deepStrictEqual(got, want);
  },
});

Deno.test("sampleLogits argument errors", () => {
  const x = t64([1, 2], [1, 2]);
  throws(() => sampleLogits(t64([1, 2], [2])), /sampleLogits: logits must be \[N, V\], got \[2\]/);
  throws(() => sampleLogits(x, { temperature: -1 }), /temperature must be >= 0, got -1/);
  throws(() => sampleLogits(x, { topK: -1 }), /topK must be a non-negative integer, got -1/);
  throws(() => sampleLogits(x, { topP: 0 }), /topP must be in \(0, 1\], got 0/);
  throws(() => sampleLogits(x, { topP: 1.5 }), /topP must be in \(0, 1\], got 1.5/);
});

Deno.test("topk on wasm equals cpu exactly at odd sizes, with ties, -0 and a transposed input", async () => {
  const be = await wasm();
  const [calls] = await countWasmCalls([topkRowsOp], async () => {
    const cases: [number[], number, number][] = [
      [[1, 1], 1, -1],
      [[3, 17], 3, -1],
      [[2, 65], 17, 1],
      [[1, 129], 129, -1],
      [[17, 3], 5, 0],
      [[7, 1001], 33, -1],
      [[65, 7], 7, -1],
    ];
    for (const threads of [2, 1]) {
      be.ctx.threadLimit = threads;
      for (const [shape, k, axis] of cases) {
        const seed = freshSeed();
        const v = Array.from(randnArray(shape[0] * shape[1], seed), (x) => Math.round(3 * x) / 2);
        v[0] = -0; // ties with +0, ranked by index
        const want = topk(t64(v, shape), k, axis);
        const xw = t64(v, shape, be);
        poisonPool(be, [k * shape[0] * 4, k * shape[1] * 4]);
        const got = topk(xw, k, axis);
        const msg = `topk ${shape} k=${k} axis ${axis} (seed ${seed}, ${threads} thread(s))`;
        deepStrictEqual(await values(got.values), await values(want.values), msg);
        deepStrictEqual(await ints(got.indices), await ints(want.indices), msg);
      }
    }
    be.ctx.threadLimit = Infinity;
    const x = t64(randnArray(5 * 7, 1), [5, 7]);
    const want = topk(transpose(x), 2);
    const got = topk(transpose(t64(await values(x), [5, 7], be)), 2);
    deepStrictEqual(await ints(got.indices), await ints(want.indices));
  });
  ok(calls >= 2 * 7 + 1, `topk ran its wasm ${calls} times`);
});

Deno.test("multinomial on wasm draws exactly the cpu's draws for the same seed", async () => {
  const be = await wasm();
  const [calls] = await countWasmCalls([multinomialOp], async () => {
    for (const threads of [2, 1]) {
      be.ctx.threadLimit = threads;
      for (
        const [N, V, ns] of [[1, 1, 3], [2, 3, 17], [3, 17, 5], [1, 65, 40], [33, 129, 9], [
          4,
          1001,
          3,
        ]]
      ) {
        const seed = freshSeed();
        const p = Array.from(
          randnArray(N * V, seed),
          (x, i) => (i % 5 === 0 ? -x * x : Math.exp(x)),
        );
        const want = await ints(
          multinomial(t64(p, [N, V]), ns, { generator: new Generator(seed) }),
        );
        const pw = t64(p, [N, V], be);
        poisonPool(be, N * ns * 4);
        const got = await ints(multinomial(pw, ns, { generator: new Generator(seed) }));
        deepStrictEqual(got, want, `multinomial [${N}, ${V}] x${ns} (seed ${seed}, ${threads})`);
      }
    }
  }).finally(() => (be.ctx.threadLimit = Infinity));
  ok(calls >= 12, `multinomial ran its wasm ${calls} times`);
});

Deno.test("sampleLogits on wasm draws the cpu's draws for the same seed (top-k, top-p, ties)", async () => {
  const be = await wasm();
  const configs = [
    {},
    { temperature: 0.7, topK: 5 },
    { topP: 0.9 },
    { temperature: 1.3, topK: 10, topP: 0.8 },
    { topK: 1 },
  ];
  const shapes = [[1, 1], [3, 3], [2, 17], [5, 65], [4, 33, 1], [3, 129], [2, 4099], [9, 7, 1]];
  const [calls] = await countWasmCalls([sampleLogitsOp], async () => {
    for (const threads of [2, 1]) {
      be.ctx.threadLimit = threads;
      for (const [N, V, ties] of shapes) {
        const seed = freshSeed();
        const logits = Array.from(randnArray(N * V, seed), (x) => (ties ? Math.round(x) : 2 * x));
        const xc = t64(logits, [N, V]);
        const xw = t64(logits, [N, V], be);
        for (const o of configs) {
          const [gc, gw] = [new Generator(seed), new Generator(seed)];
          const want: number[] = [];
          const got: number[] = [];
          for (let i = 0; i < 4; i++) {
            want.push(...await ints(sampleLogits(xc, { ...o, generator: gc })));
            poisonPool(be, N * 4);
            got.push(...await ints(sampleLogits(xw, { ...o, generator: gw })));
          }
          const msg = `sampleLogits [${N}, ${V}] ${JSON.stringify(o)} (seed ${seed}, ${threads})`;
          deepStrictEqual(got, want, msg);
        }
      }
    }
  }).finally(() => (be.ctx.threadLimit = Infinity));
  ok(calls >= 2 * shapes.length * 5 * 4, `sample_logits ran its wasm ${calls} times`);
});

Deno.test("sampling's float64 exp on wasm is within 1 ulp of Math.exp", async () => {
  const be = await wasm();
  const mod = be.ctx.module(...sampleModule());
  const n = 1 << 16;
  const [xp, yp] = [be.heap.alloc(8 * n), be.heap.alloc(8 * n)];
  const xs = be.heap.f64(xp, n);
  for (let i = 0; i < n; i++) xs[i] = -745 + (745.5 * i) / (n - 1) + (i % 3) * 1e-9;
  xs.set([0, -0, -1e-30, -Infinity, NaN, 1e-300, -745.2, 700], 0);
  be.ctx.run(mod, "exp", [n, xp, yp], 1);
  const [x, y] = [be.heap.f64(xp, n), be.heap.f64(yp, n)];
  let equal = 0;
  for (let i = 0; i < n; i++) {
    const want = Math.exp(x[i]);
    if (Object.is(y[i], want)) {
      equal++;
      continue;
    }
    const ulp = want === 0 ? 5e-324 : 2 ** (Math.floor(Math.log2(Math.abs(want))) - 52);
    ok(Math.abs(y[i] - want) <= Math.max(ulp, 5e-324), `exp(${x[i]}) = ${y[i]}, Math.exp ${want}`);
  }
  ok(equal > 0.8 * n, `${equal} of ${n} equal to Math.exp`);
  be.heap.free(xp);
  be.heap.free(yp);
});
