// Bad command lines (issue 14): flags of the wrong type or range, unknown or repeated flags,
// impossible combinations, output directories that cannot be used, runs too large for the
// machine, missing or foreign files. Each must end in one line `error: ...` on stderr with exit
// code 2 (a flag) or 1 (a file or resource), no stack trace, quickly, in bounded memory.
// Run: deno run -A tests/reliability/bad_cli.ts   (prints one line per failure and the totals)

import { shakespearePath, withoutDriverNoise } from "../cli/cli_util.ts";

const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;
const MAXRSS = new URL("./maxrss.py", import.meta.url).pathname;
const PERMISSIONS = ["--allow-read", "--allow-write", "--allow-env", "--allow-net", "--allow-sys"];

/** One bad command line: argv (with `$D` for the work folder) and the expected exit code. */
export interface BadLine {
  args: string[];
  code: 1 | 2;
}

const t = (code: 1 | 2, ...args: string[]): BadLine => ({ args: ["train", ...args], code });
const g = (code: 1 | 2, ...args: string[]): BadLine => ({ args: ["generate", ...args], code });
const DATA = ["--dataset", "$D/text.txt", "--tokenizer", "char", "--backend", "cpu"];
const OUT = (name: string) => ["--out-dir", `$D/${name}`];

/** The bad command lines. */
export const BAD_LINES: BadLine[] = [
  // Values of the wrong type or out of range.
  ...[
    "--batch-size",
    "--block-size",
    "--max-iters",
    "--eval-iters",
    "--eval-interval",
    "--n-head",
    "--n-layer",
    "--n-embd",
    "--log-interval",
  ]
    .flatMap((
      f,
    ) => [t(2, f, "0"), t(2, f, "-3"), t(2, f, "1.5"), t(2, f, "abc"), t(2, f, "1e400")]),
  ...["--lr", "--dropout", "--weight-decay", "--min-lr", "--grad-clip", "--beta1", "--beta2"]
    .flatMap((f) => [t(2, f, "NaN"), t(2, f, "-1"), t(2, f, "Infinity"), t(2, f, "")]),
  t(2, "--dropout", "1"),
  t(2, "--beta2", "1"),
  t(2, "--lr", "0"),
  t(2, "--seed", "-1"),
  t(2, "--seed", "99999999999999999999"),
  t(2, "--verbose", "3"),
  t(2, "--vocab-size", "-1"),
  t(2, "--decay-lr", "maybe"),
  t(2, "--model", "llama"),
  t(2, "--tokenizer", "bytes"),
  t(2, "--backend", "tpu"),
  t(2, "--pos", "alibi"),
  t(2, "--schedule", "linear"),
  // Unknown, repeated, valueless and positional arguments.
  t(2, "--n_embed", "64"),
  t(2, "--lr", "1e-3", "--lr", "2e-3"),
  t(2, "--batch-size"),
  t(2, "--batch-size", "--lr", "1"),
  t(2, "positional"),
  t(2, "--"),
  t(2, "-x"),
  t(2, "--preset", "huge"),
  { args: ["serve"], code: 2 },
  { args: ["--version"], code: 2 },
  // Combinations.
  t(2, "--n-embd", "100", "--n-head", "3"),
  t(2, "--pos", "rope", "--n-embd", "36", "--n-head", "4"),
  t(2, "--min-lr", "1", "--lr", "0.1"),
  t(2, "--lr-decay-iters", "10", "--warmup-iters", "20"),
  t(2, "--dataset", ""),
  t(2, "--out-dir", ""),
  // Output directories.
  t(2, ...DATA, ...OUT("afile")),
  t(2, ...DATA, ...OUT("afile/sub")),
  t(2, ...DATA, ...OUT("afile/sub/deeper")),
  t(2, ...DATA, ...OUT("run")), // an earlier run, no --resume or --overwrite
  t(1, ...DATA, ...OUT("foreign"), "--overwrite"), // holds a config.json we did not write
  t(1, ...DATA, ...OUT("dirckpt")), // ckpt.safetensors is a directory
  // Too large for the machine.
  t(2, ...DATA, ...OUT("big1"), "--n-embd", "1048576", "--n-head", "4"),
  t(2, ...DATA, ...OUT("big2"), "--batch-size", "100000000"),
  t(2, ...DATA, ...OUT("big3"), "--n-layer", "100000"),
  t(2, ...DATA, ...OUT("big4"), "--block-size", "1000000", "--batch-size", "64"),
  t(2, ...DATA, ...OUT("big5"), "--vocab-size", "2000000000"),
  // Data and checkpoints.
  t(1, "--dataset", "$D/nothing.txt", "--backend", "cpu", ...OUT("d1")),
  t(1, "--dataset", "$D", "--backend", "cpu", ...OUT("d2")),
  t(1, "--dataset", "$D/tiny.txt", "--tokenizer", "char", "--backend", "cpu", ...OUT("d3")),
  t(1, ...DATA, ...OUT("d4"), "--vocab-size", "3"),
  t(1, "--resume", ...OUT("empty"), "--backend", "cpu"),
  t(1, "--resume", ...OUT("nowhere"), "--backend", "cpu"),
  t(1, "--resume", ...OUT("corrupt"), "--backend", "cpu"),
  t(2, "--resume", ...OUT("run"), "--n-embd", "64", "--backend", "cpu"),
  t(2, "--resume", ...OUT("run"), "--model", "gpt", "--backend", "cpu"),
  // generate.
  g(2, "--top-k", "0"),
  g(2, "--top-p", "0"),
  g(2, "--top-p", "2"),
  g(2, "--temperature", "-1"),
  g(2, "--temperature", "NaN"),
  g(2, "--max-new-tokens", "0"),
  g(2, "--num-samples", "1.5"),
  g(2, "--seed", "abc"),
  g(2, "--backend", "tpu"),
  g(2, "--batch-size", "4"),
  g(2, "--chat", "sometimes"),
  g(2, "--out-dir", ""),
  g(1, "--backend", "cpu", ...OUT("empty")),
  g(1, "--backend", "cpu", ...OUT("nowhere")),
  g(1, "--backend", "cpu", ...OUT("afile")),
  g(1, "--backend", "cpu", ...OUT("corrupt")),
  g(1, "--backend", "cpu", ...OUT("run"), "--prompt", "日本"),
  g(1, "--backend", "cpu", ...OUT("nan")),
];

/** Set up the work folder: text, a trained run, a file, foreign and corrupt runs. */
async function prepare(dir: string): Promise<void> {
  await Deno.writeTextFile(
    `${dir}/text.txt`,
    (await Deno.readTextFile(shakespearePath())).slice(0, 20000),
  );
  await Deno.writeTextFile(`${dir}/afile`, "x");
  await Deno.writeTextFile(`${dir}/tiny.txt`, "To be, or not to be: that is the question.\n");
  await Deno.mkdir(`${dir}/empty`);
  await Deno.mkdir(`${dir}/foreign`);
  await Deno.writeTextFile(`${dir}/foreign/config.json`, '{"mine": true}');
  await Deno.mkdir(`${dir}/dirckpt/ckpt.safetensors`, { recursive: true });
  await Deno.mkdir(`${dir}/corrupt`);
  await Deno.writeFile(
    `${dir}/corrupt/ckpt.safetensors`,
    new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]),
  );
  await Deno.copyFile(`${dir}/corrupt/ckpt.safetensors`, `${dir}/corrupt/last.safetensors`);
  const train = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...PERMISSIONS,
      MAIN,
      "train",
      ...DATA.map((a) => a.replace("$D", dir)),
      "--out-dir",
      `${dir}/run`,
      "--preset",
      "nano",
      "--max-iters",
      "2",
      "--eval-interval",
      "1",
      "--eval-iters",
      "1",
      "--warmup-iters",
      "0",
      "--lr-decay-iters",
      "10",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!train.success) throw new Error(new TextDecoder().decode(train.stderr));
  // A checkpoint whose weights hold a NaN (refused without --allow-non-finite).
  const { readSafetensors, writeSafetensors } = await import("../../nn/safetensors.ts");
  const { tensors, metadata } = readSafetensors(await Deno.readFile(`${dir}/run/ckpt.safetensors`));
  const wte = Float32Array.from(tensors["transformer.wte.weight"].data);
  wte[0] = NaN;
  await Deno.mkdir(`${dir}/nan`);
  await Deno.writeFile(
    `${dir}/nan/ckpt.safetensors`,
    writeSafetensors({
      ...tensors,
      "transformer.wte.weight": { ...tensors["transformer.wte.weight"], data: wte },
    }, metadata),
  );
}

/** What a bad line did, when it did not end as it should (null when it did). */
async function check(line: BadLine, dir: string): Promise<string | null> {
  const args = line.args.map((a) => a.replace("$D", dir));
  const out = await new Deno.Command("python3", {
    args: [MAXRSS, "60", Deno.execPath(), "run", ...PERMISSIONS, MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  const m = stderr.match(/MAXRSS (\d+) EXIT (-?\d+) TIMEOUT (\d)\n$/)!;
  const text = withoutDriverNoise(stderr.slice(0, m.index)).trimEnd();
  const lines = text.split("\n").filter((l) => !l.startsWith("notice: ") && l.trim() !== "");
  const [rss, code, timeout] = [Number(m[1]), Number(m[2]), m[3] === "1"];
  if (timeout) return "hang";
  if (rss > 1_000_000) return `memory ${rss} kB`;
  if (code !== line.code) return `exit ${code}, expected ${line.code}: ${text.slice(-300)}`;
  if (lines.length !== 1 || !lines[0].startsWith("error: ")) {
    return `not one error line: ${text.slice(-300)}`;
  }
  return null;
}

/** Run `lines` (default: all); returns the failures, one string each. */
export async function runBadLines(lines: BadLine[] = BAD_LINES): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "bitgpt_badcli_" });
  try {
    await prepare(dir);
    const failures: string[] = [];
    for (const line of lines) {
      const why = await check(line, dir);
      if (why) failures.push(`${line.args.join(" ")}: ${why}`);
    }
    return failures;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const failures = await runBadLines();
  for (const f of failures) console.log(f);
  console.log(
    `${BAD_LINES.length} bad command lines: ${BAD_LINES.length - failures.length} one-line ` +
      `errors with the right exit code, ${failures.length} otherwise`,
  );
  Deno.exit(failures.length ? 1 : 0);
}
