// AdamW (weight-decay groups, state dict round trip) and clipGradNorm (global norm on the device,
// applied or fused into the update).

import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { tensor } from "../../engine/creation.ts";
import { mul, sum } from "../../kernels/mod.ts";
import { Module, type Parameter } from "../../nn/module.ts";
import { AdamW, clipGradNorm } from "../../nn/optim.ts";
import { assertClose, cpu, values } from "../util.ts";

class Two extends Module {
  constructor() {
    super();
    this.addParameter("w", tensor([[1, -2], [3, 0.5]], undefined, { backend: cpu }));
    this.addParameter("b", tensor([0.5, -1], undefined, { backend: cpu }));
  }
  get w(): Parameter {
    return this.param("w");
  }
  get b(): Parameter {
    return this.param("b");
  }
  loss() {
    return sum(mul(mul(this.w, this.w), this.b)); // gradients differ per element
  }
}

Deno.test("AdamW: weight decay applies to 2-dim parameters only", async () => {
  const m = new Two();
  const opt = new AdamW(m, { lr: 0.1, weightDecay: 0.5 });
  deepStrictEqual(opt.groups().decay.map(([n]) => n), ["w"]);
  deepStrictEqual(opt.groups().noDecay.map(([n]) => n), ["b"]);
  m.loss().backward();
  opt.step();
  // Step 1 moves by lr·sign(g) (bias correction); decay multiplies w by (1 − lr·wd) first.
  // g_w = 2·w·b (row-broadcast b), g_b = column sums of w².
  const w0 = [1, -2, 3, 0.5];
  const gw = [2 * 1 * 0.5, 2 * -2 * -1, 2 * 3 * 0.5, 2 * 0.5 * -1];
  assertClose(await values(m.w), w0.map((w, i) => w * 0.95 - 0.1 * Math.sign(gw[i])), {
    atol: 1e-6,
  });
  assertClose(await values(m.b), [0.5 - 0.1, -1 - 0.1], { atol: 1e-6 });
  strictEqual(opt.stepCount, 1);
});

Deno.test("AdamW: stateDict round trip continues bit-exactly", async () => {
  const a = new Two();
  const optA = new AdamW(a, { lr: 0.05 });
  for (let i = 0; i < 2; i++) {
    optA.zeroGrad();
    a.loss().backward();
    optA.step();
  }
  const state = optA.stateDict();
  deepStrictEqual(Object.keys(state.tensors), [
    "w.exp_avg",
    "w.exp_avg_sq",
    "b.exp_avg",
    "b.exp_avg_sq",
  ]);
  const b = new Two();
  b.loadStateDict(a.stateDict());
  const optB = new AdamW(b);
  const host = Object.fromEntries(
    await Promise.all(
      Object.entries(state.tensors).map(async (
        [k, t],
      ) => [k, { shape: [...t.shape], data: await t.data() }]),
    ),
  );
  optB.loadStateDict({ ...state, tensors: host });
  strictEqual(optB.stepCount, 2);
  strictEqual(optB.lr, 0.05);
  for (const [m, o] of [[a, optA], [b, optB]] as const) {
    o.zeroGrad();
    m.loss().backward();
    o.step();
  }
  deepStrictEqual(await values(b.w), await values(a.w));
  deepStrictEqual(await values(b.b), await values(a.b));
  throws(
    () => optB.loadStateDict({ ...state, tensors: { "zzz.exp_avg": host["w.exp_avg"] } }),
    /unexpected entry 'zzz.exp_avg'/,
  );
  throws(
    () =>
      optB.loadStateDict({
        ...state,
        tensors: { "w.exp_avg": host["b.exp_avg"], "w.exp_avg_sq": host["b.exp_avg_sq"] },
      }),
    /'w.exp_avg' is \[2\], the parameter is \[2, 2\]/,
  );
});

Deno.test("clipGradNorm: global norm, scales only when above maxNorm", async () => {
  const m = new Two();
  m.loss().backward();
  const gw = Array.from(await values(m.w.grad!));
  const gb = Array.from(await values(m.b.grad!));
  const norm = Math.hypot(...gw, ...gb);
  const big = clipGradNorm(m.parameters(), 1e9);
  assertClose([await big.norm.item()], [norm], { rtol: 1e-6 });
  assertClose(await values(m.w.grad!), gw, { rtol: 1e-6 }); // unchanged
  const clipped = clipGradNorm(m.parameters(), 1);
  assertClose([await clipped.scale.item()], [1 / (norm + 1e-6)], { rtol: 1e-6 });
  assertClose(await values(m.w.grad!), gw.map((g) => g / (norm + 1e-6)), { rtol: 1e-6 });
  const after = clipGradNorm(m.parameters(), 1, { apply: false });
  assertClose([await after.norm.item()], [norm / (norm + 1e-6)], { rtol: 1e-6 });
});

Deno.test("clipGradNorm fused into AdamW.step equals clipping first", async () => {
  const run = async (fused: boolean) => {
    const m = new Two();
    const opt = new AdamW(m, { lr: 0.01 });
    for (let i = 0; i < 3; i++) {
      opt.zeroGrad();
      m.loss().backward();
      const clip = clipGradNorm(m.parameters(), 0.5, { apply: !fused });
      opt.step({ gradScale: fused ? clip.scale : undefined });
    }
    return [...(await values(m.w)), ...(await values(m.b))];
  };
  assertClose(await run(true), await run(false), { atol: 1e-7, rtol: 1e-6 });
});
