// The README's "Inside" recipes, followed to the letter: a new op declared with defineOp (shape
// rule, CPU reference, WGSL, backward, split rule) and applied; a new model as a GPT with other
// parts; a new backend as the Backend interface over typed arrays. Each is then used as the
// engine's own are: parity with the CPU reference, a gradient check, a training step.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { Backend, BackendTraits, BoundArg, Kernel, Storage } from "../../engine/backend.ts";
import type { DType, TypedArray } from "../../engine/dtype.ts";
import { allocArray } from "../../engine/dtype.ts";
import { fromArray } from "../../engine/creation.ts";
import { apply, defineOp, type KernelOp } from "../../engine/op.ts";
import { splitRows } from "../../engine/split.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { grid1d, linearIndex, WORKGROUP_SIZE } from "../../engine/webgpu/codegen.ts";
import { wgslType } from "../../engine/dtype.ts";
import { abs, add, mul, relu, scale } from "../../kernels/mod.ts";
import {
  type BlockLike,
  type BlockOptions,
  CausalSelfAttention,
  GPT,
  MLP,
  type ModelOptions,
} from "../../models/gpt.ts";
import { LayerNorm } from "../../nn/layers.ts";
import { Module } from "../../nn/module.ts";
import type { GPTConfig } from "../../models/config.ts";
import { getPreset } from "../../models/presets.ts";
import { AdamW } from "../../nn/optim.ts";
import { Generator } from "../../engine/random.ts";
import { tidy } from "../../engine/scope.ts";
import { assertClose, cpu, gpu, gradCheck, hasWebGPU, randnArray } from "../util.ts";
import { wasmParity } from "../kernels/gpu_helpers.ts";

// ---- Recipe 1: an op --------------------------------------------------------------------------

/** y = x·|x| elementwise (a toy op): x [...] -> y [...], one invocation per element. */
const squareSignedOp: KernelOp<void> = defineOp<void>({
  name: "squareSigned",
  shape: ([x]) => [...x.shape],
  cpu([x], [y]) {
    for (let i = 0; i < y.length; i++) y[i] = x.data[i] * Math.abs(x.data[i]);
  },
  webgpu([x], [y]) {
    const t = wgslType(x.dtype);
    const n = y.shape.reduce((a, b) => a * b, 1);
    return {
      source: `
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read_write> y: array<${t}>;
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = ${linearIndex()};
  if (i >= ${n}u) { return; }
  y[i] = x[i] * abs(x[i]);
}`,
      grid: grid1d(n),
    };
  },
  split: (inputs, outputs, p, limits) => splitRows(inputs, outputs, p, limits),
  backward: (dy, { inputs: [x] }) => [mul(dy, scale(abs(x), 2))], // d(x|x|)/dx = 2|x|
});

/** x·|x|, differentiable. */
function squareSigned(x: Tensor): Tensor {
  return apply(squareSignedOp, [x], undefined);
}

Deno.test("recipe: an op from defineOp matches its CPU reference and its gradient", async () => {
  const v = randnArray(37, 3);
  const want = Array.from(v, (a) => a * Math.abs(a));
  const x = fromArray(v, [37], { backend: cpu, dtype: "f64" });
  deepStrictEqual(Array.from(await squareSigned(x).data()), want);
  await gradCheck((t) => squareSigned(t), [{ shape: [9] }]);
  if (hasWebGPU) {
    const g = fromArray(Float32Array.from(v), [37], { backend: await gpu() });
    assertClose(await squareSigned(g).data(), want, { atol: 1e-6, rtol: 1e-6 });
  }
  // Without a wasm implementation the wasm backend runs the CPU reference on its heap.
  await wasmParity("squareSigned", squareSigned, [{ shape: [5, 37] }]);
});

// ---- Recipe 2: a model ------------------------------------------------------------------------

/** The MLP with ReLU in place of GELU. */
class ReluMLP extends MLP {
  override forward(x: Tensor): Tensor {
    return this.dropout.forward(this.c_proj.forward(relu(this.c_fc.forward(x))));
  }
}

/** GPT's block with the ReLU MLP. */
class ReluBlock extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: ReluMLP;
  constructor(c: GPTConfig, residStd: number, o: ModelOptions) {
    super();
    this.ln_1 = this.addModule("ln_1", new LayerNorm(c.nEmbd, o));
    this.attn = this.addModule("attn", new CausalSelfAttention(c, residStd, o));
    this.ln_2 = this.addModule("ln_2", new LayerNorm(c.nEmbd, o));
    this.mlp = this.addModule("mlp", new ReluMLP(c, residStd, o));
  }
  forward(x: Tensor, o: BlockOptions = {}): Tensor {
    x = add(x, this.attn.forward(this.ln_1.forward(x), o));
    return add(x, this.mlp.forward(this.ln_2.forward(x)));
  }
}

/** The model: GPT with other parts (as models/bitgpt.ts is). */
class ReluGPT extends GPT {
  override get kind(): string {
    return "relugpt";
  }
  protected override block(c: GPTConfig, residStd: number, o: ModelOptions): BlockLike {
    return new ReluBlock(c, residStd, o);
  }
}

Deno.test("recipe: a model as GPT with other parts trains", async () => {
  const m = new ReluGPT(getPreset("nano").model, { backend: cpu, generator: new Generator(1) });
  strictEqual(m.kind, "relugpt");
  const g = new Generator(2);
  const ids = (a: Int32Array) => fromArray(a, [2, 8], { backend: cpu, dtype: "i32" });
  const [x, y] = [ids(g.integers(16, 65)), ids(g.integers(16, 65))];
  const opt = new AdamW(m, { lr: 1e-2 });
  const losses: number[] = [];
  for (let i = 0; i < 5; i++) {
    const loss = tidy(() => {
      const { loss } = m.forward(x, y);
      loss.backward();
      opt.step();
      opt.zeroGrad();
      return loss;
    });
    losses.push(await loss.item());
  }
  ok(losses[4] < losses[0], `losses ${losses}`);
});

// ---- Recipe 3: a backend ----------------------------------------------------------------------

class ArrayStorage implements Storage {
  readonly backend = "cpu";
  constructor(readonly data: TypedArray, readonly dtype: DType) {}
  get size(): number {
    return this.data.length;
  }
}

/** A backend over typed arrays that runs every kernel's CPU reference (as engine/cpu is). */
class ArrayBackend implements Backend {
  readonly name = "cpu";
  readonly traits: BackendTraits = {
    maxBindingBytes: Infinity,
    bindingAlign: 4,
    maxTensorBytes: 2 ** 31,
    maxLoopIterations: Infinity,
  };
  runs = 0;
  alloc(size: number, dtype: DType): Storage {
    return new ArrayStorage(allocArray(dtype, size), dtype);
  }
  upload(data: TypedArray, dtype: DType): Storage {
    const s = this.alloc(data.length, dtype) as ArrayStorage;
    s.data.set(data);
    return s;
  }
  write(storage: Storage, data: TypedArray): void {
    (storage as ArrayStorage).data.set(data);
  }
  read(storage: Storage): Promise<TypedArray> {
    return Promise.resolve((storage as ArrayStorage).data.slice());
  }
  free(): void {}
  run<P>(kernel: Kernel<P>, inputs: BoundArg[], outputs: BoundArg[], params: P): void {
    this.runs++;
    const data = (a: BoundArg) => (a.storage as ArrayStorage).data;
    kernel.cpu(inputs.map((a) => ({ ...a.info, data: data(a) })), outputs.map(data), params);
  }
  sync(): Promise<void> {
    return Promise.resolve();
  }
  describe(): string {
    return "arrays (a recipe)";
  }
}

Deno.test("recipe: a backend from the Backend interface runs the model", async () => {
  const be = new ArrayBackend();
  const m = new GPT(getPreset("nano").model, { backend: be, generator: new Generator(1) });
  const ids = fromArray(new Int32Array([1, 2, 3, 4]), [1, 4], { backend: be, dtype: "i32" });
  const { logits } = m.forward(ids);
  deepStrictEqual([...logits.shape], [1, 4, 65]);
  ok(be.runs > 10, `${be.runs} launches`);
  const ref = new GPT(getPreset("nano").model, { backend: cpu, generator: new Generator(1) });
  const want =
    ref.forward(fromArray(new Int32Array([1, 2, 3, 4]), [1, 4], { dtype: "i32" })).logits;
  assertClose(await logits.data(), await want.data(), { atol: 1e-6, rtol: 1e-6 });
});
