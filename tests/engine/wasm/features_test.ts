// The feature probe on this runtime (Deno 2.9: SIMD128, relaxed SIMD, threads, blocking waits
// on the main thread) and its one-line description.

import { ok, strictEqual } from "node:assert/strict";
import { describeFeatures, wasmFeatures } from "../../../engine/wasm/features.ts";

Deno.test("Deno has SIMD128, relaxed SIMD and threads, and may block on the main thread", () => {
  const f = wasmFeatures();
  ok(f.simd && f.relaxedSimd && f.threads && f.canBlock, JSON.stringify(f));
  strictEqual(f.threadsWhy, "");
  strictEqual(wasmFeatures(), f, "probed once");
  ok(/^simd128, relaxed-simd.*, threads$/.test(describeFeatures(f)), describeFeatures(f));
});

Deno.test("without threads the description says why", () => {
  const f = { ...wasmFeatures(), threads: false, threadsWhy: "SharedArrayBuffer is unavailable" };
  ok(describeFeatures(f).endsWith("no threads (SharedArrayBuffer is unavailable)"));
});
