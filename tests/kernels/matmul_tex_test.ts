// Texture-staged matmul (kernels/matmul/tex.ts): how each operand layout is stored and staged
// (a copy where WebGPU's copy rules allow, a vec4 or scalar fill otherwise), then parity with the
// CPU reference on every storage mode and staging path, batched and broadcast, through offsets
// and strided views; scratch textures pooled under a byte cap; oversized sides refused.

import { deepStrictEqual, notStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { TexturePool } from "../../engine/webgpu/textures.ts";
import { fromArray } from "../../engine/creation.ts";
import { type OperandLayout, texLaunchParts, texPlan } from "../../kernels/matmul/tex.ts";
import { expand, matmul, matmulVariant, narrow, transpose } from "../../kernels/mod.ts";
import { assertClose, cpu, freshSeed, gpu, hasWebGPU, randnArray } from "../util.ts";

const ignore = !hasWebGPU;

const rowMajor = (rows: number, cols: number, batch = false): OperandLayout => ({
  sb: batch ? rows * cols : 0,
  sr: cols,
  sc: 1,
  off: 0,
});
/** A [rows, cols] operand stored column-major (a transposed view). */
const colMajor = (rows: number): OperandLayout => ({
  sb: 0,
  sr: 1,
  sc: rows,
  off: 0,
});

/** Storage modes and how each operand is staged, for A [M, K] · B [K, N]. */
function staging(M: number, N: number, K: number, la: OperandLayout, lb: OperandLayout, batch = 1) {
  const plan = texPlan(batch, M, N, K, la, lb);
  const { stages } = texLaunchParts(plan, batch, M, N, K, { off: 0, sb: M * N, sr: N });
  return {
    modes: plan.am + plan.bm,
    how: stages.map((s) => s.label.slice("matmul-stage[".length, -1)),
  };
}

Deno.test("tex staging: each operand stored along its contiguous axis, copied where allowed", () => {
  // Rows of 64 floats are 256 bytes: copies. A·B, A·Bᵀ, Aᵀ·B, Aᵀ·Bᵀ.
  deepStrictEqual(staging(64, 128, 64, rowMajor(64, 64), rowMajor(64, 128)), {
    modes: "kn",
    how: ["copy", "copy"],
  });
  deepStrictEqual(staging(64, 128, 64, rowMajor(64, 64), colMajor(64)), {
    modes: "kk",
    how: ["copy", "copy"],
  });
  deepStrictEqual(staging(64, 128, 64, colMajor(64), rowMajor(64, 128)), {
    modes: "mn",
    how: ["copy", "copy"],
  });
  deepStrictEqual(staging(64, 128, 64, colMajor(64), colMajor(64)), {
    modes: "mk",
    how: ["copy", "copy"],
  });
  // Rows of 20 floats (80 bytes): vec4 fills. An odd K pads k with zeros: scalar fill for A,
  // whose texels run along k, and a vec4 fill for B, whose rows are k.
  deepStrictEqual(staging(36, 68, 20, rowMajor(36, 20), rowMajor(20, 68)).how, [
    "vec4 fill",
    "vec4 fill",
  ]);
  deepStrictEqual(staging(36, 64, 63, rowMajor(36, 63), rowMajor(63, 64)).how, [
    "scalar fill",
    "vec4 fill",
  ]);
  // Batched: a copy needs whole images (batch stride a multiple of the row stride).
  deepStrictEqual(
    staging(64, 64, 64, rowMajor(64, 64, true), { sb: 0, sr: 64, sc: 1, off: 0 }, 3).how,
    ["copy", "copy"],
  );
  // A broadcast row (row stride 0, from expand) cannot be copied: bytesPerRow must cover a row.
  deepStrictEqual(
    staging(64, 64, 64, { sb: 0, sr: 0, sc: 1, off: 0 }, { sb: 0, sr: 64, sc: 0, off: 0 }).how,
    ["vec4 fill", "scalar fill"],
  );
  // Offsets: a copy needs 16-byte alignment.
  deepStrictEqual(
    staging(64, 64, 64, { ...rowMajor(64, 64), off: 4 }, { ...rowMajor(64, 64), off: 2 }).how,
    [
      "copy",
      "scalar fill",
    ],
  );
});

function make(shape: number[], seed: number, be: Backend): Tensor {
  const n = shape.reduce((x, y) => x * y, 1);
  const data = randnArray(n, seed);
  return be.name === "cpu"
    ? fromArray(data, shape, { backend: be, dtype: "f64" })
    : fromArray(Float32Array.from(data), shape, { backend: be });
}

/** `variant` on webgpu against the cpu reference for operands built by `build`. */
async function check(variant: string, build: (be: Backend, seed: number) => [Tensor, Tensor]) {
  const seed = freshSeed();
  const [a0, b0] = build(cpu, seed);
  const [a1, b1] = build(await gpu(), seed);
  const ref = await matmul(a0, b0).data();
  const got = await matmulVariant(a1, b1, variant).data();
  let scale = 0;
  for (const x of ref) scale = Math.max(scale, Math.abs(x));
  assertClose(got, ref, { atol: 1e-3 * scale, rtol: 1e-3, msg: `${variant} (seed ${seed}):` });
}

Deno.test({
  name: "tex8x16 parity: copies in all four storage modes, batched, offsets, strided views",
  ignore,
  async fn() {
    const be = (await gpu()) as WebGpuBackend;
    if (!be.ctx.textures) return; // no read-only storage textures: never offered here
    const T = (x: Tensor) => transpose(x);
    const v = "tex8x16";
    await check(v, (b, s) => [make([72, 64], s, b), make([64, 128], s + 1, b)]); // copies
    await check(v, (b, s) => [make([72, 64], s, b), T(make([132, 64], s + 1, b))]); // A·Bᵀ
    await check(v, (b, s) => [T(make([64, 128], s, b)), make([64, 72], s + 1, b)]); // Aᵀ·B
    await check(v, (b, s) => [T(make([64, 64], s, b)), T(make([68, 64], s + 1, b))]); // Aᵀ·Bᵀ
    // Batched copies (rowsPerImage) and a broadcast B.
    await check(v, (b, s) => [make([3, 40, 64], s, b), make([64, 128], s + 1, b)]);
    await check(v, (b, s) => [make([2, 40, 64], s, b), T(make([2, 68, 64], s + 1, b))]);
    // Broadcast rows (stride 0) of A and broadcast columns of B.
    await check(v, (b, s) => [expand(make([1, 64], s, b), [40, 64]), make([64, 128], s + 1, b)]);
    await check(v, (b, s) => [make([40, 64], s, b), expand(make([64, 1], s + 1, b), [64, 128])]);
    // Offsets: rows 4.. (16-byte aligned: a copy), rows 3.. (scalar fill), a column slice.
    await check(v, (b, s) => [narrow(make([40, 64], s, b), 0, 4, 33), make([64, 64], s + 1, b)]);
    await check(
      v,
      (
        b,
        s,
      ) => [narrow(make([40, 21], s, b), 0, 3, 33), narrow(make([21, 70], s + 1, b), 1, 2, 61)],
    );
  },
});

Deno.test({
  name: "tex staging: scratch textures are pooled; a side over the device limit is refused",
  ignore,
  async fn() {
    const be = (await gpu()) as WebGpuBackend;
    if (!be.ctx.textures) return;
    const a = make([40, 64], 1, be);
    const b = make([64, 72], 2, be);
    await matmulVariant(a, b, "tex8x16").data();
    const made = be.stats().textureAllocations;
    await matmulVariant(a, b, "tex8x16").data();
    strictEqual(be.stats().textureAllocations, made, "the same shapes reuse their textures");
    ok(be.stats().textureBytes > 0);
    const side = be.ctx.textures.side;
    const tall = fromArray(new Float32Array(side + 1), [side + 1, 1], { backend: be });
    const row = fromArray(new Float32Array(4), [1, 4], { backend: be });
    throws(
      () => matmulVariant(tall, row, "tex8x16"),
      /tex8x16 needs f32 operands, read-only storage textures/,
    );
  },
});

Deno.test({
  name: "texture pool: free textures over the byte cap are destroyed, least recently used first",
  ignore,
  async fn() {
    const be = (await gpu()) as WebGpuBackend;
    const bytes = (w: number, h: number) => w * h * 16;
    const pool = new TexturePool(be.device, bytes(8, 8) + bytes(8, 9));
    const a = pool.acquire(8, 8, 1);
    const b = pool.acquire(8, 9, 1);
    const c = pool.acquire(8, 10, 1);
    strictEqual(pool.stats.textureBytes, bytes(8, 8) + bytes(8, 9) + bytes(8, 10));
    pool.release(a);
    pool.release(b);
    ok(!pool.hasRetired, "within the cap");
    strictEqual(pool.acquire(8, 8, 1), a, "reused");
    pool.release(a); // now a is the most recently used, b the least
    pool.release(c); // over the cap: b goes, then a still leaves it over: a goes too
    ok(pool.hasRetired);
    pool.retire();
    strictEqual(pool.stats.textureBytes, bytes(8, 10));
    strictEqual(pool.acquire(8, 10, 1), c, "the most recent stays");
    notStrictEqual(pool.acquire(8, 9, 1), b, "evicted: a new texture");
    pool.trim();
  },
});
