// Running `deno` in a subprocess for the library tests: examples, the README example, bundles.
// Captures stdout and stderr as text; the repository's deno.json (and so its lockfile) is passed
// explicitly because the subprocess runs in a temporary directory.

/** The repository root. */
export const ROOT: URL = new URL("../../", import.meta.url);

/** The repository's deno.json, for `--config`. */
export const CONFIG: string = new URL("deno.json", ROOT).pathname;

/** What a finished subprocess printed and how it exited. */
export interface RunResult {
  /** Exit code. */
  code: number;
  /** Standard output as text. */
  stdout: string;
  /** Standard error as text. */
  stderr: string;
}

/** Run `deno <args>` in `cwd` with extra environment variables; never throws on failure. */
export async function runDeno(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: opts.cwd,
    env: { NO_COLOR: "1", ...opts.env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** A message showing both streams of a failed run. */
export function report(r: RunResult): string {
  return `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

/** Every `loss <number>` printed, in order (`step 10 | loss 2.3412 | ...`). */
export function losses(stdout: string): number[] {
  return [...stdout.matchAll(/\bloss ([-+\d.eE]+|NaN|-?Infinity)/g)].map((m) => Number(m[1]));
}
