// Texture staging helpers (kernels/texture_stage.ts): sides that are never powers of two, and a
// u32 matrix staged by copy exactly where WebGPU's 256-byte bytesPerRow rule allows.

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { npot, u32Stage } from "../../kernels/texture_stage.ts";

Deno.test("npot: sizes that are not powers of two, at least 3, never smaller", () => {
  deepStrictEqual([1, 2, 3, 4, 5, 8, 12, 16, 1024, 1025].map(npot), [
    3,
    3,
    3,
    5,
    5,
    9,
    12,
    17,
    1025,
    1025,
  ]);
});

Deno.test("u32Stage: copies rows of 256-byte multiples, fills the rest (zeros past the matrix)", () => {
  const w = u32Stage(0, 2048, 128, 1, "w"); // 512-byte rows of single-word texels
  strictEqual(w.label, "w[copy]");
  deepStrictEqual(w.copy, {
    offset: 0,
    bytesPerRow: 512,
    rowsPerImage: 2048,
    size: [128, 2048, 1],
  });
  deepStrictEqual([w.format, w.width, w.height], ["r32uint", 129, 2049]);
  const x = u32Stage(1, 5, 48, 4, "x"); // 192-byte rows: a fill
  strictEqual(x.label, "x[fill]");
  strictEqual(x.copy, undefined);
  deepStrictEqual([x.format, x.width, x.height], ["rgba32uint", 12, 5]);
  deepStrictEqual(Array.from(x.fill!.uniforms as Uint32Array), [5, 12, 12, 5]);
});
