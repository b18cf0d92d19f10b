// BitGPT's packed inference path: after quantize(), logits from the ternary × int8 kernels match
// the fake-quantised float forward of the same weights, greedy generation gives the same tokens,
// and dequantize() restores the float path. The bound is f32 rounding (≤ 1e-4 relative per
// row); on one backend the two are in fact bit-identical, because BitLinear's training forward runs
// on the same integer levels and the same dequantising multiply as the packed kernels
// (kernels/ternary/bit_quant.ts). (With the textbook float formulation they differed by up to 7e-3:
// activations landing exactly on k + 0.5 rounded to neighbouring integers.)

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import { fromArray } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { noGrad } from "../../engine/autograd.ts";
import { makeConfig } from "../../models/config.ts";
import { BitGPT } from "../../models/bitgpt.ts";
import { generate } from "../../models/generate.ts";
import { cpu, gpu, hasWebGPU, wasm } from "../util.ts";

// nEmbd 40 is not a multiple of 16 (padded packing) and the MLP width 160 is.
const CFG = makeConfig({ vocabSize: 29, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 40 });

async function logitsOf(m: BitGPT, backend: Backend): Promise<Float32Array> {
  const ids = Int32Array.from({ length: 2 * 9 }, (_, i) => (i * 5 + 3) % CFG.vocabSize);
  const x = fromArray(ids, [2, 9], { dtype: "i32", backend });
  const { logits } = noGrad(() => m.forward(x));
  return Float32Array.from(await logits.data());
}

function maxRowRelErr(a: Float32Array, b: Float32Array, rowLen: number): number {
  let worst = 0;
  for (let r = 0; r < a.length / rowLen; r++) {
    let diff = 0, scale = 0;
    for (let j = r * rowLen; j < (r + 1) * rowLen; j++) {
      diff = Math.max(diff, Math.abs(a[j] - b[j]));
      scale = Math.max(scale, Math.abs(b[j]));
    }
    worst = Math.max(worst, diff / scale);
  }
  return worst;
}

async function check(backend: Backend) {
  const m = new BitGPT(CFG, { backend, generator: new Generator(5), std: 0.02 } as never);
  m.eval();
  const fake = await logitsOf(m, backend);
  const fakeTokens = await generate(m, [[1, 2, 3]], { maxNewTokens: 12, temperature: 0 });
  await m.quantize();
  ok(m.quantized);
  const packed = await logitsOf(m, backend);
  const err = maxRowRelErr(packed, fake, CFG.vocabSize);
  ok(err <= 1e-4, `packed logits differ from fake-quant by ${err} (relative, worst row)`);
  deepStrictEqual(await generate(m, [[1, 2, 3]], { maxNewTokens: 12, temperature: 0 }), fakeTokens);
  m.dequantize();
  strictEqual(m.quantized, false);
  deepStrictEqual(await logitsOf(m, backend), fake);
  m.dispose();
}

Deno.test("quantize(): packed BitGPT logits and greedy tokens match fake-quant on wasm", async () => {
  await check(await wasm());
});

Deno.test("quantize(): packed BitGPT logits and greedy tokens match fake-quant on cpu", async () => {
  await check(cpu);
});

Deno.test({
  name: "quantize(): packed BitGPT logits and greedy tokens match fake-quant on webgpu",
  ignore: !hasWebGPU,
  fn: async () => await check(await gpu()),
});
