// Row-chunked weights (nn/split.ts): chunk planning against a byte limit (GPT-2 XL's wte against
// llvmpipe's 128 MiB), Embedding and Linear held as chunks equal to the unsplit layers (same
// seed: same init, values, gradients), row slices across chunks, and joining / cutting host
// state dicts, optimizer-style suffixes included.

import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { tensor } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { sum } from "../../kernels/mod.ts";
import { Embedding, Linear } from "../../nn/layers.ts";
import { chunkRows, joinChunks, RowChunks, splitChunks } from "../../nn/split.ts";
import { assertClose, cpu, t64, values } from "../util.ts";

const MiB = 2 ** 20;

Deno.test("chunkRows: one chunk when it fits, else the fewest balanced chunks under the limit", () => {
  deepStrictEqual(chunkRows(65, 44, 4, 65 * 44 * 4), [65]);
  deepStrictEqual(chunkRows(65, 44, 4, 4096), [22, 22, 21]);
  // GPT-2 XL's padded wte: 50304 × 1600 f32 = 322 MB in 3 chunks of ≤ 128 MiB, 256-byte sized.
  const xl = chunkRows(50304, 1600, 4, 128 * MiB);
  deepStrictEqual(xl, [16768, 16768, 16768]);
  // Rows of 44 f32 (176 bytes) round up to 16-row multiples (2816 bytes) where that still fits.
  deepStrictEqual(chunkRows(1000, 44, 4, 176 * 120), [112, 112, 112, 112, 112, 112, 112, 112, 104]);
  deepStrictEqual(chunkRows(1000, 44, 4, 176 * 100), Array(10).fill(100));
  throws(() => chunkRows(3, 100, 4, 399), /one row of 100 elements needs 400 bytes/);
});

Deno.test("Embedding over maxBytes holds row chunks equal to the unsplit table", async () => {
  const whole = new Embedding(10, 3, { backend: cpu, generator: new Generator(4), dtype: "f64" });
  const split = new Embedding(10, 3, {
    backend: cpu,
    generator: new Generator(4),
    dtype: "f64",
    maxBytes: 4 * 3 * 8,
  });
  ok(split.table instanceof RowChunks);
  deepStrictEqual(split.namedParameters().map(([n, p]) => [n, [...p.shape]]), [
    ["weight.0", [4, 3]],
    ["weight.1", [4, 3]],
    ["weight.2", [2, 3]],
  ]);
  throws(() => split.weight, /Embedding: the weight \[10, 3\] is held as 3 row chunks/);
  const ids = tensor(Int32Array.from([9, 0, 4, 3, 7, 4]), [2, 3], { backend: cpu });
  const [a, b] = [whole.forward(ids), split.forward(ids)];
  deepStrictEqual(Array.from(await values(b)), Array.from(await values(a)));
  // Rows 2..8 cross all three chunks.
  deepStrictEqual(
    Array.from(await values(split.rows(2, 7))),
    Array.from(await values(whole.rows(2, 7))),
  );
  sum(a).backward();
  sum(b).backward();
  const grads = await Promise.all(split.table.parts.map((p) => values(p.grad!)));
  deepStrictEqual(
    grads.flatMap((g) => Array.from(g)),
    Array.from(await values(whole.weight.grad!)),
  );
});

Deno.test("Linear over maxBytes: chunk outputs joined equal the unsplit layer, grads too", async () => {
  const opts = { backend: cpu, dtype: "f64" as const };
  const whole = new Linear(5, 9, { ...opts, generator: new Generator(8) });
  const split = new Linear(5, 9, { ...opts, generator: new Generator(8), maxBytes: 4 * 5 * 8 });
  deepStrictEqual(split.namedParameters().map(([n]) => n), [
    "bias",
    "weight.0",
    "weight.1",
    "weight.2",
  ]);
  const x = t64(new Generator(1).normal(2 * 3 * 5), [2, 3, 5], cpu, true);
  const x2 = t64(await values(x), [2, 3, 5], cpu, true);
  const [a, b] = [whole.forward(x), split.forward(x2)];
  deepStrictEqual(Array.from(await values(b)), Array.from(await values(a)));
  const w = t64(new Generator(2).normal(a.size), [...a.shape]);
  a.backward(w);
  b.backward(w);
  // dx sums the chunks' partial products: equal up to the order of additions.
  assertClose(await values(x2.grad!), await values(x.grad!), { atol: 1e-14, rtol: 1e-14 });
  const t = split.table as RowChunks;
  const grads = await Promise.all(t.parts.map((p) => values(p.grad!)));
  deepStrictEqual(
    grads.flatMap((g) => Array.from(g)),
    Array.from(await values(whole.weight.grad!)),
  );
  deepStrictEqual(
    Array.from(await values(split.bias!.grad!)),
    Array.from(await values(whole.bias!.grad!)),
  );
});

Deno.test("joinChunks / splitChunks: whole entries in the weight's place, suffixes kept", async () => {
  const e = new Embedding(5, 2, { backend: cpu, maxBytes: 2 * 2 * 4 });
  const chunked = {
    "weight.0": { shape: [2, 2], data: Float32Array.from([0, 1, 2, 3]) },
    "weight.1": { shape: [2, 2], data: Float32Array.from([4, 5, 6, 7]) },
    "weight.2": { shape: [1, 2], data: Float32Array.from([8, 9]) },
    "weight.0.exp_avg": { shape: [2, 2], data: Float32Array.from([0, -1, -2, -3]) },
    "weight.1.exp_avg": { shape: [2, 2], data: Float32Array.from([-4, -5, -6, -7]) },
    "weight.2.exp_avg": { shape: [1, 2], data: Float32Array.from([-8, -9]) },
    other: { shape: [1], data: Float32Array.from([42]) },
  };
  const whole = joinChunks(e, chunked);
  deepStrictEqual(Object.keys(whole), ["weight", "weight.exp_avg", "other"]);
  deepStrictEqual(whole.weight.shape, [5, 2]);
  deepStrictEqual(Array.from(whole.weight.data), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  ok(whole.weight.data instanceof Float32Array);
  deepStrictEqual(Array.from(whole["weight.exp_avg"].data), [
    0,
    -1,
    -2,
    -3,
    -4,
    -5,
    -6,
    -7,
    -8,
    -9,
  ]);
  const back = splitChunks(e, whole);
  deepStrictEqual(Object.keys(back).sort(), Object.keys(chunked).sort());
  for (const [k, v] of Object.entries(chunked)) {
    const got = back[k] as { shape: number[]; data: ArrayLike<number> };
    deepStrictEqual([got.shape, Array.from(got.data)], [v.shape, Array.from(v.data)], k);
  }
  throws(
    () => splitChunks(e, { weight: { shape: [4, 2], data: new Float32Array(8) } }),
    /shape mismatch weight: given \[4, 2\], model has \[5, 2\]/,
  );
  // Whole tensors are cut into views and load in place.
  e.loadStateDict(splitChunks(e, { weight: t64([...Array(10).keys()], [5, 2]) }));
  const t = e.table as RowChunks;
  deepStrictEqual(Array.from(await values(t.parts[2])), [8, 9]);
});
