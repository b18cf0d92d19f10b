// Bounded loss of work (issue 14): train, SIGKILL the process at a random moment, resume, again and
// again. After each kill a loadable checkpoint must exist (once the first evaluation saved one),
// and the iterations lost (completed steps minus the checkpoint's iteration) must not exceed one
// eval interval. Leftover temporary files must be gone after the next start.
// Run: deno run -A tests/reliability/kill_loop.ts [--backend cpu] [--rounds 30] [--eval-interval 10]

import { loadCheckpoint } from "../../models/checkpoint.ts";
import { shakespearePath } from "../cli/cli_util.ts";

const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;
const PERMISSIONS = ["--allow-read", "--allow-write", "--allow-env", "--allow-net", "--allow-sys"];

/** What a kill loop saw. */
export interface KillLoopResult {
  /** Kills made. */
  rounds: number;
  /** Iterations lost at each kill. */
  lost: number[];
  /** Kills after which no checkpoint loaded although an evaluation had completed. */
  missing: number;
  /** Temporary files of killed writes seen right after the kills. */
  tempsSeen: number;
  /** Temporary files present after a restart (must be 0). */
  tempsLeft: number;
  /** The checkpoint's iteration after the last round. */
  finalIteration: number;
}

/** Names of writeFileAtomic's temporaries in `dir` (none when it does not exist). */
async function temps(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.name.includes(".tmp-")) out.push(e.name);
  } catch {
    // no directory yet
  }
  return out;
}

/** xorshift32 for reproducible kill times. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

/**
 * Kill `rounds` runs of a nano char model in `dir` at random times up to `maxDelayMs` after
 * their start (startup, steps, evaluations and checkpoint writes alike).
 */
export async function killLoop(o: {
  dir: string;
  backend: string;
  rounds: number;
  evalInterval: number;
  maxDelayMs: number;
  seed?: number;
}): Promise<KillLoopResult> {
  const text = await Deno.readTextFile(shakespearePath());
  const dataset = `${o.dir}/slice.txt`;
  await Deno.writeTextFile(dataset, text.slice(0, 40000));
  const out = `${o.dir}/out`;
  const random = rng(o.seed ?? 7);
  const result: KillLoopResult = {
    rounds: 0,
    lost: [],
    missing: 0,
    tempsSeen: 0,
    tempsLeft: 0,
    finalIteration: 0,
  };
  let evalSeen = false;
  for (let round = 0; round < o.rounds; round++) {
    const args = round === 0 || !evalSeen
      ? [
        ...["--preset", "nano", "--tokenizer", "char", "--dataset", dataset, "--out-dir", out],
        ...["--max-iters", "1000000", "--lr-decay-iters", "1000000", "--warmup-iters", "5"],
        ...["--eval-interval", String(o.evalInterval), "--eval-iters", "2", "--log-interval", "1"],
        ...(round > 0 ? ["--overwrite"] : []),
      ]
      : ["--resume", "--out-dir", out];
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMISSIONS, MAIN, "train", ...args, "--backend", o.backend],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    let done = -1; // the last completed step (progress lines)
    let spoke: () => void = () => {};
    const started = new Promise<void>((r) => (spoke = r));
    const watch = async (stream: ReadableStream<Uint8Array<ArrayBuffer>>) => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        spoke();
        for (const m of chunk.matchAll(/^iter +(\d+)\//gm)) done = Math.max(done, Number(m[1]));
        // The first evaluation's checkpoints are on disk once it says so (the rolling one is
        // written first): a kill between its loss line and that leaves nothing to resume.
        if (/^saved .*ckpt\.safetensors/m.test(chunk)) evalSeen = true;
      }
    };
    const watching = Promise.all([watch(child.stdout), watch(child.stderr)]);
    // The random moment counts from the run's first output, so a slow start on a loaded machine
    // (Deno compiling, the model built) does not turn every kill into one before the first step.
    await Promise.race([started, new Promise((r) => setTimeout(r, 60_000))]);
    await new Promise((r) => setTimeout(r, random() * o.maxDelayMs));
    try {
      child.kill("SIGKILL");
    } catch {
      // already ended (it should not: the run is endless)
    }
    await child.status;
    await watching;
    result.rounds++;
    result.tempsSeen += (await temps(out)).length;
    let iteration: number | null = null;
    try {
      const ck = loadCheckpoint(await Deno.readFile(`${out}/last.safetensors`));
      iteration = ck.iteration;
      ck.model.dispose();
    } catch {
      if (evalSeen) result.missing++;
    }
    if (iteration !== null) {
      const completed = done + 1; // steps 0..done finished
      result.lost.push(Math.max(0, completed - iteration));
      result.finalIteration = iteration;
    }
  }
  // One more start: leftover temporaries are removed before anything else.
  await new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, MAIN, "train", "--resume", "--out-dir", out, "--max-iters", "1"],
    stdout: "null",
    stderr: "null",
  }).output();
  result.tempsLeft = (await temps(out)).length;
  return result;
}

if (import.meta.main) {
  const arg = (name: string, d: string) => {
    const i = Deno.args.indexOf(`--${name}`);
    return i >= 0 ? Deno.args[i + 1] : d;
  };
  const dir = await Deno.makeTempDir({ prefix: "bitgpt_kill_" });
  const evalInterval = Number(arg("eval-interval", "10"));
  const r = await killLoop({
    dir,
    backend: arg("backend", "cpu"),
    rounds: Number(arg("rounds", "30")),
    evalInterval,
    maxDelayMs: Number(arg("max-delay-ms", "4000")),
    seed: Number(arg("seed", "7")),
  });
  console.log(
    `${r.rounds} SIGKILLs (${arg("backend", "cpu")}, eval interval ${evalInterval}): most ` +
      `iterations lost ${Math.max(0, ...r.lost)} (per kill: ${r.lost.join(" ")}), no loadable ` +
      `checkpoint after ${r.missing} kills, ${r.tempsSeen} temporary files seen after kills, ` +
      `${r.tempsLeft} left after a restart, ` +
      `reached iteration ${r.finalIteration}`,
  );
  await Deno.remove(dir, { recursive: true });
}
