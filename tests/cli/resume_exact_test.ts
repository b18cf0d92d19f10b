// `train --resume` is exact end to end on the CPU (issue 14): a run stopped at iteration 25 and
// resumed to 40 records the same losses in metrics.jsonl as a run that never stopped, the eval
// losses included, bit for bit (the first leg's extra evaluation at 24 must not shift the eval
// batches), and its metrics history has no duplicated records. A resumed run keeps its backend.

import { deepStrictEqual, ok } from "node:assert/strict";
import { parseMetrics } from "../../cli/metrics.ts";
import { nanoFlags, runCli, writeSlice } from "./cli_util.ts";

/** nanoFlags with another --max-iters and an eval every 10 iterations. */
function flags(dataset: string, out: string, maxIters: number): string[] {
  return nanoFlags(dataset, out).map((a, i, all) =>
    all[i - 1] === "--max-iters" ? String(maxIters) : all[i - 1] === "--eval-interval" ? "10" : a
  );
}

Deno.test("train --resume: losses (eval included) equal the uninterrupted run's, bit for bit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bitgpt_exact_" });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  const dataset = await writeSlice(dir);
  const full = await runCli(["train", ...flags(dataset, `${dir}/full`, 40)]);
  deepStrictEqual(full.code, 0, full.stderr);
  const first = await runCli(["train", ...flags(dataset, `${dir}/legs`, 25)]);
  deepStrictEqual(first.code, 0, first.stderr);
  const second = await runCli([
    "train",
    "--resume",
    "--out-dir",
    `${dir}/legs`,
    "--max-iters",
    "40",
  ]);
  deepStrictEqual(second.code, 0, second.stderr);
  // No --backend given: the run continues on its own backend (it used to take auto's, WebGPU).
  ok(/^device: cpu/m.test(second.stdout), second.stdout);
  const metrics = async (run: string) =>
    parseMetrics(await Deno.readTextFile(`${dir}/${run}/metrics.jsonl`))
      .filter((r) => r.iter >= 25)
      .map((
        r,
      ) => (r.type === "eval" ? ["eval", r.iter, r.train, r.val] : ["train", r.iter, r.loss]));
  const want = await metrics("full");
  deepStrictEqual(want.filter((r) => r[0] === "eval").map((r) => r[1]), [30, 39]);
  deepStrictEqual(await metrics("legs"), want);
});
