// The wasm backend behind today's Backend interface: storage round-trips, kernels without a wasm
// implementation run their CPU reference on heap views (a whole forward and backward through
// autograd matches the cpu backend), a kernel that carries `wasm` runs it, and freed tensors go
// back to the heap's pool.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { backward } from "../../../engine/autograd.ts";
import { fromArray } from "../../../engine/creation.ts";
import { cpuBackend } from "../../../engine/device.ts";
import type { Backend, Kernel } from "../../../engine/backend.ts";
import { Generator } from "../../../engine/random.ts";
import { WasmBackend } from "../../../engine/wasm/backend.ts";
import { gelu, matmul, sum } from "../../../kernels/mod.ts";
import { matmulOp, type MatmulParams } from "../../../kernels/matmul/matmul.ts";
import { matmulModule, matmulWasm } from "../../../kernels/matmul/wasm.ts";

const be = await WasmBackend.create({ threads: 2, idleMs: Infinity });

Deno.test("wasm backend: storage round-trips and is pooled", async () => {
  const before = be.heap.stats().inUse;
  const s = be.upload(Float32Array.from([1, 2, 3]), "f32");
  deepStrictEqual([...await be.read(s)], [1, 2, 3]);
  be.write(s, Float32Array.from([4, 5, 6]));
  deepStrictEqual([...await be.read(s)], [4, 5, 6]);
  const i = be.upload(Int32Array.from([-7, 8]), "i32");
  deepStrictEqual([...await be.read(i)], [-7, 8]);
  be.free(s);
  be.free(i);
  strictEqual(be.heap.stats().inUse, before);
  ok(/^wasm \(simd128/.test(be.describe()), be.describe());
});

/** loss = Σ gelu(a · b) and its gradients, on a backend. */
async function step(backend: Backend): Promise<number[][]> {
  const gen = new Generator(7);
  const a = fromArray(Float32Array.from(gen.normal(5 * 7)), [5, 7], {
    backend,
    requiresGrad: true,
  });
  const b = fromArray(Float32Array.from(gen.normal(7 * 3)), [7, 3], {
    backend,
    requiresGrad: true,
  });
  const loss = sum(gelu(matmul(a, b)));
  backward(loss);
  const out = [[await loss.item()], [...await a.grad!.data()], [...await b.grad!.data()]];
  for (const t of [a, b, loss, a.grad!, b.grad!]) t.dispose();
  return out;
}

Deno.test("wasm backend: a forward and backward step matches the cpu backend", async () => {
  await step(be); // the matmul's packing scratch is made once and kept
  const before = be.heap.stats().inUse;
  const [got, want] = [await step(be), await step(cpuBackend())];
  // The wasm matmul sums in another order than the cpu reference: equal to
  // float tolerance, not to the bit.
  strictEqual(got.length, want.length);
  got.forEach((row, i) => {
    strictEqual(row.length, want[i].length);
    row.forEach((x, j) =>
      ok(
        Math.abs(x - want[i][j]) <= 1e-5 * (1 + Math.abs(want[i][j])),
        `${i}/${j}: ${x} vs ${want[i][j]}`,
      )
    );
  });
  ok(be.heap.stats().inUse <= before + 4096, "the step's tensors went back to the pool");
});

Deno.test("wasm backend: a kernel that carries a wasm implementation runs it", async () => {
  let calls = 0;
  const kernel: Kernel<MatmulParams> = {
    ...matmulOp,
    wasm: (inputs, outputs, p, ctx) => {
      calls++;
      matmulWasm(inputs, outputs, p, ctx);
    },
  };
  const A = Float32Array.from({ length: 6 }, (_, i) => i);
  const B = Float32Array.from({ length: 6 }, (_, i) => 1 - i);
  const [a, b, c] = [be.upload(A, "f32"), be.upload(B, "f32"), be.alloc(4, "f32")];
  const arg = (shape: number[]) => ({
    shape,
    strides: [shape[1] * shape[2], shape[2], 1],
    offset: 0,
    dtype: "f32" as const,
  });
  be.run(
    kernel,
    [{ storage: a, info: arg([1, 2, 3]) }, { storage: b, info: arg([1, 3, 2]) }],
    [{ storage: c, info: arg([1, 2, 2]) }],
    { batch: 1, M: 2, N: 2, K: 3 },
  );
  strictEqual(calls, 1);
  // [[0 1 2] [3 4 5]] · [[1 0] [-1 -2] [-3 -4]]
  deepStrictEqual([...await be.read(c)], [-7, -10, -16, -28]);
  for (const s of [a, b, c]) be.free(s);
});

Deno.test("wasm backend: kernel modules compiled ahead of use are the ones kernels get", async () => {
  const other = await WasmBackend.create({ threads: 1, modules: [matmulModule] });
  const [key] = matmulModule(other.ctx.features);
  const prepared = await other.ctx.prepare(...matmulModule(other.ctx.features));
  strictEqual(
    other.ctx.module(key, () => {
      throw new Error("built again");
    }),
    prepared,
  );
  other.dispose();
});

Deno.test("wasm backend: dispose", () => {
  be.dispose();
  strictEqual(be.pool.workers, 0);
});
