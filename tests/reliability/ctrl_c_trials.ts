// Ctrl-C trials (issue 14): `deno task train` in a pseudo-terminal on each backend, stopped at
// a random moment (steps, evaluations, checkpoint writes) by a typed Ctrl-C, by SIGINT to the
// process group, or by SIGTERM to `deno task`; counts the runs that saved a loadable, resumable
// last.safetensors at the iteration they reported and exited 130.
// Run: deno run -A tests/reliability/ctrl_c_trials.ts [--trials 6] [--backends cpu,webgpu]
//      [--root DIR]  (another checkout, e.g. the code before the fix, for comparison)

import { loadCheckpoint } from "../../models/checkpoint.ts";
import { shakespearePath } from "../cli/cli_util.ts";
import { endlessRun, PtyRun } from "../cli/pty_util.ts";

type Mode = "ctrlc" | "pgint" | "term";

/** One trial's result. */
export interface Trial {
  backend: string;
  mode: Mode;
  code: number;
  saved: boolean;
  seconds: number;
}

/** xorshift32 for reproducible delays. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

/** Run `trials` trials per backend and mode. */
export async function ctrlCTrials(
  o: { trials: number; backends: string[]; root?: string; seed?: number },
): Promise<Trial[]> {
  const dir = await Deno.makeTempDir({ prefix: "bitgpt_ctrlc_" });
  const dataset = `${dir}/text.txt`;
  await Deno.writeTextFile(dataset, (await Deno.readTextFile(shakespearePath())).slice(0, 40000));
  const random = rng(o.seed ?? 3);
  const out: Trial[] = [];
  let n = 0;
  try {
    for (const backend of o.backends) {
      for (const mode of ["ctrlc", "pgint", "term"] as Mode[]) {
        for (let i = 0; i < o.trials; i++) {
          const outDir = `${dir}/run${n++}`;
          const flags = endlessRun(dataset, outDir, backend).map((a) => (a === "20" ? "10" : a));
          const run = new PtyRun([Deno.execPath(), "task", "-q", "train", ...flags], {}, o.root);
          await run.waitFor(/iter +\d+\//, 300_000);
          await new Promise((r) => setTimeout(r, random() * 3000));
          const t0 = performance.now();
          await run.send(mode);
          const code = await run.finish(120_000);
          const seconds = (performance.now() - t0) / 1000;
          const m = run.text.match(/interrupted at iteration (\d+); saved (\S*last\.safetensors)/);
          let saved = false;
          if (m) {
            try {
              const ck = loadCheckpoint(await Deno.readFile(m[2]));
              saved = ck.iteration === Number(m[1]) && ck.optimizer !== null && ck.rng !== null;
              ck.model.dispose();
            } catch {
              saved = false;
            }
          }
          out.push({ backend, mode, code, saved: saved && code === 130, seconds });
          await Deno.remove(outDir, { recursive: true }).catch(() => {});
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return out;
}

if (import.meta.main) {
  const arg = (name: string, d: string) => {
    const i = Deno.args.indexOf(`--${name}`);
    return i >= 0 ? Deno.args[i + 1] : d;
  };
  const root = Deno.args.includes("--root") ? arg("root", "") : undefined;
  const trials = await ctrlCTrials({
    trials: Number(arg("trials", "6")),
    backends: arg("backends", "cpu,webgpu").split(","),
    root,
  });
  for (const backend of new Set(trials.map((t) => t.backend))) {
    for (const mode of ["ctrlc", "pgint", "term"]) {
      const ts = trials.filter((t) => t.backend === backend && t.mode === mode);
      const slowest = Math.max(...ts.map((t) => t.seconds)).toFixed(1);
      console.log(
        `${backend} ${mode}: ${ts.filter((t) => t.saved).length} of ${ts.length} saved and ` +
          `exited 130 (exit codes ${ts.map((t) => t.code).join(" ")}; slowest exit ${slowest} s)`,
      );
    }
  }
}
