// Random numbers: Threefry-2x32-20 known answers (Random123's kat_vectors), the WGSL twin of the
// CPU generator, randn on both backends, moment sanity, and Generator state save/restore.

import { deepStrictEqual, ok, throws } from "node:assert/strict";
import type { Kernel } from "../../engine/backend.ts";
import {
  defaultGenerator,
  Generator,
  manualSeed,
  setDefaultGenerator,
  threefry2x32,
  THREEFRY_WGSL,
  wordAt,
  wordsToNormal,
  wordToUniform,
} from "../../engine/random.ts";
import { empty, launch } from "../../engine/op.ts";
import { rand, randn, zeros } from "../../engine/creation.ts";
import { grid1d, linearIndex, WORKGROUP_SIZE } from "../../engine/webgpu/codegen.ts";
import { assertClose, cpu, freshSeed, gpu, hasWebGPU, values } from "../util.ts";

Deno.test("threefry2x32-20 matches the Random123 known-answer vectors", () => {
  deepStrictEqual(threefry2x32(0, 0, 0, 0), [0x6b200159, 0x99ba4efe]);
  deepStrictEqual(
    threefry2x32(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff),
    [0x1cb996fc, 0xbb002be7],
  );
  deepStrictEqual(
    threefry2x32(0x13198a2e, 0x03707344, 0x243f6a88, 0x85a308d3),
    [0xc4923a9c, 0x483df7a0],
  );
});

interface DrawAt {
  key: [number, number];
  offset: number;
  n: number;
}

/** Writes words (2 per counter) and [uniform, normal] pairs for counters offset + i. */
const streamKernel: Kernel<DrawAt> = {
  name: "threefry_stream",
  cpu(_ins, [words, floats], { key, offset, n }) {
    for (let i = 0; i < n; i++) {
      const [w0, w1] = wordAt(key, offset + i);
      words[2 * i] = w0;
      words[2 * i + 1] = w1;
      floats[2 * i] = wordToUniform(w0);
      floats[2 * i + 1] = wordsToNormal(w0, w1);
    }
  },
  webgpu(_ins, _outs, { key, offset, n }) {
    return {
      source: `${THREEFRY_WGSL}
struct U { key: vec2<u32>, off: vec2<u32>, n: u32 }
@group(0) @binding(0) var<storage, read_write> words: array<u32>;
@group(0) @binding(1) var<storage, read_write> floats: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = ${linearIndex()};
  if (i >= u.n) { return; }
  let w = threefry2x32(u.key, tf_counter(u.off.x, u.off.y, i));
  words[2u * i] = w.x;
  words[2u * i + 1u] = w.y;
  floats[2u * i] = tf_uniform(w.x);
  floats[2u * i + 1u] = tf_normal(w);
}`,
      grid: grid1d(n),
      uniforms: new Uint32Array([
        key[0],
        key[1],
        offset % 2 ** 32,
        Math.floor(offset / 2 ** 32),
        n,
        0,
        0,
        0,
      ]),
    };
  },
};

Deno.test({
  name: "THREEFRY_WGSL gives the CPU stream, across a 2^32 counter carry",
  ignore: !hasWebGPU,
  async fn() {
    const g = await gpu();
    const seed = freshSeed();
    const gen = new Generator(seed * 7919 + 2 ** 40); // a key with both halves non-zero
    const draw = { key: gen.key, offset: 2 ** 32 * 5 + 2 ** 32 - 40, n: 129 };
    const like = zeros([1], { backend: g });
    const words = empty(like, [2 * draw.n], "u32");
    const floats = empty(like, [2 * draw.n]);
    launch(streamKernel, [], [words, floats], draw);
    const cw = empty(zeros([1], { backend: cpu }), [2 * draw.n], "u32");
    const cf = empty(zeros([1], { backend: cpu, dtype: "f64" }), [2 * draw.n]);
    launch(streamKernel, [], [cw, cf], draw);
    deepStrictEqual(Array.from(await words.data()), Array.from(await cw.data()), `seed ${seed}`);
    const gf = await values(floats);
    const want = await values(cf);
    assertClose(gf.filter((_, i) => i % 2 === 0), want.filter((_, i) => i % 2 === 0), {
      atol: 0,
      rtol: 0,
      msg: "uniforms (exact: 24-bit)",
    });
    assertClose(gf.filter((_, i) => i % 2 === 1), want.filter((_, i) => i % 2 === 1), {
      atol: 2e-5,
      rtol: 2e-5,
      msg: "normals",
    });
  },
});

Deno.test({
  name: "randn and rand give the same stream on cpu and webgpu for the same seed",
  ignore: !hasWebGPU,
  async fn() {
    const g = await gpu();
    const seed = freshSeed();
    for (const make of [randn, rand]) {
      const a = make([17, 3], { generator: new Generator(seed), backend: cpu });
      const b = make([17, 3], { generator: new Generator(seed), backend: g });
      deepStrictEqual(Array.from(await b.data()), Array.from(await a.data()), `seed ${seed}`);
    }
  },
});

Deno.test("normal and uniform moments on 100k samples", () => {
  const seed = freshSeed();
  const n = 100_000;
  const gen = new Generator(seed);
  const z = gen.normal(n);
  const u = gen.uniform(n);
  const mean = (v: Float64Array) => v.reduce((s, x) => s + x, 0) / v.length;
  const std = (v: Float64Array) => {
    const m = mean(v);
    return Math.sqrt(mean(v.map((x) => (x - m) ** 2)));
  };
  // 5 standard errors: sd/sqrt(n) = 0.0032 for the normal mean, 0.0022 for its sd.
  ok(Math.abs(mean(z)) < 0.016, `normal mean ${mean(z)} (seed ${seed})`);
  ok(Math.abs(std(z) - 1) < 0.012, `normal std ${std(z)} (seed ${seed})`);
  ok(Math.abs(mean(u) - 0.5) < 0.0046, `uniform mean ${mean(u)} (seed ${seed})`);
  ok(Math.abs(std(u) - Math.sqrt(1 / 12)) < 0.003, `uniform std ${std(u)} (seed ${seed})`);
  ok(u.every((x) => x >= 0 && x < 1), "uniforms in [0, 1)");
  const k = gen.integers(n, 10);
  const counts = new Array(10).fill(0);
  k.forEach((x) => counts[x]++);
  ok(counts.every((c) => Math.abs(c - n / 10) < 5 * Math.sqrt(n * 0.09)), `${counts}`);
});

Deno.test("randn honours mean and std", async () => {
  const x = await values(randn([20000], { generator: new Generator(3), mean: 2, std: 0.5 }));
  const m = x.reduce((s, v) => s + v, 0) / x.length;
  const sd = Math.sqrt(x.reduce((s, v) => s + (v - m) ** 2, 0) / x.length);
  ok(Math.abs(m - 2) < 0.02 && Math.abs(sd - 0.5) < 0.02, `mean ${m}, std ${sd}`);
});

Deno.test("Generator state saves and restores the stream position", () => {
  const g = new Generator(12345);
  g.normal(10);
  const s = g.state();
  deepStrictEqual(s, { seed: 12345, offset: 10 });
  const a = g.normal(5);
  const b = Generator.fromState(s).normal(5);
  deepStrictEqual(Array.from(b), Array.from(a));
  // Draws are a function of (seed, counters consumed): reserve skips ahead exactly.
  const h = new Generator(12345);
  h.reserve(10);
  deepStrictEqual(Array.from(h.normal(5)), Array.from(a));
});

Deno.test("manualSeed makes the default stream reproducible", async () => {
  const prev = defaultGenerator();
  try {
    manualSeed(99);
    const a = await values(randn([4]));
    manualSeed(99);
    const b = await values(randn([4]));
    deepStrictEqual(b, a);
    ok(!(await values(randn([4]))).every((v, i) => v === a[i]), "the stream moves on");
  } finally {
    setDefaultGenerator(prev);
  }
});

Deno.test("Generator keys and seed validation", () => {
  deepStrictEqual(new Generator(2 ** 40 + 5).key, [5, 256]);
  throws(() => new Generator(-1), /seed must be a non-negative safe integer, got -1/);
  throws(() => new Generator(1.5), /seed must be/);
});
