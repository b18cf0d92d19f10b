// Memory ownership: tidy frees what it made except what it returns or keeps, parameters and
// .grad outlive scopes, `using` disposes at block end, views keep storage alive, and using a
// disposed tensor fails with a message naming the op.

import { ok, rejects, strictEqual, throws } from "node:assert/strict";
import type { Tensor } from "../../engine/tensor.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { keep, tidy, trackedCount } from "../../engine/scope.ts";
import { add, exp, matmul, mul, reshape, sum, transpose } from "../../kernels/mod.ts";
import { assertClose, cpu, gpu, hasWebGPU, settleGarbage, t64, values } from "../util.ts";

Deno.test("tidy disposes intermediates and keeps what it returns", () => {
  const x = t64([1, 2, 3], [3]);
  let inner: Tensor | null = null;
  const out = tidy(() => {
    inner = exp(x);
    return add(inner, 1);
  });
  ok(inner!.disposed, "intermediate disposed");
  ok(!out.disposed && !x.disposed, "result and outside input survive");
  const { a, list } = tidy(() => ({ a: exp(x), list: [mul(x, 2), mul(x, 3)] }));
  ok(!a.disposed, "tensors in a returned object survive");
  ok(list.every((t) => t.disposed), "only one level deep: tensors in nested arrays are freed");
  const arr = tidy(() => [exp(x), mul(x, 2)]);
  ok(arr.every((t) => !t.disposed), "tensors in a returned array survive");
  strictEqual(trackedCount(), 0);
});

Deno.test("nested tidy hands results to the enclosing scope; keep exempts from all", () => {
  const x = t64([1, 2], [2]);
  let fromInner: Tensor | null = null;
  let kept: Tensor | null = null;
  const out = tidy(() => {
    fromInner = tidy(() => exp(x));
    kept = keep(mul(x, 5));
    ok(!fromInner.disposed);
    return add(fromInner, 1);
  });
  ok(fromInner!.disposed, "the inner result belonged to the outer scope");
  ok(!kept!.disposed && !out.disposed);
  kept!.dispose();
  ok(kept!.disposed);
});

Deno.test("parameters and their .grad outlive the scope that ran backward", async () => {
  const w = t64([1, -2, 3], [3], cpu, true);
  tidy(() => sum(mul(w, w)).backward());
  ok(!w.disposed && w.grad !== null && !w.grad.disposed);
  assertClose(await values(w.grad!), [2, -4, 6]);
  tidy(() => sum(mul(w, w)).backward()); // accumulates into the surviving grad
  assertClose(await values(w.grad!), [4, -8, 12]);
});

Deno.test("using disposes at the end of the block", () => {
  const x = t64([1, 2], [2]);
  let seen: Tensor | null = null;
  {
    using y = exp(x);
    seen = y;
    ok(!y.disposed);
  }
  ok(seen!.disposed);
});

Deno.test("a disposed tensor fails clearly; views keep their storage alive", async () => {
  const x = t64([1, 2, 3, 4], [2, 2]);
  const v = transpose(x);
  x.dispose();
  x.dispose(); // twice is safe
  throws(() => exp(x), /exp: tensor \d+ was disposed/);
  throws(() => matmul(x, v), /tensor \d+ was disposed/);
  throws(() => reshape(x, [4]), /reshape: tensor \d+ was disposed/);
  throws(() => transpose(x), /permute: tensor \d+ was disposed/);
  await rejects(x.data(), /data: tensor \d+ was disposed/);
  assertClose(await values(v), [1, 3, 2, 4], { msg: "the view still reads the storage" });
});

Deno.test("tidy refuses async functions", () => {
  throws(() => tidy(() => Promise.resolve(1)), /tidy: the function must be synchronous/);
});

Deno.test("backward frees the graph as it goes", () => {
  const x = t64([1, 2], [2], cpu, true);
  const y = exp(x);
  const loss = sum(y);
  ok(y.node !== null);
  loss.backward();
  ok(y.node === null && loss.node === null);
});

Deno.test({
  name: "webgpu: a tidy step leaves the live buffer count where it was",
  ignore: !hasWebGPU,
  async fn() {
    const g = await gpu() as WebGpuBackend;
    const w = t64([0.5, -1, 2, 0.25, 1, -0.5], [3, 2], g, true);
    const x = t64([1, 2, 3, 4, 5, 6], [2, 3], g);
    await settleGarbage();
    const before = g.stats().liveBuffers;
    for (let i = 0; i < 3; i++) {
      tidy(() => sum(exp(matmul(x, w))).backward());
      w.grad!.dispose();
      w.grad = null;
      await g.sync();
      await settleGarbage();
      strictEqual(g.stats().liveBuffers, before, `step ${i}`);
    }
  },
});
