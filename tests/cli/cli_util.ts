// Helpers for the end-to-end CLI tests: run `cli/main.ts` as a subprocess with the permissions
// the deno.json tasks grant, a small slice of tiny Shakespeare in a temporary directory, and a
// shared nano-sized char-level training run that several tests sample from.

const MAIN = new URL("../../cli/main.ts", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;

/** What a finished CLI run printed and returned. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The `--allow-*` flags of a deno.json task, so the tests run with exactly what it grants. */
export function taskPermissions(task: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  const line: string = config.tasks[task];
  return line.split(/\s+/).filter((w) => w.startsWith("--allow-"));
}

/** The permissions of `deno task train`. */
export const PERMISSIONS: string[] = taskPermissions("train");

function permissionsOf(command: string | undefined): string[] {
  return command === "generate" ? taskPermissions("generate") : PERMISSIONS;
}

/** A `deno run cli/main.ts ...args` command in the repository root, with extra `env`. */
export function cliCommand(
  args: string[],
  stdin: "piped" | "null" = "null",
  env: Record<string, string> = {},
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissionsOf(args[0]), MAIN, ...args],
    cwd: ROOT,
    stdin,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  });
}

/**
 * Stderr without lines that native libraries print on their own: on Linux without
 * XDG_RUNTIME_DIR, Mesa's Vulkan device-select layer tries a Wayland connection when WebGPU
 * starts and libwayland-client writes "error: XDG_RUNTIME_DIR is invalid or not set in the
 * environment." (twice; `NODEVICE_SELECT=1` silences it). Tests of our own lines drop them.
 */
export function withoutDriverNoise(stderr: string): string {
  return stderr.replace(
    /^error: XDG_RUNTIME_DIR is invalid or not set in the environment\.\n/gm,
    "",
  );
}

/** Run the CLI to completion, optionally feeding `input` on stdin, with extra `env`. */
export async function runCli(
  args: string[],
  input?: string,
  env?: Record<string, string>,
): Promise<CliResult> {
  const child = cliCommand(args, input === undefined ? "null" : "piped", env).spawn();
  if (input !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: withoutDriverNoise(dec.decode(out.stderr)),
  };
}

/** Where tiny Shakespeare lives: $BITGPT_DATA_DIR (CI), else the shared folder beside the repo. */
export function shakespearePath(): string {
  const dir = Deno.env.get("BITGPT_DATA_DIR") ??
    new URL("../shared/data", `file://${ROOT}`).pathname;
  return `${dir.replace(/\/$/, "")}/shakespeare.txt`;
}

/** Write the first `chars` characters of tiny Shakespeare to `dir/shakespeare_slice.txt`. */
export async function writeSlice(dir: string, chars = 40000): Promise<string> {
  const text = await Deno.readTextFile(shakespearePath());
  const path = `${dir}/shakespeare_slice.txt`;
  await Deno.writeTextFile(path, text.slice(0, chars));
  return path;
}

/** The `step N: train loss X, val loss Y` lines of a run. */
export function evalLines(stdout: string): { iter: number; train: number; val: number }[] {
  return [...stdout.matchAll(/^step (\d+): train loss ([\d.]+), val loss ([\d.]+)$/gm)].map(
    (m) => ({ iter: Number(m[1]), train: Number(m[2]), val: Number(m[3]) }),
  );
}

/** Flags of a nano-sized char-level run on the slice, a few dozen iterations. */
export function nanoFlags(dataset: string, outDir: string, backend = "cpu"): string[] {
  return [
    ...["--preset", "nano", "--tokenizer", "char", "--dataset", dataset, "--out-dir", outDir],
    ...["--backend", backend, "--max-iters", "60", "--eval-interval", "30", "--eval-iters", "4"],
    ...["--lr-decay-iters", "60", "--warmup-iters", "5", "--log-interval", "10"],
  ];
}

/** Copy the files of a flat directory into a new temporary one. */
export async function copyDir(src: string): Promise<string> {
  const dst = await Deno.makeTempDir({ prefix: "bitgpt_cli_" });
  for await (const e of Deno.readDir(src)) {
    if (e.isFile) await Deno.copyFile(`${src}/${e.name}`, `${dst}/${e.name}`);
  }
  return dst;
}

let shared: Promise<{ dir: string; dataset: string; result: CliResult }> | null = null;

/** One CPU training run shared by the tests that only read its outputs (made on first use). */
export function sharedRun(): Promise<{ dir: string; dataset: string; result: CliResult }> {
  shared ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "bitgpt_cli_" });
    const dataset = await writeSlice(dir);
    const out = `${dir}/out`;
    const result = await runCli(["train", ...nanoFlags(dataset, out)]);
    if (result.code !== 0) {
      throw new Error(`shared training run failed (${result.code}):\n${result.stderr}`);
    }
    return { dir: out, dataset, result };
  })();
  return shared;
}
