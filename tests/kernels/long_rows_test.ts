// Regression: row kernels over rows longer than llvmpipe's loop cap. llvmpipe ends an
// invocation's loops after 65535 iterations in all without an error, so the one-invocation-per-row
// mode gave wrong softmax and cross-entropy over GPT-2's 50257 classes; rowMode now picks the
// workgroup mode for long rows on software adapters.

import { strictEqual } from "node:assert/strict";
import { fromArray } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { crossEntropy, softmax } from "../../kernels/mod.ts";
import { FALLBACK_INVOCATION_MAX_LEN, rowMode } from "../../kernels/rows/rows.ts";
import { assertClose, cpu, gpu, hasWebGPU, values } from "../util.ts";

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
