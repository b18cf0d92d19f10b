// The memory check of `train` (cli/preflight.ts): refuse a run over the machine's memory, or over
// the one memory a backend keeps every tensor in (wasm's heap), with the estimate in one line;
// warn over what is available now; say nothing otherwise.

import { ok, strictEqual, throws } from "node:assert/strict";
import { checkTrainingMemory } from "../../cli/preflight.ts";
import { FlagError } from "../../cli/flags.ts";
import type { Backend } from "../../engine/backend.ts";
import { makeConfig } from "../../models/config.ts";
import { getPreset } from "../../models/presets.ts";
import { cpu } from "../util.ts";

const CFG = makeConfig({ vocabSize: 65, blockSize: 64, nLayer: 2, nHead: 2, nEmbd: 32 });
const GB = 1e9;

Deno.test("preflight: refuse over the machine, warn over what is free, quiet otherwise", () => {
  strictEqual(checkTrainingMemory("gpt", CFG, 4, cpu, { total: 16 * GB, available: 8 * GB }), null);
  const warn = checkTrainingMemory("gpt", CFG, 4, cpu, { total: 16 * GB, available: 1e6 });
  ok(warn?.startsWith("warning: the run needs about ") && warn.includes("may fail"), warn!);
  throws(
    () => checkTrainingMemory("gpt", CFG, 100_000_000, cpu, { total: 16 * GB, available: 8 * GB }),
    (e: Error) =>
      e instanceof FlagError &&
      /^the run needs about [\d.]+ TB \(weights and gradients .* batch 51\.2 GB\), more than this machine's 16\.0 GB; use a smaller --batch-size/
        .test(e.message),
  );
  // No figures (no --allow-sys): nothing to check against.
  strictEqual(checkTrainingMemory("gpt", CFG, 100_000_000, cpu, null), null);
});

Deno.test("preflight: a backend whose tensors share one memory refuses a run over it", () => {
  // The wasm backend's traits: every tensor in one heap of at most 4 GiB (wasm32).
  const heap = { name: "wasm", traits: { ...cpu.traits, maxTotalBytes: 2 ** 32 } } as Backend;
  const machine = { total: 64 * GB, available: 64 * GB };
  strictEqual(checkTrainingMemory("gpt", CFG, 4, heap, machine), null);
  const gpt2 = getPreset("gpt2").model;
  throws(
    () => checkTrainingMemory("gpt", gpt2, 12, heap, machine),
    (e: Error) =>
      e instanceof FlagError &&
      /^the run needs about [\d.]+ GB \(weights and gradients .*\), more than the wasm backend's 4\.3 GB \(one memory holds every tensor\); use a smaller --batch-size, .* or another --backend$/
        .test(e.message),
  );
  // Checked without the machine's figures too: the heap's bound is known.
  throws(() => checkTrainingMemory("gpt", gpt2, 12, heap, null), FlagError);
  // The same run on the CPU backend is bounded by the machine only.
  strictEqual(checkTrainingMemory("gpt", gpt2, 1, cpu, machine), null);
});
