// The figures of issue 14's closing note, re-made: hostile checkpoints tried and their outcomes,
// bad command lines tried, Ctrl-C trials per backend and how many saved, and the most work lost
// over a SIGKILL loop. Minutes on a CPU-only machine (WebGPU through llvmpipe is slow).
// Run: deno task reliability   [--trials 6] [--kills 30] [--backends cpu,webgpu]

import { describe, fuzz } from "./fuzz_checkpoints.ts";
import { BAD_LINES, runBadLines } from "./bad_cli.ts";
import { ctrlCTrials } from "./ctrl_c_trials.ts";
import { killLoop } from "./kill_loop.ts";
import { hasWebGPU } from "../../engine/device.ts";

const arg = (name: string, d: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : d;
};
const backends = arg("backends", (await hasWebGPU()) ? "cpu,webgpu" : "cpu").split(",");

const { lib, cli } = await fuzz(700, 120, 2024);
console.log(describe("hostile checkpoints, library (loadCheckpoint)", lib));
console.log(describe("hostile checkpoints, cli (generate, train --resume)", cli));

const failures = await runBadLines();
console.log(
  `bad command lines: ${BAD_LINES.length} tried, ${BAD_LINES.length - failures.length} one-line ` +
    `errors with the right exit code${
      failures.length ? `; otherwise: ${failures.join("; ")}` : ""
    }`,
);

const trials = await ctrlCTrials({ trials: Number(arg("trials", "6")), backends });
for (const backend of backends) {
  for (const mode of ["ctrlc", "pgint", "term"]) {
    const ts = trials.filter((t) => t.backend === backend && t.mode === mode);
    console.log(
      `interrupts (${backend}, ${mode}): ${ts.filter((t) => t.saved).length} of ${ts.length} ` +
        `saved a resumable checkpoint and exited 130`,
    );
  }
}

const dir = await Deno.makeTempDir({ prefix: "bitgpt_kill_" });
const kills = Number(arg("kills", "30"));
const k = await killLoop({
  dir,
  backend: "cpu",
  rounds: kills,
  evalInterval: 10,
  maxDelayMs: 4000,
});
await Deno.remove(dir, { recursive: true });
console.log(
  `SIGKILL loop (cpu, eval interval 10): ${k.rounds} kills, most iterations lost ` +
    `${Math.max(0, ...k.lost)}, no loadable checkpoint ${k.missing} times, ${k.tempsSeen} ` +
    `temporary files seen after kills, ${k.tempsLeft} left after a restart`,
);
