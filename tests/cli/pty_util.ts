// Drive `deno task train` in a pseudo-terminal (tests/cli/pty_driver.py, Python's pty module):
// what a user at a terminal sees and does, Ctrl-C included. Used by tests/cli/signals_test.ts
// and the trial counts of tests/reliability/ctrl_c_trials.ts.

const ROOT = new URL("../../", import.meta.url).pathname;
const DRIVER = new URL("./pty_driver.py", import.meta.url).pathname;

/** Is python3 with its pty module here? */
export const hasPty: boolean = await (async () => {
  try {
    const out = await new Deno.Command("python3", { args: ["-c", "import pty"] }).output();
    return out.success;
  } catch {
    return false;
  }
})();

/** A command running in a pseudo-terminal. */
export class PtyRun {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #text = "";
  #done: Promise<void>;
  /** Its exit code once finished (128 + n for a signal n). */
  code: number | null = null;

  /** Start `args` (e.g. `["deno", "task", "train", ...]`) in `cwd` (the repository root). */
  constructor(args: string[], env: Record<string, string> = {}, cwd = ROOT) {
    const child = new Deno.Command("python3", {
      args: [DRIVER, cwd, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      env: { NO_COLOR: "1", ...env },
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#done = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of child.stdout) {
        this.#text += dec.decode(chunk, { stream: true });
      }
      const m = this.#text.match(/\nPTY-EXIT (\d+)\n$/);
      this.code = m ? Number(m[1]) : -1;
      await child.status;
    })();
  }

  /** Everything the terminal showed so far (carriage returns and line clears included). */
  get text(): string {
    return this.#text;
  }

  /** Wait until the output matches `pattern` (or the run ends, or `timeoutMs` passes). */
  async waitFor(pattern: RegExp, timeoutMs = 120_000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!pattern.test(this.#text) && this.code === null && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
    }
    return pattern.test(this.#text);
  }

  /** Act: type Ctrl-C, signal the command or its process group, or SIGKILL the group. */
  async send(action: "ctrlc" | "term" | "pgint" | "pgterm" | "kill"): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(action + "\n"));
  }

  /** Wait for the end; returns the exit code. */
  async finish(timeoutMs = 180_000): Promise<number> {
    const timer = setTimeout(() => this.send("kill").catch(() => {}), timeoutMs);
    await this.#done;
    clearTimeout(timer);
    await this.#writer.close().catch(() => {});
    return this.code!;
  }
}

/** `deno task train` flags of a small char-level run that goes on until stopped. */
export function endlessRun(dataset: string, outDir: string, backend: string): string[] {
  return [
    ...["--preset", "nano", "--tokenizer", "char", "--dataset", dataset, "--out-dir", outDir],
    ...["--backend", backend, "--max-iters", "1000000", "--eval-interval", "20"],
    ...["--eval-iters", "2", "--lr-decay-iters", "1000000", "--warmup-iters", "5"],
    ...["--log-interval", "5"],
  ];
}
