// The training-step benchmark: baby GPT and baby BitGPT (`--preset baby --tokenizer char`: 4
// layers, 4 heads, 128 wide, batch 12 × block 64 = 768 tokens a step) trained by `train` itself
// on every backend present, against nanoGPT's own train.py on PyTorch-CPU with the same settings
// (../shared/peers/nanogpt_baby.sh, when NANOGPT_DIR names a nanoGPT checkout and python3 has
// torch). Every run is a whole process, as a user starts it, logging every iteration; a run's
// figure is the median ms/iteration of its iterations after the first WARMUP (ours: the
// progress lines; nanoGPT: its log, as its ms_per_iter.py reads it), and peak memory is the
// process's peak resident set (GNU time's %M, when /usr/bin/time exists). Runs are interleaved:
// each round runs every case once, so load from other processes on a shared machine hits all
// alike; the table gives the median over rounds and the range, tokens/s from the median, and
// ours over nanoGPT's from the same rounds.
// Run: deno run -A tests/bench/train_step.ts [--iters 40] [--rounds 3] [--backends wasm,webgpu,cpu]
//   [--models gpt,bitgpt] [--threads 0]   (deno task bench runs it after the kernel benches)

import { hasWebGPU } from "../../engine/device.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SHARED = Deno.env.get("BITGPT_SHARED") ?? `${ROOT}../shared`;
const WARMUP = 5;
const TOKENS = 12 * 64;

interface Flags {
  iters: number;
  rounds: number;
  backends: string[];
  models: string[];
  threads: number;
}

function parseFlags(args: string[]): Flags {
  const f: Flags = {
    iters: 40,
    rounds: 3,
    backends: ["wasm", "webgpu", "cpu"],
    models: ["gpt", "bitgpt"],
    threads: 0,
  };
  for (let i = 0; i < args.length; i += 2) {
    const [k, v] = [args[i].replace(/^--/, ""), args[i + 1]];
    if (v === undefined) throw new Error(`train_step: --${k} needs a value`);
    if (k === "iters" || k === "rounds" || k === "threads") f[k] = Number(v);
    else if (k === "backends" || k === "models") f[k] = v.split(",");
    else throw new Error(`train_step: unknown flag --${k}`);
  }
  if (!(f.iters > WARMUP + 2)) throw new Error(`train_step: --iters must exceed ${WARMUP + 2}`);
  return f;
}

/** One run's result: per-iteration milliseconds after warm-up and peak RSS in bytes. */
interface Run {
  ms: number[];
  peak: number | null;
}

const hasTime = await Deno.stat("/usr/bin/time").then(() => true, () => false);

/** Run a command (under GNU time when present); its stdout and stderr, and the peak RSS. */
async function measure(cmd: string[], env: Record<string, string> = {}) {
  const marker = "@@peak-kb ";
  const argv = hasTime ? ["/usr/bin/time", "-f", `${marker}%M`, ...cmd] : cmd;
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const [stdout, stderr] = [dec.decode(out.stdout), dec.decode(out.stderr)];
  if (!out.success) {
    throw new Error(`${cmd.join(" ")} failed:\n${stderr.slice(-2000)}`);
  }
  const kb = stderr.match(/@@peak-kb (\d+)/);
  return { stdout, stderr, peak: kb ? Number(kb[1]) * 1024 : null };
}

/** Our `train` on `backend` for `iters` iterations, logging each. */
async function ours(model: string, backend: string, f: Flags): Promise<Run> {
  const out = await Deno.makeTempDir({ prefix: "bitgpt_step_" });
  try {
    const r = await measure([
      ...[Deno.execPath(), "run", "-A", "cli/main.ts", "train", "--preset", "baby"],
      ...["--tokenizer", "char", "--model", model, "--backend", backend],
      ...["--threads", String(f.threads), "--max-iters", String(f.iters)],
      ...["--eval-interval", "100000", "--eval-iters", "1"],
      ...["--log-interval", "1", "--out-dir", out],
    ]);
    // "iter  7/40 | loss 3.1234 | lr ... | 312 ms/it | ..." on stderr (one line per iteration;
    // the last follows the final evaluation and is left out like nanoGPT's post-eval ones).
    const ms = [...(r.stdout + r.stderr).matchAll(/^iter\s+(\d+)\/\d+ \| .*?\| ([\d.]+) ms\/it/gm)]
      .filter((m) => Number(m[1]) >= WARMUP && Number(m[1]) < f.iters - 1)
      .map((m) => Number(m[2]));
    return { ms, peak: r.peak };
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

/** nanoGPT's train.py with our baby settings, or null where it cannot run here. */
async function nanoGPT(f: Flags): Promise<Run | null> {
  const dir = Deno.env.get("NANOGPT_DIR");
  const script = `${SHARED}/peers/nanogpt_baby.sh`;
  if (!dir || !(await Deno.stat(script).then(() => true, () => false))) return null;
  const out = await Deno.makeTempDir({ prefix: "nanogpt_step_" });
  try {
    const r = await measure(["bash", script, out, String(f.iters)], {
      NANOGPT_DIR: dir,
      BITGPT_DATA_DIR: Deno.env.get("BITGPT_DATA_DIR") ?? `${SHARED}/data`,
    });
    const ms: number[] = [];
    let afterEval = false;
    for (const line of r.stdout.split("\n")) {
      if (line.startsWith("step ")) {
        afterEval = true;
        continue;
      }
      const m = line.match(/^iter (\d+): loss [\d.]+, time ([\d.]+)ms/);
      if (!m) continue;
      if (Number(m[1]) >= WARMUP && !afterEval) ms.push(Number(m[2]));
      afterEval = false;
    }
    return { ms, peak: r.peak };
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const f = parseFlags(Deno.args);
const backends: string[] = [];
for (const b of f.backends) {
  if (b === "webgpu" && !(await hasWebGPU())) continue; // no adapter, not even a software one
  backends.push(b);
}
const cases = [
  ...f.models.flatMap((m) =>
    backends.map((b) => ({ name: `${m} ${b}`, run: () => ours(m, b, f) }))
  ),
  { name: "nanoGPT (PyTorch, 1 thread)", run: () => nanoGPT(f) },
];
const results = new Map<string, { medians: number[]; peak: number | null }>();
for (let round = 1; round <= f.rounds; round++) {
  for (const c of cases) {
    const r = await c.run();
    if (!r) continue;
    const m = median(r.ms);
    console.error(`round ${round}: ${c.name}: ${m.toFixed(1)} ms/iter (${r.ms.length} iterations)`);
    const have = results.get(c.name) ?? { medians: [], peak: null };
    have.medians.push(m);
    if (r.peak !== null) have.peak = Math.max(have.peak ?? 0, r.peak);
    results.set(c.name, have);
  }
}
const nano = results.get("nanoGPT (PyTorch, 1 thread)");
const mib = (b: number | null) => (b === null ? "–" : `${Math.round(b / 2 ** 20)} MiB`);
console.log(
  `\nBaby training step (${TOKENS} tokens), ${f.rounds} interleaved rounds of ${f.iters} ` +
    `iterations, on ${new Date().toISOString().slice(0, 10)}:\n`,
);
console.log("| model, backend | ms/iter (median, range) | tokens/s | peak RSS | × nanoGPT |");
console.log("| --- | --- | --- | --- | --- |");
for (const [name, r] of results) {
  const m = median(r.medians);
  const range = `${Math.min(...r.medians).toFixed(1)}–${Math.max(...r.medians).toFixed(1)}`;
  const ratio = nano ? `${(m / median(nano.medians)).toFixed(2)}×` : "–";
  console.log(
    `| ${name} | ${m.toFixed(1)} (${range}) | ${Math.round((TOKENS / m) * 1000)} | ` +
      `${mib(r.peak)} | ${ratio} |`,
  );
}
if (!nano) console.log("\n(nanoGPT not run: set NANOGPT_DIR to a nanoGPT checkout)");
