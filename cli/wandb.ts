// Optional Weights & Biases logging (`--wandb-log true`). The SDK runs in a Deno process of its
// own (cli/wandb_child.ts), started only when the flag is on: its npm packages are pinned by
// cli/wandb.lock and never enter the project's deno.lock, and what the SDK prints (deprecation
// warnings, stacks) goes nowhere. When W&B cannot be used (no WANDB_API_KEY, no permission to
// start the process, no network, SDK failure) the run prints one warning line and goes on with
// its local metrics.jsonl.

import { readLines } from "./wandb_child.ts";

/** The process that runs the SDK (JSON lines on stdin and stdout; see its header). */
export const WANDB_CHILD: URL = new URL("./wandb_child.ts", import.meta.url);
/** The SDK's own lockfile. */
export const WANDB_LOCK: URL = new URL("./wandb.lock", import.meta.url);

/** Where metrics go besides metrics.jsonl. */
export interface RemoteLog {
  /** Log values at an iteration. */
  log(data: Record<string, number>, step: number): void;
  /** Flush and close the run. */
  finish(): Promise<void>;
}

/** How to open the W&B run. */
export interface WandbOptions {
  /** Project name. */
  project: string;
  /** The run's config (the train flags). */
  config: Record<string, unknown>;
  /** Give up on opening the run (and on finishing it) after this long (ms); default 20000. */
  timeoutMs?: number;
  /** Where the one-line warning goes; default stderr. */
  warn?: (line: string) => void;
  /** The environment lookup (tests pass a fake); default Deno.env.get. */
  env?: (name: string) => string | undefined;
}

/** One answer of the SDK process. */
type Reply = { url: string } | { error: string } | { done: true };

function envGet(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000}s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The Deno executable we may start: this one, or `deno` from PATH (what `--allow-run=deno`
 * grants; it names the PATH entry, which may be a link to this executable); null if neither.
 */
function denoCommand(): string | null {
  for (const command of [Deno.execPath(), "deno"]) {
    try {
      if (Deno.permissions.querySync({ name: "run", command }).state === "granted") return command;
    } catch {
      // "deno" not on PATH
    }
  }
  return null;
}

/** The SDK process: no config, its own frozen lockfile, the permissions the SDK uses. */
function spawnChild(command: string): Deno.ChildProcess {
  return new Deno.Command(command, {
    args: [
      "run",
      "--quiet",
      "--no-config",
      `--lock=${WANDB_LOCK.pathname}`,
      "--frozen",
      "--allow-net", // api.wandb.ai or $WANDB_BASE_URL
      "--allow-env", // WANDB_API_KEY, WANDB_BASE_URL, WANDB_MODE, ...
      "--allow-read", // ~/.netrc
      "--allow-sys", // os.homedir()
      WANDB_CHILD.href,
    ],
    env: { NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "null", // the SDK's warnings and stacks; its errors come back as replies
    detached: true, // a terminal's Ctrl-C goes to train, which then finishes the run
  }).spawn();
}

/** The process's replies, one JSON object per line (other lines skipped). */
async function* replies(stream: ReadableStream<Uint8Array>): AsyncGenerator<Reply> {
  for await (const line of readLines(stream)) {
    if (line.trim().startsWith("{")) yield JSON.parse(line) as Reply;
  }
}

/** Open a W&B run, or return null after a one-line warning when that is not possible. */
export async function openWandb(opts: WandbOptions): Promise<RemoteLog | null> {
  const warn = opts.warn ?? ((l: string) => console.error(l));
  const env = opts.env ?? envGet;
  const timeoutMs = opts.timeoutMs ?? 20000;
  const unusable = (why: string) => {
    warn(`warning: --wandb-log: W&B is not usable (${why}); logging to metrics.jsonl only`);
    return null;
  };
  if (!env("WANDB_API_KEY")) {
    warn("warning: --wandb-log: WANDB_API_KEY is not set; logging to metrics.jsonl only");
    return null;
  }
  const command = denoCommand();
  if (!command) return unusable("it runs in a deno subprocess: grant --allow-run=deno");
  let child: Deno.ChildProcess;
  try {
    child = spawnChild(command);
  } catch (e) {
    return unusable(oneLine(e));
  }
  const stop = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
  };
  const writer = child.stdin.getWriter();
  const send = (obj: unknown) => writer.write(new TextEncoder().encode(JSON.stringify(obj) + "\n"));
  const answers = replies(child.stdout);
  const next = async (what: string): Promise<Reply> => {
    const r = await withTimeout(answers.next(), timeoutMs, what);
    if (r.done) throw new Error(`the W&B process exited with code ${(await child.status).code}`);
    if ("error" in r.value) throw new Error(r.value.error);
    return r.value;
  };
  let url: string;
  try {
    await send({ init: { project: opts.project, config: opts.config } });
    url = (await next("wandb.init") as { url: string }).url;
  } catch (e) {
    stop();
    return unusable(oneLine(e));
  }
  console.error(`wandb: logging to ${url}`);
  let failed = false;
  const fail = (e: unknown) => {
    if (failed) return;
    failed = true;
    warn(`warning: --wandb-log: logging failed (${oneLine(e)}); metrics.jsonl continues`);
  };
  return {
    log(data, step) {
      if (!failed) send({ log: data, step }).catch(fail);
    },
    async finish() {
      if (failed) return stop();
      try {
        await send({ finish: true });
        await writer.close();
        await next("wandb.finish");
      } catch (e) {
        fail(e);
        stop();
      }
    },
  };
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}
