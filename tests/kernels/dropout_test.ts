// dropout: identity when off, the mask defined by the generator's uniforms, keep fraction,
// exact scaling, the same mask on CPU, WebGPU and wasm (one and two threads), and the backward
// reusing the mask.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { ones } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import type { Backend } from "../../engine/backend.ts";
import { dropout, sum, transpose } from "../../kernels/mod.ts";
import {
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
import { poisonPool } from "./gpu_helpers.ts";
import { splitSmall } from "./wasm_split.ts";

Deno.test("dropout is the identity when not training or p = 0", () => {
  const x = t64([1, 2, 3], [3]);
  strictEqual(dropout(x, 0.5, { training: false }), x);
  strictEqual(dropout(x, 0, { training: true }), x);
  throws(() => dropout(x, 1.5, { training: true }), /dropout: p must be in \[0, 1\], got 1.5/);
  throws(() => dropout(x, NaN, { training: true }), /dropout: p must be in \[0, 1\]/);
});

Deno.test("dropout keeps element i iff the stream's uniform i >= p, scaled exactly", async () => {
  const seed = freshSeed();
  const n = 10000;
  const p = 0.3;
  const x = t64(randnArray(n, seed), [n]);
  const xs = await values(x);
  const y = await values(dropout(x, p, { training: true, generator: new Generator(seed) }));
  const u = new Generator(seed).uniform(n); // the same counters, drawn independently
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const want = u[i] >= p ? xs[i] * (1 / (1 - p)) : 0;
    if (y[i] !== want) throw new Error(`seed ${seed}: element ${i} is ${y[i]}, expected ${want}`);
    if (u[i] >= p) kept++;
  }
  // Binomial(10000, 0.7): standard deviation 46; allow 5 of them.
  ok(Math.abs(kept - 7000) < 230, `kept ${kept} of ${n} (seed ${seed})`);
});

Deno.test("dropout advances the generator; p = 1 drops everything", async () => {
  const g = new Generator(5);
  const x = ones([64], { dtype: "f64", backend: cpu });
  const a = await values(dropout(x, 0.5, { training: true, generator: g }));
  strictEqual(g.offset, 64);
  const b = await values(dropout(x, 0.5, { training: true, generator: g }));
  ok(a.some((v, i) => v !== b[i]), "two draws gave the same mask");
  deepStrictEqual(Array.from(a).filter((v) => v !== 0 && v !== 2), []);
  deepStrictEqual(
    Array.from(await values(dropout(x, 1, { training: true }))),
    new Array(64).fill(0),
  );
});

Deno.test("dropout gradcheck and backward reuse the mask", async () => {
  const f = (x: Parameters<typeof dropout>[0]) =>
    dropout(x, 0.4, { training: true, generator: new Generator(11) });
  await gradCheck(f, [{ shape: [3, 5] }]);
  await gradCheck((x) => f(transpose(x)), [{ shape: [4, 1] }]);
  const x = ones([200], { dtype: "f64", backend: cpu, requiresGrad: true });
  const y = f(x);
  sum(y).backward();
  deepStrictEqual(await values(x.grad!), await values(y)); // d/dx of Σ mask·x/(1−p)
});

async function masks(b: Backend, n: number, seed: number, p: number) {
  const x = ones([n], { dtype: b.name === "cpu" ? "f64" : "f32", backend: b, requiresGrad: true });
  poisonPool(b, n * 4);
  const y = dropout(x, p, { training: true, generator: new Generator(seed) });
  poisonPool(b, n * 4);
  sum(y).backward();
  return { y: await values(y), dx: await values(x.grad!) };
}

Deno.test({
  name: "dropout webgpu: the same mask and scale as the cpu, forward and backward",
  ignore: !hasWebGPU,
  fn: async () => {
    const g = await gpu();
    for (const [n, p] of [[1, 0.5], [3, 0.5], [17, 0.1], [65, 0.9], [129, 0.25], [10000, 0.3]]) {
      const seed = freshSeed();
      const c = await masks(cpu, n, seed, p);
      const w = await masks(g, n, seed, p);
      const scale = Math.fround(1 / (1 - p));
      const want = Array.from(c.y, (v) => (v === 0 ? 0 : scale));
      deepStrictEqual(Array.from(w.y), want, `forward n=${n} p=${p} seed ${seed}`);
      deepStrictEqual(Array.from(w.dx), want, `backward n=${n} p=${p} seed ${seed}`);
    }
    // A generator offset past 2^32 exercises the counter's high word on both backends.
    const big = new Generator(9);
    big.offset = 2 ** 32 - 5;
    const big2 = new Generator(9);
    big2.offset = 2 ** 32 - 5;
    const xc = ones([17], { dtype: "f64", backend: cpu });
    const xg = ones([17], { backend: g });
    const yc = await values(dropout(xc, 0.5, { training: true, generator: big }));
    const yg = await values(dropout(xg, 0.5, { training: true, generator: big2 }));
    deepStrictEqual(Array.from(yg), Array.from(yc));
  },
});

Deno.test("dropout wasm: the cpu's mask bit for bit on 1 and 2 threads, forward and backward", () =>
  splitSmall(async () => {
    const be = await wasm();
    const cases = [[1, 0.5], [3, 0.5], [7, 0.1], [33, 0.9], [1000, 0.25], [50001, 0.3]];
    for (const [n, p] of cases) {
      const seed = freshSeed();
      const c = await masks(cpu, n, seed, p);
      const scale = Math.fround(1 / (1 - p));
      const want = Array.from(c.y, (v) => (v === 0 ? 0 : scale));
      for (const threads of [2, 1]) {
        be.ctx.threadLimit = threads;
        try {
          const w = await masks(be, n, seed, p);
          const at = `n=${n} p=${p} seed ${seed}, ${threads} thread(s)`;
          deepStrictEqual(Array.from(w.y), want, `forward ${at}`);
          deepStrictEqual(Array.from(w.dx), want, `backward ${at}`);
        } finally {
          be.ctx.threadLimit = Infinity;
        }
      }
    }
    // Counters crossing 2^32 (the high word's carry inside a vector) and far past it.
    for (const offset of [2 ** 32 - 5, 2 ** 40 + 3]) {
      const [a, b] = [new Generator(9), new Generator(9)];
      a.offset = b.offset = offset;
      const xc = t64(randnArray(37, 4), [37]);
      const xw = t64(randnArray(37, 4), [37], be);
      const yc = await values(dropout(xc, 0.5, { training: true, generator: a }));
      const yw = await values(dropout(xw, 0.5, { training: true, generator: b }));
      deepStrictEqual(yw.map((v) => (v === 0 ? 0 : 1)), yc.map((v) => (v === 0 ? 0 : 1)));
      yc.forEach((v, i) => ok(Math.abs(yw[i] - v) <= 1e-6 * Math.abs(v), `offset ${offset}: ${i}`));
    }
  }));
