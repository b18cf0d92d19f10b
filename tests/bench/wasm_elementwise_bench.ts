// µs per call of the elementwise-family kernels at baby GPT's shapes (batch 12 × block 64, n_embd
// 128, 4 heads, MLP 512) on the CPU reference backend (f32 tensors) and on wasm with 1 and 2
// threads: every case once per round, ROUNDS rounds, interleaved, so load from other processes on
// a shared machine hits all alike; the table gives the median round and the GB/s it moves. With
// --accuracy it prints instead the largest errors of the wasm transcendentals against float64
// over 2^20 points per range (relative errors where |result| ≥ the floor given, by default the
// smallest normal f32; the GELU derivatives cross zero, so theirs count from 1e-3).
// Run: deno run -A tests/bench/wasm_elementwise_bench.ts [--accuracy]
// (or deno bench -A tests/bench/wasm_elementwise_bench.ts for the Deno.bench cases of GELU)

import type { Backend } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { fromArray, full } from "../../engine/creation.ts";
import { cpuBackend } from "../../engine/device.ts";
import { Generator } from "../../engine/random.ts";
import { WasmBackend } from "../../engine/wasm/backend.ts";
import {
  add,
  causalFill,
  contiguous,
  dropout,
  exp,
  gelu,
  geluTanh,
  log,
  maskedFill,
  mul,
  narrow,
  padAxis,
  permute,
  reshape,
  scale,
  sigmoid,
  sum,
  tanh,
  transpose,
} from "../../kernels/mod.ts";
import { erfc64, geluBackwardOp } from "../../kernels/elementwise/gelu.ts";
import {
  geluTanh64,
  geluTanhBackwardOp,
  geluTanhGrad64,
} from "../../kernels/elementwise/gelu_tanh.ts";
import { adamwUpdate } from "../../kernels/adamw.ts";
import { apply } from "../../engine/op.ts";

const ROUNDS = 9;
const be = await WasmBackend.create({ threads: 2, idleMs: 5000 });
const cpu = cpuBackend();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

function rand(shape: number[], b: Backend, seed = 1): Tensor {
  const n = shape.reduce((a, c) => a * c, 1);
  return fromArray(Float32Array.from(new Generator(seed).normal(n)), shape, { backend: b });
}

/** One case: a name, the bytes it moves, and the call on a backend's inputs. */
interface Case {
  name: string;
  bytes: number;
  make(b: Backend): () => Tensor | void;
}

const MB = 4 * 12 * 64 * 128; // one [12, 64, 128] f32 tensor
const CASES: Case[] = [
  unary("gelu [12,64,512]", [12, 64, 512], gelu),
  {
    name: "gelu_backward [12,64,512]",
    bytes: 12 * MB,
    make: (b) => {
      const [dy, x] = [rand([12, 64, 512], b), rand([12, 64, 512], b, 2)];
      return () => apply(geluBackwardOp, [dy, x], undefined);
    },
  },
  unary("gelu_tanh [12,64,512]", [12, 64, 512], geluTanh),
  {
    name: "gelu_tanh_backward [12,64,512]",
    bytes: 12 * MB,
    make: (b) => {
      const [dy, x] = [rand([12, 64, 512], b), rand([12, 64, 512], b, 2)];
      return () => apply(geluTanhBackwardOp, [dy, x], undefined);
    },
  },
  unary("exp [12,64,512]", [12, 64, 512], exp),
  unary("tanh [12,64,512]", [12, 64, 512], tanh),
  unary("sigmoid [12,64,512]", [12, 64, 512], sigmoid),
  binary("add [12,64,128] + [12,64,128]", [12, 64, 128], [12, 64, 128], add),
  binary("add [12,64,512] + bias [512]", [12, 64, 512], [512], add),
  binary("mul [768,128] · [768,128]", [768, 128], [768, 128], mul),
  unary("mul gᵀ · gᵀ, g [128,512] (grad clipping)", [128, 512], (g) => {
    const t = transpose(g);
    return mul(t, t);
  }),
  unary("affine [12,4,64,64]", [12, 4, 64, 64], (x) => scale(x, 0.17)),
  {
    name: "copy q heads [12,64,4,32]→[12,4,64,32]",
    bytes: 2 * MB,
    make: (b) => {
      const qkv = rand([12, 64, 384], b);
      return () =>
        contiguous(permute(reshape(narrow(qkv, 2, 0, 128), [12, 64, 4, 32]), [0, 2, 1, 3]));
    },
  },
  unary("copy transpose [768,128]ᵀ", [768, 128], (x) => contiguous(transpose(x))),
  unary("pad_axis [12,64,128]→[12,64,384]", [12, 64, 128], (x) => padAxis(x, 2, 128, 384), 4),
  unary("causal_fill [12,4,64,64]", [12, 4, 64, 64], (x) => causalFill(x, -Infinity)),
  {
    name: "masked_fill [12,4,64,64] by [64,64]",
    bytes: 8 * MB,
    make: (b) => {
      const x = rand([12, 4, 64, 64], b);
      const m = rand([64, 64], b, 3);
      return () => maskedFill(x, m, -1e9);
    },
  },
  unary("dropout 0.1 [12,64,512]", [12, 64, 512], (x) => dropout(x, 0.1, { training: true })),
  unary("sum over rows [768,128]→[128]", [768, 128], (x) => sum(x, 0), 1),
  unary("sum of rows [128,768]→[128]", [128, 768], (x) => sum(x, 1), 1),
  {
    name: "adamw [512,128] (transposed grad)",
    bytes: 28 * 512 * 128,
    make: (b) => {
      const [p, m, v] = [0, 1, 2].map((k) => rand([512, 128], b, k + 5));
      const s = full([1], 1, { backend: b });
      const gT = transpose(rand([128, 512], b, 9));
      const hp = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 3 };
      return () => adamwUpdate(p, gT, m, v, s, hp);
    },
  },
];

function unary(name: string, shape: number[], f: (x: Tensor) => Tensor, outs = 1): Case {
  const n = shape.reduce((a, c) => a * c, 1);
  return {
    name,
    bytes: 4 * n * (1 + outs),
    make: (b) => {
      const x = rand(shape, b);
      return () => f(x);
    },
  };
}

function binary(
  name: string,
  a: number[],
  bShape: number[],
  f: (x: Tensor, y: Tensor) => Tensor,
): Case {
  const n = a.reduce((x, c) => x * c, 1);
  return {
    name,
    bytes: 4 * (2 * n + bShape.reduce((x, c) => x * c, 1)),
    make: (b) => {
      const [x, y] = [rand(a, b), rand(bShape, b, 2)];
      return () => f(x, y);
    },
  };
}

/** µs of one call (median of the round's calls), disposing results. */
function time(call: () => Tensor | void, calls: number): number {
  const ts: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    const y = call();
    ts.push(performance.now() - t0);
    if (y) y.dispose();
  }
  return 1000 * median(ts);
}

function speed(): void {
  const runs = [
    { label: "cpu", backend: cpu as Backend, threads: 1, calls: 1 },
    { label: "wasm 1", backend: be as Backend, threads: 1, calls: 15 },
    { label: "wasm 2", backend: be as Backend, threads: 2, calls: 15 },
  ];
  const table = CASES.map((c) => {
    const calls = runs.map((r) => c.make(r.backend));
    const us = runs.map(() => [] as number[]);
    for (let round = 0; round < ROUNDS; round++) {
      runs.forEach((r, k) => {
        be.ctx.threadLimit = r.threads;
        us[k].push(time(calls[k], round === 0 ? 3 : r.calls));
      });
    }
    be.ctx.threadLimit = Infinity;
    const med = us.map((u) => median(u.slice(1)));
    const gbs = (c.bytes / (med[2] * 1e3)).toFixed(1);
    return `| ${c.name} | ${med.map((m) => m.toFixed(m < 100 ? 1 : 0)).join(" | ")} | ${gbs} |`;
  });
  console.log(`\nµs per call (median of ${ROUNDS - 1} rounds), ${be.describe()}`);
  console.log("| kernel | cpu | wasm 1 thread | wasm 2 threads | GB/s (2 threads) |");
  console.log("| --- | --- | --- | --- | --- |");
  console.log(table.join("\n"));
  console.log(`${be.pool.takenBack} worker shares taken back by the calling thread`);
}

/** Largest errors of f (on wasm, f32) against ref (float64) over n points of [lo, hi]. */
async function errors(
  f: (x: Tensor) => Tensor,
  ref: (x: number) => number,
  lo: number,
  hi: number,
  logScale = false,
  floor = 1.2e-38,
): Promise<string> {
  const n = 1 << 20;
  const xs = Float32Array.from(
    { length: n },
    (_, i) =>
      logScale
        ? Math.exp(Math.log(lo) + (Math.log(hi) - Math.log(lo)) * i / n)
        : lo + (hi - lo) * i / n,
  );
  const got = await f(fromArray(xs, [n], { backend: be })).data();
  let [abs, rel, ulps] = [0, 0, 0];
  const bits = new Float32Array(1);
  const word = new Uint32Array(bits.buffer);
  for (let i = 0; i < n; i++) {
    const want = ref(xs[i]);
    const err = Math.abs(got[i] - want);
    abs = Math.max(abs, err);
    if (!(Math.abs(want) >= floor)) continue;
    bits[0] = Math.abs(want);
    word[0]++;
    const ulp = bits[0] - Math.fround(Math.abs(want)) || 1.4e-45;
    rel = Math.max(rel, err / Math.abs(want));
    ulps = Math.max(ulps, err / ulp);
  }
  const where = floor > 1e-30 ? ` (|result| ≥ ${floor})` : "";
  return `[${lo}, ${hi}]: max abs ${abs.toExponential(2)}, max rel ${rel.toExponential(2)}, ` +
    `${ulps.toFixed(2)} ulp${where}`;
}

async function accuracy(): Promise<void> {
  const INV_SQRT2 = Math.SQRT1_2;
  const cdf = (
    x: number,
  ) => (x > 0 ? 1 - 0.5 * erfc64(x * INV_SQRT2) : 0.5 * erfc64(-x * INV_SQRT2));
  const pdf = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
  const ones = (x: Tensor) => full([...x.shape], 1, { backend: be });
  type Sweep = [string, (x: Tensor) => Tensor, (x: number) => number, number, number];
  const gradOf = (op: typeof geluBackwardOp) => (x: Tensor) => apply(op, [ones(x), x], undefined);
  const sweeps: (Sweep | [...Sweep, boolean, number])[] = [
    ["exp", exp, Math.exp, -87, 88],
    ["log", log, Math.log, 1e-30, 1e30, true, 1.2e-38],
    ["log", log, Math.log, 0.5, 2],
    ["tanh", tanh, Math.tanh, -10, 10],
    ["sigmoid", sigmoid, (x) => 1 / (1 + Math.exp(-x)), -20, 20],
    ["gelu", gelu, (x) => x * cdf(x), -10, 10],
    ["gelu", gelu, (x) => x * cdf(x), -10, 10, false, 1e-3],
    ["gelu_backward", gradOf(geluBackwardOp), (x) => cdf(x) + x * pdf(x), -10, 10, false, 1e-3],
    ["gelu_tanh", geluTanh, geluTanh64, -10, 10],
    ["gelu_tanh_backward", gradOf(geluTanhBackwardOp), geluTanhGrad64, -10, 10, false, 1e-3],
  ];
  console.log(`wasm transcendentals against float64, ${be.describe()}`);
  for (const [name, f, ref, lo, hi, logScale, floor] of sweeps) {
    console.log(`${name} ${await errors(f, ref, lo, hi, logScale, floor)}`);
  }
}

if (import.meta.main) {
  if (Deno.args.includes("--accuracy")) await accuracy();
  else speed();
  be.dispose();
}

for (const threads of [1, 2]) {
  const x = rand([12, 64, 512], be);
  Deno.bench({
    name: `wasm gelu [12,64,512], ${threads} thread${threads > 1 ? "s" : ""}`,
    group: "wasm gelu",
    baseline: threads === 1,
    fn: () => {
      be.ctx.threadLimit = threads;
      gelu(x).dispose();
    },
  });
}
