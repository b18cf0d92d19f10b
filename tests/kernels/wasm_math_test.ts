// The wasm row kernels' vector math (kernels/rows/wasm_math.ts): exp and log against float64
// Math.exp / Math.log in ulps of the f32 result over sweeps of their ranges, their special
// values, with and without relaxed SIMD; row loops with partial last vectors; thread shares.

import { deepStrictEqual, ok } from "node:assert/strict";
import { RowGen } from "../../kernels/rows/wasm_math.ts";
import { wasm } from "../util.ts";

const be = await wasm();

type Fn = "exp" | "exp_unbounded" | "log";

/** A module with exp(x, y, n) and log(x, y, n) over f32 arrays, plain or relaxed SIMD. */
function mathModule(relaxed: boolean) {
  return be.ctx.module(`test|row-math|${relaxed}`, (b) => {
    for (const fn of ["exp", "exp_unbounded", "log"] as const) {
      b.export(fn, ["i32", "i32", "i32", "i32", "i32"], [], (f) => {
        const [, , x, y, n] = f.params;
        const g = new RowGen(f, relaxed);
        g.row(n, (o, tail) => {
          g.load(x, o, tail);
          if (fn === "log") g.log();
          else g.exp(fn === "exp");
          g.store(y, o, tail);
        });
      });
    }
  });
}

/** |got − want| in ulps of the f32 nearest to want. */
function ulps(got: number, want: number): number {
  const w = Math.fround(want);
  if (got === w || (Number.isNaN(got) && Number.isNaN(w))) return 0;
  if (!Number.isFinite(w) || !Number.isFinite(got)) return Infinity;
  const e = Math.max(Math.floor(Math.log2(Math.abs(w))), -126);
  return Math.abs(got - want) / 2 ** (e - 23);
}

/** Apply `fn` in wasm to `xs`; return the results. */
function run(relaxed: boolean, fn: Fn, xs: ArrayLike<number>): Float32Array {
  const n = xs.length;
  const [xp, yp] = [be.heap.alloc(4 * n + 4), be.heap.alloc(4 * n + 4)];
  be.heap.f32(xp, n).set(xs);
  be.ctx.run(mathModule(relaxed), fn, [xp, yp, n], 1);
  const y = be.heap.f32(yp, n).slice();
  be.heap.free(xp);
  be.heap.free(yp);
  return y;
}

/** The largest ulp error of `fn` over `xs` against `ref`. */
function worst(relaxed: boolean, fn: Fn, xs: Float32Array, ref: (x: number) => number) {
  const y = run(relaxed, fn, xs);
  let max = 0;
  for (let i = 0; i < xs.length; i++) max = Math.max(max, ulps(y[i], ref(xs[i])));
  return max;
}

const sweep = (n: number, at: (t: number) => number) =>
  Float32Array.from({ length: n }, (_, i) => at(i / (n - 1)));

for (const relaxed of [false, true]) {
  const tag = relaxed ? "relaxed SIMD" : "SIMD128";
  Deno.test(`wasm exp is within 1 ulp of Math.exp (${tag})`, () => {
    for (
      const xs of [
        sweep(1 << 20, (t) => -87.3 + 175.67 * t),
        sweep(1 << 20, (t) => -2 * t), // softmax's x − max
        sweep(1 << 16, (t) => -1e-3 + 2e-3 * t),
      ]
    ) {
      for (const fn of ["exp", "exp_unbounded"] as const) {
        const e = worst(relaxed, fn, xs, Math.exp);
        ok(e <= 1, `${fn}: ${e} ulp`);
      }
    }
  });

  Deno.test(`wasm log is within 1 ulp of Math.log (${tag})`, () => {
    for (
      const xs of [
        sweep(1 << 20, (t) => Math.exp(-69 + 138 * t)),
        sweep(1 << 20, (t) => 1 + 131071 * t), // a softmax sum
      ]
    ) {
      const e = worst(relaxed, "log", xs, Math.log);
      ok(e <= 1, `log: ${e} ulp`);
    }
  });

  Deno.test(`wasm exp and log special values (${tag})`, () => {
    const ex = [-Infinity, Infinity, NaN, 88.72283935546875, 89, -87.4, -1000, 0, -0];
    deepStrictEqual([...run(relaxed, "exp", ex)], [
      0,
      Infinity,
      NaN,
      Infinity,
      Infinity,
      0,
      0,
      1,
      1,
    ]);
    const lx = [0, -0, -1, NaN, Infinity, -Infinity, 1e-40, 1, 2];
    const got = [...run(relaxed, "log", lx)];
    deepStrictEqual(got.slice(0, 8), [-Infinity, -Infinity, NaN, NaN, Infinity, NaN, -Infinity, 0]);
    deepStrictEqual(got[8], Math.fround(Math.LN2));
  });
}

Deno.test("wasm row loops: every length's tail is read and written, nothing past it", () => {
  for (let n = 0; n <= 13; n++) {
    const xs = Float32Array.from({ length: n }, (_, i) => -i / 4);
    const [xp, yp] = [be.heap.alloc(64), be.heap.alloc(64)];
    be.heap.f32(xp, n).set(xs);
    be.heap.f32(yp, 16).fill(7);
    be.ctx.run(mathModule(false), "exp", [xp, yp, n], 1);
    const y = be.heap.f32(yp, 16);
    for (let i = 0; i < 16; i++) {
      const want = i < n ? Math.fround(Math.exp(xs[i])) : 7;
      ok(ulps(y[i], i < n ? Math.exp(xs[i]) : 7) <= 1, `n ${n}, [${i}]: ${y[i]} vs ${want}`);
    }
    be.heap.free(xp);
    be.heap.free(yp);
  }
});
