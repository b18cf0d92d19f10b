// The checkpoint fuzz suite on a short, seeded budget (issue 14): hostile files through
// `loadCheckpoint` and a few through the CLI (`generate`, `train --resume`), each ending in one
// typed error or a correct load. The full run (700 + 120 files): `deno task fuzz`.

import { deepStrictEqual, ok } from "node:assert/strict";
import { describe, fuzzCli, fuzzLibrary } from "../reliability/fuzz_checkpoints.ts";
import { makeBases, makeCases } from "../reliability/fuzz_cases.ts";
import { hasPty } from "../cli/pty_util.ts";

const bases = await makeBases();
const NONE = {
  crash: 0,
  hang: 0,
  "memory blow-up": 0,
  "silent invalid load": 0,
  "inconsistent load": 0,
};

function bad(r: Awaited<ReturnType<typeof fuzzLibrary>>) {
  const { crash, hang, "memory blow-up": mem, "silent invalid load": silent } = r.outcomes;
  return {
    crash,
    hang,
    "memory blow-up": mem,
    "silent invalid load": silent,
    "inconsistent load": r.outcomes["inconsistent load"],
  };
}

Deno.test("fuzz: 280 hostile files through loadCheckpoint: typed errors or correct loads only", async () => {
  const r = await fuzzLibrary(makeCases(bases, 280, 7));
  deepStrictEqual(bad(r), NONE, `${describe("library", r)}\n${r.bad.join("\n")}`);
  ok(r.outcomes["typed error"] > 150 && r.outcomes.loaded > 10, describe("library", r));
});

Deno.test({
  name: "fuzz: hostile files through generate and train --resume: one-line errors or loads",
  ignore: !hasPty, // python3 measures each run's peak memory (tests/reliability/maxrss.py)
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "bitgpt_fuzz_" });
  const r = await fuzzCli(makeCases(bases.slice(0, 2), 9, 11), dir);
  await Deno.remove(dir, { recursive: true });
  deepStrictEqual(bad(r), NONE, `${describe("cli", r)}\n${r.bad.join("\n")}`);
});
