// Strided addressing (engine/webgpu/codegen.ts): dims are coalesced before kernels address
// them (one integer division per remaining inner dim), and elementwise ops, copies and concat
// over views that coalesce in different ways still match the CPU.

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type { ArgInfo, Backend } from "../../engine/backend.ts";
import { fromArray } from "../../engine/creation.ts";
import { stridedRank, stridedUniforms } from "../../engine/webgpu/codegen.ts";
import { add, cat, contiguous, expand, mul, narrow, permute } from "../../kernels/mod.ts";
import { assertClose, cpu, freshSeed, gpu, hasWebGPU, randnArray } from "../util.ts";

const arg = (shape: number[], strides: number[], offset = 0): ArgInfo => ({
  shape,
  strides,
  offset,
  dtype: "f32",
});
const rowMajor = (shape: number[]) =>
  shape.map((_, d) => shape.slice(d + 1).reduce((x, y) => x * y, 1));

Deno.test("stridedRank: row-major inputs coalesce to one dim, broadcasts and transposes keep theirs", () => {
  const s = [2, 3, 4, 5];
  strictEqual(stridedRank(s, [arg(s, rowMajor(s))]), 1);
  // A bias over the last dim: [2·3·4] × [5] with strides [0, 1].
  strictEqual(stridedRank(s, [arg(s, rowMajor(s)), arg(s, [0, 0, 0, 1])]), 2);
  // Size-1 dims drop out whatever their stride.
  strictEqual(stridedRank([1, 6, 1, 7], [arg([1, 6, 1, 7], [99, 7, 5, 1])]), 1);
  // Swapping the middle dims of [2, 3, 4, 5]: [2][4][3][5] read from [2][3][4][5].
  strictEqual(stridedRank([2, 4, 3, 5], [arg([2, 4, 3, 5], [60, 5, 20, 1])]), 4);
  // A scalar.
  strictEqual(stridedRank([], [arg([], [])]), 1);
  // The uniforms carry the coalesced shape right-aligned, the rank, and each input's strides.
  const u = stridedUniforms(s, [arg(s, rowMajor(s)), arg(s, [0, 0, 0, 1], 3)]);
  deepStrictEqual(Array.from(u.subarray(0, 12)), [120, 2, 0, 0, 1, 1, 1, 1, 1, 1, 24, 5]);
  deepStrictEqual(Array.from(u.subarray(12, 24)), [0, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0, 0]);
  deepStrictEqual(Array.from(u.subarray(24, 36)), [0, 0, 0, 0, 0, 0, 0, 1, 3, 0, 0, 0]);
});

/** Ops over views whose dims coalesce in different ways, on `backend`. */
function viewOps(backend: Backend, seed: number) {
  const dtype = backend === cpu ? "f64" : "f32";
  const mk = (shape: number[], k: number) => {
    const n = shape.reduce((x, y) => x * y, 1);
    const d = randnArray(n, seed + k);
    return fromArray(dtype === "f64" ? d : Float32Array.from(d), shape, { backend, dtype });
  };
  const x = mk([3, 1, 4, 5, 6], 1);
  const other = expand(narrow(mk([5, 4, 7], 4), 2, 1, 6), [3, 1, 5, 4, 6]);
  return [
    add(x, mk([6], 2)), // bias broadcast over the last dim
    mul(x, mk([3, 1, 4, 1, 1], 3)), // broadcast over the inner dims
    contiguous(permute(x, [2, 0, 4, 1, 3])), // a transposing copy
    add(permute(x, [0, 1, 3, 2, 4]), other), // a permuted view plus a narrowed broadcast
    cat([narrow(x, 3, 1, 3), x], 3), // concat into a slot of the output
  ];
}

Deno.test({
  name: "ops over views that coalesce differently match the CPU (webgpu)",
  ignore: !hasWebGPU,
  async fn() {
    const seed = freshSeed();
    const ref = await Promise.all(viewOps(cpu, seed).map((t) => t.data()));
    const got = await Promise.all(viewOps(await gpu(), seed).map((t) => t.data()));
    ref.forEach((r, i) => assertClose(got[i], r, { atol: 1e-5, rtol: 1e-5, msg: `case ${i}:` }));
  },
});
