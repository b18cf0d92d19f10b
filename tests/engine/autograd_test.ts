// Autograd: the tape, accumulation, noGrad, detach and the straight-through pattern.

import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { noGrad } from "../../engine/autograd.ts";
import { add, detach, exp, mul, round, sub, sum } from "../../kernels/mod.ts";
import { assertClose, gradCheck, t64, values } from "../util.ts";

Deno.test("a tensor used many times accumulates every path", async () => {
  const x = t64([1, 2, 3], [3], undefined, true);
  const y = sum(add(mul(x, x), mul(x, 3))); // d/dx = 2x + 3
  y.backward();
  assertClose(await values(x.grad!), [5, 7, 9]);
});

Deno.test("backward twice accumulates into .grad", async () => {
  const x = t64([1, 2], [2], undefined, true);
  sum(mul(x, 2)).backward();
  sum(mul(x, 2)).backward();
  assertClose(await values(x.grad!), [4, 4]);
});

Deno.test("noGrad records nothing", () => {
  const x = t64([1, 2], [2], undefined, true);
  const y = noGrad(() => mul(x, 2));
  assertEquals(y.requiresGrad, false);
  assertEquals(y.node, null);
  assertThrows(() => sum(y).backward(), /does not require grad/);
});

Deno.test("straight-through estimator: forward q(x), gradient identity", async () => {
  const x = t64([0.4, 1.6, -2.5, 3.5], [4], undefined, true);
  const q = add(x, detach(sub(round(x), x)));
  assertClose(await values(q), [0, 2, -2, 4]); // half to even
  sum(mul(q, exp(t64([0, 1, 2, 3], [4])))).backward();
  assertClose(await values(x.grad!), [1, Math.E, Math.E ** 2, Math.E ** 3], { rtol: 1e-12 });
});

Deno.test("gradcheck through a deep chain with reuse", async () => {
  await gradCheck((x) => mul(exp(mul(x, 0.3)), add(x, mul(x, x))), [{ shape: [2, 3] }]);
});

Deno.test("backward from a non-scalar needs a gradient; with one it is a vector-Jacobian product", async () => {
  const x = t64([1, 2, 3], [3], undefined, true);
  const y = mul(x, x);
  assertThrows(() => y.backward(), /backward: root has 3 elements; pass a gradient/);
  y.backward(t64([1, 10, 100], [3]));
  assertClose(await values(x.grad!), [2, 40, 600]);
});

Deno.test("inputs that do not require grad get none; a broadcast input sums its gradient", async () => {
  const w = t64([1, 2, 3], [3], undefined, true);
  const x = t64([1, 2, 3, 4, 5, 6], [2, 3]);
  sum(mul(add(x, w), w)).backward(); // d/dw sum((x + w) w) = sum over rows of (x + 2w)
  assertEquals(x.grad, null);
  assertClose(await values(w.grad!), [1 + 4 + 4, 2 + 5 + 8, 3 + 6 + 12]);
});
