// `--profile`: train prints the per-iteration, per-op and per-kernel tables and writes
// trace.json to its run directory; generate prints its own per-token tables on stderr (stdout
// keeps only the text) and, run with read permission only, says how to get the trace.

import { ok, strictEqual } from "node:assert/strict";
import { nanoFlags, runCli, writeSlice } from "./cli_util.ts";

Deno.test("train --profile and generate --profile (cpu)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bitgpt_cli_" });
  try {
    const out = `${dir}/out`;
    const nano = nanoFlags(await writeSlice(dir), out);
    const flags = [...nano.map((f, i) => nano[i - 1] === "--max-iters" ? "3" : f), "--profile"];
    const train = await runCli(["train", ...flags]);
    strictEqual(train.code, 0, train.stderr);
    for (
      const line of [
        /^profile: [\d.]+ ms recorded on cpu/m,
        /^ {2}kernel times: host wall time of each launch$/m,
        /^per iteration \(3 iterations\):$/m,
        /^ {2}median of the rest: [\d.]+ ms, \d+ launches, \d+ dispatches, 0 submits, 1 syncs/m,
        /^ops by host time \(top 15 of \d+\):$/m,
        /^ {2}matmul +forward +\d+/m,
        /^ {2}matmul +backward +\d+/m,
        /^kernels by ms \(top 15 of \d+\):$/m,
        /^profile: trace .*out\/trace\.json \([\d,]+ events; open it in https:\/\/ui\.perfetto\.dev\)$/m,
      ]
    ) ok(line.test(train.stdout), `${line}\n${train.stdout}`);
    const trace = JSON.parse(await Deno.readTextFile(`${out}/trace.json`));
    ok(trace.traceEvents.some((e: { cat?: string }) => e.cat === "kernel"));

    const gen = await runCli(
      ["generate", "--out-dir", out, "--backend", "cpu", "--max-new-tokens", "5", "--profile"],
    );
    strictEqual(gen.code, 0, gen.stderr);
    ok(!gen.stdout.includes("profile"), gen.stdout);
    ok(/^per token \(10 tokens\):$/m.test(gen.stderr), gen.stderr); // 2 samples × 5 tokens
    ok(/^ops by host time/m.test(gen.stderr), gen.stderr);
    ok(
      /^profile: trace\.json not written: no write permission for '.*'.*add --allow-write=/m
        .test(gen.stderr),
      gen.stderr,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
