// The Weights & Biases SDK in a Deno process of its own, started by cli/wandb.ts for
// `--wandb-log true`: its 35 npm packages are pinned in cli/wandb.lock, not in the project's
// deno.lock, and what it prints (deprecation warnings, stacks) stays in this process.
// Protocol, one JSON object per line: stdin takes {"init": {project, config}}, then
// {"log": {...}, "step": n} any number of times, then {"finish": true}; stdout answers
// {"url": "..."} once the run is open, {"error": "..."} when something failed (the process then
// exits), and {"done": true} after finish.

/** The pinned SDK; its dependency tree is in cli/wandb.lock. */
const WANDB_SDK = "npm:@wandb/sdk@0.5.1";

interface WandbRun {
  log(data: Record<string, unknown>, step?: number, commit?: boolean): void;
  finish(code?: number): Promise<void>;
  url(): string;
}

interface WandbSdk {
  init(opts: { project?: string; config?: unknown }): Promise<WandbRun>;
}

/** One request from the parent. */
type Request =
  | { init: { project: string; config: Record<string, unknown> } }
  | { log: Record<string, number>; step: number }
  | { finish: true };

const encoder = new TextEncoder();

function reply(obj: Record<string, unknown>): void {
  Deno.stdout.writeSync(encoder.encode(JSON.stringify(obj) + "\n"));
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

/** The lines of a byte stream, without their newlines. */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
    }
  }
  if (buffered) yield buffered;
}

/** Serve the parent's requests until finish or end of input. */
async function serve(): Promise<void> {
  let run: WandbRun | null = null;
  for await (const line of readLines(Deno.stdin.readable)) {
    if (line.trim() === "") continue;
    const req = JSON.parse(line) as Request;
    if ("init" in req) {
      const spec = WANDB_SDK; // a variable: `deno check` does not fetch the SDK
      const mod = await import(spec);
      const sdk = (mod.default ?? mod.wandb) as WandbSdk;
      run = await sdk.init({ project: req.init.project, config: req.init.config });
      reply({ url: run.url() });
    } else if ("log" in req) {
      run?.log(req.log, req.step);
    } else if ("finish" in req) {
      break;
    }
  }
  await run?.finish();
  reply({ done: true });
}

if (import.meta.main) {
  try {
    await serve();
    Deno.exit(0);
  } catch (e) {
    reply({ error: firstLine(e) });
    Deno.exit(1);
  }
}
