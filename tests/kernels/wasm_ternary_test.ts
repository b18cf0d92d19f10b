// The wasm ternary × int8 product against the CPU reference (kernels/ternary/gemm.ts) on the packed
// formats of kernels/ternary/format.ts: raw i32 accumulators equal bit for bit, and so do the
// dequantised f32 outputs (with and without bias), at odd N, K not a multiple of 16 (every tail of
// 1-3 words), several T (GEMV and the GEMM's token blocks), extreme activations (-128, 127), both
// integer paths (relaxed dot, extmul fallback) and 1 or 2 threads.

import { deepStrictEqual } from "node:assert/strict";
import type { CpuArg } from "../../engine/backend.ts";
import { Generator } from "../../engine/random.ts";
import { wasmArg, WasmBackend } from "../../engine/wasm/backend.ts";
import { KernelContext, type WasmArg } from "../../engine/wasm/context.ts";
import {
  int8RowWords,
  packInt8,
  packTernary,
  ternaryRowWords,
} from "../../kernels/ternary/format.ts";
import { type GemmParams, ternaryMatmulOp } from "../../kernels/ternary/gemm.ts";
import { type TernaryDims, ternaryWasm } from "../../kernels/ternary/wasm.ts";

const be = await WasmBackend.create({ threads: 2, idleMs: Infinity });
const plain = new KernelContext(be.heap, be.pool, { ...be.ctx.features, relaxedSimd: false });
const seed = Date.now() % 100000;

type Data = Uint32Array | Int32Array | Float32Array;

interface Case {
  cpu: Data[];
  wasm: WasmArg[];
}

function operands(T: number, N: number, K: number, raw: boolean, bias: boolean): Case {
  const gen = new Generator(seed + 1000 * T + 31 * N + K);
  const u = gen.uniform(N * K + T * K + T + N);
  const q = Array.from({ length: N * K }, (_, i) => Math.min(1, Math.floor(u[i] * 3) - 1));
  // int8 levels over the whole range, -128 and 127 included.
  const xq = Array.from({ length: T * K }, (_, i) => Math.floor(u[N * K + i] * 256) - 128);
  xq[0] = -128;
  xq[xq.length - 1] = 127;
  const sum = new Int32Array(T);
  xq.forEach((v, i) => (sum[Math.floor(i / K)] += v));
  const sx = Float32Array.from({ length: T }, (_, t) => 0.5 + 100 * u[N * K + T * K + t]);
  const b = Float32Array.from({ length: N }, (_, n) => u[N * K + T * K + T + n] - 0.5);
  const cpu: Data[] = [packTernary(q, N, K), packInt8(xq, T, K)];
  if (!raw) cpu.push(sx);
  cpu.push(sum);
  if (bias) cpu.push(b);
  const shapes = [
    [N, ternaryRowWords(K)],
    [T, int8RowWords(K)],
    ...cpu.slice(2).map((d) => [d.length]),
  ];
  const wasm = cpu.map((d, i) => {
    const ptr = be.heap.alloc(d.byteLength, "test input");
    new Uint32Array(be.heap.buffer, ptr, d.length).set(new Uint32Array(d.buffer));
    const dtype = d instanceof Float32Array ? "f32" : d instanceof Int32Array ? "i32" : "u32";
    return wasmArg(ptr, shapes[i], dtype);
  });
  return { cpu, wasm };
}

/** The wasm output and the CPU reference's, as raw bits. */
function run(
  ctx: KernelContext,
  T: number,
  N: number,
  K: number,
  raw: boolean,
  bias: boolean,
): [Uint32Array, Uint32Array] {
  const { cpu, wasm } = operands(T, N, K, raw, bias);
  const scale = Math.fround(0.75 + (seed % 7) / 8);
  const p: GemmParams & TernaryDims = {
    kind: T === 1 ? "gemv" : "gemm",
    raw,
    f64: false,
    bias,
    dot4: false,
    N,
    K,
    T,
    scale,
    rows: 4,
    tokens: 4,
    words: 1,
    wg: 64,
    tex: false,
  };
  const ref = raw ? new Int32Array(T * N) : new Float32Array(T * N);
  const args: CpuArg[] = cpu.map((data) => ({
    shape: [data.length],
    strides: [1],
    offset: 0,
    dtype: "f32",
    data,
  }));
  ternaryMatmulOp.cpu(args, [ref], p);
  const out = be.heap.alloc(4 * T * N + 64, "test output");
  be.heap.u32(out, T * N + 16).fill(0x7fc00bad); // poison
  ctx.scoped(() => ternaryWasm(wasm, [wasmArg(out, [T, N], raw ? "i32" : "f32")], p, ctx));
  const got = be.heap.u32(out, T * N + 16).slice();
  deepStrictEqual([...got.subarray(T * N)], new Array(16).fill(0x7fc00bad), "wrote past y");
  be.heap.free(out);
  for (const a of wasm) be.heap.free(a.ptr);
  return [got.subarray(0, T * N), new Uint32Array(ref.buffer)];
}

function check(ctx: KernelContext, T: number, N: number, K: number, raw: boolean, bias = false) {
  const [got, ref] = run(ctx, T, N, K, raw, bias);
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== ref[i]) {
      const view = (x: Uint32Array) =>
        raw
          ? new Int32Array(x.buffer, x.byteOffset)[i]
          : new Float32Array(x.buffer, x.byteOffset)[i];
      throw new Error(
        `ternary T ${T} N ${N} K ${K} raw ${raw} bias ${bias} seed ${seed}: [${
          Math.floor(i / N)
        }, ` +
          `${i % N}] is ${view(got)}, expected ${view(ref)}`,
      );
    }
  }
}

const KS = [1, 15, 16, 17, 47, 48, 64, 65, 100, 129, 300];

Deno.test("wasm ternary: i32 accumulators equal the reference exactly", () => {
  for (const ctx of [be.ctx, plain]) {
    for (const T of [1, 2, 3, 5]) {
      for (const N of [1, 3, 5, 17]) {
        for (const K of KS) check(ctx, T, N, K, true);
      }
    }
  }
});

Deno.test("wasm ternary: dequantised f32 outputs equal the reference's bits, with bias", () => {
  for (const [T, N, K] of [[1, 33, 65], [1, 7, 300], [4, 9, 129], [17, 13, 47], [2, 64, 2048]]) {
    check(be.ctx, T, N, K, false, false);
    check(be.ctx, T, N, K, false, true);
  }
});

Deno.test("wasm ternary: 1 and 2 threads give identical bytes", () => {
  for (const [T, N, K] of [[1, 1001, 260], [9, 203, 300]]) {
    be.ctx.threadLimit = 1;
    const [one] = run(be.ctx, T, N, K, false, true);
    be.ctx.threadLimit = 2;
    const [two, ref] = run(be.ctx, T, N, K, false, true);
    deepStrictEqual(two, one);
    deepStrictEqual(two, ref);
  }
});

Deno.test("wasm ternary: dispose the test backend", () => {
  plain.dispose();
  be.dispose();
});
