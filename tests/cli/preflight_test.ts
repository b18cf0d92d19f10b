// The memory check of `train` (cli/preflight.ts): refuse a run over the machine's memory with
// the estimate in one line, warn over what is available now, say nothing otherwise.

import { ok, strictEqual, throws } from "node:assert/strict";
import { checkTrainingMemory } from "../../cli/preflight.ts";
import { FlagError } from "../../cli/flags.ts";
import { makeConfig } from "../../models/config.ts";
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
