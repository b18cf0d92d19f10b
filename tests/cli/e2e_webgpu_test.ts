// End to end on the WebGPU backend (skipped without an adapter): a short nano char-level run
// trains, lowers the val loss and saves a checkpoint that `generate` samples from on the GPU.

import { ok, strictEqual } from "node:assert/strict";
import { hasWebGPU } from "../util.ts";
import { evalLines, nanoFlags, runCli, writeSlice } from "./cli_util.ts";

Deno.test({
  name: "train + generate (webgpu): nano char run, val loss falls, samples stream",
  ignore: !hasWebGPU,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "bitgpt_cli_gpu_" });
    try {
      const dataset = await writeSlice(dir);
      const out = `${dir}/out`;
      const flags = nanoFlags(dataset, out, "webgpu").map((a) =>
        a === "60" ? "30" : a === "30" ? "15" : a
      );
      const train = await runCli(["train", ...flags]);
      strictEqual(train.code, 0, train.stderr);
      ok(/^device: (?!cpu)/m.test(train.stdout), train.stdout);
      const evals = evalLines(train.stdout);
      strictEqual(evals.length, 3);
      ok(evals[2].val < evals[0].val, `val loss did not fall: ${JSON.stringify(evals)}`);
      const gen = await runCli([
        ...["generate", "--out-dir", out, "--backend", "webgpu", "--prompt", "ROMEO:"],
        ...["--max-new-tokens", "20", "--num-samples", "1"],
      ]);
      strictEqual(gen.code, 0, gen.stderr);
      ok(gen.stdout.startsWith("ROMEO:"), gen.stdout);
      strictEqual([...gen.stdout.split("---------------\n")[0]].length, 6 + 20 + 1);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
