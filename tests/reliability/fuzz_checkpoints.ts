// The checkpoint fuzz suite (issue 14): hostile files (tests/reliability/fuzz_cases.ts) through
// the library (`loadCheckpoint`) and the CLI (`generate`, `train --resume`). Every case must end
// in one typed error or a correct load: no other exception (a crash), no case over the time
// limit (a hang), no memory blow-up, and no load of a file that is invalid by construction; a
// file that loads must load exactly what it says (weights, config, iteration).
// Run: deno task fuzz  (deno run -A tests/reliability/fuzz_checkpoints.ts --count 700 --cli 120)

import { CheckpointError, loadCheckpoint } from "../../models/checkpoint.ts";
import { cpuBackend } from "../../engine/device.ts";
import { readSafetensors } from "../../nn/safetensors.ts";
import { withoutDriverNoise } from "../cli/cli_util.ts";
import { type Base, CHARS, type FuzzCase, makeBases, makeCases } from "./fuzz_cases.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MAXRSS = new URL("./maxrss.py", import.meta.url).pathname;
const PERMISSIONS = ["--allow-read", "--allow-write", "--allow-env", "--allow-net", "--allow-sys"];

/** How one case ended. */
export type Outcome =
  | "typed error"
  | "loaded"
  | "crash"
  | "hang"
  | "memory blow-up"
  | "silent invalid load"
  | "inconsistent load";

/** Counts by outcome, and the first few bad cases for the report. */
export interface FuzzReport {
  cases: number;
  outcomes: Record<Outcome, number>;
  bad: string[];
}

const BAD: Outcome[] = [
  "crash",
  "hang",
  "memory blow-up",
  "silent invalid load",
  "inconsistent load",
];

function newReport(): FuzzReport {
  const outcomes = Object.fromEntries(
    ["typed error", "loaded", ...BAD].map((o) => [o, 0]),
  ) as Record<Outcome, number>;
  return { cases: 0, outcomes, bad: [] };
}

function record(rep: FuzzReport, c: FuzzCase, o: Outcome, detail: string): void {
  rep.cases++;
  rep.outcomes[o]++;
  if (BAD.includes(o) && rep.bad.length < 20) {
    rep.bad.push(`${c.base.name} ${c.kind}: ${o}: ${detail}`);
  }
}

/** Does the loaded checkpoint hold what the file says? Returns the first difference, or null. */
async function consistency(
  c: FuzzCase,
  ck: ReturnType<typeof loadCheckpoint>,
): Promise<string | null> {
  const { tensors, metadata } = readSafetensors(c.bytes);
  for (const [name, p] of ck.model.namedParameters()) {
    const t = tensors[name] ??
      (name === "transformer.wte.weight" ? tensors["lm_head.weight"] : undefined);
    if (!t) return `no tensor for ${name}`;
    const want = Float32Array.from(t.data);
    const got = await p.data();
    if (got.length !== want.length) return `${name}: ${got.length} values, file ${want.length}`;
    for (let i = 0; i < want.length; i++) {
      if (!Object.is(got[i], want[i])) return `${name}[${i}] = ${got[i]}, file ${want[i]}`;
      if (!c.allowNonFinite && !Number.isFinite(got[i])) return `${name}[${i}] = ${got[i]} loaded`;
    }
  }
  if (ck.source === "bitgpt") {
    if (
      JSON.stringify(ck.config) !== JSON.stringify({ ...ck.config, ...JSON.parse(metadata.config) })
    ) {
      return `config ${JSON.stringify(ck.config)} != file ${metadata.config}`;
    }
    if (String(ck.iteration) !== (metadata.iteration ?? "0")) return `iteration ${ck.iteration}`;
  }
  return null;
}

/** Run the cases through `loadCheckpoint` in this process. */
export async function fuzzLibrary(cases: FuzzCase[], rep: FuzzReport = newReport()) {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const baseline = Deno.memoryUsage().rss;
  for (const [i, c] of cases.entries()) {
    const t0 = performance.now();
    let outcome: Outcome;
    let detail = "";
    try {
      const ck = loadCheckpoint(c.bytes, {
        backend: cpuBackend(),
        allowNonFinite: c.allowNonFinite,
        config: c.base.name === "nanogpt" ? {} : undefined,
      });
      try {
        const diff = await consistency(c, ck);
        outcome = c.expect === "fail"
          ? "silent invalid load"
          : diff
          ? "inconsistent load"
          : "loaded";
        detail = diff ?? "";
      } finally {
        ck.model.dispose();
      }
    } catch (e) {
      outcome = e instanceof CheckpointError ? "typed error" : "crash";
      detail = String((e as Error)?.stack ?? e).split("\n").slice(0, 3).join(" | ");
    }
    if (performance.now() - t0 > 10_000) {
      [outcome, detail] = ["hang", `${performance.now() - t0} ms`];
    }
    if (i % 25 === 0) gc?.();
    const grown = Deno.memoryUsage().rss - baseline;
    if (grown > 1e9 && outcome !== "crash") [outcome, detail] = ["memory blow-up", `RSS +${grown}`];
    record(rep, c, outcome, detail);
  }
  return rep;
}

/** Run cases of our bases through `generate` (and every third through `train --resume`). */
export async function fuzzCli(cases: FuzzCase[], dir: string, rep: FuzzReport = newReport()) {
  const dataset = `${dir}/text.txt`;
  await Deno.writeTextFile(dataset, CHARS.join("").repeat(400));
  for (const [i, c] of cases.entries()) {
    const run = `${dir}/case${i}`;
    await Deno.mkdir(run);
    const resume = i % 3 === 2;
    await Deno.writeFile(`${run}/${resume ? "last" : "ckpt"}.safetensors`, c.bytes);
    const args = resume
      ? [
        ...["train", "--resume", "--out-dir", run, "--dataset", dataset, "--backend", "cpu"],
        ...["--max-iters", "9", "--eval-iters", "1", "--warmup-iters", "0"],
        ...["--lr-decay-iters", "100"],
      ]
      : [
        "generate",
        "--out-dir",
        run,
        "--backend",
        "cpu",
        "--max-new-tokens",
        "4",
        "--num-samples",
        "1",
      ];
    if (c.allowNonFinite && !resume) args.push("--allow-non-finite");
    const out = await new Deno.Command("python3", {
      args: [MAXRSS, "60", Deno.execPath(), "run", ...PERMISSIONS, `${ROOT}cli/main.ts`, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    const m = stderr.match(/MAXRSS (\d+) EXIT (-?\d+) TIMEOUT (\d)\n$/)!;
    const [rssKb, code, timedOut] = [Number(m[1]), Number(m[2]), m[3] === "1"];
    const text = withoutDriverNoise(stderr.slice(0, m.index));
    const errorLines = text.split("\n").filter((l) => l.startsWith("error: "));
    let outcome: Outcome;
    if (timedOut) outcome = "hang";
    else if (rssKb > 1_000_000) outcome = "memory blow-up";
    else if (code === 0) outcome = c.expect === "fail" ? "silent invalid load" : "loaded";
    else if ((code === 1 || code === 2) && errorLines.length === 1 && !/^\s+at /m.test(text)) {
      outcome = "typed error";
    } else outcome = "crash";
    if (Deno.env.get("FUZZ_VERBOSE")) {
      console.log(c.kind, args[0], outcome, text.trim().split("\n").pop());
    }
    record(
      rep,
      c,
      outcome,
      `${args[0]} exit ${code}, ${rssKb} kB: ${text.trim().split("\n").slice(-3).join(" | ")}`,
    );
    await Deno.remove(run, { recursive: true });
  }
  return rep;
}

/** One line per report. */
export function describe(what: string, r: FuzzReport): string {
  const counts = Object.entries(r.outcomes).map(([k, v]) => `${v} ${k}`).join(", ");
  return `${what}: ${r.cases} hostile files: ${counts}`;
}

/** The library and CLI runs with `count` and `cli` cases from `seed`. */
export async function fuzz(count: number, cli: number, seed: number) {
  const bases = await makeBases();
  const lib = await fuzzLibrary(makeCases(bases, count, seed));
  const ours = bases.filter((b: Base) => b.name !== "nanogpt");
  const dir = await Deno.makeTempDir({ prefix: "bitgpt_fuzz_" });
  try {
    const cliRep = await fuzzCli(makeCases(ours, cli, seed + 1), dir);
    return { lib, cli: cliRep };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const arg = (name: string, d: number) => {
    const i = Deno.args.indexOf(`--${name}`);
    return i >= 0 ? Number(Deno.args[i + 1]) : d;
  };
  const t0 = performance.now();
  const { lib, cli } = await fuzz(arg("count", 700), arg("cli", 120), arg("seed", 2024));
  console.log(describe("library (loadCheckpoint)", lib));
  console.log(describe("cli (generate, train --resume)", cli));
  for (const b of [...lib.bad, ...cli.bad]) console.log(`  ${b}`);
  console.log(`${((performance.now() - t0) / 1000).toFixed(0)} s`);
  const bad = BAD.reduce((n, o) => n + lib.outcomes[o] + cli.outcomes[o], 0);
  Deno.exit(bad === 0 ? 0 : 1);
}
