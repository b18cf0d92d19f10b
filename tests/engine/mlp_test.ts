// End to end: a 2→16→1 tanh MLP learns XOR with a hand-written SGD loop on the CPU backend
// (proof that the tape, broadcasting, gradient accumulation and tidy work together), and the
// same first steps give the same losses on WebGPU.

import { deepStrictEqual, ok } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { noGrad } from "../../engine/autograd.ts";
import { tidy } from "../../engine/scope.ts";
import { Generator } from "../../engine/random.ts";
import { add, matmul, mean, mul, sub, tanh } from "../../kernels/mod.ts";
import { assertClose, cpu, gpu, hasWebGPU, settleGarbage, t64 } from "../util.ts";

const X = [0, 0, 0, 1, 1, 0, 1, 1];
const Y = [0, 1, 1, 0];

/** Parameters W1 [2, 16], b1 [16], W2 [16, 1], b2 [1] from a seeded normal stream. */
function initParams(b: Backend, seed: number): Tensor[] {
  const g = new Generator(seed);
  const param = (shape: number[], std: number) => {
    const n = shape.reduce((x, y) => x * y, 1);
    return t64(Array.from(g.normal(n), (v) => v * std), shape, b, true);
  };
  return [param([2, 16], 1), param([16], 0.1), param([16, 1], 0.25), param([1], 0.1)];
}

/** One SGD step on the mean squared error; returns the new parameters and the loss. */
function step(params: Tensor[], x: Tensor, y: Tensor, lr: number): [Tensor[], Tensor] {
  const out = tidy(() => {
    const [w1, b1, w2, b2] = params;
    const h = tanh(add(matmul(x, w1), b1)); // [4, 16]: b1 broadcasts over the batch
    const pred = add(matmul(h, w2), b2); // [4, 1]
    const loss = mean(mul(sub(pred, y), sub(pred, y)));
    loss.backward();
    const next = noGrad(() => params.map((p) => sub(p, mul(p.grad!, lr))));
    for (const p of next) p.requiresGrad = true;
    return [...next, loss]; // tidy keeps the tensors of a flat array, frees the rest
  });
  return [out.slice(0, -1), out[out.length - 1]];
}

/** Train for `steps` and return the losses (params are replaced each step, old ones freed). */
async function train(
  b: Backend,
  steps: number,
  lr: number,
  onStep?: (i: number) => void,
): Promise<number[]> {
  const x = t64(X, [4, 2], b);
  const y = t64(Y, [4, 1], b);
  let params = initParams(b, 2024);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const [next, loss] = step(params, x, y, lr);
    for (const p of params) {
      p.grad?.dispose();
      p.dispose();
    }
    params = next;
    losses.push(await loss.item());
    loss.dispose();
    await onStep?.(i);
  }
  return losses;
}

Deno.test("a tanh MLP learns XOR with hand-written SGD on the cpu backend", async () => {
  const losses = await train(cpu, 300, 0.3);
  const last = losses[losses.length - 1];
  ok(losses[0] > 0.1, `initial loss ${losses[0]}`);
  ok(last < 1e-6, `final loss ${last} (start ${losses[0]}, step 100 ${losses[100]})`);
});

Deno.test({
  name: "the first SGD steps give the same losses on webgpu as on cpu",
  ignore: !hasWebGPU,
  async fn() {
    const g = await gpu() as WebGpuBackend;
    const want = await train(cpu, 6, 0.3);
    const live: number[] = [];
    const got = await train(g, 6, 0.3, async () => {
      await settleGarbage();
      live.push(g.stats().liveBuffers);
    });
    assertClose(got, want, { rtol: 1e-4, atol: 1e-6 });
    // Memory is owned: after the first step, each step frees what the previous one made.
    deepStrictEqual(live.slice(1), live.slice(1).map(() => live[1]), `live buffers ${live}`);
  },
});
