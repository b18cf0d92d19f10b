// Launches larger than one binding (engine/op.ts `launch`, engine/split.ts, each kernel's split
// rule), checked on CPU backends whose binding limit is lowered to a few hundred bytes: every op
// that a large model runs over a big tensor gives, cut into pieces, exactly what it gives whole
// (float64, same summation order), gradients included. A launch no rule can cut is refused
// with the kernel's name and the numbers. The WebGPU side: tests/models/limits_test.ts.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { CpuBackend } from "../../engine/cpu/backend.ts";
import type { Backend } from "../../engine/backend.ts";
import { fromArray, zeros } from "../../engine/creation.ts";
import { DeviceLimitError } from "../../engine/errors.ts";
import { splitRows } from "../../engine/split.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { noGrad } from "../../engine/autograd.ts";
import {
  adamwUpdate,
  add,
  argmax,
  cat,
  contiguous,
  crossEntropy,
  dropout,
  embedding,
  gelu,
  layerNorm,
  matmul,
  mul,
  padAxis,
  rmsNorm,
  softmax,
  sum,
  topk,
  transpose,
} from "../../kernels/mod.ts";
import { activationLevels } from "../../kernels/ternary/bit_quant.ts";
import { packActivations } from "../../kernels/ternary/quant.ts";
import { Generator } from "../../engine/random.ts";
import { assertClose, freshSeed, randnArray } from "../util.ts";

const whole = new CpuBackend();
/** A backend whose arguments may span 512 bytes: 64 float64 values. */
const small = new CpuBackend({ maxBindingBytes: 512 });
/** 8 KiB: the norms' parameter gradients sum blocks of 64 rows, which must fit one binding. */
const medium = new CpuBackend({ maxBindingBytes: 8192 });

/** f64 tensor of seeded normals on `b`. */
function rnd(shape: number[], seed: number, b: Backend, requiresGrad = false): Tensor {
  const n = shape.reduce((a, c) => a * c, 1);
  return fromArray(randnArray(n, seed), shape, { backend: b, dtype: "f64", requiresGrad });
}

/** Run `f` on both backends (same seeded inputs) and require identical results. */
async function same(
  what: string,
  f: (b: Backend) => Tensor[],
  { exact = true, atol = 1e-12, limited = small } = {},
): Promise<void> {
  const [a, c] = [whole, limited].map(f);
  for (let i = 0; i < a.length; i++) {
    const [x, y] = [await a[i].data(), await c[i].data()];
    if (exact) deepStrictEqual(Array.from(y), Array.from(x), `${what}: output ${i}`);
    else assertClose(y, x, { atol, rtol: 1e-12, msg: `${what}: output ${i}` });
  }
}

Deno.test("splitRows: whole rows within the limit, aligned starts, null when a row is too big", () => {
  const info = (shape: number[]) => ({
    shape,
    strides: shape.map((_, i) => shape.slice(i + 1).reduce((a, c) => a * c, 1)),
    offset: 0,
    dtype: "f32" as const,
  });
  const x = info([100, 10]); // rows of 40 bytes
  const pieces = splitRows([x, info([10])], [x], null, { maxBytes: 400, align: 80 })!;
  ok(pieces.length > 1);
  let next = 0;
  for (const p of pieces) {
    strictEqual(p.outputs[0].offset, next * 10, "pieces follow each other");
    ok(p.outputs[0].shape[0] * 40 <= 400, "within the limit");
    strictEqual((p.outputs[0].offset * 4) % 80, 0, "aligned start");
    strictEqual(p.inputs[1].shape[0], 10, "the [10] input is not cut");
    next += p.outputs[0].shape[0];
  }
  strictEqual(next, 100);
  strictEqual(splitRows([x], [x], null, { maxBytes: 39, align: 4 }), null);
});

Deno.test("elementwise ops, broadcasts and copies over the limit equal the whole launch", async () => {
  const s = freshSeed();
  await same(`add/mul/gelu seed ${s}`, (b) => {
    const x = rnd([37, 9], s, b);
    const bias = rnd([9], s + 1, b);
    return [add(x, bias), mul(x, x), gelu(x), contiguous(transpose(x))];
  });
});

Deno.test("gradients through elementwise ops and broadcasts, in pieces", async () => {
  const s = freshSeed();
  await same(`grads seed ${s}`, (b) => {
    const x = rnd([41, 7], s, b, true);
    const w = rnd([7], s + 1, b, true);
    sum(gelu(mul(x, w))).backward();
    return [x.grad!, w.grad!];
  });
});

Deno.test("row sums, softmax forward and backward over the limit", async () => {
  const s = freshSeed();
  await same(`softmax seed ${s}`, (b) => {
    const x = rnd([3, 19, 13], s, b, true);
    const y = softmax(x, -1);
    const dy = rnd([3, 19, 13], s + 1, b);
    sum(mul(y, dy)).backward();
    return [y, x.grad!, sum(x, -1)];
  });
});

Deno.test("layerNorm and rmsNorm forward and backward over the limit", async () => {
  const s = freshSeed();
  await same(`norms seed ${s}`, (b) => {
    const x = rnd([4, 150, 11], s, b, true);
    const w = rnd([11], s + 1, b, true);
    const bias = rnd([11], s + 2, b, true);
    const y = add(layerNorm(x, w, bias), rmsNorm(x, w));
    sum(mul(y, rnd([4, 150, 11], s + 3, b))).backward();
    return [y, x.grad!, w.grad!, bias.grad!];
  }, { limited: medium });
});

Deno.test("cross-entropy over logits larger than the limit, with its gradient", async () => {
  const s = freshSeed();
  await same(`cross-entropy seed ${s}`, (b) => {
    const logits = rnd([29, 17], s, b, true);
    const t = Int32Array.from({ length: 29 }, (_, i) => (i * 5 + s) % 17);
    t[3] = -1; // ignored
    const loss = crossEntropy(logits, fromArray(t, [29], { backend: b, dtype: "i32" }));
    loss.backward();
    return [loss, logits.grad!];
  });
});

Deno.test("padAxis (narrow's backward) in pieces: cut before, along and after its axis", async () => {
  const s = freshSeed();
  await same(`pad seed ${s}`, (b) => {
    const x = rnd([5, 6, 7], s, b);
    // y [5, 20, 7]: 700 values, cut along dim 0 (x alike), and y [2, 40, 3] cut along the axis
    // or deeper (rows of x in range, or zeros).
    return [padAxis(x, 1, 9, 20), padAxis(rnd([2, 6, 3], s + 1, b), 1, 17, 40)];
  });
});

Deno.test("an AdamW update of a parameter larger than the limit", async () => {
  const s = freshSeed();
  await same(`adamw seed ${s}`, (b) => {
    const p = rnd([33, 8], s, b);
    const m = zeros([33, 8], { backend: b, dtype: "f64" });
    const v = zeros([33, 8], { backend: b, dtype: "f64" });
    const one = fromArray(new Float64Array([0.5]), [1], { backend: b, dtype: "f64" });
    const hp = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 1 };
    adamwUpdate(p, rnd([33, 8], s + 1, b), m, v, one, hp);
    adamwUpdate(p, transpose(rnd([8, 33], s + 2, b)), m, v, one, { ...hp, step: 2 });
    return [p, m, v];
  });
});

Deno.test("dropout in pieces keeps each element's mask (the counter offset follows)", async () => {
  const s = freshSeed();
  await same(`dropout seed ${s}`, (b) => {
    const x = rnd([50, 6], s, b);
    return [dropout(x, 0.3, { training: true, generator: new Generator(s) })];
  });
});

Deno.test("embedding over a table larger than the limit: rows and the table's gradient", async () => {
  const s = freshSeed();
  await same(`embedding seed ${s}`, (b) => {
    const w = rnd([45, 5], s, b, true);
    const ids = Int32Array.from({ length: 23 }, (_, i) => (i * 7 + s) % 45);
    const y = embedding(w, fromArray(ids, [23], { backend: b, dtype: "i32" }));
    sum(mul(y, rnd([23, 5], s + 1, b))).backward();
    return [y, w.grad!];
  });
  const w = rnd([45, 5], s, small);
  throws(
    () => embedding(w, fromArray(new Int32Array([3, 45]), [2], { backend: small, dtype: "i32" })),
    /id 45 at position 1 is out of range \[0, 45\)/,
  );
});

Deno.test("matmul in pieces: batches, row blocks, column blocks written through strides", async () => {
  const s = freshSeed();
  await same(`matmul batches seed ${s}`, (b) => {
    const a = rnd([3, 5, 6], s, b);
    const w = rnd([3, 6, 7], s + 1, b);
    const at = rnd([3, 6, 5], s + 2, b);
    return [matmul(a, w), matmul(transpose(at), w)];
  });
  await same(`matmul row and column blocks seed ${s}`, (b) => {
    const a = rnd([17, 9], s, b); // (17, 9)·(9, 40): 680 outputs in blocks of rows × columns
    const wt = rnd([40, 9], s + 1, b);
    const at = rnd([9, 6], s + 2, b); // Aᵀ: a row of A over k spans 49 values, within 64
    return [matmul(a, transpose(wt)), matmul(transpose(at), transpose(wt))];
  });
});

Deno.test("matmul gradients with operands and outputs over the limit", async () => {
  const s = freshSeed();
  await same(`matmul grads seed ${s}`, (b) => {
    const a = rnd([2, 30, 4], s, b, true);
    const w = rnd([2, 4, 21], s + 1, b, true);
    const y = matmul(a, w);
    sum(mul(y, rnd([2, 30, 21], s + 2, b))).backward();
    return [y, a.grad!, w.grad!];
  }, { exact: false }); // where a backward product sums k in chunks, rounding may differ
});

Deno.test("matmul with an operand larger than the limit along K sums k chunks", async () => {
  const s = freshSeed();
  // One column of B over all of K spans 160 × 8 bytes > 512: K is cut, partial products summed.
  await same(`matmul K chunks seed ${s}`, (b) => {
    const a = rnd([3, 160], s, b);
    const w = rnd([160, 2], s + 1, b);
    return [matmul(a, w)];
  }, { exact: false, atol: 1e-12 });
});

Deno.test("the ternary activation quantisers in pieces give the same bytes and levels", async () => {
  const s = freshSeed();
  await same(`quantisers seed ${s}`, (b) => {
    const x = rnd([3, 150, 10], s, b, true);
    const g = rnd([10], s + 1, b, true);
    const { q, scale } = activationLevels(x, g);
    sum(mul(q, rnd([3, 150, 10], s + 2, b))).backward();
    const packed = noGrad(() => packActivations(x, g));
    return [q, scale, x.grad!, g.grad!, packed.data, packed.scale, packed.sum];
  }, { limited: medium });
});

Deno.test("a launch no split rule can cut is refused with its kernel, bytes and limit", async () => {
  const x = rnd([1, 200], freshSeed(), small); // one row of 1600 bytes: no rows to cut
  throws(() => topk(x, 3), (e: Error) => {
    ok(e instanceof DeviceLimitError, `${e}`);
    ok(/topk: an argument \[1, 200\] f64 spans 1600 bytes/.test(e.message), e.message);
    ok(e.message.includes("binding limit of 512 bytes"), e.message);
    return true;
  });
  throws(() => argmax(x, -1), /argmax: a row of 200 f64 elements is longer than one binding/);
  deepStrictEqual((await cat([x, x], 0).data()).length, 400, "cat's slot copies are cut");
});
