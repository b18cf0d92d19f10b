// The engine as a general tensor library: fit a small MLP to y = sin(x) on [-π, π] with the
// engine's ops, autograd and AdamW (no language model involved), then print a few predictions.
//
//   deno run examples/mlp_fit.ts [--steps 1000] [--hidden 32] [--webgpu]

import { parseArgs } from "node:util";
import {
  AdamW,
  fromArray,
  Linear,
  mean,
  Module,
  mul,
  noGrad,
  sub,
  tanh,
  type Tensor,
  tidy,
  useBackend,
} from "../mod.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    steps: { type: "string", default: "1000" },
    hidden: { type: "string", default: "32" },
    webgpu: { type: "boolean", default: false },
  },
});
const steps = Number(args.values.steps);
const hidden = Number(args.values.hidden);
await useBackend(args.values.webgpu ? "webgpu" : "cpu");

/** 1 -> hidden -> hidden -> 1, tanh between. */
class Mlp extends Module {
  l1 = this.addModule("l1", new Linear(1, hidden));
  l2 = this.addModule("l2", new Linear(hidden, hidden));
  l3 = this.addModule("l3", new Linear(hidden, 1));
  forward(x: Tensor): Tensor {
    return this.l3.forward(tanh(this.l2.forward(tanh(this.l1.forward(x))))); // (N, 1)
  }
}

// The training set: N points of sin on [-π, π], as column vectors (N, 1).
const N = 128;
const xs = Float32Array.from({ length: N }, (_, i) => -Math.PI + (2 * Math.PI * i) / (N - 1));
const x = fromArray(xs, [N, 1]);
const y = fromArray(xs.map(Math.sin), [N, 1]);

const net = new Mlp();
const opt = new AdamW(net, { lr: 3e-3, weightDecay: 0 });
let last = NaN;
for (let step = 0; step < steps; step++) {
  const loss = tidy(() => {
    const err = sub(net.forward(x), y);
    const mse = mean(mul(err, err)); // mean squared error
    mse.backward();
    opt.step();
    opt.zeroGrad();
    return mse;
  });
  if (step % 200 === 0 || step === steps - 1) {
    last = await loss.item();
    console.log(`step ${step} | loss ${last.toExponential(3)}`);
  }
  loss.dispose();
}

const probe = [-2, -1, 0, 1, 2];
const probeX = fromArray(Float32Array.from(probe), [probe.length, 1]);
const pred = await noGrad(() => net.forward(probeX)).data();
probe.forEach((v, i) => {
  console.log(`sin(${v}) = ${Math.sin(v).toFixed(3)}, predicted ${pred[i].toFixed(3)}`);
});
console.log(`final loss ${last.toExponential(3)}`);
