// Ternary × int8 GEMV/GEMM: the integer accumulators equal an unpacked-integer CPU reference
// exactly (CPU kernel, and WebGPU with dot4I8Packed and with the plain-integer fallback, each with
// the adapter's tiles, the other adapter class's tiles and odd ones) on odd and on random shapes;
// the dequantised output matches a float64 fake-quant forward to 1e-4 relative.

import { ok, strictEqual, throws } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import { fromArray } from "../../engine/creation.ts";
import { ShapeError } from "../../engine/errors.ts";
import {
  packTernary,
  quantizeTernary,
  ternaryRowWords,
  unpackInt8,
} from "../../kernels/ternary/format.ts";
import { roundHalfEven } from "../../kernels/elementwise/unary.ts";
import { packActivations } from "../../kernels/ternary/quant.ts";
import {
  hasDot4I8,
  ternaryAccumulate,
  type TernaryConfig,
  ternaryConfig,
  ternaryConfigFor,
  ternaryGemm,
  ternaryGemv,
  type TernaryWeights,
} from "../../kernels/ternary/gemm.ts";
import { Generator } from "../../engine/random.ts";
import { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { cpu, freshSeed, gpu, hasWebGPU, randnArray } from "../util.ts";

// K = 64 and 192 allow vec4 weight loads (ceil(K/16) % 4 == 0), 17 and 100 vec2 ones (% 2 == 0);
// the others load single words.
// 256 and 1024: activations (and at 1024 weights too) staged by copy on adapters with textures.
const INS = [1, 15, 16, 17, 100, 64, 192, 256, 1024];
const OUTS = [1, 3, 17, 65];

/** Is v within 1e-3 of a rounding tie (k + 0.5)? */
const nearTie = (v: number) => Math.abs(Math.abs(v - Math.trunc(v)) - 0.5) < 1e-3;

/** One token's float64 fake-quant: y = RMSNorm(x)·g, s = 127 / max|y|; returns y·s and s. */
function scaledActivations(x: ArrayLike<number>, g: ArrayLike<number>) {
  const K = x.length;
  let ss = 0;
  for (let k = 0; k < K; k++) ss += x[k] * x[k];
  const r = 1 / Math.sqrt(ss / K + 1e-6);
  const y = Array.from(x, (v, k) => v * r * g[k]);
  const s = 127 / Math.max(Math.max(...y.map(Math.abs)), 1e-5);
  return { ys: y.map((v) => v * s), s };
}

/**
 * A random layer: latent weight [N, K], norm weight [K], bias [N], input x [T, K]. Values whose
 * quantiser input lands within 1e-3 of a rounding tie are nudged: there f32 (the kernels) and
 * float64 (the reference) may round to neighbouring integers, which is not an error.
 */
function layer(T: number, N: number, K: number, seed: number) {
  const L = {
    w: randnArray(N * K, seed),
    g: Float64Array.from(randnArray(K, seed + 1), (v) => 1 + 0.3 * v),
    b: randnArray(N, seed + 2),
    x: randnArray(T * K, seed + 3),
  };
  for (let again = true; again;) {
    again = false;
    const sw = 1 / (L.w.reduce((a, v) => a + Math.abs(v), 0) / L.w.length);
    L.w.forEach((v, i) => nearTie(v * sw) && (again = true) && (L.w[i] = v * 1.01));
    for (let t = 0; t < T; t++) {
      const row = L.x.subarray(t * K, (t + 1) * K);
      scaledActivations(row, L.g).ys.forEach((v, k) =>
        nearTie(v) && (again = true) && (row[k] *= 1.01)
      );
    }
  }
  return L;
}

function upload(backend: Backend, w: ArrayLike<number>, N: number, K: number): TernaryWeights {
  const { q, scale } = quantizeTernary(w);
  const packed = fromArray(packTernary(q, N, K), [N, ternaryRowWords(K)], { backend });
  return { packed, scale, outFeatures: N, inFeatures: K };
}

function f32(backend: Backend, v: ArrayLike<number>, shape: number[]) {
  return fromArray(Float32Array.from(v), shape, { backend });
}

/** acc[t, n] = Σ_k q[n, k]·x_q[t, k] from unpacked integers (independent of the packing trick). */
function integerReference(q: Int8Array, xq: Int8Array, T: number, N: number, K: number) {
  const acc = new Int32Array(T * N);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += q[n * K + k] * xq[t * K + k];
      acc[t * N + n] = s;
    }
  }
  return acc;
}

/** Tiles unlike any default (ragged edges hit another way), weight loads of other widths. */
function oddTiles(backend: Backend): Partial<TernaryConfig> {
  const d = ternaryConfig(backend);
  return {
    gemvRows: 3,
    gemmRows: 2,
    gemmTokens: 3,
    gemvWords: d.gemvWords === 4 ? 1 : 4,
    gemmWords: d.gemmWords === 4 ? 2 : 4,
    gemmWg: 8,
  };
}

/** The tiles of the other adapter class (software on a GPU, GPU on a software adapter). */
function otherTiles(backend: Backend): Partial<TernaryConfig> {
  const software = backend instanceof WebGpuBackend && backend.ctx.isFallback;
  const { dot4: _, ...tiles } = ternaryConfigFor({ isFallback: !software, hasDot4I8: false });
  return tiles;
}

/** A software adapter's tiles where it has no read-only storage textures. */
const bufferTiles = ternaryConfigFor({ isFallback: true, hasDot4I8: false });

/** The kernels to check on a backend: both WGSL paths, each with four tilings on WebGPU. */
function paths(backend: Backend, T: number) {
  const kernels = T === 1 ? ["gemv", "gemm"] as const : ["gemm"] as const;
  const variants: { label: string; dot4?: boolean; config?: Partial<TernaryConfig> }[] = [];
  if (backend.name !== "webgpu") variants.push({ label: "" });
  else {
    for (const dot4 of hasDot4I8(backend) ? [true, false] : [false]) {
      const label = dot4 ? "dot4" : "fallback";
      variants.push(
        { label, dot4 },
        { label: `${label} odd tiles`, dot4, config: oddTiles(backend) },
        { label: `${label} other adapter's tiles`, dot4, config: otherTiles(backend) },
        { label: `${label} software tiles on buffers`, dot4, config: bufferTiles },
      );
    }
  }
  return kernels.flatMap((kernel) => variants.map((v) => ({ ...v, kernel })));
}

async function checkExact(backend: Backend, seed: number) {
  let cases = 0;
  for (const K of INS) {
    for (const N of OUTS) {
      // Every product of this (K, N) is issued first and read back together: one round trip.
      const pending: { got: Promise<ArrayLike<number>>; want: Int32Array; msg: string }[] = [];
      for (const T of [1, 5, 17]) {
        const L = layer(T, N, K, seed + 100 * K + N + T);
        const W = upload(backend, L.w, N, K);
        const xa = packActivations(f32(backend, L.x, [T, K]), f32(backend, L.g, [K]));
        const xq = unpackInt8(await xa.data.data() as Uint32Array, T, K);
        const want = integerReference(quantizeTernary(L.w).q, xq, T, N, K);
        for (const { label, kernel, dot4, config } of paths(backend, T)) {
          const got = ternaryAccumulate(W, xa, { kernel, dot4, config }).data();
          const msg = `${backend.name} ${kernel} ${label} T=${T} N=${N} K=${K} seed ${seed}`;
          pending.push({ got, want, msg });
        }
      }
      for (const { got, want, msg } of pending) {
        const g = await got;
        strictEqual(g.length, want.length, msg);
        for (let i = 0; i < want.length; i++) strictEqual(g[i], want[i], `${msg} at ${i}`);
        cases++;
      }
    }
  }
  ok(cases >= INS.length * OUTS.length * 3, `${cases} cases`);
}

/** Random shapes: K (not a multiple of 16) up to 300, N odd up to 599, T from 1, 3, 17, 65. */
function randomShapes(seed: number, count: number): [number, number, number][] {
  const u = new Generator(seed).uniform(3 * count);
  return Array.from({ length: count }, (_, i) => {
    const K = 1 + Math.floor(u[3 * i] * 300);
    return [
      [1, 3, 17, 65][Math.floor(u[3 * i + 2] * 4)],
      2 * Math.floor(u[3 * i + 1] * 300) + 1,
      K % 16 === 0 ? K + 1 : K,
    ];
  });
}

/** Exact integer sums of every path on random shapes (several row and token tiles, ragged). */
async function checkRandomShapes(backend: Backend, seed: number) {
  const shapes = randomShapes(seed, 6);
  const pending: { got: Promise<ArrayLike<number>>; want: Int32Array; msg: string }[] = [];
  for (const [T, N, K] of shapes) {
    const L = layer(T, N, K, seed + 7 * N + K + T);
    const W = upload(backend, L.w, N, K);
    const xa = packActivations(f32(backend, L.x, [T, K]), f32(backend, L.g, [K]));
    const xq = unpackInt8(await xa.data.data() as Uint32Array, T, K);
    const want = integerReference(quantizeTernary(L.w).q, xq, T, N, K);
    for (const { label, kernel, dot4, config } of paths(backend, T)) {
      const got = ternaryAccumulate(W, xa, { kernel, dot4, config }).data();
      pending.push({ got, want, msg: `${kernel} ${label} T=${T} N=${N} K=${K} seed ${seed}` });
    }
  }
  for (const { got, want, msg } of pending) {
    const g = await got;
    strictEqual(g.length, want.length, msg);
    for (let i = 0; i < want.length; i++) strictEqual(g[i], want[i], `${msg} at ${i}`);
  }
  ok(pending.length >= shapes.length, `${pending.length} cases`);
}

Deno.test("ternaryAccumulate on the cpu backend equals the integer reference exactly", async () => {
  await checkExact(cpu, freshSeed());
});

Deno.test({
  name: "ternaryAccumulate on WebGPU (dot4I8Packed and fallback) equals the CPU exactly",
  ignore: !hasWebGPU,
  async fn() {
    await checkExact(await gpu(), freshSeed());
  },
});

Deno.test("ternaryAccumulate on the cpu backend is exact on random odd shapes", async () => {
  await checkRandomShapes(cpu, freshSeed());
});

Deno.test({
  name: "ternaryAccumulate on WebGPU (every path and tiling) is exact on random odd shapes",
  ignore: !hasWebGPU,
  async fn() {
    await checkRandomShapes(await gpu(), freshSeed());
  },
});

/** Float64 fake-quant forward: RMSNorm → int8 quantise → dequantise, ternary w, matmul, bias. */
function fakeQuantForward(L: ReturnType<typeof layer>, T: number, N: number, K: number) {
  const mean = L.w.reduce((a, v) => a + Math.abs(v), 0) / L.w.length;
  const sw = 1 / Math.max(mean, 1e-5);
  const wd = Array.from(L.w, (v) => Math.max(-1, Math.min(1, roundHalfEven(v * sw))) / sw);
  const y = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    const x = L.x.subarray(t * K, (t + 1) * K);
    const { ys, s: sx } = scaledActivations(x, L.g);
    const xd = ys.map((v) => Math.max(-128, Math.min(127, roundHalfEven(v))) / sx);
    for (let n = 0; n < N; n++) {
      let s = L.b[n];
      for (let k = 0; k < K; k++) s += wd[n * K + k] * xd[k];
      y[t * N + n] = s;
    }
  }
  return y;
}

/** max_n |got − want| / max_n |want| per token row must stay under `tol`. */
function assertRowsClose(got: ArrayLike<number>, want: ArrayLike<number>, N: number, msg: string) {
  for (let t = 0; t < want.length / N; t++) {
    let err = 0;
    let mag = 0;
    for (let n = t * N; n < (t + 1) * N; n++) {
      err = Math.max(err, Math.abs(got[n] - want[n]));
      mag = Math.max(mag, Math.abs(want[n]));
    }
    ok(err <= 1e-4 * mag, `${msg} row ${t}: max err ${err} vs max |y| ${mag}`);
  }
}

async function checkDequantised(backend: Backend, seed: number) {
  const shapes = [[1, 17, 100], [1, 65, 17], [1, 3, 192], [4, 3, 15], [5, 65, 100], [9, 17, 64]];
  for (const [T, N, K] of shapes) {
    const L = layer(T, N, K, seed + 7 * N + K + T);
    const want = fakeQuantForward(L, T, N, K);
    const W = upload(backend, L.w, N, K);
    const xa = packActivations(f32(backend, L.x, [T, K]), f32(backend, L.g, [K]));
    const bias = f32(backend, L.b, [N]);
    const ys = paths(backend, T).map(({ label, kernel, dot4, config }) => {
      const f = kernel === "gemv" ? ternaryGemv : ternaryGemm;
      const y = f(W, xa, { bias, dot4, config });
      strictEqual(y.dtype, "f32");
      return { msg: `${backend.name} ${kernel} ${label} T=${T} N=${N} K=${K} seed ${seed}`, y };
    });
    const got = await Promise.all(ys.map(({ y }) => y.data()));
    ys.forEach(({ msg }, i) => assertRowsClose(got[i], want, N, msg));
  }
}

Deno.test("dequantised ternary output on cpu matches float64 fake-quant to 1e-4", async () => {
  await checkDequantised(cpu, freshSeed());
});

Deno.test({
  name: "dequantised ternary output on WebGPU (both paths) matches float64 fake-quant to 1e-4",
  ignore: !hasWebGPU,
  async fn() {
    await checkDequantised(await gpu(), freshSeed());
  },
});

Deno.test("ternary products reject mismatched shapes, naming the op", () => {
  const W = upload(cpu, randnArray(3 * 20, 1), 3, 20);
  const xa = packActivations(
    f32(cpu, randnArray(2 * 20, 2), [2, 20]),
    f32(cpu, new Float32Array(20).fill(1), [20]),
  );
  throws(() => ternaryGemv(W, xa), /ternaryGemv: GEMV takes one token, got 2; use ternaryGemm/);
  throws(() => ternaryGemm(W, xa, { bias: f32(cpu, [1, 2], [2]) }), ShapeError);
  const x7 = packActivations(
    f32(cpu, randnArray(7, 3), [1, 7]),
    f32(cpu, new Float32Array(7), [7]),
  );
  throws(() => ternaryGemm(W, x7), /ternaryGemm: activations have 7 features, weight \[3, 20\]/);
  const bad = {
    ...W,
    packed: fromArray(new Uint32Array(6), [3, 2], { backend: cpu }),
    inFeatures: 40,
  };
  throws(() => ternaryAccumulate(bad, xa), /packed weight is u32 \[3, 2\], expected u32 \[3, 3\]/);
});

Deno.test({
  name: "ternary GEMM with a side over the texture limit runs on buffers, still exact",
  ignore: !hasWebGPU,
  async fn() {
    const backend = await gpu();
    if (!(backend instanceof WebGpuBackend) || !backend.ctx.textures) return;
    // N rows = the limit itself: its staged side (never a power of two) would be one over.
    const [T, N, K] = [2, backend.ctx.textures.side, 16];
    const L = layer(T, N, K, freshSeed());
    const W = upload(backend, L.w, N, K);
    const xa = packActivations(f32(backend, L.x, [T, K]), f32(backend, L.g, [K]));
    const xq = unpackInt8(await xa.data.data() as Uint32Array, T, K);
    const want = integerReference(quantizeTernary(L.w).q, xq, T, N, K);
    const got = await ternaryAccumulate(W, xa, { kernel: "gemm" }).data();
    for (let i = 0; i < want.length; i++) strictEqual(got[i], want[i], `at ${i}`);
  },
});
