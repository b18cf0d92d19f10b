// Bounded loss under SIGKILL (issue 14), a short seeded loop on the CPU: after each kill a
// loadable checkpoint exists and at most one eval interval of iterations is lost; leftover
// temporary files are gone after a restart. `deno task reliability` runs the long loop.

import { ok, strictEqual } from "node:assert/strict";
import { killLoop } from "../reliability/kill_loop.ts";

Deno.test("SIGKILL at random moments loses at most one eval interval; a checkpoint always loads", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bitgpt_kill_" });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  // Seed 7's first kill comes 1 ms after the run's first output and its second 274 ms after,
  // about when a nano run's first evaluation ends: rounds 3-6 (1.2-2.3 s) are the ones that
  // must find a checkpoint, whatever the machine's speed.
  const r = await killLoop({ dir, backend: "cpu", rounds: 6, evalInterval: 5, maxDelayMs: 2500 });
  strictEqual(r.rounds, 6);
  strictEqual(r.missing, 0, "a loadable checkpoint after every kill");
  ok(r.lost.length >= 3, `kills after the first evaluation: ${r.lost}`);
  ok(Math.max(...r.lost) <= 5, `lost ${r.lost.join(", ")} iterations; the eval interval is 5`);
  strictEqual(r.tempsLeft, 0);
});
