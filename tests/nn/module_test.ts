// Module: names and order, tying, train/eval, state dicts (round trip and every error kind),
// moving between backends, and Parameters surviving tidy.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { tensor, zeros } from "../../engine/creation.ts";
import { tidy } from "../../engine/scope.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { mul, sum } from "../../kernels/mod.ts";
import { Module, ModuleList, Parameter, parameter, StateDictError } from "../../nn/module.ts";
import { cpu, gpu, hasWebGPU, values } from "../util.ts";

class Leaf extends Module {
  constructor(n: number, tied?: Parameter) {
    super();
    this.addParameter(
      "weight",
      tied ?? tensor(Array.from({ length: n * 2 }, (_, i) => i), [n, 2], { backend: cpu }),
    );
    this.addParameter("bias", zeros([n], { backend: cpu }));
  }
}

class Tree extends Module {
  readonly a: Leaf;
  readonly list: ModuleList<Leaf>;
  readonly head: Leaf;
  constructor() {
    super();
    this.a = this.addModule("a", new Leaf(3));
    this.list = this.addModule("list", new ModuleList([new Leaf(1), new Leaf(2)]));
    this.head = this.addModule("head", new Leaf(3, this.a.param("weight")));
  }
}

Deno.test("namedParameters: dotted names in registration order, tied weights once", () => {
  const m = new Tree();
  deepStrictEqual(m.namedParameters().map(([n]) => n), [
    "a.weight",
    "a.bias",
    "list.0.weight",
    "list.0.bias",
    "list.1.weight",
    "list.1.bias",
    "head.bias",
  ]);
  deepStrictEqual(Object.keys(m.stateDict()), [
    "a.weight",
    "a.bias",
    "list.0.weight",
    "list.0.bias",
    "list.1.weight",
    "list.1.bias",
    "head.weight",
    "head.bias",
  ]);
  deepStrictEqual(m.tiedNames(), { "head.weight": "a.weight" });
  strictEqual(m.numParameters(), 6 + 3 + 2 + 1 + 4 + 2 + 3);
  ok(m.parameters().every((p) => p.requiresGrad && p instanceof Parameter));
});

Deno.test("train/eval reach every descendant", () => {
  const m = new Tree();
  m.eval();
  ok(m.namedModules().every(([, x]) => !x.training));
  m.train();
  ok(m.namedModules().every(([, x]) => x.training));
});

Deno.test("registering a name twice or a dotted name throws", () => {
  class Bad extends Module {
    constructor(name: string, twice: boolean) {
      super();
      this.addParameter(name, zeros([1], { backend: cpu }));
      if (twice) this.addParameter(name, zeros([1], { backend: cpu }));
    }
  }
  throws(() => new Bad("w", true), /already registered/);
  throws(() => new Bad("a.b", false), /invalid name/);
});

Deno.test("Parameters survive tidy; intermediates do not", async () => {
  let inner: Tensor | null = null;
  const p = tidy(() => {
    const q = parameter(tensor([1, 2], [2], { backend: cpu }));
    inner = mul(q, 2);
    return null;
  });
  strictEqual(p, null);
  ok(inner!.disposed);
  const q2 = tidy(() => parameter(tensor([3], [1], { backend: cpu })));
  deepStrictEqual(Array.from(await q2.data()), [3]);
});

Deno.test("stateDict -> loadStateDict round trip copies values in place", async () => {
  const src = new Tree();
  const dst = new Tree();
  for (const p of dst.parameters()) {
    p.backend.write(p.ref.storage, new Float32Array(p.size).fill(7));
  }
  const before = dst.a.param("weight");
  dst.loadStateDict(src.stateDict());
  strictEqual(dst.a.param("weight"), before); // same tensor, new values
  deepStrictEqual(Array.from(await dst.a.param("weight").data()), [0, 1, 2, 3, 4, 5]);
  deepStrictEqual(Array.from(await dst.head.param("weight").data()), [0, 1, 2, 3, 4, 5]);
});

Deno.test("loadStateDict accepts host arrays and a tied alias for its primary", async () => {
  const m = new Tree();
  const dict: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [n, p] of Object.entries(m.stateDict())) {
    if (n === "a.weight") continue; // given only as its alias head.weight
    dict[n] = { shape: [...p.shape], data: new Float32Array(p.size).fill(n.length) };
  }
  m.loadStateDict(dict);
  deepStrictEqual(Array.from(await m.a.param("weight").data()), new Array(6).fill(11));
});

Deno.test("loadStateDict errors name missing, unexpected and mis-shaped entries", () => {
  const m = new Tree();
  const sd: Record<string, Tensor> = { ...m.stateDict() };
  delete sd["a.bias"];
  delete sd["list.1.weight"];
  sd["extra.weight"] = zeros([2], { backend: cpu });
  throws(
    () => m.loadStateDict(sd),
    (e: Error) =>
      e instanceof StateDictError && /missing a\.bias, list\.1\.weight/.test(e.message) &&
      /unexpected extra\.weight/.test(e.message),
  );
  m.loadStateDict(sd, { strict: false }); // missing/unexpected tolerated
  const bad = { ...m.stateDict(), "head.bias": zeros([4], { backend: cpu }) };
  throws(
    () => m.loadStateDict(bad, { strict: false }),
    /shape mismatch head\.bias: given \[4\], model has \[3\]/,
  );
  throws(
    () => m.loadStateDict({ ...m.stateDict(), "a.bias": { shape: [3], data: [1, 2] } }),
    /2 values for shape \[3\]/,
  );
});

Deno.test("gradients flow to parameters and zeroGrad drops them", async () => {
  const m = new Tree();
  sum(mul(m.a.param("weight"), m.a.param("weight"))).backward();
  deepStrictEqual(Array.from(await values(m.a.param("weight").grad!)), [0, 2, 4, 6, 8, 10]);
  m.zeroGrad();
  strictEqual(m.a.param("weight").grad, null);
});

Deno.test("dispose releases every parameter", () => {
  const m = new Tree();
  const ps = m.parameters();
  m.dispose();
  ok(ps.every((p) => p.disposed));
});

Deno.test({
  name: "to(webgpu) moves parameters, keeps ties, and back to cpu",
  ignore: !hasWebGPU,
  fn: async () => {
    const m = new Tree();
    const g = await gpu();
    await m.to(g);
    ok(m.parameters().every((p) => p.backend === g && p instanceof Parameter && p.requiresGrad));
    strictEqual(m.head.param("weight"), m.a.param("weight"));
    deepStrictEqual(Array.from(await m.head.param("weight").data()), [0, 1, 2, 3, 4, 5]);
    const sd = new Tree().stateDict(); // cpu tensors load into a gpu model
    m.loadStateDict(sd);
    await m.to(cpu);
    ok(m.parameters().every((p) => p.backend === cpu));
    deepStrictEqual(Array.from(await m.a.param("weight").data()), [0, 1, 2, 3, 4, 5]);
  },
});
