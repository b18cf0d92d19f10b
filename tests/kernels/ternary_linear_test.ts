// PackedBitLinear: packBitLinear + forward (GEMV for one token, GEMM otherwise) against the
// BitLinear training path (fake-quant) through nn's inference seam, on the CPU, WebGPU and wasm
// (where the quantiser, the ternary product and the scaling all run their wasm kernels);
// safetensors records round-trip through nn/safetensors.ts; GPU memory stays flat.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import { fromArray } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { ternaryRowWords } from "../../kernels/ternary/format.ts";
import {
  packBitLinear,
  packedFromSafetensors,
  packedToSafetensors,
} from "../../kernels/ternary/linear.ts";
import { BitLinear } from "../../nn/bitlinear.ts";
import { readSafetensors, writeSafetensors } from "../../nn/safetensors.ts";
import { cpu, gpu, hasWebGPU, randnArray, settleGarbage, wasm } from "../util.ts";

const [IN, OUT] = [100, 17];

/** A BitLinear with bias on the CPU in float64, weights set from a fixed seed. */
function bitLinear(seed: number): BitLinear {
  const bl = new BitLinear(IN, OUT, { backend: cpu, dtype: "f64", bias: true });
  bl.loadStateDict({
    weight: {
      shape: [OUT, IN],
      data: Float64Array.from(randnArray(OUT * IN, seed), (v) => v / 20),
    },
    bias: { shape: [OUT], data: randnArray(OUT, seed + 1) },
    "norm.weight": {
      shape: [IN],
      data: Float64Array.from(randnArray(IN, seed + 2), (v) => 1 + v / 4),
    },
  });
  return bl.eval();
}

/** max |a − b| / max |b| over each row of N must be ≤ 1e-4. */
function assertRows(a: ArrayLike<number>, b: ArrayLike<number>, N: number, msg: string) {
  strictEqual(a.length, b.length, msg);
  for (let r = 0; r < b.length / N; r++) {
    let err = 0;
    let mag = 0;
    for (let i = r * N; i < (r + 1) * N; i++) {
      err = Math.max(err, Math.abs(a[i] - b[i]));
      mag = Math.max(mag, Math.abs(b[i]));
    }
    ok(err <= 1e-4 * mag, `${msg} row ${r}: max err ${err}, max |y| ${mag}`);
  }
}

// Fixed seeds: at a value within f32 rounding of a tie (k + 0.5) the f32 quantiser and the
// float64 fake-quant may pick neighbouring integers; these seeds have none.
for (const name of ["cpu", "webgpu", "wasm"] as const) {
  Deno.test({
    name: `PackedBitLinear on ${name} matches BitLinear's fake-quant forward via the seam`,
    ignore: name === "webgpu" && !hasWebGPU,
    async fn() {
      const backend: Backend = name === "webgpu"
        ? await gpu()
        : name === "wasm"
        ? await wasm()
        : cpu;
      const bl = bitLinear(11);
      const packed = await packBitLinear(bl.weight, bl.norm.weight, bl.bias, { backend });
      strictEqual(packed.outFeatures, OUT);
      deepStrictEqual(packed.weights.packed.shape, [OUT, ternaryRowWords(IN)]);
      for (const shape of [[1, 1, IN], [2, 3, IN], [IN]]) {
        const n = shape.reduce((a, b) => a * b, 1);
        const x64 = Float64Array.from(randnArray(n, 29 + n));
        const want = await bl.forward(fromArray(x64, shape, { backend: cpu })).data();
        const x = fromArray(Float32Array.from(x64), shape, { backend });
        const y = packed.forward(x);
        deepStrictEqual(y.shape, [...shape.slice(0, -1), OUT]);
        strictEqual(y.dtype, "f32");
        assertRows(await y.data(), want, OUT, `${name} x ${JSON.stringify(shape)}`);
        // Through the seam: BitLinear in eval mode runs the packed forward.
        bl.setInference((xx) => packed.forward(xx));
        const viaSeam = await bl.forward(x).data();
        bl.setInference(null);
        deepStrictEqual(viaSeam, await y.data());
      }
      packed.dispose();
    },
  });
}

Deno.test("PackedBitLinear keeps f64 on the cpu backend and rejects bad shapes", async () => {
  const bl = bitLinear(5);
  const packed = await packBitLinear(bl.weight, bl.norm.weight, bl.bias);
  const x = fromArray(randnArray(2 * IN, 3), [2, IN], { backend: cpu });
  const y = packed.forward(x);
  strictEqual(y.dtype, "f64");
  assertRows(await y.data(), await bl.forward(x).data(), OUT, "f64");
  const bad = fromArray(new Float64Array(2 * 7), [2, 7], { backend: cpu });
  throws(
    () => packed.forward(bad),
    /PackedBitLinear.forward: x is \[2, 7\], expected \[\.\.\., 100\]/,
  );
  await packBitLinear(fromArray(new Float32Array(3), [3], { backend: cpu }), bl.norm.weight).then(
    () => ok(false, "1-D weight accepted"),
    (e) => ok(/packBitLinear: weight is \[3\], expected \[N, K\]/.test(String(e))),
  );
});

Deno.test("packedToSafetensors/packedFromSafetensors round-trip a safetensors file", async () => {
  const bl = bitLinear(7);
  const packed = await packBitLinear(bl.weight, bl.norm.weight, bl.bias);
  const records = await packedToSafetensors(packed, "transformer.h.0.mlp.c_fc");
  deepStrictEqual(
    Object.entries(records).map(([k, r]) => [k, r.dtype, r.shape]),
    [
      ["transformer.h.0.mlp.c_fc.weight_packed", "U32", [OUT, ternaryRowWords(IN)]],
      ["transformer.h.0.mlp.c_fc.weight_scale", "F32", [1]],
      ["transformer.h.0.mlp.c_fc.norm.weight", "F32", [IN]],
      ["transformer.h.0.mlp.c_fc.bias", "F32", [OUT]],
    ],
  );
  const file = writeSafetensors(records);
  // Packed weights are ≈ 1/16 of the f32 weights: OUT·ceil(IN/16)·4 bytes vs OUT·IN·4.
  strictEqual(records["transformer.h.0.mlp.c_fc.weight_packed"].data.byteLength, OUT * 7 * 4);
  const { tensors } = readSafetensors(file);
  const back = packedFromSafetensors(tensors, "transformer.h.0.mlp.c_fc");
  strictEqual(back.weights.scale, packed.weights.scale);
  const x = fromArray(Float32Array.from(randnArray(3 * IN, 8)), [3, IN], { backend: cpu });
  deepStrictEqual(await back.forward(x).data(), await packed.forward(x).data());
  throws(() => packedFromSafetensors(tensors, "nope"), /missing tensor 'nope.weight_packed'/);
  const wrong = {
    ...tensors,
    "p.weight_packed": { ...records["transformer.h.0.mlp.c_fc.norm.weight"] },
  };
  throws(() => packedFromSafetensors(wrong, "p"), /'p.weight_packed' is F32, expected U32/);
});

Deno.test({
  name: "PackedBitLinear.forward on WebGPU leaves the live buffer count flat",
  ignore: !hasWebGPU,
  async fn() {
    const backend = await gpu() as WebGpuBackend;
    const w = fromArray(new Generator(3).normal(OUT * IN), [OUT, IN], { backend: cpu });
    const g = fromArray(new Float32Array(IN).fill(1), [IN], { backend: cpu });
    const packed = await packBitLinear(w, g, null, { backend });
    const x1 = fromArray(Float32Array.from(randnArray(IN, 1)), [1, IN], { backend });
    const x4 = fromArray(Float32Array.from(randnArray(4 * IN, 2)), [4, IN], { backend });
    const step = async () => {
      for (const x of [x1, x4]) {
        const y = packed.forward(x);
        await y.data();
        y.dispose();
      }
    };
    await step();
    // Garbage of earlier tests is finalised (its buffers released) whenever V8 collects it:
    // collect it before each count so only this layer's buffers are compared.
    await settleGarbage();
    const live = backend.stats().liveBuffers;
    for (let i = 0; i < 5; i++) await step();
    await settleGarbage();
    strictEqual(backend.stats().liveBuffers, live);
    packed.dispose();
  },
});
