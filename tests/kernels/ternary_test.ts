// Packed ternary/int8 formats and the CPU references of kernels/ternary/format.ts: round trips, the
// documented bit layout, absmean and absmax quantisers against independent float64 definitions,
// and the activation quantiser kernel on WebGPU and wasm against the CPU (bytes and sums exact;
// on wasm the scales too, on 1 and 2 threads).

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { Generator } from "../../engine/random.ts";
import { fromArray } from "../../engine/creation.ts";
import {
  absmeanScale,
  int8RowWords,
  packInt8,
  packTernary,
  quantizeActivationsCpu,
  quantizeTernary,
  ternaryRowWords,
  unpackInt8,
  unpackTernary,
} from "../../kernels/ternary/format.ts";
import { roundHalfEven } from "../../kernels/elementwise/unary.ts";
import { packActivations } from "../../kernels/ternary/quant.ts";
import { assertClose, cpu, freshSeed, gpu, hasWebGPU, randnArray, wasm } from "../util.ts";

/** Random values in {-1, 0, 1}. */
function randomTernary(n: number, seed: number): Int8Array {
  const u = new Generator(seed).uniform(n);
  return Int8Array.from(u, (v) => Math.floor(v * 3) - 1);
}

Deno.test("packTernary/unpackTernary round trip on odd shapes", () => {
  const seed = freshSeed();
  for (const [N, K] of [[1, 1], [3, 15], [2, 16], [5, 17], [4, 100], [1, 0]]) {
    const q = randomTernary(N * K, seed + K);
    const packed = packTernary(q, N, K);
    strictEqual(packed.length, N * ternaryRowWords(K), `[${N}, ${K}] words`);
    deepStrictEqual(unpackTernary(packed, N, K), q, `[${N}, ${K}] seed ${seed}`);
  }
});

Deno.test("packTernary layout: code q+1, value 4g+b of a word at bits 8b+2g, padding q=0", () => {
  // Row of 17: value 0 = +1, value 5 (g=1, b=1) = -1, value 16 (next word, g=0, b=0) = +1.
  const q = new Array(17).fill(0);
  q[0] = 1;
  q[5] = -1;
  q[16] = 1;
  const [w0, w1] = packTernary(q, 1, 17);
  const zeros = 0x55555555; // every code 0b01
  strictEqual(w0, ((zeros & ~(3 << 0) & ~(3 << 10)) | (2 << 0) | (0 << 10)) >>> 0);
  strictEqual(w1, ((zeros & ~3) | 2) >>> 0);
  // (word >> 2g) & 0x03030303 lists values 4g..4g+3 as bytes: the i8x4 lanes of dot4I8Packed.
  strictEqual((w0 >>> 2) & 0x03030303, 0x01010001); // values 4..7: 0, -1, 0, 0 -> codes 1,0,1,1
  throws(() => packTernary([2], 1, 1), /value 2 at \[0, 0\] is not -1, 0 or \+1/);
  throws(() => packTernary([1, 0], 1, 3), /packTernary: 2 values do not fill \[1, 3\]/);
  throws(() => unpackTernary(new Uint32Array([0xffffffff]), 1, 1), /invalid code 0b11/);
});

Deno.test("packInt8/unpackInt8 round trip: little-endian two's complement bytes", () => {
  const q = Int8Array.from([-128, 127, -1, 0, 5, -7, 1]);
  const packed = packInt8(q, 1, 7);
  strictEqual(packed.length, int8RowWords(7)); // padded to 16 values: 4 words
  strictEqual(packed[0], 0xff7f80 | (0 << 24));
  strictEqual(packed[1], (0xf9 << 8 | 5 | 1 << 16) >>> 0);
  strictEqual(packed[2], 0);
  deepStrictEqual(unpackInt8(packed, 1, 7), q);
  const seed = freshSeed();
  const r = Int8Array.from(new Generator(seed).uniform(3 * 33), (v) => Math.floor(v * 256) - 128);
  deepStrictEqual(unpackInt8(packInt8(r, 3, 33), 3, 33), r, `seed ${seed}`);
});

Deno.test("roundHalfEven and quantizeTernary follow absmean with banker's rounding", () => {
  deepStrictEqual([0.5, 1.5, 2.5, -0.5, -1.5, 0.49].map(roundHalfEven), [0, 2, 2, -0, -2, 0]);
  // mean|w| = 0.5: s_w = 2; w·s_w = [0.5, -1, 3, -0.5, 0.2, -0.8] -> round half even, clamp.
  const w = [0.25, -0.5, 1.5, -0.25, 0.1, -0.4];
  strictEqual(absmeanScale(w), 2);
  const { q, scale } = quantizeTernary(w);
  strictEqual(scale, 2);
  deepStrictEqual([...q], [0, -1, 1, 0, 0, -1]);
  strictEqual(quantizeTernary([0, 0]).scale, Math.fround(1e5)); // mean clamped at 1e-5
});

/** Independent float64 definition: RMSNorm(x)·g, s = 127 / max(max|y|, 1e-5), round, clamp. */
function fakeQuantRow(x: ArrayLike<number>, g: ArrayLike<number>, eps = 1e-6) {
  const K = x.length;
  let ss = 0;
  for (let k = 0; k < K; k++) ss += x[k] * x[k];
  const r = 1 / Math.sqrt(ss / K + eps);
  const y = Array.from(x, (v, k) => v * r * g[k]);
  const s = 127 / Math.max(Math.max(...y.map(Math.abs)), 1e-5);
  return { y, s, q: y.map((v) => Math.max(-128, Math.min(127, roundHalfEven(v * s))) + 0) };
}

Deno.test("quantizeActivationsCpu matches the float64 definition (RMSNorm, absmax, round)", () => {
  const seed = freshSeed();
  for (const [T, K] of [[1, 1], [3, 17], [2, 100], [4, 300]]) {
    const x = randnArray(T * K, seed + K);
    const g = randnArray(K, seed + K + 1);
    const got = quantizeActivationsCpu(x, g, T, K);
    const bytes = unpackInt8(got.packed, T, K);
    for (let t = 0; t < T; t++) {
      const ref = fakeQuantRow(x.subarray(t * K, (t + 1) * K), g);
      assertClose([got.scale[t]], [ref.s], { atol: 0, rtol: 1e-6, msg: `scale t=${t}` });
      let sum = 0;
      for (let k = 0; k < K; k++) {
        const v = ref.y[k] * ref.s;
        const nearTie = Math.abs(Math.abs(v % 1) - 0.5) < 1e-4;
        if (!nearTie) strictEqual(bytes[t * K + k], ref.q[k], `[${t}, ${k}] seed ${seed}`);
        sum += bytes[t * K + k];
      }
      strictEqual(got.sum[t], sum);
      ok(bytes.subarray(t * K, (t + 1) * K).some((b) => Math.abs(b) === 127), "absmax -> ±127");
    }
  }
  // An all-zero token: scale 127 / 1e-5, bytes 0; a tiny one uses the clamped scale too.
  const z = quantizeActivationsCpu([0, 0, 0, 1e-12, 0, 0], [1, 1, 1], 2, 3);
  strictEqual(z.scale[0], Math.fround(127 / Math.fround(1e-5)));
  deepStrictEqual([...unpackInt8(z.packed, 2, 3)], [0, 0, 0, 0, 0, 0]);
});

Deno.test({
  name: "packActivations on WebGPU equals the CPU quantiser (bytes, sums exact; scales)",
  ignore: !hasWebGPU,
  async fn() {
    const backend = await gpu();
    const seed = freshSeed();
    for (const [T, K] of [[1, 1], [1, 15], [3, 16], [2, 17], [5, 100], [2, 333], [1, 2048]]) {
      const x = Float32Array.from(randnArray(T * K, seed + K), (v, i) => (i % 7 === 0 ? 3 * v : v));
      const g = Float32Array.from(randnArray(K, seed + 2 * K + 1));
      const ref = quantizeActivationsCpu(x, g, T, K);
      for (const b of [backend, cpu]) {
        const xa = packActivations(
          fromArray(x, [T, K], { backend: b }),
          fromArray(g, [K], { backend: b }),
        );
        const msg = `${b.name} [${T}, ${K}] seed ${seed}`;
        deepStrictEqual(await xa.data.data(), ref.packed, `${msg} bytes`);
        deepStrictEqual(await xa.sum.data(), ref.sum, `${msg} sums`);
        assertClose(await xa.scale.data(), ref.scale, {
          atol: 0,
          rtol: 2e-7,
          msg: `${msg} scales`,
        });
      }
    }
  },
});

Deno.test("packActivations on wasm equals the CPU quantiser exactly (bytes, sums, scales)", async () => {
  const be = await wasm();
  const seed = freshSeed();
  for (const threads of [2, 1]) {
    be.ctx.threadLimit = threads;
    try {
      for (const [T, K] of [[1, 1], [1, 15], [3, 16], [2, 17], [5, 100], [2, 333], [1, 2048]]) {
        const x = Float32Array.from(randnArray(T * K, seed + K), (v, i) => (i % 7 ? v : 3 * v));
        const g = Float32Array.from(randnArray(K, seed + 2 * K + 1));
        const ref = quantizeActivationsCpu(x, g, T, K);
        const xa = packActivations(
          fromArray(x, [T, K], { backend: be }),
          fromArray(g, [K], { backend: be }),
        );
        const msg = `wasm [${T}, ${K}] seed ${seed}, ${threads} thread(s)`;
        deepStrictEqual(await xa.data.data(), ref.packed, `${msg} bytes`);
        deepStrictEqual(await xa.sum.data(), ref.sum, `${msg} sums`);
        deepStrictEqual(await xa.scale.data(), ref.scale, `${msg} scales`);
      }
    } finally {
      be.ctx.threadLimit = Infinity;
    }
  }
});

Deno.test("packActivations: shapes, leading dims and errors", async () => {
  const x = fromArray(Float32Array.from(randnArray(2 * 3 * 5, 7)), [2, 3, 5], { backend: cpu });
  const g = fromArray(new Float32Array(5).fill(1), [5], { backend: cpu });
  const xa = packActivations(x, g);
  strictEqual(xa.tokens, 6);
  deepStrictEqual(xa.data.shape, [6, int8RowWords(5)]);
  const ref = quantizeActivationsCpu(await x.data(), await g.data(), 6, 5);
  deepStrictEqual(await xa.data.data(), ref.packed);
  const g4 = fromArray(new Float32Array(4), [4], { backend: cpu });
  throws(() => packActivations(x, g4), /packActivations: x is \[2, 3, 5\], normWeight is \[4\]/);
});
