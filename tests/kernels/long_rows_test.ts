// Regression: row kernels over rows longer than llvmpipe's loop cap. llvmpipe ends an
// invocation's loops after 65535 iterations in all without an error, so the one-invocation-per-row
// mode gave wrong softmax and cross-entropy over GPT-2's 50257 classes; rowMode now picks the
// workgroup mode for long rows on software adapters. The wasm kernels over the same rows (one
// thread per row, a row walked in vectors) must match too, on 1 and 2 threads.

import { strictEqual } from "node:assert/strict";
import { fromArray } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { crossEntropy, softmax } from "../../kernels/mod.ts";
import { FALLBACK_INVOCATION_MAX_LEN, rowMode } from "../../kernels/rows/rows.ts";
import { assertClose, cpu, gpu, hasWebGPU, values, wasm } from "../util.ts";
import { wasmParity } from "./gpu_helpers.ts";

Deno.test("rowMode on a software adapter: invocation mode only for rows under the loop cap", () => {
  const llvmpipe = { isFallback: true, hasDot4I8: true };
  strictEqual(rowMode(64, 1024, llvmpipe), "invocation");
  strictEqual(rowMode(64, FALLBACK_INVOCATION_MAX_LEN, llvmpipe), "invocation");
  strictEqual(rowMode(64, FALLBACK_INVOCATION_MAX_LEN + 1, llvmpipe), "workgroup");
  strictEqual(rowMode(1, 50257, llvmpipe), "workgroup");
  strictEqual(4 * FALLBACK_INVOCATION_MAX_LEN <= 65535, true);
});

Deno.test({
  name: "softmax and cross-entropy over 50257 classes: webgpu matches cpu",
  ignore: !hasWebGPU,
  fn: async () => {
    const g = await gpu();
    const [N, V] = [3, 50257];
    const gen = new Generator(3);
    const z = Float32Array.from(gen.normal(N * V), (v) => 2 * v);
    const t = gen.integers(N, V);
    const run = async (be: typeof cpu) => {
      const x = fromArray(z, [N, V], { backend: be });
      const loss = crossEntropy(x, fromArray(t, [N], { dtype: "i32", backend: be }), -1);
      return { loss: await loss.item(), p: await values(softmax(x, -1)) };
    };
    const [want, got] = [await run(cpu), await run(g)];
    assertClose([got.loss], [want.loss], { atol: 1e-4, rtol: 1e-5, msg: "cross-entropy" });
    assertClose(got.p, want.p, { atol: 1e-9, rtol: 1e-4, msg: "softmax" });
  },
});

Deno.test("softmax and cross-entropy over 50257 classes: wasm matches cpu, 1 and 2 threads", async () => {
  const [N, V] = [3, 50257];
  const gen = new Generator(5);
  const t = Array.from(gen.integers(N, V));
  t[1] = -1;
  const ids = (b: typeof cpu) => fromArray(Int32Array.from(t), [N], { dtype: "i32", backend: b });
  await wasmParity("softmax [3, 50257]", (x) => softmax(x, -1), [{ shape: [N, V] }], {
    tol: 1e-3,
  });
  await wasmParity(
    "crossEntropy [3, 50257]",
    (x) => crossEntropy(x, ids(x.backend), -1),
    [{ shape: [N, V], values: Float64Array.from(gen.normal(N * V), (v) => 2 * v) }],
    { tol: 1e-3 },
  );
  const be = await wasm();
  const z = Float32Array.from(gen.normal(N * V), (v) => 2 * v);
  const run = async (b: typeof cpu) =>
    await crossEntropy(fromArray(z, [N, V], { backend: b }), ids(b), -1).item();
  assertClose([await run(be)], [await run(cpu)], { atol: 1e-4, rtol: 1e-5 });
});
