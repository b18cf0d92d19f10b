// Optional Weights & Biases logging (`--wandb-log true`). The SDK is imported only when the flag
// is on, from a pinned npm version; when it cannot be used (no WANDB_API_KEY, no network, SDK
// failure) the run prints one warning and goes on with its local metrics.jsonl.

import process from "node:process";

/** The pinned SDK (kept in a variable so the module graph does not fetch it unless asked). */
export const WANDB_SDK = "npm:@wandb/sdk@0.5.1";

/** Where metrics go besides metrics.jsonl. */
export interface RemoteLog {
  /** Log values at an iteration. */
  log(data: Record<string, number>, step: number): void;
  /** Flush and close the run. */
  finish(): Promise<void>;
}

interface WandbRun {
  log(data: Record<string, unknown>, step?: number, commit?: boolean): void;
  finish(code?: number): Promise<void>;
  url(): string;
}

interface WandbSdk {
  init(opts: { project?: string; config?: unknown; name?: string }): Promise<WandbRun>;
}

/** How to open the W&B run. */
export interface WandbOptions {
  /** Project name. */
  project: string;
  /** The run's config (the train flags). */
  config: Record<string, unknown>;
  /** Give up on `init` after this long (ms); default 20000. */
  timeoutMs?: number;
  /** Where the one-line warning goes; default stderr. */
  warn?: (line: string) => void;
  /** The environment lookup (tests pass a fake); default Deno.env.get. */
  env?: (name: string) => string | undefined;
}

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

/** Open a W&B run, or return null after a one-line warning when that is not possible. */
export async function openWandb(opts: WandbOptions): Promise<RemoteLog | null> {
  const warn = opts.warn ?? ((l: string) => console.error(l));
  const env = opts.env ?? envGet;
  if (!env("WANDB_API_KEY")) {
    warn("warning: --wandb-log: WANDB_API_KEY is not set; logging to metrics.jsonl only");
    return null;
  }
  let run: WandbRun;
  try {
    const spec = WANDB_SDK;
    const mod = await withTimeout(import(spec), opts.timeoutMs ?? 20000, "loading the W&B SDK");
    const sdk = (mod.default ?? mod.wandb) as WandbSdk;
    run = await withTimeout(
      sdk.init({ project: opts.project, config: opts.config }),
      opts.timeoutMs ?? 20000,
      "wandb.init",
    );
    // The SDK exits the process on SIGINT; our handler saves a checkpoint first, then finishes.
    process.removeAllListeners("SIGINT");
  } catch (e) {
    warn(`warning: --wandb-log: W&B is not usable (${oneLine(e)}); logging to metrics.jsonl only`);
    return null;
  }
  console.error(`wandb: logging to ${run.url()}`);
  let failed = false;
  return {
    log(data, step) {
      if (failed) return;
      try {
        run.log(data, step);
      } catch (e) {
        failed = true;
        warn(`warning: --wandb-log: logging failed (${oneLine(e)}); metrics.jsonl continues`);
      }
    },
    async finish() {
      if (!failed) await withTimeout(run.finish(), 20000, "wandb.finish").catch(() => {});
    },
  };
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}
